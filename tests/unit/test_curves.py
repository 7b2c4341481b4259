"""Deletion / insertion curves (recipes/evaluation/curves.py), bootstrap intervals, captum baselines, Kendall tau."""

import pytest
import torch
from scipy.stats import kendalltau

from recipes.evaluation import baselines, curves, metrics
from recipes.reporting import agreement, tables

FRAMES, BINS = 20, 16
EVIDENCE = (7, 5)  # the one bin the hand-made classifier reads


def reads_one_bin(X):
    """A hand-made classifier: class 0 when the evidence bin holds energy, else class 1."""
    logit = 4.0 * (X[:, EVIDENCE[0], EVIDENCE[1]] - 0.5)  # (n,)
    return torch.softmax(torch.stack([logit, -logit], dim=1), dim=1)  # (n, 2)


def clips(n=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    X = 0.3 * torch.rand(n, FRAMES, BINS, generator=generator)
    X[:, EVIDENCE[0], EVIDENCE[1]] = 2.0  # the event: p_0 close to 1
    return X, generator


def test_deleting_the_ground_truth_region_drops_p_c_faster_than_a_random_mask():
    X, generator = clips()
    region = torch.zeros_like(X)  # the target-dominant region: a patch around the evidence
    region[:, EVIDENCE[0] - 1 : EVIDENCE[0] + 2, EVIDENCE[1] - 1 : EVIDENCE[1] + 2] = 1.0
    classes = reads_one_bin(X).argmax(dim=1)
    assert (classes == 0).all()
    random = baselines.random_mask(region, generator)
    truth = curves.probability_curves(reads_one_bin, X, region, classes, generator=generator)
    shuffled = curves.probability_curves(reads_one_bin, X, random, classes, generator=generator)
    # the 9 region bins are 2.8 % of the 320: the first 5 % step already removes the evidence
    assert (truth["deletion"][:, 1] < 0.5).all() and (truth["insertion"][:, 1] > 0.5).all()
    auc_truth, auc_random = curves.curve_metrics(truth), curves.curve_metrics(shuffled)
    assert auc_truth["deletion_auc"].mean() < auc_random["deletion_auc"].mean() - 0.2
    assert auc_truth["insertion_auc"].mean() > auc_random["insertion_auc"].mean() + 0.2
    # both ends are the same for every mask: the whole clip, and nothing of it
    for drawn in (truth, shuffled):
        assert torch.allclose(drawn["deletion"][:, 0], reads_one_bin(X)[:, 0])
        assert torch.allclose(drawn["insertion"][:, 0], reads_one_bin(torch.zeros_like(X))[:, 0])


@pytest.mark.parametrize("deletion_value", curves.DELETION_VALUES)
def test_every_auc_lies_in_0_1(deletion_value):
    generator = torch.Generator().manual_seed(3)
    net = torch.nn.Linear(BINS, 5)
    X = 3 * torch.rand(6, FRAMES, BINS, generator=generator)

    def probabilities(inputs):
        return torch.softmax(10 * net(inputs.mean(dim=1)), dim=1)

    classes = probabilities(X).argmax(dim=1)
    for mask in (torch.rand(X.shape, generator=generator), torch.ones_like(X), torch.zeros_like(X)):
        drawn = curves.probability_curves(
            probabilities, X, mask, classes, deletion_value, generator, max_batch=7
        )
        assert drawn["deletion"].shape == (6, len(curves.CURVE_FRACTIONS))
        for auc in curves.curve_metrics(drawn).values():
            assert ((auc >= 0) & (auc <= 1)).all()


def test_batching_does_not_change_the_curves():
    X, generator = clips(3)
    mask = torch.rand(X.shape, generator=generator)
    classes = torch.zeros(3, dtype=torch.long)
    one = curves.probability_curves(reads_one_bin, X, mask, classes, generator=torch.Generator().manual_seed(1), max_batch=1)
    many = curves.probability_curves(reads_one_bin, X, mask, classes, generator=torch.Generator().manual_seed(1), max_batch=500)
    assert torch.equal(one["deletion"], many["deletion"]) and torch.equal(one["insertion"], many["insertion"])


def test_ties_are_ranked_randomly_not_by_position():
    ranks = curves.bin_ranks(torch.zeros(1, 100, 10), torch.Generator().manual_seed(0))
    assert sorted(ranks.flatten().tolist()) == list(range(1000))
    first_tenth = ranks[0, :10]  # the clip's first 10 frames
    assert (first_tenth < 100).float().mean() < 0.5  # by position they would all go first


def test_noise_floor_is_a_low_quantile_per_frequency_bin():
    X = torch.arange(10.0).view(1, 10, 1).repeat(1, 1, 3)
    floor = curves.deletion_reference(X, "noise_floor")
    assert floor.shape == (1, 1, 3) and torch.allclose(floor, torch.full((1, 1, 3), 0.9))
    with pytest.raises(ValueError, match="noise_floor"):
        curves.deletion_reference(X, "mean")


# ---------------------------------------------------------------- bootstrap
@pytest.mark.parametrize("value", [0.1, 1.0, -3.7, 61.25])
def test_bootstrap_interval_of_a_constant_is_that_constant(value):
    constant = torch.full((37,), value)
    assert metrics.bootstrap_interval(constant, seed=5) == (constant[0].item(), constant[0].item())
    assert metrics.bootstrap_interval(constant, median=True) == (constant[0].item(), constant[0].item())


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    values = torch.randn(200, generator=torch.Generator().manual_seed(0))
    first = metrics.bootstrap_interval(values, seed=1)
    assert first == metrics.bootstrap_interval(values, seed=1)
    assert first != metrics.bootstrap_interval(values, seed=2)
    low, high = first
    assert low < values.mean().item() < high
    # about 1.96 standard errors either side of the mean
    standard_error = values.std().item() / 200**0.5
    assert (high - low) / 2 == pytest.approx(1.96 * standard_error, rel=0.2)


def test_stage_stats_give_intervals_of_the_per_clip_values_only():
    stats = metrics.StageStats(median_names=("ff_x",))
    stats.add_values({"fid_in": torch.tensor([1.0, 1.0, 0.0, float("nan")]), "ff_x": torch.ones(3)})
    stats.add_scalar("loss", 0.5, 4)
    summary = stats.summary(bootstrap_seed=0, n_resamples=50)
    assert set(stats.intervals) == {"fid_in", "ff_x"}  # not the batch scalar
    low, high = stats.intervals["fid_in"]
    assert 0.0 <= low <= summary["fid_in"] <= high <= 1.0
    assert stats.intervals["ff_x"] == (1.0, 1.0)


# ---------------------------------------------------------- captum baselines


def test_baselines_flag_is_checked():
    assert baselines.parse_baselines("none") == ()
    assert baselines.parse_baselines(" smoothgrad , random ") == ("random", "smoothgrad")
    with pytest.raises(ValueError, match="unknown baseline"):
        baselines.parse_baselines("random,gradcam")


# -------------------------------------------------------------- Kendall tau
def test_metric_agreement_turns_lower_is_better_metrics_around():
    rows = {  # a better method: higher FF, lower AD and deletion AUC, higher GT precision
        f"m{i}": {"faithfulness": 0.1 * i, "AD": 50 - 5 * i, "deletion_auc": 0.9 - 0.1 * i, "gt_precision": 0.1 * i}
        for i in range(5)
    }
    rows["m0"]["gt_precision"] = 0.35  # one disagreement
    result = agreement.metric_agreement(rows)
    assert result["methods"] == 5
    assert result["tau"]["faithfulness"]["AD"] == pytest.approx(1.0)
    assert result["tau"]["AD"]["deletion_auc"] == pytest.approx(1.0)
    ff = [rows[m]["faithfulness"] for m in rows]
    gt = [rows[m]["gt_precision"] for m in rows]
    assert result["tau"]["faithfulness"]["gt_precision"] == pytest.approx(kendalltau(ff, gt).statistic)
    table = agreement.agreement_markdown(result, tables.metric_title)
    assert "Fid-In" not in table and "| AD % | 1.00 |" in table  # Fid-In has no value: not ranked
    assert "GT precision" in agreement.agreement_line(result, tables.metric_title)


def test_metric_agreement_needs_three_methods():
    rows = {"a": {"fid_in": 1.0, "AD": 1.0}, "b": {"fid_in": 0.5, "AD": 2.0}}
    assert agreement.metric_agreement(rows)["metrics"] == []
    assert agreement.agreement_markdown(agreement.metric_agreement(rows)) == ""


def test_the_best_baseline_is_any_competitor_the_random_mask_and_the_map_ones_included():
    """baseline_margins' competitors: the interpreter's own random mask (here the best: 6 > 2,
    margin 5 - 6 = -1) and the map baselines (AMT 11.5 > the floor's 10: margin 13 - 11.5)."""
    random_best = {"interpreter": "PIQ", "methods": {
        "PIQ": {"si_sdri": 5.0}, "random": {"si_sdri": 6.0}, "above_floor": {"si_sdri": 2.0}}}
    line = tables.baseline_margins([random_best]).splitlines()[-1]
    assert line == "| PIQ | +5.00 | random mask | +6.00 | -1.00 | - | - | - |"
    amt_best = {"interpreter": "PIQ", "methods": {
        "PIQ": {"si_sdri": 13.0}, "random": {"si_sdri": -8.0}, "above_floor": {"si_sdri": 10.0},
        "amt": {"si_sdri": 11.5}}}
    line = tables.baseline_margins([amt_best]).splitlines()[-1]
    assert line == "| PIQ | +13.00 | AMT (activation map) | +11.50 | +1.50 | - | - | - |"


def test_the_agreement_line_lists_the_metrics_best_agreeing_first():
    """Three methods: FF ranks them as GT precision does (tau +1), Fid-In the other way (-1)."""
    rows = {
        "a": {"faithfulness": 0.1, "fid_in": 0.9, "gt_precision": 0.2},
        "b": {"faithfulness": 0.2, "fid_in": 0.5, "gt_precision": 0.4},
        "c": {"faithfulness": 0.3, "fid_in": 0.1, "gt_precision": 0.6},
    }
    line = agreement.agreement_line(agreement.metric_agreement(rows), tables.metric_title)
    assert line.endswith("(the ground truth): FF +1.00, Fid-In -1.00")
