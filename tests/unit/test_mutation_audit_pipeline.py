"""Tests added by a manual mutation audit of recipes/core/pipeline.py (the signal path) and
data_prep/ground_truth.py (the synthetic clips' sources): each one kills a mutant (P<n> in
pipeline.py, G<n> in ground_truth.py) that the other tests let through.

Every expected value is worked out by hand in the docstring (or with the ISTFT applied to a
spectrum built independently), never by the code under test. The mutants each test guards
are named in its docstring.
"""

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.processing.features import ISTFT, STFT
from test_data_prep_audit import RATE, _two_clips, _write_ground_truth
from test_mutation_audit_models import SumOfBins

from data_prep.audio import load_clip
from data_prep.ground_truth import GroundTruth
from recipes.core.pipeline import (
    MASK_DOMAINS,
    apply_mask,
    class_probabilities,
    classify,
    floor_mask,
    invert_to_audio,
    n_stft_frames,
    remove_interpretation,
)

STFT_ARGS = {"sample_rate": 16000, "n_fft": 1024, "hop_length": 11.6099, "win_length": 23.2199}


# ---------------------------------------------------------------- log1p magnitudes below 0
def test_invert_to_audio_reads_a_negative_log_magnitude_as_silence():
    """Guards P6 (`expm1(X).clamp(min=0.0)` in invert_to_audio without the clamp). X below 0
    (no |STFT| gives it: a reconstruction's or a decoder's undershoot) is magnitude 0, so
    those bins are silent: the audio is the ISTFT of the input's own STFT with frames 3..9
    zeroed (the ISTFT is linear). Without the clamp, expm1(-0.5) = -0.39 turns those bins'
    phase around and they are heard."""
    wav = torch.randn(1, 4000, generator=torch.Generator().manual_seed(1))
    X_stft = STFT(**STFT_ARGS)(wav)
    X = torch.log1p(torch.sqrt(X_stft[..., 0] ** 2 + X_stft[..., 1] ** 2))
    X[:, 3:10] = -0.5
    kept = torch.ones_like(X)
    kept[:, 3:10] = 0.0
    istft = ISTFT(**STFT_ARGS)
    expected = istft(X_stft * kept.unsqueeze(-1), sig_length=4000)
    audio = invert_to_audio(X, X_stft, istft, 4000)
    torch.testing.assert_close(audio, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("domain", ["magnitude", "power"])
def test_apply_mask_reads_a_negative_log_magnitude_as_zero(domain):
    """Guards P16 (`expm1(X).clamp(min=0.0)` in apply_mask without the clamp). A bin of X
    at -0.5 is magnitude 0: whatever the mask keeps of it is log1p(0) = 0. Without the clamp
    a mask of 0.25 gives log1p(0.25 * expm1(-0.5)) = log1p(-0.098) = -0.10 (magnitude) or
    log1p(0.5 * -0.393) = -0.22 (power). The bin at ln 4 (|S| = 3) keeps 0.75 and 1.5."""
    X = torch.tensor([[[-0.5, math.log(4.0)]]])
    X_int = apply_mask(X, torch.full_like(X, 0.25), domain)
    kept = 0.75 if domain == "magnitude" else 1.5
    assert X_int[0, 0].tolist() == pytest.approx([0.0, math.log1p(kept)], abs=1e-6)
    assert X_int[0, 0, 0].item() == 0.0


@pytest.mark.parametrize("domain", MASK_DOMAINS)
def test_floor_mask_stays_in_zero_one_when_the_floor_is_below_zero(domain):
    """Guards P22 (`mask.clamp_(0.0, 1.0)` left out of floor_mask). floor_mask is "a mask in
    [0, 1]". One bin at -1, -1, 2 over three frames: median -1, so what rises above it in
    the loud frame is 3, more than X = 2 (a ratio of 1.5 in "log", expm1(3) / expm1(2) = 2.99
    in "magnitude", 8.9 in "power"): the mask is 1 there; the frames at -1 are 0 (X <= 0)."""
    X = torch.tensor([[[-1.0], [-1.0], [2.0]]])
    assert floor_mask(X, domain)[0, :, 0].tolist() == [0.0, 0.0, 1.0]


# ---------------------------------------------------------------- floor_mask: a constant gate
def test_floor_mask_carries_no_gradient_to_x():
    """Guards P20 (`@torch.no_grad()` taken off floor_mask). The floor gate multiplies an
    interpreter's mask as a constant of the clip: with an X that requires a gradient (a
    gradient baseline's input), the gate has none in any domain."""
    X = torch.log1p(torch.tensor([[[3.0], [3.0], [15.0]]])).requires_grad_(True)
    for domain in MASK_DOMAINS:
        gate = floor_mask(X, domain)
        assert not gate.requires_grad and gate.grad_fn is None, domain


def test_floor_mask_keeps_the_inputs_dtype():
    """Guards P21 (`return mask` instead of `mask.to(X.dtype)`): a float64 X gets a float64
    mask, (ln 16 - ln 4) / ln 16 = 0.5 in the loud frame (floor_mask's own example)."""
    X = torch.log1p(torch.tensor([[[3.0], [3.0], [15.0]]], dtype=torch.float64))
    gate = floor_mask(X, "log")
    assert gate.dtype == torch.float64
    assert gate[0, :, 0].tolist() == pytest.approx([0.0, 0.0, 0.5], abs=1e-12)


def test_floor_mask_of_a_half_precision_x_is_computed_in_float32():
    """Guards P23 (`above_background_floor(X)` instead of that of `X.float()`). A float16 bin
    at 0.1, 0.1, 5: float16's 0.1 is 1638 / 16384 = 0.0999755859375, the floor. In float32,
    (5 - 0.0999755859375) / 5 = 0.98000488 is 2007.05 steps of 2^-11 (float16's spacing below
    1): 2007 / 2048 = 0.97998046875. From the float16 difference, 4.90002 rounded to float16's
    spacing 2^-8 above 4 is 4.8984375, and 4.8984375 / 5 gives 2006 / 2048 = 0.9794921875."""
    X = torch.tensor([[[0.1], [0.1], [5.0]]], dtype=torch.float16)
    gate = floor_mask(X, "log")
    assert gate.dtype == torch.float16
    assert gate[0, :, 0].tolist() == [0.0, 0.0, 2007 / 2048]


# ---------------------------------------------------------------- removing the interpretation
def test_removing_more_magnitude_than_the_bin_holds_leaves_zero():
    """Guards P33 (`(whole - kept).clamp(min=0.0)` without the clamp in remove_interpretation).
    X = ln 4 (|S| = 3) without an X_int of ln 9 (|S| = 8): nothing is left, log1p(0) = 0 (as
    the power domain's sqrt(max(9 - 64, 0)) = 0); without the clamp log1p(3 - 8) is NaN."""
    X = torch.tensor([[[math.log(4.0)]]])
    X_int = torch.tensor([[[math.log(9.0)]]])
    for domain in ("magnitude", "power"):
        assert remove_interpretation(X, X_int, domain).item() == 0.0, domain


# ---------------------------------------------------------------- the classifier's input
class SumOfInput(torch.nn.Module):
    """An embedding model whose embedding (B, 1, 1) is the sum of what it reads."""

    def forward(self, features):
        return features.sum(dim=(1, 2)).reshape(-1, 1, 1)


def test_classify_gives_the_embedding_model_the_log_mel_when_use_melspectra():
    """Guards P50 (`embedding_model(X)` instead of `embedding_model(classifier_input(...))`):
    CNN14 reads the log-mel of X. Two frames of |S| = (3, 8) and (1, 0), X = log1p |S|; a
    one-band "filterbank" that adds a frame's bins gives the log-mel ln(1 + 11) = ln 12 and
    ln(1 + 1) = ln 2, their sum ln 24 the score; X itself sums to ln 4 + ln 9 + ln 2 = ln 72
    (what the Conv2d classifier, use_melspectra False, reads)."""
    X = torch.log1p(torch.tensor([[[3.0, 8.0], [1.0, 0.0]]]))
    head = torch.nn.Identity()
    mel_scores, _ = classify(SumOfInput(), head, X, SumOfBins(), use_melspectra=True)
    assert mel_scores.shape == (1, 1)
    assert mel_scores.item() == pytest.approx(math.log(24.0), abs=1e-5)
    linear_scores, _ = classify(SumOfInput(), head, X, SumOfBins(), use_melspectra=False)
    assert linear_scores.item() == pytest.approx(math.log(72.0), abs=1e-5)


def test_n_stft_frames_rounds_the_clip_length_to_the_nearest_sample():
    """Guards P53 (`int(sample_rate * signal_length_s)` without the round): 0.7 s at 22050 Hz
    is 15435 samples, but 22050 * 0.7 is 15434.999999999998 in floating point. With a hop of
    22.05 * 11.11111 = 244.99998 -> 245 samples (15435 = 63 * 245): 1 + 63 = 64 frames;
    truncated, 15434 // 245 = 62 gives 63."""
    assert n_stft_frames(22050, 0.7, 11.11111) == 64


def test_a_classifier_temperature_of_zero_is_refused():
    """Guards P56 (`classifier_temp < 0` instead of `not classifier_temp > 0`): a temperature
    of 0 would divide the scores by 0 (NaN probabilities); it is a ValueError naming the yaml."""
    with pytest.raises(ValueError, match="classifier_temp must be > 0, got 0"):
        class_probabilities(torch.tensor([[1.0, 0.0]]), 0)


# ---------------------------------------------------------------- ground_truth.py
def test_the_sources_of_a_silent_clip_are_zeros(tmp_path):
    """Guards G3 (`.clamp(min=EPS)` left out of the gain): a clip whose target and background
    are both silent (peak 0) keeps its sources at 0. Without the clamp the gain is 1 / 0 =
    inf, the sources inf * 0 = NaN, and the sum check (NaN > atol is False) lets them through."""
    silent = np.zeros(1600, dtype="float32")
    root = _write_ground_truth(tmp_path / "gt", {"quiet": (silent, silent)})
    clips = torch.zeros(1, 1600)
    target, background = GroundTruth(root, RATE, 1600).sources(["quiet"], clips)
    assert torch.equal(target, clips) and torch.equal(background, clips)


def test_sources_off_by_a_few_thousandths_are_refused(tmp_path):
    """Guards G11 (SOURCE_CHECK_ATOL 1e-2 instead of 1e-3): c1's background is off by 0.002 on
    20 samples away from the event, where |target + background| <= 0.1; the peak of
    |t + b| (about 0.6, in the event) is unchanged, so after the gain of about 1 / 0.6 the
    sum misses the clip by about 0.0033: more than 1e-3 (refused), less than 1e-2."""
    sources = _two_clips()
    root = _write_ground_truth(tmp_path / "gt", sources)
    clip = load_clip(root / "audio" / "c1.wav", RATE, 1600)[None]
    target, background = sources["c1"]
    t = np.abs(target + background).astype(np.float64)
    assert 0.55 < t.max() < 0.65 and np.abs(background[1200:1220]).max() <= 0.1
    wrong = background.copy()
    wrong[1200:1220] += 0.002
    sf.write(root / "sources" / "c1_background.wav", wrong, RATE, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"clip\(s\) \['c1'\] do not sum"):
        GroundTruth(root, RATE, 1600).sources(["c1"], clip)


def test_a_clip_without_a_ground_truth_row_is_named(tmp_path):
    """Guards G12 (the check for ids missing from meta/ground_truth.csv left out): a clip the
    csv does not list is a ValueError naming it and pointing at the dataset, not a KeyError."""
    sources = _two_clips()
    root = _write_ground_truth(tmp_path / "gt", sources)
    clips = torch.stack([load_clip(root / "audio" / "c1.wav", RATE, 1600)] * 2)
    with pytest.raises(ValueError, match=r"has no row for clip\(s\) \['elsewhere'\]"):
        GroundTruth(root, RATE, 1600).sources(["c1", "elsewhere"], clips)
