#!/usr/bin/env python3
"""Time of one report clip's files: `save_interpretation` (the spectrogram PNG and the two wavs)
at the demo's clip size, the median and min of several calls.

    python bench/figure_speed.py                  # 3 s at 16 kHz: 259 frames x 513 bins, 4 panels
    python bench/figure_speed.py --frames 431 --bins 257 --panels 3

Every evaluation writes `--n_report_clips` of them (4 in the demo) and a training run its
`n_interpretations_to_save` at each `interpret_period`; `recipes/interpret_files.py` one per
file. Random values of the demo's shape: the drawing does not depend on them. Not a test: it
asserts nothing. Run from the repository root; take figures on an otherwise idle machine.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import sys
import tempfile
from pathlib import Path

import bench_common
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recipes.reporting.figures import save_interpretation  # noqa: E402


def measure(frames, bins, panels, calls, sample_rate=16000, duration_s=3.0):
    """Seconds of each of `calls` calls of `save_interpretation` after a first one (fonts, pyplot)."""
    generator = torch.Generator().manual_seed(0)
    X = torch.rand(frames, bins, generator=generator) * torch.linspace(3.0, 0.2, bins)
    mask = torch.rand(frames, bins, generator=generator)
    audio = np.zeros(int(sample_rate * duration_s), dtype=np.float32)
    target = X * 0.5 if panels == 4 else None
    title = "5-100004-A-0: predicted cat (p=1.00), the true class"
    with tempfile.TemporaryDirectory() as folder:
        return bench_common.call_times(
            lambda: save_interpretation(folder, "clip", X, mask, X * mask, audio, audio, sample_rate, title, target),
            warmup=1,
            runs=calls,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=259, help="STFT frames (3 s at the demo's hop)")
    parser.add_argument("--bins", type=int, default=513, help="frequency bins")
    parser.add_argument("--panels", type=int, choices=(3, 4), default=4, help="4: with the target event's panel")
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args(argv)
    seconds = measure(args.frames, args.bins, args.panels, args.calls)
    print(
        f"save_interpretation, {args.frames} frames x {args.bins} bins, {args.panels} panels: "
        f"median {bench_common.median(seconds):.3f} s, min {min(seconds):.3f} s ({args.calls} calls)"
    )
    return seconds


if __name__ == "__main__":
    main()
