"""Mutation audit of the recipe entry points: recipes/train_nmf.py (all of it: frame collection,
the MU and amortized dictionaries, the files it writes) and the lines of train_l2i.py,
train_piq.py and train_lmac.py around `train_interpreter` (the library it calls,
recipes/interpreters, models, recipes/core, has its own audits).

How the expected values are derived:
- frames: each clip's log1p |STFT| (the nmf.yaml STFT: 16 kHz, n_fft 1024, hop 186 samples,
  centred, so a 1 s clip has 1 + 16000 // 186 = 87 frames) computed here clip by clip, its
  all-zero frames dropped by hand; the random subset redrawn here from the documented rule (keep
  each frame with probability max_frames / total frames, one uniform draw a frame, batch by batch);
- the MU dictionary: the run's documented recipe redone here with the library's audited NMF
  functions (models/nmf.py) on the train folds' frames (folds 1-3, read from meta/esc50.csv, not
  from the run), then the valid folds' (fold 4) error with W fixed, one generator seeded with
  --seed throughout;
- the amortized dictionary: the kept checkpoint's encoder and decoder applied here by hand to the
  valid clips: ||X - relu(W) H|| / ||X|| and mean (X - W H)^2 + l1 mean H;
- figure sizes: figsize x dpi (8 x 4 in at 100 dpi; 10 x 2.4 n in at 90 dpi).
Tiny runs on the session's synthetic set (3 classes x 5 clips of 1 s, one per fold). Each test
names the mutations of the audit it catches.
"""

import csv
import json
import re
import runpy
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import HPARAMS
from PIL import Image
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.processing.features import STFT

import recipes.train_nmf as train_nmf
from data_prep.audio import load_clip
from models.L2I import NMFDecoderAudio, NMFEncoder
from models.nmf import fit_activations, nmf_multiplicative_update, relative_error
from recipes import train_l2i, train_lmac, train_piq
from recipes.core.pipeline import spectrogram
from recipes.interpreters.l2i import L2I
from recipes.interpreters.lmac import LMAC
from recipes.interpreters.piq import PIQ

RECIPES = Path(train_nmf.__file__).resolve().parent
NMF_YAML = str(HPARAMS / "nmf.yaml")
FRAMES_PER_CLIP = 1 + 16000 // 186  # 1 s at 16 kHz, hop round(16000 * 11.6099 ms) = 186, centred
N_FREQ = 1024 // 2 + 1

# The MU run: every setting the script hands on is off its default, so dropping one shows.
MU = {"seed": 5, "K": 6, "l1": 0.05, "tol": 0.01, "n_iter": 30, "max_frames": 200, "chunk": 128}
MU_VALID_ITER = 25
BATCH = 4
# The amortized run: 3 epochs at lr 0.02 whose valid errors are about 0.70, 5.2, 0.92: the best
# (epoch 1) is neither the last (kept as the most recent) nor the worst (kept on max_keys).
AMORTIZED = {"seed": 11, "K": 8, "lr": 0.02, "l1": 0.1, "epochs": 3}


def _stft():
    return STFT(sample_rate=16000, n_fft=1024, hop_length=11.6099, win_length=23.2199)


def _hparams(**extra):
    """What collect_frames reads from the yaml."""
    return {"compute_stft": _stft(), "batch_size": 2, "audio_data_folder": "/my/audio", **extra}


def _dataset(signals):
    """A dataset of the given waveforms (ids c0, c1, ...), items {"id", "sig"}."""
    data = {f"c{i}": {"sig": sig} for i, sig in enumerate(signals)}
    return DynamicItemDataset(data, output_keys=["id", "sig"])


def _noise(n, length=16000, seed=0):
    return [
        0.3 * torch.randn(length, generator=torch.Generator().manual_seed(seed + i))
        for i in range(n)
    ]


def _split(data_folder, folds):
    """(id, path) of the clips of `folds`, in meta/esc50.csv order."""
    with open(Path(data_folder) / "meta" / "esc50.csv", newline="") as fin:
        rows = [row for row in csv.DictReader(fin) if int(row["fold"]) in folds]
    return [
        (row["filename"][: -len(".wav")], Path(data_folder) / "audio" / row["filename"])
        for row in rows
    ]


def _frames(clips, max_frames=None, generator=None):
    """The documented frame matrix (F, N): batches of BATCH clips, each frame kept with
    probability max_frames / total (one uniform draw a frame), all-zero frames dropped."""
    signals = [load_clip(path, 16000, 16000) for _, path in clips]
    fraction = (
        None if max_frames is None else min(1.0, max_frames / (len(signals) * FRAMES_PER_CLIP))
    )
    kept = []
    for start in range(0, len(signals), BATCH):
        X, _ = spectrogram(torch.stack(signals[start : start + BATCH]), _stft())  # (B, frames, F)
        X = X.reshape(-1, N_FREQ)
        if fraction is not None and fraction < 1.0:
            X = X[torch.rand(X.shape[0], generator=generator) < fraction]
        kept.append(X[X.sum(dim=1) > 0])
    return torch.cat(kept).T


def _logged(folder, pattern):
    return [float(value) for value in re.findall(pattern, (folder / "train_log.txt").read_text())]


# --- collect_frames ------------------------------------------------------------------------


def test_frames_are_the_batches_frames_in_dataset_order_silence_kept():
    """Every frame of every clip, in the dataset's order; digital silence and batch padding are
    kept (log1p |STFT| of silence is SpeechBrain's floor, 1e-7, not 0: the published dictionaries
    were learned with them). Mutations: the loader shuffled; `.T` dropped; a frame rule that
    drops the floor (changes the published dictionaries); the frames of a batch lost."""
    loud, short = _noise(2)
    short = torch.cat([torch.zeros(4000), short[:6000]])  # 0.25 s of digital silence, then 0.375 s
    signals = [loud, short, torch.zeros(16000), _noise(1, seed=9)[0]]  # batches of 2: short padded
    X = train_nmf.collect_frames(_dataset(signals), _hparams(), "cpu")
    assert X.shape == (N_FREQ, 4 * FRAMES_PER_CLIP)  # short padded to 1 s by its batch
    expected = []
    for sig in signals:  # one clip at a time, zero-padded to 1 s by hand
        padded = torch.cat([sig, torch.zeros(16000 - len(sig))])
        expected.append(spectrogram(padded[None], _stft())[0][0].T)  # (F, frames)
    torch.testing.assert_close(X, torch.cat(expected, dim=1), rtol=1e-5, atol=1e-6)
    floor = torch.log1p(torch.tensor(1e-14).sqrt())  # SpeechBrain's magnitude: sqrt(|S|^2 + 1e-14)
    silent = X[:, 2 * FRAMES_PER_CLIP : 3 * FRAMES_PER_CLIP]  # the silent clip
    torch.testing.assert_close(silent, floor.expand_as(silent), rtol=1e-6, atol=0)
    heard = (X[:, :FRAMES_PER_CLIP] > 1e-3).any(dim=0)  # (frames,)
    assert bool(heard.all())  # the loud clip: every frame heard


def test_frames_subset_is_about_max_frames_and_drawn_by_the_generator():
    """Mutations: the total frame count not divided by the batch size (keeps about a quarter of
    max_frames); `<` -> `>` in the draw (keeps 1 - fraction); the generator not used (a seed no
    longer fixes the subset); draws made when max_frames covers every frame (`keep_fraction <
    1.0` dropped: the generator advanced, the NMF then initialised differently)."""
    dataset = _dataset(_noise(8))  # 8 x 87 = 696 frames, batches of 2
    full = train_nmf.collect_frames(dataset, _hparams(), "cpu")
    assert full.shape == (N_FREQ, 8 * FRAMES_PER_CLIP)

    def subset(seed, max_frames=174):  # a quarter of the frames
        return train_nmf.collect_frames(
            dataset, _hparams(), "cpu", max_frames, torch.Generator().manual_seed(seed)
        )

    first = subset(3)
    assert 174 - 45 <= first.shape[1] <= 174 + 45  # binomial(696, 1/4): sd 11.4
    torch.testing.assert_close(subset(3), first, rtol=0, atol=0)
    assert not torch.equal(subset(4), first)
    # a subsequence of the full matrix's columns
    position = [int((full - column[:, None]).abs().sum(dim=0).argmin()) for column in first.T]
    assert position == sorted(set(position))
    torch.testing.assert_close(full[:, position], first, rtol=0, atol=0)
    torch.testing.assert_close(subset(3, max_frames=696), full, rtol=0, atol=0)
    # max_frames covering every frame draws nothing: the NMF's initialisation that follows on
    # the same generator is the one of a run without max_frames
    generator = torch.Generator().manual_seed(3)
    train_nmf.collect_frames(dataset, _hparams(), "cpu", 696, generator)
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(3).get_state())


def test_all_silent_data_is_an_error_naming_the_audio_folder():
    """Data of digital silence only is refused (it was learned from: a dictionary of the 1e-7
    floor and a valid error of about 0.05, with no word). One heard clip is enough. Mutations:
    the silence check dropped; the floor not the STFT's silence (0: every clip passes; any
    frame above it: the loud clip too is refused); the loudest frame not tracked over batches."""
    with pytest.raises(
        ValueError, match="All frames of the data are silent: check the audio in /my/audio"
    ):
        train_nmf.collect_frames(
            _dataset([torch.zeros(16000), torch.zeros(8000)]), _hparams(), "cpu"
        )
    quiet = torch.zeros(16000)
    quiet[8000] = 1e-4  # one sample at -80 dBFS, in the first batch of two
    X = train_nmf.collect_frames(_dataset([quiet] + [torch.zeros(16000)] * 2), _hparams(), "cpu")
    assert X.shape == (N_FREQ, 3 * FRAMES_PER_CLIP)


# --- save_decoder --------------------------------------------------------------------------


def test_saved_decoder_is_the_clamped_dictionary_and_a_wrong_shape_is_named(tmp_path):
    """Mutations: `clamp_min(0.0)` dropped (a negative entry saved: the decoder's relu then no
    longer computes W H with the W a user reads); the shape check dropped (torch's copy error,
    naming neither K nor n_fft); something else than the decoder's state dict saved."""
    W = torch.tensor([[0.5, -0.25, 0.0], [-1.0, 2.0, 3.0]])  # (F 2, K 3)
    path = tmp_path / "nmf_decoder.ckpt"
    train_nmf.save_decoder(W, NMFDecoderAudio(n_comp=3, n_freq=2), str(path))
    state = torch.load(path, weights_only=True)
    assert list(state) == ["W"]
    torch.testing.assert_close(
        state["W"], torch.tensor([[0.5, 0.0, 0.0], [0.0, 2.0, 3.0]]), rtol=0, atol=0
    )
    loaded = NMFDecoderAudio(n_comp=3, n_freq=2)
    loaded.load_state_dict(state, strict=True)
    H = torch.tensor([[[1.0], [2.0], [4.0]]])  # (B 1, K 3, T 1)
    torch.testing.assert_close(loaded(H), torch.tensor([[[0.5], [16.0]]]))  # by hand: W_+ H
    with pytest.raises(
        ValueError, match=r"dictionary is \(2, 3\) but the yaml's nmf_decoder holds \(2, 4\)"
    ):
        train_nmf.save_decoder(W, NMFDecoderAudio(n_comp=4, n_freq=2), str(tmp_path / "other.ckpt"))
    assert not (tmp_path / "other.ckpt").exists()


# --- main, MU ------------------------------------------------------------------------------


def _nmf_argv(data_folder, output, *extra):
    return [NMF_YAML, "--data_folder", str(data_folder), "--output_folder", str(output)] + [
        "--signal_length_s",
        "1",
        "--batch_size",
        str(BATCH),
        *extra,
    ]


@pytest.fixture(scope="module")
def mu_run(tiny_synthetic, tmp_path_factory):
    output = tmp_path_factory.mktemp("nmf_mu") / "run"
    argv = _nmf_argv(
        tiny_synthetic, output,
        "--seed", str(MU["seed"]), "--K", str(MU["K"]), "--nmf_l1", str(MU["l1"]),
        "--nmf_tol", str(MU["tol"]), "--nmf_n_iter", str(MU["n_iter"]),
        "--nmf_max_frames", str(MU["max_frames"]), "--nmf_chunk_size", str(MU["chunk"]),
        "--nmf_valid_n_iter", str(MU_VALID_ITER), "--n_plot_clips", "2",
    )  # fmt: skip
    metrics = train_nmf.main(argv)
    return {"folder": output, "metrics": metrics, "argv": argv, "data": tiny_synthetic}


@pytest.fixture(scope="module")
def mu_expected(mu_run):
    """The MU recipe redone here: train folds 1-3, valid fold 4, one generator seeded with --seed."""
    generator = torch.Generator().manual_seed(MU["seed"])
    X_train = _frames(_split(mu_run["data"], {1, 2, 3}), MU["max_frames"], generator)
    W, _, errors = nmf_multiplicative_update(
        X_train,
        MU["K"],
        MU["n_iter"],
        l1=MU["l1"],
        generator=generator,
        tol=MU["tol"],
        chunk_size=MU["chunk"],
    )
    X_valid = _frames(_split(mu_run["data"], {4}))
    H = fit_activations(
        X_valid, W, n_iter=MU_VALID_ITER, generator=generator, chunk_size=MU["chunk"]
    )
    return {
        "W": W,
        "errors": errors,
        "valid": relative_error(X_valid, W, H, MU["chunk"]),
        "n_train": X_train.shape[1],
    }


def test_mu_dictionary_is_learned_on_the_train_folds_with_the_yamls_settings(mu_run, mu_expected):
    """Mutations: the dictionary learned on datasets["valid"] or ["test"]; the generator seeded
    with a constant (or not passed to the NMF); nmf_max_frames, nmf_l1 or nmf_tol not handed on;
    K off by one (the saved shape); the saved W not clamped / not W."""
    folder = mu_run["folder"]
    train_ids = [clip for clip, _ in _split(mu_run["data"], {1, 2, 3})]
    assert list(json.loads((folder / "manifest" / "train.json").read_text())) == train_ids
    assert 0 < mu_expected["n_train"] < 9 * FRAMES_PER_CLIP  # max_frames 200 of 783 took effect
    assert len(mu_expected["errors"]) < MU["n_iter"]  # tol 0.01 stopped it early
    state = torch.load(folder / "nmf_decoder.ckpt", weights_only=True)
    assert state["W"].shape == (N_FREQ, MU["K"]) and bool((state["W"] >= 0).all())
    NMFDecoderAudio(n_comp=MU["K"], n_freq=N_FREQ).load_state_dict(state, strict=True)
    torch.testing.assert_close(state["W"], mu_expected["W"])


def test_mu_metrics_file_and_returned_metrics(mu_run, mu_expected):
    """Mutations: the valid frames from datasets["test"] (or ["train"]), or subsampled with
    nmf_max_frames; H fitted with nmf_n_iter instead of nmf_valid_n_iter; train error =
    errors[0]; n_valid_frames = X_valid.shape[0] (the bins); the json not the returned dict."""
    metrics = mu_run["metrics"]
    saved = json.loads((mu_run["folder"] / "nmf_metrics.json").read_text())
    for name in ("method", "K", "valid_relative_error", "train_relative_error", "n_valid_frames"):
        assert saved[name] == pytest.approx(metrics[name]), name
    assert metrics["method"] == "mu" and metrics["K"] == MU["K"]
    assert metrics["n_valid_frames"] == 3 * FRAMES_PER_CLIP  # fold 4: 3 clips, none silent
    assert metrics["valid_fit_iterations"] == MU_VALID_ITER
    assert metrics["valid_relative_error"] == pytest.approx(mu_expected["valid"], rel=1e-5)
    assert metrics["mu_train_errors"] == pytest.approx(mu_expected["errors"], rel=1e-5)
    assert metrics["train_relative_error"] == metrics["mu_train_errors"][-1]
    assert saved["mu_train_errors"] == pytest.approx(metrics["mu_train_errors"])


def test_mu_train_log_iterations_and_errors(mu_run):
    """Mutations: `iteration + 1` -> `iteration` (iterations counted from 0); errors[iteration]
    -> errors[-1]; the final line's count not len(errors); the valid line's error not the
    metrics'; the log step not len // 10."""
    folder, errors = mu_run["folder"], mu_run["metrics"]["mu_train_errors"]
    log = (folder / "train_log.txt").read_text()
    lines = re.findall(r"^method: mu, iteration: (\d+) - train rel_err: (\S+)$", log, flags=re.M)
    step = max(1, len(errors) // 10)
    expected = [index + 1 for index in range(0, len(errors), step)] + [len(errors)]
    assert [int(iteration) for iteration, _ in lines] == expected
    for iteration, value in lines:
        # 3 significant digits logged
        assert float(value) == pytest.approx(errors[int(iteration) - 1], rel=6e-3)
    valid = re.findall(rf"^method: mu, K: {MU['K']} - valid rel_err: (\S+)$", log, flags=re.M)
    assert [float(v) for v in valid] == [
        pytest.approx(mu_run["metrics"]["valid_relative_error"], rel=6e-3)
    ]


def test_mu_figures_and_the_recipe_copy(mu_run):
    """Mutations: n_plot_clips not the batch of the reconstruction figure; recipe_file not
    __file__ (no train_nmf.py beside the results)."""
    folder = mu_run["folder"]
    assert Image.open(folder / "nmf_atoms.png").size == (800, 400)  # 8 x 4 in at 100 dpi
    # 10.5 x 2.4 * 2 in at 90 dpi (the colour bars take the half inch)
    assert Image.open(folder / "nmf_reconstructions.png").size == (945, 432)
    assert (folder / "train_nmf.py").read_bytes() == (RECIPES / "train_nmf.py").read_bytes()


def test_mu_rerun_in_the_same_folder_rewrites_the_same_dictionary(mu_run, tmp_path):
    """A second run in the folder (the command run again) trains again from the seed and writes
    the same dictionary and metrics. Mutations: the generator seeded from the clock / entropy."""
    folder = tmp_path / "again"
    shutil.copytree(mu_run["folder"], folder)
    metrics = train_nmf.main(
        [str(folder) if arg == str(mu_run["folder"]) else arg for arg in mu_run["argv"]]
    )
    first = torch.load(mu_run["folder"] / "nmf_decoder.ckpt", weights_only=True)
    second = torch.load(folder / "nmf_decoder.ckpt", weights_only=True)
    torch.testing.assert_close(second["W"], first["W"], rtol=0, atol=0)
    assert metrics["valid_relative_error"] == mu_run["metrics"]["valid_relative_error"]


# --- main, amortized -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def amortized_run(tiny_synthetic, tmp_path_factory):
    output = tmp_path_factory.mktemp("nmf_amortized") / "run"
    argv = _nmf_argv(
        tiny_synthetic, output, "--nmf_method", "amortized",
        "--seed", str(AMORTIZED["seed"]), "--K", str(AMORTIZED["K"]), "--lr", str(AMORTIZED["lr"]),
        "--nmf_l1", str(AMORTIZED["l1"]), "--number_of_epochs", str(AMORTIZED["epochs"]),
        "--nmf_valid_n_iter", str(MU_VALID_ITER),
    )  # fmt: skip
    metrics = train_nmf.main(argv)
    kept = {
        int((ckpt / "counter.ckpt").read_text()): ckpt for ckpt in (output / "save").glob("CKPT+*")
    }
    logged = _logged(output, r"valid rel_err: (\S+)")[: AMORTIZED["epochs"]]  # the epochs' lines
    best = logged.index(min(logged)) + 1
    return {
        "folder": output,
        "metrics": metrics,
        "kept": kept,
        "best": best,
        "logged": logged,
        "data": tiny_synthetic,
    }


def _meta(checkpoint):
    """The checkpoint's meta: the valid stats it was saved with."""
    return yaml.safe_load((checkpoint / "CKPT.yaml").read_text())


def test_amortized_exports_the_checkpoint_of_the_lowest_valid_error(amortized_run):
    """Mutations: `min_keys` -> `max_keys` (the worst epoch and the last kept: the last
    exported); the best checkpoint not recovered after fit (the last epoch's W exported);
    `min_key` -> `max_key` in the recovery; the exported W not the decoder's."""
    folder, kept, best = amortized_run["folder"], amortized_run["kept"], amortized_run["best"]
    assert len(amortized_run["logged"]) == AMORTIZED["epochs"]
    assert best in kept, (
        f"the epoch of the lowest valid error ({best}) was not kept: {sorted(kept)}"
    )
    assert _meta(kept[best])["rel_err"] == pytest.approx(min(amortized_run["logged"]), rel=6e-3)
    W_best = torch.load(kept[best] / "nmf_decoder.ckpt", weights_only=True)["W"]
    exported = torch.load(folder / "nmf_decoder.ckpt", weights_only=True)["W"]
    torch.testing.assert_close(exported, W_best.clamp_min(0.0), rtol=0, atol=0)
    assert exported.shape == (N_FREQ, AMORTIZED["K"]) and bool(exported.sum(dim=0).gt(0).any())


def test_amortized_valid_error_and_loss_by_hand(amortized_run):
    """The kept checkpoint's encoder + decoder on the 3 valid clips (one batch), by hand.
    Mutations: the relative error without its square root; the signal power summed over the
    reconstruction; the L1 term dropped or on H.sum(); the residual not squared; train stats
    logged as valid; metrics' valid error not fitted with W fixed on the valid frames."""
    kept, K = amortized_run["kept"][amortized_run["best"]], AMORTIZED["K"]
    encoder, decoder = NMFEncoder(N_FREQ, K), NMFDecoderAudio(n_comp=K, n_freq=N_FREQ)
    encoder.load_state_dict(torch.load(kept / "nmf_encoder.ckpt", weights_only=True))
    decoder.load_state_dict(torch.load(kept / "nmf_decoder.ckpt", weights_only=True))
    valid = _split(amortized_run["data"], {4})
    X, _ = spectrogram(torch.stack([load_clip(path, 16000, 16000) for _, path in valid]), _stft())
    X = X.transpose(1, 2)  # (B, F, T)
    with torch.no_grad():
        H = encoder(X)
        reconstruction = torch.matmul(F.relu(decoder.W), F.relu(H))
    rel_err = ((X - reconstruction).pow(2).sum() / X.pow(2).sum()).sqrt().item()
    loss = (X - reconstruction).pow(2).mean().item() + AMORTIZED["l1"] * H.mean().item()
    meta = _meta(kept)
    assert meta["rel_err"] == pytest.approx(rel_err, rel=1e-4)
    assert meta["loss"] == pytest.approx(loss, rel=1e-4)
    # the reported figure: W fixed, H fitted on the valid frames; the generator fresh from the seed
    metrics = amortized_run["metrics"]
    W = F.relu(decoder.W).detach()
    X_valid = _frames(valid)
    H_fit = fit_activations(
        X_valid, W, n_iter=MU_VALID_ITER, generator=torch.Generator().manual_seed(AMORTIZED["seed"])
    )
    assert metrics["valid_relative_error"] == pytest.approx(
        relative_error(X_valid, W, H_fit), rel=1e-5
    )
    assert metrics["method"] == "amortized" and metrics["train_relative_error"] is None
    assert metrics["mu_train_errors"] is None and metrics["n_valid_frames"] == 3 * FRAMES_PER_CLIP


# --- the interpreter scripts ---------------------------------------------------------------

SCRIPTS = {"l2i": (train_l2i, L2I), "piq": (train_piq, PIQ), "lmac": (train_lmac, LMAC)}


@pytest.mark.parametrize("method", list(SCRIPTS))
def test_interpreter_script_trains_its_method_copies_itself_and_exports_the_kept_checkpoint(
    method, request
):
    """Mutations: the script hands another Brain class to train_interpreter (train_l2i with PIQ,
    ...); recipe_file not __file__ (None: no copy; another file); main not returning the Brain."""
    module, brain_class = SCRIPTS[method]
    run = request.getfixturevalue(f"tiny_{method}")
    folder = run["folder"]
    assert type(run["brain"]) is brain_class
    script = Path(module.__file__)
    assert (folder / script.name).read_bytes() == script.read_bytes()
    kept = list((folder / "save").glob("CKPT+*"))
    assert len(kept) == 1  # one epoch
    names = ["psi_model.ckpt"] + (["theta.ckpt"] if method == "l2i" else [])
    assert sorted(p.name for p in folder.glob("*.ckpt")) == sorted(names)
    for name in names:
        exported = torch.load(folder / name, weights_only=True)
        saved = torch.load(kept[0] / name, weights_only=True)
        assert exported.keys() == saved.keys()
        assert all(torch.equal(exported[key], saved[key]) for key in saved), name
    assert (folder / "inference" / "hyperparams.yaml").is_file()


@pytest.mark.parametrize("script", ["train_nmf", "train_l2i", "train_piq", "train_lmac"])
def test_script_run_as_a_command_reads_the_arguments_after_its_name(
    script, tiny_synthetic, tmp_path, monkeypatch
):
    """`python recipes/<script>.py hparams/x.yaml --key value`: the __main__ block hands on
    sys.argv[1:]; a bad value is refused naming the yaml (before any folder is made).
    Mutations: main(sys.argv) (the script itself read as the yaml); the __main__ block dropped."""
    yaml_name = {
        "train_nmf": "nmf",
        "train_l2i": "l2i_conv2d",
        "train_piq": "piq",
        "train_lmac": "lmac_conv2d",
    }[script]
    yaml_path = str(HPARAMS / f"{yaml_name}.yaml")
    output = tmp_path / "run"
    path = RECIPES / f"{script}.py"
    argv = [
        str(path),
        yaml_path,
        "--data_folder",
        str(tiny_synthetic),
        "--output_folder",
        str(output),
    ]
    monkeypatch.setattr(sys, "argv", argv + ["--batch_size", "four"])
    with pytest.raises(
        ValueError, match=rf"--batch_size 'four': batch_size is a number in {re.escape(yaml_path)}"
    ):
        runpy.run_path(str(path), run_name="__main__")
    assert not output.exists()


def test_old_inference_yamls_find_the_brains_in_the_scripts():
    """Inference yamls written before the Brains moved name recipes.train_l2i.L2I (and PIQ,
    LMAC). Mutation: the re-export dropped."""
    assert (train_l2i.L2I, train_piq.PIQ, train_lmac.LMAC) == (L2I, PIQ, LMAC)


def test_a_dead_dictionary_is_refused_and_a_useless_one_warned_of(caplog):
    """An amortized run whose ReLUs died (rel_err 1.00 at a high lr) saved a dictionary of
    zeros, without a word: L2I on it explains nothing. No positive entry: a ValueError; a
    relative error >= 0.95 on the valid frames: a warning; a working one: silence."""
    from recipes import train_nmf

    with pytest.raises(ValueError, match=r"amortized dictionary has no positive entry \(valid relative error 1\.000\)"):
        train_nmf.check_dictionary(torch.zeros(4, 2), 1.0, "amortized")
    W = torch.zeros(4, 2)
    W[1, 0] = 1e-6  # one live entry
    with caplog.at_level("WARNING", logger=train_nmf.logger.name):
        train_nmf.check_dictionary(W, 0.94, "mu")
        assert not caplog.records
        train_nmf.check_dictionary(W, 0.95, "mu")
    (record,) = caplog.records
    assert "reconstructs almost nothing of the valid frames (relative error 0.950)" in record.getMessage()


def test_amortized_trains_the_encoder_and_the_dictionary(amortized_run):
    """The run keeps its best epoch (1) and its last (3): both modules moved between them.
    Mutations: the encoder's output detached (H from the initial encoder all along, the
    dictionary alone trained); the decoder's weights frozen."""
    kept = amortized_run["kept"]
    assert {amortized_run["best"], AMORTIZED["epochs"]} <= set(kept) and len(kept) >= 2
    first, last = kept[min(kept)], kept[max(kept)]
    for name in ("nmf_encoder.ckpt", "nmf_decoder.ckpt"):
        before = torch.load(first / name, weights_only=True)
        after = torch.load(last / name, weights_only=True)
        moved = [key for key in before if not torch.equal(before[key], after[key])]
        assert moved, f"{name}: no weight changed between epochs {min(kept)} and {max(kept)}"
