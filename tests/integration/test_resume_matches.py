"""A run stopped after an epoch and resumed trains to the same weights as one never stopped.

SpeechBrain checkpoints the epoch counter, the optimiser, the lr scheduler and the sampler's
epoch, not the random generators nor where AddNoise is in its backgrounds: a resumed classifier
drew other augmentations than the uninterrupted run (`recipes.core.brains.RandomState`,
`recipes.train_classifier.NoisePosition`).
"""

import torch
from conftest import HPARAMS, TINY, TINY_CLASSIFIER, with_flag

import recipes.train_classifier as train_classifier


def _weights(folder, names):
    return {name: torch.load(folder / name, map_location="cpu", weights_only=True) for name in names}


def _max_difference(a, b):
    return max((a[key].float() - b[key].float()).abs().max().item() for key in a if a[key].numel())


def test_classifier_stopped_after_epoch_1_and_resumed_equals_the_uninterrupted_run(tiny_synthetic, tmp_path):
    """Both augmentations on (AddNoise backgrounds, RandAmp gains, SpectrogramDrop bands) and a
    scheduler that halves the lr at epoch 3: 3 epochs straight, or 1 epoch then the same command
    with 3 (a resume), give the same exported weights and the same logged epochs, each once
    (the line of an epoch 2 logged by a killed run is dropped: `trim_train_log`)."""
    argv = [str(HPARAMS / "classifier_conv2d.yaml"), "--data_folder", str(tiny_synthetic), *TINY, *TINY_CLASSIFIER]
    argv += ["--train_on_sources", "True", "--spectrogram_augment", "True", "--lr", "0.002"]
    argv += ["--lr_first_halving_epoch", "1", "--lr_patience", "0"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"

    train_classifier.main(with_flag(argv, "--number_of_epochs", 3) + ["--output_folder", str(straight)])
    train_classifier.main(with_flag(argv, "--number_of_epochs", 1) + ["--output_folder", str(resumed)])
    # a run killed after logging epoch 2, before its checkpoint: the resumed run logs it again
    log = resumed / "train_log.txt"
    log.write_text(log.read_text() + "epoch: 2, lr: 2.00e-03 - train loss: 99.0, train acc: 1.00 - valid loss: 99.0\n")
    train_classifier.main(with_flag(argv, "--number_of_epochs", 3) + ["--output_folder", str(resumed)])

    def epochs(folder):
        return [line for line in (folder / "train_log.txt").read_text().splitlines() if line.startswith("epoch:")]

    assert epochs(resumed) == epochs(straight), "the resumed run logged other losses or lrs"
    names = ("embedding_model.ckpt", "classifier.ckpt")
    a, b = _weights(straight, names), _weights(resumed, names)
    for name in names:
        assert _max_difference(a[name], b[name]) == 0.0, name
