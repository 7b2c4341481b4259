"""Every metric of recipes/evaluation/metrics.py on a case computed by hand (issue 25).

The expected values are worked out in the comments (or by an independent
computation: Python floats, numpy), never by the function under test.
"""

import math

import pytest
import torch

from recipes.evaluation import metrics


def test_ratio_is_nan_where_the_denominator_is_not_positive():
    ratio = metrics._ratio(torch.tensor([1.0, 3.0, 1.0]), torch.tensor([4.0, 0.0, -1.0]))
    assert ratio[0].item() == 0.25 and torch.isnan(ratio[1:]).all()


def test_silent_spectrogram_is_the_floor_of_silence():
    X = torch.zeros(3, 2, 2)
    X[1, 0, 0] = metrics.SILENT_X  # at the floor: silent
    X[2, 1, 1] = 2 * metrics.SILENT_X  # above it: not
    assert metrics.silent_spectrogram(X).tolist() == [True, True, False]


def test_suite_on_two_clips_by_hand():
    """c = 0 and 1; p_c(X) = 0.6, 0.8; p_c(X_int) = 0.9, 0.2; p_c(X - X_int) = 0.1, 0.5."""
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    probs_int = torch.tensor([[0.9, 0.05, 0.05], [0.7, 0.2, 0.1]])
    probs_removed = torch.tensor([[0.1, 0.5, 0.4], [0.2, 0.5, 0.3]])
    classes = torch.tensor([0, 1])
    assert metrics.fid_in(probs_int, classes).tolist() == [1.0, 0.0]  # argmax 0 and 0
    assert metrics.faithfulness(probs, probs_removed, classes).tolist() == pytest.approx([0.5, 0.3])
    assert metrics.average_increase(probs, probs_int, classes).tolist() == [100.0, 0.0]
    # AD: max(0, 0.6 - 0.9) / 0.6 = 0; (0.8 - 0.2) / 0.8 = 75 %
    assert metrics.average_drop(probs, probs_int, classes).tolist() == pytest.approx([0.0, 75.0])
    # AG: (0.9 - 0.6) / (1 - 0.6) = 75 %; 0
    assert metrics.average_gain(probs, probs_int, classes).tolist() == pytest.approx([75.0, 0.0])


def test_drop_and_gain_without_confidence_to_lose_or_gain_are_undefined():
    classes = torch.tensor([0])
    assert torch.isnan(
        metrics.average_drop(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]]), classes)
    ).all()
    assert torch.isnan(
        metrics.average_gain(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]]), classes)
    ).all()


def test_sparseness_is_the_gini_index_by_hand():
    """|mask| sorted (0, 0, 1, 3), n = 4: sum((2i - n - 1) v_i) / (n sum v) = (1 + 9) / 16."""
    mask = torch.tensor([[[3.0, 0.0], [0.0, -1.0]]])
    assert metrics.sparseness(mask).item() == pytest.approx(0.625, abs=1e-6)


def test_complexity_is_the_entropy_by_hand():
    """|mask| (1, 1, 2) normalised: (1/4, 1/4, 1/2), entropy 1.5 ln 2 nats."""
    mask = torch.tensor([[[1.0, -1.0, 2.0]]])
    assert metrics.complexity(mask).item() == pytest.approx(1.5 * math.log(2), abs=1e-6)


def test_sparseness_and_complexity_are_per_clip_in_a_batch():
    """Two clips: a uniform mask over 100 bins has entropy ln 100 and Gini index 0; one bin
    of 100 has entropy 0 and Gini (2 * 100 - 100 - 1) / 100 = 0.99, each whatever the other
    clip holds."""
    masks = torch.zeros(2, 10, 10)
    masks[0] = 1.0
    masks[1, 3, 4] = 0.5
    assert metrics.complexity(masks).tolist() == pytest.approx([math.log(100), 0.0], abs=1e-5)
    # (quantus' offset of 1e-7 per bin moves the Gini index of the single bin by 2e-5)
    assert metrics.sparseness(masks).tolist() == pytest.approx([0.0, 0.99], abs=1e-4)


def test_topk_fidelity_by_hand():
    surrogate = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])  # ranks: (1, 2, 0), (0, 2, 1)
    classes = torch.tensor([2, 1])
    assert metrics.topk_fidelity(surrogate, classes, 1).tolist() == [0.0, 0.0]
    assert metrics.topk_fidelity(surrogate, classes, 2).tolist() == [1.0, 0.0]
    assert metrics.topk_fidelity(surrogate, classes, 3).tolist() == [1.0, 1.0]


def test_si_sdr_with_an_offset_and_a_scale_by_hand():
    """s = (1, -1, 1, -1) (zero mean), e = 2 s + n + 0.5 with n = 0.5 (1, 1, -1, -1), n _|_ s:
    after removing the means, the optimal scale is 2, so SI-SDR = 10 log10(|2 s|^2 / |n|^2)
    = 10 log10(16 / 1)."""
    s = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    n = 0.5 * torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    estimate = 2 * s + n + 0.5
    assert metrics.si_sdr(estimate, s).item() == pytest.approx(10 * math.log10(16.0), abs=1e-4)
    # the offset and the scale change nothing; the noise does
    assert metrics.si_sdr(-3 * estimate + 7, s).item() == pytest.approx(
        10 * math.log10(16.0), abs=1e-4
    )


def test_mask_metrics_gathers_the_suite():
    probs = torch.tensor([[0.6, 0.4]])
    values = metrics.mask_metrics(
        probs, probs, probs, torch.tensor([0]), torch.tensor([[[3.0, 0.0], [0.0, -1.0]]])
    )
    assert list(values) == ["fid_in", "faithfulness", "AI", "AD", "AG", "SPS", "COMP"]
    assert values["SPS"].item() == pytest.approx(0.625, abs=1e-6)
    # each entry from its own probabilities: the two clips of test_suite_on_two_clips_by_hand
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    probs_int = torch.tensor([[0.9, 0.05, 0.05], [0.7, 0.2, 0.1]])
    probs_removed = torch.tensor([[0.1, 0.5, 0.4], [0.2, 0.5, 0.3]])
    two = metrics.mask_metrics(probs, probs_int, probs_removed, torch.tensor([0, 1]), torch.ones(2, 2, 2))
    assert two["fid_in"].tolist() == [1.0, 0.0]
    assert two["faithfulness"].tolist() == pytest.approx([0.5, 0.3])
    assert two["AD"].tolist() == pytest.approx([0.0, 75.0])
    # |mask| (3, 1) normalised: (3/4, 1/4)
    assert values["COMP"].item() == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), abs=1e-6
    )


def test_target_region_where_the_target_magnitude_is_larger():
    """An identity 'STFT' of (re, im) pairs: target magnitudes (5, 1), background (2, 1):
    the target dominates the first bin only (equal is not more)."""
    target = torch.tensor([[[[3.0, 4.0], [0.0, 1.0]]]])  # (B 1, frames 1, F 2, 2)
    background = torch.tensor([[[[2.0, 0.0], [1.0, 0.0]]]])
    region = metrics.target_region(target, background, lambda pairs: pairs)
    assert region.tolist() == [[[1.0, 0.0]]]
    # magnitudes against magnitudes: 5 > 4 (its energy 25 against the background's 16)
    louder = metrics.target_region(
        torch.tensor([[[[3.0, 4.0]]]]), torch.tensor([[[[4.0, 0.0]]]]), lambda pairs: pairs
    )
    assert louder.tolist() == [[[1.0]]]


def test_spectrogram_energy_is_the_squared_magnitude():
    magnitude = torch.tensor([[[0.0, 0.5, 3.0, 100.0]]])
    energy = metrics.spectrogram_energy(torch.log1p(magnitude))
    assert energy.tolist()[0][0] == pytest.approx([0.0, 0.25, 9.0, 10000.0], rel=1e-5)


# |STFT| (3, 1 / 2, 0), energies (9, 1 / 4, 0); region: bins (0, 0) and (1, 0)
MAGNITUDE = torch.tensor([[[3.0, 1.0], [2.0, 0.0]]])
REGION = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])


def test_energy_precision_and_recall_of_a_soft_mask_by_hand():
    """mask (1, 1 / 0.5, 1): the interpretation keeps |STFT| (3, 1 / sqrt(3) - 1, 0), as the
    mask scales log1p |STFT|: expm1(0.5 log1p 2) = sqrt(3) - 1; energies 9, 1, (sqrt(3) - 1)^2.
    precision = (9 + (sqrt 3 - 1)^2) / (9 + 1 + (sqrt 3 - 1)^2); recall = the same / (9 + 4)."""
    X = torch.log1p(MAGNITUDE)
    mask = torch.tensor([[[1.0, 1.0], [0.5, 1.0]]])
    half = (math.sqrt(3) - 1) ** 2
    precision = metrics.gt_precision(mask * X, X, REGION)
    recall = metrics.gt_recall(mask * X, X, REGION)
    assert precision.item() == pytest.approx((9 + half) / (10 + half), rel=1e-5)
    assert recall.item() == pytest.approx((9 + half) / 13, rel=1e-5)


def test_energy_precision_and_recall_of_the_reference_masks():
    X = torch.log1p(MAGNITUDE)
    # all ones: precision = (9 + 4) / 14, recall 1; the region itself: 1 and 1
    assert metrics.gt_precision(X, X, REGION).item() == pytest.approx(13 / 14, rel=1e-6)
    assert metrics.gt_recall(X, X, REGION).item() == pytest.approx(1.0)
    assert metrics.gt_precision(REGION * X, X, REGION).item() == pytest.approx(1.0)
    assert metrics.gt_recall(REGION * X, X, REGION).item() == pytest.approx(1.0)
    # nothing kept of a region with energy: 0 and 0; an empty region: recall undefined
    assert metrics.gt_precision(0 * X, X, REGION).item() == 0.0
    assert metrics.gt_recall(0 * X, X, REGION).item() == 0.0
    assert torch.isnan(metrics.gt_recall(X, X, torch.zeros_like(REGION))).all()
    # nothing kept of a region without energy: precision undefined, not 0
    assert torch.isnan(metrics.gt_precision(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), REGION)).all()


def test_energy_precision_and_recall_are_per_clip_in_a_batch():
    """A second clip at twice the magnitude (four times the energy, in each bin): the same
    shares as the first, 13 / 14 and 1, each over its own clip's energy (52 / 56)."""
    X = torch.log1p(torch.cat([MAGNITUDE, 2 * MAGNITUDE]))
    regions = torch.cat([REGION, REGION])
    assert metrics.gt_precision(X, X, regions).tolist() == pytest.approx([13 / 14, 13 / 14], rel=1e-5)
    assert metrics.gt_recall(X, X, regions).tolist() == pytest.approx([1.0, 1.0], rel=1e-5)
    # keeping only the first clip's region: its precision 1; the second keeps nothing (0)
    kept = torch.stack([REGION[0], torch.zeros_like(REGION[0])])
    assert metrics.gt_precision(kept * X, X, regions).tolist() == pytest.approx([1.0, 0.0])


def test_ground_truth_metrics_by_hand():
    """The audio is the target (clipped SI-SDR) and the clip is target + an orthogonal noise
    of the same energy (0 dB): SI-SDRi = SI_SDR_CLIP_DB."""
    target = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    clip = target + torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    X = torch.log1p(MAGNITUDE)
    gt = metrics.ground_truth_metrics(X, X, target, clip, target, REGION)
    assert gt["si_sdr"].item() == metrics.SI_SDR_CLIP_DB
    assert gt["si_sdri"].item() == pytest.approx(metrics.SI_SDR_CLIP_DB, abs=1e-4)
    assert gt["gt_precision"].item() == pytest.approx(13 / 14, rel=1e-6)
    assert gt["gt_recall"].item() == pytest.approx(1.0)


def test_si_sdri_of_a_clip_that_is_not_at_0_db_by_hand():
    """s = (1, -1, 1, -1) and n = (1, 1, -1, -1), orthogonal, zero mean, |s|^2 = |n|^2 = 4: the
    clip s + n / 2 has SI-SDR 10 log10(4 / 1), the audio s + n / 4 has 10 log10(4 / 0.25), so
    SI-SDRi = 10 log10(16) - 10 log10(4) = 10 log10(4) (the improvement over the clip, against
    the target)."""
    s = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    n = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    X = torch.log1p(MAGNITUDE)
    gt = metrics.ground_truth_metrics(X, X, s + n / 4, s + n / 2, s, REGION)
    assert gt["si_sdr"].item() == pytest.approx(10 * math.log10(16.0), abs=1e-4)
    assert gt["si_sdri"].item() == pytest.approx(10 * math.log10(4.0), abs=1e-4)


def test_a_silent_interpretation_scores_the_si_sdr_floor():
    """The interpretation's audio is the estimate and the target the reference: a silent
    interpretation of s + n / 2 scores -SI_SDR_CLIP_DB, and its SI-SDRi is that minus the
    clip's 10 log10(4) (test_si_sdri_of_a_clip_that_is_not_at_0_db_by_hand)."""
    s = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    n = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    X = torch.log1p(MAGNITUDE)
    gt = metrics.ground_truth_metrics(0 * X, X, torch.zeros_like(s), s + n / 2, s, REGION)
    assert gt["si_sdr"].item() == -metrics.SI_SDR_CLIP_DB
    assert gt["si_sdri"].item() == pytest.approx(-metrics.SI_SDR_CLIP_DB - 10 * math.log10(4.0), abs=1e-4)


def test_si_sdr_of_silent_signals_by_hand():
    """A silent estimate (energy at most EPS once centred) against a sound reference is the
    floor -SI_SDR_CLIP_DB, even when it is a scaled copy of the reference; a silent (or
    constant) reference has no SI-SDR: NaN."""
    s = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    assert metrics.si_sdr(torch.zeros_like(s), s).item() == -metrics.SI_SDR_CLIP_DB
    assert metrics.si_sdr(1e-6 * s, s).item() == -metrics.SI_SDR_CLIP_DB  # energy 4e-12
    assert metrics.si_sdr(torch.full_like(s, 0.5), s).item() == -metrics.SI_SDR_CLIP_DB
    assert torch.isnan(metrics.si_sdr(s, torch.zeros_like(s))).all()
    assert torch.isnan(metrics.si_sdr(s, torch.full_like(s, 0.5))).all()


def test_bootstrap_interval_of_the_median_by_hand():
    """Eight 0s and one 100: a resample's median is 100 only when 5 of its 9 draws are the
    100 (probability sum_{k>=5} C(9, k) (1/9)^k (8/9)^(9-k) ~ 0.0014 < 2.5 %), so the
    median's interval is (0, 0); the mean's reaches 100 / 9 (one draw of the 100 or more:
    probability 1 - (8/9)^9 ~ 0.65)."""
    values = torch.tensor([0.0] * 8 + [100.0])
    assert metrics.bootstrap_interval(values, median=True) == (0.0, 0.0)
    assert metrics.bootstrap_interval(values)[1] >= 100 / 9


def test_bootstrap_interval_of_two_values_by_hand():
    """Resamples of (0, 1) have mean 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4: the
    2.5 % and 97.5 % percentiles of 1000 of them are 0 and 1."""
    assert metrics.bootstrap_interval(torch.tensor([0.0, 1.0])) == (0.0, 1.0)
    assert all(math.isnan(bound) for bound in metrics.bootstrap_interval(torch.tensor([])))


def test_bootstrap_interval_does_not_depend_on_the_order_of_the_values():
    """The same clips gathered in another order (torchrun's processes, another batch size)
    give the same interval, to the last bit."""
    values = torch.arange(20.0)
    shuffled = values[torch.randperm(20, generator=torch.Generator().manual_seed(0))]
    interval = metrics.bootstrap_interval(values)
    assert metrics.bootstrap_interval(values.flip(0)) == interval
    assert metrics.bootstrap_interval(shuffled) == interval
    assert metrics.bootstrap_interval(shuffled, median=True) == metrics.bootstrap_interval(values, median=True)


COVERAGE_REPETITIONS = 1000


def test_bootstrap_interval_covers_the_true_mean_95_percent_of_the_time():
    """Simulated clips with a known mean: the 95 % interval covers it in 93-97 % of the
    repetitions (a 90 % interval covers ~90 %, a 99 % one ~99 %; 1000 repetitions give the
    share within +-0.7 %, one standard error)."""
    generator = torch.Generator().manual_seed(0)
    covered = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: a thread pool on busy cores only adds waiting
    try:
        for repetition in range(COVERAGE_REPETITIONS):
            values = 2.0 + torch.randn(100, generator=generator)  # true mean 2
            low, high = metrics.bootstrap_interval(values, seed=repetition)
            covered += low <= 2.0 <= high
    finally:
        torch.set_num_threads(threads)
    assert 0.93 <= covered / COVERAGE_REPETITIONS <= 0.97


def test_finite_or_none_by_hand():
    data = {"a": [1.0, float("nan")], "b": {"c": float("inf"), "d": 2}, "e": "x"}
    assert metrics.finite_or_none(data) == {"a": [1.0, None], "b": {"c": None, "d": 2}, "e": "x"}


def test_stage_stats_by_hand():
    """Means of the finite clips, the median for median names, batch scalars weighted by size."""
    stats = metrics.StageStats(median_names=("ff_x",))
    stats.add_values({"fid_in": torch.tensor([1.0, 0.0]), "ff_x": torch.tensor([5.0, 1.0])})
    stats.add_values(
        {"fid_in": torch.tensor([1.0, float("nan")]), "ff_x": torch.tensor([2.0, 100.0])}
    )
    stats.add_scalar("loss", 1.0, 2)  # a batch of 2 clips with mean loss 1 ...
    stats.add_scalar("loss", 4.0, 1)  # ... and one of 1 clip with 4: (2 + 4) / 3
    summary = stats.summary()
    assert summary["fid_in"] == pytest.approx(2 / 3)  # (1 + 0 + 1) / 3, the NaN left out
    assert summary["ff_x"] == pytest.approx(2.0)  # the lower median of (1, 2, 5, 100)
    assert summary["loss"] == pytest.approx(2.0)
    assert stats.n_undefined == {"fid_in": 1}
