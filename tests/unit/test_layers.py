"""Tests for models/layers.py: the fast one-output-channel transposed convolution.

nn.ConvTranspose2d is the reference: same parameters, same outputs and
gradients (float rounding apart), same state_dict.
"""

import pytest
import torch
import torch.nn as nn

from models import L2I, PIQ
from models.layers import (
    SingleChannelConvTranspose2d,
    _KernelRowsConvTranspose,
    kernel_rows_conv_transpose,
)


def _pair(*args, dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    fast = SingleChannelConvTranspose2d(*args, **kwargs).to(dtype)
    plain = nn.ConvTranspose2d(*args, **kwargs).to(dtype)
    plain.load_state_dict(fast.state_dict())
    return fast, plain


def _forward_backward(layer, x):
    x = x.clone().requires_grad_(True)
    out = layer(x)
    # a non-uniform upstream gradient, so that a misplaced row or column shows
    weights = torch.linspace(-1, 2, out.numel(), dtype=out.dtype).reshape(out.shape)
    (out * weights).sum().backward()
    grads = [x.grad] + [p.grad for p in layer.parameters()]
    layer.zero_grad()
    return out.detach(), grads


@pytest.mark.parametrize(
    "kernel, padding, bias",
    [(12, 1, True), ((10, 8), (1, 1), True), ((3, 5), (0, 2), False), (4, 0, True)],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_conv_transpose2d(kernel, padding, bias, channels_last):
    fast, plain = _pair(6, 1, kernel, 1, padding, bias=bias)
    x = torch.randn(3, 6, 17, 21)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
        fast.to(memory_format=torch.channels_last)
    assert fast.uses_kernel_rows(x)
    out_fast, grads_fast = _forward_backward(fast, x)
    out_plain, grads_plain = _forward_backward(plain, x)
    assert out_fast.shape == out_plain.shape
    torch.testing.assert_close(out_fast, out_plain, atol=1e-5, rtol=1e-5)
    assert len(grads_fast) == len(grads_plain) == (3 if bias else 2)
    for g_fast, g_plain in zip(grads_fast, grads_plain):
        torch.testing.assert_close(g_fast, g_plain, atol=1e-4, rtol=1e-5)


def test_exact_in_double_and_gradcheck():
    fast, plain = _pair(4, 1, (5, 3), 1, 1, dtype=torch.float64)
    x = torch.randn(2, 4, 6, 7, dtype=torch.float64)
    out_fast, grads_fast = _forward_backward(fast, x)
    out_plain, grads_plain = _forward_backward(plain, x)
    torch.testing.assert_close(out_fast, out_plain, atol=1e-12, rtol=0)
    for g_fast, g_plain in zip(grads_fast, grads_plain):
        torch.testing.assert_close(g_fast, g_plain, atol=1e-12, rtol=0)
    inputs = (
        x.requires_grad_(True),
        fast.weight.detach().clone().requires_grad_(True),
        fast.bias.detach().clone().requires_grad_(True),
    )
    assert torch.autograd.gradcheck(
        lambda inp, w, b: _KernelRowsConvTranspose.apply(inp, w, b, (1, 1)), inputs
    )


def test_only_needed_gradients():
    fast, plain = _pair(4, 1, 6, 1, 1)
    fast.weight.requires_grad_(False)
    x = torch.randn(2, 4, 8, 9, requires_grad=True)
    fast(x).sum().backward()
    assert fast.weight.grad is None
    assert x.grad is not None and fast.bias.grad is not None
    # no input gradient asked: only the parameters get one
    fast.weight.requires_grad_(True)
    fast(torch.randn(2, 4, 8, 9)).sum().backward()
    assert fast.weight.grad is not None


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((4, 2, 5), {}),  # two output channels
        ((4, 1, 4, 2, 1), {}),  # stride 2
        ((4, 1, 3), {"dilation": 2}),
        ((4, 1, 3, 2, 1, 1), {}),  # output padding
    ],
)
def test_other_configurations_take_the_plain_path(args, kwargs):
    fast, plain = _pair(*args, **kwargs)
    x = torch.randn(2, 4, 6, 7)
    assert not fast.uses_kernel_rows(x)
    torch.testing.assert_close(fast(x), plain(x), atol=0, rtol=0)


def test_no_kernel_rows_under_cpu_autocast():
    fast, _ = _pair(4, 1, 6, 1, 1)
    x = torch.randn(2, 4, 8, 9)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fast.uses_kernel_rows(x)
        assert fast(x).dtype == torch.bfloat16


def test_function_shape_formula():
    x, w = torch.randn(1, 2, 9, 4), torch.randn(2, 1, 12, 12)
    assert kernel_rows_conv_transpose(x, w, (1, 1)).shape == (1, 1, 18, 13)


def test_interpreters_use_it_with_unchanged_keys():
    psi = L2I.PsiOptimized(dim=8, K=10)
    assert type(psi.decoder[12]) is SingleChannelConvTranspose2d
    assert psi.decoder[12].weight.shape == (8, 1, 12, 12)
    assert "decoder.12.weight" in psi.state_dict()
    for name in ("VectorQuantizedPSI_Audio", "VectorQuantizedPSIFocalNet_Audio"):
        decoder = getattr(PIQ, name)(dim=8, K=8, numclasses=4).decoder
        last = decoder[len(decoder) - 1]
        assert type(last) is SingleChannelConvTranspose2d and last.out_channels == 1
