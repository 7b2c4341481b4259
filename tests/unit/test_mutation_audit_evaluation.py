"""Tests added by a manual mutation audit of the evaluation math (metrics, curves, baselines,
sanity check): each one fails on a small plausible mutation that the other tests let pass.

Every expected value comes from a hand computation (worked out in the docstring) or an
independent numpy / math computation from the documented formula, never from the function
under test.

Two mutants no test can kill, left without one: swapping the estimate and the reference of
`si_sdr` inside SI-SDRi (zero-mean SI-SDR is 10 log10(cot^2) of the angle between the two
signals, symmetric in them), and dropping `bootstrap_interval`'s clamp of the interval to
[min, max] of the values (the float64 mean of a resampled constant is that constant to the
bit in torch, so the clamp is a guard only).
"""

import math

import numpy as np
import pytest
import torch

from recipes.evaluation import baselines, curves, metrics, sanity


def _si_sdr_numpy(estimate, reference):
    """SI-SDR (dB) from its definition: both signals zero-mean, the target is the projection of
    the estimate onto the reference, the rest is the error, 10 log10 of their energy ratio."""
    estimate = estimate - estimate.mean()
    reference = reference - reference.mean()
    target = (estimate @ reference) / (reference @ reference) * reference
    error = estimate - target
    return 10.0 * math.log10((target @ target) / (error @ error))


def _as_batch(signal):
    return torch.from_numpy(signal).float().unsqueeze(0)  # (1, T)


def test_si_sdr_and_si_sdri_match_the_formula_on_random_signals():
    """Signals with offsets, unequal energies and correlated noise (not the symmetric
    hand-made cases): SI-SDR of the audio against the target and SI-SDRi = that minus the
    clip's SI-SDR against the target, each from `_si_sdr_numpy`."""
    rng = np.random.default_rng(0)
    target = rng.standard_normal(4000) + 0.3
    background = 0.8 * rng.standard_normal(4000) + 0.4 * np.roll(target, 7) - 0.2
    clip = target + background
    audio = 1.7 * target + 0.25 * background + 0.1 * rng.standard_normal(4000)
    expected_sdr = _si_sdr_numpy(audio, target)
    expected_sdri = expected_sdr - _si_sdr_numpy(clip, target)
    X = torch.log1p(torch.tensor([[[3.0, 1.0]]]))
    region = torch.tensor([[[1.0, 0.0]]])
    gt = metrics.ground_truth_metrics(
        X, X, _as_batch(audio), _as_batch(clip), _as_batch(target), region
    )
    assert gt["si_sdr"].item() == pytest.approx(expected_sdr, abs=1e-3)
    assert gt["si_sdri"].item() == pytest.approx(expected_sdri, abs=1e-3)
    assert expected_sdri > 1.0  # a real improvement, so a sign error shows


def test_si_sdr_of_an_orthogonal_estimate_is_the_floor():
    """s = (1, -1, 1, -1) and n = (1, 1, -1, -1) are zero-mean and orthogonal: the projection
    of n onto s is 0, so SI-SDR = 10 log10(0) = -inf, reported as the floor -SI_SDR_CLIP_DB
    (the same floor as a silent estimate), never a value below it."""
    s = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    n = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    assert metrics.si_sdr(n, s).item() == -metrics.SI_SDR_CLIP_DB
    # nearly orthogonal: 10 log10(|0.01 s|^2 / |n|^2) = 10 log10(1e-4) = -40 dB, not clipped
    assert metrics.si_sdr(0.01 * s + n, s).item() == pytest.approx(-40.0, abs=1e-3)


def test_gt_recall_of_a_region_of_silent_bins_is_undefined():
    """X holds |STFT| 3 in bin (0, 0) and the floor of silence (1e-7 <= SILENT_X) elsewhere;
    the region is the three silent bins: it holds no energy of X, so recall is NaN (not the
    ~3e-14 of the floor bins as a denominator, which would give recall 1), and the
    interpretation's energy 9 lies outside it: precision 0 / 9 = 0."""
    X = torch.full((1, 2, 2), 1e-7)
    X[0, 0, 0] = math.log1p(3.0)
    region = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])
    assert torch.isnan(metrics.gt_recall(X, X, region)).all()
    assert metrics.gt_precision(X, X, region).item() == 0.0
    # one loud bin in the region: recall is defined again, 9 / 9
    region[0, 0, 0] = 1.0
    assert metrics.gt_recall(X, X, region).item() == pytest.approx(1.0)


def test_sparseness_keeps_quantus_offset_on_tiny_masks():
    """quantus adds 1e-7 to every |mask| value. |mask| = (0, 0, 0, 1e-7), n = 4, becomes
    (1, 1, 1, 2) 1e-7: Gini = sum((2i - n - 1) v_i) / (n sum v) = (-3 - 1 + 1 + 6) / (4 * 5)
    = 0.15 (without the offset it would be 3 / 4)."""
    mask = torch.tensor([[[0.0, 0.0], [0.0, 1e-7]]], dtype=torch.float64)
    assert metrics.sparseness(mask).item() == pytest.approx(0.15, abs=1e-9)


def test_curve_auc_uses_the_fractions_as_the_x_axis():
    """Non-uniform fractions (0, 0.1, 1), p_c (1, 0.5, 0): trapezoids 0.1 (1 + 0.5) / 2 +
    0.9 (0.5 + 0) / 2 = 0.075 + 0.225 = 0.3 (equal spacing would give 0.5)."""
    auc = curves.curve_auc(torch.tensor([[1.0, 0.5, 0.0]]), (0.0, 0.1, 1.0))
    assert auc.item() == pytest.approx(0.3, abs=1e-6)


class _Thresholded(torch.nn.Module):
    """The embedding relu(X - t), flattened: its gradient is 1[X > t]."""

    def __init__(self, threshold):
        super().__init__()
        self.threshold = threshold

    def forward(self, X):
        return torch.relu(X - self.threshold).flatten(start_dim=1)


def test_smoothgrad_noise_follows_the_clip_range_not_its_peak():
    """Clips far from zero (values in [5, 8]: range ~3, peak ~8). scores = W relu(X - t), so
    SmoothGrad's mean |gradient| is |W_c| P(X + noise > t) = |W_c| Phi((X - t) / std) with
    std = SMOOTHGRAD_NOISE x (max - min) of the clip (~0.45), not x its peak (~1.2)."""
    frames, bins, threshold = 6, 5, 6.5
    generator = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(frames * bins, 3)
    with torch.no_grad():
        head.weight.copy_(torch.randn(3, frames * bins, generator=generator))
        head.bias.zero_()
    X = 5.0 + 3.0 * torch.rand(2, frames, bins, generator=generator)
    classes = torch.tensor([0, 2])
    flat = X.flatten(1).numpy()
    std = baselines.SMOOTHGRAD_NOISE * (flat.max(1) - flat.min(1)).reshape(-1, 1, 1)
    phi = np.vectorize(lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2))))
    weights = np.abs(head.weight.detach().numpy()[classes.numpy()].reshape(-1, frames, bins))
    expected = weights * phi((X.numpy() - threshold) / std)
    expected /= expected.reshape(2, -1).max(1).reshape(-1, 1, 1)
    mask = baselines.smoothgrad_mask(
        _Thresholded(threshold), head, X, classes, seed=0, n_samples=2000
    )
    assert np.abs(mask.numpy() - expected).max() < 0.05


def test_randomise_draws_a_constant_tensor_with_its_fan_in():
    """A parameter without spread is redrawn from N(mean, 1 / sqrt(fan_in)), fan_in = numel /
    size(0) for 2 or more dims: 400 for a Linear(400, 30) weight (std 0.05), 8 * 3 * 3 = 72
    for a Conv2d(8, 16, 3) weight (std 0.118); numel for a 1-D one (30 zeros: std 0.183)."""
    linear, conv = torch.nn.Linear(400, 30), torch.nn.Conv2d(8, 16, 3)
    with torch.no_grad():
        linear.weight.fill_(0.3)
        linear.bias.zero_()
        conv.weight.fill_(-0.2)
    sanity.randomise_([linear, conv], torch.Generator().manual_seed(0))
    weight = linear.weight.detach().double()
    assert weight.mean().item() == pytest.approx(0.3, abs=0.003)
    assert weight.std().item() == pytest.approx(1 / math.sqrt(400), rel=0.05)
    assert conv.weight.detach().double().std().item() == pytest.approx(1 / math.sqrt(72), rel=0.05)
    assert conv.weight.detach().double().mean().item() == pytest.approx(-0.2, abs=0.01)
    assert linear.bias.detach().double().std().item() == pytest.approx(1 / math.sqrt(30), rel=0.35)
