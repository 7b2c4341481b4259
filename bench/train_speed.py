#!/usr/bin/env python3
"""Benchmark: training speed of one L2I or PIQ epoch, through the recipe's Brain and fit().

    python bench/train_speed.py --method l2i
    python bench/train_speed.py --method piq --epochs 2 --options glibc_malloc,plain_final,contiguous   # as before issue 8

The recipe's Brain class (the yaml's `interpreter_class`) is built exactly as
the recipe's main() builds it and trained with `fit()` on 60 train / 10 valid
clips of 5 s (see bench/bench_common.py), emb_dim 32, batch 8, L2I K 100, PIQ
K 256. The train and valid stages are timed separately, each from
`on_stage_start` to the end of `on_stage_end` (data loading, forward,
backward, optimiser, statistics and checkpointing included);
train clips/s = 60 / train seconds. With --epochs > 1 the last epoch is
reported (the first one pays one-time set-up). Weights are random: timings do
not depend on training. Not a test: it asserts nothing.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import tempfile
from pathlib import Path

import speed_options


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="l2i", choices=["l2i", "piq"])
    parser.add_argument(
        "--workspace", help="benchmark workspace (created there); temp dir if unset"
    )
    parser.add_argument(
        "--epochs", type=int, default=1, help="epochs to run; the last one is reported"
    )
    speed_options.add_run_arguments(parser)
    parser.add_argument("--json", help="also write the result to this JSON file")
    return parser.parse_args(argv)


def measure(method, workspace_root, epochs=1, options=(), device="cpu", precision="fp32"):
    """Runs `epochs` epochs of the recipe and returns the timings of the last one."""
    applied = speed_options.apply_process_options(options)

    import bench_common

    from recipes.interpreter_brain import fit_interpreter

    workspace = bench_common.prepare_workspace(workspace_root)
    runs_folder = Path(workspace_root) / "runs"
    runs_folder.mkdir(parents=True, exist_ok=True)
    # A fresh folder: a checkpoint left by an earlier run would be recovered and skip the epoch.
    output_folder = tempfile.mkdtemp(
        prefix=f"train_{method}_{'_'.join(options) or 'recipe'}_", dir=runs_folder
    )
    brain_class = bench_common.stage_timed(_recipe_class(method))
    brain, hparams, datasets = bench_common.build_brain(
        method,
        workspace,
        "cpu",
        brain_class=brain_class,
        output_folder=output_folder,
        extra=["--number_of_epochs", epochs, *bench_common.device_args(device, precision)],
    )
    applied += speed_options.apply_model_options(brain, [o for o in options if o != "fuse_bn"])
    fit_interpreter(brain, hparams, datasets)  # the recipe's own loop
    train, valid = brain.stage_seconds["train"][-1], brain.stage_seconds["valid"][-1]
    n_train, n_valid = len(datasets["train"]), len(datasets["valid"])
    return {
        "method": method,
        "device": device,
        "precision": precision,
        "options": applied,
        "settings": speed_options.settings_on(brain),
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


def _recipe_class(method):
    if method == "l2i":
        from recipes.train_l2i import L2I

        return L2I
    from recipes.train_piq import PIQ

    return PIQ


def main(argv=None):
    args = _parse_args(argv)
    options = speed_options.parse_options(args.options)
    with tempfile.TemporaryDirectory(prefix="train_speed_") as tmp:
        result = measure(
            args.method, args.workspace or tmp, args.epochs, options, args.device, args.precision
        )
    import bench_common

    bench_common.write_json(args.json, result)
    print(
        f"{result['method']}: {result['n_train']} train clips in {result['train_s']:.1f} s "
        f"({result['train_clips_per_s']:.2f} clips/s, CPU {result['train_cpu_s']:.1f} s), "
        f"{result['n_valid']} valid clips in {result['valid_s']:.1f} s, epoch {result['epoch_s']:.1f} s, "
        f"peak RSS {result['peak_rss_mb']:.0f} MB, load average {result['load_average']:.2f}; "
        f"options: {', '.join(result['options']) or 'none'}; "
        f"{'; '.join(result['settings'])}"
    )
    return result


if __name__ == "__main__":
    main()
