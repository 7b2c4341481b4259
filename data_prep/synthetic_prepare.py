"""The embedded default dataset: writes synthetic clips in the exact ESC-50 layout.

This module is the dataset writer: folders, csv files, the parameters file, and
the reuse / resume logic. The sounds themselves are made by
`data_prep.synthesis` (one call of `synthesize_clip` per clip). `write_dataset`
(with `check_output_folder` and `validate_layout`) is the writer of the layout,
shared with `data_prep.collection_prepare` (clips cut from real recordings).
Every recipe of the project runs on the dataset unchanged, without downloading ESC-50:

    python data_prep/synthetic_prepare.py --out data/synthetic --classes 10 --per-class 40 --seed 1234

writes

    <out>/meta/esc50.csv            filename,fold,target,category,esc10,src_file,take
    <out>/audio/{fold}-{src}-A-{target}.wav          the mixtures (16-bit PCM, mono)
    <out>/sources/<id>_target.wav                    the target event alone
    <out>/sources/<id>_background.wav                the background alone
    <out>/meta/ground_truth.csv     id,target_path,background_path,onset_s,offset_s,snr_db
    <out>/meta/synthetic_params.json                 the parameters (written last)

where ``<id>`` is the clip's file name without ``.wav``. Class ``target`` is the
index in `SIGNATURES` and ``category`` its name; each class has ``per_class / 5``
clips in each of the ESC-50 folds 1..5. Read back with soundfile, every mixture
is exactly the sum of its two sources (see `data_prep.synthesis`);
`read_source_paths` reads ``ground_truth.csv``.

The same parameters give the same bytes: one numpy Generator, seeded once, is
drawn from in a fixed order (class by class, clip by clip). Every file is
written atomically (`data_prep.files`). A folder that already holds a complete
dataset with the same parameters is reused; one holding anything else is an
error; an interrupted run (no ``meta/synthetic_params.json``) is cleared and
rewritten if the folder holds only files this module writes, including the
``.<name>.partial`` files a killed write leaves behind, and carries the mark a
run leaves while it writes (``meta/.synthetic_params.json.writing``). Files named
like a dataset's without either mark (a copy of ESC-50's take-A clips) may be a
user's: they are refused, never deleted.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import csv
import io
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from speechbrain.utils.logger import get_logger

from data_prep.files import PARTIAL_SUFFIX, write_bytes, write_text
from data_prep.synthesis import SIGNATURES, synthesize_clip

logger = get_logger(__name__)

# Bump when data_prep.synthesis or the clip order changes, so an old dataset is
# not silently reused.
GENERATOR_VERSION = 1

ESC50_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
GROUND_TRUTH_COLUMNS = ["id", "target_path", "background_path", "onset_s", "offset_s", "snr_db"]
NUM_FOLDS = 5
FIRST_SRC_ID = 100000  # src_file of the first clip; ESC-50-like six-digit ids
MIN_SAMPLE_RATE = 8000
MIN_DURATION_S = 0.5
# Largest |SNR| in dB: the quieter source still holds its measured SNR within 0.1 dB in the
# 16-bit files (at -80 dB it is off by up to 2 dB; at -100 dB it is rounded to silence).
MAX_ABS_SNR_DB = 60.0
PARAMS_FILE = "synthetic_params.json"
WRITING_SUFFIX = ".writing"  # meta/.<params file>.writing: a run is writing (or was killed)
GROUND_TRUTH_CSV = os.path.join("meta", "ground_truth.csv")  # relative to the dataset root


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def _own_file_pattern(folder, name):
    """Matches `folder/<name>` and what a killed write of it leaves behind.

    `name` is a regex of a file name. Leftovers are the `.<name>.partial` and
    `.<name>.<pid>.partial` of `data_prep.files.write_atomic` and the
    `<name>.tmp` of earlier versions.
    """
    return re.compile(rf"{folder}/(?:(?:{name})(?:\.tmp)?|\.(?:{name})(?:\.\d+)?{re.escape(PARTIAL_SUFFIX)})")


def _writing_mark(params_file):
    """The name, in meta/, of the file a run keeps while it writes the dataset."""
    return f".{params_file}{WRITING_SUFFIX}"


def _own_file_patterns(params_file):
    """The files a dataset whose parameters file is meta/`params_file` consists of."""
    return [
        _own_file_pattern(
            "meta",
            r"esc50\.csv|ground_truth\.csv|"
            + re.escape(params_file)
            + "|"
            + re.escape(_writing_mark(params_file)),
        ),
        _own_file_pattern("audio", r"[1-5]-\d+-A-\d+\.wav"),
        _own_file_pattern("sources", r"[1-5]-\d+-A-\d+_(?:target|background)\.wav"),
    ]


_OWN_DIRS = ("meta", "audio", "sources")


def _own_and_foreign_entries(root, params_file=PARAMS_FILE):
    """Splits everything under root into (files this module writes, anything else)."""
    own_file_patterns = _own_file_patterns(params_file)
    own, foreign = [], []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() and not path.is_symlink() and rel in _OWN_DIRS:
            continue
        if path.is_file() and any(p.fullmatch(rel) for p in own_file_patterns):
            own.append(path)
        else:
            foreign.append(path)
    return own, foreign


def _write_wav(path, samples, sample_rate):
    """Writes int16 samples as 16-bit PCM WAV, atomically (`write_bytes`)."""
    # Encoded in memory: soundfile's close() on a real file fsyncs, which costs more
    # than the whole synthesis when 1200 files are written.
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, subtype="PCM_16", format="WAV")
    write_bytes(buffer.getvalue(), path)


def _csv_text(columns, rows):
    """The csv text of rows (lists of values) under a header, "\\n" line ends.

    A value holding a comma, a quote or a line break is quoted (a recording's
    path in a collection's ground truth); every other value is written as is.

    Example
    -------
    >>> print(_csv_text(["id", "path"], [[1, "a.wav"], [2, "b, c.wav"]]), end="")
    id,path
    1,a.wav
    2,"b, c.wav"
    """
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return text.getvalue()


def _read_params(path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_complete(root, params):
    """True when every file that `params` promises exists under root."""
    esc50_csv = root / "meta" / "esc50.csv"
    if not (esc50_csv.is_file() and (root / "meta" / "ground_truth.csv").is_file()):
        return False
    try:
        with open(esc50_csv, newline="", encoding="utf-8") as fin:
            filenames = [row["filename"] for row in csv.DictReader(fin)]
    except (OSError, KeyError, csv.Error, UnicodeDecodeError):
        return False
    if len(filenames) != params["classes"] * params["per_class"]:
        return False
    for filename in filenames:
        clip_id = filename[: -len(".wav")]
        for path in (
            root / "audio" / filename,
            root / "sources" / f"{clip_id}_target.wav",
            root / "sources" / f"{clip_id}_background.wav",
        ):
            if not path.is_file():
                return False
    return True


def _validate(classes, per_class, sample_rate, snr_db_range, duration_s):
    """Raises a ValueError naming the problem and the fix."""
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)):
        raise ValueError(f"classes must be an integer, got {classes!r}")
    if not 1 <= classes <= len(SIGNATURES):
        raise ValueError(
            f"classes={classes} is out of range: the synthetic dataset has "
            f"{len(SIGNATURES)} signatures ({', '.join(SIGNATURES)}); "
            f"choose classes between 1 and {len(SIGNATURES)}"
        )
    validate_layout(per_class, sample_rate, snr_db_range, duration_s)


def validate_layout(per_class, sample_rate, snr_db_range, duration_s):
    """Raises a ValueError naming the problem and the fix, for the arguments that
    every dataset in this layout has (`create_synthetic_dataset`, `data_prep.collection_prepare`).

    Example
    -------
    >>> validate_layout(40, 16000, (-60.0, 60.0), 5.0)  # the widest SNR range
    >>> validate_layout(40, 16000, (-100.0, -100.0), 5.0)
    Traceback (most recent call last):
    ...
    ValueError: snr_db_range=(-100.0, -100.0) goes beyond +-60 dB: ...
    """
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)):
        raise ValueError(f"per_class must be an integer, got {per_class!r}")
    if per_class < NUM_FOLDS or per_class % NUM_FOLDS:
        raise ValueError(
            f"per_class={per_class} must be a positive multiple of {NUM_FOLDS}, so that each "
            f"class is spread evenly over the {NUM_FOLDS} ESC-50 folds; use e.g. "
            f"{max(NUM_FOLDS, NUM_FOLDS * round(per_class / NUM_FOLDS))}"
        )
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise ValueError(f"sample_rate must be an integer number of Hz, got {sample_rate!r}")
    if sample_rate < MIN_SAMPLE_RATE:
        raise ValueError(
            f"sample_rate={sample_rate} is too low; use at least {MIN_SAMPLE_RATE} Hz "
            f"(the project uses 16000)"
        )
    if not np.isfinite(duration_s):
        raise ValueError(f"duration_s={duration_s} is not a number of seconds; give e.g. 3 (ESC-50 clips are 5 s)")
    if not duration_s >= MIN_DURATION_S:
        raise ValueError(
            f"duration_s={duration_s} is too short; use at least {MIN_DURATION_S} s "
            f"(ESC-50 clips are 5 s)"
        )
    if len(snr_db_range) != 2 or not all(np.isfinite(v) for v in snr_db_range):
        raise ValueError(
            f"snr_db_range must be two finite numbers (low, high), got {snr_db_range!r}"
        )
    if snr_db_range[0] > snr_db_range[1]:
        raise ValueError(
            f"snr_db_range={tuple(snr_db_range)} has low > high; give it as (low, high), e.g. (-5, 5)"
        )
    if max(abs(v) for v in snr_db_range) > MAX_ABS_SNR_DB:
        raise ValueError(
            f"snr_db_range={tuple(snr_db_range)} goes beyond +-{MAX_ABS_SNR_DB:g} dB: the quieter "
            f"source would be a few steps of the 16-bit files or rounded to silence, while "
            f"ground_truth.csv recorded the SNR asked for; keep both bounds (--snr-db-range) "
            f"within [-{MAX_ABS_SNR_DB:g}, {MAX_ABS_SNR_DB:g}]"
        )


def create_synthetic_dataset(
    out_dir,
    classes=10,
    per_class=40,
    seed=1234,
    sample_rate=16000,
    snr_db_range=(-5.0, 5.0),
    duration_s=5.0,
):
    """Writes (or reuses) the synthetic dataset in the ESC-50 layout.

    Arguments
    ---------
    out_dir : str or path-like
        The dataset root: gets meta/, audio/ and sources/. Created if missing;
        must be empty, or hold a dataset written by this function.
    classes : int
        Number of classes: the first `classes` entries of `SIGNATURES`
        (1 to len(SIGNATURES)). target = index, category = signature name.
    per_class : int
        Clips per class, a multiple of 5: per_class / 5 clips of each class in
        each of the folds 1..5.
    seed : int
        Seed of the one numpy Generator; the same arguments give the same bytes.
    sample_rate : int
        Sampling rate in Hz (at least 8000).
    snr_db_range : tuple of float
        (low, high): each clip's target-to-background power ratio over the
        event window, drawn uniformly from this range, in dB.
    duration_s : float
        Clip duration in seconds (at least 0.5); events last 10-50 % of it.

    Returns
    -------
    pathlib.Path
        The dataset root (`out_dir`).

    Example
    -------
    >>> import tempfile, soundfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     root = create_synthetic_dataset(tmp, classes=1, per_class=5, duration_s=0.5)
    ...     print(sorted(p.name for p in root.iterdir()), len(list((root / "audio").iterdir())))
    ...     print(soundfile.info(str(root / "audio" / "1-100000-A-0.wav")).frames)
    ['audio', 'meta', 'sources'] 5
    8000
    """
    _validate(classes, per_class, sample_rate, snr_db_range, duration_s)
    classes, per_class, sample_rate = int(classes), int(per_class), int(sample_rate)
    params = {
        "generator_version": GENERATOR_VERSION,
        "classes": classes,
        "per_class": per_class,
        "seed": int(seed),
        "sample_rate": sample_rate,
        "snr_db_range": [float(snr_db_range[0]), float(snr_db_range[1])],
        "duration_s": float(duration_s),
        "class_names": list(SIGNATURES[:classes]),
    }
    rng = np.random.default_rng(int(seed))
    n = int(round(duration_s * sample_rate))
    return write_dataset(
        out_dir,
        params,
        SIGNATURES[:classes],
        lambda target, name: synthesize_clip(name, rng, n, sample_rate, snr_db_range),
    )


def _short(value, limit=80):
    """repr(value), cut to `limit` characters (long lists of a parameters file)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_output_folder(out_dir, params, params_file=PARAMS_FILE, kind="synthetic dataset"):
    """Whether `out_dir` already holds the complete dataset of `params` (then reuse it).

    False when `out_dir` is missing, empty, or holds only the files of an
    interrupted run of the same writer (`write_dataset` clears them). Raises a
    ValueError, naming `kind`, when it is a file, holds a dataset with other
    parameters (meta/`params_file` differs) or holds anything else: datasets are
    never mixed.

    Arguments
    ---------
    out_dir : str or path-like
        The dataset root.
    params : dict
        What the dataset is a function of, as `write_dataset` writes it (JSON values).
    params_file : str
        Name of the parameters file in meta/; each writer has its own.
    kind : str
        What the messages call the dataset ("synthetic dataset").

    Returns
    -------
    bool
    """
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise ValueError(f"out_dir {root} is a file; give a folder for the {kind}")
    params_path = root / "meta" / params_file
    if params_path.is_file():
        saved = _read_params(params_path)
        if saved is not None and saved != params:
            differences = ", ".join(
                f"{key}: {_short(saved.get(key))} there, {_short(params.get(key))} requested"
                for key in sorted(set(saved) | set(params))
                if saved.get(key) != params.get(key)
            )
            raise ValueError(
                f"{root} already holds a {kind} with other parameters "
                f"({differences}). Choose another output folder or delete {root}."
            )
        if saved is not None and _is_complete(root, params):
            return True
    if root.is_dir():
        _, foreign = _own_and_foreign_entries(root, params_file)
        if foreign:
            shown = ", ".join(str(p.relative_to(root)) for p in foreign[:5])
            raise ValueError(
                f"{root} holds files that are not part of a {kind} ({shown}"
                f"{', ...' if len(foreign) > 5 else ''}); give an empty or new folder as "
                f"out_dir so datasets are not mixed."
            )
    return False


def write_dataset(
    out_dir,
    params,
    class_names,
    make_clip,
    params_file=PARAMS_FILE,
    kind="synthetic dataset",
    progress_every=0,
    provenance_columns=(),
):
    """Writes (or reuses) a dataset of `Clip`s in the ESC-50 layout of this module.

    The writer shared by `create_synthetic_dataset` and
    `data_prep.collection_prepare`: checks the folder (`check_output_folder`),
    clears an interrupted run, writes each clip's mixture and sources (16-bit
    PCM, atomically), then meta/esc50.csv, meta/ground_truth.csv and, last,
    meta/`params_file` (its presence marks the dataset complete).

    Arguments
    ---------
    out_dir : str or path-like
        The dataset root (created if missing).
    params : dict
        What the dataset is a function of (JSON values), compared on a rerun;
        holds at least "classes" (= len(class_names)), "per_class" (a multiple
        of 5), "sample_rate" and "duration_s".
    class_names : sequence of str
        The categories, in target-index order.
    make_clip : callable
        ``make_clip(target, category)`` -> `data_prep.synthesis.Clip` of
        ``round(duration_s * sample_rate)`` samples; called class by class,
        clip by clip (the order a seeded generator is drawn in), and not at
        all when the dataset is reused.
    params_file, kind : str
        As in `check_output_folder`.
    progress_every : int
        Log a progress line every this many clips (0: none).
    provenance_columns : sequence of str
        Columns appended to meta/ground_truth.csv after `GROUND_TRUTH_COLUMNS`,
        filled with each clip's ``provenance`` (where a collection's clip was
        cut from); none for synthetic clips.

    Returns
    -------
    pathlib.Path
        The dataset root.
    """
    root = Path(out_dir)
    if check_output_folder(root, params, params_file, kind):
        logger.info("Reusing the %s in %s (same parameters).", kind, root)
        return root
    mark = root / "meta" / _writing_mark(params_file)
    if root.is_dir():
        own, _ = _own_and_foreign_entries(root, params_file)
        if own and not (mark.is_file() or (root / "meta" / params_file).is_file()):
            shown = ", ".join(str(p.relative_to(root)) for p in own[:3])
            raise ValueError(
                f"{root} holds files named like a {kind}'s ({shown}"
                f"{', ...' if len(own) > 3 else ''}) but not the mark a run of this writer "
                f"leaves while it writes (meta/{mark.name}) nor its meta/{params_file}: they "
                f"may be yours (a copy of ESC-50?) and are left alone. Give an empty or new "
                f"folder as out_dir, or delete them yourself if they are a {kind}'s."
            )
        if own:
            logger.warning(
                "%s holds an incomplete %s (interrupted run?): removing its %d "
                "files and writing it again.",
                root,
                kind,
                len(own),
            )
            for path in own:
                path.unlink()

    start_time = time.perf_counter()
    for sub in _OWN_DIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    # First: a killed run leaves it, and only a folder carrying it is cleared on the next run.
    write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", mark)

    per_class, sample_rate = params["per_class"], params["sample_rate"]
    n_clips = len(class_names) * per_class
    esc50_rows, truth_rows = [], []
    for target, name in enumerate(class_names):
        for k in range(per_class):
            fold = 1 + k % NUM_FOLDS
            src = FIRST_SRC_ID + target * per_class + k
            clip_id = f"{fold}-{src}-A-{target}"
            clip = make_clip(target, name)
            if len(clip.provenance) != len(provenance_columns):
                raise ValueError(
                    f"make_clip gave {len(clip.provenance)} provenance values for the "
                    f"{len(provenance_columns)} columns {list(provenance_columns)}"
                )
            target_rel = f"sources/{clip_id}_target.wav"
            background_rel = f"sources/{clip_id}_background.wav"
            _write_wav(root / target_rel, clip.target, sample_rate)
            _write_wav(root / background_rel, clip.background, sample_rate)
            _write_wav(root / "audio" / f"{clip_id}.wav", clip.mixture, sample_rate)
            esc50_rows.append([f"{clip_id}.wav", fold, target, name, False, src, "A"])
            truth_rows.append(
                [
                    clip_id,
                    target_rel,
                    background_rel,
                    f"{clip.onset / sample_rate:.6f}",
                    f"{clip.offset / sample_rate:.6f}",
                    f"{clip.snr_db:.4f}",
                    *clip.provenance,
                ]
            )
            if progress_every and len(esc50_rows) % progress_every == 0:
                logger.info("%s: %d / %d clips written", root, len(esc50_rows), n_clips)

    order = sorted(range(len(esc50_rows)), key=lambda i: esc50_rows[i][0])
    write_text(
        _csv_text(ESC50_COLUMNS, [esc50_rows[i] for i in order]), root / "meta" / "esc50.csv"
    )
    write_text(
        _csv_text(GROUND_TRUTH_COLUMNS + list(provenance_columns), [truth_rows[i] for i in order]),
        root / "meta" / "ground_truth.csv",
    )
    # Last: its presence marks the dataset complete.
    write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", root / "meta" / params_file)
    mark.unlink()
    logger.info(
        "Wrote the %s to %s: %d classes x %d clips of %.2f s at %d Hz in %.1f s.",
        kind,
        root,
        len(class_names),
        per_class,
        params["duration_s"],
        sample_rate,
        time.perf_counter() - start_time,
    )
    return root


def read_source_paths(data_folder):
    """{clip id: (target path, background path)} of a dataset with separate sources.

    Paths are joined to `data_folder`. Raises FileNotFoundError when it has no
    `meta/ground_truth.csv` (ESC-50 itself has none).

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     root = create_synthetic_dataset(tmp, classes=1, per_class=5, duration_s=0.5)
    ...     paths = read_source_paths(root)
    ...     print(len(paths), Path(paths["1-100000-A-0"][0]).name)
    5 1-100000-A-0_target.wav
    """
    path = os.path.join(data_folder, GROUND_TRUTH_CSV)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: the dataset has no separate sources.")
    with open(path, newline="", encoding="utf-8") as fin:
        return {
            row["id"]: (
                os.path.join(data_folder, row["target_path"]),
                os.path.join(data_folder, row["background_path"]),
            )
            for row in csv.DictReader(fin)
        }


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Write the synthetic ESC-50-layout dataset (target event + background)."
    )
    parser.add_argument("--out", required=True, help="dataset root to write (or reuse)")
    parser.add_argument("--classes", type=int, default=10, help=f"1..{len(SIGNATURES)}")
    parser.add_argument("--per-class", type=int, default=40, help="clips per class, multiple of 5")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--sample-rate", type=int, default=16000, help="Hz")
    parser.add_argument(
        "--snr-db-range",
        type=float,
        nargs=2,
        default=(-5.0, 5.0),
        metavar=("LOW", "HIGH"),
        help="target-to-background SNR over the event, dB",
    )
    parser.add_argument(
        "--duration", "--duration-s", dest="duration", type=float, default=5.0, help="clip duration in seconds"
    )
    return parser.parse_args(argv)


def main(argv=None):
    """Command line entry point; prints a one-line summary."""
    args = _parse_args(argv)
    start_time = time.perf_counter()
    root = create_synthetic_dataset(
        args.out,
        classes=args.classes,
        per_class=args.per_class,
        seed=args.seed,
        sample_rate=args.sample_rate,
        snr_db_range=tuple(args.snr_db_range),
        duration_s=args.duration,
    )
    print(
        f"Synthetic dataset at {root}: {args.classes} classes x {args.per_class} clips "
        f"({args.duration:g} s, {args.sample_rate} Hz, seed {args.seed}) ready in "
        f"{time.perf_counter() - start_time:.1f} s"
    )


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:  # a usage problem: the message says what to change
        sys.exit(f"synthetic_prepare: error: {error}")
