"""L-MAC's loss options, checkpoints, lr schedule and saved interpretations, by hand (audit).

Each test runs the recipe's own methods (L-MAC's `interpretation_loss` and `load_frozen`,
the base's `on_stage_end`, `on_evaluate_start`, `save_interpretations`, the training
flow's `fit_interpreter` and `export_trained`) on hand-made parts, a real speechbrain
Checkpointer and real files under tmp_path; the expected values are worked out in the test
with Python's math, never with the code under test.
"""

import contextlib
import json
import math
import re
import types

import numpy as np
import pytest
import soundfile as sf
import speechbrain as sb
import torch
from conftest import ReadsTwoBins, minimal_interpreter_hparams, two_bin_head
from speechbrain.nnet.schedulers import ReduceLROnPlateau
from speechbrain.processing.features import ISTFT, STFT
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.epoch_loop import EpochCounter

from recipes.core.pipeline import spectrogram
from recipes.interpreters import base, training
from recipes.interpreters.base import InterpreterBrain
from recipes.interpreters.lmac import LMAC

STFT_ARGS = {"sample_rate": 16000, "n_fft": 512, "hop_length": 16, "win_length": 32}
BIN_A, BIN_B = (1, 2), (3, 0)  # the evidence of class 0 and of class 1 in X (B, 4 frames, 3 bins)




def lse(*values):
    """log sum exp on Python floats."""
    return math.log(sum(math.exp(v) for v in values))


def bare(brain_class, **hparams):
    """A Brain of `brain_class` without its set-up: the hparams given."""
    brain = object.__new__(brain_class)
    brain.hparams = types.SimpleNamespace(**hparams)
    brain.modules = torch.nn.ModuleDict()
    brain.device = "cpu"
    brain.evaluation_ctx = contextlib.nullcontext()
    brain.checkpointer = None
    brain.label_encoder = None
    return brain


# ---------------------------------------------------------------- the loss options
@pytest.mark.parametrize("domain", [None, "log", "magnitude"])
@pytest.mark.parametrize("kind", ["neg_ce", "not_class"])
@pytest.mark.parametrize("weighting", [None, "bins", "input"])
def test_lmac_loss_terms_follow_out_loss_l1_weighting_and_mask_domain(domain, kind, weighting):
    """Guards that `out_loss`, `l1_weighting` (default bins) and `mask_domain` (default log)
    reach `LMAC.interpretation_loss`, with l_in_w / l_out_w / reg_w_l1 / classifier_temp
    each on its own term. One clip: X[a] = 3, X[b] = 1, 0 elsewhere (12 bins); the mask is
    0.25 at a, 1 at b, 0.5 elsewhere; class y = 0. By hand, in the log domain M X has
    (a, b) = (0.75, 1) and (1 - M) X (2.25, 0); in the magnitude domain log1p(m (e^X - 1)):
    a = log1p(0.25 (e^3 - 1)) and log1p(0.75 (e^3 - 1)), b = 1 and 0. The classifier's
    logits are (2 a, 2 b, 1) / T with T = 2. mean|M| = (10 * 0.5 + 0.25 + 1) / 12, the share
    of X kept = (0.25 * 3 + 1 * 1) / (3 + 1)."""
    extra = {}
    if domain is not None:
        extra["mask_domain"] = domain
    if weighting is not None:
        extra["l1_weighting"] = weighting
    brain = bare(
        LMAC,
        embedding_model=ReadsTwoBins(),
        classifier=two_bin_head(),
        compute_fbank=None,
        use_melspectra=False,
        classifier_temp=2.0,
        l_in_w=1.5,
        l_out_w=0.5,
        reg_w_l1=2.0,
        out_loss=kind,
        **extra,
    )
    brain.finetuning = False
    X = torch.zeros(1, 4, 3)
    X[0, BIN_A[0], BIN_A[1]], X[0, BIN_B[0], BIN_B[1]] = 3.0, 1.0
    M = torch.full((1, 4, 3), 0.5)
    M[0, BIN_A[0], BIN_A[1]], M[0, BIN_B[0], BIN_B[1]] = 0.25, 1.0
    outputs = {"X": X, "mask": M, "classes": torch.tensor([0])}
    terms = brain.interpretation_loss(outputs, None, sb.Stage.VALID)

    if domain == "magnitude":
        a_in, b_in = math.log1p(0.25 * math.expm1(3.0)), 1.0
        a_out, b_out = math.log1p(0.75 * math.expm1(3.0)), 0.0
    else:
        a_in, b_in, a_out, b_out = 0.75, 1.0, 2.25, 0.0
    T = 2.0
    f_in = (2 * a_in / T, 2 * b_in / T, 1 / T)
    f_out = (2 * a_out / T, 2 * b_out / T, 1 / T)
    ce_in = lse(*f_in) - f_in[0]
    if kind == "neg_ce":
        out = -(lse(*f_out) - f_out[0])
    else:  # -log(1 - p_y)
        out = lse(*f_out) - lse(f_out[1], f_out[2])
    size = (0.25 * 3 + 1 * 1) / 4 if weighting == "input" else (10 * 0.5 + 0.25 + 1) / 12
    assert terms["loss_in"].item() == pytest.approx(1.5 * ce_in, rel=1e-5)
    assert terms["loss_out"].item() == pytest.approx(0.5 * out, rel=1e-5)
    assert terms["loss_l1"].item() == pytest.approx(2.0 * size, rel=1e-5)


def test_lmac_finetuning_starts_from_the_given_interpreter(tmp_path):
    """Guards `finetuning: True`: `load_frozen` loads `finetune_from`'s psi (the trained
    L-MAC the stage starts from) into the Brain's psi. psi is one weight set to 0; the file
    given holds 7, so after load_frozen it is 7."""
    psi = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        psi.weight.fill_(0.0)
    start = tmp_path / "trained"
    start.mkdir()
    torch.save({"weight": torch.full((1, 1), 7.0)}, start / "psi_model.ckpt")
    brain = bare(
        LMAC, l_in_w=1.0, l_out_w=1.0, reg_w_l1=1.0, g_w=1.0, out_loss="neg_ce",
        finetuning=True, finetuning_reference="clip", add_wham_noise=True,
        finetune_from=str(start / "psi_model.ckpt"),
    )
    brain.modules["psi"] = psi
    brain.checkpointer = Checkpointer(str(tmp_path / "save"), recoverables={"psi_model": psi})
    brain.load_frozen()
    assert brain.finetuning
    assert psi.weight.item() == 7.0


def test_lmac_finetuning_guides_the_clips_close_to_their_clean_reference_only():
    """Guards the fine-tuning terms: a clip whose masked-in X has cosine similarity >=
    crosscor_th (0.5) with its clean X_c is guided (g_w BCE towards X_c >= bin_th max X_c,
    no L1 term), the others keep the L1 term; both terms are batch means. Two clips of 2 x 2
    bins. Clip 0: X = X_c = ((2, 0), (0, 1)), mask 0.5 everywhere: M X = X_c / 2, cosine 1,
    guided; target (bin_th 0.35: >= 0.7) ((1, 0), (0, 1)); logits ((1, -1), (0, 2)): BCE =
    (2 log(1 + e^-1) + log 2 + log(1 + e^-2)) / 4. Clip 1: X_c = ((1, 0), (0, 0)), X = ((0, 1),
    (1, 1)): cosine 0, not guided; mask 0.25, so mean|M| = 0.25. loss_guide = g_w BCE_0 / 2,
    loss_l1 = reg_w_l1 0.25 / 2, guided_share (1, 0)."""
    X_clean = torch.tensor([[[2.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]]])
    clean_stft = torch.stack([torch.expm1(X_clean), torch.zeros_like(X_clean)], dim=-1)  # (2, 2, 2, 2)
    brain = bare(
        LMAC,
        embedding_model=torch.nn.Flatten(),
        classifier=torch.nn.Linear(4, 3),
        compute_fbank=None,
        use_melspectra=False,
        classifier_temp=1.0,
        compute_stft=lambda wavs: clean_stft,  # the clean clips' STFT
        l_in_w=1.0, l_out_w=1.0, reg_w_l1=4.0, g_w=2.0, out_loss="neg_ce",
        crosscor_th=0.5, bin_th=0.35,
    )
    brain.finetuning, brain.ground_truth = True, None
    X = torch.tensor([[[2.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 1.0]]])
    mask = torch.stack([torch.full((2, 2), 0.5), torch.full((2, 2), 0.25)])
    logits = torch.tensor([[[1.0, -1.0], [0.0, 2.0]], [[0.0, 0.0], [0.0, 0.0]]])
    outputs = {"X": X, "mask": mask, "logits": logits, "classes": torch.tensor([0, 0])}
    batch = types.SimpleNamespace(id=["a", "b"], sig=(torch.zeros(2, 100), torch.ones(2)))
    terms = brain.interpretation_loss(outputs, batch, sb.Stage.TRAIN)
    bce_0 = (2 * math.log1p(math.exp(-1.0)) + math.log(2.0) + math.log1p(math.exp(-2.0))) / 4
    assert terms["loss_guide"].item() == pytest.approx(2.0 * bce_0 / 2, rel=1e-5)
    assert terms["loss_l1"].item() == pytest.approx(4.0 * 0.25 / 2, rel=1e-5)
    assert brain.interpreter_metrics(outputs, None)["guided_share"].tolist() == [1.0, 0.0]


# ---------------------------------------------------------------- checkpoints and the lr
def lmac_brain(tmp_path, **extra):
    """An L-MAC built by its own __init__ (a one-weight psi, a real Checkpointer holding psi
    and the epoch counter, a file train log); `extra`: more hparams."""
    psi = torch.nn.Linear(1, 1, bias=False)
    counter = EpochCounter(10)
    hparams = minimal_interpreter_hparams(
        tmp_path,
        epoch_counter=counter,
        output_folder=str(tmp_path),
        l_in_w=1.0, l_out_w=1.0, reg_w_l1=1.0, g_w=1.0,
        out_loss="neg_ce",
        finetuning=False,
        **extra,
    )
    brain = LMAC(
        modules={"psi": psi},
        hparams=hparams,
        run_opts={"device": "cpu"},
        checkpointer=Checkpointer(str(tmp_path / "save"), recoverables={"psi_model": psi, "counter": counter}),
    )
    brain.optimizer = torch.optim.SGD(psi.parameters(), lr=0.1)
    return brain


def valid_epochs(brain, script):
    """Runs the valid stage's end for each (fid_in, loss) of `script`: psi's weight is the
    epoch's number, the valid Fid-In of its clips (two clips, both `fid_in`) goes through
    the real StageStats as compute_objectives adds it."""
    psi = brain.modules["psi"]
    for epoch, (fid_in, loss) in enumerate(script, start=1):
        brain.hparams.epoch_counter.current = epoch
        brain.on_stage_start(sb.Stage.TRAIN, epoch)
        brain.on_stage_end(sb.Stage.TRAIN, 10.0 + epoch, epoch)  # the train loss: 10 + epoch
        with torch.no_grad():
            psi.weight.fill_(float(epoch))
        brain.on_stage_start(sb.Stage.VALID, epoch)
        brain.stage_stats.add_values({"fid_in": torch.tensor([fid_in, fid_in])})
        brain.on_stage_end(sb.Stage.VALID, loss, epoch)
    with torch.no_grad():
        psi.weight.fill_(-1.0)  # what the last step of training left: not a checkpoint


def logged_lrs(tmp_path):
    text = (tmp_path / "train_log.txt").read_text()
    return [float(v) for v in re.findall(r"^epoch: \d+, lr: ([0-9.e+-]+)", text, flags=re.M)]


def test_lmac_halves_the_lr_on_a_plateau_of_valid_fid_in_not_of_the_loss(tmp_path):
    """Guards the lr schedule's figure and the per-epoch log: L-MAC halves the lr when valid Fid-In stops rising
    (`lr_plateau_key`), whatever selects its checkpoint (here the loss, which falls every
    epoch), and logs the lr each epoch trained with. ReduceLROnPlateau (patience 0, from
    epoch 1) gets -Fid-In: Fid-In 0.5, 0.4, 0.6, 0.7 -> epoch 2 is worse than epoch 1's
    anchor: the lr halves after it (0.1 -> 0.05); epochs 3 and 4 improve: it stays. Logged:
    0.1, 0.1, 0.05, 0.05; the optimizer ends at 0.05. Each epoch's log line holds its train
    loss (scripted: 10 + epoch) and its valid Fid-In."""
    brain = lmac_brain(
        tmp_path,
        checkpoint_key="loss",
        lr_annealing=ReduceLROnPlateau(factor=0.5, patience=0, dont_halve_until_epoch=0),
    )
    valid_epochs(brain, [(0.5, 3.0), (0.4, 2.0), (0.6, 1.0), (0.7, 0.5)])
    assert logged_lrs(tmp_path) == pytest.approx([0.1, 0.1, 0.05, 0.05])
    text = (tmp_path / "train_log.txt").read_text()
    for epoch, fid_in in ((1, 0.5), (2, 0.4), (3, 0.6), (4, 0.7)):  # each epoch's own figures
        assert f"epoch: {epoch}, lr: " in text
        line = next(row for row in text.splitlines() if row.startswith(f"epoch: {epoch}, "))
        train = re.search(r"train loss: ([-0-9.e+]+)", line)
        valid = re.search(r"valid fid_in: ([-0-9.e+]+)", line)
        assert train and float(train.group(1)) == pytest.approx(10.0 + epoch), line
        assert valid and float(valid.group(1)) == pytest.approx(fid_in), line
    assert brain.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


@pytest.mark.parametrize(
    "key, script, best, averaged",
    [
        # the highest valid Fid-In: epochs 2 (0.9) and 3 (0.7); 4 (0.2) is kept as the most
        # recent (speechbrain's keep_recent) but is not among the best two
        ("fid_in", [(0.5, 9.0), (0.9, 9.0), (0.7, 9.0), (0.2, 9.0)], 2, [2, 3]),
        # the lowest valid loss: epochs 3 (0.1) and 1 (0.3); 4 is kept as the most recent
        ("loss", [(0.5, 0.3), (0.5, 0.4), (0.5, 0.1), (0.5, 0.8)], 3, [3, 1]),
    ],
)
def test_lmac_tests_the_mean_of_its_best_checkpoints_not_the_most_recent(tmp_path, key, script, best, averaged):
    """Guards which checkpoints `average_checkpoints: 2` averages, the epoch each is saved
    with, and what the test stage then logs and writes: psi's weight at epoch k is k, so the
    test stage's weight is the mean of the best two epochs' numbers (computed here from the
    script), the epoch loaded is the best one, and the log says which were averaged."""
    brain = lmac_brain(tmp_path, checkpoint_key=key, average_checkpoints=2)
    valid_epochs(brain, script)
    saved = sorted(json.loads(json.dumps(ckpt.meta["epoch"])) for ckpt in brain.checkpointer.list_checkpoints())
    assert saved == sorted({*averaged, len(script)})  # the best two and the most recent
    brain.on_evaluate_start()
    assert brain.modules["psi"].weight.item() == pytest.approx(sum(averaged) / 2)
    assert brain.averaged_epochs == averaged
    assert brain.hparams.epoch_counter.current == best
    brain.on_stage_start(sb.Stage.TEST)
    brain.stage_stats.add_values({"fid_in": torch.tensor([1.0, 0.0])})
    brain.on_stage_end(sb.Stage.TEST, 0.25)
    log = (tmp_path / "train_log.txt").read_text()
    assert f"Epoch loaded: {best}, epochs averaged: {averaged[0]} + {averaged[1]} - test" in log
    written = json.loads((tmp_path / "test_metrics.json").read_text())
    assert written["fid_in"] == 0.5 and written["loss"] == 0.25


# ---------------------------------------------------------------- saved interpretations
def saving_brain(tmp_path, n_wanted, period):
    """A bare InterpreterBrain that saves interpretations in the magnitude domain, where a
    constant mask m scales the interpretation's waveform by m (the ISTFT is linear)."""
    return bare(
        InterpreterBrain,
        n_interpretations_to_save=n_wanted,
        interpret_period=period,
        epoch_counter=types.SimpleNamespace(current=1),
        output_folder=str(tmp_path),
        sample_rate=16000,
        compute_istft=ISTFT(**STFT_ARGS),
        classifier_temp=1.0,
        mask_domain="magnitude",
    )


WAVS = torch.randn(3, 4000, generator=torch.Generator().manual_seed(0)) * 0.2
LEVELS = (0.5, 0.25, 0.1)  # clip i's constant mask
SCORES = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]])  # classes 0, 1, 2


def batch_of(clips, ids):
    X, X_stft = spectrogram(WAVS[clips], STFT(**STFT_ARGS))
    mask = torch.stack([torch.full_like(X[0], LEVELS[c]) for c in clips])
    scores = SCORES[clips]
    outputs = {"X": X, "X_stft": X_stft, "mask": mask, "wavs": WAVS[clips], "scores": scores,
               "classes": scores.argmax(dim=1)}
    return outputs, types.SimpleNamespace(id=ids)


def test_save_interpretations_saves_the_first_clips_of_the_stage_with_their_own_masks(tmp_path, monkeypatch):
    """Guards which clips are saved and what: n_interpretations_to_save 3 over batches of 2
    clips saves the stage's first 3 (2 of batch 1, 1 of batch 2, none of batch 3), each under
    its own id, its interpretation its own mask's (a constant m in the magnitude domain: m
    times the clip, to the STFT round trip and 16 bits), its title its own class's name and
    softmax probability (scores (2, 0, 0): e^2 / (e^2 + 2); (0, 3, 0): e^3 / (e^3 + 2);
    (0, 0, 1): e / (e + 2))."""
    titles = {}
    real = base.save_interpretation

    def recording(folder, clip_id, **kwargs):  # the real writer; its titles noted on the way
        titles[clip_id] = kwargs["title"]
        return real(folder, clip_id, **kwargs)

    monkeypatch.setattr(base, "save_interpretation", recording)
    brain = saving_brain(tmp_path, n_wanted=3, period=1)
    brain.label_encoder = types.SimpleNamespace(ind2lab={0: "dog", 1: "rain", 2: "siren"})
    brain.on_stage_start(sb.Stage.TEST)
    for clips, ids in (([0, 1], ["c0", "c1"]), ([2, 0], ["c2", "c3"]), ([1, 2], ["c4", "c5"])):
        brain.save_interpretations(*batch_of(clips, ids), sb.Stage.TEST)
    folder = tmp_path / "interpretations" / "test"
    assert sorted(p.name for p in folder.glob("*_interpretation.wav")) == [
        "c0_interpretation.wav", "c1_interpretation.wav", "c2_interpretation.wav"
    ]
    assert len(list(folder.glob("*.png"))) == 3
    for clip in range(3):
        audio, rate = sf.read(folder / f"c{clip}_interpretation.wav", dtype="float64")
        assert rate == 16000
        expected = LEVELS[clip] * WAVS[clip].double().numpy()
        assert np.abs(audio - expected).max() < 2e-3, clip
    p = [math.e**2 / (math.e**2 + 2), math.e**3 / (math.e**3 + 2), math.e / (math.e + 2)]
    assert titles == {
        "c0": f"c0: predicted dog (p={p[0]:.2f})", "c1": f"c1: predicted rain (p={p[1]:.2f})",
        "c2": f"c2: predicted siren (p={p[2]:.2f})",
    }


def test_interpretations_are_saved_every_interpret_period_epochs_and_at_test(tmp_path):
    """Guards `_due_for_saving`: with interpret_period 2, valid epochs 1 to 4 save at
    epochs 2 and 4 only (epoch % 2 == 0), and the test stage always saves."""
    brain = saving_brain(tmp_path, n_wanted=1, period=2)
    for epoch in range(1, 5):
        brain.hparams.epoch_counter.current = epoch
        brain.on_stage_start(sb.Stage.VALID, epoch)
        brain.save_interpretations(*batch_of([0], [f"e{epoch}"]), sb.Stage.VALID)
    brain.on_stage_start(sb.Stage.TEST)
    brain.save_interpretations(*batch_of([0], ["t"]), sb.Stage.TEST)
    folders = sorted(p.name for p in (tmp_path / "interpretations").iterdir())
    assert folders == ["epoch_2", "epoch_4", "test"]
    assert (tmp_path / "interpretations" / "epoch_2" / "e2_interpretation.wav").is_file()


# ---------------------------------------------------------------- the training flow
class RecordingBrain:
    """Records what the training flow hands to Brain.fit (the datasets and loader options)."""

    def fit(self, **kwargs):
        self.fitted = kwargs


def test_fit_interpreter_trains_on_train_and_selects_on_valid():
    """Guards `fit_interpreter`: the train fold with the train loader's options, the valid
    fold (which selects the checkpoint) with the valid loader's, the yaml's epoch counter;
    the test fold is not seen."""
    brain = RecordingBrain()
    hparams = {
        "epoch_counter": "the counter",
        "train_dataloader_opts": {"shuffle": True},
        "valid_dataloader_opts": {"shuffle": False},
        "test_dataloader_opts": {"batch_size": 1},
    }
    training.fit_interpreter(brain, hparams, {"train": "TRAIN", "valid": "VALID", "test": "TEST"})
    assert brain.fitted == {
        "epoch_counter": "the counter",
        "train_set": "TRAIN",
        "valid_set": "VALID",
        "train_loader_kwargs": {"shuffle": True},
        "valid_loader_kwargs": {"shuffle": False},
    }


def test_export_trained_writes_into_the_folder_it_is_given(tmp_path, monkeypatch):
    """Guards `export_trained(brain, folder)`: psi's weights (one weight, 3.0) go to
    `<folder>/psi_model.ckpt` and the inference folder is `<folder>/inference`, not the run's
    output folder."""
    psi = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        psi.weight.fill_(3.0)
    brain = bare(InterpreterBrain, output_folder=str(tmp_path / "run"))
    brain.modules["psi"] = psi
    (tmp_path / "run").mkdir()
    (tmp_path / "other").mkdir()
    inference = []
    monkeypatch.setattr(training, "export_inference", lambda brain_, folder: inference.append(folder) or folder)
    returned = training.export_trained(brain, str(tmp_path / "other"))
    assert torch.load(tmp_path / "other" / "psi_model.ckpt", weights_only=True)["weight"].item() == 3.0
    assert not (tmp_path / "run" / "psi_model.ckpt").exists()
    assert inference == [str(tmp_path / "other" / "inference")] and returned == inference[0]
