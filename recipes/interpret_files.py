#!/usr/bin/env python3
"""`audio-interpret`: explain audio files with an exported interpreter.

The command (`pip install -e .` installs it; `python recipes/interpret_files.py` is the same):

    audio-interpret dog.wav cat.mp3 --interpreter results/piq/1234/inference --out explained/

writes `<stem>_interpretation.wav`, `<stem>_original.wav` and `<stem>.png` per
file (for L2I also `<stem>_component<k>.wav`) and `predictions.json`; a file
that is missing or unreadable is reported and the others are still explained
(exit status 1 when any file failed, 2 when the interpreter cannot be loaded).
Under torchrun the files are dealt out to the processes.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import os
import sys
from pathlib import Path

import torch
from speechbrain.utils.logger import get_logger

from data_prep.files import write_json
from recipes.interpreters.inference import AudioInterpreter
from recipes.reporting.figures import save_interpretation, write_wav

logger = get_logger(__name__)
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
    return parser.parse_args(argv)


def _output_stem(path, used):
    """The file's stem, made unique among `used` (two inputs may share a name)."""
    stem = Path(path).stem
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}"
    used.add(candidate)
    return candidate


def save_result(result, folder, stem):
    """Writes the interpretation wav, the original wav and the PNG (and L2I's components).

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
    for component in result.get("components", ()):
        path = os.path.join(folder, f"{stem}_component{component['component']:03d}.wav")
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
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def main(argv=None):
    """`audio-interpret FILE... --interpreter FOLDER --out DIR`; returns the exit status."""
    from tqdm import tqdm

    args = parse_arguments(argv)
    rank, world_size = _join_torchrun(args.device)
    device = args.device
    if device is None and world_size > 1 and torch.cuda.is_available():
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"  # one GPU per process
    run_opts = {"device": device} if device else None
    try:
        interpreter = AudioInterpreter.from_hparams(source=args.interpreter, savedir=args.savedir, run_opts=run_opts)
    except (FileNotFoundError, ValueError) as error:
        print(f"audio-interpret: cannot load the interpreter: {error}", file=sys.stderr)
        return 2
    predictions, failures, used = {}, {}, set()
    stems = [_output_stem(path, used) for path in args.files]  # the same on every process
    mine = range(rank, len(args.files), world_size)  # under torchrun: every world_size-th file
    for index in tqdm(mine, desc="audio-interpret", unit="file", disable=None if rank == 0 else True):
        path = args.files[index]
        try:
            result = interpreter.interpret_file(path)
        except (FileNotFoundError, ValueError) as error:
            failures[path] = str(error)
            tqdm.write(f"audio-interpret: skipped {error}", file=sys.stderr)
            continue
        files = save_result(result, args.out, stems[index])
        predictions[path] = {
            "class": result["class"],
            "probability": result["probability"],
            "files": files,
            "warnings": result["warnings"],
        }
        tqdm.write(f"{path}: {result['class']} (p={result['probability']:.3f}) -> {files['interpretation']}")
    if world_size > 1:  # every process's results, on every process (one exit status)
        everyone = [None] * world_size
        torch.distributed.all_gather_object(everyone, (predictions, failures))
        predictions = {p: r for part in everyone for p, r in part[0].items()}
        failures = {p: r for part in everyone for p, r in part[1].items()}
        predictions = {p: predictions[p] for p in args.files if p in predictions}  # input order
        failures = {p: failures[p] for p in args.files if p in failures}
        if rank != 0:
            return 1 if failures else 0
    write_json(
        {"interpreter": os.fspath(args.interpreter), "method": interpreter.method, "files": predictions, "errors": failures},
        os.path.join(args.out, "predictions.json"),
    )
    if failures:
        print(
            f"audio-interpret: {len(failures)} of {len(args.files)} files could not be explained "
            f"(the others are in {args.out}):",
            file=sys.stderr,
        )
        for reason in failures.values():  # each names its file
            print(f"  {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
