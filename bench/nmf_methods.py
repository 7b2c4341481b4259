#!/usr/bin/env python3
"""Benchmark: multiplicative-update NMF vs the amortized (encoder) NMF.

Both methods of `recipes/train_nmf.py` learn a K-atom dictionary on the same
synthetic data; each is timed from start to its final valid error (H fitted
with W fixed on the valid folds, the same scoring for both). Prints a table; a
benchmark, not a test: it asserts nothing.

    python bench/nmf_methods.py                          # synthetic set in a temp folder
    python bench/nmf_methods.py --data_folder /tmp/synth10 --K 100 --mu_iter 60 --amortized_epochs 5

Authors
 * audio-interpret contributors 2026
"""

import argparse
import os
import tempfile
import time

import torch

from data_prep.synthetic_prepare import create_synthetic_dataset
from recipes.train_nmf import main as train_nmf

HPARAMS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hparams", "nmf.yaml"
)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data_folder", help="synthetic set (created there if missing); temp dir if unset"
    )
    parser.add_argument("--output_folder", help="where the runs write; temp dir if unset")
    parser.add_argument("--classes", type=int, default=10, help="classes of the synthetic set")
    parser.add_argument("--per_class", type=int, default=40, help="clips per class (multiple of 5)")
    parser.add_argument("--duration_s", type=float, default=5.0, help="clip length, seconds")
    parser.add_argument("--K", type=int, default=100, help="number of atoms")
    parser.add_argument("--mu_iter", type=int, default=60, help="max MU iterations")
    parser.add_argument("--amortized_epochs", type=int, default=5, help="amortized training epochs")
    parser.add_argument("--batch_size", type=int, default=8, help="clips per batch")
    parser.add_argument(
        "--valid_iter", type=int, default=200, help="MU iterations fitting H on valid"
    )
    return parser.parse_args(argv)


def run(args, data_folder, output_folder):
    """Runs both methods; returns one row per method."""
    common = [
        HPARAMS,
        "--data_folder", str(data_folder),
        "--signal_length_s", str(args.duration_s),
        "--K", str(args.K),
        "--batch_size", str(args.batch_size),
        "--nmf_valid_n_iter", str(args.valid_iter),
    ]  # fmt: skip
    settings = {
        "mu": ["--nmf_n_iter", str(args.mu_iter)],
        "amortized": ["--number_of_epochs", str(args.amortized_epochs)],
    }
    rows = []
    for method, extra in settings.items():
        output = os.path.join(output_folder, method)
        start = time.perf_counter()
        metrics = train_nmf(common + ["--nmf_method", method, "--output_folder", output] + extra)
        rows.append(
            {
                "method": method,
                "setting": " ".join(extra),
                "wall_s": time.perf_counter() - start,
                "learn_s": metrics["train_time_s"],
                "valid_error": metrics["valid_relative_error"],
            }
        )
    return rows


def main(argv=None):
    """Creates (or reuses) the data, runs both methods, prints the table."""
    args = _parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        data_folder = args.data_folder or os.path.join(scratch, "synthetic")
        output_folder = args.output_folder or os.path.join(scratch, "runs")
        create_synthetic_dataset(
            data_folder, classes=args.classes, per_class=args.per_class, duration_s=args.duration_s
        )
        rows = run(args, data_folder, output_folder)
    print(
        f"\nNMF methods, K = {args.K}, {args.classes} classes x {args.per_class} clips of "
        f"{args.duration_s:g} s (train folds 1-3, valid fold 4), torch threads: "
        f"{torch.get_num_threads()}"
    )
    print(
        f"{'method':<10} {'setting':<22} {'learn (s)':>10} {'total (s)':>10} {'valid rel. error':>17}"
    )
    for row in rows:
        print(
            f"{row['method']:<10} {row['setting']:<22} {row['learn_s']:>10.1f} "
            f"{row['wall_s']:>10.1f} {row['valid_error']:>17.4f}"
        )
    return rows


if __name__ == "__main__":
    main()
