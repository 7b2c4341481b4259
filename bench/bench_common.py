"""Shared set-up of the speed benchmarks: data, stand-in checkpoints, Brains, timers, options.

The benchmarks measure the real recipes (`recipes/train_l2i.py`,
`recipes/train_piq.py`, `InterpreterBrain.explain`) at the configuration of the
reference figures of the public recipe this project replaces:

    10 classes x 8 clips of 5 s at 16 kHz: 60 train clips, 10 valid clips
    Conv2d classifier, emb_dim 32, batch 8, L2I K = 100, PIQ K = 256

("full size": emb_dim 256, PIQ K = 1024, L2I K = 100).

How the 60 / 10 split is made: `create_synthetic_dataset(classes=10,
per_class=10)` writes 2 clips per class in each of the folds 1..5 (it needs a
multiple of 5 per class). `prepare_esc50` writes the manifests of folds
1, 2, 3 (train: 60 clips), 4 (valid) and 5 (test); the valid and test
manifests are then cut to their first clip of each class (10 clips each), and
the recipes read them with `--skip_manifest_creation True`.

The interpreters need a trained classifier and NMF dictionary. Timings do not
depend on the weights, so the benchmarks save randomly initialised modules
built from the recipe yamls (`embedding_model.ckpt`, `classifier.ckpt`,
`nmf_decoder.ckpt`) and load them through the recipes' normal path.

Speed options (`--options`): the recipes run with three CPU settings (issue 8);
each option switches one off again, to measure what it brings (the figures and
the options measured and not adopted are in bench/README.md):

    glibc_malloc    the allocator as glibc sets it (KEEP_FREED_MEMORY=0): large
                    activations are fresh mmap()s, zero-filled at every call
    plain_final     the decoders' last layer (dim -> 1 channel, 12 x 12 in L2I) as a
                    plain nn.ConvTranspose2d (oneDNN, slow for one output channel)
    contiguous      classifier and interpreter weights in the default (contiguous)
                    memory format instead of channels-last

Not a test: nothing here asserts.

Authors
 * audio-interpret contributors 2026
"""

import contextlib
import io
import json
import logging
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from hyperpyyaml import load_hyperpyyaml

from data_prep.esc50_prepare import prepare_esc50
from data_prep.files import write_atomic, write_json, write_text
from data_prep.synthetic_prepare import create_synthetic_dataset
from models.layers import SingleChannelConvTranspose2d
from recipes.core.brains import build_brain as build_recipe_brain
from recipes.core.startup import prepare_run

REPO_ROOT = Path(__file__).resolve().parents[1]
HPARAMS = {
    "l2i": REPO_ROOT / "hparams" / "l2i_conv2d.yaml",
    "piq": REPO_ROOT / "hparams" / "piq.yaml",
    "lmac_ast": REPO_ROOT / "hparams" / "lmac_ast.yaml",
}
#: The interpreters on a transformer classifier: {method: the classifier's yaml}.
TRANSFORMER_CLASSIFIERS = {"lmac_ast": REPO_ROOT / "hparams" / "classifier_ast.yaml"}

N_CLASSES = 10
PER_CLASS = 10  # written per class (2 per fold); train keeps 6, valid 1, test 1
SEED = 1234
DURATION_S = 5.0
BATCH_SIZE = 8

# emb_dim and K of each size, per method.
SIZES = {
    "cpu": {"emb_dim": 32, "K": {"l2i": 100, "piq": 256}},
    "full": {"emb_dim": 256, "K": {"l2i": 100, "piq": 1024}},
}
# The AST's sizes: "cpu" as the AST demo's (hparams/demo_ast.yaml), max_length the 431 frames
# of a 5 s clip; "full": the yaml's, the reference AST (768 wide, 12 layers, 1024 frames).
AST_SIZES = {
    "cpu": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "max_length": 431,
    },
    "full": {},
}

WEIGHTS_NOTE = (
    "Weights are random (modules built from the yamls, saved and loaded as the recipes do): "
    "timings do not depend on training."
)

# The speed options (see the module docstring); all three: the recipe before issue 8.
OPTIONS = ("glibc_malloc", "plain_final", "contiguous")


def add_run_arguments(parser):
    """--options, --device and --precision, the same in run_all.py and measure.py."""
    parser.add_argument(
        "--options",
        default="",
        help=f"comma-separated speed options to switch off, of {', '.join(OPTIONS)}",
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
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"unknown --options {sorted(unknown)}; choose from {OPTIONS}")
    return options


def apply_process_options(options):
    """Applies glibc_malloc; call before the Brain is built (prepare_run reads it)."""
    if "glibc_malloc" in options:
        os.environ["KEEP_FREED_MEMORY"] = "0"  # read by recipes.core.startup.prepare_run
        return ["glibc_malloc"]
    return []


def apply_model_options(brain, options):
    """Applies plain_final and contiguous to a built interpreter Brain (in place)."""
    done = []
    if "plain_final" in options:
        swapped = 0
        for child in brain.modules["psi"].modules():
            if type(child) is SingleChannelConvTranspose2d and child.out_channels == 1:
                child.__class__ = nn.ConvTranspose2d  # same parameters, oneDNN's path
                swapped += 1
        done.append(f"plain_final: {swapped} layer(s)")
    if "contiguous" in options:
        brain.classifier_modules.to(memory_format=torch.contiguous_format)
        brain.modules.to(memory_format=torch.contiguous_format)
        done.append("contiguous")
    return done


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
    last = sorted(
        {
            type(m).__name__
            for m in brain.modules["psi"].modules()
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


def quiet_console():
    """Keeps SpeechBrain's INFO lines out of the benchmark output (the log files keep them);
    warnings still reach stderr."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.setStream(sys.stderr)
            handler.setLevel(logging.WARNING)


def peak_rss_mb():
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_average():
    """The 1-minute load average: other processes on the cores distort every timing."""
    return os.getloadavg()[0]


def cpu_idle_fraction(seconds=2.0):
    """Share of the machine's CPU time that was idle over `seconds` (Linux /proc/stat)."""

    def counters():
        with open("/proc/stat", encoding="utf-8") as fin:
            values = [int(v) for v in fin.readline().split()[1:]]
        # idle + iowait, total: user .. steal (guest and guest_nice are counted in user and nice)
        return values[3] + values[4], sum(values[:8])

    try:
        idle_0, total_0 = counters()
        time.sleep(seconds)
        idle_1, total_1 = counters()
    except OSError:
        return float("nan")
    return (idle_1 - idle_0) / max(1, total_1 - total_0)


def wait_for_quiet(max_wait_s, idle=0.9):
    """Waits (at most max_wait_s) until the CPUs are `idle` free for 3 s; returns the idle share.

    Other processes on the cores distort every timing: on a shared machine,
    a measurement started in a quiet moment is worth the wait.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        share = cpu_idle_fraction(3.0)
        if share >= idle or time.monotonic() >= deadline:
            return share


def _cut_manifest(path, per_class=1):
    """Keeps the first `per_class` clips (sorted ids) of each class of a JSON manifest."""
    with open(path, encoding="utf-8") as fin:
        entries = json.load(fin)
    kept, count = {}, {}
    for clip_id in sorted(entries):
        label = entries[clip_id]["class_string"]
        if count.get(label, 0) < per_class:
            kept[clip_id] = entries[clip_id]
            count[label] = count.get(label, 0) + 1
    write_json(kept, path)
    return len(kept)


def prepare_workspace(root):
    """Synthetic data, manifests (60 / 10 / 10 clips) and the stand-in checkpoints.

    Arguments
    ---------
    root : str or Path
        Folder for everything; a complete workspace there is reused.

    Returns
    -------
    dict
        data_folder, manifest paths (train / valid / test), counts.
    """
    root = Path(root)
    data_folder = create_synthetic_dataset(
        root / "data", classes=N_CLASSES, per_class=PER_CLASS, seed=SEED, duration_s=DURATION_S
    )
    manifests = {split: root / "manifest" / f"{split}.json" for split in ("train", "valid", "test")}
    done = root / "manifest" / "done"
    if not done.is_file():
        prepare_esc50(
            str(data_folder),
            str(data_folder / "audio"),
            str(manifests["train"]),
            str(manifests["valid"]),
            str(manifests["test"]),
            train_fold_nums=[1, 2, 3],
            valid_fold_nums=[4],
            test_fold_nums=[5],
        )
        _cut_manifest(manifests["valid"])
        _cut_manifest(manifests["test"])
        write_text("60 train / 10 valid / 10 test\n", done)
    counts = {}
    for split, path in manifests.items():
        with open(path, encoding="utf-8") as fin:
            counts[split] = len(json.load(fin))
    for size in SIZES:
        save_stand_in_checkpoints(root, size)
    return {"root": root, "data_folder": data_folder, "manifests": manifests, "counts": counts}


def checkpoint_folder(root, size):
    """Where the stand-in classifier and NMF dictionary of a size live."""
    return Path(root) / "checkpoints" / size


def size_description(method, size):
    """The sizes a measurement runs at, for its output (e.g. "emb_dim 32, K 100").

    Example
    -------
    >>> size_description("piq", "full"), size_description("lmac_ast", "cpu")
    ('emb_dim 256, K 1024', 'AST hidden_size 64, num_hidden_layers 2, num_attention_heads 4, intermediate_size 128, max_length 431')
    >>> size_description("lmac_ast", "full")
    'AST at the yaml sizes (the reference)'
    """
    if method in TRANSFORMER_CLASSIFIERS:
        sizes = AST_SIZES[size]
        if not sizes:
            return "AST at the yaml sizes (the reference)"
        return "AST " + ", ".join(f"{key} {value}" for key, value in sizes.items())
    return f"emb_dim {SIZES[size]['emb_dim']}, K {SIZES[size]['K'][method]}"


def save_transformer_checkpoints(root, method, size):
    """Saves a randomly initialised transformer classifier (backbone and head) for `method`.

    Built only when a measurement asks for it: the reference AST's files are ~350 MB.
    """
    folder = Path(root) / "checkpoints" / f"{method}_{size}"
    files = {"embedding_model": folder / "embedding_model.ckpt", "classifier": folder / "classifier.ckpt"}
    if all(path.is_file() for path in files.values()):
        return files
    return _save_modules(TRANSFORMER_CLASSIFIERS[method], root, files, AST_SIZES[size])


def _save_modules(yaml_path, root, files, overrides):
    """Builds the yaml's modules {name: path} with `overrides` (random weights) and saves them."""
    overrides = {
        "data_folder": str(Path(root) / "data"),
        "output_folder": str(Path(root) / "yaml_only"),
        "out_n_neurons": N_CLASSES,
        **overrides,
    }
    with open(yaml_path, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    for name, path in files.items():
        state = hparams[name].state_dict()
        write_atomic(path, lambda tmp, state=state: torch.save(state, tmp))
    return files


def save_stand_in_checkpoints(root, size):
    """Saves randomly initialised classifier and NMF modules built from the L2I yaml."""
    folder = checkpoint_folder(root, size)
    files = {
        "embedding_model": folder / "embedding_model.ckpt",
        "classifier": folder / "classifier.ckpt",
        "nmf_decoder": folder / "nmf_decoder.ckpt",
    }
    if all(path.is_file() for path in files.values()):
        return files
    sizes = {"emb_dim": SIZES[size]["emb_dim"], "K": SIZES[size]["K"]["l2i"]}
    return _save_modules(HPARAMS["l2i"], root, files, sizes)


def recipe_argv(method, workspace, size="cpu", output_folder=None, extra=()):
    """The command line of a recipe run at the benchmark configuration."""
    root = Path(workspace["root"])
    if method in TRANSFORMER_CLASSIFIERS:
        files = save_transformer_checkpoints(root, method, size)
        sizes = [item for key, value in AST_SIZES[size].items() for item in (f"--{key}", value)]
    else:
        ckpt = checkpoint_folder(root, size)
        files = {name: ckpt / f"{name}.ckpt" for name in ("embedding_model", "classifier")}
        sizes = ["--emb_dim", SIZES[size]["emb_dim"], "--K", SIZES[size]["K"][method]]
    output_folder = output_folder or root / "runs" / f"{method}_{size}"
    argv = [
        str(HPARAMS[method]),
        "--data_folder", str(workspace["data_folder"]),
        "--output_folder", str(output_folder),
        "--train_annotation", str(workspace["manifests"]["train"]),
        "--valid_annotation", str(workspace["manifests"]["valid"]),
        "--test_annotation", str(workspace["manifests"]["test"]),
        "--skip_manifest_creation", "True",
        "--embedding_model_path", str(files["embedding_model"]),
        "--classifier_model_path", str(files["classifier"]),
        *sizes,
        "--batch_size", BATCH_SIZE,
        "--noprogressbar",
    ]  # fmt: skip
    if method == "l2i":
        argv += ["--nmf_decoder_path", str(ckpt / "nmf_decoder.ckpt")]
    return [str(item) for item in argv] + [str(item) for item in extra]


def build_brain(method, workspace, size="cpu", brain_class=None, output_folder=None, extra=()):
    """prepare_run + the recipe's Brain, exactly as the recipe's main() builds it.

    Returns
    -------
    brain, hparams, datasets
    """
    argv = recipe_argv(method, workspace, size, output_folder, extra)
    with contextlib.redirect_stdout(io.StringIO()):  # start-up INFO lines (kept in log.txt)
        hparams, run_opts, _, _, datasets, label_encoder = prepare_run(argv)
    quiet_console()
    brain_class = brain_class or hparams["interpreter_class"]
    brain = build_recipe_brain(brain_class, hparams, run_opts, label_encoder=label_encoder)
    return brain, hparams, datasets


def clips(datasets, n):
    """A batch (n, T) of real 5 s clips, train clips first then valid."""
    sigs = []
    for split in ("train", "valid"):
        for i in range(len(datasets[split])):
            if len(sigs) == n:
                break
            sigs.append(datasets[split][i]["sig"])
    if len(sigs) < n:  # measure.py divides the time by n: fewer clips would understate ms/clip
        raise ValueError(f"batch {n}: only {len(sigs)} clips (train + valid) to explain")
    return torch.stack(sigs)  # (n, T)


def synchronize():
    """Waits for queued GPU work (timings on GPU); nothing on CPU."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def device_args(device="cpu", precision="fp32"):
    """Recipe command-line arguments for a device and a precision (train and eval)."""
    return ["--device", device, "--precision", precision, "--eval_precision", precision]


def call_times(fn, warmup=2, runs=5, with_cpu=False):
    """Wall seconds of `runs` calls of `fn()`, after `warmup` untimed calls.

    With `with_cpu`, also the process CPU seconds of each call (all threads):
    less sensitive than wall time to other processes on the cores.
    """
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(runs):
        synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        synchronize()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return (walls, cpus) if with_cpu else walls


def median(values):
    """The median of a list of numbers."""
    return statistics.median(values)


def stage_timed(brain_class):
    """A subclass of `brain_class` recording each stage's wall and CPU seconds.

    The stage runs from `on_stage_start` to the end of `on_stage_end`
    (data loading, forward, backward, optimiser, statistics, checkpointing).
    """

    class StageTimed(brain_class):
        def on_stage_start(self, stage, epoch=None):
            self._stage_clock = (time.perf_counter(), time.process_time())
            super().on_stage_start(stage, epoch)

        def on_stage_end(self, stage, stage_loss, epoch=None):
            super().on_stage_end(stage, stage_loss, epoch)
            wall, cpu = self._stage_clock
            times = self.__dict__.setdefault("stage_seconds", {})
            times.setdefault(stage.name.lower(), []).append(
                {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
            )

    StageTimed.__name__ = f"StageTimed{brain_class.__name__}"
    return StageTimed


def finite_or_none(data):
    """`data` with every NaN / inf float replaced by None (what write_json accepts)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(value) for value in data]
    return data


def write_result(path, data):
    """Writes a measurement's result file atomically (read by run_all.py); nothing if no path."""
    if path is not None:
        write_json(finite_or_none(data), path)
