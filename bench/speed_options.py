"""CPU speed options for the interpreters, each one switchable, for the benchmarks.

The recipes already run with three of them (issue 8): glibc keeps freed
memory (`recipes.common.keep_freed_memory`), the decoders' last one-channel
transposed convolution is `models.layers.SingleChannelConvTranspose2d`, and on
CPU the classifier and interpreter are in channels-last memory format
(`InterpreterBrain.__init__`). The first three options below switch those
off again, to measure what each brings; the others are candidates that were
measured and not adopted. None of them changes what is computed beyond float
rounding; `bench/interpretation_speed.py` measures each and the difference
it makes to the mask.

    glibc_malloc    the allocator as glibc sets it (KEEP_FREED_MEMORY=0): large
                    activations are fresh mmap()s, zero-filled at every call
    plain_final     the decoders' last layer (dim -> 1 channel, 12 x 12 in L2I) as a
                    plain nn.ConvTranspose2d (oneDNN, slow for one output channel)
    contiguous      classifier and interpreter weights in the default (contiguous)
                    memory format instead of channels-last
    slow_final      that last layer as im2col GEMM + col2im (aten::slow_conv_transpose2d)
    thp             THP_MEM_ALLOC_ENABLE=1: PyTorch asks for transparent huge pages
                    (an environment variable read at start-up: set by the launcher)
    fuse_bn         eval only: Conv2d -> BatchNorm2d pairs folded into one Conv2d
                    (classifier encoder, PIQ adapter)
    inference_mode  explain() called under torch.inference_mode() (else no_grad only)
    threads1        torch.set_num_threads(1)
    interop1        torch.set_num_interop_threads(1)
    compile         torch.compile of the classifier encoder and psi (after warm-up)

`BEFORE_ISSUE_8` (glibc_malloc, plain_final, contiguous) is the recipe as it
was before those three changes.

Authors
 * audio-interpret contributors 2026
"""

import contextlib
import os

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from models.layers import SingleChannelConvTranspose2d

ALL_OPTIONS = (
    "glibc_malloc",
    "plain_final",
    "contiguous",
    "slow_final",
    "thp",
    "fuse_bn",
    "inference_mode",
    "threads1",
    "interop1",
    "compile",
)

# The recipe as it was before issue 8's three CPU changes.
BEFORE_ISSUE_8 = ("glibc_malloc", "plain_final", "contiguous")
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


def swap_single_channel_conv_transposes(module, new_class):
    """Gives every one-output-channel SingleChannelConvTranspose2d the class `new_class`, in place."""
    swapped = 0
    for child in module.modules():
        if type(child) is SingleChannelConvTranspose2d and child.out_channels == 1:
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
    if "plain_final" in options:
        n = swap_single_channel_conv_transposes(psi, nn.ConvTranspose2d)
        done.append(f"plain_final: {n} layer(s)")
    if "fuse_bn" in options:
        brain.modules.eval()
        n = fuse_conv_bn_pairs(embedding_model) + fuse_conv_bn_pairs(psi)
        done.append(f"fuse_bn: {n} pair(s)")
    if "contiguous" in options:
        brain.classifier_modules.to(memory_format=torch.contiguous_format)
        brain.modules.to(memory_format=torch.contiguous_format)
        done.append("contiguous")
    if "inference_mode" in options:
        done.append("inference_mode")
    if "compile" in options:
        brain.hparams.embedding_model = torch.compile(embedding_model)
        brain.modules["psi"] = torch.compile(psi)
        done.append("compile")
    return done


def add_run_arguments(parser):
    """--options, --device and --precision, the same in every benchmark script."""
    parser.add_argument(
        "--options", default="", help="comma-separated speed options (bench/speed_options.py)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda:0 (SpeechBrain's --device)")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16", "fp16"],
        help="autocast of training and explain() (SpeechBrain's --precision / --eval_precision)",
    )


def parse_options(text):
    """The option names of a comma-separated --options value; unknown names are an error."""
    options = [name for name in text.split(",") if name]
    unknown = set(options) - set(ALL_OPTIONS)
    if unknown:
        raise ValueError(f"unknown --options {sorted(unknown)}; choose from {ALL_OPTIONS}")
    return options


def settings_on(brain):
    """What the measured Brain actually runs with, read from the objects, for the output.

    Returns a list of short strings: allocator, class of the decoders' last
    one-channel layer, memory format of the convolution weights, threads.
    """
    allocator = (
        "glibc defaults"
        if os.environ.get("KEEP_FREED_MEMORY", "1") == "0"
        else "keeps freed memory"
    )
    psi = brain.modules["psi"]
    psi = getattr(psi, "_orig_mod", psi)
    last = sorted(
        {
            type(m).__name__
            for m in psi.modules()
            if isinstance(m, nn.ConvTranspose2d) and m.out_channels == 1
        }
    )
    weights = [
        p
        for modules in (brain.classifier_modules, brain.modules)
        for p in modules.parameters()
        # a layout is only visible on kernels larger than 1 x 1 with several input channels
        if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1
    ]
    channels_last = sum(
        p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in weights
    )
    return [
        f"allocator: {allocator}",
        f"last layer: {', '.join(last) or 'none'}",
        f"channels-last conv weights: {channels_last}/{len(weights)}",
        f"threads: {torch.get_num_threads()}",
    ]


def apply_process_options(options):
    """Applies the process-level options; call first thing in a fresh process."""
    done = []
    if "glibc_malloc" in options:
        os.environ["KEEP_FREED_MEMORY"] = "0"  # read by recipes.common.prepare_run
        done.append("glibc_malloc")
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
