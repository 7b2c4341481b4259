"""Tiny runs of both methods of recipes/train_nmf.py (the maths: tests/unit/test_nmf.py)."""

import json
from pathlib import Path

import pytest
import torch

import recipes.train_nmf as train_nmf
from models.L2I import NMFDecoderAudio

REPO = Path(__file__).resolve().parents[2]
NMF_YAML = str(REPO / "hparams" / "nmf.yaml")
OUTPUTS = ("nmf_decoder.ckpt", "nmf_metrics.json", "nmf_atoms.png", "nmf_reconstructions.png")












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
    log = tmp_path / "amortized" / "train_log.txt"
    assert "epoch: 1" in log.read_text()
    # a run killed after logging epoch 2, before its checkpoint: the resumed run logs it once
    log.write_text(log.read_text() + "epoch: 2, lr: 1.00e-03 - train loss: 99.0 - valid loss: 99.0\n")
    _run(tiny_synthetic, tmp_path / "amortized", "--nmf_method", "amortized", "--number_of_epochs", "2")
    epochs = [line.split(",")[0] for line in log.read_text().splitlines() if line.startswith("epoch:")]
    assert epochs == ["epoch: 1", "epoch: 2"]
    assert "99.0" not in log.read_text()


def test_unknown_method_is_an_error(tiny_synthetic, tmp_path):
    with pytest.raises(ValueError, match="nmf_method"):
        _run(tiny_synthetic, tmp_path, "--nmf_method", "svd")
