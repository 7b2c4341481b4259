"""Classifier augmentation (train_on_sources, spectrogram_augment) and PIQ's mask target."""

from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch

from recipes import train_classifier
from recipes.interpreters.piq import target_mask

REPO = Path(__file__).resolve().parents[2]
CONV2D_YAML = REPO / "hparams" / "classifier_conv2d.yaml"


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
