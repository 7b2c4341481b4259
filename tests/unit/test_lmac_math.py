"""L-MAC's loss helpers (recipes/interpreters/lmac.py) on batches worked out by hand: each
clip's term from that clip alone, then the batch's mean."""

import math

import pytest
import torch

from recipes.interpreters.lmac import binarised_reference, mask_l1, mask_share, out_loss


def test_mask_share_is_each_clips_share_of_its_own_input():
    """Clip 0 keeps its loud bin: 9 / 10 = 0.9 of X; clip 1 keeps one of two equal bins: 0.5.
    The batch's term is their mean, 0.7 (a share of the batch's mean X would give 0.83)."""
    X = torch.tensor([[[9.0, 1.0]], [[1.0, 1.0]]])
    mask = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])
    assert mask_share(mask, X).item() == pytest.approx(0.7)


def test_mask_l1_is_the_mean_over_every_bin_of_each_clip():
    """Clip 0: 3 of its 2 x 3 bins at 1 -> 0.5; clip 1: one bin at 0.6 -> 0.1; mean 0.3."""
    mask = torch.zeros(2, 2, 3)
    mask[0, 0] = 1.0
    mask[1, 1, 2] = 0.6
    assert mask_l1(mask).item() == pytest.approx(0.3)


def test_binarised_reference_thresholds_each_clip_at_its_own_peak():
    """Clip 1's peak is 0.2: at 0.35 of it (0.07) both its bins pass, whatever clip 0's 1.0."""
    X_clean = torch.tensor([[[0.1, 1.0]], [[0.1, 0.2]]])
    assert binarised_reference(X_clean, 0.35).tolist() == [[[0.0, 1.0]], [[1.0, 1.0]]]


def test_out_loss_is_the_batch_mean_of_each_clips_term():
    """Two clips of class 0: logits (0, 0) -> p_0 = 1/2, and (ln 3, 0) -> p_0 = 3/4.
    not_class: -log(1 - p_0) = ln 2 and ln 4, mean 1.5 ln 2; neg_ce: log p_0 = -ln 2 and
    ln 3/4, mean (ln 3/4 - ln 2) / 2."""
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    classes = torch.tensor([0, 0])
    assert out_loss(logits, classes, "not_class").item() == pytest.approx(1.5 * math.log(2), abs=1e-6)
    expected = (math.log(0.75) - math.log(2)) / 2
    assert out_loss(logits, classes, "neg_ce").item() == pytest.approx(expected, abs=1e-6)
