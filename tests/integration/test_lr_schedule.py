"""The interpreters' lr schedule (ReduceLROnPlateau) is applied, logged and resumed.

A tiny PIQ run on the tiny set with `--lr_patience 1 --lr_first_halving_epoch 0`.
The valid loss of a real run may go either way, so the scheduler is given a
plateau that never ends (its anchor, the best loss seen, is -inf): every epoch
counts as one without improvement, and the lr halves every `patience + 1`
epochs, deterministically.
"""

import re

import pytest
from conftest import piq_argv, with_flag

from recipes.core.brains import build_brain
from recipes.core.startup import prepare_run
from recipes.interpreters.piq import PIQ
from recipes.interpreters.training import fit_interpreter

PATIENCE = 1
SCHEDULE = ["--lr_patience", str(PATIENCE), "--lr_first_halving_epoch", "0"]  # top-level keys


def logged_lrs(train_log):
    """{epoch: lr} as the train log has them."""
    found = re.findall(r"^epoch: (\d+), lr: ([0-9.e+-]+)", train_log.read_text(), flags=re.M)
    return {int(epoch): float(lr) for epoch, lr in found}


def fit_piq(argv, endless_plateau=False):
    """Builds the PIQ Brain of `argv` (resuming its folder's checkpoint) and fits it."""
    hparams, run_opts, _, _, datasets, label_encoder = prepare_run(argv)
    brain = build_brain(PIQ, hparams, run_opts, label_encoder=label_encoder)
    if endless_plateau:  # no valid loss ever improves on it (saved with the scheduler)
        hparams["lr_annealing"].anchor = float("-inf")
    fit_interpreter(brain, hparams, datasets)
    return hparams, brain


def test_lr_halves_after_patience_and_a_resumed_run_goes_on_from_there(tiny_pretrained, tmp_path):
    folder = tmp_path / "run"
    argv = piq_argv(tiny_pretrained) + [*SCHEDULE, "--output_folder", str(folder)]
    hparams, brain = fit_piq(with_flag(argv, "--number_of_epochs", PATIENCE + 1), endless_plateau=True)
    lr = hparams["lr"]
    assert hparams["lr_annealing"].patience == PATIENCE  # the top-level key reached the scheduler
    # epochs 1 .. patience + 1 ran at the initial lr; the last one halved it
    assert logged_lrs(folder / "train_log.txt") == pytest.approx({1: lr, 2: lr}, rel=1e-2)
    assert brain.optimizer.param_groups[0]["lr"] == pytest.approx(lr / 2)

    # same folder, more epochs: optimizer and scheduler come back from the checkpoint
    hparams, brain = fit_piq(with_flag(argv, "--number_of_epochs", 2 * PATIENCE + 2))
    assert hparams["lr_annealing"].anchor == float("-inf")  # the scheduler's state resumed
    assert logged_lrs(folder / "train_log.txt") == pytest.approx(
        {1: lr, 2: lr, 3: lr / 2, 4: lr / 2}, rel=1e-2
    )
    assert brain.optimizer.param_groups[0]["lr"] == pytest.approx(lr / 4)
