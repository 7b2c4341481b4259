"""Every function of recipes/evaluation/curves.py on a case computed by hand (issue 25)."""

import pytest
import torch

from recipes.evaluation import curves, metrics

FIVE_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)


def reads_the_diagonal(X):
    """A hand-made classifier: p_0 = (X[0, 0] + X[1, 1]) / 2, p_1 = 1 - p_0."""
    p0 = (X[:, 0, 0] + X[:, 1, 1]) / 2
    return torch.stack([p0, 1 - p0], dim=1)


# the clip: the evidence on the diagonal; the mask ranks (0, 0), (1, 1), (0, 1), (1, 0)
X = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
MASK = torch.tensor([[[0.9, 0.1], [0.2, 0.8]]])


def test_deletion_reference_by_hand():
    X3 = torch.tensor([[[1.0, 4.0], [3.0, 2.0], [2.0, 6.0]]])
    assert curves.deletion_reference(X3, "zero").tolist() == [[[0.0, 0.0]]]
    # the 10 % quantile over the 3 frames: sorted (1, 2, 3) -> 1 + 0.2 (2 - 1); (2, 4, 6) -> 2.4
    assert curves.deletion_reference(X3, "noise_floor").tolist()[0][0] == pytest.approx([1.2, 2.4])


def test_bin_ranks_by_hand():
    assert curves.bin_ranks(MASK).tolist() == [[[0, 3], [2, 1]]]
    # signed values (an attribution before normalisation): the highest first, -1 last
    assert curves.bin_ranks(torch.tensor([[[-1.0, -0.5, 0.0, 0.5]]])).tolist() == [[[3, 2, 1, 0]]]
    assert curves.bin_ranks(torch.tensor([[[-2.0, -3.0, -0.25]]])).tolist() == [[[1, 2, 0]]]
    ties = curves.bin_ranks(torch.tensor([[[1.0, 0.0, 0.0]]]), torch.Generator().manual_seed(0))
    assert ties[0, 0, 0] == 0 and sorted(ties[0, 0, 1:].tolist()) == [1, 2]


def test_step_counts_by_hand():
    assert curves.step_counts(4, FIVE_STEPS).tolist() == [0, 1, 2, 3, 4]
    assert curves.step_counts(20).tolist() == list(range(21))  # 5 % of 20 bins: one per step
    # shares that are not whole bins go to the nearest count: 0.9, 1.8, 2.7 of 3 bins -> 1, 2, 3
    assert curves.step_counts(3, (0.0, 0.3, 0.6, 0.9, 1.0)).tolist() == [0, 1, 2, 3, 3]


def test_ties_are_ranked_by_the_generator_not_by_position():
    """An all-zero mask (every bin tied): each seed gives its own order, the same seed the same."""
    flat = torch.zeros(1, 4, 8)
    orders = [curves.bin_ranks(flat, torch.Generator().manual_seed(seed)) for seed in (0, 1, 0)]
    assert sorted(orders[0].flatten().tolist()) == list(range(32))  # a ranking of the 32 bins
    assert torch.equal(orders[0], orders[2])
    assert not torch.equal(orders[0], orders[1])  # 1 / 32! of failing by chance


def test_endpoint_probabilities_by_hand():
    """Clip 0 explained as class 0, clip 1 as class 1: the whole clip, then the reference alone."""
    both = torch.cat([X, 0.5 * X])
    full, empty = curves.endpoint_probabilities(reads_the_diagonal, both, torch.tensor([0, 1]))
    assert full.tolist() == [1.0, 0.5] and empty.tolist() == [0.0, 1.0]
    # the noise floor of each bin over the 2 frames (0 and 1): 0.1, so p_0 = 0.1
    _, empty = curves.endpoint_probabilities(
        reads_the_diagonal, X, torch.tensor([0]), "noise_floor"
    )
    assert empty.tolist() == pytest.approx([0.1])


def test_probability_curves_and_their_aucs_by_hand():
    drawn = curves.probability_curves(
        reads_the_diagonal, X, MASK, torch.tensor([0]), fractions=FIVE_STEPS
    )
    # deletion: (0, 0) goes first (p_0 = 1/2), then (1, 1) (0); insertion the other way round
    assert drawn["deletion"].tolist() == [[1.0, 0.5, 0.0, 0.0, 0.0]]
    assert drawn["insertion"].tolist() == [[0.0, 0.5, 1.0, 1.0, 1.0]]
    aucs = curves.curve_metrics(drawn, FIVE_STEPS)
    # trapezoids of width 1/4: (1 + 1/2) / 8 + (1/2) / 8 = 1/4; (1/2) / 8 + (3/2) / 8 + 1/4 + 1/4 = 3/4
    assert aucs["deletion_auc"].tolist() == pytest.approx([0.25])
    assert aucs["insertion_auc"].tolist() == pytest.approx([0.75])


def test_probability_curves_at_fractions_out_of_order_by_hand():
    """Shares given out of order: the same values as the hand case above, in the order asked."""
    drawn = curves.probability_curves(
        reads_the_diagonal, X, MASK, torch.tensor([0]), fractions=(0.0, 0.5, 0.25, 0.75, 1.0)
    )
    assert drawn["deletion"].tolist() == [[1.0, 0.0, 0.5, 0.0, 0.0]]
    assert drawn["insertion"].tolist() == [[0.0, 1.0, 0.5, 1.0, 1.0]]


def test_probability_curves_on_the_noise_floor_by_hand():
    """A removed bin takes its frequency's floor (0.1 here), not silence."""
    drawn = curves.probability_curves(
        reads_the_diagonal, X, MASK, torch.tensor([0]), "noise_floor", fractions=FIVE_STEPS
    )
    assert drawn["deletion"][0].tolist() == pytest.approx([1.0, 0.55, 0.1, 0.1, 0.1])
    assert drawn["insertion"][0].tolist() == pytest.approx([0.1, 0.55, 1.0, 1.0, 1.0])


def test_curve_auc_by_hand():
    curve = torch.tensor([[1.0, 0.5, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    assert curves.curve_auc(curve, FIVE_STEPS).tolist() == pytest.approx([0.25, 1.0])


def test_curve_step_values_and_mean_curves_by_hand():
    drawn = {
        "deletion": torch.tensor([[1.0, 0.0], [0.5, 0.25]]),
        "insertion": torch.tensor([[0.0, 1.0], [0.0, 0.5]]),
    }
    values = curves.curve_step_values(drawn)
    assert values["deletion_00"].tolist() == [1.0, 0.5]
    assert values["insertion_01"].tolist() == [1.0, 0.5]
    stats = metrics.StageStats()
    stats.add_values(values)
    assert curves.mean_curves(stats.summary(), (0.0, 1.0)) == {
        "deletion": [0.75, 0.125],
        "insertion": [0.0, 0.75],
    }


def test_a_masks_curves_do_not_depend_on_the_other_masks_of_the_evaluation():
    """Was: every mask's ties were broken by the batch's one generator, in turn, so the ground
    truth's curves (a binary mask: ties only) depended on how many masks an evaluation scored
    before it (L2I's with the captum baselines, PIQ's without): the reference rows of the same
    clips differed between evaluations (and their batch sizes differ too). The classifier here
    reads the first four frames' mean
    of a 12 x 10 spectrogram of ones, so which tied bins go first changes each step's value."""
    reads_first_frames = lambda X: torch.stack(  # noqa: E731
        [X[:, :4].mean(dim=(1, 2)), 1 - X[:, :4].mean(dim=(1, 2))], dim=1
    )
    X = torch.ones(2, 12, 10)
    truth = (torch.rand(2, 12, 10, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    classes = torch.tensor([0, 0])
    alone = curves.masks_curves(reads_first_frames, X, {"ground_truth": truth}, classes, 1234, 16)
    others = {f"method{k}": torch.rand(2, 12, 10) for k in range(3)}
    after = curves.masks_curves(reads_first_frames, X, {**others, "ground_truth": truth}, classes, 1234, 16)
    for kind in ("deletion", "insertion"):
        assert torch.equal(alone["ground_truth"][kind], after["ground_truth"][kind])
    # nor on the batch size: the two clips as two batches of one (clips 16 and 17) get the same
    # curves (the demo's evaluations run at different batch sizes)
    one_by_one = [
        curves.masks_curves(reads_first_frames, X[i : i + 1], {"ground_truth": truth[i : i + 1]}, classes[:1], 1234, 16 + i)
        for i in range(2)
    ]
    for kind in ("deletion", "insertion"):
        assert torch.equal(alone["ground_truth"][kind], torch.cat([c["ground_truth"][kind] for c in one_by_one]))
    # the ties do matter: other clips' draws give other values
    elsewhere = curves.masks_curves(reads_first_frames, X, {"ground_truth": truth}, classes, 1234, 32)
    assert not torch.equal(alone["ground_truth"]["deletion"], elsewhere["ground_truth"]["deletion"])
