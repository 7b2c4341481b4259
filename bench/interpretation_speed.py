#!/usr/bin/env python3
"""Benchmark: what speeds up interpretation (`InterpreterBrain.explain`) on CPU.

Each configuration (a set of the options of `bench/speed_options.py`) runs in
a fresh process, so allocator, thread and compile state never leak from one
to the next. For L2I and PIQ it prints the ms per clip of `explain()` at
batch 1 and batch 16 (median and min of the wall times of several calls after
warm-up, and the median process CPU time, all threads), the speed-up of the
median over the "recipe" configuration (the recipe as it is, no option), and the
largest absolute difference of the mask (last batch size) from the recipe's (the options
must not change results beyond 1e-4), the peak RSS and the time of the first
call (compilation, oneDNN primitive creation).

    python bench/interpretation_speed.py                         # all but compile
    python bench/interpretation_speed.py --configs compile
    python bench/interpretation_speed.py --configs before_issue_8 plain_final
    python bench/interpretation_speed.py --size full --batches 1 --configs before_issue_8
    python bench/interpretation_speed.py --single_thread    # busy machine: compare CPU times

Configuration: 10 classes x 8 clips of 5 s (see bench/bench_common.py), emb_dim
32 (full: 256), L2I K = 100, PIQ K = 256 (full: 1024); random weights (timings
do not depend on training). Not a test: it asserts nothing.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from speed_options import BEFORE_ISSUE_8

# Configurations: name -> options (see speed_options.py).
CONFIGS = {
    "recipe": (),
    "before_issue_8": BEFORE_ISSUE_8,
    "glibc_malloc": ("glibc_malloc",),
    "plain_final": ("plain_final",),
    "slow_final": ("slow_final",),
    "contiguous": ("contiguous",),
    "thp": ("thp",),
    "inference_mode": ("inference_mode",),
    "fuse_bn": ("fuse_bn",),
    "threads1": ("threads1",),
    "interop1": ("interop1",),
    "compile": ("compile",),
}
# compile costs minutes of compilation per process: asked for by name only.
DEFAULT_CONFIGS = [name for name in CONFIGS if "compile" not in name]


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workspace", help="benchmark workspace (created there); temp dir if unset"
    )
    parser.add_argument("--methods", nargs="+", default=["l2i", "piq"], choices=["l2i", "piq"])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=list(CONFIGS))
    parser.add_argument(
        "--size", default="cpu", choices=["cpu", "full"], help="cpu: emb_dim 32; full: 256"
    )
    parser.add_argument(
        "--batches", nargs="+", type=int, default=None, help="batch sizes (default 1 16; full: 1)"
    )
    parser.add_argument(
        "--runs", type=int, default=7, help="timed calls at batch 1 (3 at larger batches)"
    )
    parser.add_argument(
        "--single_thread",
        action="store_true",
        help="add threads1 to every configuration: on a busy machine, one thread's CPU time is the "
        "steadiest measure of the work (two threads spin and wait for each other)",
    )
    return parser.parse_args(argv)


def launch(name, method, args, workspace, mask_folder):
    """Runs one configuration through interpretation_latency.py in a fresh process."""
    options = CONFIGS[name] + (
        ("threads1",) if args.single_thread and "threads1" not in CONFIGS[name] else ()
    )
    out = Path(mask_folder) / f"{name}_{method}.json"
    mask = Path(mask_folder) / f"{name}_{method}.pt"
    command = [
        sys.executable,
        str(Path(__file__).with_name("interpretation_latency.py")),
        "--method", method,
        "--size", args.size,
        "--batches", *[str(b) for b in args.batches],
        "--runs", str(args.runs),
        "--workspace", str(workspace),
        "--options", ",".join(options),
        "--save_mask", str(mask),
        "--json", str(out),
    ]  # fmt: skip
    env = dict(os.environ)
    env.pop("THP_MEM_ALLOC_ENABLE", None)
    if "thp" in options:
        env["THP_MEM_ALLOC_ENABLE"] = "1"
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.is_file():
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-3:]}
    with open(out, encoding="utf-8") as fin:
        result = json.load(fin)
    if "thp" in options:
        result["options"].append("thp (THP_MEM_ALLOC_ENABLE=1)")
    result["mask_file"] = str(mask)
    return result


def max_abs_diff(file_a, file_b):
    import torch

    a = torch.load(file_a, weights_only=True)
    b = torch.load(file_b, weights_only=True)
    return (a - b).abs().max().item()


def main(argv=None):
    args = _parse_args(argv)
    import bench_common

    if args.batches is None:
        args.batches = [1] if args.size == "full" else [1, 16]
    configs = list(dict.fromkeys(["recipe", *args.configs]))
    if args.single_thread:
        configs = [name for name in configs if "threads1" not in name]
    with tempfile.TemporaryDirectory(prefix="interp_speed_") as tmp:
        workspace = Path(args.workspace) if args.workspace else Path(tmp) / "workspace"
        mask_folder = Path(tmp) / "masks"
        mask_folder.mkdir()
        bench_common.prepare_workspace(workspace)
        print(
            f"explain() speed options, size {args.size} "
            f"(emb_dim {bench_common.SIZES[args.size]['emb_dim']}, K l2i/piq "
            f"{bench_common.SIZES[args.size]['K']['l2i']}/{bench_common.SIZES[args.size]['K']['piq']}), "
            f"5 s clips, batches {args.batches}, one fresh process per configuration"
            f"{', every one with threads1 (--single_thread)' if args.single_thread else ''}. "
            f"{bench_common.WEIGHTS_NOTE}"
        )
        print(f"load average at start: {bench_common.load_average():.2f} on {os.cpu_count()} CPUs")
        rows = []
        for method in args.methods:
            results = {}
            for name in configs:
                results[name] = launch(name, method, args, workspace, mask_folder)
                rows.append((method, name, results[name], results["recipe"]))
                _print_row(method, name, results[name], results["recipe"], args.batches)
        print(f"load average at end: {bench_common.load_average():.2f}")
    return rows


def _print_row(method, name, result, baseline, batches):
    if not _print_row.header_done:
        cells = [f"{'b' + str(b) + ' ms/clip med/min/CPU':>28} {'x':>5}" for b in batches]
        print(
            f"{'method':6} {'config':24} "
            + " ".join(cells)
            + f" {'max|dmask|':>10} {'RSS MB':>7} {'1st s':>6}  options on"
        )
        _print_row.header_done = True
    if "error" in result:
        print(f"{method:6} {name:24} failed: {' | '.join(result['error'])}")
        return
    cells = []
    for batch in batches:
        entry = result["explain"][str(batch)]
        base = baseline.get("explain", {}).get(str(batch))
        speedup = base["median_ms_per_clip"] / entry["median_ms_per_clip"] if base else float("nan")
        cells.append(
            f"{entry['median_ms_per_clip']:10.1f}/{entry['min_ms_per_clip']:<8.1f}/"
            f"{entry['median_cpu_ms_per_clip']:<8.1f} {speedup:5.2f}"
        )
    diff = (
        max_abs_diff(baseline["mask_file"], result["mask_file"])
        if "mask_file" in baseline
        else float("nan")
    )
    options = ", ".join(result["options"]) or "none (recipe as is)"
    first = result["explain"][str(batches[0])]["first_s"]
    print(
        f"{method:6} {name:24} "
        + " ".join(cells)
        + f" {diff:10.1e} {result['peak_rss_mb']:7.0f} {first:6.1f}  "
        f"{options}; threads {result['threads']}",
        flush=True,
    )


_print_row.header_done = False

if __name__ == "__main__":
    main()
