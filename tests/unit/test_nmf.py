"""The NMF maths (models/nmf.py): multiplicative updates and fitted activations."""

import pytest
import torch

from models.nmf import fit_activations, nmf_multiplicative_update, relative_error


def _planted(n_freq=40, K=4, n_frames=120, seed=0):
    """X = W H with non-negative W and sparse non-negative H (identifiable atoms)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(n_freq, K, generator=g, dtype=torch.float64)
    H = torch.rand(K, n_frames, generator=g, dtype=torch.float64)
    H = H * (torch.rand(K, n_frames, generator=g, dtype=torch.float64) < 0.4)  # sparse
    return W, H


def test_mu_error_never_increases():
    g = torch.Generator().manual_seed(1)
    X = torch.rand(50, 70, generator=g, dtype=torch.float64)  # not of low rank
    W, H, errors = nmf_multiplicative_update(X, K=6, n_iter=150, generator=g, chunk_size=32)
    steps = torch.tensor(errors)
    assert torch.all(steps[1:] <= steps[:-1] * (1 + 1e-9)), "the error went up"
    assert errors[-1] < 0.9 * errors[0]
    assert errors[-1] == pytest.approx(relative_error(X, W, H), rel=1e-6)
    assert (W >= 0).all() and (H >= 0).all()


def test_mu_recovers_planted_factorisation():
    W_true, H_true = _planted(seed=1)
    X = W_true @ H_true
    g = torch.Generator().manual_seed(3)
    W, H, errors = nmf_multiplicative_update(X, K=4, n_iter=1000, generator=g)
    assert relative_error(X, W, H) < 1e-2
    # each planted atom is found (up to scale and order)
    cosine = torch.nn.functional.normalize(W_true, dim=0).T @ torch.nn.functional.normalize(
        W, dim=0
    )
    assert cosine.max(dim=1).values.min() > 0.95


def test_mu_is_deterministic_for_a_seed_and_validates_input():
    X = _planted(n_frames=30)[0] @ _planted(n_frames=30)[1]
    runs = [
        nmf_multiplicative_update(X, 3, 20, generator=torch.Generator().manual_seed(5))[0]
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    with pytest.raises(ValueError, match="non-negative"):
        nmf_multiplicative_update(-X, 3, 5)
    with pytest.raises(ValueError, match="K must be"):
        nmf_multiplicative_update(X, 0, 5)


def test_fit_activations_with_fixed_dictionary():
    W_true, H_true = _planted(seed=4)
    X = W_true @ H_true
    H = fit_activations(X, W_true, n_iter=300, generator=torch.Generator().manual_seed(0))
    assert relative_error(X, W_true, H) < 1e-2
    # the L1 penalty gives sparser activations
    H_l1 = fit_activations(
        X, W_true, n_iter=300, l1=0.5, generator=torch.Generator().manual_seed(0)
    )
    assert H_l1.sum() < H.sum()


def test_mu_l1_shrinks_the_activations_to_the_fixed_point_by_hand():
    """X = (1, 3) (F = 1, N = 2), K = 1, l1 = 0.5: the unit-norm atom is 1 and the updates
    settle at H_j = c x_j - l1 with sum x_j H_j = sum H_j^2 (W's fixed point): 10 c^2 - 14 c +
    2.5 = 0, c = (14 + sqrt 96) / 20 = 1.189898, H = (0.689898, 3.069694). Without the
    penalty H = X; with it added instead of subtracted, H = (1.289898, 2.869694)."""
    X = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    W, H, _ = nmf_multiplicative_update(X, K=1, n_iter=500, l1=0.5, generator=g)
    c = (14 + 96**0.5) / 20
    assert W.item() == pytest.approx(1.0)
    assert H.flatten().tolist() == pytest.approx([c - 0.5, 3 * c - 0.5], abs=1e-5)


def test_mu_stops_when_an_iteration_gains_less_than_tol():
    """The first iterations lower the error by 0.5-0.8 % each: tol 0.5 stops after the
    second (the first comparison), tol 1e-12 runs all 30."""
    g = torch.Generator().manual_seed(1)
    X = torch.rand(50, 70, generator=g, dtype=torch.float64)
    runs = {
        tol: nmf_multiplicative_update(X, K=6, n_iter=30, generator=torch.Generator().manual_seed(2), tol=tol)[2]
        for tol in (0.5, 1e-12)
    }
    assert len(runs[0.5]) == 2 and len(runs[1e-12]) == 30
    assert 0 < runs[0.5][0] - runs[0.5][1] < 0.5 * runs[0.5][0]
