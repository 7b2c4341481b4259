"""`ClassifierBrain.recalibrate_batchnorm` (`precise_bn_batches`): the running statistics become
the plain mean of the given batches' statistics, nothing else moves."""

import pytest
import speechbrain as sb
import torch

from recipes.train_classifier import ClassifierBrain


class _Brain(ClassifierBrain):
    """The recipe's Brain with a forward that feeds each batch (a tensor) to one BatchNorm."""

    def compute_forward(self, batch, stage):
        return self.modules.head(self.modules.norm(batch))


def _brain(batches):
    brain = _Brain(
        modules={"norm": torch.nn.BatchNorm1d(2, momentum=0.1), "head": torch.nn.Linear(2, 3)},
        hparams={"precise_bn_batches": 2, "add_wham_noise": False},
        run_opts={"device": "cpu"},
    )
    brain.calibration_loader = batches
    return brain


def test_running_statistics_are_the_mean_of_the_batches():
    torch.manual_seed(0)
    batches = [torch.randn(4, 2) * 3 + 5, torch.randn(4, 2) - 2, torch.randn(4, 2) * 100]  # the third is never read
    brain = _brain(batches)
    norm = brain.modules.norm
    norm.running_mean.fill_(40.0)  # stale statistics, as an exponential average leaves them
    norm.running_var.fill_(0.01)
    norm.num_batches_tracked.fill_(60)
    head_before = brain.modules.head.weight.clone()
    brain.modules.eval()  # as the validation that follows wants it

    brain.recalibrate_batchnorm(2)

    # by hand: the two batches' means and unbiased variances, averaged with equal weights
    means = [b.mean(dim=0) for b in batches[:2]]
    variances = [b.var(dim=0, unbiased=True) for b in batches[:2]]
    assert torch.allclose(norm.running_mean, (means[0] + means[1]) / 2, atol=1e-5)
    assert torch.allclose(norm.running_var, (variances[0] + variances[1]) / 2, atol=1e-4)
    assert norm.momentum == 0.1  # given back for the next epoch's training
    assert torch.equal(brain.modules.head.weight, head_before)
    assert not norm.training and not brain.modules.head.training  # the modes as they were


def test_runs_before_each_validation_only():
    batches = [torch.full((4, 2), 3.0) + torch.arange(4.0).view(4, 1)]
    brain = _brain(batches)
    brain.on_stage_start(sb.Stage.TRAIN, epoch=1)
    assert torch.equal(brain.modules.norm.running_mean, torch.zeros(2))
    brain.on_stage_start(sb.Stage.VALID, epoch=1)
    assert torch.allclose(brain.modules.norm.running_mean, torch.full((2,), 4.5))


def test_without_the_training_batches_it_says_how_to_give_them():
    brain = _brain(None)
    with pytest.raises(ValueError, match="brain.calibration_loader"):
        brain.recalibrate_batchnorm(2)
