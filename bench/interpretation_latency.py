#!/usr/bin/env python3
"""Benchmark: ms per 5 s clip of `brain.explain(wavs)` (L2I or PIQ) and of the frozen classifier.

    python bench/interpretation_latency.py --method l2i
    python bench/interpretation_latency.py --method piq --size full --batches 1
    python bench/interpretation_latency.py --method l2i --options glibc_malloc,plain_final,contiguous   # as before issue 8

The recipe's Brain (the yaml's `interpreter_class`) is built as the recipe
builds it, from the yaml with command-line overrides: emb_dim 32, L2I K 100,
PIQ K 256 ("--size full": emb_dim 256, PIQ K 1024). `explain()` (eval mode, no
grad: STFT, frozen classifier, psi, mask, inversion to audio) runs on real 5 s
clips of the benchmark's synthetic set: a first call, warm-up calls, then the
median (and min) of several timed calls, divided by the batch size. The
classifier's forward alone (embedding model + head on X, batch 1) is timed the
same way, and the share of explain() time spent in psi's ConvTranspose2d
layers (forward hooks, batch 1). Weights are random: timings do not depend on training. Each run
reports its peak RSS (run it in its own process to isolate it). Not a test:
it asserts nothing.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import tempfile
import time
from pathlib import Path

import speed_options


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="l2i", choices=["l2i", "piq"])
    parser.add_argument(
        "--size", default="cpu", choices=["cpu", "full"], help="cpu: emb_dim 32; full: 256"
    )
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16], help="batch sizes")
    parser.add_argument(
        "--runs", type=int, default=7, help="timed calls at batch 1 (3 at batch > 4)"
    )
    parser.add_argument(
        "--workspace", help="benchmark workspace (created there); temp dir if unset"
    )
    speed_options.add_run_arguments(parser)
    parser.add_argument("--save_mask", help="save the last batch's mask to this .pt file")
    parser.add_argument("--json", help="also write the result to this JSON file")
    return parser.parse_args(argv)


def _schedule(batch, runs, size):
    """(warm-up calls after the first call, timed calls) for a batch size."""
    if batch > 4 or size == "full":
        return 0, 3
    return 2, runs


def measure(
    method,
    workspace_root,
    size="cpu",
    batches=(1, 16),
    runs=7,
    options=(),
    save_mask=None,
    device="cpu",
    precision="fp32",
):
    """Times explain() at each batch size and the classifier alone; returns a dict."""
    applied = speed_options.apply_process_options(options)
    import bench_common
    import torch

    workspace = bench_common.prepare_workspace(workspace_root)
    tag = "_".join(options) or "recipe"
    runs_folder = Path(workspace_root) / "runs"
    runs_folder.mkdir(parents=True, exist_ok=True)
    output_folder = tempfile.mkdtemp(prefix=f"explain_{method}_{size}_{tag}_", dir=runs_folder)
    brain, _, datasets = bench_common.build_brain(
        method,
        workspace,
        size,
        output_folder=output_folder,
        extra=bench_common.device_args(device, precision),
    )
    applied += speed_options.apply_model_options(brain, options)
    result = {
        "method": method,
        "size": size,
        "emb_dim": bench_common.SIZES[size]["emb_dim"],
        "K": bench_common.SIZES[size]["K"][method],
        "device": device,
        "precision": precision,
        "options": applied,
        "settings": speed_options.settings_on(brain),
        "threads": torch.get_num_threads(),
        "explain": {},
    }
    outputs = None
    for batch in batches:
        wavs = bench_common.clips(datasets, batch)

        def call(wavs=wavs):
            with speed_options.explain_context(options):
                return brain.explain(wavs)

        start = time.perf_counter()
        outputs = call()
        first = time.perf_counter() - start
        warmup, n_runs = _schedule(batch, runs, size)
        times, cpu = bench_common.call_times(call, warmup=warmup, runs=n_runs, with_cpu=True)
        result["explain"][str(batch)] = {
            "first_s": first,
            "runs": n_runs,
            "median_ms_per_clip": 1e3 * bench_common.median(times) / batch,
            "min_ms_per_clip": 1e3 * min(times) / batch,
            "median_cpu_ms_per_clip": 1e3 * bench_common.median(cpu) / batch,
        }
    if save_mask and outputs is not None:
        torch.save(outputs["mask"].detach().clone(), save_mask)
    # forward hooks time the host side only: meaningful on CPU, not for queued GPU work
    result["conv_transpose_share"] = (
        conv_transpose_share(brain, bench_common.clips(datasets, 1), options)
        if device == "cpu"
        else None
    )

    X, _ = brain.preprocess(bench_common.clips(datasets, 1))

    def classify():
        with speed_options.explain_context(options), brain.evaluation_ctx:
            return brain.classify(X)

    times = bench_common.call_times(classify, warmup=2, runs=3 if size == "full" else 3 * runs)
    result["classifier_ms"] = {"median": 1e3 * bench_common.median(times), "min": 1e3 * min(times)}
    result["peak_rss_mb"] = bench_common.peak_rss_mb()
    result["load_average"] = bench_common.load_average()
    return result


def conv_transpose_share(brain, wavs, options, calls=3):
    """Share of explain() wall time spent in psi's ConvTranspose2d layers (forward hooks)."""
    import torch

    spent = [0.0]
    starts = {}

    def before(module, args):
        starts[id(module)] = time.perf_counter()

    def after(module, args, output):
        spent[0] += time.perf_counter() - starts.pop(id(module))

    psi = brain.modules["psi"]
    psi = getattr(psi, "_orig_mod", psi)
    handles = []
    for module in psi.modules():
        if isinstance(module, torch.nn.ConvTranspose2d):
            handles += [
                module.register_forward_pre_hook(before),
                module.register_forward_hook(after),
            ]
    total = 0.0
    try:
        for _ in range(calls):
            start = time.perf_counter()
            with speed_options.explain_context(options):
                brain.explain(wavs)
            total += time.perf_counter() - start
    finally:
        for handle in handles:
            handle.remove()
    return spent[0] / total


def main(argv=None):
    args = _parse_args(argv)
    options = speed_options.parse_options(args.options)
    with tempfile.TemporaryDirectory(prefix="explain_speed_") as tmp:
        result = measure(
            args.method,
            args.workspace or tmp,
            args.size,
            args.batches,
            args.runs,
            options,
            args.save_mask,
            args.device,
            args.precision,
        )
    import bench_common

    bench_common.write_json(args.json, result)
    share = result["conv_transpose_share"]
    share = "-" if share is None else f"{100 * share:.0f}%"
    cells = ", ".join(
        f"batch {batch}: {entry['median_ms_per_clip']:.1f} ms/clip (min {entry['min_ms_per_clip']:.1f}, "
        f"CPU {entry['median_cpu_ms_per_clip']:.1f})"
        for batch, entry in result["explain"].items()
    )
    print(
        f"{result['method']} explain (emb_dim {result['emb_dim']}, K {result['K']}, "
        f"{result['device']} {result['precision']}): {cells}; "
        f"classifier alone {result['classifier_ms']['median']:.1f} ms; psi ConvTranspose2d "
        f"{share} of explain at batch 1; peak RSS {result['peak_rss_mb']:.0f} MB; "
        f"load average {result['load_average']:.2f}; options: {', '.join(result['options']) or 'none'}; "
        f"{'; '.join(result['settings'])}"
    )
    return result


if __name__ == "__main__":
    main()
