"""Classifier augmentation (train_on_sources, spectrogram_augment) and PIQ's mask target."""

import csv
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch

from recipes import train_classifier
from recipes.train_piq import target_mask

REPO = Path(__file__).resolve().parents[1]
CONV2D_YAML = REPO / "hparams" / "classifier_conv2d.yaml"
TINY = ["--emb_dim", "8", "--lin_neurons", "8", "--batch_size", "4", "--signal_length_s", "1"]


def _yaml(tmp_path, **overrides):
    with open(CONV2D_YAML, encoding="utf-8") as fin:
        return load_hyperpyyaml(
            fin, {"data_folder": "unused", "output_folder": str(tmp_path), **overrides}
        )


@pytest.mark.parametrize("yaml_name", ["classifier_conv2d.yaml", "classifier_cnn14.yaml"])
def test_augmentation_is_off_unless_asked(yaml_name, tmp_path):
    """The yamls as shipped train on the clips as they are: same waveforms, same spectrogram."""
    with open(REPO / "hparams" / yaml_name, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(
            fin, {"data_folder": "unused", "output_folder": str(tmp_path), "emb_dim": 8, "out_n_neurons": 3}
        )
    brain = train_classifier.ClassifierBrain(modules=hparams["modules"], hparams=hparams)
    clips = [{"id": str(i), "sig": torch.randn(8000)} for i in range(3)]
    batch = PaddedBatch(clips)
    assert torch.equal(brain.training_waveforms(batch), batch.sig[0])
    brain.modules.eval()  # same scores twice: nothing random on the spectrogram either
    with torch.no_grad():
        first = brain.compute_forward(batch, train_classifier.sb.Stage.TRAIN)
        second = brain.compute_forward(batch, train_classifier.sb.Stage.TRAIN)
    assert first.shape[0] == 3 and torch.equal(first, second)


def test_spectrogram_augmenter_keeps_shapes_and_zeroes_bands(tmp_path):
    hparams = _yaml(tmp_path, spectrogram_augment_prob=1.0)
    X = torch.rand(3, 87, 513) + 0.1  # no zero anywhere before
    augmented, lengths = hparams["spectrogram_augmenter"](X, torch.ones(3))
    assert augmented.shape == X.shape and lengths.shape == (3,)
    zero = augmented == 0
    # whole frames (time bands) and whole bins (frequency bands) were zeroed in every clip
    assert zero.all(dim=2).any(dim=1).all()
    assert zero.all(dim=1).any(dim=1).all()
    assert torch.equal(augmented[~zero], X[~zero])


def test_train_on_sources_refuses_data_without_sources(esc50_sample_dir, tmp_path):
    with pytest.raises(ValueError, match="ground_truth.csv"):
        train_classifier.read_source_paths(str(esc50_sample_dir))


def test_source_augmentation_doubles_the_batch_with_targets_and_backgrounds(
    tiny_synthetic, tmp_path
):
    """A real run with both augmentations: the backgrounds csv lists the training
    backgrounds, and a training batch holds the mixtures and the augmented targets."""
    out = tmp_path / "clf"
    argv = [str(CONV2D_YAML), "--data_folder", str(tiny_synthetic), "--output_folder", str(out)]
    argv += TINY + ["--number_of_epochs", "1", "--train_on_sources", "True"]
    argv += ["--spectrogram_augment", "True"]
    summary = train_classifier.main(argv)
    assert summary["n_test_clips"] == 3

    with open(out / "manifest" / train_classifier.BACKGROUNDS_CSV, encoding="utf-8") as fin:
        rows = list(csv.DictReader(fin))
    assert len(rows) == 9  # folds 1-3 of 3 classes x 5 clips
    assert all(row["wav"].endswith("_background.wav") and Path(row["wav"]).is_file() for row in rows)

    # One training batch through the Brain's own augmentation path.
    from speechbrain.dataio.dataloader import make_dataloader

    from recipes.startup import prepare_run

    hparams, run_opts, _, _, datasets, _ = prepare_run(argv)
    train_classifier.prepare_source_augmentation(hparams, datasets["train"])
    brain = train_classifier.ClassifierBrain(
        modules=hparams["modules"], hparams=hparams, run_opts=run_opts
    )
    batch = next(iter(make_dataloader(datasets["train"], batch_size=4)))
    wavs = brain.training_waveforms(batch)
    assert wavs.shape == (8, batch.sig[0].shape[1])
    assert torch.equal(wavs[:4], batch.sig[0])  # the mixtures stay as they are
    assert torch.isfinite(wavs).all()
    peaks = wavs[4:].abs().amax(dim=1)
    gain_range = (hparams["source_gain_low"] - 1e-6, hparams["source_gain_high"] + 1e-6)
    assert ((peaks >= gain_range[0]) & (peaks <= gain_range[1])).all()
    # outside the events, the augmented half holds a background, not the clip's own
    assert not torch.allclose(wavs[4:], wavs[:4], atol=1e-3)
    brain.on_stage_start(train_classifier.sb.Stage.TRAIN)
    scores = brain.compute_forward(batch, train_classifier.sb.Stage.TRAIN)
    assert scores.shape[0] == 8
    loss = brain.compute_objectives(scores, batch, train_classifier.sb.Stage.TRAIN)
    assert torch.isfinite(loss)


def test_piq_above_floor_target_ignores_steady_bins():
    frames = torch.arange(10.0)
    X = torch.zeros(1, 10, 3)
    X[0, :, 0] = 5.0  # a loud steady hum: the loudest bin of the clip
    X[0, 6:8, 1] = 1.5  # a short event in a quiet band, below 0.35 x the hum
    X[0, :, 2] = 0.2 + 0.01 * frames  # a slowly rising floor
    peak = target_mask(X, 0.35, "peak")
    assert peak[0, :, 0].all() and not peak[0, :, 1].any()  # the reference keeps the hum
    floor = target_mask(X, 0.35, "above_floor")
    assert not floor[0, :, 0].any() and not floor[0, :, 2].any()
    assert floor[0, 6:8, 1].all() and floor.sum() == 2
    with pytest.raises(ValueError, match="mask_target"):
        target_mask(X, 0.35, "loudest")
