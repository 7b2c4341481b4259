"""ESC-50: download, JSON manifests and the SpeechBrain data pipeline.

`prepare_esc50` writes one JSON manifest per split (train / valid / test by
ESC-50 fold), downloading the dataset first when `data_folder` has no
`meta/esc50.csv`. `dataio_prep` turns the manifests into SpeechBrain
`DynamicItemDataset`s that yield fixed-length, mono, peak-normalised signals and
the encoded class, with a label encoder whose order is the ESC-50 `target` id.

Manifest entries look like::

    "1-100032-A-0": {"wav": "{data_root}/audio/1-100032-A-0.wav", "classID": 0,
                     "class_string": "dog", "fold": 1, "duration": 5.0}

`{data_root}` is replaced by `data_folder` when the manifest is loaded, so a
dataset that moved still works with the same manifest. The audio may be any
format soundfile reads (`AUDIO_EXTENSIONS`: wav, flac, ogg, mp3), mixed or not;
the manifest key stays "wav".

Without internet, put ESC-50 at `<data_folder>/meta/esc50.csv` and
`<data_folder>/audio/*.wav` by hand, or run the embedded synthetic dataset
(`make demo`, or `python data_prep/synthetic_prepare.py --out DIR` and then
`--data_folder DIR`).

Example
-------
>>> check_folds("valid_fold_nums", 4)
[4]
>>> check_folds("train_fold_nums", [3, 1, 2])
[1, 2, 3]

Authors
 * audio-interpret contributors 2026
"""

import csv
import json
import numbers
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import soundfile as sf
import speechbrain as sb
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.data_utils import download_file
from speechbrain.utils.logger import get_logger

from data_prep.audio import AUDIO_EXTENSIONS, AUDIO_READ_ERRORS, has_finite_sample, load_clip
from data_prep.files import write_atomic, write_text

logger = get_logger(__name__)

ESC50_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
ESC50_ARCHIVE_TOP = "ESC-50-master"  # the archive's top folder, holding audio/ and meta/
ESC50_FOLDS = (1, 2, 3, 4, 5)
ESC50_CSV_COLUMNS = ("filename", "fold", "target", "category")
DATA_ROOT_KEY = "data_root"  # manifest placeholder, replaced by data_folder on loading
LABEL_ENCODER_FILE = "label_encoder.txt"

OFFLINE_HELP = (
    "Put ESC-50 there by hand ({data_folder}/meta/esc50.csv and {data_folder}/audio/*.wav, "
    "e.g. unzip ESC-50-master.zip and pass its ESC-50-master folder as --data_folder), "
    "or run the embedded synthetic dataset instead: `make demo`, or "
    "`python data_prep/synthetic_prepare.py --out DIR` and then `--data_folder DIR`."
)


def prepare_esc50(
    data_folder,
    audio_data_folder,
    save_json_train,
    save_json_valid,
    save_json_test,
    train_fold_nums=(1, 2, 3),
    valid_fold_nums=(4,),
    test_fold_nums=(5,),
    skip_manifest_creation=False,
    download_url=None,
):
    """Writes the train / valid / test JSON manifests of ESC-50 (downloading it if needed).

    Unreadable clips (corrupt, zero-length, missing) are skipped with a warning
    naming each one and a final count. Nothing is written unless every split
    has at least one readable clip, and each manifest is replaced atomically,
    so a failed rerun leaves the previous manifests as they were.

    Arguments
    ---------
    data_folder : str or Path
        ESC-50 root, holding `meta/esc50.csv` and `audio/`. When the csv is
        missing, the archive is downloaded from `download_url` and unpacked here.
    audio_data_folder : str or Path or None
        Folder of the audio files (any of AUDIO_EXTENSIONS, mixed or not); None means
        `<data_folder>/audio`.
    save_json_train, save_json_valid, save_json_test : str or Path
        Where the manifests go (folders are created).
    train_fold_nums, valid_fold_nums, test_fold_nums : int or list of int
        ESC-50 folds (1..5) of each split; the three must be disjoint.
    skip_manifest_creation : bool
        When True and the three manifests exist, nothing is done.
    download_url : str, optional
        Archive to fetch when the data is missing: a URL, a `file://` URL or a
        local zip path. Defaults to `ESC50_URL` (the GitHub master zip).

    Raises
    ------
    ValueError
        Bad folds, a csv without the needed columns or with bad values, or a split
        without any readable clip.
    RuntimeError
        The data is missing and could not be downloaded (offline); the message says
        where to put the data and how to run the embedded demo instead.
    """
    folds = {
        "train": check_folds("train_fold_nums", train_fold_nums),
        "valid": check_folds("valid_fold_nums", valid_fold_nums),
        "test": check_folds("test_fold_nums", test_fold_nums),
    }
    _check_disjoint(folds)
    save_json = {"train": save_json_train, "valid": save_json_valid, "test": save_json_test}

    if skip_manifest_creation:
        if all(os.path.isfile(path) for path in save_json.values()):
            logger.info(
                "skip_manifest_creation: keeping the existing manifests %s.",
                ", ".join(str(path) for path in save_json.values()),
            )
            return
        logger.info("skip_manifest_creation is set but a manifest is missing: writing them.")

    data_folder = Path(data_folder)
    audio_folder = Path(audio_data_folder) if audio_data_folder else data_folder / "audio"
    csv_path = data_folder / "meta" / "esc50.csv"
    if not csv_path.is_file():
        download_esc50(data_folder, ESC50_URL if download_url is None else download_url)
    if not audio_folder.is_dir():
        raise FileNotFoundError(
            f"The ESC-50 audio folder {audio_folder} does not exist: put the audio files there, "
            "or set audio_data_folder to where they are."
        )

    if not any(path.suffix.lower() in AUDIO_EXTENSIONS for path in audio_folder.iterdir()):
        raise FileNotFoundError(
            f"The ESC-50 audio folder {audio_folder} has no .wav file (nor "
            f"{', '.join(AUDIO_EXTENSIONS[1:-1])} or {AUDIO_EXTENSIONS[-1]}): put the ESC-50 clips "
            "there (or set audio_data_folder). Existing manifests were left untouched."
        )
    rows = read_esc50_csv(csv_path)
    wav_prefix = _manifest_prefix(data_folder, audio_folder)
    manifests = {split: {} for split in folds}
    split_of_fold = {fold: split for split, nums in folds.items() for fold in nums}
    skipped = 0
    for row in rows:
        split = split_of_fold.get(row["fold"])
        if split is None:
            continue
        wav_path = audio_folder / row["filename"]
        duration, problem = clip_duration(wav_path)
        if problem is not None:
            logger.warning("Skipping %s: %s.", wav_path, problem)
            skipped += 1
            continue
        clip_id = Path(row["filename"]).stem
        manifests[split][clip_id] = {
            "wav": wav_prefix + _escape_braces(row["filename"]),
            "classID": row["target"],
            "class_string": _escape_braces(row["category"]),
            "fold": row["fold"],
            "duration": duration,
        }
    if skipped:
        logger.warning(
            "Skipped %d unreadable clip(s) of %s (see the warnings above).", skipped, audio_folder
        )

    empty = [split for split, entries in manifests.items() if not entries]
    if empty:
        details = "; ".join(f"{split} (folds {folds[split]})" for split in empty)
        raise ValueError(
            f"No readable clip for {details} in {audio_folder} (listed in {csv_path}): put the "
            "ESC-50 audio files in the audio folder, or choose folds that have clips. Existing "
            "manifests were left untouched."
        )

    for split, entries in manifests.items():
        # json.dumps, not write_json: the manifests keep their bytes (no final newline).
        write_text(json.dumps(entries, indent=2), save_json[split])
        logger.info(
            "Wrote %d clips (folds %s) to %s.", len(entries), folds[split], save_json[split]
        )


def check_folds(name, value):
    """Returns the ESC-50 folds of one split as a sorted list, or raises ValueError.

    Arguments
    ---------
    name : str
        The argument's name, used in the error message.
    value : int or list of int
        Folds in 1..5, without repeats.

    Returns
    -------
    list of int

    Example
    -------
    >>> check_folds("test_fold_nums", [5])
    [5]
    >>> check_folds("test_fold_nums", 6)
    Traceback (most recent call last):
      ...
    ValueError: test_fold_nums=6: ESC-50 folds are integers in 1..5 ...
    """
    hint = (
        f"{name}={value!r}: ESC-50 folds are integers in 1..5 (an int or a non-empty list "
        "without repeats, e.g. [1, 2, 3])"
    )
    items = [value] if _is_int(value) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(hint)
    if not all(_is_int(fold) and fold in ESC50_FOLDS for fold in items):
        raise ValueError(hint)
    if len(set(items)) != len(items):
        raise ValueError(hint + ": a fold is repeated")
    return sorted(int(fold) for fold in items)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_disjoint(folds):
    names = list(folds)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = sorted(set(folds[first]) & set(folds[second]))
            if shared:
                raise ValueError(
                    f"{first}_fold_nums={folds[first]} and {second}_fold_nums={folds[second]} "
                    f"share fold(s) {shared}: the splits must be disjoint."
                )


def read_esc50_csv(csv_path):
    """Reads `meta/esc50.csv` into a list of dicts (filename, fold, target, category).

    Arguments
    ---------
    csv_path : str or Path

    Returns
    -------
    list of dict
        `fold` and `target` as int, `filename` and `category` as str.

    Raises
    ------
    ValueError
        A needed column is missing, a fold / target is not an integer, or two rows
        name one clip (the same file name without its extension).
    """
    with open(csv_path, newline="", encoding="utf-8") as fin:
        reader = csv.DictReader(fin)
        columns = [column.strip() for column in (reader.fieldnames or [])]
        missing = [column for column in ESC50_CSV_COLUMNS if column not in columns]
        if missing:
            raise ValueError(
                f"{csv_path} lacks column(s) {missing} (found {columns}); ESC-50's "
                f"meta/esc50.csv has {list(ESC50_CSV_COLUMNS)}: use the file from the archive."
            )
        rows, line_of_clip = [], {}
        for line, raw in enumerate(reader, start=2):
            raw = {(key or "").strip(): (val or "").strip() for key, val in raw.items()}
            try:
                fold, target = int(raw["fold"]), int(raw["target"])
            except ValueError:
                raise ValueError(
                    f"{csv_path}, line {line}: fold {raw['fold']!r} and target "
                    f"{raw['target']!r} must be integers; fix or remove the line."
                ) from None
            if not raw["filename"] or not raw["category"]:
                raise ValueError(f"{csv_path}, line {line}: empty filename or category.")
            clip_id = Path(raw["filename"]).stem  # the manifests' key
            if clip_id in line_of_clip:
                raise ValueError(
                    f"{csv_path}, line {line}: clip {clip_id} is listed already on line "
                    f"{line_of_clip[clip_id]}: one row per clip (a clip in two folds could reach "
                    "training and test); remove one of the lines or rename the file."
                )
            line_of_clip[clip_id] = line
            rows.append(
                {
                    "filename": raw["filename"],
                    "fold": fold,
                    "target": target,
                    "category": raw["category"],
                }
            )
    return rows


def clip_duration(wav_path):
    """Returns (duration in s, None) for a readable clip, else (None, the problem): a missing,
    unreadable or empty file, or a float one with no finite sample (which would stop a training
    epoch part-way; a clip with some NaN is read with them as 0 and a warning, `load_clip`)."""
    if not wav_path.is_file():
        return None, "file not found"
    try:
        info = sf.info(str(wav_path))
    except AUDIO_READ_ERRORS as err:
        return None, f"unreadable ({err})"
    if info.frames <= 0 or info.samplerate <= 0:
        return None, "zero-length audio"
    try:
        finite = has_finite_sample(wav_path, info)  # only floats hold NaN / inf: those are read
    except AUDIO_READ_ERRORS as err:
        return None, f"unreadable ({err})"
    if not finite:
        return None, f"no finite sample (all {info.frames * info.channels} sample values are NaN or infinite)"
    return round(info.frames / info.samplerate, 4), None


def _escape_braces(text):
    """Escapes `{` and `}` for `str.format_map` (SpeechBrain's manifest replacements)."""
    return text.replace("{", "{{").replace("}", "}}")


def _manifest_prefix(data_folder, audio_folder):
    """`{data_root}/<audio folder relative to data_folder>/`, or an absolute folder if outside."""
    root, audio = os.path.abspath(data_folder), os.path.abspath(audio_folder)
    relative = os.path.relpath(audio, root)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        logger.info("%s is outside %s: the manifests hold absolute paths.", audio, root)
        return _escape_braces(audio) + "/"
    relative = "" if relative == os.curdir else _escape_braces(Path(relative).as_posix()) + "/"
    return "{" + DATA_ROOT_KEY + "}/" + relative


def download_esc50(data_folder, url=ESC50_URL):
    """Downloads and unpacks ESC-50 into `data_folder` (all or nothing).

    Arguments
    ---------
    data_folder : str or Path
        Where `meta/esc50.csv` and `audio/` end up (created if missing).
    url : str
        The archive: an http(s) or `file://` URL or a local zip path.

    Raises
    ------
    FileExistsError
        `data_folder` already has an `audio/` or `meta/` folder (but no csv).
    RuntimeError
        The download or the unpacking failed; nothing is left half-unpacked.
    """
    data_folder = Path(data_folder)
    partial = [name for name in ("audio", "meta") if (data_folder / name).exists()]
    if partial:
        raise FileExistsError(
            f"{data_folder} has {partial} but no meta/esc50.csv: copy meta/esc50.csv from the "
            "ESC-50 archive there, or pass an empty or new --data_folder to download ESC-50."
        )
    logger.info("%s has no meta/esc50.csv: downloading ESC-50 from %s.", data_folder, url)
    try:
        download_and_unpack(
            url, data_folder, archive_top=ESC50_ARCHIVE_TOP, required=("audio", "meta/esc50.csv")
        )
    except Exception as err:
        raise RuntimeError(
            f"ESC-50 is not in {data_folder} (no meta/esc50.csv) and fetching it from {url} "
            f"failed ({type(err).__name__}: {err}). " + OFFLINE_HELP.format(data_folder=data_folder)
        ) from err


def download_and_unpack(source, dest_folder, archive_top=None, required=()):
    """Fetches a zip archive and moves its content to `dest_folder`, all or nothing.

    The archive is fetched with SpeechBrain's `download_file` and unpacked into
    a temporary folder next to `dest_folder`; the content is moved into place
    only once it is complete, and the temporary folder is always removed.

    Arguments
    ---------
    source : str or Path
        http(s) URL, `file://` URL or local archive path (a name ending in .zip,
        .tar.gz, ... so that the format is known).
    dest_folder : str or Path
        Final folder. It must be missing, empty, or hold none of the archive's entries.
    archive_top : str, optional
        The archive's top folder whose content goes to `dest_folder`.
    required : sequence of str
        Paths (relative to the content) that must exist, else RuntimeError. The
        top-level entry of the last one is moved into place last.
    """
    source = str(source)
    if source.startswith("file://"):
        source = urllib.request.url2pathname(urllib.parse.urlparse(source).path)
    dest = Path(dest_folder).absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.download-", dir=dest.parent))
    try:
        archive_name = Path(urllib.parse.urlparse(source).path).name or "archive.zip"
        archive = staging / archive_name
        unpacked = staging / "unpacked"
        download_file(source, str(archive), unpack=True, dest_unpack=str(unpacked))
        content = unpacked / archive_top if archive_top else unpacked
        if not content.is_dir():
            content = unpacked
        missing = [name for name in required if not (content / name).exists()]
        if missing:
            raise RuntimeError(f"the archive {source} lacks {missing}")
        last = Path(required[-1]).parts[0] if required else None
        _move_into_place(content, dest, last=last)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(content, dest, last=None):
    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()
    if not dest.exists():
        os.replace(content, dest)  # one rename: the folder appears complete
        return
    entries = sorted(content.iterdir(), key=lambda entry: entry.name == last)
    clashes = [entry.name for entry in entries if (dest / entry.name).exists()]
    if clashes:
        raise FileExistsError(f"{dest} already has {clashes}")
    for entry in entries:
        os.replace(entry, dest / entry.name)


def _positive(hparams, key, kind):
    value = hparams[key]
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0
    if not ok or (kind is int and not _is_int(value)):
        raise ValueError(f"{key}={value!r} must be a positive {kind.__name__} (yaml or --{key}).")
    return value


def dataio_prep(hparams):
    """Builds the train / valid / test datasets and the label encoder from the manifests.

    Arguments
    ---------
    hparams : dict
        Reads `data_folder`, `save_folder`, `train_annotation`, `valid_annotation`,
        `test_annotation`, `sample_rate`, `signal_length_s`.

    Returns
    -------
    datasets : dict
        "train", "valid", "test": `DynamicItemDataset`s whose items have "id", "sig"
        (float32 [sample_rate * signal_length_s]), "class_string" and
        "class_string_encoded" (LongTensor [1]).
    label_encoder : CategoricalEncoder
        Index order = sorted ESC-50 `target` id, saved at
        `<save_folder>/label_encoder.txt` and reused when that file exists.
    """
    needed = ("data_folder", "save_folder", "sample_rate", "signal_length_s")
    splits = {"train": "train_annotation", "valid": "valid_annotation", "test": "test_annotation"}
    missing = [key for key in needed + tuple(splits.values()) if key not in hparams]
    if missing:
        raise ValueError(f"dataio_prep needs hparams {missing}: add them to the yaml.")
    sample_rate = int(_positive(hparams, "sample_rate", int))
    signal_length_s = _positive(hparams, "signal_length_s", float)
    n_samples = int(round(sample_rate * signal_length_s))

    label_encoder = CategoricalEncoder()

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_clip(wav, sample_rate, n_samples)

    @sb.utils.data_pipeline.takes("class_string")
    @sb.utils.data_pipeline.provides("class_string", "class_string_encoded")
    def label_pipeline(class_string):
        yield class_string
        yield label_encoder.encode_sequence_torch([class_string])

    datasets = {}
    for split, key in splits.items():
        if not os.path.isfile(hparams[key]):
            raise FileNotFoundError(
                f"{key} {hparams[key]} does not exist: run prepare_esc50 first "
                "(recipes do it; skip_manifest_creation: False)."
            )
        with open(hparams[key], encoding="utf-8") as fin:
            if not json.load(fin):  # SpeechBrain's loader fails on an empty manifest with an IndexError
                raise ValueError(
                    f"{key} {hparams[key]} lists no clip: its folds hold no clip of the data in "
                    f"{hparams['data_folder']}. Write the manifests again (skip_manifest_creation: "
                    "False), or check the folds of meta/esc50.csv."
                )
        datasets[split] = DynamicItemDataset.from_json(
            json_path=hparams[key],
            replacements={DATA_ROOT_KEY: str(hparams["data_folder"])},
            dynamic_items=[audio_pipeline, label_pipeline],
            output_keys=["id", "sig", "class_string", "class_string_encoded"],
        )

    warn_long_clips(datasets, signal_length_s)
    classes = _classes_by_id(datasets, splits)
    encoder_path = Path(hparams["save_folder"]) / LABEL_ENCODER_FILE
    if encoder_path.is_file():
        label_encoder.load(encoder_path)
        unknown = [name for name in classes if name not in label_encoder.lab2ind]
        if unknown:
            raise ValueError(
                f"The label encoder {encoder_path} lacks the classes {unknown} of the data in "
                f"{hparams['data_folder']}: it was built for other data. Delete it, or use "
                "another output_folder / save_folder."
            )
        logger.info(
            "Loaded the label encoder (%d classes) from %s.", len(label_encoder), encoder_path
        )
    else:
        for name in classes:
            label_encoder.add_label(name)
        write_atomic(encoder_path, label_encoder.save)
        logger.info("Saved the label encoder (%d classes) to %s.", len(label_encoder), encoder_path)
    label_encoder.expect_len(len(label_encoder))
    return datasets, label_encoder


def warn_long_clips(datasets, signal_length_s):
    """Logs (a warning) how many clips of each split last longer than `signal_length_s`.

    `load_clip` reads only a clip's first `signal_length_s` seconds: on longer clips the
    rest (perhaps the whole event) is never heard, so say it, with the fix, once per split.
    The durations are the manifests' (`prepare_esc50`); an entry without one counts as short.
    """
    for split, dataset in datasets.items():
        durations = [float(entry.get("duration") or 0.0) for entry in dataset.data.values()]
        longer = [d for d in durations if d > signal_length_s + 1e-3]
        if longer:
            logger.warning(
                "%d of the %d %s clips last longer than signal_length_s = %g s (up to %g s): only "
                "their first %g s are read. Set --signal_length_s %g to read them whole.",
                len(longer), len(durations), split, signal_length_s, max(longer), signal_length_s,
                max(longer),
            )


def _classes_by_id(datasets, splits):
    """Class names of all splits sorted by ESC-50 `target` id (checked one-to-one)."""
    name_of_id, id_of_name = {}, {}
    for split, dataset in datasets.items():
        with dataset.output_keys_as(["id", "classID", "class_string"]):
            for item in dataset:
                class_id, name = int(item["classID"]), item["class_string"]
                if name_of_id.setdefault(class_id, name) != name or (
                    id_of_name.setdefault(name, class_id) != class_id
                ):
                    raise ValueError(
                        f"{splits[split]}: clip {item['id']} has target {class_id} / category "
                        f"{name!r}, but target {class_id} is {name_of_id[class_id]!r} and "
                        f"{name!r} is target {id_of_name[name]} elsewhere: fix meta/esc50.csv "
                        "and rerun prepare_esc50."
                    )
    return [name_of_id[class_id] for class_id in sorted(name_of_id)]
