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
