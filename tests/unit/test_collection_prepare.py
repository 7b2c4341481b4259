"""Tests of the collection writer (data_prep/collection_prepare.py), the Qt resource
reader (data_prep/qt_rcc.py) and the Debian fetcher's plumbing (data_prep/fetch_debian_sounds.py).

The collections are a few seconds of generated audio: each class's recordings
are a quiet noise floor (-60 dB) with one tone burst of the class's frequency
somewhere inside, so an event cut from a quiet place is told apart by its
spectrum; one background is digitally silent after 1.1 s.
"""

import csv
import hashlib
import io
import json
import logging
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep import fetch_debian_sounds
from data_prep.audio import load_clip
from data_prep.collection_prepare import (
    PARAMS_FILE,
    PROVENANCE_COLUMNS,
    create_collection_dataset,
    main,
    shared_recordings,
)
from data_prep.fetch_debian_sounds import FetchError, Source
from data_prep.fetch_debian_sounds import fetch_debian_sounds as fetch
from data_prep.files import partial_path
from data_prep.ground_truth import GroundTruth
from data_prep.qt_rcc import RccArchive
from data_prep.synthesis import FADE_S
from data_prep.synthetic_prepare import ESC50_COLUMNS, GROUND_TRUTH_COLUMNS, read_source_paths

RATE = 16000
CLASS_HZ = {"alpha": 500.0, "beta": 2000.0, "gamma": 1200.0}
ARGS = {"per_class": 10, "duration_s": 1.0, "seed": 5}


def _burst(hz, rate, seconds, start_s, length_s=0.8, seed=0):
    """A noise floor (RMS 1e-3) with a tone burst (amplitude 0.5) at [start_s, start_s + length_s)."""
    t = np.arange(int(seconds * rate)) / rate
    x = 1e-3 * np.random.default_rng(seed).standard_normal(len(t))
    on = (t >= start_s) & (t < start_s + length_s)
    x[on] += 0.5 * np.sin(2 * np.pi * hz * t[on])
    return x


def _noise(seconds, exponent, seed, rate=RATE):
    """Coloured noise, power spectrum 1 / f^exponent, RMS 0.1."""
    n = int(seconds * rate)
    spectrum = np.random.default_rng(seed).standard_normal(n // 2 + 1) + 0j
    spectrum[1:] /= np.arange(1, len(spectrum)) ** (exponent / 2)
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    return 0.1 * x / np.sqrt(np.mean(x**2))


def _write_collection(root):
    """targets/ (3 classes: a folder of 2, a single file, a folder of 1) and backgrounds/."""
    targets, backgrounds = root / "targets", root / "backgrounds"
    (targets / "alpha").mkdir(parents=True)
    (targets / "gamma").mkdir()
    (backgrounds / "sub").mkdir(parents=True)
    sf.write(targets / "alpha" / "one.wav", _burst(500.0, RATE, 3.0, 1.5), RATE)
    stereo = np.stack([_burst(500.0, 22050, 2.0, 0.6, seed=1)] * 2, axis=1)  # (T, 2)
    sf.write(targets / "alpha" / "two.flac", stereo, 22050)
    sf.write(targets / "beta.wav", _burst(2000.0, 44100, 2.5, 1.0, seed=2), 44100)
    sf.write(targets / "gamma" / "one.flac", _burst(1200.0, RATE, 3.0, 0.3, seed=3), RATE)
    (targets / ".DS_Store").write_bytes(b"not a class")
    sf.write(backgrounds / "brown.wav", _noise(2.0, 2.0, 4), RATE)
    sf.write(backgrounds / "sub" / "pink.flac", _noise(1.5, 1.0, 5), RATE)
    gappy = _noise(2.0, 0.0, 6)
    gappy[int(1.1 * RATE) :] = 0.0  # a pause at the end: never under an event
    sf.write(backgrounds / "gappy.wav", gappy, RATE, subtype="PCM_16")
    return targets, backgrounds


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    return _write_collection(tmp_path_factory.mktemp("collection"))


@pytest.fixture(scope="module")
def dataset(collection, tmp_path_factory):
    """3 classes x 10 clips of 1 s."""
    return create_collection_dataset(*collection, tmp_path_factory.mktemp("out") / "data", **ARGS)


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fin:
        reader = csv.reader(fin)
        header = next(reader)
        return header, [dict(zip(header, row)) for row in reader]


def _file_hashes(root):
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_layout_columns_and_folds(dataset, esc50_sample_dir):
    header, rows = _read_csv(dataset / "meta" / "esc50.csv")
    assert header == ESC50_COLUMNS == _read_csv(esc50_sample_dir / "meta" / "esc50.csv")[0]
    truth_header, truth = _read_csv(dataset / "meta" / "ground_truth.csv")
    assert truth_header == GROUND_TRUTH_COLUMNS + PROVENANCE_COLUMNS  # provenance appended
    assert [row["id"] + ".wav" for row in truth] == [row["filename"] for row in rows]
    # Classes sorted by name, target = index; per_class / 5 clips per class in each fold.
    assert {(int(r["target"]), r["category"]) for r in rows} == {
        (0, "alpha"),
        (1, "beta"),
        (2, "gamma"),
    }
    assert Counter((int(r["fold"]), int(r["target"])) for r in rows) == {
        (fold, target): 2 for fold in range(1, 6) for target in range(3)
    }
    for row in rows:
        assert row["filename"] == f"{row['fold']}-{row['src_file']}-A-{row['target']}.wav"
        clip_id = row["filename"][: -len(".wav")]
        for path in (
            dataset / "audio" / row["filename"],
            dataset / "sources" / f"{clip_id}_target.wav",
            dataset / "sources" / f"{clip_id}_background.wav",
        ):
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (
                RATE,
                1,
                RATE,
                "PCM_16",
            )
    assert sorted(p.name for p in dataset.iterdir()) == ["audio", "meta", "sources"]
    assert sorted(p.name for p in (dataset / "meta").iterdir()) == sorted(
        ["esc50.csv", "ground_truth.csv", PARAMS_FILE]
    )
    assert len(list((dataset / "sources").iterdir())) == 2 * len(rows) == 60
    params = json.loads((dataset / "meta" / PARAMS_FILE).read_text())
    assert params["class_names"] == ["alpha", "beta", "gamma"]
    assert params["targets"]["alpha"] == ["alpha/one.wav", "alpha/two.flac"]
    assert params["backgrounds"] == ["brown.wav", "gappy.wav", "sub/pink.flac"]


def test_mixture_is_exactly_the_sum_of_the_sources(dataset):
    _, truth = _read_csv(dataset / "meta" / "ground_truth.csv")
    for row in truth:
        signals = {}
        for name, path in (
            ("mixture", dataset / "audio" / f"{row['id']}.wav"),
            ("target", dataset / row["target_path"]),
            ("background", dataset / row["background_path"]),
        ):
            signals[name], _ = sf.read(path, dtype="int16")
        total = signals["target"].astype(np.int32) + signals["background"]
        assert np.array_equal(signals["mixture"].astype(np.int32), total), row["id"]
        mixture, _ = sf.read(dataset / "audio" / f"{row['id']}.wav")
        target, _ = sf.read(dataset / row["target_path"])
        background, _ = sf.read(dataset / row["background_path"])
        assert np.array_equal(mixture, target + background)  # float, sample-exact
        assert 0.5 < np.abs(mixture).max() < 1.0  # one gain for both sources, no clipping


def test_ground_truth_rows_match_the_target(dataset):
    _, truth = _read_csv(dataset / "meta" / "ground_truth.csv")
    fade = int(round(FADE_S * RATE))
    for row in truth:
        target, _ = sf.read(dataset / row["target_path"])
        background, _ = sf.read(dataset / row["background_path"])
        onset, offset = round(float(row["onset_s"]) * RATE), round(float(row["offset_s"]) * RATE)
        assert 0.5 * RATE <= offset - onset <= 0.75 * RATE  # 0.5 s to 75 % of the clip
        sounding = np.flatnonzero(target)
        assert len(sounding), f"{row['id']}: the target is silent"
        assert onset <= sounding[0] <= onset + fade, row["id"]
        assert offset - 1 - fade - 10 <= sounding[-1] <= offset - 1, row["id"]
        # snr_db is the target / background power ratio over [onset, offset).
        measured = 10 * np.log10(
            np.sum(target[onset:offset] ** 2) / np.sum(background[onset:offset] ** 2)
        )
        assert abs(measured - float(row["snr_db"])) < 0.05, row["id"]
        assert -5.0 <= float(row["snr_db"]) <= 5.0


def test_events_are_cut_where_the_recording_sounds(dataset):
    """The windows are taken from the tone bursts, starting inside them, not the floor."""
    _, rows = _read_csv(dataset / "meta" / "esc50.csv")
    category = {row["filename"][: -len(".wav")]: row["category"] for row in rows}
    _, truth = _read_csv(dataset / "meta" / "ground_truth.csv")
    fade = int(round(FADE_S * RATE))
    for row in truth:
        target, _ = sf.read(dataset / row["target_path"])
        onset, offset = round(float(row["onset_s"]) * RATE), round(float(row["offset_s"]) * RATE)
        event = target[onset:offset]
        power = np.abs(np.fft.rfft(event * np.hanning(len(event)))) ** 2
        freqs = np.fft.rfftfreq(len(event), 1 / RATE)
        near = np.abs(freqs - CLASS_HZ[category[row["id"]]]) < 50
        assert power[near].sum() > 0.8 * power.sum(), row["id"]
        first = target[onset + fade : onset + fade + RATE // 100]  # the first 10 ms after the fade
        assert np.sqrt(np.mean(first**2)) > 0.1 * np.sqrt(np.mean(event**2)), row["id"]


def test_dc_offsets_are_removed_before_cutting_and_mixing(tmp_path):
    """Recordings with a DC offset (0.3 on the targets, 0.4 on the background, above
    their sound): the sources carry none, the SNR is that of what is heard, and the
    events start in the bursts (an offset counted as sound would make the floor
    "active"). A recording that is only an offset is silent, skipped with a warning."""
    targets, backgrounds = tmp_path / "targets", tmp_path / "backgrounds"
    targets.mkdir()
    backgrounds.mkdir()
    for index, (name, hz) in enumerate((("alpha", 500.0), ("beta", 2000.0))):
        sf.write(targets / f"{name}.wav", _burst(hz, RATE, 3.0, 1.5, seed=index) + 0.3, RATE, subtype="FLOAT")
    sf.write(backgrounds / "noise.wav", _noise(2.0, 1.0, 7) + 0.4, RATE, subtype="FLOAT")
    sf.write(backgrounds / "offset.wav", np.full(2 * RATE, 0.25), RATE, subtype="FLOAT")
    root = create_collection_dataset(targets, backgrounds, tmp_path / "data", per_class=5, duration_s=1.0)
    _, truth = _read_csv(root / "meta" / "ground_truth.csv")
    _, rows = _read_csv(root / "meta" / "esc50.csv")
    category = {row["filename"][: -len(".wav")]: row["category"] for row in rows}
    for row in truth:
        target, _ = sf.read(root / row["target_path"])
        background, _ = sf.read(root / row["background_path"])
        assert np.std(background) > 0.01  # the noise, never the offset-only recording
        assert abs(background.mean()) < 0.2 * background.std(), row["id"]
        onset, offset = round(float(row["onset_s"]) * RATE), round(float(row["offset_s"]) * RATE)
        event = target[onset:offset]
        assert abs(event.mean()) < 0.05 * event.std(), row["id"]
        # what is heard: each source without its mean over the event
        heard = 10 * np.log10(
            np.sum((event - event.mean()) ** 2) / np.sum((background[onset:offset] - background[onset:offset].mean()) ** 2)
        )
        assert abs(heard - float(row["snr_db"])) < 0.2, row["id"]
        power = np.abs(np.fft.rfft(event * np.hanning(len(event)))) ** 2
        freqs = np.fft.rfftfreq(len(event), 1 / RATE)
        assert abs(freqs[power.argmax()] - CLASS_HZ[category[row["id"]]]) < 50, row["id"]  # the burst
        assert power[freqs < 100].sum() < 0.05 * power.sum(), row["id"]  # no offset's pulse


def test_read_source_paths_and_ground_truth_read_it(dataset):
    _, rows = _read_csv(dataset / "meta" / "esc50.csv")
    ids = [row["filename"][: -len(".wav")] for row in rows]
    paths = read_source_paths(dataset)
    assert sorted(paths) == sorted(ids)
    assert all(Path(path).is_file() for pair in paths.values() for path in pair)
    assert GroundTruth.available(str(dataset))
    batch = ids[::7]
    clips = torch.stack([load_clip(dataset / "audio" / f"{i}.wav", RATE, RATE) for i in batch])
    target, background = GroundTruth(dataset, RATE, RATE).sources(batch, clips)
    assert target.shape == background.shape == clips.shape
    assert torch.allclose(target + background, clips, atol=1e-6)


def _white(seconds, seed, rate=RATE):
    """White noise, RMS 0.1, no two stretches alike (a cut is found by its samples)."""
    return 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))


def _gain_and_residual(written, reference):
    """Least-squares gain g of written ~ g * reference, and max |written - g * reference|."""
    gain = np.dot(written, reference) / np.dot(reference, reference)
    return gain, np.abs(written - gain * reference).max()


def test_ground_truth_records_which_recording_and_where_each_clip_was_cut(tmp_path):
    """event_recording / background_recording are the paths under --targets / --backgrounds
    (a comma in one is quoted), and event_start_s / background_start_s are where the event and
    the crop were cut: the written target over [onset, offset) is the DC-free recording from
    event_start_s, faded, times one gain, and the background the crop from background_start_s,
    both up to 16-bit rounding (0.5 / 32768 times the gain's inverse, < 1e-4 here)."""
    targets, backgrounds = tmp_path / "targets", tmp_path / "backgrounds"
    (targets / "alpha").mkdir(parents=True)
    (backgrounds / "street").mkdir(parents=True)
    recordings = {
        "alpha/one.wav": _white(2.0, 1),
        "alpha/take, 2.wav": _white(1.5, 2),
        "beta.wav": _white(2.5, 3),
    }
    background_recordings = {"street/bg.wav": _white(3.0, 4), "hall.wav": _white(2.0, 5)}
    for folder, named in ((targets, recordings), (backgrounds, background_recordings)):
        for name, samples in named.items():
            sf.write(folder / name, samples + 0.01, RATE, subtype="FLOAT")  # an offset, removed
    root = create_collection_dataset(targets, backgrounds, tmp_path / "data", per_class=5, duration_s=1.0)

    assert read_source_paths(root).keys() == {  # the old reader still reads the csv
        f"{fold}-{100000 + k}-A-{k // 5}" for k in range(10) for fold in [1 + k % 5]
    }
    _, truth = _read_csv(root / "meta" / "ground_truth.csv")
    fade = int(round(FADE_S * RATE))
    seen = set()
    for row in truth:
        expected = {"alpha/one.wav", "alpha/take, 2.wav"} if row["id"].endswith("-0") else {"beta.wav"}
        assert row["event_recording"] in expected, row
        assert row["background_recording"] in {"street/bg.wav", "hall.wav"}, row
        seen.add(row["event_recording"])
        onset, offset = round(float(row["onset_s"]) * RATE), round(float(row["offset_s"]) * RATE)
        start = round(float(row["event_start_s"]) * RATE)
        crop = round(float(row["background_start_s"]) * RATE)
        assert start % (RATE // 100) == 0 and crop % (RATE // 100) == 0  # the 10 ms grid
        recording = recordings[row["event_recording"]]
        cut = (recording - recording.mean())[start : start + offset - onset]
        target, _ = sf.read(root / row["target_path"])
        # Inside the fades, where the event is the recording times one gain.
        gain, residual = _gain_and_residual(target[onset + fade : offset - fade], cut[fade:-fade])
        assert gain > 1.0 and residual < 1e-4, row
        background_recording = background_recordings[row["background_recording"]]
        crop_samples = (background_recording - background_recording.mean())[crop : crop + RATE]
        background, _ = sf.read(root / row["background_path"])
        gain, residual = _gain_and_residual(background, crop_samples)
        assert gain > 0.1 and residual < 1e-4, row
    assert seen == set(recordings)


def test_shared_recordings_count_test_clips_cut_from_training_recordings(tmp_path, caplog):
    """One recording per class and one background: all 2 test-fold (5) events (one per class)
    come from a recording that training-fold events come from, and so do their 2 backgrounds;
    the count is logged, and logged again when the dataset is reused."""
    targets, backgrounds = tmp_path / "targets", tmp_path / "backgrounds"
    targets.mkdir()
    backgrounds.mkdir()
    sf.write(targets / "alpha.wav", _white(2.0, 1), RATE)
    sf.write(targets / "beta.wav", _white(2.0, 2), RATE)
    sf.write(backgrounds / "bg.wav", _white(2.0, 3), RATE)
    for attempt in ("written", "reused"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="data_prep.collection_prepare"):
            root = create_collection_dataset(targets, backgrounds, tmp_path / "data", per_class=5, duration_s=1.0)
        assert shared_recordings(root) == {"test": 2, "events": 2, "backgrounds": 2}
        logged = [r.getMessage() for r in caplog.records if "Folds share recordings" in r.getMessage()]
        assert len(logged) == 1, (attempt, logged)
        assert "2 of the 2 test-fold (5) events" in logged[0] and "not to new recordings" in logged[0]


def test_a_dataset_written_before_provenance_is_reused_and_says_so(collection, tmp_path, caplog):
    """The audio did not change, so a dataset whose ground_truth.csv has only the first six
    columns (written before provenance was recorded) is reused untouched, with a warning that
    rebuilding it gives the columns."""
    out = tmp_path / "data"
    create_collection_dataset(*collection, out, per_class=5, duration_s=1.0, seed=2)
    truth_csv = out / "meta" / "ground_truth.csv"
    with open(truth_csv, newline="", encoding="utf-8") as fin:
        rows = list(csv.reader(fin))
    truth_csv.write_text("".join(",".join(row[:6]) + "\n" for row in rows))
    hashes = _file_hashes(out)
    with caplog.at_level(logging.WARNING, logger="data_prep.collection_prepare"):
        assert create_collection_dataset(*collection, out, per_class=5, duration_s=1.0, seed=2) == out
    assert _file_hashes(out) == hashes
    assert shared_recordings(out) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "event_recording" in warnings[0] and "build it again" in warnings[0]


def test_same_seed_same_bytes_other_seed_differs(dataset, collection, tmp_path):
    moved = tmp_path / "moved"  # the collection may move: only its content counts
    shutil.copytree(collection[0], moved / "targets")
    shutil.copytree(collection[1], moved / "backgrounds")
    again = create_collection_dataset(
        moved / "targets", moved / "backgrounds", tmp_path / "again", **ARGS
    )
    reference = _file_hashes(dataset)
    assert _file_hashes(again) == reference
    other = _file_hashes(
        create_collection_dataset(*collection, tmp_path / "other", **{**ARGS, "seed": 6})
    )
    assert other.keys() == reference.keys()
    assert all(other[name] != reference[name] for name in reference if name.endswith(".wav"))


def test_rerun_reuses_resumes_and_refuses(collection, tmp_path):
    targets = tmp_path / "targets"
    shutil.copytree(collection[0], targets)
    args = {"per_class": 5, "duration_s": 1.0, "seed": 2}
    out = tmp_path / "data"
    create_collection_dataset(targets, collection[1], out, **args)
    hashes = _file_hashes(out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    assert create_collection_dataset(targets, collection[1], out, **args) == out  # reused
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps
    with pytest.raises(ValueError, match="other parameters.*seed"):
        create_collection_dataset(targets, collection[1], out, **{**args, "seed": 3})
    # A recording edited in place (same size): other recordings, not a stale reuse.
    recording = targets / "gamma" / "one.flac"
    samples, rate = sf.read(recording)
    sf.write(recording, -samples, rate)
    with pytest.raises(ValueError, match="other parameters.*collection_sha256"):
        create_collection_dataset(targets, collection[1], out, **args)
    sf.write(recording, samples, rate)
    assert create_collection_dataset(targets, collection[1], out, **args) == out
    assert _file_hashes(out) == hashes

    # Interrupted run (its mark, no parameters file, a file missing, a partial left): rewritten.
    (out / "meta" / PARAMS_FILE).unlink()
    (out / "meta" / f".{PARAMS_FILE}.writing").write_text("{}")
    (out / "audio" / "1-100000-A-0.wav").unlink()
    Path(partial_path(out / "audio" / "1-100000-A-0.wav")).write_bytes(b"partial")
    create_collection_dataset(targets, collection[1], out, **args)
    assert _file_hashes(out) == hashes

    (out / "meta" / PARAMS_FILE).unlink()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not part of a collection dataset"):
        create_collection_dataset(targets, collection[1], out, **args)
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="inside --targets"):
        create_collection_dataset(targets, collection[1], targets / "data", **args)


def _tone(seconds, rate=RATE):
    return 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(int(seconds * rate)) / rate)


@pytest.mark.parametrize(
    "case, error, message",
    [
        ("unreadable", ValueError, r"'broken' has no usable recording: .*broken\.wav is not audio"),
        ("short", ValueError, r"'short' has no usable recording: .*short\.wav is 0\.30 s long"),
        ("silent", ValueError, r"'silent' has no usable recording: .*silent\.wav is silent"),
        ("short background", ValueError, r"backgrounds .*bg\.wav is 0\.60 s long.*--duration-s"),
        ("empty targets", ValueError, r"--targets .* is empty"),
        ("empty backgrounds", ValueError, r"--backgrounds .* is empty"),
        ("empty class", ValueError, r"Class folder .*hollow is empty"),
        ("one class", ValueError, r"only one class \('tone'\).*at least 2"),
        ("comma", ValueError, r"'a,b' .* cannot be written to esc50\.csv"),
        ("per class", ValueError, r"per_class=7 must be a positive multiple of 5"),
        ("no folder", FileNotFoundError, r"--targets .*missing is not a folder"),
    ],
)
def test_bad_input_is_a_clear_error_before_writing(tmp_path, case, error, message):
    targets, backgrounds = tmp_path / "targets", tmp_path / "backgrounds"
    targets.mkdir()
    backgrounds.mkdir()
    sf.write(targets / "tone.wav", _tone(1.0), RATE)
    if case != "empty backgrounds":
        sf.write(backgrounds / "bg.wav", _tone(0.6 if case == "short background" else 2.0), RATE)
    args = {"per_class": 7 if case == "per class" else 5, "duration_s": 1.0}
    if case == "unreadable":
        (targets / "broken.wav").write_text("RIFF? no, a text file")
    elif case == "short":
        sf.write(targets / "short.wav", _tone(0.3), RATE)
    elif case == "silent":
        sf.write(targets / "silent.wav", np.zeros(RATE), RATE)
    elif case == "empty targets":
        (targets / "tone.wav").unlink()
    elif case == "empty class":
        (targets / "hollow").mkdir()
    elif case == "comma":
        sf.write(targets / "a,b.wav", _tone(1.0), RATE)
    elif case == "no folder":
        targets = tmp_path / "missing"
    elif case != "one class":
        sf.write(targets / "other.wav", _tone(1.0), RATE)
    out = tmp_path / "never"
    with pytest.raises(error, match=message):
        create_collection_dataset(targets, backgrounds, out, **args)
    assert not out.exists()


def test_cli_refuses_an_snr_that_16_bit_files_cannot_hold(collection, tmp_path):
    """--snr-db-range -100 -100 wrote all-zero targets and recorded -100 dB."""
    out = tmp_path / "never"
    argv = ["--targets", str(collection[0]), "--backgrounds", str(collection[1]), "--out", str(out)]
    with pytest.raises(ValueError, match=r"snr_db_range=\(-100\.0, -100\.0\) goes beyond \+-60 dB"):
        main([*argv, "--per-class", "5", "--duration-s", "1", "--snr-db-range", "-100", "-100"])
    assert not out.exists()


def test_a_stereo_recording_whose_channels_cancel_is_not_called_silent(tmp_path, caplog):
    """Left = a loud tone, right = its inverse: the mono downmix is 0, the file is not silent.
    A digitally silent stereo file keeps the plain "is silent (no sample reaches -80 dBFS)"."""
    targets, backgrounds = tmp_path / "targets", tmp_path / "backgrounds"
    (targets / "tone").mkdir(parents=True)
    backgrounds.mkdir()
    sf.write(targets / "tone" / "cancel.wav", np.stack([_tone(1.0), -_tone(1.0)], axis=1), RATE)
    sf.write(targets / "tone" / "quiet.wav", np.zeros((RATE, 2)), RATE)
    sf.write(targets / "tone" / "fine.wav", _tone(1.0), RATE)
    sf.write(targets / "other.wav", _tone(1.0), RATE)
    sf.write(backgrounds / "bg.wav", _white(2.0, 1), RATE)
    with caplog.at_level(logging.WARNING, logger="data_prep.collection_prepare"):
        create_collection_dataset(targets, backgrounds, tmp_path / "data", per_class=5, duration_s=1.0)
    warnings = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert len(warnings) == 2, warnings
    assert warnings[0].endswith("cancel.wav is silent once downmixed to mono (its channels cancel).")
    assert warnings[1].endswith("quiet.wav is silent (no sample reaches -80 dBFS).")


def test_unusable_recording_is_skipped_with_a_warning(collection, tmp_path, caplog):
    targets = tmp_path / "targets"
    shutil.copytree(collection[0], targets)
    (targets / "alpha" / "notes.txt").write_text("recorded at the farm")
    with caplog.at_level(logging.WARNING, logger="data_prep.collection_prepare"):
        root = create_collection_dataset(targets, collection[1], tmp_path / "data", **ARGS)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("notes.txt is not audio" in w and "'alpha'" in w for w in warnings), warnings
    params = json.loads((root / "meta" / PARAMS_FILE).read_text())
    assert "alpha/notes.txt" in params["targets"]["alpha"]  # listed (and hashed), not used


def test_cli(collection, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["--targets", str(collection[0]), "--backgrounds", str(collection[1])]
    argv += ["--out", str(out), "--per-class", "5", "--duration-s", "1", "--seed", "9"]
    main(argv + ["--snr-db-range", "0", "3", "--sample-rate", "8000"])
    assert "3 classes x 5 clips" in capsys.readouterr().out
    params = json.loads((out / "meta" / PARAMS_FILE).read_text())
    assert (params["seed"], params["snr_db_range"], params["sample_rate"]) == (9, [0.0, 3.0], 8000)
    _, truth = _read_csv(out / "meta" / "ground_truth.csv")
    assert len(truth) == 15 and all(0.0 <= float(r["snr_db"]) <= 3.0 for r in truth)
    assert sf.info(str(out / "audio" / "1-100000-A-0.wav")).samplerate == 8000


# ---------------------------------------------------------------------------
# Qt resource archives, written by hand from the format (not by the reader)
# ---------------------------------------------------------------------------


def _rcc(version, compressed_entry=b"", zstd=False):
    """An archive with /snd/cow.ogg (stored), /snd/readme.txt (zlib) and /top.bin (stored).

    Layout: header, tree, data, names. Nodes: 0 root {snd, top.bin}, 1 snd
    {cow.ogg, readme.txt}, 2 top.bin, 3 cow.ogg, 4 readme.txt.
    """
    names, name_at = b"", {}
    for name in ("snd", "top.bin", "cow.ogg", "readme.txt"):
        name_at[name] = len(names)
        names += struct.pack(">HI", len(name), 0xABCD) + name.encode("utf-16-be")
    cow, top = b"OggS fake vorbis \x00\x01\x02", b"\xff" * 5
    text = compressed_entry or b"Recorded by the GCompris team. " * 8
    packed = struct.pack(">I", len(text)) + zlib.compress(text)
    data, data_at = b"", {}
    for key, payload in (("cow", cow), ("readme", packed), ("top", top)):
        data_at[key] = len(data)
        data += struct.pack(">I", len(payload)) + payload
    stamp = struct.pack(">Q", 1_700_000_000_000) if version >= 2 else b""

    def directory(name_offset, count, first):
        return struct.pack(">IHII", name_offset, 0x02, count, first) + stamp

    def file(name_offset, flags, offset):
        return struct.pack(">IHHHI", name_offset, flags, 0, 1, offset) + stamp

    tree = (
        directory(0, 2, 1)
        + directory(name_at["snd"], 2, 3)
        + file(name_at["top.bin"], 0, data_at["top"])
        + file(name_at["cow.ogg"], 0, data_at["cow"])
        + file(name_at["readme.txt"], 0x04 if zstd else 0x01, data_at["readme"])
    )
    header_size = 24 if version >= 3 else 20
    tree_at = header_size
    data_offset = tree_at + len(tree)
    names_at = data_offset + len(data)
    header = b"qres" + struct.pack(">IIII", version, tree_at, data_offset, names_at)
    if version >= 3:
        header += struct.pack(">I", 0x01)
    return header + tree + data + names, cow, text, top


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reader_on_a_hand_built_archive(version):
    archive_bytes, cow, text, top = _rcc(version)
    archive = RccArchive(archive_bytes, "test.rcc")
    assert archive.names() == ["snd/cow.ogg", "snd/readme.txt", "top.bin"]
    assert archive.read("snd/cow.ogg") == cow
    assert archive.read("snd/readme.txt") == text  # zlib, 4-byte length prefix
    assert archive.read("top.bin") == top
    with pytest.raises(KeyError, match="test.rcc has no file 'snd/pig.ogg'"):
        archive.read("snd/pig.ogg")


def test_rcc_reader_refuses_what_it_cannot_read():
    archive_bytes, *_ = _rcc(3)
    with pytest.raises(ValueError, match="x.rcc is not a Qt resource archive"):
        RccArchive(b"PK\x03\x04" + archive_bytes[4:], "x.rcc")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        RccArchive(archive_bytes[:40], "x.rcc")
    with pytest.raises(ValueError, match="version 7"):
        RccArchive(b"qres" + struct.pack(">I", 7) + archive_bytes[8:], "x.rcc")
    zstd_archive = RccArchive(_rcc(3, zstd=True)[0], "x.rcc")
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="zstd-compressed; install the zstandard package"):
            zstd_archive.read("snd/readme.txt")


# ---------------------------------------------------------------------------
# The Debian fetcher, without the network
# ---------------------------------------------------------------------------

SOURCES = (
    Source("targets/cow/cow.wav", "fake-sounds", "usr/share/fake/cow.wav"),
    Source("targets/pig/pig.wav", "fake-sounds", "usr/share/fake/farm.rcc", "animals/pig.wav"),
)


def _wav_bytes(seconds):
    buffer = io.BytesIO()
    sf.write(buffer, _tone(seconds), RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _fake_deb(folder):
    """A real .deb (dpkg-deb --build) holding a wav and an rcc with a wav inside."""
    tree = folder / "pkg"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: fake-sounds\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: Test <test@example.org>\nDescription: test\n"
    )
    (tree / "usr/share/fake").mkdir(parents=True)
    (tree / "usr/share/fake/cow.wav").write_bytes(_wav_bytes(0.6))
    pig = _wav_bytes(0.7)
    names = struct.pack(">HI", 7, 0) + "animals".encode("utf-16-be")
    names_pig = len(names)
    names += struct.pack(">HI", 7, 0) + "pig.wav".encode("utf-16-be")
    tree_bytes = struct.pack(">IHII", 0, 2, 1, 1) + struct.pack(">IHII", 0, 2, 1, 2)
    tree_bytes += struct.pack(">IHHHI", names_pig, 0, 0, 0, 0)
    data = struct.pack(">I", len(pig)) + pig
    header = b"qres" + struct.pack(
        ">IIII", 1, 20, 20 + len(tree_bytes), 20 + len(tree_bytes) + len(data)
    )
    (tree / "usr/share/fake/farm.rcc").write_bytes(header + tree_bytes + data + names)
    deb = folder / "fake-sounds_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(tree), str(deb)], check=True, capture_output=True)
    return deb, pig


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian)")
def test_fetch_unpacks_deb_and_rcc_and_skips_what_is_present(tmp_path, monkeypatch):
    deb, pig = _fake_deb(tmp_path)
    calls = []

    def download(packages, folder):
        calls.append(list(packages))
        return {"fake-sounds": Path(shutil.copy(deb, folder))}

    monkeypatch.setattr(fetch_debian_sounds, "download_packages", download)
    monkeypatch.setattr(fetch_debian_sounds, "_require_tools", lambda: None)
    out = tmp_path / "dev"
    assert fetch(out, SOURCES) == list(SOURCES)
    assert (out / "targets/pig/pig.wav").read_bytes() == pig
    assert sf.info(str(out / "targets/cow/cow.wav")).duration == pytest.approx(0.6)
    assert calls == [["fake-sounds"]]
    assert fetch(out, SOURCES) == [] and calls == [["fake-sounds"]]  # all present: no download
    (out / "targets/cow/cow.wav").unlink()
    assert fetch(out, SOURCES) == [SOURCES[0]]


def test_fetch_without_apt_get_or_offline_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch_debian_sounds.shutil, "which", lambda tool: None)
    with pytest.raises(FetchError, match="apt-get is not available.*Debian or Ubuntu"):
        fetch(tmp_path / "dev", SOURCES)
    monkeypatch.undo()

    def offline(command, **kwargs):
        assert command[:2] == ["apt-get", "download"]
        return subprocess.CompletedProcess(
            command, 100, "", "E: Failed to fetch http://deb.debian.org/... Temporary failure"
        )

    monkeypatch.setattr(fetch_debian_sounds, "_require_tools", lambda: None)
    monkeypatch.setattr(fetch_debian_sounds.subprocess, "run", offline)
    with pytest.raises(FetchError, match=r"(?s)exit 100.*Failed to fetch.*offline"):
        fetch(tmp_path / "dev", SOURCES)
    assert not (tmp_path / "dev").exists()


def test_remove_dc_subtracts_the_mean_by_hand():
    """(0, 0, 3) has mean 1 (its median is 0): (-1, -1, 2)."""
    from data_prep.collection_prepare import remove_dc

    assert remove_dc(np.array([0.0, 0.0, 3.0], dtype=np.float32)).tolist() == [-1.0, -1.0, 2.0]


def test_activity_threshold_is_20_db_below_the_loudest_tenth_of_frames_by_hand():
    """20 frames of 10 ms at 10 kHz: 18 silent, one of power 1, one of 0.5. The loudest
    ceil(0.1 x 20) = 2 frames have mean power 0.75: the threshold is 0.75 x 10^(-20/10)."""
    from data_prep.collection_prepare import activity

    x = np.concatenate([np.zeros(1800), np.ones(100), np.full(100, np.sqrt(0.5))])
    frame_power, cumulative_power, threshold = activity(x, 10000)
    assert frame_power[-2:].tolist() == pytest.approx([1.0, 0.5])
    assert cumulative_power[-1] == pytest.approx(1.5)
    assert threshold == pytest.approx(0.0075)


def test_a_window_is_cut_at_the_loudest_start_when_none_is_active_by_hand():
    """Frame powers (0, 0, 1, 0.2), windows of 2 frames: means 0, 0.5, 0.6, none at the
    threshold 1: the loudest window's start, 2."""
    from data_prep.collection_prepare import Recording, _pick_start

    power = np.array([0.0, 0.0, 1.0, 0.2])
    recording = Recording(Path("r.wav"), np.zeros(40, np.float32), power, np.concatenate([[0.0], np.cumsum(power)]), 1.0)
    assert _pick_start(np.random.default_rng(0), recording, 3, 0, 2, active_start=False) == 2


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian)")
def test_read_members_says_what_is_wrong_with_a_package(tmp_path):
    deb, _ = _fake_deb(tmp_path)
    assert set(fetch_debian_sounds.read_members(deb, {"usr/share/fake/cow.wav"})) == {
        "usr/share/fake/cow.wav"
    }
    # A member the package does not hold: its layout changed.
    with pytest.raises(FetchError, match=r"has no usr/share/fake/horse\.wav.*layout changed"):
        fetch_debian_sounds.read_members(deb, {"usr/share/fake/horse.wav"})
    # Not a .deb at all (a mirror's error page): dpkg-deb's own words, not a tar traceback.
    page = tmp_path / "fake-sounds_1.1_all.deb"
    page.write_text("<html>404 Not Found</html>\n")
    with pytest.raises(FetchError, match=r"could not unpack .*not a Debian format archive"):
        fetch_debian_sounds.read_members(page, {"usr/share/fake/cow.wav"})


def test_a_member_that_is_not_audio_is_refused_by_name():
    with pytest.raises(FetchError, match=r"targets/cow/cow\.ogg is not audio soundfile can read"):
        fetch_debian_sounds._describe(b"<html>moved</html>", "targets/cow/cow.ogg")
    assert fetch_debian_sounds._describe(b"GPL-3", "licenses/x.copyright") == ""
    assert fetch_debian_sounds._describe(_wav_bytes(0.5), "targets/x.wav") == f"0.5 s, {RATE} Hz"


def test_an_out_that_is_a_file_is_refused_before_any_download(tmp_path, monkeypatch):
    """Guards the --out check of `fetch_debian_sounds`: a file as --out downloaded the four
    packages (about 240 MB), then failed with NotADirectoryError (found by a probe)."""
    def download(*args, **kwargs):
        raise AssertionError("downloaded")

    monkeypatch.setattr(fetch_debian_sounds, "download_packages", download)
    blocker = tmp_path / "f.txt"
    blocker.write_text("mine")
    with pytest.raises(ValueError, match=r"is a file, not a folder; give a folder for the recordings"):
        fetch(blocker / "sub")
    assert blocker.read_text() == "mine"


def test_build_names_its_own_dataset_folder_when_it_holds_the_users_files(collection, tmp_path, monkeypatch):
    """Guards `build_dev_set`'s message: collection_prepare's refusal says "give ... out_dir",
    a setting this command does not have; it now names OUT/dataset and --out."""
    out = tmp_path / "debian"
    targets, backgrounds = collection
    shutil.copytree(targets, out / "targets")
    shutil.copytree(backgrounds, out / "backgrounds")
    (out / "dataset").mkdir()
    (out / "dataset" / "notes.txt").write_text("mine")
    monkeypatch.setattr(fetch_debian_sounds, "fetch_debian_sounds", lambda out_dir, sources: [])  # the recordings are here
    with pytest.raises(ValueError, match=r"Here that folder is .*debian/dataset, which --build always writes: .*another --out"):
        fetch_debian_sounds.build_dev_set(out)
    assert (out / "dataset" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("flag", ["--duration-s", "--duration"])
def test_both_dataset_commands_take_both_spellings_of_the_clip_length(flag):
    """collection_prepare.py documents --duration-s, synthetic_prepare.py --duration: each takes both."""
    from data_prep import collection_prepare, synthetic_prepare

    collection = collection_prepare._parse_args(["--targets", "t", "--backgrounds", "b", "--out", "o", flag, "2.5"])
    synthetic = synthetic_prepare._parse_args(["--out", "o", flag, "1.5"])
    assert (collection.duration_s, synthetic.duration) == (2.5, 1.5)
