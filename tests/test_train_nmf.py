"""The NMF maths (models/nmf.py) and tiny runs of both methods of recipes/train_nmf.py."""

import json
from pathlib import Path

import pytest
import torch

import recipes.train_nmf as train_nmf
from models.L2I import NMFDecoderAudio
from models.nmf import fit_activations, nmf_multiplicative_update, relative_error

REPO = Path(__file__).resolve().parents[1]
NMF_YAML = str(REPO / "hparams" / "nmf.yaml")
OUTPUTS = ("nmf_decoder.ckpt", "nmf_metrics.json", "nmf_atoms.png", "nmf_reconstructions.png")


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


def _run(tiny_synthetic, output, *extra):
    argv = [NMF_YAML, "--data_folder", str(tiny_synthetic), "--output_folder", str(output)]
    argv += ["--signal_length_s", "1", "--K", "8", "--batch_size", "4", *extra]
    return train_nmf.main(argv)


def _check_outputs(output, metrics):
    for name in OUTPUTS:
        assert (output / name).is_file(), f"{name} missing in {output}"
    state = torch.load(output / "nmf_decoder.ckpt", map_location="cpu", weights_only=True)
    decoder = NMFDecoderAudio(n_comp=8, n_freq=513)
    decoder.load_state_dict(state, strict=True)
    W = decoder.return_W().detach()
    assert (state["W"] >= 0).all()  # relu(W) = W: the decoder computes exactly W H
    H = torch.rand(2, 8, 30)  # (B, K, T)
    assert torch.allclose(decoder(H), state["W"] @ H, atol=1e-6)
    saved = json.loads((output / "nmf_metrics.json").read_text())
    assert saved["method"] == metrics["method"]
    assert saved["valid_relative_error"] == pytest.approx(metrics["valid_relative_error"])
    assert 0.0 < saved["valid_relative_error"] < 1.0
    assert saved["K"] == 8
    return W


def test_recipe_mu(tiny_synthetic, tmp_path):
    metrics = _run(
        tiny_synthetic, tmp_path / "mu", "--nmf_n_iter", "60", "--nmf_valid_n_iter", "60"
    )
    assert metrics["method"] == "mu"
    assert metrics["train_relative_error"] < 0.6
    curve = torch.tensor(metrics["mu_train_errors"])
    assert torch.all(curve[1:] <= curve[:-1] * (1 + 1e-5))  # float32 data: rounding only
    assert metrics["train_relative_error"] == curve[-1]
    _check_outputs(tmp_path / "mu", metrics)


def test_recipe_amortized(tiny_synthetic, tmp_path):
    metrics = _run(
        tiny_synthetic,
        tmp_path / "amortized",
        "--nmf_method",
        "amortized",
        "--number_of_epochs",
        "1",
        "--nmf_valid_n_iter",
        "60",
    )
    assert metrics["method"] == "amortized"
    _check_outputs(tmp_path / "amortized", metrics)
    assert "epoch: 1" in (tmp_path / "amortized" / "train_log.txt").read_text()


def test_unknown_method_is_an_error(tiny_synthetic, tmp_path):
    with pytest.raises(ValueError, match="nmf_method"):
        _run(tiny_synthetic, tmp_path, "--nmf_method", "svd")
