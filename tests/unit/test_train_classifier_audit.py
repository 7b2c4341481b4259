"""Mutation audit of `recipes/train_classifier.py` (the frozen classifier the interpreters explain).

Each test pins a value, a file or an error message that a wrong one-line edit of the recipe
changed without any older test noticing. Expected values never come from the code under test:
confusion matrices are counted with a Python loop, the SNR of an augmented clip is measured with
numpy (least squares on the target event and the background read back from their wav files),
learning rates follow ReduceLROnPlateau's rule by hand, and the datasets are written here, sample
by sample, so every duration, rate and path is known. Brains are made without their set-up
(`conftest.bare_brain`), except for two short `main` calls on a 10-clip dataset that train nothing.
"""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import bare_brain
from hyperpyyaml import load_hyperpyyaml
from speechbrain.augment.augmenter import Augmenter
from speechbrain.augment.freq_domain import SpectrogramDrop
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.nnet.schedulers import ReduceLROnPlateau
from speechbrain.processing.features import STFT
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.epoch_loop import EpochCounter
from speechbrain.utils.train_logger import FileTrainLogger

from data_prep.wham_prepare import WhamMixer
from recipes import train_classifier
from recipes.core.brains import build_brain
from recipes.core.startup import prepare_run
from recipes.reporting.figures import plot_confusion_matrix
from recipes.train_classifier import ClassifierBrain

Stage = train_classifier.sb.Stage
REPO = Path(__file__).resolve().parents[2]
CONV2D_YAML = REPO / "hparams" / "classifier_conv2d.yaml"
SR = 16000
N_SAMPLES = 8000  # 0.5 s clips


def _write_dataset(root, folds=(1, 2, 3, 4, 5), background_frames=None, background_rate=SR,
                   same_background=False, silent_target=()):
    """An ESC-50-layout dataset with separate sources: two clips per fold (classes 0 and 1).

    Target: a sine (class 0: 440 Hz, class 1: 900 Hz) of amplitude 0.5 with a random phase;
    background: white noise, `background_frames(k)` samples long at `background_rate` (the same
    noise for every clip with `same_background`). Returns the root and {id: (fold, class,
    target, background)} as written (float32)."""
    root = Path(root)
    for folder in ("meta", "audio", "sources"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(3)
    shared_noise = (0.1 * rng.standard_normal(N_SAMPLES)).astype("float32")
    esc50 = ["filename,fold,target,category,esc10,src_file,take"]
    truth = ["id,target_path,background_path,onset_s,offset_s,snr_db"]
    clips = {}
    for k, fold in enumerate(np.repeat(folds, 2)):
        cls = k % 2
        clip_id = f"{fold}-{100 + k}-A-{cls}"
        time = np.arange(N_SAMPLES) / SR
        target = 0.5 * np.sin(2 * np.pi * (440 + 460 * cls) * time + rng.uniform(0, 6))
        target = np.zeros(N_SAMPLES) if clip_id in silent_target else target
        n_background = N_SAMPLES if background_frames is None else background_frames(k)
        background = shared_noise if same_background else 0.1 * rng.standard_normal(n_background)
        target, background = target.astype("float32"), background.astype("float32")
        mixture = target + np.resize(background, N_SAMPLES)
        sf.write(root / "audio" / f"{clip_id}.wav", mixture, SR, subtype="FLOAT")
        sf.write(root / "sources" / f"{clip_id}_target.wav", target, SR, subtype="FLOAT")
        sf.write(root / "sources" / f"{clip_id}_background.wav", background, background_rate,
                 subtype="FLOAT")
        esc50.append(f"{clip_id}.wav,{fold},{cls},{'ab'[cls]},False,{100 + k},A")
        truth.append(f"{clip_id},sources/{clip_id}_target.wav,sources/{clip_id}_background.wav,"
                     "0.0,0.5,0.0")
        clips[clip_id] = (int(fold), cls, target, background)
    (root / "meta" / "esc50.csv").write_text("\n".join(esc50) + "\n")
    (root / "meta" / "ground_truth.csv").write_text("\n".join(truth) + "\n")
    return root, clips


def _train_set(clips, folds=(1, 2, 3)):
    """A DynamicItemDataset of the clips of `folds`, with the keys the recipe's manifests give."""
    data = {
        clip_id: {"sig": torch.from_numpy(target + background[:N_SAMPLES]),
                  "class_string": "ab"[cls], "class_string_encoded": torch.tensor([cls])}
        for clip_id, (fold, cls, target, background) in clips.items() if fold in folds
    }
    return DynamicItemDataset(data, output_keys=["id", "sig", "class_string_encoded"])


def _hparams(root, tmp_path, signal_length_s=0.5):
    return {"data_folder": str(root), "manifest_folder": str(tmp_path / "manifest"),
            "sample_rate": SR, "signal_length_s": signal_length_s}


def _loop_confusion(predictions, targets, n_classes):
    counts = [[0] * n_classes for _ in range(n_classes)]
    for predicted, true in zip(predictions, targets):
        counts[true][predicted] += 1
    return counts


# ---------------------------------------------------------------------------- confusion_matrix


def test_confusion_matrix_rows_are_true_classes_columns_predicted_counted_with_a_loop():
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 4, (60,), generator=g)
    predictions = torch.where(torch.rand(60, generator=g) < 0.5, targets,
                              torch.randint(0, 4, (60,), generator=g))
    counts = train_classifier.confusion_matrix(predictions, targets, 5)  # class 4: never seen
    assert counts.dtype == torch.long  # counts, written to test_accuracy.json as integers
    assert counts.tolist() == _loop_confusion(predictions.tolist(), targets.tolist(), 5)


# ---------------------------------------------------------------------------- read_source_paths


def test_read_source_paths_error_names_the_missing_file_and_both_fixes(tmp_path):
    with pytest.raises(ValueError) as raised:
        train_classifier.read_source_paths(str(tmp_path))
    message = str(raised.value)
    assert str(tmp_path / "meta" / "ground_truth.csv") in message
    assert "synthetic dataset" in message and "--train_on_sources False" in message
    assert isinstance(raised.value.__cause__, FileNotFoundError)


# ------------------------------------------------------------------ prepare_source_augmentation


def test_backgrounds_csv_lists_the_training_clips_backgrounds_only_absolute_with_durations(
    tmp_path, monkeypatch
):
    """Every fold is in ground_truth.csv: only folds 1-3 (the training set) may be listed, in
    the training set's order, each with its own background's absolute path and duration."""
    frames = [8000 + 777 * k for k in range(10)]  # every background a different length
    root, clips = _write_dataset(tmp_path / "data", background_frames=frames.__getitem__)
    monkeypatch.chdir(tmp_path)  # a relative --data_folder: the csv must still hold absolute paths
    hparams = _hparams(Path("data"), tmp_path)
    train_set = _train_set(clips)
    path = train_classifier.prepare_source_augmentation(hparams, train_set)

    assert path == str(tmp_path / "manifest" / "train_backgrounds.csv")
    expected = ["ID,duration,wav,wav_format,wav_opts"]
    for k, (clip_id, (fold, *_)) in enumerate(clips.items()):
        if fold <= 3:
            wav = tmp_path / "data" / "sources" / f"{clip_id}_background.wav"
            expected.append(f"{clip_id},{frames[k] / SR:.4f},{wav},wav,")
    assert Path(path).read_text(encoding="utf-8") == "\n".join(expected) + "\n"
    assert len(expected) == 1 + 6


@pytest.mark.parametrize("signal_length_s", [0.3, 1.001])  # 16000 x 1.001 = 16015.999...
def test_target_sig_is_the_clips_own_target_event_peak_normalised_at_signal_length(
    tmp_path, signal_length_s
):
    """Cropped (0.3 s) or zero-padded (1.001 s) to the manifests' round(rate x length) samples,
    the length of the mixtures it is concatenated with."""
    root, clips = _write_dataset(tmp_path / "data")
    train_set = _train_set(clips)
    hparams = _hparams(root, tmp_path, signal_length_s)
    train_classifier.prepare_source_augmentation(hparams, train_set)
    n = {0.3: 4800, 1.001: 16016}[signal_length_s]
    items = list(train_set)
    assert set(items[0]) == {"id", "sig", "target_sig", "class_string", "class_string_encoded"}
    for item in items:
        target = np.zeros(n)
        target[: min(n, N_SAMPLES)] = clips[item["id"]][2][:n]
        expected = target / np.abs(target).max()
        assert item["target_sig"].shape == (n,)
        np.testing.assert_allclose(item["target_sig"].numpy(), expected, atol=1e-6)


def test_training_clips_without_sources_are_named_five_at_most(tmp_path):
    root, _ = _write_dataset(tmp_path / "data")
    foreign = [f"9-{k}-A-0" for k in range(7)]
    data = {clip_id: {"sig": torch.zeros(4)} for clip_id in foreign}
    train_set = DynamicItemDataset(data, output_keys=["id"])
    with pytest.raises(ValueError, match="regenerate the synthetic dataset") as raised:
        train_classifier.prepare_source_augmentation(_hparams(root, tmp_path), train_set)
    assert str(foreign[:5]) in str(raised.value) and foreign[5] not in str(raised.value)
    assert not (tmp_path / "manifest").exists()


def test_backgrounds_at_another_rate_than_the_recipe_are_refused(tmp_path):
    """The targets are at 16 kHz, the backgrounds at 8 kHz: AddNoise would mix them unresampled."""
    root, clips = _write_dataset(tmp_path / "data", background_rate=8000)
    with pytest.raises(ValueError, match=r"sources are at \[8000\] Hz but the recipe runs at "
                       r"sample_rate 16000"):
        train_classifier.prepare_source_augmentation(_hparams(root, tmp_path), _train_set(clips))
    assert not (tmp_path / "manifest").exists()


def test_a_background_path_with_a_comma_is_refused(tmp_path):
    root, clips = _write_dataset(tmp_path / "da,ta")
    with pytest.raises(ValueError, match="has a comma"):
        train_classifier.prepare_source_augmentation(_hparams(root, tmp_path), _train_set(clips))
    assert not (tmp_path / "manifest" / train_classifier.BACKGROUNDS_CSV).exists()


# --------------------------------------------------- training_waveforms: the SNR of the mixtures


@pytest.fixture(scope="module")
def sources_run(tmp_path_factory):
    """Folds 1-3 with one shared background noise, their csv written by the recipe, and a
    function giving the conv2d yaml's AddNoise / RandAmp for an SNR range and a gain."""
    tmp = tmp_path_factory.mktemp("sources_run")
    root, clips = _write_dataset(tmp / "data", same_background=True, silent_target=("1-101-A-1",))
    train_set = _train_set(clips)
    train_classifier.prepare_source_augmentation(_hparams(root, tmp), train_set)
    background = next(iter(clips.values()))[3].astype(np.float64)

    def augmentations(snr_low, snr_high, gain):
        overrides = {"data_folder": str(root), "output_folder": str(tmp), "emb_dim": 4,
                     "lin_neurons": 4, "out_n_neurons": 2, "signal_length_s": 0.5,
                     "background_snr_low": snr_low, "background_snr_high": snr_high,
                     "source_gain_low": gain, "source_gain_high": gain}
        with open(CONV2D_YAML, encoding="utf-8") as fin:
            hparams = load_hyperpyyaml(fin, overrides)
        return {"add_background": hparams["add_background"], "source_gain": hparams["source_gain"]}

    return {"train_set": train_set, "background": background, "augmentations": augmentations}


def _source_brain(augmentations, **hparams):
    brain = bare_brain(ClassifierBrain, train_on_sources=True, **augmentations, **hparams)
    brain.wham_mixer = None
    return brain


def _measured_snrs(wavs, targets, background):
    """Least squares of each augmented clip on (its target, the background): the SNR in dB of
    the two parts over the whole clip, and the fit's relative residual."""
    snrs, residuals = [], []
    for y, t in zip(wavs.double().numpy(), targets.double().numpy()):
        parts = np.stack([t, background], axis=1)
        (a, b), *_ = np.linalg.lstsq(parts, y, rcond=None)
        assert a > 0 and b > 0
        residuals.append(np.linalg.norm(y - parts @ [a, b]) / np.linalg.norm(y))
        snrs.append(20 * np.log10(np.linalg.norm(a * t) / np.linalg.norm(b * background)))
    return np.array(snrs), max(residuals)


def test_augmented_half_is_target_plus_background_at_the_yamls_snr_and_gain(sources_run):
    items = [item for item in sources_run["train_set"] if item["id"] != "1-101-A-1"][:4]
    batch = PaddedBatch(items)
    brain = _source_brain(sources_run["augmentations"](6.0, 6.0, 0.5))
    wavs = brain.training_waveforms(batch)
    assert wavs.shape == (8, N_SAMPLES) and torch.equal(wavs[:4], batch.sig.data)
    snrs, residual = _measured_snrs(wavs[4:], batch.target_sig.data, sources_run["background"])
    assert residual < 1e-4  # nothing but the clip's target event and the background
    np.testing.assert_allclose(snrs, 6.0, atol=0.01)  # 20 log10 of the amplitude ratio
    np.testing.assert_allclose(wavs[4:].abs().amax(dim=1).numpy(), 0.5, atol=1e-6)

    brain = _source_brain(sources_run["augmentations"](-5.0, 15.0, 1.0))
    torch.manual_seed(0)
    snrs, _ = _measured_snrs(brain.training_waveforms(batch)[4:], batch.target_sig.data,
                             sources_run["background"])
    assert (snrs > -5.01).all() and (snrs < 15.01).all() and np.ptp(snrs) > 0.5


def test_a_silent_target_event_gives_a_silent_clip_not_nan(sources_run):
    """Target silent: AddNoise scales the background to its zero RMS, RandAmp divides 0 by 0."""
    items = [item for item in sources_run["train_set"] if item["id"] == "1-101-A-1"]
    batch = PaddedBatch(items * 2)
    assert not batch.target_sig.data.any()
    wavs = _source_brain(sources_run["augmentations"](0.0, 0.0, 1.0)).training_waveforms(batch)
    assert torch.equal(wavs[2:], torch.zeros(2, N_SAMPLES))


def test_wham_noise_is_mixed_into_the_training_clips_at_wham_snr_db():
    g = torch.Generator().manual_seed(1)
    clean = torch.sin(torch.arange(4000.0)[None] * torch.tensor([[0.05], [0.11], [0.3]]))
    brain = bare_brain(ClassifierBrain, train_on_sources=False)
    brain.wham_mixer = WhamMixer(torch.randn(2, 4000, generator=g), snr_db=5.0)
    noisy = brain.training_waveforms(PaddedBatch([{"sig": sig} for sig in clean])).double()
    noise = noisy - clean.double()
    snr = 10 * np.log10(clean.double().pow(2).sum(1).numpy() / noise.pow(2).sum(1).numpy())
    np.testing.assert_allclose(snr, 5.0, atol=1e-3)


# ------------------------------------------------------------------------------ compute_forward


class _MeanOverFrames(torch.nn.Module):
    """X (B, frames, F) -> its mean over frames (B, F): every band of X counts."""

    def forward(self, X):
        return X.mean(dim=1)


def _forward_brain(augmentations, spectrogram_augment):
    torch.manual_seed(0)
    stft = STFT(sample_rate=SR, n_fft=1024, hop_length=11.6099, win_length=23.2199)
    drops = [SpectrogramDrop(drop_length_low=5, drop_length_high=20, replace="zeros", dim=1),
             SpectrogramDrop(drop_length_low=10, drop_length_high=80, replace="zeros", dim=2)]
    augmenter = Augmenter(parallel_augment=False, concat_original=False, min_augmentations=2,
                          max_augmentations=2, augment_prob=1.0, augmentations=drops)
    head = torch.nn.Linear(513, 3)
    brain = _source_brain(augmentations, embedding_model=_MeanOverFrames(), classifier=head,
                          compute_stft=stft, spectrogram_augment=spectrogram_augment,
                          spectrogram_augmenter=augmenter)
    brain.modules = torch.nn.ModuleDict({"embedding_model": _MeanOverFrames(), "classifier": head})
    return brain


def _clean_scores(brain, wavs):
    stft = brain.hparams.compute_stft(wavs)  # (B, frames, F, 2)
    X = torch.log1p(stft.pow(2).sum(-1).sqrt())
    return brain.modules.classifier(X.mean(dim=1))


def test_valid_and_test_clips_are_never_augmented(sources_run):
    batch = PaddedBatch(list(sources_run["train_set"])[:3])
    brain = _forward_brain(sources_run["augmentations"](0.0, 0.0, 1.0), spectrogram_augment=True)
    expected = _clean_scores(brain, batch.sig.data)
    with torch.no_grad():
        for stage in (Stage.VALID, Stage.TEST):
            scores = brain.compute_forward(batch, stage)
            assert scores.shape == (3, 3)
            torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
        train = brain.compute_forward(batch, Stage.TRAIN)  # doubled, bands zeroed
    assert train.shape == (6, 3) and not torch.allclose(train[:3], expected, atol=1e-3)


def test_spectrogram_bands_are_zeroed_in_training_when_asked(sources_run):
    batch = PaddedBatch(list(sources_run["train_set"])[:3])
    for augment in (False, True):
        brain = _forward_brain(sources_run["augmentations"](0.0, 0.0, 1.0), augment)
        brain.hparams.train_on_sources = False
        with torch.no_grad():
            scores = brain.compute_forward(batch, Stage.TRAIN)
            expected = _clean_scores(brain, batch.sig.data)
        assert torch.allclose(scores, expected, atol=1e-5) != augment


# --------------------------------------------------- compute_objectives, stage_accuracy, buffers


def test_augmented_copies_get_the_batchs_targets_in_the_batchs_order():
    """Scores (2B, N) are the mixtures then their augmented copies: targets [t; t], not each
    target twice in a row."""
    batch = PaddedBatch([{"class_string_encoded": torch.tensor([c])} for c in (0, 2)])
    scores = torch.tensor([[3.0, 0, 1], [0, 1, 2], [0, 5, 1], [4, 0, 0]])

    def cost(predictions, targets):  # the cnn14 yaml's loss on (B, 1, N) logits, (B, 1) targets
        return torch.nn.functional.cross_entropy(predictions[:, 0], targets[:, 0])

    brain = bare_brain(ClassifierBrain, compute_cost=cost, classifier_temp=0.5)
    brain.stage_predictions, brain.stage_targets = [], []
    loss = brain.compute_objectives(scores, batch, Stage.TRAIN)
    by_hand = -sum(math.log(math.exp(row[t]) / sum(math.exp(v) for v in row))
                   for row, t in zip(scores.tolist(), (0, 2, 0, 2))) / 4
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    assert brain.stage_targets[0].tolist() == [0, 2, 0, 2]
    assert brain.stage_predictions[0].tolist() == [0, 2, 1, 0]  # each row's largest score


def test_accuracy_is_over_all_clips_of_the_stage_not_a_mean_of_batches():
    brain = bare_brain(ClassifierBrain)
    brain.stage_predictions = [torch.tensor([0, 1, 2]), torch.tensor([1])]
    brain.stage_targets = [torch.tensor([0, 1, 2]), torch.tensor([0])]
    assert brain.stage_accuracy() == pytest.approx(3 / 4)


def test_each_stage_starts_with_empty_buffers_and_only_validation_recalibrates():
    brain = bare_brain(ClassifierBrain, precise_bn_batches=2)
    brain.modules = torch.nn.ModuleDict({"norm": torch.nn.BatchNorm1d(2)})
    brain.calibration_loader = None  # recalibrating would say it needs the training batches
    for stage in (Stage.TRAIN, Stage.TEST):
        brain.stage_predictions, brain.stage_targets = [torch.tensor([1])], [torch.tensor([1])]
        brain.on_stage_start(stage, epoch=1)
        assert brain.stage_predictions == [] and brain.stage_targets == []
    with pytest.raises(ValueError, match="calibration_loader"):
        brain.on_stage_start(Stage.VALID, epoch=1)


class _LevelNorm(torch.nn.Module):
    """X (B, frames, F) -> BatchNorm of each clip's mean log1p magnitude (B, 1)."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(1)

    def forward(self, X):
        return self.norm(X.mean(dim=(1, 2)).unsqueeze(1))


def test_precise_batchnorm_sees_the_training_batches_with_their_augmented_half(sources_run):
    """`precise_bn_batches` recomputes the statistics over batches "built as in training": the
    mixtures and the target events mixed with the background at 6 dB and gain 0.5, written out
    here by hand: (1 - f) t + f rms(t) / rms(n) n, f = 1 / (10^(6/20) + 1), then peak 0.5."""
    items = [item for item in sources_run["train_set"] if item["id"] != "1-101-A-1"][:4]
    batch = PaddedBatch(items)
    stft = STFT(sample_rate=SR, n_fft=1024, hop_length=11.6099, win_length=23.2199)
    embedding, head = _LevelNorm(), torch.nn.Linear(1, 2)
    brain = _source_brain(sources_run["augmentations"](6.0, 6.0, 0.5), embedding_model=embedding,
                          classifier=head, compute_stft=stft, spectrogram_augment=False)
    brain.modules = torch.nn.ModuleDict({"embedding_model": embedding, "classifier": head})
    brain.calibration_loader = [batch]
    brain.recalibrate_batchnorm(1)

    n, f = sources_run["background"], 1 / (10 ** (6 / 20) + 1)
    augmented = []
    for t in batch.target_sig.data.double().numpy():
        y = (1 - f) * t + f * np.sqrt(np.mean(t**2) / np.mean(n**2)) * n
        augmented.append(0.5 * y / np.abs(y).max())
    wavs = torch.cat([batch.sig.data, torch.tensor(np.array(augmented), dtype=torch.float32)])
    level = torch.log1p(stft(wavs).pow(2).sum(-1).sqrt()).mean(dim=(1, 2))  # (2B,)
    assert embedding.norm.running_mean.item() == pytest.approx(level.mean().item(), rel=1e-4)
    assert embedding.norm.running_var.item() == pytest.approx(level.var().item(), rel=1e-3)


# --------------------------------------------------------------------------------- on_stage_end


def _stage(brain, predictions, targets):
    brain.stage_predictions = [torch.tensor(p) for p in predictions]
    brain.stage_targets = [torch.tensor(t) for t in targets]


def test_on_stage_end_steps_the_lr_on_the_valid_loss_logs_it_and_keeps_the_best_accuracy(
    tmp_path,
):
    head = torch.nn.Linear(2, 2)
    brain = bare_brain(
        ClassifierBrain,
        lr_annealing=ReduceLROnPlateau(factor=0.5, patience=0, dont_halve_until_epoch=0),
        train_logger=FileTrainLogger(tmp_path / "train_log.txt"),
        epoch_counter=EpochCounter(4),
    )
    brain.optimizer = torch.optim.SGD(head.parameters(), lr=1.0)
    brain.checkpointer = Checkpointer(tmp_path / "save", recoverables={"head": head})
    # (valid loss, valid predictions); targets [0, 1, 1, 0]: accuracies 0.75, 0.25, 0.5, 0.0
    valid = [(1.0, [0, 1, 1, 1]), (0.8, [1, 0, 1, 1]), (0.9, [0, 0, 1, 1]), (1.2, [1, 0, 0, 1])]
    lrs = []
    for epoch, (loss, predictions) in enumerate(valid, start=1):
        _stage(brain, [[0, 1, 1]], [[0, 1, 0]])  # train accuracy 2/3
        brain.on_stage_end(Stage.TRAIN, 2.0 + epoch, epoch)
        _stage(brain, [predictions[:3], predictions[3:]], [[0, 1, 1], [0]])
        brain.on_stage_end(Stage.VALID, loss, epoch)
        lrs.append(brain.optimizer.param_groups[0]["lr"])
    # by hand: the loss improves in epochs 1 and 2 (anchor 0.8), not in 3 and 4 (patience 0)
    assert lrs == [1.0, 1.0, 0.5, 0.25]
    logged = re.findall(
        r"^epoch: (\d+), lr: (\S+) - train loss: (\S+), train acc: (\S+) - valid loss: (\S+), "
        r"valid acc: (\S+)$", (tmp_path / "train_log.txt").read_text(), flags=re.M)
    assert [float(value) for row in logged for value in row] == pytest.approx([
        1, 1.0, 3.0, 2 / 3, 1.0, 0.75, 2, 1.0, 4.0, 2 / 3, 0.8, 0.25,
        3, 1.0, 5.0, 2 / 3, 0.9, 0.5, 4, 0.5, 6.0, 2 / 3, 1.2, 0.0], rel=1e-2)
    kept = {ckpt.meta["acc"]: ckpt.meta["loss"] for ckpt in brain.checkpointer.list_checkpoints()}
    assert kept == {0.75: 1.0, 0.0: 1.2}  # the best valid accuracy, and the latest to resume

    brain.hparams.epoch_counter.current = 1  # the best checkpoint, loaded for the test
    _stage(brain, [[2, 0], [1]], [[2, 1], [1]])
    brain.on_stage_end(Stage.TEST, 0.7)
    assert brain.test_stats == pytest.approx({"loss": 0.7, "acc": 2 / 3})
    assert brain.test_predictions.tolist() == [2, 0, 1]
    assert brain.test_targets.tolist() == [2, 1, 1]
    last = (tmp_path / "train_log.txt").read_text().splitlines()[-1]
    assert last == "Epoch loaded: 1 - test loss: 7.00e-01, test acc: 6.67e-01"


# ------------------------------------------------------------------------------- export_results


def test_export_writes_the_loop_counted_matrix_the_stats_and_the_modules(tmp_path):
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(["zebra", "apple", "mango"])  # indices not in name order
    predictions, targets = [0, 1, 1, 2, 0, 2, 2], [0, 1, 0, 2, 2, 1, 2]
    torch.manual_seed(0)
    modules = torch.nn.ModuleDict(
        {"embedding_model": torch.nn.Linear(2, 3), "classifier": torch.nn.Linear(3, 2)}
    )
    brain = bare_brain(ClassifierBrain, modules=modules, epoch_counter=EpochCounter(9))
    brain.hparams.epoch_counter.current = 4
    brain.test_predictions, brain.test_targets = torch.tensor(predictions), torch.tensor(targets)
    brain.test_stats = {"acc": 0.625, "loss": 1.25}
    out = tmp_path / "out"
    summary = train_classifier.export_results(brain, {"output_folder": str(out)}, encoder)

    counts = _loop_confusion(predictions, targets, 3)
    expected = {"test_accuracy": 0.625, "test_loss": 1.25, "n_test_clips": 7, "epoch_loaded": 4,
                "classes": ["zebra", "apple", "mango"], "confusion_matrix": counts}
    assert summary == expected
    assert json.loads((out / "test_accuracy.json").read_text()) == expected
    for name in ("embedding_model", "classifier"):
        saved = torch.load(out / f"{name}.ckpt", weights_only=True)
        assert saved.keys() == modules[name].state_dict().keys()
        assert all(torch.equal(saved[k], v) for k, v in modules[name].state_dict().items())
    loaded = CategoricalEncoder()
    loaded.load(out / "label_encoder.txt")
    assert loaded.lab2ind == {"zebra": 0, "apple": 1, "mango": 2}
    plot_confusion_matrix(torch.tensor(counts), expected["classes"], tmp_path / "by_hand.png")
    assert (out / "confusion_matrix.png").read_bytes() == (tmp_path / "by_hand.png").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == [  # the README's five, no partial file
        "classifier.ckpt", "confusion_matrix.png", "embedding_model.ckpt", "label_encoder.txt",
        "test_accuracy.json"]


# ----------------------------------------------------------------------------------------- main


def _main_argv(root, out, *extra):
    return [str(CONV2D_YAML), "--data_folder", str(root), "--output_folder", str(out),
            "--emb_dim", "4", "--lin_neurons", "4", "--signal_length_s", "0.5", *extra]


def test_a_training_set_of_exactly_one_batch_is_enough(tmp_path):
    """6 training clips: --batch_size 6 passes the batch check (the run then stops at the next
    check, --number_of_epochs 0, before any training); 7 is refused, with the counts."""
    root, _ = _write_dataset(tmp_path / "data")
    argv = _main_argv(root, tmp_path / "out", "--number_of_epochs", "0")
    with pytest.raises(ValueError, match="a training run needs at least 1 epoch"):
        train_classifier.main(argv + ["--batch_size", "6"])
    with pytest.raises(ValueError, match=r"has 6 clips, fewer than one batch \(batch_size 7"):
        train_classifier.main(argv + ["--batch_size", "7"])


def test_main_tests_and_exports_the_checkpoint_of_best_valid_accuracy(tmp_path):
    """Two checkpoints made by hand, the newer one (epoch 2) worse: with --number_of_epochs 2
    nothing trains, and the test and the exports are epoch 1's."""
    root, _ = _write_dataset(tmp_path / "data")
    out = tmp_path / "out"
    argv = _main_argv(root, out, "--batch_size", "2", "--number_of_epochs", "2")
    hparams, run_opts, *_ = prepare_run(argv)
    brain = build_brain(ClassifierBrain, hparams, run_opts)
    brain.on_fit_start()
    torch.manual_seed(0)
    for epoch, acc in ((1, 0.9), (2, 0.1)):
        hparams["epoch_counter"].current = epoch
        with torch.no_grad():
            for parameter in brain.modules.parameters():
                parameter.copy_(torch.randn_like(parameter))
        brain.checkpointer.save_checkpoint(meta={"acc": acc, "loss": 1.0})
    best = Checkpointer(out / "save").find_checkpoint(max_key="acc")
    assert best.meta["acc"] == 0.9

    summary = train_classifier.main(argv)
    assert summary["epoch_loaded"] == 1 and summary["n_test_clips"] == 2
    matrix = np.array(summary["confusion_matrix"])
    assert summary["test_accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    for name in ("embedding_model", "classifier"):
        exported = torch.load(out / f"{name}.ckpt", weights_only=True)
        chosen = torch.load(best.paramfiles[name], weights_only=True)
        assert all(torch.equal(exported[k], v) for k, v in chosen.items())
    assert "Epoch loaded: 1 - test loss" in (out / "train_log.txt").read_text()


def test_a_training_batch_of_one_clip_is_refused_before_training(tmp_path):
    """--batch_size 1 trained until the head's BatchNorm stopped the first step with "Expected
    more than 1 value per channel"; it is refused before training, naming --batch_size."""
    root, _ = _write_dataset(tmp_path / "data")
    out = tmp_path / "out"
    argv = _main_argv(root, out, "--number_of_epochs", "1", "--batch_size", "1")
    with pytest.raises(ValueError, match=r"^--batch_size 1 is too small to train on: .*BatchNorm.*at least 2 clips"):
        train_classifier.main(argv)
    assert not list((out / "save").glob("CKPT+*"))


@pytest.mark.parametrize(
    "opts, n_clips, expected",
    [
        ({"batch_size": 5}, 6, {"batch_size": 5, "drop_last": True}),  # 5 + 1: the 1 is dropped
        ({"batch_size": 4}, 9, {"batch_size": 4, "drop_last": True}),  # 4 + 4 + 1
        ({"batch_size": 4}, 10, {"batch_size": 4}),  # 4 + 4 + 2: trains
        ({"batch_size": 5, "drop_last": True}, 6, {"batch_size": 5, "drop_last": True}),
        ({"batch_size": 2}, 2, {"batch_size": 2}),
    ],
)
def test_a_last_training_batch_of_one_clip_is_dropped(opts, n_clips, expected, caplog):
    with caplog.at_level("INFO", logger="recipes.train_classifier"):
        assert train_classifier.training_loader_opts(opts, n_clips) == expected
    dropped = [r.getMessage() for r in caplog.records if "last training batch would hold 1" in r.getMessage()]
    assert len(dropped) == (expected != opts)


@pytest.mark.parametrize(
    "batch_size, n_clips, message",
    [(1, 6, r"--batch_size 1 is too small"), (0, 6, r"--batch_size 0 is too small"),
     (7, 6, r"has 6 clips, fewer than one batch \(batch_size 7")],
)
def test_training_loader_opts_refuse_what_cannot_train(batch_size, n_clips, message):
    with pytest.raises(ValueError, match=message):
        train_classifier.training_loader_opts({"batch_size": batch_size}, n_clips)
