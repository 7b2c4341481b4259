"""Mutation audit of the ground-truth benchmark builder (data_prep/collection_prepare.py and
the writer of data_prep/synthetic_prepare.py it calls): tests for the wrong edits that
test_collection_prepare.py and test_collection_prepare_audit.py let through.

Expected values come from the module docstring, computed here by hand or with numpy /
soundfile: frame powers and thresholds by numpy, draw ranges by the stated formulas,
provenance checked against the recordings, reruns against the files left on disk. The
recordings are a few seconds of seeded noise and tones written to tmp_path.
"""

import csv
import hashlib
import math

import numpy as np
import pytest
import soundfile as sf

from data_prep.collection_prepare import (
    Recording,
    _pick_start,
    activity,
    create_collection_dataset,
    cut_clip,
    read_recording,
)

RATE = 16000
HOP = RATE // 100


def _write(path, signal, rate=RATE):
    """32-bit float wav: read back exactly as written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(signal, dtype=np.float32), rate, subtype="FLOAT")


def _recording(samples, hop=HOP, name="x.wav"):
    """A Recording with its activity computed here by numpy (10 ms frames, the threshold
    20 dB under the mean power of the loudest ceil(10 %) of frames)."""
    samples = np.asarray(samples, dtype=np.float32)
    n_frames = len(samples) // hop
    power = (samples[: n_frames * hop].astype(np.float64).reshape(n_frames, hop) ** 2).mean(axis=1)
    loudest = np.sort(power)[::-1][: math.ceil(n_frames / 10)]
    cumulative = np.concatenate([[0.0], np.cumsum(power)])
    return Recording(None, samples, power, cumulative, 0.01 * loudest.mean(), name)


def _noise(seconds, seed, rms=0.1, rate=RATE):
    x = rms * np.random.default_rng(seed).standard_normal(int(round(seconds * rate)))
    return x - x.mean()


def _small_collection(root, rate=RATE):
    """targets/{cat,dog}.wav (1.5 s of noise each) and backgrounds/bg.wav (2 s)."""
    _write(root / "targets" / "cat.wav", _noise(1.5, 1, rate=rate), rate)
    _write(root / "targets" / "dog.wav", _noise(1.5, 2, rate=rate), rate)
    _write(root / "backgrounds" / "bg.wav", _noise(2.0, 3, 0.05, rate=rate), rate)
    return root / "targets", root / "backgrounds"


# ---------------------------------------------------------------------------
# The analysis grid and the silence rule
# ---------------------------------------------------------------------------


def test_the_frame_is_10_ms_rounded_at_a_rate_that_is_not_a_multiple_of_100():
    """At 8070 Hz a 10 ms frame is round(80.7) = 81 samples: 8100 samples are 100 frames
    (a truncated 80-sample frame would give 101)."""
    frame_power, cumulative_power, _ = activity(np.ones(8100), 8070)
    assert len(frame_power) == 100 and len(cumulative_power) == 101


def test_a_window_exactly_at_the_threshold_is_not_silent():
    """At most 20 dB below the active level: a window whose mean power equals the
    threshold qualifies (its first frame too)."""
    power = np.array([0.0, 0.25])
    recording = Recording(None, np.zeros(2), power, np.array([0.0, 0.0, 0.25]), 0.25)
    rng = np.random.default_rng(0)
    assert _pick_start(rng, recording, 2, 0, 1, active_start=True, fallback=False) == 1
    assert _pick_start(rng, recording, 2, 0, 1, active_start=False, fallback=False) == 1


# ---------------------------------------------------------------------------
# The draws of one clip: their ranges, by hand
# ---------------------------------------------------------------------------


class HighestRng:
    """A stand-in Generator that always draws the largest value allowed."""

    def integers(self, low, high=None):
        return (low if high is None else high) - 1

    def choice(self, n, p=None):
        return n - 1

    def uniform(self, low, high):
        return high


def test_the_event_can_end_on_the_last_sample_of_the_clip():
    """The onset is uniform over 0 .. n - length (inclusive): a 0.75 s event in a 1 s clip
    can start at sample 4000 and end on sample 16000."""
    n, length = RATE, 12000  # the longest event of a 1 s clip, and the recording's length
    event = _recording(_noise(0.75, 1))
    background = _recording(_noise(1.0, 2))
    clip = cut_clip(HighestRng(), [event], [background], n, RATE, (0.0, 6.0))
    assert (clip.onset, clip.offset, clip.snr_db) == (n - length, n, 6.0)
    assert not clip.target[: n - length].any() and clip.target[n - HOP :].any()


def test_a_background_crop_may_start_quietly_under_the_event():
    """Only the mean power of the background under the event counts, not its first frame:
    the event of the highest draws spans frames 25..99 of the clip, and a background whose
    frame 25 is silent (the others sound) is cropped there, not refused as silent."""
    n, length = RATE, 12000
    samples = _noise(1.0, 2)
    samples[25 * HOP : 26 * HOP] = 0.0
    clip = cut_clip(
        HighestRng(), [_recording(_noise(0.75, 1))], [_recording(samples)], n, RATE, (0.0, 0.0)
    )
    assert (clip.onset, clip.offset) == (n - length, n)
    assert not clip.background[25 * HOP : 26 * HOP].any() and clip.background[26 * HOP :].any()


# ---------------------------------------------------------------------------
# Unusable recordings: why
# ---------------------------------------------------------------------------


def test_a_stereo_constant_of_opposite_signs_is_silent_not_cancelling(tmp_path):
    """A constant is silence: channels +0.5 and -0.5 cancel, but without their means each
    is 0, so the recording is silent, not "channels cancel"."""
    path = tmp_path / "dc.wav"
    sf.write(
        str(path),
        np.stack([np.full(RATE, 0.5), np.full(RATE, -0.5)], axis=1),
        RATE,
        subtype="FLOAT",
    )
    recording, why = read_recording(path, RATE, 0)
    assert recording is None and why.startswith("is silent (no sample reaches -80 dBFS)")


def test_channels_that_cancel_are_named_so_even_with_a_nan_sample(tmp_path):
    """NaN reads as 0: a tone and its inverse, one NaN where the tone is 0, still cancel."""
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)
    stereo = np.stack([tone, -tone], axis=1)
    stereo[0, 0] = np.nan  # tone[0] == 0
    path = tmp_path / "nan.wav"
    sf.write(str(path), stereo, RATE, subtype="FLOAT")
    recording, why = read_recording(path, RATE, 0)
    assert recording is None and why == "is silent once downmixed to mono (its channels cancel)"


def test_a_mono_file_silent_once_resampled_is_called_silent(tmp_path):
    """One sample at 2e-4 (above -80 dBFS) at 48 kHz is under 1e-4 at 16 kHz (the low-pass
    spreads it over 3 samples): silent, and a mono file has no channels to cancel."""
    x = np.zeros(48000)
    x[24000] = 2e-4
    path = tmp_path / "click.wav"
    sf.write(str(path), x, 48000, subtype="FLOAT")
    recording, why = read_recording(path, RATE, 0)
    assert recording is None and why.startswith("is silent (no sample reaches")


# ---------------------------------------------------------------------------
# Provenance at a rate whose 10 ms grid is not a round number of ms
# ---------------------------------------------------------------------------


def test_provenance_starts_are_exact_grid_points_at_22050_hz(tmp_path):
    """At 22050 Hz the grid is 220 samples (9.977 ms): each start in ground_truth.csv,
    times the rate, is a multiple of 220 to within 1e-6 s, and the written background is
    the recording from there, scaled."""
    rate, hop = 22050, 220
    targets, backgrounds = _small_collection(tmp_path, rate)
    out = create_collection_dataset(
        targets,
        backgrounds,
        tmp_path / "data",
        per_class=5,
        duration_s=0.5,
        sample_rate=rate,
        seed=4,
    )
    bg, _ = sf.read(str(backgrounds / "bg.wav"))
    bg = bg - bg.astype(np.float32).astype(np.float64).mean()
    with open(out / "meta" / "ground_truth.csv", newline="") as fin:
        rows = list(csv.DictReader(fin))
    assert len(rows) == 10
    for row in rows:
        for column in ("event_start_s", "background_start_s"):
            at = float(row[column]) * rate
            assert abs(at - round(at)) < 1e-6 * rate and round(at) % hop == 0
        crop = round(float(row["background_start_s"]) * rate)
        written, _ = sf.read(str(out / row["background_path"]))
        reference = bg[crop : crop + len(written)]
        gain = np.dot(written, reference) / np.dot(reference, reference)
        assert np.max(np.abs(written - gain * reference)) <= 1 / 32768


# ---------------------------------------------------------------------------
# Reruns: what "complete" and "the same recordings" mean
# ---------------------------------------------------------------------------


def _hashes(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def built(tmp_path):
    targets, backgrounds = _small_collection(tmp_path)
    args = dict(per_class=5, duration_s=0.5, seed=1)
    out = create_collection_dataset(targets, backgrounds, tmp_path / "data", **args)
    return targets, backgrounds, out, args


def test_a_missing_background_source_or_a_short_esc50_csv_is_written_again(built):
    """A dataset is complete when esc50.csv lists every clip and each clip's mixture,
    target and background exist: otherwise the run writes it again, byte for byte."""
    targets, backgrounds, out, args = built
    hashes = _hashes(out)
    (out / "sources" / "1-100000-A-0_background.wav").unlink()
    create_collection_dataset(targets, backgrounds, out, **args)
    assert _hashes(out) == hashes
    esc50 = out / "meta" / "esc50.csv"
    esc50.write_text("".join(esc50.read_text().splitlines(keepends=True)[:-1]))
    create_collection_dataset(targets, backgrounds, out, **args)
    assert _hashes(out) == hashes


def test_bytes_moved_across_two_recordings_are_other_recordings(built):
    """The collection's SHA-256 covers each file's name and content: moving bytes from the
    start of dog.wav to the end of cat.wav (at a zero byte, so the concatenation of the
    contents with a separator is unchanged) changes it, and the rerun is refused."""
    targets, backgrounds, out, args = built
    cat, dog = (targets / "cat.wav").read_bytes(), (targets / "dog.wav").read_bytes()
    assert dog[7] == 0  # the high byte of the RIFF size of a small file
    (targets / "cat.wav").write_bytes(cat + b"\0" + dog[:7])
    (targets / "dog.wav").write_bytes(dog[8:])
    with pytest.raises(ValueError, match="other parameters.*collection_sha256"):
        create_collection_dataset(targets, backgrounds, out, **args)
