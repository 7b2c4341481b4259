#!/usr/bin/env python3
"""Runs the speed benchmarks and prints one table: ours against the reference figures and goals.

    python bench/run_all.py                       # what `make bench` runs (~2 min on 2 idle cores)
    python bench/run_all.py --options glibc_malloc,plain_final,contiguous   # + a column: the recipe before issue 8
    python bench/run_all.py --skip_full           # without the full-size (emb_dim 256) latency
    python bench/run_all.py --device cuda:0 --precision bf16   # on a GPU, with bf16 autocast
    python bench/run_all.py --quiet_wait 120      # shared machine: start each run in a quiet moment
    python bench/run_all.py --methods lmac_ast --device cuda:0   # L-MAC on the AST (issue 27)

bench/README.md says what each option brings and which were measured and not
adopted.

Configuration of the reference figures (the public recipe this project
replaces, measured on a 2-core CPU): 10 classes x 8 clips of 5 s (60 train /
10 valid), 16 kHz, Conv2d classifier with embedding dim 32, batch 8, L2I K 100,
PIQ K 256; "full size": emb_dim 256, PIQ K 1024. The data is the project's
synthetic set, generated in a temp folder (bench/bench_common.py says how the
60 / 10 split is made). Classifier and NMF dictionary are randomly initialised
modules built from the yamls and loaded as the recipes load checkpoints:
timings do not depend on training.

Every measurement runs in its own process (bench/measure.py), so each
reports its own peak RSS. Timings are wall clock: other processes on the
cores inflate them, several-fold with two threads (the idle share of the CPUs
before each run is printed; with --quiet_wait each run waits for a quiet
moment). Not a test: it asserts nothing.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_common

HERE = Path(__file__).resolve().parent

# (method, figure) -> (reference figure, goal as (comparison, value) or None)
REFERENCE = {
    ("L2I", "train clips/s"): (1.7, (">=", 3.4)),
    ("L2I", "epoch s (train + valid)"): (43.7, None),
    ("PIQ", "train clips/s"): (2.5, (">=", 3.7)),
    ("PIQ", "epoch s (train + valid)"): (30.7, None),
    ("L2I", "explain ms/clip, batch 1"): (130.0, ("<=", 50.0)),
    ("PIQ", "explain ms/clip, batch 1"): (130.0, ("<=", 50.0)),
    ("L2I", "classifier forward ms, batch 1"): (6.3, None),
    ("PIQ", "classifier forward ms, batch 1"): (6.3, None),
    ("L2I", "psi ConvTranspose2d share of explain, %"): (73.0, None),
    ("PIQ", "psi ConvTranspose2d share of explain, %"): (73.0, None),
    ("L2I", "full size: explain ms/clip, batch 1"): (1900.0, ("<=", 1000.0)),
    ("PIQ", "full size: explain ms/clip, batch 1"): (1900.0, ("<=", 1000.0)),
}


# Share of idle CPU time just before each measurement (filled by _run).
IDLE_BEFORE = []

# Column name -> the speed settings its runs reported (bench_common.settings_on).
SETTINGS = {}

# Row order of the table (per method; L2I first).
FIGURE_ORDER = (
    "train clips/s",
    "epoch s (train + valid)",
    "valid s (10 clips)",
    "explain ms/clip, batch 1",
    "explain ms/clip, batch 16",
    "classifier forward ms, batch 1",
    "psi ConvTranspose2d share of explain, %",
    "full size: explain ms/clip, batch 1",
    "full size: classifier forward ms, batch 1",
    "full size: psi ConvTranspose2d share of explain, %",
)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workspace", help="benchmark workspace (created there); temp dir if unset"
    )
    # --options: a second column, measured with these speed options
    bench_common.add_run_arguments(parser)
    parser.add_argument(
        "--methods",
        default="l2i,piq",
        help=f"comma-separated, of {', '.join(bench_common.HPARAMS)} (lmac_ast: L-MAC on the AST; "
        "its full size is the reference AST; no reference figures)",
    )
    parser.add_argument("--skip_full", action="store_true", help="skip the full-size latency runs")
    parser.add_argument("--runs", type=int, default=7, help="timed explain() calls at batch 1 (3 in the full-size rows)")
    parser.add_argument(
        "--timeout", type=int, default=1200, help="seconds allowed to each measurement"
    )
    parser.add_argument(
        "--quiet_wait",
        type=float,
        default=0,
        help="before each measurement wait up to this many seconds for idle CPUs (shared machines)",
    )
    return parser.parse_args(argv)


def _run(what, arguments, json_file, timeout, quiet_wait=0):
    """Runs one measurement (bench/measure.py) in its own process; returns its result or an error."""
    idle = (
        bench_common.wait_for_quiet(quiet_wait)
        if quiet_wait > 0
        else bench_common.cpu_idle_fraction(1.0)
    )
    command = [sys.executable, str(HERE / "measure.py"), what, *arguments, "--json", str(json_file)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if done.returncode != 0 or not Path(json_file).is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        # the exit status too: a process killed with no output (OOM: -9) has no tail
        return {"error": f"exit status {done.returncode}: {' | '.join(tail) or 'no output'}"}
    with open(json_file, encoding="utf-8") as fin:
        result = json.load(fin)
    result["wall_s"] = time.perf_counter() - start
    result["idle_before"] = idle
    IDLE_BEFORE.append(idle)
    return result


def measure_all(args, workspace, folder, options, column):
    """All measurements of one column; returns {(method, figure): (value, peak RSS MiB)}."""
    tag = options.replace(",", "_") or "recipe"
    figures = {}
    methods = parse_methods(args.methods)
    for method in methods:
        name = method.upper()
        result = _run(
            "train",
            [
                "--method", method,
                "--workspace", str(workspace),
                "--options", options,
                "--device", args.device,
                "--precision", args.precision,
            ],  # fmt: skip
            folder / f"train_{method}_{tag}.json",
            args.timeout,
            args.quiet_wait,
        )
        _progress(f"train {name}", result)
        if "settings" in result:
            SETTINGS.setdefault(column, result["settings"])
        rss = result.get("peak_rss_mb")
        figures[(name, "train clips/s")] = (
            result.get("train_clips_per_s"),
            rss,
            result.get("error"),
        )
        figures[(name, "epoch s (train + valid)")] = (
            result.get("epoch_s"),
            rss,
            result.get("error"),
        )
        figures[(name, "valid s (10 clips)")] = (result.get("valid_s"), rss, result.get("error"))
    sizes = [("cpu", ["1", "16"])] + ([] if args.skip_full else [("full", ["1"])])
    for size, batches in sizes:
        for method in methods:
            name = method.upper()
            result = _run(
                "explain",
                [
                    "--method", method,
                    "--size", size,
                    "--batches", *batches,
                    "--runs", str(args.runs),
                    "--workspace", str(workspace),
                    "--options", options,
                    "--device", args.device,
                    "--precision", args.precision,
                ],
                folder / f"explain_{method}_{size}_{tag}.json",
                args.timeout,
                args.quiet_wait,
            )  # fmt: skip
            _progress(f"explain {name} {size}", result)
            rss, error = result.get("peak_rss_mb"), result.get("error")
            explain = result.get("explain", {})
            prefix = "full size: " if size == "full" else ""
            for batch in batches:
                entry = explain.get(batch, {})
                value = (entry.get("median_ms_per_clip"), entry.get("min_ms_per_clip"))
                figures[(name, f"{prefix}explain ms/clip, batch {batch}")] = (value, rss, error)
            classifier = result.get("classifier_ms", {})
            figures[(name, f"{prefix}classifier forward ms, batch 1")] = (
                (classifier.get("median"), classifier.get("min")),
                rss,
                error,
            )
            share = result.get("conv_transpose_share")
            figures[(name, f"{prefix}psi ConvTranspose2d share of explain, %")] = (
                None if share is None else 100 * share,
                rss,
                error,
            )
    return figures


def parse_methods(text):
    """The method names of a comma-separated --methods value; an unknown name is an error.

    Example
    -------
    >>> parse_methods("l2i,lmac_ast")
    ['l2i', 'lmac_ast']
    >>> parse_methods("l2i,lmac")
    Traceback (most recent call last):
    ...
    ValueError: --methods: unknown 'lmac'; choose from l2i, piq, lmac_ast.
    >>> parse_methods(",")
    Traceback (most recent call last):
    ...
    ValueError: --methods ',' names no method; choose from l2i, piq, lmac_ast.
    """
    methods = [name for name in text.split(",") if name]
    if not methods:
        raise ValueError(f"--methods {text!r} names no method; choose from {', '.join(bench_common.HPARAMS)}.")
    for name in methods:
        if name not in bench_common.HPARAMS:
            raise ValueError(f"--methods: unknown {name!r}; choose from {', '.join(bench_common.HPARAMS)}.")
    return methods


def _progress(what, result):
    state = result.get("error") or (
        f"done in {result.get('wall_s', 0):.0f} s (CPUs {100 * result.get('idle_before', 0):.0f}% idle "
        f"before, load average {result.get('load_average', 0):.1f} at end)"
    )
    print(f"  {what}: {state}", file=sys.stderr, flush=True)


def _fmt(value):
    if isinstance(value, tuple):  # (median, min)
        if value[0] is None:
            return "-"
        return f"{_fmt(value[0])} ({_fmt(value[1])})"
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def _meets(value, goal):
    if isinstance(value, tuple):
        value = value[0]
    if goal is None or value is None:
        return ""
    comparison, target = goal
    ok = value >= target if comparison == ">=" else value <= target
    return "yes" if ok else "no"


def print_table(columns):
    """One row per (method, figure): reference, goal, ours (and ours with options)."""
    keys = list(dict.fromkeys(key for figures in columns.values() for key in figures))
    methods = list(dict.fromkeys(key[0] for key in keys))  # in the order they were measured
    keys.sort(
        key=lambda k: (methods.index(k[0]), FIGURE_ORDER.index(k[1]) if k[1] in FIGURE_ORDER else 99)
    )
    names = list(columns)
    width = max([6, *(len(name) for name in methods)])
    header = f"{'method':{width}} {'figure':42} {'reference':>9} {'goal':>8}"
    for name in names:
        header += f" {name:>22} {'met':>3} {'RSS MiB':>7}"
    print(header)
    print("-" * len(header))
    for key in keys:
        reference, goal = REFERENCE.get(key, (None, None))
        goal_text = f"{goal[0]} {_fmt(goal[1])}" if goal else "-"
        line = f"{key[0]:{width}} {key[1]:42} {_fmt(reference):>9} {goal_text:>8}"
        for name in names:
            value, rss, error = columns[name].get(key, (None, None, None))
            cell = "failed" if error else _fmt(value)
            line += f" {cell:>22} {_meets(value, goal):>3} {_fmt(rss):>7}"
        print(line)


def thread_setting(environ):
    """How many threads the measuring processes get: the environment's OMP_NUM_THREADS (which
    they inherit), or torch's default.

    Example
    -------
    >>> thread_setting({"OMP_NUM_THREADS": "1"}), thread_setting({})
    ('1 (OMP_NUM_THREADS)', 'default')
    """
    value = environ.get("OMP_NUM_THREADS")
    return f"{value} (OMP_NUM_THREADS)" if value else "default"


def main(argv=None):
    args = _parse_args(argv)
    bench_common.parse_options(args.options)  # an unknown name fails now, not minutes later
    parse_methods(args.methods)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
        workspace = Path(args.workspace) if args.workspace else Path(tmp) / "workspace"
        folder = Path(tmp) / "results"
        folder.mkdir()
        idle_start = bench_common.cpu_idle_fraction(2.0)
        print(
            "Preparing the benchmark data and stand-in checkpoints ...", file=sys.stderr, flush=True
        )
        bench_common.prepare_workspace(workspace)
        columns = {"ours": measure_all(args, workspace, folder, "", "ours")}
        if args.options:
            name = f"ours + {args.options}"
            columns[name] = measure_all(args, workspace, folder, args.options, name)
    print()
    print(
        f"Device {args.device}, precision {args.precision}. "
        "Speed of the L2I / PIQ recipes: 10 classes x 8 clips of 5 s (60 train / 10 valid), "
        "16 kHz, Conv2d classifier emb_dim 32, batch 8, L2I K 100, PIQ K 256; full size: emb_dim 256, "
        "PIQ K 1024. explain(): eval, no grad, median over timed calls after warm-up, per clip."
    )
    if any(method in bench_common.TRANSFORMER_CLASSIFIERS for method in parse_methods(args.methods)):
        print(
            f"LMAC_AST: L-MAC (hparams/lmac_ast.yaml) on the AST, {bench_common.size_description('lmac_ast', 'cpu')}; "
            "full size: the reference AST (768 wide, 12 layers, max_length 1024). Same clips and batch."
        )
    print(bench_common.WEIGHTS_NOTE)
    print(
        "ms cells: median (min) over the timed calls; RSS: peak of the process that measured the row."
    )
    idle = [share for share in IDLE_BEFORE if share == share]  # NaN: /proc/stat unreadable
    print(
        f"torch threads: {thread_setting(os.environ)} ({os.cpu_count()} CPUs; each row's own line below "
        f"gives what its process used). CPUs idle {100 * idle_start:.0f}% at start, "
        f"{100 * min(idle, default=float('nan')):.0f}-{100 * max(idle, default=float('nan')):.0f}% just before "
        "the measurements (below ~90%, other processes slow these timings down); "
        f"total {time.perf_counter() - start:.0f} s.\n"
    )
    print_table(columns)
    print()
    for name, settings in SETTINGS.items():
        print(f"{name}: {'; '.join(settings)}")
    return columns


if __name__ == "__main__":
    main()
