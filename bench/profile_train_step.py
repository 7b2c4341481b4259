#!/usr/bin/env python3
"""Profile of one L2I and one PIQ training step (batch 8, 5 s clips, emb_dim 32).

    python bench/profile_train_step.py                      # both, torch.profiler + cProfile
    python bench/profile_train_step.py --methods piq --options glibc_malloc,plain_final,contiguous

One batch of the train loader goes through `brain.fit_batch` (forward with the
frozen classifier, loss, backward, optimiser step) twice as warm-up, then once
under torch.profiler (operator self time, grouped by input shape) and once
under cProfile (Python call sites, cumulative time). Weights are random:
timings do not depend on training. Not a test: it asserts nothing.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path

import speed_options


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["l2i", "piq"], choices=["l2i", "piq"])
    parser.add_argument(
        "--workspace", help="benchmark workspace (created there); temp dir if unset"
    )
    parser.add_argument("--options", default="", help="comma-separated speed options")
    parser.add_argument("--rows", type=int, default=20, help="rows of each table")
    return parser.parse_args(argv)


def profile_step(method, workspace_root, options, rows):
    import bench_common
    import speechbrain as sb
    from torch.profiler import ProfilerActivity, profile

    workspace = bench_common.prepare_workspace(workspace_root)
    output_folder = Path(workspace_root) / "runs" / f"profile_{method}"
    brain, hparams, datasets = bench_common.build_brain(
        method, workspace, "cpu", output_folder=output_folder
    )
    applied = speed_options.apply_model_options(brain, [o for o in options if o != "fuse_bn"])
    loader = brain.make_dataloader(
        datasets["train"], sb.Stage.TRAIN, **hparams["dataloader_options"]
    )
    batch = next(iter(loader))
    brain.on_fit_start()
    brain.on_stage_start(sb.Stage.TRAIN, 1)
    brain.modules.train()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        brain.fit_batch(batch)
        times.append(time.perf_counter() - start)
    print(
        f"\n=== {method}: one training step, batch {batch.sig[0].shape[0]}, "
        f"{', '.join(applied) or 'recipe as is'}: "
        f"{1e3 * bench_common.median(times):.0f} ms (median of 3), load average {bench_common.load_average():.2f}"
    )
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        brain.fit_batch(batch)
    print(
        prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total",
            row_limit=rows,
            max_name_column_width=40,
            max_shapes_column_width=60,
        )
    )
    profiler = cProfile.Profile()
    profiler.enable()
    brain.fit_batch(batch)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(rows)
    print("\n".join(line for line in text.getvalue().splitlines() if line.strip())[:6000])


def main(argv=None):
    args = _parse_args(argv)
    options = [o for o in args.options.split(",") if o]
    print(speed_options.apply_process_options(options) or "process options: none")
    with tempfile.TemporaryDirectory(prefix="profile_train_") as tmp:
        for method in args.methods:
            profile_step(method, args.workspace or tmp, options, args.rows)


if __name__ == "__main__":
    main()
