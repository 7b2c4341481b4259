#!/usr/bin/env python3
"""`audio-interpret`: explain audio files with an exported interpreter.

The command (`pip install -e .` installs it; `python recipes/interpret_files.py` is the same):

    audio-interpret dog.wav cat.mp3 --interpreter results/piq/1234/inference --out explained/

writes `<stem>_interpretation.wav`, `<stem>_original.wav` and `<stem>.png` per
file (for L2I also `<stem>_component<k>.wav` for the most relevant of the NMF
components it kept, at most `--max_components`: widened by `keep_class`, L2I
may keep nearly all of its dictionary) and `predictions.json`; a file
that is missing or unreadable is reported and the others are still explained.
Under torchrun the files are dealt out to the processes.

Nothing the user has is replaced: an output whose name is an input's (e.g.
`clips/dog.wav` and `clips/dog_original.wav` with `--out clips`), another
input's output, or a file already in `--out` that no earlier run wrote (what
its `predictions.json` lists may be rewritten, and what a run killed part-way
noted in its `LEDGER_PREFIX` file), is renamed `<stem>-2...` and the run says so
(predictions.json keeps the entries of the files a rerun does not explain again); a file given twice is explained once. One run at a time per
`--out` (the run lock of `recipes.core.run_guard`, as the training recipes).

Exit status: 0, all explained; 1, some files could not be explained; 2,
nothing was done: the interpreter cannot be loaded (missing, incomplete or
truncated, a yaml that names code without `--trust_code`, a `--device` this
machine does not have), `--out` cannot be a folder this user writes or another
run is using it, or a flag is given twice.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

import torch
from speechbrain.utils.logger import get_logger

from data_prep.files import write_json
from recipes.core.brains import check_device
from recipes.core.process import leave_process_group_at_exit
from recipes.core.run_guard import LOCK_FILE, check_writable_folder, lock_output_folder
from recipes.core.startup import given_flags
from recipes.interpreters.inference import AudioInterpreter
from recipes.reporting.figures import (
    MAX_COMPONENTS,
    interpretation_paths,
    most_relevant,
    save_interpretation,
    write_wav,
)

logger = get_logger(__name__)

PREDICTIONS_FILE = "predictions.json"
#: The outputs a process is about to write, a name per line, in `<out>/<prefix><rank>` until the
#: run's predictions.json lists them: a run killed part-way leaves them, and a rerun rewrites
#: those files instead of taking them for the user's.
LEDGER_PREFIX = ".audio-interpret-writing-"
#: What loading an interpreter raises for a folder, yaml, checkpoint or device it cannot use.
LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, AttributeError, ImportError, TypeError)


def parse_arguments(argv=None):
    """The command line of `audio-interpret`.

    Example
    -------
    >>> args = parse_arguments(["a.wav", "b.mp3", "--interpreter", "runs/piq/inference"])
    >>> args.files, args.out
    (['a.wav', 'b.mp3'], 'interpretations')
    """
    parser = argparse.ArgumentParser(
        prog="audio-interpret",
        description="Explain audio files with a trained interpreter (L2I, PIQ or L-MAC): "
        "an interpretation wav, the original as classified and a spectrogram PNG per file.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files (wav, flac, ogg, mp3, ...)")
    parser.add_argument(
        "--interpreter",
        required=True,
        help="the inference folder a training run exported (<output_folder>/inference) or a hub id",
    )
    parser.add_argument("--out", default="interpretations", help="output folder (default: %(default)s)")
    parser.add_argument("--savedir", help="where to collect the interpreter's files (hub models)")
    parser.add_argument("--device", help="e.g. cpu or cuda:0 (default: a GPU when there is one)")
    parser.add_argument(
        "--max_components",
        type=_count,
        default=MAX_COMPONENTS,
        help="L2I: write the wavs of at most this many of the NMF components it kept, the most "
        "relevant first (default %(default)s; 0: none). The interpretation wav holds them all.",
    )
    parser.add_argument(
        "--trust_code",
        action="store_true",
        help="build whatever the interpreter's yaml names, code included (only for a folder from a "
        "source you trust); by default it may build classes of this project, SpeechBrain and torch only",
    )
    return parser.parse_args(argv)


def _count(text):
    """A whole number >= 0 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value


def _writes(stem, name):
    """Whether the outputs of `stem` include a file called `name`."""
    names = {os.path.basename(path) for path in interpretation_paths("", stem).values()}
    return name in names or re.fullmatch(rf"{re.escape(stem)}_component\d+\.wav", name) is not None


def earlier_predictions(out):
    """The predictions.json an earlier run wrote in `out`, or None.

    Raises
    ------
    ValueError
        `out` holds a predictions.json that is not this command's (it names no interpreter,
        method and files with their outputs).
    """
    path = os.path.join(out, PREDICTIONS_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fin:
            previous = json.load(fin)
        if not isinstance(previous["interpreter"], str) or not isinstance(previous["method"], str):
            raise TypeError
        for entry in previous["files"].values():
            dict(entry["files"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(
            f"{path} is not a predictions.json of audio-interpret, and a run writes one there: "
            "pass another --out."
        ) from None
    return previous


def _entry_paths(entry):
    """The paths one entry of predictions.json lists (its component list item by item), as the
    run was given --out: relative to its working folder when --out was."""
    for value in entry["files"].values():
        yield from (str(item) for item in (value if isinstance(value, list) else [value]))


def _entry_names(entry):
    """The names of the files one entry of predictions.json lists."""
    return {os.path.basename(path) for path in _entry_paths(entry)}


def earlier_outputs(out):
    """The names of the files in `out` that earlier runs wrote: those its predictions.json lists
    (its "outputs", every run's names in `out`, and its entries' paths that lie in `out` seen
    from here: a run given `--out` from another working folder wrote relative ones), and
    those a run killed part-way was about to write (`LEDGER_PREFIX` files).

    Raises
    ------
    ValueError
        `out` holds a predictions.json that is not this command's.
    """
    previous = earlier_predictions(out)
    names = set()
    if previous is not None:
        names.update(str(name) for name in previous.get("outputs", ()))  # names in `out`
        for entry in previous["files"].values():  # paths as that run was given them
            names.update(
                os.path.basename(path)
                for path in _entry_paths(entry)
                if os.path.dirname(os.path.realpath(path)) == os.path.realpath(out)
            )
    for ledger in sorted(Path(out).glob(f"{LEDGER_PREFIX}*")) if os.path.isdir(out) else ():
        names.update(line for line in ledger.read_text(encoding="utf-8").splitlines() if line)
        names.add(ledger.name)
    return names


def _note_outputs(ledger, names):
    """Adds the names of the files about to be written to the process's ledger (flushed)."""
    with open(ledger, "a", encoding="utf-8") as fout:
        fout.write("".join(f"{name}\n" for name in names))
        fout.flush()
        os.fsync(fout.fileno())


def plan_outputs(files, out):
    """The files to explain, each once, and the stem of each one's outputs in `out`.

    No output replaces an input, another output of the run or a file already in
    `out` that no earlier run wrote (`earlier_outputs`): a stem whose outputs
    would be named as an input in `out` (`dog` writes `dog_original.wav`), as such
    a file, or as another input's outputs (two `dog.wav` in two folders) becomes
    `<stem>-2`, `<stem>-3`, ...

    Arguments
    ---------
    files : list of str
        The inputs, as given (missing ones too: they are reported later).
    out : str
        The output folder.

    Returns
    -------
    unique : list of str
        `files` without repetitions of a file (the same real path), in order.
    stems : dict
        {file: stem of its outputs}.
    notes : list of str
        One sentence per file given more than once and per output renamed.

    Raises
    ------
    ValueError
        An input is a file the run itself writes in `out` (`predictions.json`, the run lock).

    Example
    -------
    >>> unique, stems, notes = plan_outputs(["c/dog.wav", "c/dog_original.wav", "c/dog.wav"], "c")
    >>> unique, stems["c/dog.wav"], stems["c/dog_original.wav"]
    (['c/dog.wav', 'c/dog_original.wav'], 'dog-2', 'dog_original')
    >>> notes[0]
    'c/dog.wav is given 2 times: explained once.'
    """
    real = {path: os.path.realpath(path) for path in files}
    first = {}
    for path in files:
        first.setdefault(real[path], path)
    unique = list(first.values())
    counts = Counter(real[path] for path in files)
    notes = [f"{path} is given {counts[real[path]]} times: explained once." for path in unique if counts[real[path]] > 1]
    out_real = os.path.realpath(out)
    inputs_here = {os.path.basename(r): first[r] for r in first if os.path.dirname(r) == out_real}
    for name in (PREDICTIONS_FILE, LOCK_FILE):
        if name in inputs_here:
            raise ValueError(
                f"{inputs_here[name]} is an input, and audio-interpret writes {name} in --out {out}: "
                "pass another --out."
            )
    # the files already there that no earlier run wrote: the user's, kept like the inputs
    present = sorted(os.listdir(out)) if os.path.isdir(out) else []
    ours = earlier_outputs(out) | {PREDICTIONS_FILE, LOCK_FILE}
    kept = {name: os.path.join(out, name) for name in present if name not in ours and name not in inputs_here}
    stems, used = {}, set()
    for path in unique:
        stem = candidate = Path(path).stem
        n = 1
        while candidate in used or any(_writes(candidate, name) for name in [*inputs_here, *kept]):
            n += 1
            candidate = f"{stem}-{n}"
        used.add(candidate)
        stems[path] = candidate
        if candidate != stem:
            clashes = [inputs_here[name] for name in inputs_here if _writes(stem, name)]
            found = [kept[name] for name in kept if _writes(stem, name)]
            if clashes:
                why = f"{', '.join(clashes)} is an input, not overwritten"
            elif found:
                why = f"{', '.join(found)} is already there and no earlier run wrote it, not overwritten"
            else:
                why = f"{stem} is the name of another input's outputs"
            notes.append(f"{path}: its outputs are named {candidate}* in {out} ({why}).")
    return unique, stems, notes


def _component_name(stem, component):
    """The wav of one L2I component: `<stem>_component<k>.wav`."""
    return f"{stem}_component{component:03d}.wav"


def output_names(result, stem, max_components=None):
    """The names of the files `save_result` writes for `result` (before it writes them)."""
    names = [os.path.basename(path) for path in interpretation_paths("", stem).values()]
    return names + [
        _component_name(stem, component["component"])
        for component in most_relevant(result.get("components", ()), max_components)
    ]


def save_result(result, folder, stem, max_components=None):
    """Writes the interpretation wav, the original wav and the PNG (and L2I's components).

    Arguments
    ---------
    result : dict
        `AudioInterpreter.interpret_file`'s.
    folder, stem : str
        Where, and the start of each file's name.
    max_components : int, optional
        L2I: the wavs of at most this many of its components, the most relevant
        first (ties: the lower index); all of them when None.

    Returns
    -------
    dict
        The paths written ("png", "original", "interpretation", "components").
    """
    paths = save_interpretation(
        folder,
        stem,
        X=result["X"],
        mask=result["mask"],
        X_int=result["X_int"],
        original=result["input"],
        interpretation=result["interpretation"],
        sample_rate=result["sample_rate"],
        title=f"{stem}: {result['class']} (p={result['probability']:.2f})",
    )
    components = []
    for component in most_relevant(result.get("components", ()), max_components):
        path = os.path.join(folder, _component_name(stem, component["component"]))
        write_wav(path, component["waveform"], result["sample_rate"])
        components.append(path)
    if "components" in result:
        paths["components"] = components
    return paths


def _join_torchrun(device=None):
    """(rank, world size): joins the process group when started by torchrun, else (0, 1).

    Under `torchrun --nproc_per_node=N audio-interpret ...` the files are dealt
    out to the N processes (one GPU or CPU process each) and the main process
    writes `predictions.json` for all of them.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1
    if not torch.distributed.is_initialized():
        on_gpu = device is None and torch.cuda.is_available() or str(device).startswith("cuda")
        torch.distributed.init_process_group(backend="nccl" if on_gpu else "gloo")
        leave_process_group_at_exit()
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def _refuse(message):
    """Says why nothing was done, on one line; the exit status 2."""
    print(f"audio-interpret: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def _lock(out, rank, world_size):
    """Takes --out's run lock on the main process; None, or why it cannot (told to every process)."""
    refused = None
    if rank == 0:
        try:
            lock_output_folder(out, "--out")
        except (RuntimeError, PermissionError) as error:
            refused = str(error)
    if world_size > 1:
        everyone = [None] * world_size
        torch.distributed.all_gather_object(everyone, refused)
        refused = everyone[0]
    return refused


def main(argv=None):
    """`audio-interpret FILE... --interpreter FOLDER --out DIR`; returns the exit status."""
    from tqdm import tqdm

    argv = sys.argv[1:] if argv is None else argv
    try:
        given_flags(argv)  # a flag given twice
    except ValueError as error:
        return _refuse(error)
    args = parse_arguments(argv)
    try:  # before any work: where the files go, and where the interpreter runs
        check_writable_folder(args.out, "--out")
        files, stems, notes = plan_outputs(args.files, args.out)
        if args.device is not None:
            check_device(args.device)
    except (PermissionError, ValueError) as error:
        return _refuse(error)
    rank, world_size = _join_torchrun(args.device)
    device = args.device
    if device is None and world_size > 1 and torch.cuda.is_available():
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"  # one GPU per process
    run_opts = {"device": device} if device else None
    try:
        interpreter = AudioInterpreter.from_hparams(
            source=args.interpreter, savedir=args.savedir, run_opts=run_opts, trust_code=args.trust_code
        )
    except LOAD_ERRORS as error:
        return _refuse(f"cannot load the interpreter {args.interpreter}: {error}")
    refused = _lock(args.out, rank, world_size)
    if refused:
        return _refuse(refused)
    if rank == 0:
        for note in notes:
            print(f"audio-interpret: {note}", file=sys.stderr)
    predictions, failures = {}, {}
    earlier = earlier_outputs(args.out)  # checked readable by plan_outputs
    ledger = os.path.join(args.out, f"{LEDGER_PREFIX}{rank}")
    mine = range(rank, len(files), world_size)  # under torchrun: every world_size-th file
    for index in tqdm(mine, desc="audio-interpret", unit="file", disable=None if rank == 0 else True):
        path = files[index]
        try:
            result = interpreter.interpret_file(path)
            stem = stems[path]
            names = output_names(result, stem, args.max_components)
            _note_outputs(ledger, names)
            for name in earlier - set(names):  # an earlier run's output of this stem: not left beside
                if _writes(stem, name) and os.path.isfile(os.path.join(args.out, name)):
                    os.remove(os.path.join(args.out, name))
            written = save_result(result, args.out, stem, args.max_components)
        except (FileNotFoundError, ValueError) as error:
            failures[path] = str(error)
            tqdm.write(f"audio-interpret: skipped {error}", file=sys.stderr)
            continue
        predictions[path] = {
            "class": result["class"],
            "probability": result["probability"],
            "files": written,
            "warnings": result["warnings"],
        }
        if "components" in result:  # L2I: how many it kept (the wavs: the most relevant of them)
            predictions[path]["components_kept"] = len(result["components"])
        if "keep_class_step" in result:  # keep_class: how far the mask was widened (0: not)
            predictions[path]["keep_class_step"] = result["keep_class_step"]
        tqdm.write(f"{path}: {result['class']} (p={result['probability']:.3f}) -> {written['interpretation']}")
    if world_size > 1:  # every process's results, on every process (one exit status)
        everyone = [None] * world_size
        torch.distributed.all_gather_object(everyone, (predictions, failures))
        predictions = {p: r for part in everyone for p, r in part[0].items()}
        failures = {p: r for part in everyone for p, r in part[1].items()}
        predictions = {p: predictions[p] for p in files if p in predictions}  # input order
        failures = {p: failures[p] for p in files if p in failures}
        if rank != 0:
            return 1 if failures else 0
    written_now = set().union(*(_entry_names(entry) for entry in predictions.values()))
    previous = earlier_predictions(args.out) or {"files": {}}
    kept = {  # an earlier run's entries whose outputs this run did not write over
        path: entry
        for path, entry in previous["files"].items()
        if path not in predictions and not (_entry_names(entry) & written_now)
    }
    present = set(os.listdir(args.out))
    write_json(
        {
            "interpreter": os.fspath(args.interpreter),
            "method": interpreter.method,
            "files": {**kept, **predictions},
            "errors": failures,
            "notes": notes,
            # every file an audio-interpret run wrote here (a rerun may write over them)
            "outputs": sorted(name for name in (earlier | written_now) if name in present and not name.startswith(LEDGER_PREFIX)),
        },
        os.path.join(args.out, PREDICTIONS_FILE),
    )
    for stale in Path(args.out).glob(f"{LEDGER_PREFIX}*"):  # predictions.json lists them now
        stale.unlink()
    if failures:
        print(
            f"audio-interpret: {len(failures)} of {len(files)} files could not be explained "
            f"(the others are in {args.out}):",
            file=sys.stderr,
        )
        for reason in failures.values():  # each names its file
            print(f"  {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
