"""Layers shared by the L2I and PIQ interpreters, and the classifiers' input floor.

``above_background_floor`` is what rises above each frequency's median level in
the clip: the input of a Conv2d classifier built with ``subtract_floor=True``
(``models.PIQ.Conv2dEncoder_v2``) and PIQ's ``mask_target: above_floor``.

``SingleChannelConvTranspose2d`` is the last layer of both decoders (``dim``
channels -> one time-frequency map, a 12 x 12 kernel in L2I's psi). It has the
parameters, the state_dict and the result of ``nn.ConvTranspose2d``; on CPU it
computes that result another way, several times faster.

Why: oneDNN's CPU kernel for a transposed convolution with a single output
channel and a large kernel runs at a few GFLOP/s; in the benchmark of issue 8
it was about 70 % of an interpretation's time. Split by kernel rows the same
computation is a transposed convolution with ``kh`` output channels and a
``1 x kw`` kernel (a shape oneDNN runs at GEMM speed) followed by ``kh``
shifted additions. ``bench/run_all.py --options plain_final``
measures the plain layer for comparison.

Authors
 * audio-interpret contributors 2026
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def background_floor(X):
    """Per-clip, per-frequency median of X over the frames, ``(B, 1, F)``.

    The level a bin keeps for most of the clip: the stationary background
    (hum, rain, a band of music harmonics) of a clip whose events last less
    than half of it. The median of ``torch.median``: for an even number of
    frames the lower of the two middle values, and its gradient goes to the
    frame that holds it.

    On the CPU it is found by ``numpy.partition`` (a selection: the demo's
    encoder spends 15 ms on it per 16 clips against 25 ms with
    ``torch.median``; `bench/README.md`), the gradient through a gather of
    that frame; elsewhere (and for dtypes numpy lacks) by ``torch.median``.
    Where a frequency holds a NaN the two may give another floor, but the NaN
    itself stays in ``above_background_floor``'s output either way.

    Example
    -------
    >>> X = torch.tensor([[[1.0, 0.0], [3.0, 5.0], [2.0, 1.0], [9.0, 1.0]]])  # (1, 4 frames, 2)
    >>> background_floor(X)
    tensor([[[2., 1.]]])
    """
    if X.device.type != "cpu" or X.dtype not in (torch.float32, torch.float64):
        return X.median(dim=1, keepdim=True).values
    middle = (X.shape[1] - 1) // 2
    frames_last = X.detach().transpose(1, 2).contiguous().numpy()  # (B, F, frames)
    floor = torch.from_numpy(np.partition(frames_last, middle, axis=2)[..., middle]).unsqueeze(1)
    if not (torch.is_grad_enabled() and X.requires_grad):
        return floor
    # a differentiable copy: the value gathered from the (first) frame that holds it
    frame = (X.detach() == floor).to(torch.uint8).argmax(dim=1, keepdim=True)
    return X.gather(1, frame)


def above_background_floor(X):
    """``relu(X - background_floor(X))``: what rises above each frequency's median in the clip.

    Example
    -------
    >>> X = torch.tensor([[[3.0, 0.1], [3.0, 0.1], [3.2, 1.0]]])  # a steady bin, an event
    >>> above_background_floor(X)
    tensor([[[0.0000, 0.0000],
             [0.0000, 0.0000],
             [0.2000, 0.9000]]])
    """
    return (X - background_floor(X)).clamp_(min=0.0)  # in place on the fresh difference


def kernel_rows_conv_transpose(x, weight, padding):
    """``conv_transpose2d(x, weight, stride=1, padding=padding)`` for ONE output channel, no bias.

    The ``kh`` rows of the kernel become ``kh`` output channels of a
    ``(1 x kw)`` transposed convolution; the ``kh`` row maps are then added at
    their row offsets: ``y[h] = sum_i rows[i][h - i]``.

    Arguments
    ---------
    x : torch.Tensor
        Input, ``(B, C, H, W)``.
    weight : torch.Tensor
        Kernel, ``(C, 1, kh, kw)``.
    padding : tuple of int
        ``(ph, pw)``, as in ``nn.ConvTranspose2d``.

    Returns
    -------
    torch.Tensor
        ``(B, 1, H + kh - 1 - 2 ph, W + kw - 1 - 2 pw)``.

    Example
    -------
    >>> x, w = torch.randn(2, 3, 5, 6), torch.randn(3, 1, 4, 3)
    >>> y = kernel_rows_conv_transpose(x, w, (1, 1))
    >>> y.shape
    torch.Size([2, 1, 6, 6])
    >>> bool(torch.allclose(y, F.conv_transpose2d(x, w, padding=(1, 1)), atol=1e-5))
    True
    """
    batch, channels, height, width = x.shape
    kh, kw = weight.shape[-2:]
    ph, pw = padding
    rows = F.conv_transpose2d(x, weight.reshape(channels, kh, 1, kw))  # (B, kh, H, W + kw - 1)
    out = rows.new_zeros(batch, height + kh - 1, width + kw - 1)
    for i in range(kh):
        out[:, i : i + height] += rows[:, i]
    return out[:, ph : out.shape[1] - ph, pw : out.shape[2] - pw].unsqueeze(1)


class _KernelRowsConvTranspose(torch.autograd.Function):
    """``kernel_rows_conv_transpose`` (+ bias) with a backward by the same decomposition.

    The backward gives the ``kh`` row-shifted slices of the incoming gradient
    to ATen's ``convolution_backward`` of the ``(1 x kw)`` transposed
    convolution, which returns the input and weight gradients at GEMM speed.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        """Forward pass; see ``kernel_rows_conv_transpose``."""
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        ctx.has_bias = bias is not None
        out = kernel_rows_conv_transpose(x, weight, padding)
        return out + bias.view(1, -1, 1, 1) if bias is not None else out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        """Gradients for x, weight and bias (none for padding)."""
        x, weight = ctx.saved_tensors
        channels, _, kh, kw = weight.shape
        height = x.shape[2]
        ph, pw = ctx.padding
        full = F.pad(grad[:, 0], (pw, pw, ph, ph))  # the cropped border back
        # each row channel sees the output gradient from its own row offset
        grad_rows = torch.stack([full[:, i : i + height] for i in range(kh)], dim=1)
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad_rows,
            x,
            weight.reshape(channels, kh, 1, kw),
            None,
            [1, 1],
            [0, 0],
            [1, 1],
            True,
            [0, 0],
            1,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False],
        )
        if grad_w is not None:
            grad_w = grad_w.reshape(weight.shape)
        grad_b = None
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(dim=(0, 2, 3))
        return grad_x, grad_w, grad_b, None


class SingleChannelConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with one output channel, fast on CPU.

    Same arguments, parameters, state_dict and result (to float rounding) as
    ``nn.ConvTranspose2d``. On CPU tensors with stride 1, no dilation, one group
    and zero padding mode it runs ``kernel_rows_conv_transpose`` (forward and
    backward); anything else (GPU tensors, where cuDNN has no such problem, and
    CPU autocast included) takes ``nn.ConvTranspose2d``'s own path.

    Arguments
    ---------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels; the fast path needs 1.
    kernel_size : int or tuple
        Kernel size.
    stride, padding, ... :
        As ``nn.ConvTranspose2d``.

    Example
    -------
    >>> torch.manual_seed(0) and None
    >>> fast = SingleChannelConvTranspose2d(8, 1, 12, 1, 1)
    >>> plain = nn.ConvTranspose2d(8, 1, 12, 1, 1)
    >>> plain.load_state_dict(fast.state_dict())
    <All keys matched successfully>
    >>> x = torch.randn(2, 8, 20, 16)
    >>> bool(torch.allclose(fast(x), plain(x), atol=1e-5))
    True
    """

    def uses_kernel_rows(self, x, output_size=None):
        """Whether ``forward(x)`` takes the kernel-rows path."""
        return (
            x.device.type == "cpu"
            and x.dim() == 4
            and self.out_channels == 1
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and self.output_padding == (0, 0)
            and self.padding_mode == "zeros"
            and output_size is None
            and not torch.is_autocast_enabled("cpu")
        )

    def forward(self, x, output_size=None):
        """Same as ``nn.ConvTranspose2d.forward``."""
        if not self.uses_kernel_rows(x, output_size):
            return super().forward(x, output_size)
        return _KernelRowsConvTranspose.apply(x, self.weight, self.bias, self.padding)
