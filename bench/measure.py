#!/usr/bin/env python3
"""One measurement of the speed benchmarks, in its own process: a training epoch or explain().

    python bench/measure.py train --method l2i
    python bench/measure.py train --method piq --epochs 2 --options glibc_malloc,plain_final,contiguous
    python bench/measure.py explain --method l2i
    python bench/measure.py explain --method piq --size full --batches 1
    python bench/measure.py explain --method lmac_ast --size full --device cuda:0
    python bench/measure.py train --method lmac_ast --size full --device cuda:0   # one epoch, reference AST

run_all.py runs each of its measurements this way, so each reports its own
peak RSS; `--json FILE` also writes the result there (atomically).

train: the recipe's Brain class (the yaml's `interpreter_class`) is built
exactly as the recipe's main() builds it and trained with the recipe's loop
(`fit_interpreter`) on 60 train / 10 valid clips of 5 s (see
bench/bench_common.py), emb_dim 32, batch 8, L2I K 100, PIQ K 256. The train
and valid stages are timed separately, each from `on_stage_start` to the end
of `on_stage_end` (data loading, forward, backward, optimiser, statistics and
checkpointing included); train clips/s = 60 / train seconds. With --epochs > 1
the last epoch is reported (the first one pays one-time set-up).

explain: the recipe's Brain, emb_dim 32, L2I K 100, PIQ K 256 ("--size full":
emb_dim 256, PIQ K 1024). `explain()` (eval mode, no grad: STFT, frozen
classifier, psi, mask, inversion to audio) runs on real 5 s clips: a first
call, warm-up calls, then the median (and min) of several timed calls,
divided by the batch size. The classifier's forward alone (embedding model +
head, batch 1) is timed the same way, and on CPU the share of explain() time
spent in psi's ConvTranspose2d layers (forward hooks, batch 1).

`--method lmac_ast`: L-MAC (hparams/lmac_ast.yaml) on an AST classifier, at the
AST demo's sizes (width 64, 2 layers, 4 heads, max_length 431 = a 5 s clip) or,
with `--size full`, the reference AST (768 wide, 12 layers, max_length 1024):
the same clips, batch and timers (bench_common.AST_SIZES).

Weights are random: timings do not depend on training. Not a test: it
asserts nothing.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import tempfile
import time
from pathlib import Path

import bench_common
import torch


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["train", "explain"])
    parser.add_argument("--method", default="l2i", choices=list(bench_common.HPARAMS))
    parser.add_argument(
        "--workspace", help="benchmark workspace (created there); temp dir if unset"
    )
    parser.add_argument(
        "--epochs", type=int, default=1, help="train: epochs to run; the last one is reported"
    )
    parser.add_argument(
        "--size", default="cpu", choices=["cpu", "full"], help="cpu: emb_dim 32 (AST: 64 wide); full: 256 (AST: the reference)"
    )
    parser.add_argument(
        "--batches", nargs="+", type=int, default=[1, 16], help="explain: batch sizes"
    )
    parser.add_argument(
        "--runs", type=int, default=7, help="explain: timed calls at batch 1 to 4 (3 at batch > 4 and at --size full)"
    )
    bench_common.add_run_arguments(parser)
    parser.add_argument("--json", help="also write the result to this JSON file")
    return parser.parse_args(argv)


def _output_folder(workspace_root, prefix):
    # A fresh folder: a checkpoint left by an earlier run would be recovered and skip the epoch.
    runs_folder = Path(workspace_root) / "runs"
    runs_folder.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=runs_folder)


def _recipe_class(method):
    if method == "l2i":
        from recipes.interpreters.l2i import L2I

        return L2I
    if method == "lmac_ast":
        from recipes.interpreters.lmac import LMAC

        return LMAC
    from recipes.interpreters.piq import PIQ

    return PIQ


def measure_train(method, workspace_root, epochs=1, options=(), device="cpu", precision="fp32", size="cpu"):
    """Runs `epochs` epochs of the recipe at `size` and returns the timings of the last one."""
    from recipes.interpreters.training import fit_interpreter

    applied = bench_common.apply_process_options(options)
    workspace = bench_common.prepare_workspace(workspace_root)
    output_folder = _output_folder(
        workspace_root, f"train_{method}_{size}_{'_'.join(options) or 'recipe'}_"
    )
    brain, hparams, datasets = bench_common.build_brain(
        method,
        workspace,
        size,
        brain_class=bench_common.stage_timed(_recipe_class(method)),
        output_folder=output_folder,
        extra=["--number_of_epochs", epochs, *bench_common.device_args(device, precision)],
    )
    applied += bench_common.apply_model_options(brain, options)
    fit_interpreter(brain, hparams, datasets)  # the recipe's own loop
    train, valid = brain.stage_seconds["train"][-1], brain.stage_seconds["valid"][-1]
    n_train, n_valid = len(datasets["train"]), len(datasets["valid"])
    return {
        "method": method,
        "size": size,
        "sizes": bench_common.size_description(method, size),
        "device": device,
        "precision": precision,
        "options": applied,
        "settings": bench_common.settings_on(brain),
        "epochs": epochs,
        "n_train": n_train,
        "n_valid": n_valid,
        "train_s": train["wall"],
        "train_cpu_s": train["cpu"],
        "valid_s": valid["wall"],
        "valid_cpu_s": valid["cpu"],
        "epoch_s": train["wall"] + valid["wall"],
        "train_clips_per_s": n_train / train["wall"],
        "peak_rss_mb": bench_common.peak_rss_mb(),
        "load_average": bench_common.load_average(),
    }


def _schedule(batch, runs, size):
    """(warm-up calls after the first call, timed calls) for a batch size."""
    if batch > 4 or size == "full":
        return 0, 3
    return 2, runs


def measure_explain(
    method,
    workspace_root,
    size="cpu",
    batches=(1, 16),
    runs=7,
    options=(),
    device="cpu",
    precision="fp32",
):
    """Times explain() at each batch size and the classifier alone; returns a dict."""
    applied = bench_common.apply_process_options(options)
    workspace = bench_common.prepare_workspace(workspace_root)
    tag = "_".join(options) or "recipe"
    brain, _, datasets = bench_common.build_brain(
        method,
        workspace,
        size,
        output_folder=_output_folder(workspace_root, f"explain_{method}_{size}_{tag}_"),
        extra=bench_common.device_args(device, precision),
    )
    applied += bench_common.apply_model_options(brain, options)
    result = {
        "method": method,
        "size": size,
        "sizes": bench_common.size_description(method, size),
        "device": device,
        "precision": precision,
        "options": applied,
        "settings": bench_common.settings_on(brain),
        "threads": torch.get_num_threads(),
        "explain": {},
    }
    for batch in batches:
        wavs = bench_common.clips(datasets, batch)

        def call(wavs=wavs):
            return brain.explain(wavs)

        start = time.perf_counter()
        call()
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
    # forward hooks time the host side only: meaningful on CPU, not for queued GPU work
    result["conv_transpose_share"] = (
        conv_transpose_share(brain, bench_common.clips(datasets, 1)) if device == "cpu" else None
    )

    X, _ = brain.preprocess(bench_common.clips(datasets, 1))

    def classify():
        with brain.evaluation_ctx:
            return brain.classify(X)

    times = bench_common.call_times(classify, warmup=2, runs=3 if size == "full" else 3 * runs)
    result["classifier_ms"] = {"median": 1e3 * bench_common.median(times), "min": 1e3 * min(times)}
    result["peak_rss_mb"] = bench_common.peak_rss_mb()
    result["load_average"] = bench_common.load_average()
    return result


def conv_transpose_share(brain, wavs, calls=3):
    """Share of explain() wall time spent in psi's ConvTranspose2d layers (forward hooks)."""
    spent = [0.0]
    starts = {}

    def before(module, args):
        starts[id(module)] = time.perf_counter()

    def after(module, args, output):
        spent[0] += time.perf_counter() - starts.pop(id(module))

    handles = []
    for module in brain.modules["psi"].modules():
        if isinstance(module, torch.nn.ConvTranspose2d):
            handles += [
                module.register_forward_pre_hook(before),
                module.register_forward_hook(after),
            ]
    total = 0.0
    try:
        for _ in range(calls):
            start = time.perf_counter()
            brain.explain(wavs)
            total += time.perf_counter() - start
    finally:
        for handle in handles:
            handle.remove()
    return spent[0] / total


def _summary(result):
    """One line for a person reading the output."""
    common = (
        f"peak RSS {result['peak_rss_mb']:.0f} MiB, load average {result['load_average']:.2f}; "
        f"options: {', '.join(result['options']) or 'none'}; {'; '.join(result['settings'])}"
    )
    if "train_s" in result:
        return (
            f"{result['method']} ({result['sizes']}): {result['n_train']} train clips in {result['train_s']:.1f} s "
            f"({result['train_clips_per_s']:.2f} clips/s, CPU {result['train_cpu_s']:.1f} s), "
            f"{result['n_valid']} valid clips in {result['valid_s']:.1f} s, "
            f"epoch {result['epoch_s']:.1f} s, {common}"
        )
    share = result["conv_transpose_share"]
    share = "-" if share is None else f"{100 * share:.0f}%"
    cells = ", ".join(
        f"batch {batch}: {entry['median_ms_per_clip']:.1f} ms/clip (min {entry['min_ms_per_clip']:.1f}, "
        f"CPU {entry['median_cpu_ms_per_clip']:.1f})"
        for batch, entry in result["explain"].items()
    )
    return (
        f"{result['method']} explain ({result['sizes']}, "
        f"{result['device']} {result['precision']}): {cells}; "
        f"classifier alone {result['classifier_ms']['median']:.1f} ms; psi ConvTranspose2d "
        f"{share} of explain at batch 1; {common}"
    )


def main(argv=None):
    args = _parse_args(argv)
    options = bench_common.parse_options(args.options)
    with tempfile.TemporaryDirectory(prefix=f"bench_{args.what}_") as tmp:
        root = args.workspace or tmp
        if args.what == "train":
            result = measure_train(
                args.method, root, args.epochs, options, args.device, args.precision, args.size
            )
        else:
            result = measure_explain(
                args.method,
                root,
                args.size,
                args.batches,
                args.runs,
                options,
                args.device,
                args.precision,
            )
    bench_common.write_result(args.json, result)
    print(_summary(result))
    return result


if __name__ == "__main__":
    main()
