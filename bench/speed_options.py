"""CPU speed options for the interpreters, each one switchable, for the benchmarks.

None of them changes what is computed (the masks agree to float rounding);
`bench/interpretation_speed.py` measures each and the difference it makes.

    malloc          glibc keeps freed memory (no mmap for big blocks, no trim): the
                    large activations stop costing page faults at every call
    thp             THP_MEM_ALLOC_ENABLE=1: PyTorch asks for transparent huge pages
                    (an environment variable read at start-up: set by the launcher)
    slow_final      psi's last ConvTranspose2d (dim -> 1 channel, 12 x 12) runs as
                    im2col GEMM + col2im (aten::slow_conv_transpose2d) instead of
                    oneDNN, whose kernel is slow for a single output channel
    rows_final      the same layer as a transposed convolution with kh output
                    channels and a (1 x kw) kernel + kh shifted adds
                    (`KernelRowsConvTranspose2d`, the proposed change to models/)
    channels_last   classifier encoder and psi in channels-last memory format
    fuse_bn         eval only: Conv2d -> BatchNorm2d pairs folded into one Conv2d
                    (classifier encoder, PIQ adapter)
    inference_mode  explain() called under torch.inference_mode() (else no_grad only)
    threads1        torch.set_num_threads(1)
    interop1        torch.set_num_interop_threads(1)
    compile         torch.compile of the classifier encoder and psi (after warm-up)

Authors
 * audio-interpret contributors 2026
"""

import contextlib
import ctypes
import ctypes.util

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

ALL_OPTIONS = (
    "malloc",
    "thp",
    "slow_final",
    "rows_final",
    "channels_last",
    "fuse_bn",
    "inference_mode",
    "threads1",
    "interop1",
    "compile",
)
M_TRIM_THRESHOLD = -1  # glibc mallopt parameter numbers (malloc.h)
M_MMAP_MAX = -4


def keep_freed_memory():
    """glibc: serve every block from the heap and never give freed memory back.

    Large tensors are otherwise fresh mmap()s, zero-filled page by page on
    first touch at every call. Returns True when glibc accepted both settings.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**30))


class Im2colConvTranspose2d(nn.ConvTranspose2d):
    """A ConvTranspose2d computed by im2col GEMM + col2im (same parameters, same result).

    oneDNN's transposed convolution is slow for one output channel and a large
    kernel (psi's last layer); ATen's GEMM path is several times faster there.
    """

    def forward(self, x, output_size=None):
        if output_size is not None or self.groups != 1 or self.padding_mode != "zeros":
            return super().forward(x, output_size)
        return torch._C._nn.slow_conv_transpose2d(
            x.contiguous(),
            self.weight,
            self.kernel_size,
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.dilation,
        )


def kernel_rows_conv_transpose(x, weight, padding):
    """conv_transpose2d(x, weight, stride 1, padding) for ONE output channel, no bias.

    The kh rows of the kernel become kh output channels of a (1 x kw)
    transposed convolution, a shape oneDNN runs fast; the kh row maps are then
    added at their row offsets: y[h] = sum_i rows[i][h - i].

    Arguments
    ---------
    x : torch.Tensor
        (B, C, H, W).
    weight : torch.Tensor
        (C, 1, kh, kw).
    padding : tuple of int
        (ph, pw), as in nn.ConvTranspose2d.

    Returns
    -------
    torch.Tensor
        (B, 1, H + kh - 1 - 2 ph, W + kw - 1 - 2 pw).
    """
    batch, channels, height, width = x.shape
    kh, kw = weight.shape[-2:]
    ph, pw = padding
    rows = F.conv_transpose2d(x, weight.reshape(channels, kh, 1, kw))  # (B, kh, H, W + kw - 1)
    out = rows.new_zeros(batch, height + kh - 1, width + kw - 1)  # (B, H + kh - 1, W + kw - 1)
    for i in range(kh):
        out[:, i : i + height] += rows[:, i]
    return out[:, ph : out.shape[1] - ph, pw : out.shape[2] - pw].unsqueeze(1)  # (B, 1, H', W')


class _SingleChannelConvTranspose(torch.autograd.Function):
    """kernel_rows_conv_transpose with its own backward, by the same decomposition.

    The backward takes the kh row-shifted slices of the incoming gradient as
    the gradient of the (1 x kw) transposed convolution's kh channels and lets
    ATen's convolution_backward give the input and weight gradients (a shape it
    runs fast, unlike the one-output-channel 12 x 12 layer).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        ctx.has_bias = bias is not None
        out = kernel_rows_conv_transpose(x, weight, padding)
        return out + bias.view(1, -1, 1, 1) if bias is not None else out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        channels, _, kh, kw = weight.shape
        height = x.shape[2]
        ph, pw = ctx.padding
        # the cropped border back: (B, H + kh - 1, W + kw - 1)
        full = F.pad(grad[:, 0], (pw, pw, ph, ph))
        # each row channel's gradient is the output gradient seen from its row offset
        grad_rows = torch.stack(
            [full[:, i : i + height] for i in range(kh)], dim=1
        )  # (B, kh, H, W')
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
        grad_b = grad.sum(dim=(0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None


class KernelRowsConvTranspose2d(nn.ConvTranspose2d):
    """A ConvTranspose2d with ONE output channel, fast on CPU (same parameters, same result).

    oneDNN's kernel for one output channel and a 12 x 12 kernel (psi's last
    layer) runs at a few GFLOP/s; computed as a transposed convolution with
    kh output channels and a (1 x kw) kernel plus kh shifted adds
    (`kernel_rows_conv_transpose`) it runs at GEMM speed. The result equals
    nn.ConvTranspose2d's to float rounding; training works (the backward uses
    the same decomposition). Other set-ups (stride, dilation, groups, GPU tensors) take
    nn.ConvTranspose2d's path.
    """

    def forward(self, x, output_size=None):
        fast = (
            x.device.type == "cpu"
            and x.dim() == 4
            and self.out_channels == 1
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and self.output_padding == (0, 0)
            and self.padding_mode == "zeros"
            and output_size is None
        )
        if not fast:
            return super().forward(x, output_size)
        return _SingleChannelConvTranspose.apply(x, self.weight, self.bias, self.padding)


def swap_single_channel_conv_transposes(module, new_class):
    """Gives every ConvTranspose2d with one output channel the class `new_class`, in place."""
    swapped = 0
    for child in module.modules():
        if type(child) is nn.ConvTranspose2d and child.out_channels == 1:
            child.__class__ = new_class
            swapped += 1
    return swapped


def fuse_conv_bn_pairs(module):
    """Folds Conv2d -> BatchNorm2d pairs (eval mode) into single Conv2d layers, in place.

    Handles the pairs of the project's modules: consecutive entries of an
    nn.Sequential, and Conv2dEncoder_v2's convN / bnN attributes.
    """
    fused = 0
    for parent in list(module.modules()):
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            for first, second in zip(names, names[1:]):
                conv, norm = parent._modules[first], parent._modules[second]
                if type(conv) is nn.Conv2d and isinstance(norm, nn.BatchNorm2d):
                    parent._modules[first] = fuse_conv_bn_eval(conv, norm)
                    parent._modules[second] = nn.Identity()
                    fused += 1
        for index in range(1, 10):
            conv = getattr(parent, f"conv{index}", None)
            norm = getattr(parent, f"bn{index}", None)
            if type(conv) is nn.Conv2d and isinstance(norm, nn.BatchNorm2d):
                setattr(parent, f"conv{index}", fuse_conv_bn_eval(conv, norm))
                setattr(parent, f"bn{index}", nn.Identity())
                fused += 1
    return fused


def apply_model_options(brain, options):
    """Applies the module-level options to a built interpreter Brain (in place).

    Returns a short description of what was changed.
    """
    done = []
    embedding_model = brain.hparams.embedding_model
    psi = brain.modules["psi"]
    if "slow_final" in options:
        n = swap_single_channel_conv_transposes(psi, Im2colConvTranspose2d)
        done.append(f"slow_final: {n} layer(s)")
    if "rows_final" in options:
        n = swap_single_channel_conv_transposes(psi, KernelRowsConvTranspose2d)
        done.append(f"rows_final: {n} layer(s)")
    if "fuse_bn" in options:
        brain.modules.eval()
        n = fuse_conv_bn_pairs(embedding_model) + fuse_conv_bn_pairs(psi)
        done.append(f"fuse_bn: {n} pair(s)")
    if "channels_last" in options:
        embedding_model.to(memory_format=torch.channels_last)
        psi.to(memory_format=torch.channels_last)
        done.append("channels_last")
    if "inference_mode" in options:
        done.append("inference_mode")
    if "compile" in options:
        brain.hparams.embedding_model = torch.compile(embedding_model)
        brain.modules["psi"] = torch.compile(psi)
        done.append("compile")
    return done


def apply_process_options(options):
    """Applies the process-level options; call first thing in a fresh process."""
    done = []
    if "malloc" in options:
        done.append(f"malloc: {'on' if keep_freed_memory() else 'unavailable'}")
    if "threads1" in options:
        torch.set_num_threads(1)
        done.append("threads1")
    if "interop1" in options:
        torch.set_num_interop_threads(1)
        done.append("interop1")
    return done


def explain_context(options):
    """The context explain() is called in: inference_mode when asked, else nothing more."""
    if "inference_mode" in options:
        return torch.inference_mode()
    return contextlib.nullcontext()
