"""L2I's interpretation math, batched: masks, relevance, component selection."""

import pytest
import torch

from models.L2I import PsiOptimized, Theta
from recipes.interpreters.l2i import (
    activations_from_psi,
    oracle_selection,
    random_selection,
    soft_mask,
)


@pytest.fixture
def nmf():
    gen = torch.Generator().manual_seed(0)
    W = torch.rand(33, 6, generator=gen)  # (F, K)
    H = torch.rand(4, 6, 20, generator=gen)  # (B, K, frames)
    H[:, 2] = 0.0  # one silent component
    return W, H


def test_masks_lie_in_unit_interval(nmf):
    W, H = nmf
    gen = torch.Generator().manual_seed(1)
    selected = (torch.rand(4, 6, generator=gen) > 0.5).float()
    mask = soft_mask(W, H, selected)
    assert mask.shape == (4, 20, 33)
    assert mask.min() >= 0.0 and mask.max() <= 1.0 + 1e-6


def test_all_components_selected_give_the_input(nmf):
    """Every component kept: the mask is 1 where W H > 0, and X_int = X."""
    W, H = nmf
    mask = soft_mask(W, H, torch.ones(4, 6))
    assert torch.allclose(mask, torch.ones_like(mask), atol=1e-5)
    X = torch.rand(4, 20, 33)
    assert torch.allclose(mask * X, X, atol=1e-5)


def test_component_masks_sum_to_one(nmf):
    W, H = nmf
    per_component = torch.stack([soft_mask(W, H, torch.eye(6)[k].expand(4, 6)) for k in range(6)])
    assert torch.allclose(per_component.sum(0), torch.ones(4, 20, 33), atol=1e-5)


def test_batched_interpretation_equals_clip_by_clip(nmf):
    W, H = nmf
    theta = Theta(n_comp=6, T=20, num_classes=3)
    classes = torch.tensor([0, 2, 1, 2])
    r = theta.relevance(H, classes)
    selected = (r > 0.2).float()
    batched = soft_mask(W, H, selected)
    for b in range(4):
        r_b = theta.relevance(H[b : b + 1], classes[b : b + 1])
        assert torch.allclose(r_b, r[b : b + 1], atol=1e-6)
        alone = soft_mask(W, H[b : b + 1], (r_b > 0.2).float())
        assert torch.allclose(alone, batched[b : b + 1], atol=1e-6)


@pytest.mark.parametrize("pooling", ["linear", "attention", "max"])
def test_relevance_works_with_every_pooling(nmf, pooling):
    _, H = nmf
    theta = Theta(n_comp=6, T=20, num_classes=3, pooling=pooling)
    r = theta.relevance(H, torch.tensor([0, 1, 2, 0]))
    assert r.shape == (4, 6)
    assert r.abs().max() <= 1.0 + 1e-6
    assert torch.allclose(r.abs().amax(dim=1), torch.ones(4), atol=1e-6)  # the top one is +-1


def test_random_selection_is_disjoint_with_same_count():
    gen = torch.Generator().manual_seed(3)
    selected = (torch.rand(8, 10, generator=gen) > 0.7).float()
    selected[0] = 1.0  # nothing left to draw from
    selected[1] = 0.0  # nothing to match
    randoms = random_selection(selected, generator=gen)
    assert torch.all(randoms * selected == 0)
    expected = torch.minimum(selected.sum(1), 10 - selected.sum(1))
    assert torch.equal(randoms.sum(1), expected)


def test_activations_from_psi_match_the_input_frames():
    psi = PsiOptimized(dim=8, K=5, use_adapter=False, adapter_reduce_dim=False).eval()
    representations = torch.randn(2, 8, 5, 32)  # a 1 s clip through Conv2dEncoder_v2
    H = activations_from_psi(psi(representations), 87)
    assert H.shape == (2, 5, 87)
    assert H.min() >= 0.0
    H_cnn = activations_from_psi(torch.rand(2, 5, 207), 431)
    assert H_cnn.shape == (2, 5, 431)


def _energy_f1(W, H, X, region, selected):
    """F1 of gt_precision / gt_recall (recipes/evaluation/metrics.py) of L2I's mask for `selected`."""
    kept = soft_mask(W, H, selected) * X
    kept_in = (kept * region).flatten(1).sum(1)
    precision = kept_in / kept.flatten(1).sum(1).clamp(min=1e-12)
    recall = kept_in / (X * region).flatten(1).sum(1)
    return 2 * precision * recall / (precision + recall).clamp(min=1e-12)


def test_the_oracle_selection_is_the_best_f1_of_all_component_subsets():
    g = torch.Generator().manual_seed(0)
    K, B = 6, 4
    W = torch.rand(10, K, generator=g)
    H = torch.rand(B, K, 7, generator=g) * (torch.rand(B, K, 1, generator=g) > 0.3)  # some components off
    X = torch.rand(B, 7, 10, generator=g) * 3
    region = (torch.rand(B, 7, 10, generator=g) > 0.7).float()
    chosen = oracle_selection(W, H, X, region)
    assert chosen.shape == (B, K) and set(chosen.unique().tolist()) <= {0.0, 1.0}
    subsets = torch.tensor([[(n >> k) & 1 for k in range(K)] for n in range(1, 2**K)], dtype=torch.float)
    for b in range(B):
        every = torch.stack([_energy_f1(W, H[b : b + 1], X[b : b + 1], region[b : b + 1], s[None])[0] for s in subsets])
        best = _energy_f1(W, H[b : b + 1], X[b : b + 1], region[b : b + 1], chosen[b : b + 1])[0]
        assert best == pytest.approx(float(every.max()), rel=1e-4)
        assert not (chosen[b].bool() & (H[b].sum(1) == 0)).any()  # no silent component


def test_the_oracle_ranks_components_by_their_share_in_the_region_by_hand():
    """W = I: component 0 is bin 0, component 1 bin 1, both active in 2 frames. X: bin 0 holds
    1 in the region (frame 0) and 9 outside it; bin 1 holds 0.9, all in the region. Shares
    in / all: 1 / 10 and 0.9 / 0.9; the region holds 1.9. F1 of {1} = 2 * 0.9 / (0.9 + 1.9)
    = 0.643, of {0, 1} = 2 * 1.9 / (10.9 + 1.9) = 0.297, of {0} = 2 / (10 + 1.9) = 0.168: the
    best set is {1} (a ranking by the energy in the region alone would start with 0)."""
    W, H = torch.eye(2), torch.ones(1, 2, 2)
    X = torch.tensor([[[1.0, 0.9], [9.0, 0.0]]])  # (1, frames 2, F 2)
    region = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    assert oracle_selection(W, H, X, region).tolist() == [[0.0, 1.0]]


def test_the_oracle_selects_nothing_when_the_region_holds_no_energy():
    W, H, X = torch.rand(10, 4), torch.rand(2, 4, 5), torch.rand(2, 5, 10)
    assert oracle_selection(W, H, X, torch.zeros(2, 5, 10)).sum() == 0
