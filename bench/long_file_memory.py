#!/usr/bin/env python3
"""Peak memory of explaining a long file with `recipes/eval.py --single_sample FILE --window`.

    python bench/long_file_memory.py                  # one hour, 48 kHz stereo; trains a tiny PIQ first
    python bench/long_file_memory.py --minutes 10
    python bench/long_file_memory.py --run results/piq/1234 --hparams hparams/piq.yaml \\
        --classifier_folder results/classifier_conv2d/1234

It writes the file (48 kHz, stereo, 16 bits: a tone and noise that change every
few seconds) in pieces with soundfile into a temporary folder, then explains
it with eval.py in a fresh process and prints that process's peak resident
memory (VmHWM: the process alone, not its parent) and wall time. Without
`--run`, a tiny interpreter is trained first, in their own processes, as the
tests do: the embedded synthetic set (3 classes x 5 clips of `--window_s`
seconds), a Conv2d classifier (emb_dim 8) and PIQ (K 30), one epoch each. The
target of issue 24: under 1.5 GB for one hour (memory bounded by a batch of
windows, not by the file). Not a test: it asserts nothing.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parents[1]
FILE_RATE = 48000
TARGET_GB = 1.5  # decimal GB (1e9 bytes), issue 24's
TINY = ["--batch_size", "4", "--number_of_epochs", "1"]
TINY_CLASSIFIER = ["--emb_dim", "8", "--lin_neurons", "8"]

# Runs eval.py's command in this process, then prints the process's peak RSS (kB).
_PROBE = textwrap.dedent(
    """
    import sys
    from recipes import eval as eval_recipe
    status = eval_recipe.cli(sys.argv[1:])
    with open("/proc/self/status") as fin:
        peak = next(line.split()[1] for line in fin if line.startswith("VmHWM:"))
    print(f"PEAK_RSS_KB {peak} STATUS {status}")
    """
)


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the file (default: one hour)")
    parser.add_argument("--run", help="a trained interpreter's output folder (default: train a tiny PIQ)")
    parser.add_argument("--hparams", default=str(REPO_ROOT / "hparams" / "piq.yaml"), help="its yaml")
    parser.add_argument("--classifier_folder", help="its classifier's folder (with --run)")
    parser.add_argument("--window_s", type=float, default=3.0, help="signal_length_s of the tiny interpreter")
    parser.add_argument("--batch_size", type=int, default=16, help="windows per batch (eval's --batch_size)")
    parser.add_argument(
        "--workdir",
        help="where the temporary files go (made if missing; the files are removed at the end; "
        "default: the system's temporary folder)",
    )
    return parser.parse_args(argv)


def recipe(script, *argv):
    """Runs a recipe in its own process (this one stays small); raises on failure."""
    subprocess.run([sys.executable, str(REPO_ROOT / "recipes" / script), *map(str, argv)], cwd=REPO_ROOT, check=True)


def train_tiny_piq(workdir, window_s):
    """A tiny classifier and PIQ on the embedded synthetic set: (run folder, classifier folder)."""
    subprocess.run(
        [
            sys.executable, "-c",
            "import sys; from data_prep.synthetic_prepare import create_synthetic_dataset; "
            "create_synthetic_dataset(sys.argv[1], classes=3, per_class=5, seed=7, duration_s=float(sys.argv[2]))",
            str(workdir / "data"), str(window_s),
        ],
        cwd=REPO_ROOT,
        check=True,
    )
    common = ["--data_folder", workdir / "data", "--signal_length_s", window_s, *TINY, *TINY_CLASSIFIER]
    recipe("train_classifier.py", REPO_ROOT / "hparams" / "classifier_conv2d.yaml", *common,
           "--output_folder", workdir / "classifier")
    recipe("train_piq.py", REPO_ROOT / "hparams" / "piq.yaml", *common, "--K", "30",
           "--classifier_folder", workdir / "classifier", "--output_folder", workdir / "piq")
    return workdir / "piq", workdir / "classifier"


def write_long_file(path, minutes, piece_s=60):
    """A `minutes`-long 48 kHz stereo 16-bit wav, written a minute at a time."""
    generator = np.random.default_rng(0)
    total = int(minutes * 60 * FILE_RATE)
    with sf.SoundFile(str(path), "w", FILE_RATE, 2, subtype="PCM_16") as fout:
        for start in range(0, total, piece_s * FILE_RATE):
            t = np.arange(start, min(total, start + piece_s * FILE_RATE)) / FILE_RATE
            frequency = 300 + 200 * (np.floor(t / 4) % 7)  # another tone every 4 s
            tone = 0.4 * np.sin(2 * np.pi * frequency * t)
            noise = 0.05 * generator.standard_normal((len(t), 2))
            fout.write((tone[:, None] + noise).astype(np.float32))
    return path


def main(argv=None):
    args = parse_arguments(argv)
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)  # a folder to make, not only one that exists
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        workdir = Path(tmp)
        if args.run:
            run, classifier = Path(args.run), args.classifier_folder
        else:
            print("Training a tiny PIQ on the synthetic set ...", flush=True)
            run, classifier = train_tiny_piq(workdir, args.window_s)
        path = write_long_file(workdir / "long.wav", args.minutes)
        size_mib = os.path.getsize(path) / 2**20
        command = [
            args.hparams, "--pretrained_interpreter", run, "--single_sample", path, "--window",
            "--batch_size", args.batch_size, "--eval_folder", workdir / "eval",
        ]
        if classifier:
            command += ["--classifier_folder", classifier]
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, *map(str, command)], cwd=REPO_ROOT, capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
        line = next((line for line in done.stdout.splitlines() if line.startswith("PEAK_RSS_KB")), None)
        if done.returncode != 0 or line is None or not line.endswith("STATUS 0"):
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
            sys.exit("the explanation failed (above)")
        peak_kib = int(line.split()[1])  # VmHWM, in KiB
        interpretation = next((workdir / "eval" / "long").glob("*_interpretation.wav"))
        print(
            f"{args.minutes:g} min of 48 kHz stereo ({size_mib:.0f} MiB on disk), eval.py --window, "
            f"batch {args.batch_size}: peak RSS {peak_kib / 2**20:.2f} GiB = {peak_kib * 1024 / 1e9:.2f} GB "
            f"(target < {TARGET_GB} GB), {seconds:.0f} s; "
            f"interpretation {sf.info(str(interpretation)).duration / 60:.1f} min"
        )


if __name__ == "__main__":
    main()
