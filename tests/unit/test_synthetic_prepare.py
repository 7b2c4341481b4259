"""Tests of the embedded synthetic dataset (data_prep/synthetic_prepare.py)."""

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from data_prep.files import partial_path
from data_prep.synthesis import SIGNATURES, synthesize_clip
from data_prep.synthetic_prepare import create_synthetic_dataset, main, read_source_paths

INT16_TOLERANCE = 1.5 / 32768  # the documented bound; the writer is in fact exact


@pytest.fixture(scope="module")
def all_classes(tmp_path_factory):
    """Every signature, 5 clips each (one per fold), 1 s clips."""
    out = tmp_path_factory.mktemp("all_classes")
    return create_synthetic_dataset(
        out, classes=len(SIGNATURES), per_class=5, seed=11, duration_s=1.0
    )


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


def _targets_by_id(root):
    _, rows = _read_csv(root / "meta" / "esc50.csv")
    return {row["filename"][: -len(".wav")]: int(row["target"]) for row in rows}


def test_layout_and_columns(tiny_synthetic, esc50_sample_dir):
    root = tiny_synthetic
    header, rows = _read_csv(root / "meta" / "esc50.csv")
    real_header, _ = _read_csv(esc50_sample_dir / "meta" / "esc50.csv")
    assert header == real_header  # the csv of the real ESC-50
    _, truth = _read_csv(root / "meta" / "ground_truth.csv")
    assert len(rows) == len(truth) == 3 * 5
    assert [r["filename"] for r in rows] == sorted(r["filename"] for r in rows)
    assert [r["id"] + ".wav" for r in truth] == [r["filename"] for r in rows]
    for row in rows:
        assert re.fullmatch(r"[1-5]-\d+-A-\d+\.wav", row["filename"])
        assert row["filename"] == f"{row['fold']}-{row['src_file']}-A-{row['target']}.wav"
        assert row["category"] == SIGNATURES[int(row["target"])]
        assert (row["esc10"], row["take"]) == ("False", "A")
        clip_id = row["filename"][: -len(".wav")]
        for path in (
            root / "audio" / row["filename"],
            root / "sources" / f"{clip_id}_target.wav",
            root / "sources" / f"{clip_id}_background.wav",
        ):
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000)
            assert (info.format, info.subtype) == ("WAV", "PCM_16")
    assert len({r["src_file"] for r in rows}) == len(rows)
    assert len(list((root / "audio").iterdir())) == 15
    assert len(list((root / "sources").iterdir())) == 30
    assert sorted(p.name for p in root.iterdir()) == ["audio", "meta", "sources"]
    assert sorted(p.name for p in (root / "meta").iterdir()) == [
        "esc50.csv",
        "ground_truth.csv",
        "synthetic_params.json",
    ]  # no temporary file left behind
    params = json.loads((root / "meta" / "synthetic_params.json").read_text())
    assert params["class_names"] == list(SIGNATURES[:3])


def test_read_source_paths_gives_each_clips_sources(tiny_synthetic, tmp_path):
    paths = read_source_paths(tiny_synthetic)
    assert sorted(paths) == sorted(_targets_by_id(tiny_synthetic))
    for clip_id, (target_path, background_path) in paths.items():
        mixture, _ = sf.read(tiny_synthetic / "audio" / f"{clip_id}.wav", dtype="int16")
        target, _ = sf.read(target_path, dtype="int16")
        background, _ = sf.read(background_path, dtype="int16")
        assert np.array_equal(mixture.astype(np.int32), target.astype(np.int32) + background)
    with pytest.raises(FileNotFoundError, match="no separate sources"):
        read_source_paths(tmp_path)


def test_classes_balanced_over_folds(all_classes, tmp_path):
    _, rows = _read_csv(all_classes / "meta" / "esc50.csv")
    counts = Counter((int(r["fold"]), int(r["target"])) for r in rows)
    assert counts == {(f, c): 1 for f in range(1, 6) for c in range(len(SIGNATURES))}

    root = create_synthetic_dataset(tmp_path, classes=2, per_class=10, seed=2, duration_s=0.5)
    _, rows = _read_csv(root / "meta" / "esc50.csv")
    counts = Counter((int(r["fold"]), int(r["target"])) for r in rows)
    assert counts == {(f, c): 2 for f in range(1, 6) for c in range(2)}
    assert {(int(r["target"]), r["category"]) for r in rows} == {
        (0, "steady_tone"),
        (1, "harmonic_stack"),
    }


def test_mixture_is_sum_of_sources(all_classes):
    _, truth = _read_csv(all_classes / "meta" / "ground_truth.csv")
    for row in truth:
        mixture, _ = sf.read(all_classes / "audio" / f"{row['id']}.wav", dtype="int16")
        target, _ = sf.read(all_classes / row["target_path"], dtype="int16")
        background, _ = sf.read(all_classes / row["background_path"], dtype="int16")
        assert np.array_equal(mixture.astype(np.int32), target.astype(np.int32) + background)
        mixture, _ = sf.read(all_classes / "audio" / f"{row['id']}.wav")
        target, _ = sf.read(all_classes / row["target_path"])
        background, _ = sf.read(all_classes / row["background_path"])
        assert np.abs(mixture - (target + background)).max() <= INT16_TOLERANCE
        assert 0.5 < np.abs(mixture).max() < 1.0  # scaled jointly to peak 0.9, no clipping
        assert np.abs(target).max() < 1.0 and np.abs(background).max() < 1.0
        assert np.abs(target).max() > 0.01 and np.abs(background).max() > 0.01


def test_ground_truth_consistent(all_classes):
    _, truth = _read_csv(all_classes / "meta" / "ground_truth.csv")
    for row in truth:
        onset, offset, snr_db = float(row["onset_s"]), float(row["offset_s"]), float(row["snr_db"])
        assert 0.0 <= onset < offset <= 1.0
        assert 0.1 - 1e-3 <= offset - onset <= 0.5 + 1e-3  # 10-50 % of the clip
        assert -5.0 <= snr_db <= 5.0
        target, sr = sf.read(all_classes / row["target_path"])
        background, _ = sf.read(all_classes / row["background_path"])
        start, stop = round(onset * sr), round(offset * sr)
        energy = np.sum(target**2)
        assert np.sum(target[start:stop] ** 2) >= 0.999 * energy
        # The recorded SNR is the target / background power ratio over the event.
        measured = 10 * np.log10(energy / np.sum(background[start:stop] ** 2))
        assert abs(measured - snr_db) < 0.1


@pytest.mark.parametrize("name", ["steady_tone", "noise_pulses"])
def test_synthesize_clip_is_a_function_of_the_generator_state(name):
    first = synthesize_clip(name, np.random.default_rng(5), 8000, 16000, (-5.0, 5.0))
    again = synthesize_clip(name, np.random.default_rng(5), 8000, 16000, (-5.0, 5.0))
    other = synthesize_clip(name, np.random.default_rng(6), 8000, 16000, (-5.0, 5.0))
    for signal in ("target", "background", "mixture"):
        assert np.array_equal(getattr(first, signal), getattr(again, signal))
        assert not np.array_equal(getattr(first, signal), getattr(other, signal))
        assert getattr(first, signal).dtype == np.int16 and len(getattr(first, signal)) == 8000
    assert (first.onset, first.offset, first.snr_db) == (again.onset, again.offset, again.snr_db)
    assert not first.target[: first.onset].any() and not first.target[first.offset :].any()
    assert np.array_equal(first.mixture, first.target.astype(np.int32) + first.background)


def test_same_seed_same_bytes_other_seed_differs(tiny_synthetic, tmp_path):
    again = create_synthetic_dataset(
        tmp_path / "again", classes=3, per_class=5, seed=7, duration_s=1.0
    )
    reference = _file_hashes(tiny_synthetic)
    assert len(reference) == 3 + 15 * 3
    assert _file_hashes(again) == reference

    other = _file_hashes(
        create_synthetic_dataset(tmp_path / "other", classes=3, per_class=5, seed=8, duration_s=1.0)
    )
    assert other.keys() == reference.keys()  # same layout ...
    audio = [name for name in reference if name.endswith(".wav")]
    assert all(other[name] != reference[name] for name in audio)  # ... other sounds


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"per_class": 7}, "multiple of 5"),
        ({"per_class": 0}, "multiple of 5"),
        ({"classes": 0}, "between 1 and"),
        ({"classes": len(SIGNATURES) + 1}, "between 1 and"),
        ({"snr_db_range": (5.0, -5.0)}, "low > high"),
        ({"duration_s": 0.1}, "too short"),
        ({"sample_rate": 4000}, "too low"),
    ],
)
def test_invalid_arguments_raise_before_writing(tmp_path, kwargs, message):
    out = tmp_path / "never"
    args = {"classes": 2, "per_class": 5, "duration_s": 0.5, **kwargs}
    with pytest.raises(ValueError, match=message):
        create_synthetic_dataset(out, **args)
    assert not out.exists()


def _event_profile(wav, onset, offset, sample_rate):
    """Log power in 64 bands x 4 quarters of the event, 60 dB floor, mean removed."""
    event = wav[round(onset * sample_rate) : round(offset * sample_rate)]
    quarters = []
    for part in np.array_split(event, 4):
        frames = np.lib.stride_tricks.sliding_window_view(part, 256)[::64] * np.hanning(256)
        power = (np.abs(np.fft.rfft(frames, axis=-1)) ** 2).mean(0)  # (129,)
        quarters.append(power[:128].reshape(64, 2).sum(1))  # (64,)
    power = np.stack(quarters)  # (4, 64)
    profile = np.maximum(10 * np.log10(power / power.max() + 1e-12), -60.0).ravel()
    return profile - profile.mean()


def _leave_one_out_accuracy(features, labels):
    """Nearest-centroid accuracy, each clip classified by centroids of the others."""
    correct = 0
    for i in range(len(labels)):
        others = np.arange(len(labels)) != i
        centroids = np.stack(
            [features[others & (labels == c)].mean(0) for c in range(labels.max() + 1)]
        )
        correct += np.argmin(((centroids - features[i]) ** 2).sum(1)) == labels[i]
    return correct / len(labels)


@pytest.mark.parametrize("snr_db_range", [(-100.0, -100.0), (-5.0, 60.5), (-61.0, 0.0)])
def test_an_snr_beyond_60_db_is_refused_before_writing(tmp_path, snr_db_range):
    """At -100 dB every target rounds to 0 in the 16-bit files while ground_truth.csv said -100."""
    with pytest.raises(ValueError, match=r"beyond \+-60 dB.*--snr-db-range.*\[-60, 60\]"):
        create_synthetic_dataset(tmp_path / "out", classes=1, per_class=5, duration_s=0.5, snr_db_range=snr_db_range)
    assert not (tmp_path / "out").exists()


def test_an_snr_of_minus_60_db_is_what_the_16_bit_sources_hold(tmp_path):
    """The widest SNR allowed: the measured power ratio of the int16 sources is -60 dB to 0.1 dB."""
    root = create_synthetic_dataset(tmp_path, classes=1, per_class=5, duration_s=0.5, snr_db_range=(-60.0, -60.0))
    _, truth = _read_csv(root / "meta" / "ground_truth.csv")
    for row in truth:
        assert row["snr_db"] == "-60.0000"
        target, _ = sf.read(root / row["target_path"], dtype="int16")
        background, _ = sf.read(root / row["background_path"], dtype="int16")
        onset, offset = round(float(row["onset_s"]) * 16000), round(float(row["offset_s"]) * 16000)
        power = [np.mean(x[onset:offset].astype(float) ** 2) for x in (target, background)]
        assert abs(10 * np.log10(power[0] / power[1]) - -60.0) < 0.1, row["id"]


def test_signatures_distinguishable_background_uninformative(all_classes):
    """Every class has its own time-frequency profile; the background has none."""
    _, truth = _read_csv(all_classes / "meta" / "ground_truth.csv")
    target_of = _targets_by_id(all_classes)
    labels = np.array([target_of[row["id"]] for row in truth])
    accuracy = {}
    for kind in ("target", "mixture", "background"):
        features = []
        for row in truth:
            path = {
                "target": all_classes / row["target_path"],
                "mixture": all_classes / "audio" / f"{row['id']}.wav",
                "background": all_classes / row["background_path"],
            }[kind]
            wav, sr = sf.read(path)
            features.append(_event_profile(wav, float(row["onset_s"]), float(row["offset_s"]), sr))
        accuracy[kind] = _leave_one_out_accuracy(np.stack(features), labels)
    # 15 classes: chance is 1/15.
    assert accuracy["target"] >= 0.9, accuracy
    assert accuracy["mixture"] >= 0.75, accuracy
    assert accuracy["background"] <= 0.35, accuracy


def test_five_second_clips(tmp_path):
    root = create_synthetic_dataset(tmp_path, classes=2, per_class=5, seed=5)
    _, truth = _read_csv(root / "meta" / "ground_truth.csv")
    for row in truth:
        assert sf.info(str(root / "audio" / f"{row['id']}.wav")).frames == 5 * 16000
        assert 0.5 - 1e-3 <= float(row["offset_s"]) - float(row["onset_s"]) <= 2.5 + 1e-3
        assert float(row["offset_s"]) <= 5.0


def test_low_sample_rate_stays_below_nyquist(tmp_path):
    root = create_synthetic_dataset(
        tmp_path, classes=len(SIGNATURES), per_class=5, seed=4, sample_rate=8000, duration_s=0.5
    )
    _, truth = _read_csv(root / "meta" / "ground_truth.csv")
    for row in truth:
        target, sr = sf.read(root / row["target_path"])
        assert sr == 8000
        power = np.abs(np.fft.rfft(target)) ** 2
        freqs = np.fft.rfftfreq(len(target), 1 / sr)
        assert power[freqs > 3500].sum() < 0.01 * power.sum(), row["id"]


def test_rerun_reuses_and_refuses_to_mix(tmp_path):
    out = tmp_path / "data"
    args = {"classes": 2, "per_class": 5, "seed": 3, "duration_s": 0.5}
    create_synthetic_dataset(out, **args)
    hashes = _file_hashes(out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    # Same parameters: reused, nothing rewritten.
    assert create_synthetic_dataset(out, **args) == out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps

    # Other parameters into the same folder: refused, dataset untouched.
    with pytest.raises(ValueError, match="other parameters"):
        create_synthetic_dataset(out, **{**args, "seed": 4})
    assert _file_hashes(out) == hashes

    # Files named like a dataset's, without its params file or the mark a run keeps while it
    # writes (a copy of ESC-50's take-A clips, say): refused, left as they are.
    (out / "meta" / "synthetic_params.json").unlink()
    with pytest.raises(ValueError, match=r"named like a synthetic dataset's .*may be yours"):
        create_synthetic_dataset(out, **args)
    assert all(_file_hashes(out)[name] == digest for name, digest in hashes.items() if "params" not in name)

    # Killed run (its mark, no params file, half-written files left by the atomic writer,
    # one file missing): cleared and rewritten.
    (out / "meta" / ".synthetic_params.json.writing").write_text("{}")
    for name in ("audio/1-100000-A-0.wav", "sources/2-100001-A-0_background.wav"):
        (out / name).unlink()
        with open(partial_path(out / name), "wb") as fout:
            fout.write(b"partial")
    for name in ("meta/esc50.csv", "meta/synthetic_params.json"):
        with open(partial_path(out / name), "wb") as fout:
            fout.write(b"partial")
    with open(partial_path(out / "meta/ground_truth.csv", pid=4242), "wb") as fout:  # a second writer's
        fout.write(b"partial")
    (out / "audio" / "3-100002-A-0.wav.tmp").write_bytes(b"partial")  # earlier versions' name
    (out / "sources" / "1-100000-A-0_target.wav").unlink()
    create_synthetic_dataset(out, **args)
    assert _file_hashes(out) == hashes

    # A folder holding anything else is never mixed with a dataset.
    (out / "meta" / "synthetic_params.json").unlink()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not part of a synthetic dataset"):
        create_synthetic_dataset(out, **args)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "audio" / "1-100000-A-0.wav").is_file()

    foreign = tmp_path / "foreign"
    (foreign / "audio").mkdir(parents=True)
    (foreign / "audio" / "dog.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="not part of a synthetic dataset"):
        create_synthetic_dataset(foreign, **args)

    # A leftover of someone else's atomic write is not ours either.
    other = tmp_path / "other"
    (other / "audio").mkdir(parents=True)
    with open(partial_path(other / "audio" / "dog.wav"), "wb") as fout:
        fout.write(b"partial")
    with pytest.raises(ValueError, match="not part of a synthetic dataset"):
        create_synthetic_dataset(other, **args)
    assert os.path.isfile(partial_path(other / "audio" / "dog.wav"))


def test_cli(repo_root, tmp_path):
    out = tmp_path / "cli"
    command = [
        sys.executable,
        str(repo_root / "data_prep" / "synthetic_prepare.py"),
        "--out",
        str(out),
        "--classes",
        "2",
        "--per-class",
        "5",
        "--seed",
        "9",
        "--duration",
        "0.5",
        "--snr-db-range",
        "0",
        "3",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "2 classes x 5 clips" in lines[0], done.stdout
    params = json.loads((out / "meta" / "synthetic_params.json").read_text())
    assert (params["seed"], params["snr_db_range"], params["duration_s"]) == (9, [0.0, 3.0], 0.5)
    _, truth = _read_csv(out / "meta" / "ground_truth.csv")
    assert len(truth) == 10 and all(0.0 <= float(r["snr_db"]) <= 3.0 for r in truth)

    with pytest.raises(ValueError, match="multiple of 5"):  # same entry point, in-process
        main(["--out", str(tmp_path / "bad"), "--per-class", "7"])


def test_event_fade_rises_and_falls_by_hand():
    """8 samples: fades of min(10 ms, 8 // 4) = 2 samples, 0.5 - 0.5 cos(pi k / 3) for k = 1, 2
    (0.25, 0.75) in, the same reversed out."""
    from data_prep.synthesis import event_fade

    assert event_fade(8, 16000).tolist() == pytest.approx([0.25, 0.75, 1, 1, 1, 1, 0.75, 0.25])
