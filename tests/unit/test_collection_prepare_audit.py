"""Mutation audit of data_prep/collection_prepare.py (with the parts of data_prep/audio.py
and data_prep/files.py it uses): tests for what the other tests let a wrong edit through.

Every expected value is computed here by hand or with numpy / soundfile from the files
the writer leaves, never by the code under test: each written event is found in its
recording by cross-correlation and compared sample by sample with the recording (its
mean removed), faded and scaled; each background likewise with its crop; SNRs are
measured on the written sources; counts and messages are those the docstring promises.
The collections are a few seconds of seeded white noise and tones written to tmp_path.
"""

import csv
import logging
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.collection_prepare import (
    Recording,
    _pick_start,
    activity,
    create_collection_dataset,
    list_backgrounds,
    list_classes,
)

RATE = 16000
HOP = RATE // 100  # the 10 ms grid of cuts and crops
LSB = 1 / 32768  # one step of the 16-bit sources, as soundfile reads them
REPO = Path(__file__).resolve().parents[2]


def _white(seconds, seed, rms, rate=RATE):
    return rms * np.random.default_rng(seed).standard_normal(int(round(seconds * rate)))


def _tone(hz, seconds, rate=RATE, amplitude=0.5):
    return amplitude * np.sin(2 * np.pi * hz * np.arange(int(round(seconds * rate))) / rate)


def _write(path, signal, rate=RATE):
    """32-bit float wav: read back exactly as written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(signal, dtype=np.float32), rate, subtype="FLOAT")


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fin:
        return list(csv.DictReader(fin))


def _locate(part, recording):
    """Where `part` lies in `recording`: the start of the best normalised cross-correlation."""
    n = len(recording) + len(part)
    size = 1 << (n - 1).bit_length()
    dots = np.fft.irfft(np.fft.rfft(recording, size) * np.conj(np.fft.rfft(part, size)), size)
    dots = dots[: len(recording) - len(part) + 1]
    energy = np.concatenate([[0.0], np.cumsum(recording**2)])
    norms = np.sqrt(energy[len(part) :] - energy[: -len(part)]) * np.sqrt(np.sum(part**2))
    score = dots / np.maximum(norms, 1e-30)
    return int(np.argmax(score)), float(np.max(score))


def _fit(written, reference):
    """Least-squares gain of `reference` onto `written`, and the largest residual."""
    gain = float(np.dot(written, reference) / np.dot(reference, reference))
    return gain, float(np.max(np.abs(written - gain * reference)))


# ---------------------------------------------------------------------------
# Every clip, sample by sample, against the recordings it was cut from
# ---------------------------------------------------------------------------

TARGET_DC, BACKGROUND_DC = 0.2, -0.3
QUIET_S = 0.8  # each target recording: 0.8 s at -40 dB, then 1.2 s of loud noise


@pytest.fixture(scope="module")
def cut(tmp_path_factory):
    """2 classes x 10 clips of 1 s, SNR 10-20 dB, and the recordings without their offsets."""
    root = tmp_path_factory.mktemp("cut")
    recordings = {}
    for index, name in enumerate(("alpha", "beta")):
        x = np.concatenate([_white(QUIET_S, 10 + index, 1e-3), _white(1.2, 20 + index, 0.1)])
        _write(root / "targets" / f"{name}.wav", x + TARGET_DC)
        recordings[name] = x + TARGET_DC
    # Two backgrounds: 1 s of noise at RMS 0.1 and 1 s at -30 dB (not silent, but 10 dB under
    # the active threshold), the loud half first in one, last in the other.
    loud, quiet = _white(1.0, 30, 0.1), _white(1.0, 31, 0.1 * 10 ** (-30 / 20))
    for name, x in (
        ("loud_first.wav", np.concatenate([loud, quiet])),
        ("loud_last.wav", np.concatenate([quiet[::-1], loud[::-1]])),
    ):
        _write(root / "backgrounds" / name, x + BACKGROUND_DC)
        recordings[name] = x + BACKGROUND_DC
    out = create_collection_dataset(
        root / "targets",
        root / "backgrounds",
        root / "data",
        per_class=10,
        duration_s=1.0,
        snr_db_range=(10.0, 20.0),
        seed=3,
    )
    # What the docstring promises is cut: the recording minus its mean (float64 here).
    recordings = {name: (x.astype(np.float32).astype(np.float64)) for name, x in recordings.items()}
    recordings = {name: x - x.mean() for name, x in recordings.items()}
    esc50 = {row["filename"][: -len(".wav")]: row for row in _rows(out / "meta" / "esc50.csv")}
    clips = []
    for row in _rows(out / "meta" / "ground_truth.csv"):
        target, _ = sf.read(str(out / row["target_path"]))
        background, _ = sf.read(str(out / row["background_path"]))
        onset, offset = round(float(row["onset_s"]) * RATE), round(float(row["offset_s"]) * RATE)
        event = target[onset:offset]
        recording = recordings[esc50[row["id"]]["category"]]
        start, _ = _locate(event, recording)
        matches = {
            name: _locate(background, recordings[name])
            for name in ("loud_first.wav", "loud_last.wav")
        }
        bg_name = max(matches, key=lambda name: matches[name][1])
        crop, _ = matches[bg_name]
        clips.append(
            dict(
                row=row,
                target=target,
                background=background,
                onset=onset,
                offset=offset,
                event=event,
                recording=recording,
                start=start,
                bg_name=bg_name,
                bg_recording=recordings[bg_name],
                crop=crop,
            )
        )
    return clips


def test_each_event_is_the_recording_without_its_offset_faded_and_scaled(cut):
    """Inside [onset, offset) the target is the recording minus its mean, times one gain and
    10 ms raised-cosine fades, to half a 16-bit step; zero outside. Kills: DC offset not
    removed (remove_dc a no-op, or not called on read), no fade."""
    fade = HOP  # 10 ms
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, fade + 1) / (fade + 1))  # raised cosine, by hand
    for clip in cut:
        event, length = clip["event"], len(clip["event"])
        piece = clip["recording"][clip["start"] : clip["start"] + length]
        gain, residual = _fit(event[fade:-fade], piece[fade:-fade])
        assert residual <= 1.01 * LSB / 2 + 1e-6, clip["row"]["id"]  # rounding to 16 bits only
        envelope = np.ones(length)
        envelope[:fade], envelope[-fade:] = ramp, ramp[::-1]
        assert np.max(np.abs(event - gain * envelope * piece)) <= LSB, clip["row"]["id"]
        assert np.all(clip["target"][: clip["onset"]] == 0) and np.all(
            clip["target"][clip["offset"] :] == 0
        )


def test_events_start_on_the_grid_in_the_sound_and_spread_over_it(cut):
    """A start is a multiple of 10 ms whose first frame and window are active: here at or after
    0.8 s, the end of the quiet part; the starts, the lengths and the onsets are drawn, not fixed.
    Kills: start in frames (no `hop *`), first frame not required active (either call), the
    last frame checked instead of the first, always the first candidate, onset always 0,
    the event sliced one sample late."""
    starts = [clip["start"] for clip in cut]
    assert all(start % HOP == 0 for start in starts), starts
    assert all(start >= QUIET_S * RATE for start in starts), starts
    assert len(set(starts)) >= 5, starts
    assert all(clip["start"] + len(clip["event"]) <= 2 * RATE for clip in cut)
    assert len({len(clip["event"]) for clip in cut}) >= 5
    onsets = [clip["onset"] for clip in cut]
    assert len(set(onsets)) >= 5 and all(
        0 <= o and c["offset"] <= RATE for o, c in zip(onsets, cut)
    ), onsets


def test_backgrounds_are_grid_crops_uniformly_and_sound_under_the_event(cut):
    """Each background is its recording (mean removed) cropped on the 10 ms grid and scaled;
    both recordings are used; over the event's 10 ms frames the recording's power is not
    silent: at least 1/200 of the loud half's (the rule allows down to about 1/100, 20 dB
    below the active level), never the -30 dB half alone (1/1000).
    Kills: the crop one sample late, always the first background, the background's window
    not placed under the event (onset ignored), window sums instead of means."""
    names = [clip["bg_name"] for clip in cut]
    assert min(names.count("loud_first.wav"), names.count("loud_last.wav")) >= 3, names
    for clip in cut:
        assert clip["crop"] % HOP == 0, (clip["row"]["id"], clip["crop"])
        piece = clip["bg_recording"][clip["crop"] : clip["crop"] + RATE]
        _, residual = _fit(clip["background"], piece)
        assert residual <= 1.01 * LSB / 2 + 1e-6, clip["row"]["id"]
        # The event's whole 10 ms frames, on the grid: from the frame holding the onset.
        first = HOP * (clip["onset"] // HOP)
        under = piece[first : first + HOP * ((clip["offset"] - clip["onset"]) // HOP)]
        loud = 0.1**2  # the active level is about this; the -30 dB half is 0.001 of it
        assert np.mean(under**2) >= 0.005 * loud, (clip["row"]["id"], np.mean(under**2) / loud)


def test_a_background_silent_under_the_event_is_drawn_again_or_refused(tmp_path, caplog):
    """Found by a probe: a 10 s background with sound in its first 20 ms only passed (its
    loudest crop was taken when none had sound under the event), and the SNR set against its
    silence scaled the event to a few LSB: clips of nothing labelled with a class. Now such a
    draw takes another background, with a warning naming it; backgrounds that are all like it
    are refused, naming the fix."""
    burst = np.concatenate([_white(0.02, 40, 0.3), np.zeros(int(9.98 * RATE))])
    _write(tmp_path / "targets" / "alpha.wav", _white(1.5, 41, 0.1))
    _write(tmp_path / "targets" / "beta.wav", _white(1.5, 42, 0.1))
    _write(tmp_path / "backgrounds" / "burst.wav", burst)
    _write(tmp_path / "backgrounds" / "noise.wav", _white(3.0, 43, 0.1))
    with caplog.at_level(logging.WARNING):
        out = create_collection_dataset(
            tmp_path / "targets", tmp_path / "backgrounds", tmp_path / "data", per_class=5, duration_s=1.0, seed=3
        )
    assert "No crop of the background burst.wav has sound under a" in caplog.text
    for row in _rows(out / "meta" / "ground_truth.csv"):
        assert row["background_recording"] == "noise.wav", row["id"]
        target, _ = sf.read(str(out / row["target_path"]))
        assert np.abs(target).max() > 0.05, row["id"]  # the event is heard, not a few LSB
    (tmp_path / "backgrounds" / "noise.wav").unlink()
    with pytest.raises(ValueError, match=r"^20 background draws in a row had no sound under a .* Trim their silences"):
        create_collection_dataset(
            tmp_path / "targets", tmp_path / "backgrounds", tmp_path / "data2", per_class=5, duration_s=1.0, seed=3
        )


def test_snr_is_drawn_from_the_range_and_measured_on_the_sources(cut):
    """snr_db_range (10, 20): every SNR in it, spread over it, and the written sources' power
    ratio over [onset, offset) is that SNR, as written (4 decimals). Kills: the SNR halved or
    negated, the SNR written to 1 decimal."""
    snrs = [float(clip["row"]["snr_db"]) for clip in cut]
    assert all(10.0 <= snr <= 20.0 for snr in snrs), snrs
    assert max(snrs) - min(snrs) > 3.0, snrs
    for clip, snr in zip(cut, snrs):
        span = slice(clip["onset"], clip["offset"])
        measured = 10 * np.log10(
            np.sum(clip["target"][span] ** 2) / np.sum(clip["background"][span] ** 2)
        )
        assert abs(measured - snr) < 0.01, (clip["row"]["id"], measured, snr)  # written to 1e-4 dB


# ---------------------------------------------------------------------------
# Which recordings are used, and how often
# ---------------------------------------------------------------------------


def test_recordings_are_drawn_by_length_and_an_exact_minimum_length_is_usable(tmp_path, caplog):
    """Class alpha: a 0.5 s recording (exactly the shortest event, 500 Hz) and a 4 s one
    (2000 Hz): drawn with probabilities 1/9 and 8/9, so 40 clips hold the short one about
    4 times (binomial(40, 1/9): 1 to 10 with probability 0.99), not 20 as a uniform draw
    would. Class beta is one recording of 8001 samples (50 whole frames and one sample).
    The only background is exactly 1 s. Nothing is skipped. Kills: the draw uniform over
    recordings, a recording of exactly the minimum (target or background) refused (`<=`,
    targets needing a clip's length), the longest length never drawn, the event not capped
    by the recording, the last start or crop excluded, the window counting the event's
    partial last frame (an index past the recording's frames)."""
    _write(tmp_path / "targets" / "alpha" / "short.wav", _tone(500.0, 0.5))
    _write(tmp_path / "targets" / "alpha" / "long.wav", _tone(2000.0, 4.0))
    _write(tmp_path / "targets" / "beta.wav", _tone(1200.0, 8001 / RATE))  # 50 frames + 1 sample
    _write(tmp_path / "backgrounds" / "noise.wav", _white(1.0, 1, 0.1))
    with caplog.at_level(logging.INFO, logger="data_prep.collection_prepare"):
        out = create_collection_dataset(
            tmp_path / "targets",
            tmp_path / "backgrounds",
            tmp_path / "data",
            per_class=40,
            duration_s=1.0,
            seed=1,
        )
    assert "0 unusable recordings skipped" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    categories = {row["filename"]: row["category"] for row in _rows(out / "meta" / "esc50.csv")}
    short = 0
    for row in _rows(out / "meta" / "ground_truth.csv"):
        if categories[row["id"] + ".wav"] != "alpha":
            continue
        target, _ = sf.read(str(out / row["target_path"]))
        spectrum = np.abs(np.fft.rfft(target))
        peak_hz = np.fft.rfftfreq(len(target), 1 / RATE)[np.argmax(spectrum)]
        assert abs(peak_hz - 500) < 20 or abs(peak_hz - 2000) < 20, peak_hz
        short += abs(peak_hz - 500) < 20
    assert 1 <= short <= 10, short


def _skips_collection(root, rate):
    targets, backgrounds = root / "targets", root / "backgrounds"
    _write(targets / "alpha" / "good.wav", _tone(500.0, 1.0, rate), rate)
    _write(targets / "alpha" / "nan.wav", np.full(rate, np.nan), rate)  # no finite sample
    quiet = 3e-4 * np.sign(_tone(700.0, 1.0, rate))  # peak -70.5 dBFS: quiet, not silent
    _write(targets / "alpha" / "quiet.wav", quiet, rate)
    _write(targets / "beta" / "good.wav", _tone(2000.0, 1.0, rate), rate)
    _write(targets / "beta" / "offset.wav", np.full(rate, 0.25), rate)  # a DC offset only: silent
    _write(backgrounds / "noise.wav", _white(1.0, 2, 0.1, rate), rate)
    (backgrounds / "notes.txt").write_text("recorded at the farm")
    return targets, backgrounds


def test_unusable_recordings_are_skipped_named_and_counted_and_short_clips_cap_the_event(
    tmp_path, caplog
):
    """An all-NaN file, a DC-only file and a text file are skipped with a warning each, and
    the log counts 3 skips over the classes and the backgrounds; a recording peaking at
    -70 dBFS is not silent (the limit is -80). Clips of 0.511 s at 22050 Hz are
    round(11267.55) = 11268 samples, and the event is 75 % of that, round(8451.0) = 8451
    samples (below the 0.5 s minimum, which it caps). Kills: the all-NaN ValueError not
    caught, the silence limit at -60 dB, the dBFS of the message, skips not counted (or
    counted for the last folder only), the clip length truncated, the minimum event not
    capped by the clip, the DC offset not removed (offset.wav would not be silent)."""
    rate = 22050
    targets, backgrounds = _skips_collection(tmp_path, rate)
    with caplog.at_level(logging.INFO, logger="data_prep.collection_prepare"):
        out = create_collection_dataset(
            targets,
            backgrounds,
            tmp_path / "data",
            per_class=5,
            duration_s=0.511,
            sample_rate=rate,
            seed=4,
        )
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "data_prep.collection_prepare"
    ]
    assert len(warnings) == 3, warnings
    assert any("nan.wav" in w and "no finite sample" in w and "'alpha'" in w for w in warnings), (
        warnings
    )
    assert any("offset.wav is silent (no sample reaches -80 dBFS)" in w for w in warnings), warnings
    assert any("notes.txt is not audio" in w for w in warnings), warnings
    assert "3 unusable recordings skipped" in caplog.text
    for row in _rows(out / "meta" / "ground_truth.csv"):
        assert sf.info(str(out / row["target_path"])).frames == 11268
        onset, offset = round(float(row["onset_s"]) * rate), round(float(row["offset_s"]) * rate)
        assert offset - onset == 8451, row


def test_the_fix_says_how_long_a_recording_must_be(tmp_path):
    """Clips of 1 s: a target must last 0.50 s (the shortest event), a background 1 s.
    Kills: either length in the message wrong."""
    targets, backgrounds = tmp_path / "targets", tmp_path / "backgrounds"
    _write(targets / "a.wav", _tone(500.0, 0.3))
    _write(targets / "b.wav", _tone(900.0, 1.0))
    _write(backgrounds / "noise.wav", _white(2.0, 0, 0.1))
    with pytest.raises(
        ValueError,
        match=r"class 'a' has no usable recording: .*Give it recordings of at least 0\.50 s",
    ):
        create_collection_dataset(
            targets, backgrounds, tmp_path / "out", per_class=5, duration_s=1.0
        )
    _write(targets / "a.wav", _tone(500.0, 1.0))
    _write(backgrounds / "noise.wav", _white(0.6, 0, 0.1))
    with pytest.raises(
        ValueError, match=r"Give background recordings at least 1 s long \(they are not looped\)"
    ):
        create_collection_dataset(
            targets, backgrounds, tmp_path / "out", per_class=5, duration_s=1.0
        )
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# The folders: names, hidden entries, where the dataset may go
# ---------------------------------------------------------------------------


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_hidden_means_hidden_below_the_folder_given(tmp_path):
    """A collection kept under a hidden folder (~/.local/share/...) is read whole; a hidden
    sub-folder inside a class is not part of it. Kills: the dot test on the absolute path,
    the dot test on the file name only."""
    root = tmp_path / ".local" / "collection"
    for rel in (
        "targets/dog/a.wav",
        "targets/dog/.cache/b.wav",
        "targets/cat.wav",
        "backgrounds/x/rain.wav",
    ):
        _touch(root / rel)
    classes = list_classes(root / "targets")
    assert {name: [p.name for p in paths] for name, paths in classes.items()} == {
        "cat": ["cat.wav"],
        "dog": ["a.wav"],
    }
    assert [p.name for p in list_backgrounds(root / "backgrounds")] == ["rain.wav"]


def test_classes_are_sorted_by_name_not_by_entry(tmp_path):
    """Entries "a-b/" and "a.wav" sort as a-b < a.wav ('-' < '.'), their classes as a < a-b:
    target 0 is "a". Kills: the classes left in the order of the entries."""
    _touch(tmp_path / "a-b" / "x.wav")
    _touch(tmp_path / "a.wav")
    assert list(list_classes(tmp_path)) == ["a", "a-b"]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (("dog.wav", "dog/a.wav"), r"Class 'dog' is given twice .*\(dog and dog\.wav\)"),
        (('a"b.wav', "c.wav"), r"Class name 'a\"b' .*cannot be written to esc50\.csv"),
    ],
)
def test_a_class_given_twice_or_with_a_quote_is_refused(tmp_path, entries, message):
    """Kills: the duplicate check removed (one class silently replacing the other), the
    quote dropped from the characters esc50.csv cannot hold (it is not quoted)."""
    for rel in entries:
        _touch(tmp_path / rel)
    with pytest.raises(ValueError, match=message):
        list_classes(tmp_path)


def test_the_dataset_is_never_written_inside_the_backgrounds_or_a_relative_path_to_the_targets(
    tmp_path, monkeypatch
):
    """Kills: only --targets checked, the check on unresolved paths (a relative out_dir)."""
    targets, backgrounds = tmp_path / "targets", tmp_path / "backgrounds"
    _write(targets / "a.wav", _tone(500.0, 1.0))
    _write(targets / "b.wav", _tone(900.0, 1.0))
    _write(backgrounds / "noise.wav", _white(2.0, 0, 0.1))
    with pytest.raises(ValueError, match=r"inside --backgrounds"):
        create_collection_dataset(
            targets, backgrounds, backgrounds / "data", per_class=5, duration_s=1.0
        )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"inside --targets"):
        create_collection_dataset(
            targets, backgrounds, Path("targets") / "data", per_class=5, duration_s=1.0
        )
    assert sorted(p.name for p in targets.iterdir()) == ["a.wav", "b.wav"]
    assert sorted(p.name for p in backgrounds.iterdir()) == ["noise.wav"]


def test_a_window_is_the_mean_of_all_its_frames_by_hand():
    """Frame powers (0, 0, 0, 1), windows of 2 frames: means 0, 0, 0.5; at the threshold 0.5
    only the window from frame 2 is active (the one whose last frame sounds): start 2,
    whatever the draw. Kills: the window's last frame left out."""
    power = np.array([0.0, 0.0, 0.0, 1.0])
    recording = Recording(
        Path("r.wav"),
        np.zeros(40, np.float32),
        power,
        np.concatenate([[0.0], np.cumsum(power)]),
        0.5,
    )
    for seed in range(5):
        assert _pick_start(np.random.default_rng(seed), recording, 3, 0, 2, active_start=False) == 2


def test_activity_takes_the_ceiling_of_a_tenth_of_the_frames_by_hand():
    """15 frames of 10 ms at 10 kHz: 13 silent, powers 1 and 0.25. The loudest ceil(1.5) = 2
    frames have mean power 0.625: the threshold is 0.625 x 10^(-20/10) = 0.00625 (a floor
    would take 1 frame: 0.01). Kills: floor for ceil."""
    x = np.concatenate([np.zeros(1300), np.ones(100), np.full(100, 0.5)])
    _, _, threshold = activity(x, 10000)
    assert threshold == pytest.approx(0.00625)


def test_the_command_line_reports_a_missing_folder_without_a_traceback(tmp_path, monkeypatch):
    """The script run as `python data_prep/collection_prepare.py` with a --targets that does
    not exist exits with one line, not a traceback. Kills: FileNotFoundError left out of
    the handler."""
    argv = [
        "collection_prepare.py",
        "--targets",
        str(tmp_path / "missing"),
        "--backgrounds",
        str(tmp_path),
    ]
    monkeypatch.setattr(sys, "argv", argv + ["--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "data_prep" / "collection_prepare.py"), run_name="__main__")
    message = str(exit_info.value.code)
    assert (
        message.startswith("collection_prepare: error: --targets ")
        and "missing is not a folder" in message
    )
    assert not (tmp_path / "out").exists()
