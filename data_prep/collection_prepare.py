"""Any sound collection as a ground-truth benchmark, in the ESC-50 layout.

Cuts target events from real recordings, one class per entry of a folder, and
mixes each over a crop of a real background recording, saving the two sources
beside the mixture exactly as `data_prep.synthetic_prepare` does, so every recipe
and `eval.py` run on the result unchanged and score interpretations against the
truth (`data_prep.ground_truth.GroundTruth`)::

    python data_prep/collection_prepare.py --targets DIR --backgrounds DIR --out OUT \\
        --per-class 40 --duration-s 3.0 --snr-db-range -5 5 --sample-rate 16000 --seed 1234

`--targets DIR` holds one entry per class: a sub-folder (every file in it,
recursively, is a recording of that class; the class is the folder's name) or a
single audio file (the class is its stem). Classes are sorted by name and
``target`` is the index. `--backgrounds DIR` holds background recordings (every
file in it, recursively). Names starting with "." are ignored. Recordings are
read with soundfile (wav, flac, ogg, ...), downmixed to mono and resampled to
`--sample-rate` (`data_prep.audio.read_audio`), and their DC offset is removed
(each recording minus its mean, `remove_dc`): an offset is inaudible and carries
no class, but it counts in a recording's power, so it would set the SNR and the
silence threshold below, and it puts a constant line in the lowest STFT bins
that a classifier learns and a mask must keep (Debian's rain ambience holds 99 %
of its power in its offset, some GCompris animals 15-27 %). The output is

    <out>/meta/esc50.csv            filename,fold,target,category,esc10,src_file,take
    <out>/audio/{fold}-{src}-A-{target}.wav          the mixtures (16-bit PCM, mono)
    <out>/sources/<id>_target.wav                    the target event alone
    <out>/sources/<id>_background.wav                the background alone
    <out>/meta/ground_truth.csv     id,target_path,background_path,onset_s,offset_s,snr_db,
                                    event_recording,event_start_s,
                                    background_recording,background_start_s
    <out>/meta/collection_params.json                the parameters (written last)

with ``per_class / 5`` clips of each class in each of the folds 1..5, written by
`data_prep.synthetic_prepare.write_dataset` (atomic files, reuse of a complete
dataset with the same parameters, an interrupted run cleared and rewritten, a
folder holding anything else refused). The last four columns of
ground_truth.csv (`PROVENANCE_COLUMNS`) say where each clip was cut: the
event's recording (its path relative to `--targets`) and the second of it the
event starts at, the background's recording (relative to `--backgrounds`) and
the second its crop starts at.

Folds share recordings. The folds are dealt clip by clip, as ESC-50's layout
has them, not recording by recording: events cut from other places of one
recording (and crops of one background) land in the training folds and in the
test fold alike. Test accuracy on such a set measures generalisation to new
cuts and new mixtures of the recordings, not to new recordings. The end of a
run logs how many test-fold events share their recording with a training-fold
event (`shared_recordings`); for a test on unheard recordings, hold them out of
the collection and build a second set from them.

Each clip (`cut_clip`), with every draw from one numpy Generator seeded once,
in this order:

1. a recording of the class, with a probability proportional to its length
   (every second of the class's sound is as likely to be cut: a short
   recording is not cut over and over into near copies);
2. the event length, uniformly from 0.5 s (`EVENT_MIN_S`) to 75 % of the clip
   (`EVENT_MAX_FRACTION`; 0.5-2.25 s for 3 s clips), capped by the recording;
3. where the event is cut from the recording, uniformly among the starts (on a
   10 ms grid) whose window is not silent: the window's mean power, and that of
   its first 10 ms frame, are at most 20 dB (`ACTIVE_DROP_DB`) below the
   recording's active level, the mean power of its loudest 10 % of 10 ms frames
   (`activity`). If no start qualifies (a short burst in a long window), the
   loudest window is taken;
4. the onset of the event in the clip, uniformly;
5. a background recording, uniformly over the recordings (not their length);
6. the background crop, covering the whole clip, uniformly among the crops whose
   span under the event is not silent by the same rule's mean power (its first
   frame may be quiet: a background need not start there; else the loudest);
7. the SNR, uniformly from `--snr-db-range`.

The event gets 10 ms raised-cosine fades (`data_prep.synthesis.event_fade`) and
is mixed by `data_prep.synthesis.mix_at_snr`: the SNR is the event's power over
its own span against the background's power over the same span; target and
background are then scaled by one gain so the largest absolute sample of the
three signals is 0.9, rounded to 16-bit integers, and the mixture is their
integer sum: read back with soundfile, mixture == target + background exactly.
``[onset_s, offset_s)`` is the span of the cut event (the target is zero
outside it; it may hold the recording's own quiet moments).

Bad input, decided here: a recording is unusable when soundfile cannot read it,
when it is silent (no sample reaches -80 dBFS once its DC offset is removed,
`SILENT_PEAK`: a constant is silence; a multichannel recording whose channels
cancel in the mono downmix is said to be so), or when it is
shorter than the shortest event (targets) or than the clip (backgrounds: they
are never looped, so no seam or repetition is heard). An unusable recording is
skipped with a warning that names it, and the skips are counted in the log,
as long as its class (or the background folder) keeps a usable recording;
otherwise a ValueError lists each of its recordings and why. A missing folder is
a FileNotFoundError; an empty one, fewer than 2 classes, a class name a csv
cannot hold, or arguments out of range (`validate_layout`) a ValueError. Every
error names the path and the fix, and comes before anything is written.

Determinism: the same arguments and the same recordings give the same bytes.
The parameters file holds the arguments, the class names, the recordings' paths
(relative to their folder) and a SHA-256 of their contents, so a rerun after a
recording changed is refused rather than silently reusing the old dataset; the
collection may move to another folder. Every usable recording is held in memory
(float32 at the dataset rate: 64 kB per second at 16 kHz).

Example
-------
>>> import tempfile, soundfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     tmp = Path(tmp)
...     for name, hz in (("hum", 220), ("whistle", 2000)):
...         (tmp / "targets").mkdir(exist_ok=True)
...         tone = 0.3 * np.sin(2 * np.pi * hz * np.arange(16000) / 16000)
...         soundfile.write(str(tmp / "targets" / f"{name}.wav"), tone, 16000)
...     noise = 0.1 * np.random.default_rng(0).standard_normal(32000)
...     (tmp / "backgrounds").mkdir()
...     soundfile.write(str(tmp / "backgrounds" / "noise.flac"), noise, 16000)
...     root = create_collection_dataset(
...         tmp / "targets", tmp / "backgrounds", tmp / "out", per_class=5, duration_s=1.0
...     )
...     print(len(list((root / "audio").iterdir())), len(list((root / "sources").iterdir())))
10 20

Authors
 * audio-interpret contributors 2026
"""

import argparse
import csv
import hashlib
import logging
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
from speechbrain.utils.logger import get_logger

from data_prep.audio import AUDIO_READ_ERRORS, SILENT_PEAK, read_audio
from data_prep.synthesis import Clip, event_fade, mix_at_snr
from data_prep.synthetic_prepare import check_output_folder, validate_layout, write_dataset

logger = get_logger(__name__)

# Bump when the clip recipe or the draw order changes, so an old dataset is not reused.
GENERATOR_VERSION = 2  # 2: DC offsets removed
PARAMS_FILE = "collection_params.json"
KIND = "collection dataset"  # what the messages call it

EVENT_MIN_S = 0.5  # shortest event, s (and shortest usable target recording)
EVENT_MAX_FRACTION = 0.75  # longest event, as a fraction of the clip
FRAME_S = 0.01  # frame (and start grid) of the activity analysis, s
ACTIVE_TOP_SHARE = 0.1  # active level: mean power of the loudest 10 % of frames
ACTIVE_DROP_DB = 20.0  # a window more than this below the active level is silent
CSV_UNSAFE = ',"\n\r'  # characters a class name cannot hold (esc50.csv is not quoted)
PROGRESS_EVERY = 50  # a log line every this many clips
# Where each clip was cut from, appended to meta/ground_truth.csv after its usual columns:
# recordings relative to --targets / --backgrounds, starts in s of the recording.
PROVENANCE_COLUMNS = [
    "event_recording",
    "event_start_s",
    "background_recording",
    "background_start_s",
]
TRAIN_FOLDS = (1, 2, 3)  # the recipe yamls' train_fold_nums
TEST_FOLD = 5  # their test_fold_nums
HASH_CHUNK = 1 << 20  # bytes read at a time for the collection's SHA-256


# ---------------------------------------------------------------------------
# The collection's files
# ---------------------------------------------------------------------------


def _visible_files(folder):
    """Files under `folder`, recursively, sorted, without names starting with "."."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(folder).parts)
    )


def list_classes(targets_dir):
    """{class name: [recording paths]} of a targets folder, sorted by class name.

    Arguments
    ---------
    targets_dir : str or path-like
        One entry per class: a sub-folder (all files in it, recursively) or a
        single audio file (the class is its stem).

    Returns
    -------
    dict

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for path in ("dog/a.wav", "dog/b.ogg", "cat.flac", ".DS_Store"):
    ...         (Path(tmp) / path).parent.mkdir(exist_ok=True)
    ...         _ = (Path(tmp) / path).write_bytes(b"")
    ...     {name: [p.name for p in paths] for name, paths in list_classes(tmp).items()}
    {'cat': ['cat.flac'], 'dog': ['a.wav', 'b.ogg']}
    """
    root = Path(targets_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"--targets {root} is not a folder: give a folder with one sub-folder (or one "
            f"audio file) per class."
        )
    classes, origin = {}, {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            name, files = entry.name, _visible_files(entry)
            if not files:
                raise ValueError(
                    f"Class folder {entry} is empty: put the class's recordings in it or remove it."
                )
        elif entry.is_file():
            name, files = entry.stem, [entry]
        else:
            continue
        if name in classes:
            raise ValueError(
                f"Class {name!r} is given twice in {root} ({origin[name].name} and "
                f"{entry.name}): rename one, or put both recordings in the folder {name}/."
            )
        if not name or any(char in name for char in CSV_UNSAFE):
            raise ValueError(
                f"Class name {name!r} (from {entry}) cannot be written to esc50.csv: rename it "
                f"without commas, quotes or line breaks."
            )
        classes[name], origin[name] = files, entry
    if not classes:
        raise ValueError(
            f"--targets {root} is empty: put one sub-folder (or one audio file) per class in it."
        )
    if len(classes) < 2:
        raise ValueError(
            f"--targets {root} has only one class ({next(iter(classes))!r}): a classifier needs "
            f"at least 2; add a sub-folder (or an audio file) per class."
        )
    return dict(sorted(classes.items()))


def list_backgrounds(backgrounds_dir):
    """The background recordings: every file under `backgrounds_dir`, recursively, sorted."""
    root = Path(backgrounds_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"--backgrounds {root} is not a folder: give a folder of background recordings."
        )
    files = _visible_files(root)
    if not files:
        raise ValueError(
            f"--backgrounds {root} is empty: put background recordings (music, speech, "
            f"ambiences, at least as long as a clip) in it."
        )
    return files


def _collection_sha256(named_files):
    """SHA-256 of (name, content) of each file, in the order given."""
    digest = hashlib.sha256()
    for name, path in named_files:
        digest.update(name.encode("utf-8") + b"\0")
        with open(path, "rb") as fin:
            for chunk in iter(lambda: fin.read(HASH_CHUNK), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Reading and analysing recordings
# ---------------------------------------------------------------------------


class Recording(NamedTuple):
    """A usable recording at the dataset rate, with its activity (`activity`)."""

    path: Path
    samples: np.ndarray  # (T,) float32, mono
    frame_power: np.ndarray  # (F,) mean power of each FRAME_S frame
    cumulative_power: np.ndarray  # (F + 1,) running sum of frame_power, from 0
    threshold: float  # a window whose mean power is below this is silent
    name: str = ""  # path relative to --targets / --backgrounds, as ground_truth.csv records it


def activity(samples, sample_rate):
    """Frame powers of a recording and the power below which a window is silent.

    The recording is cut into FRAME_S frames (the tail shorter than a frame is
    dropped); its active level is the mean power of its loudest ACTIVE_TOP_SHARE
    of frames, and the threshold lies ACTIVE_DROP_DB below it.

    Returns
    -------
    frame_power : numpy.ndarray
        (F,) mean power of each frame.
    cumulative_power : numpy.ndarray
        (F + 1,) running sum of frame_power, starting at 0.
    threshold : float
        Mean power in the same unit.

    Example
    -------
    >>> x = np.concatenate([np.zeros(900), np.ones(100)])  # 9 quiet frames, 1 loud
    >>> frame_power, cumulative_power, threshold = activity(x, 10000)
    >>> frame_power.tolist(), float(threshold)
    ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], 0.01)
    """
    hop = _hop(sample_rate)
    n_frames = len(samples) // hop
    frames = np.asarray(samples[: n_frames * hop], dtype=np.float64).reshape(n_frames, hop)
    frame_power = np.mean(frames**2, axis=1)  # (F,)
    loudest = np.sort(frame_power)[-max(1, math.ceil(ACTIVE_TOP_SHARE * n_frames)) :]
    threshold = float(np.mean(loudest)) * 10.0 ** (-ACTIVE_DROP_DB / 10.0)
    return frame_power, np.concatenate([[0.0], np.cumsum(frame_power)]), threshold


def _hop(sample_rate):
    return max(1, int(round(FRAME_S * sample_rate)))


def remove_dc(samples):
    """The recording minus its mean (its DC offset), float32.

    Example
    -------
    >>> remove_dc(np.array([1.5, 0.5, 1.0], dtype=np.float32)).tolist()
    [0.5, -0.5, 0.0]
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size == 0:
        return samples.astype(np.float32)
    return (samples - samples.mean()).astype(np.float32)


def _channel_peak(path):
    """Largest |sample| of the file's channels, each without its mean; 0 for a mono file.

    Tells a recording whose channels cancel in the mono downmix (one the
    inverse of the other) from a silent one.

    Example
    -------
    >>> import tempfile, soundfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     tone = 0.5 * np.sin(2 * np.pi * np.arange(800) / 80)
    ...     soundfile.write(f"{tmp}/x.wav", np.stack([tone, -tone], axis=1), 8000, subtype="FLOAT")
    ...     round(_channel_peak(f"{tmp}/x.wav"), 3)
    0.5
    """
    info = sf.info(str(path))
    if info.channels < 2:
        return 0.0
    samples, _ = sf.read(str(path), dtype="float64", always_2d=True)  # (T, C)
    samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
    return float(np.abs(samples - samples.mean(axis=0)).max(initial=0.0))


def read_recording(path, sample_rate, min_samples, folder=None):
    """(Recording, None) for a usable recording, or (None, why it is unusable).

    Its ``name`` is `path` relative to `folder` (the whole path without one).
    """
    try:
        samples = remove_dc(read_audio(path, sample_rate).numpy())  # (T,) float32
    except (*AUDIO_READ_ERRORS, ValueError) as err:  # ValueError: no finite sample
        return None, f"is not audio that soundfile can read ({err})"
    if len(samples) < min_samples:
        return None, (
            f"is {len(samples) / sample_rate:.2f} s long, shorter than "
            f"{min_samples / sample_rate:.2f} s"
        )
    if not np.abs(samples).max() >= SILENT_PEAK:
        if _channel_peak(path) >= SILENT_PEAK:
            return None, "is silent once downmixed to mono (its channels cancel)"
        return None, f"is silent (no sample reaches {20 * np.log10(SILENT_PEAK):.0f} dBFS)"
    path = Path(path)
    name = (path.relative_to(folder) if folder is not None else path).as_posix()
    return Recording(path, samples, *activity(samples, sample_rate), name), None


def read_usable(paths, sample_rate, min_samples, owner, fix, folder=None):
    """The usable recordings of `paths`; unusable ones are skipped with a warning.

    Arguments
    ---------
    paths : list of Path
        The recordings of one class, or the backgrounds.
    sample_rate, min_samples : int
        The dataset rate and the shortest usable length, in samples.
    owner : str
        What the recordings are, for the messages ("class 'dog'").
    fix : str
        What the error says to do when none is usable.
    folder : path-like, optional
        The folder the recordings' names are relative to (`read_recording`).

    Returns
    -------
    recordings : list of Recording
    skipped : int
        How many were unusable.
    """
    recordings, problems = [], []
    for path in paths:
        recording, problem = read_recording(path, sample_rate, min_samples, folder)
        if recording is None:
            problems.append(f"{path} {problem}")
        else:
            recordings.append(recording)
    if not recordings:
        raise ValueError(f"{owner} has no usable recording: {'; '.join(problems)}. {fix}")
    for problem in problems:
        logger.warning("Skipping a recording of %s: %s.", owner, problem)
    return recordings, len(problems)


# ---------------------------------------------------------------------------
# One clip
# ---------------------------------------------------------------------------


def _pick_start(rng, recording, n_starts, frame_offset, n_frames, active_start, fallback=True):
    """A start frame j in [0, n_starts) whose window is not silent, uniformly.

    The window covers the frames [j + frame_offset, j + frame_offset + n_frames);
    with `active_start`, its first frame must also be above the threshold. When
    no start qualifies, the loudest window's (None without `fallback`).
    """
    first = np.arange(n_starts) + frame_offset  # (n_starts,)
    window = recording.cumulative_power[first + n_frames] - recording.cumulative_power[first]
    power = window / n_frames  # (n_starts,) mean power of each window
    ok = power >= recording.threshold
    if active_start:
        ok &= recording.frame_power[first] >= recording.threshold
    candidates = np.flatnonzero(ok)
    if len(candidates) == 0:
        return int(np.argmax(power)) if fallback else None
    return int(candidates[rng.integers(len(candidates))])


#: Background draws for one clip before the backgrounds are refused as silent (`cut_clip`).
BACKGROUND_DRAWS = 20


def event_length_range(n, sample_rate):
    """(shortest, longest) event in samples for clips of `n` samples.

    >>> event_length_range(48000, 16000)  # 3 s clips: 0.5 s to 2.25 s
    (8000, 36000)
    """
    longest = max(1, int(round(EVENT_MAX_FRACTION * n)))
    return min(int(round(EVENT_MIN_S * sample_rate)), longest), longest


def cut_clip(rng, events, backgrounds, n, sample_rate, snr_db_range):
    """One clip: an event of one of `events` at a random onset and SNR over a background.

    Arguments
    ---------
    rng : numpy.random.Generator
        The source of every draw, in the order of the module docstring.
    events : list of Recording
        The recordings of the clip's class (each at least the shortest event long).
    backgrounds : list of Recording
        The background recordings (each at least `n` samples long).
    n, sample_rate : int
        Clip length in samples and rate in Hz.
    snr_db_range : tuple of float
        (low, high) of the uniform SNR draw, in dB.

    Returns
    -------
    data_prep.synthesis.Clip
        Its ``provenance`` holds the values of `PROVENANCE_COLUMNS`: the event's
        recording (its ``name``) and where the event was cut from it, in s; the
        background's recording and where its crop starts, in s.
    """
    hop = _hop(sample_rate)
    shortest, longest = event_length_range(n, sample_rate)
    lengths = np.array([len(event.samples) for event in events], dtype=np.float64)
    recording = events[rng.choice(len(events), p=lengths / lengths.sum())]
    length = int(rng.integers(shortest, min(longest, len(recording.samples)) + 1))
    n_starts = (len(recording.samples) - length) // hop + 1
    n_frames = max(1, length // hop)  # the event's whole frames
    start = hop * _pick_start(rng, recording, n_starts, 0, n_frames, active_start=True)
    onset = int(rng.integers(0, n - length + 1))

    # the SNR is set against the background under the event: a crop silent there would scale
    # the event to nothing (a clip of the background alone, labelled with the event's class)
    for _ in range(BACKGROUND_DRAWS):
        background = backgrounds[rng.integers(len(backgrounds))]
        n_crops = (len(background.samples) - n) // hop + 1
        crop = _pick_start(rng, background, n_crops, onset // hop, n_frames, active_start=False, fallback=False)
        if crop is not None:
            break
        logger.warning(
            "No crop of the background %s has sound under a %.2f s event at %.2f s (it is silent "
            "over most of its length): another background is drawn for this clip.",
            background.name, length / sample_rate, onset / sample_rate,
        )  # fmt: skip
    else:
        raise ValueError(
            f"{BACKGROUND_DRAWS} background draws in a row had no sound under a {length / sample_rate:.2f} s "
            f"event (the last: {background.name}): the backgrounds are silent over most of their length. "
            "Trim their silences, or give backgrounds that sound throughout."
        )
    crop *= hop
    snr_db = float(rng.uniform(*snr_db_range))

    event = recording.samples[start : start + length].astype(np.float64)  # (length,)
    event *= event_fade(length, sample_rate)
    target, background_int, mixture = mix_at_snr(
        event, background.samples[crop : crop + n].astype(np.float64), onset, snr_db
    )
    provenance = (
        recording.name,
        f"{start / sample_rate:.6f}",
        background.name,
        f"{crop / sample_rate:.6f}",
    )
    return Clip(target, background_int, mixture, onset, onset + length, snr_db, provenance)


# ---------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------


def _read_rows(path):
    with open(path, newline="", encoding="utf-8") as fin:
        return list(csv.DictReader(fin))


def shared_recordings(root):
    r"""How many test-fold clips are cut from a recording that training-fold clips are cut from.

    Folds are dealt clip by clip, so events cut from different places of one
    recording land in the training folds (`TRAIN_FOLDS`) and in the test fold
    (`TEST_FOLD`) alike, and so do background crops.

    Arguments
    ---------
    root : path-like
        A collection dataset (meta/esc50.csv and meta/ground_truth.csv).

    Returns
    -------
    dict or None
        {"test": clips in the test fold, "events": those whose event recording
        is also a training-fold clip's, "backgrounds": those whose background
        recording is}; None when ground_truth.csv has no `PROVENANCE_COLUMNS`
        (a dataset written before they were recorded).

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     meta = Path(tmp) / "meta"
    ...     meta.mkdir()
    ...     _ = (meta / "esc50.csv").write_text(
    ...         "filename,fold\n1-1-A-0.wav,1\n4-2-A-0.wav,4\n5-3-A-0.wav,5\n5-4-A-0.wav,5\n"
    ...     )
    ...     _ = (meta / "ground_truth.csv").write_text(
    ...         "id,event_recording,background_recording\n1-1-A-0,a.wav,n.wav\n"
    ...         "4-2-A-0,b.wav,n.wav\n5-3-A-0,a.wav,m.wav\n5-4-A-0,b.wav,n.wav\n"
    ...     )
    ...     shared_recordings(tmp)  # b.wav is only in the validation fold 4
    {'test': 2, 'events': 1, 'backgrounds': 1}
    """
    meta = Path(root) / "meta"
    truth = _read_rows(meta / "ground_truth.csv")
    if not truth or not set(PROVENANCE_COLUMNS[::2]) <= truth[0].keys():
        return None
    folds = {row["filename"][: -len(".wav")]: int(row["fold"]) for row in _read_rows(meta / "esc50.csv")}
    trained = {
        column: {row[column] for row in truth if folds[row["id"]] in TRAIN_FOLDS}
        for column in ("event_recording", "background_recording")
    }
    tested = [row for row in truth if folds[row["id"]] == TEST_FOLD]
    return {
        "test": len(tested),
        "events": sum(row["event_recording"] in trained["event_recording"] for row in tested),
        "backgrounds": sum(
            row["background_recording"] in trained["background_recording"] for row in tested
        ),
    }


def log_shared_recordings(root):
    """Logs `shared_recordings` of the dataset in `root` (or that it was not recorded)."""
    shared = shared_recordings(root)
    if shared is None:
        logger.warning(
            "%s/meta/ground_truth.csv does not say which recording each clip was cut from (it "
            "was written before the columns %s were): delete %s and build it again for them "
            "(the same arguments give the same audio).",
            root,
            ", ".join(PROVENANCE_COLUMNS),
            root,
        )
        return
    logger.info(
        "Folds share recordings: %d of the %d test-fold (%d) events are cut from a recording "
        "that a training-fold (%s) event is cut from too, %d of their backgrounds from a "
        "training-fold background recording. Test accuracy measures generalisation to new "
        "cuts and mixtures, not to new recordings.",
        shared["events"],
        shared["test"],
        TEST_FOLD,
        ", ".join(map(str, TRAIN_FOLDS)),
        shared["backgrounds"],
    )


def _inside(path, folder):
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def create_collection_dataset(
    targets_dir,
    backgrounds_dir,
    out_dir,
    per_class=40,
    duration_s=3.0,
    snr_db_range=(-5.0, 5.0),
    sample_rate=16000,
    seed=1234,
):
    """Writes (or reuses) a ground-truth dataset cut from a sound collection.

    Arguments
    ---------
    targets_dir : str or path-like
        One sub-folder (or one audio file) per class (`list_classes`).
    backgrounds_dir : str or path-like
        Background recordings, at least `duration_s` long (`list_backgrounds`).
    out_dir : str or path-like
        The dataset root: gets meta/, audio/ and sources/. Created if missing;
        must be empty, or hold a dataset written by this function.
    per_class : int
        Clips per class, a multiple of 5 (per_class / 5 in each fold).
    duration_s : float
        Clip duration in seconds (at least 0.5).
    snr_db_range : tuple of float
        (low, high) of each clip's SNR over the event, in dB.
    sample_rate : int
        Sampling rate of the dataset in Hz (at least 8000).
    seed : int
        Seed of the one numpy Generator; the same arguments give the same bytes.

    Returns
    -------
    pathlib.Path
        The dataset root (`out_dir`).
    """
    validate_layout(per_class, sample_rate, snr_db_range, duration_s)
    per_class, sample_rate = int(per_class), int(sample_rate)
    targets_root, backgrounds_root, root = Path(targets_dir), Path(backgrounds_dir), Path(out_dir)
    classes = list_classes(targets_root)
    background_paths = list_backgrounds(backgrounds_root)
    for folder, flag in ((targets_root, "--targets"), (backgrounds_root, "--backgrounds")):
        if _inside(root, folder):
            raise ValueError(
                f"out_dir {root} is inside {flag} {folder}: the dataset would become part of "
                f"the collection; write it elsewhere."
            )

    target_names = {
        name: [path.relative_to(targets_root).as_posix() for path in paths]
        for name, paths in classes.items()
    }
    background_names = [path.relative_to(backgrounds_root).as_posix() for path in background_paths]
    named_files = [
        (f"targets/{rel}", path)
        for name, paths in classes.items()
        for rel, path in zip(target_names[name], paths)
    ] + [(f"backgrounds/{rel}", path) for rel, path in zip(background_names, background_paths)]
    params = {
        "generator": "collection_prepare",
        "generator_version": GENERATOR_VERSION,
        "classes": len(classes),
        "per_class": per_class,
        "seed": int(seed),
        "sample_rate": sample_rate,
        "snr_db_range": [float(snr_db_range[0]), float(snr_db_range[1])],
        "duration_s": float(duration_s),
        "class_names": list(classes),
        "targets": target_names,
        "backgrounds": background_names,
        "collection_sha256": _collection_sha256(named_files),
    }
    if check_output_folder(root, params, PARAMS_FILE, KIND):
        logger.info("Reusing the %s in %s (same parameters and recordings).", KIND, root)
        log_shared_recordings(root)
        return root

    n = int(round(duration_s * sample_rate))
    shortest, _ = event_length_range(n, sample_rate)
    events, skipped = {}, 0
    for name, paths in classes.items():
        events[name], n_skipped = read_usable(
            paths,
            sample_rate,
            shortest,
            f"class {name!r}",
            f"Give it recordings of at least {shortest / sample_rate:.2f} s that soundfile can "
            f"read and that are not silent, or remove it from {targets_root}.",
            folder=targets_root,
        )
        skipped += n_skipped
    backgrounds, n_skipped = read_usable(
        background_paths,
        sample_rate,
        n,
        f"--backgrounds {backgrounds_root}",
        f"Give background recordings at least {duration_s:g} s long (they are not looped) that "
        f"soundfile can read and that are not silent, or lower --duration-s.",
        folder=backgrounds_root,
    )
    skipped += n_skipped
    logger.info(
        "Collection: %d classes (%s), %d backgrounds (%.1f s), %d unusable recordings skipped.",
        len(events),
        ", ".join(
            f"{name}: {len(recs)} rec. {sum(len(r.samples) for r in recs) / sample_rate:.1f} s"
            for name, recs in events.items()
        ),
        len(backgrounds),
        sum(len(r.samples) for r in backgrounds) / sample_rate,
        skipped,
    )

    rng = np.random.default_rng(int(seed))
    write_dataset(
        root,
        params,
        list(classes),
        lambda target, name: cut_clip(rng, events[name], backgrounds, n, sample_rate, snr_db_range),
        params_file=PARAMS_FILE,
        kind=KIND,
        progress_every=PROGRESS_EVERY,
        provenance_columns=PROVENANCE_COLUMNS,
    )
    log_shared_recordings(root)
    return root


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Cut a ground-truth dataset in the ESC-50 layout from a sound collection "
        "(target events of each class over real backgrounds, sources saved)."
    )
    parser.add_argument(
        "--targets", required=True, help="folder: one sub-folder (or audio file) per class"
    )
    parser.add_argument("--backgrounds", required=True, help="folder of background recordings")
    parser.add_argument("--out", required=True, help="dataset root to write (or reuse)")
    parser.add_argument("--per-class", type=int, default=40, help="clips per class, multiple of 5")
    parser.add_argument(
        "--duration-s", "--duration", dest="duration_s", type=float, default=3.0, help="clip duration, s"
    )
    parser.add_argument(
        "--snr-db-range",
        type=float,
        nargs=2,
        default=(-5.0, 5.0),
        metavar=("LOW", "HIGH"),
        help="target-to-background SNR over the event, dB",
    )
    parser.add_argument("--sample-rate", type=int, default=16000, help="Hz")
    parser.add_argument("--seed", type=int, default=1234)
    return parser.parse_args(argv)


def main(argv=None):
    """Command line entry point; prints a one-line summary."""
    args = _parse_args(argv)
    start_time = time.perf_counter()
    root = create_collection_dataset(
        args.targets,
        args.backgrounds,
        args.out,
        per_class=args.per_class,
        duration_s=args.duration_s,
        snr_db_range=tuple(args.snr_db_range),
        sample_rate=args.sample_rate,
        seed=args.seed,
    )
    classes = len(list_classes(args.targets))
    print(
        f"Collection dataset at {root}: {classes} classes x {args.per_class} clips "
        f"({args.duration_s:g} s, {args.sample_rate} Hz, seed {args.seed}) ready in "
        f"{time.perf_counter() - start_time:.1f} s"
    )
    return root


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # the message says what to change
        sys.exit(f"collection_prepare: error: {error}")
