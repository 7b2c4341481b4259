"""Mutation audit of the embedded synthetic benchmark: data_prep/synthesis.py (events,
backgrounds, mixing at an SNR), data_prep/synthetic_prepare.py (the writer: files, csv
files, folds, parameters, reuse) and data_prep/interference.py (what an evaluation mixes
into the clips): tests for what the other tests let a wrong edit through.

Every expected value is computed here by hand or with numpy / soundfile from the files the
writer leaves, never by the code under test: the steady tone of a clip is rebuilt from the
generator's first draws (the draw order the module docstring documents: event duration,
onset, pitch, rate, phase) as a 700 Hz sine with hand-made raised-cosine fades and fitted to
the written target, which pins the onset, the offset, the fades and the frequency to the
sample; a whole steady-tone clip (its background's coloured noise, hum and bursts too) is
rebuilt with plain numpy from the module docstring's recipe; each signature's band, peak
frequency and repetition rate are measured on its spectrum against the figures the
`SIGNATURES` comments give; the SNR is measured on the 16-bit sources as written; the peak, the lengths, the
folds and the file names are worked out from the documented rules; the mixing and the
overlap of `data_prep.interference` are checked on hand-made signals. The datasets are a
few tenths of a second long, written to tmp_path.
"""

import csv
import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from data_prep.interference import Interference, overlap_parts, pair_different_classes
from data_prep.synthesis import (
    SIGNATURES,
    event_fade,
    mix_at_snr,
    synthesize_clip,
    synthesize_event,
)
from data_prep.synthetic_prepare import check_output_folder, create_synthetic_dataset

FULL_SCALE = 32768  # soundfile reads PCM_16 as int / 32768
PEAK_INT = round(0.9 * FULL_SCALE)  # 29491: the documented peak, 0.9 of full scale

# The audited dataset: 22.05 kHz (above 16 kHz, and not 16 kHz, so a hard-coded rate shows)
# and 0.7 s, whose 0.7 * 22050 = 15434.999999999998 samples round to 15435 (int() gives 15434).
RATE, DURATION, N_SAMPLES = 22050, 0.7, 15435
SEED, CLASSES, PER_CLASS, SNR_RANGE = 21, 2, 10, (-3.0, 6.0)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fin:
        return list(csv.DictReader(fin))


def _read_int(path):
    samples, rate = sf.read(path, dtype="int16")
    return samples.astype(np.int64), rate


def _snr_db(target, background, onset, offset):
    """Target-to-background power over [onset, offset), in dB, numpy on the given samples."""
    window = slice(onset, offset)
    return 10 * np.log10(np.sum(target[window] ** 2.0) / np.sum(background[window] ** 2.0))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit_synthetic") / "data"
    create_synthetic_dataset(
        root,
        classes=CLASSES,
        per_class=PER_CLASS,
        seed=SEED,
        sample_rate=RATE,
        snr_db_range=SNR_RANGE,
        duration_s=DURATION,
    )
    return root


# ---------------------------------------------------------------------------
# synthesis: where the event is, what it is, and at which SNR
# ---------------------------------------------------------------------------


def _hand_fade(n, rate):
    """min(10 ms, n // 4) samples of 0.5 - 0.5 cos(pi k / (m + 1)), k = 1..m, in and out."""
    m = max(1, min(round(0.01 * rate), n // 4))
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, m + 1) / (m + 1))
    envelope = np.ones(n)
    envelope[:m], envelope[n - m :] = ramp, ramp[::-1]
    return envelope


def _first_draws(rng, n):
    """The first draws of a steady-tone clip, by the documented order: (onset, offset,
    pitch factor, phase). The event lasts 10-50 % of the clip, the onset is uniform over
    the positions where it fits, the pitch is +-0.5 semitone."""
    event_n = max(round(rng.uniform(0.1, 0.5) * n), 4)
    onset = int(rng.integers(0, n - event_n + 1))
    jitter = 2.0 ** (rng.uniform(-0.5, 0.5) / 12.0)
    rng.uniform(-0.1, 0.1)  # the rate: no steady tone uses it
    phase = rng.uniform(0.0, 2 * np.pi)
    return onset, onset + event_n, jitter, phase


@pytest.mark.parametrize("rate, n", [(16000, 8000), (8000, 4000), (22050, 11025)])
@pytest.mark.parametrize("seed", [0, 3, 8])
def test_the_target_is_a_faded_700_hz_sine_exactly_at_the_drawn_onset(rate, n, seed):
    """The target of a steady-tone clip is c * fade * sin(2 pi 700 s j t + phase) on
    [onset, offset) to half a 16-bit step and zero elsewhere, s = min(1, rate / 16000) the
    frequency scale and j the pitch draw; the Clip's onset and offset are where it lies; the
    SNR it records is the power ratio of the written sources over that window (to 1e-3 dB).
    Kills: onset or offset one sample off, the fade 10 ms at any rate or not raised-cosine,
    700 Hz not scaled below 16 kHz (or scaled up above it), the pitch jitter in tones instead of
    semitones, the SNR from the background's power over the whole clip, an amplitude
    (20 log10) SNR."""
    onset, offset, jitter, phase = _first_draws(np.random.default_rng(seed), n)
    clip = synthesize_clip("steady_tone", np.random.default_rng(seed), n, rate, (-5.0, 5.0))
    assert (clip.onset, clip.offset) == (onset, offset)
    target = clip.target.astype(np.float64)
    assert not target[:onset].any() and not target[offset:].any()
    t = np.arange(offset - onset) / rate
    model = _hand_fade(offset - onset, rate) * np.sin(
        2 * np.pi * 700.0 * min(1.0, rate / 16000) * jitter * t + phase
    )
    event = target[onset:offset]
    gain = np.dot(event, model) / np.dot(model, model)
    assert np.max(np.abs(event - gain * model)) <= 0.6, (seed, rate)  # rounding to int16 only
    measured = _snr_db(target, clip.background.astype(np.float64), onset, offset)
    assert abs(measured - clip.snr_db) < 1e-3, (measured, clip.snr_db)


def _hand_band_noise(rng, n, low_hz, high_hz, rate):
    """Unit-RMS white noise in [low_hz, high_hz]: complex Gaussian rfft bins (real parts,
    then imaginary parts) at the next power of two, zero outside the band, cropped to n."""
    n_fft = 2 ** int(np.ceil(np.log2(n)))
    spectrum = rng.standard_normal(n_fft // 2 + 1) + 1j * rng.standard_normal(n_fft // 2 + 1)
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    noise = np.fft.irfft(np.where((freqs >= low_hz) & (freqs <= high_hz), spectrum, 0), n_fft)[:n]
    return noise / np.sqrt(np.mean(noise**2))


def _hand_steady_tone_clip(seed, n, rate, snr_range):
    """A whole steady-tone clip from the module docstring's recipe, written here with plain
    numpy: a faded 700 Hz sine; a background of 1/f^alpha noise (alpha in [1, 2], nothing
    below 20 Hz, unit RMS) + a 50 or 60 Hz hum with two harmonics (sum sin(k theta + p_k) / k,
    written directly) at -20..-8 dB + Hann-windowed 6.2-7.4 kHz bursts (0.4 per second,
    0.05-0.3 s, -6..0 dB); the SNR over the event; all three scaled to peak 0.9, as int16."""
    rng = np.random.default_rng(seed)
    onset, offset, jitter, phase = _first_draws(rng, n)
    t = np.arange(offset - onset) / rate
    event = np.sin(2 * np.pi * 700.0 * jitter * t + phase)
    event = event / np.sqrt(np.mean(event**2)) * _hand_fade(offset - onset, rate)

    alpha = rng.uniform(1.0, 2.0)
    freqs = np.arange(n // 2 + 1) * rate / n
    shape = np.where(freqs >= 20.0, np.maximum(freqs, 20.0) ** (-alpha / 2), 0.0)
    white = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    noise = np.fft.irfft(white * shape, n)
    background = noise / np.sqrt(np.mean(noise**2))
    hum_hz = 50.0 if rng.uniform() < 0.5 else 60.0
    phases = rng.uniform(0.0, 2 * np.pi, size=3)
    clock = np.arange(n) / rate
    hum = sum(np.sin(k * 2 * np.pi * hum_hz * clock + phases[k - 1]) / k for k in (1, 2, 3))
    background += 10 ** (rng.uniform(-20.0, -8.0) / 20) * hum / np.sqrt(np.mean(hum**2))
    bursts = rng.poisson(0.4 * n / rate)
    for _ in range(bursts):
        length = min(n, int(rng.uniform(0.05, 0.3) * rate))
        start = int(rng.integers(0, n - length + 1))
        level = 10 ** (rng.uniform(-6.0, 0.0) / 20)
        burst = _hand_band_noise(rng, length, 6200.0, 7400.0, rate) * np.hanning(length)
        background[start : start + length] += level * burst
    snr_db = rng.uniform(*snr_range)

    window = slice(onset, offset)
    gain = np.sqrt(np.mean(background[window] ** 2) / np.mean(event**2) * 10 ** (snr_db / 10))
    target = np.zeros(n)
    target[window] = gain * event
    scale = (
        0.9 * FULL_SCALE / max(np.abs(s).max() for s in (target, background, target + background))
    )
    return np.round(target * scale), np.round(background * scale), hum_hz, bursts, snr_db


@pytest.mark.parametrize("seed, hum_hz, bursts", [(0, 50.0, 1), (2, 60.0, 2)])
def test_a_whole_clip_is_the_documented_recipe_rebuilt_with_numpy(seed, hum_hz, bursts):
    """2 s at 16 kHz, seeds whose backgrounds hold a 50 Hz hum and one burst, a 60 Hz hum
    and two: the target and the background are, to one 16-bit step (float rounding at a
    half), the clip rebuilt by hand from the same generator, and the SNR is the one drawn.
    Kills: a wrong multiple-angle formula in the hum, another hum frequency, the burst
    band or level moved, the noise colour range changed, the event's polarity flipped, a
    draw added, dropped or moved (every later value changes)."""
    n, rate = 32000, 16000
    target, background, drawn_hum, drawn_bursts, snr_db = _hand_steady_tone_clip(
        seed, n, rate, (-5.0, 5.0)
    )
    assert (drawn_hum, drawn_bursts) == (hum_hz, bursts)  # the seeds cover what they claim
    clip = synthesize_clip("steady_tone", np.random.default_rng(seed), n, rate, (-5.0, 5.0))
    assert np.max(np.abs(clip.target - target)) <= 1
    assert np.max(np.abs(clip.background - background)) <= 1
    assert clip.snr_db == pytest.approx(snr_db, abs=1e-12)


# The signatures as SIGNATURES' comments give them at 16 kHz: the band holding the
# event's energy and, for the tonal ones, the frequency of its strongest component.
SIGNATURE_BANDS = {
    "steady_tone": ((700, 700), 700),
    "harmonic_stack": ((300, 3000), 300),  # 10 harmonics, 1/k
    "up_chirp": ((400, 4000), None),
    "down_chirp": ((400, 4000), None),
    "noise_burst": ((2000, 3200), None),
    "click_train": ((200, 3500), None),
    "am_tone": ((1193, 1207), 1200),  # 7 Hz tremolo: +-7 Hz sidebands
    "fm_tone": ((2000, 2400), None),
    "decaying_partials": ((500, 4465), 500),  # partials 1 to 8.93 of 500 Hz
    "tone_pips": ((3400, 3400), 3400),
    "trill": ((900, 1500), None),
    "square_buzz": ((210, 5000), 210),
    "gliding_harmonics": ((250, 2700), None),  # 6 harmonics of 250 -> 450 Hz
    "noise_pulses": ((4000, 5000), None),
    "whistle": ((4554, 4646), 4600),  # +-1 %
}


@pytest.mark.parametrize("rate", [16000, 8000])
@pytest.mark.parametrize("name", SIGNATURES)
def test_each_signature_sounds_at_its_documented_frequencies(name, rate):
    """1 s events, 3 seeds: at least 95 % of the (Hann-windowed) energy lies in the class's
    band, widened by the +-0.5 semitone pitch jitter (2 ** (1 / 24)) and 20 Hz of leakage,
    the strongest bin is the documented frequency to 3 %; at 8 kHz all of it is halved;
    an up chirp rises and a down chirp falls. Kills: a class frequency changed (e.g. the
    whistle at 4400 Hz), the chirps swapped, 8 kHz not scaled down."""
    (low, high), peak = SIGNATURE_BANDS[name]
    scale, jitter = min(1.0, rate / 16000), 2 ** (1 / 24)
    freqs = np.fft.rfftfreq(rate, 1 / rate)
    for seed in range(3):
        event = synthesize_event(name, np.random.default_rng(seed), rate, rate, scale)
        power = np.abs(np.fft.rfft(event * np.hanning(rate))) ** 2
        band = (freqs >= scale * low / jitter - 20) & (freqs <= scale * high * jitter + 20)
        assert power[band].sum() >= 0.95 * power.sum(), (seed, power[band].sum() / power.sum())
        if peak is not None:
            assert abs(freqs[np.argmax(power)] / (scale * peak) - 1) <= 0.03, seed
        if name.endswith("_chirp"):
            quarters = [
                np.abs(np.fft.rfft(part)) ** 2 for part in (event[: rate // 4], event[-rate // 4 :])
            ]
            centroids = [
                np.sum(q * np.fft.rfftfreq(rate // 4, 1 / rate)) / q.sum() for q in quarters
            ]
            assert (centroids[0] < centroids[1]) == (name == "up_chirp"), centroids


@pytest.mark.parametrize(
    "name, per_s", [("tone_pips", 1 / 0.16), ("noise_pulses", 1 / 0.15), ("am_tone", 7.0)]
)
def test_the_periodic_signatures_repeat_at_their_documented_rates(name, per_s):
    """2 s events, 3 seeds: the power envelope's strongest frequency above 2 Hz is the
    documented repetition rate (pips every 160 ms, pulses every 150 ms, 7 Hz tremolo) within
    the +-10 % rate jitter and one 0.5 Hz bin. Kills: a pip or pulse period changed (e.g.
    200 ms), the tremolo rate changed."""
    rate = 16000
    freqs = np.fft.rfftfreq(2 * rate, 1 / rate)
    for seed in range(3):
        event = synthesize_event(name, np.random.default_rng(seed), 2 * rate, rate, 1.0)
        envelope = np.abs(np.fft.rfft((event**2 - np.mean(event**2)) * np.hanning(2 * rate)))
        strongest = freqs[np.argmax(np.where(freqs >= 2.0, envelope, 0.0))]
        assert 0.9 * per_s - 0.5 <= strongest <= 1.1 * per_s + 0.5, (seed, strongest)


def test_clicks_come_every_50_ms():
    """A click train's autocorrelation peaks, over lags of 25-100 ms, at one period:
    1 / (20 clicks/s), within the +-10 % rate jitter (45.5-55.6 ms) and a millisecond.
    Kills: another click rate (e.g. 25 per second)."""
    rate = 16000
    for seed in range(3):
        clicks = synthesize_event("click_train", np.random.default_rng(seed), rate, rate, 1.0)
        lags = np.arange(int(0.025 * rate), int(0.1 * rate))
        correlation = [np.dot(clicks[:-lag], clicks[lag:]) for lag in lags]
        period = lags[int(np.argmax(correlation))] / rate
        assert 1 / 22 - 0.001 <= period <= 1 / 18 + 0.001, (seed, period)


def test_mix_at_snr_uses_the_window_power_and_the_mixture_peak_by_hand():
    """event (1, 1) at sample 1 over background (2, 0.5, 0.5, 2) at 0 dB: the window's
    background power is 0.25 (not the clip's 2.125), so the gain is 0.5 and the mixture is
    (2, 1, 1, 2); the peak 2 becomes 0.9 * 32768: scale 0.45, target round(0.5 * 0.45 *
    32768) = 7373, background 29491 and 7373, mixture their sum.
    event (1, -1) at 1 over 0.1 everywhere at 20 dB: gain sqrt(0.01 * 100) = 1, the mixture
    (0.1, 1.1, -0.9, 0.1) peaks at 1.1 (above the target's 1): scale 0.9 / 1.1, target
    round(26810.18) = 26810, background round(2681.02) = 2681.
    Kills: the background power over the whole clip, 10 ** (snr / 20), the peak without the
    mixture, the peak at 1.0 instead of 0.9, the mixture rounded instead of summed."""
    target, background, mixture = mix_at_snr(np.ones(2), np.array([2.0, 0.5, 0.5, 2.0]), 1, 0.0)
    assert target.tolist() == [0, 7373, 7373, 0]
    assert background.tolist() == [29491, 7373, 7373, 29491]
    assert mixture.tolist() == [29491, 14746, 14746, 29491]
    target, background, mixture = mix_at_snr(np.array([1.0, -1.0]), np.full(4, 0.1), 1, 20.0)
    assert target.tolist() == [0, 26810, -26810, 0]
    assert background.tolist() == [2681] * 4
    assert mixture.tolist() == [2681, 29491, -24129, 2681]
    assert target.dtype == background.dtype == mixture.dtype == np.int16


def test_event_fades_are_10_ms_at_the_rate_by_hand():
    """1000 samples: 10 ms is 160 samples at 16 kHz and 80 at 8 kHz (n // 4 = 250 is not the
    limit); the ramp is 0.5 - 0.5 cos(pi k / 161), k = 1..160, so sample 159 is
    0.5 - 0.5 cos(160 pi / 161) < 1 and sample 160 is 1. Kills: the fade in samples not
    seconds, a fade of n // 4 always, the ramp reaching 1 on its last sample (k / n_fade)."""
    for rate, m in [(16000, 160), (8000, 80)]:
        fade = event_fade(1000, rate)
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, m + 1) / (m + 1))
        assert fade[:m] == pytest.approx(ramp) and fade[1000 - m :] == pytest.approx(ramp[::-1])
        assert np.all(fade[m : 1000 - m] == 1.0) and fade[m - 1] < 1.0


# ---------------------------------------------------------------------------
# synthetic_prepare: the files, the csv files and the folds as written
# ---------------------------------------------------------------------------


def test_written_sources_sum_exactly_peak_at_0_9_and_have_the_rate_and_length(dataset):
    """Read back with soundfile: mixture == target + background exactly, in int16 and in
    float (all three are int / 32768); the loudest sample of the three is 0.9 of full scale
    (29491, or one off where the mixture, a sum of two rounded sources, peaks); every file is
    22050 Hz mono of round(0.7 * 22050) = 15435 samples. Kills: the peak not 0.9, the files
    written at 16 kHz, the clip length truncated (int) instead of rounded, a mixture not
    the sum of its sources."""
    for row in _rows(dataset / "meta" / "ground_truth.csv"):
        paths = [dataset / "audio" / f"{row['id']}.wav", dataset / row["target_path"]]
        paths.append(dataset / row["background_path"])
        for path in paths:
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.frames) == (RATE, 1, N_SAMPLES)
        (mixture, _), (target, _), (background, _) = (_read_int(p) for p in paths)
        assert np.array_equal(mixture, target + background)
        floats = [sf.read(p, dtype="float64")[0] for p in paths]
        assert np.array_equal(floats[0], floats[1] + floats[2])
        loudest = max(np.abs(signal).max() for signal in (mixture, target, background))
        assert PEAK_INT - 1 <= loudest <= PEAK_INT + 1, (row["id"], loudest)


def test_csv_snr_is_the_written_sources_power_ratio_and_is_drawn_over_the_range(dataset):
    """snr_db_range (-3, 6): every csv SNR in it and spread over it (20 uniform draws: range
    above 4.5 dB), and the 16-bit sources' power ratio over [round(onset_s * 22050),
    round(offset_s * 22050)) is the csv SNR to 1e-3 dB. Kills: the SNR not drawn (always
    low), the csv onset / offset in samples / 16000, the SNR written for another window."""
    rows = _rows(dataset / "meta" / "ground_truth.csv")
    snrs = [float(row["snr_db"]) for row in rows]
    assert all(SNR_RANGE[0] <= snr <= SNR_RANGE[1] for snr in snrs), snrs
    assert max(snrs) - min(snrs) > 4.5, snrs
    for row, snr in zip(rows, snrs):
        target, rate = _read_int(dataset / row["target_path"])
        background, _ = _read_int(dataset / row["background_path"])
        onset, offset = round(float(row["onset_s"]) * rate), round(float(row["offset_s"]) * rate)
        assert not target[:onset].any() and not target[offset:].any(), row["id"]
        assert abs(_snr_db(target, background, onset, offset) - snr) < 1e-3, row["id"]


def test_the_writer_draws_class_by_class_clip_by_clip_from_one_generator(dataset):
    """Clip k of class c (file {1 + k % 5}-{100000 + 10 c + k}-A-{c}) is the (10 c + k + 1)-th
    clip drawn from default_rng(21), the first clip's onset and offset are the generator's
    first draws (hand-replicated), and the csv has them to 6 decimals of a second, the SNR
    to 4 decimals. Kills: folds assigned in blocks (k // 2) instead of round-robin, the
    generator reseeded per clip or per class, the loops swapped, onset_s / offset_s
    swapped or in samples, src ids not contiguous."""
    truth = {row["id"]: row for row in _rows(dataset / "meta" / "ground_truth.csv")}
    rng = np.random.default_rng(SEED)
    for target in range(CLASSES):
        for k in range(PER_CLASS):
            clip = synthesize_clip(SIGNATURES[target], rng, N_SAMPLES, RATE, SNR_RANGE)
            clip_id = f"{1 + k % 5}-{100000 + PER_CLASS * target + k}-A-{target}"
            row = truth[clip_id]
            assert (row["onset_s"], row["offset_s"], row["snr_db"]) == (
                f"{clip.onset / RATE:.6f}",
                f"{clip.offset / RATE:.6f}",
                f"{clip.snr_db:.4f}",
            )
            assert np.array_equal(_read_int(dataset / "audio" / f"{clip_id}.wav")[0], clip.mixture)
            assert np.array_equal(_read_int(dataset / row["target_path"])[0], clip.target)
    onset, offset, _, _ = _first_draws(np.random.default_rng(SEED), N_SAMPLES)
    first = truth["1-100000-A-0"]
    assert (round(float(first["onset_s"]) * RATE), round(float(first["offset_s"]) * RATE)) == (
        onset,
        offset,
    )


def test_folds_classes_and_rows_line_up(dataset):
    """esc50.csv: 2 clips of each class in each fold; fold, src_file and target are the ones
    in the file name; category the signature; rows sorted by file name, and ground_truth.csv
    in the same order with the sources of the same id; the parameters file holds JSON ints.
    Kills: an unbalanced fold (1 + k % 4), a category off by one, the two csv files sorted
    differently, a source path of another clip."""
    rows = _rows(dataset / "meta" / "esc50.csv")
    truth = _rows(dataset / "meta" / "ground_truth.csv")
    assert Counter((row["fold"], row["target"]) for row in rows) == {
        (str(fold), str(target)): 2 for fold in range(1, 6) for target in range(CLASSES)
    }
    assert [row["filename"] for row in rows] == sorted(row["filename"] for row in rows)
    for row, gt in zip(rows, truth, strict=True):
        clip_id = row["filename"].removesuffix(".wav")
        fold, src, _, target = clip_id.split("-")
        assert (row["fold"], row["src_file"], row["target"]) == (fold, src, target)
        assert row["category"] == SIGNATURES[int(target)]
        assert (gt["id"], gt["target_path"], gt["background_path"]) == (
            clip_id,
            f"sources/{clip_id}_target.wav",
            f"sources/{clip_id}_background.wav",
        )
    params = json.loads((dataset / "meta" / "synthetic_params.json").read_text())
    assert (params["classes"], params["per_class"], params["seed"], params["sample_rate"]) == (
        2,
        10,
        21,
        22050,
    )
    assert (params["snr_db_range"], params["duration_s"]) == ([-3.0, 6.0], 0.7)


def test_numpy_integer_arguments_write_a_complete_dataset(tmp_path):
    """Arguments from a numpy computation (np.int64) are accepted by the checks, so they
    must reach the parameters file as plain ints: json.dumps refuses np.int64, and the
    parameters file is written last, after every wav. Kills: int() dropped on classes,
    per_class or sample_rate (a dataset with all its audio and no parameters file)."""
    out = tmp_path / "data"
    create_synthetic_dataset(
        out,
        classes=np.int64(1),
        per_class=np.int64(5),
        seed=np.int64(2),
        sample_rate=np.int64(8000),
        duration_s=np.float64(0.5),
    )
    params = json.loads((out / "meta" / "synthetic_params.json").read_text())
    assert (params["classes"], params["per_class"], params["seed"], params["sample_rate"]) == (
        1,
        5,
        2,
        8000,
    )
    assert len(list((out / "audio").iterdir())) == 5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"classes": 2.0}, r"classes must be an integer, got 2\.0"),
        ({"classes": True}, "classes must be an integer, got True"),
        ({"per_class": True}, "per_class must be an integer"),
        ({"per_class": 13}, r"per_class=13 must be a positive multiple of 5.*use e\.g\. 15$"),
        ({"per_class": -5}, r"per_class=-5 must be a positive multiple of 5.*use e\.g\. 5$"),
        ({"sample_rate": 16000.0}, "sample_rate must be an integer number of Hz"),
        ({"sample_rate": 7999}, "use at least 8000 Hz"),
        ({"duration_s": float("nan")}, "duration_s=nan is not a number of seconds"),
        ({"duration_s": float("inf")}, "duration_s=inf is not a number of seconds"),
        ({"duration_s": 0.49}, "use at least 0.5 s"),
        ({"snr_db_range": (0.0, float("nan"))}, "two finite numbers"),
        ({"snr_db_range": (0.0, 1.0, 2.0)}, "two finite numbers"),
        ({"snr_db_range": (1.0, 0.0)}, r"snr_db_range=\(1.0, 0.0\) has low > high"),
    ],
)
def test_bad_options_name_the_fix_and_write_nothing(tmp_path, kwargs, message):
    """Each bad option is a ValueError that says what to change, before any file is written.
    Kills: a bool accepted as a count, a float rate accepted, the suggested multiple of 5
    rounded down or below 5, NaN or inf durations or SNRs accepted, 7999 Hz accepted."""
    out = tmp_path / "never"
    args = {"classes": 1, "per_class": 5, "sample_rate": 8000, "duration_s": 0.5, **kwargs}
    with pytest.raises(ValueError, match=message):
        create_synthetic_dataset(out, **args)
    assert not out.exists()


def test_limits_that_are_allowed_write_a_dataset(tmp_path):
    """The smallest rate and duration and an SNR range of one value are allowed: 8000 Hz,
    0.5 s (4000 samples), SNR (3, 3) for every clip. Kills: `<=` for `<` in the rate,
    duration or SNR-order checks."""
    out = create_synthetic_dataset(
        tmp_path / "data",
        classes=1,
        per_class=5,
        sample_rate=8000,
        duration_s=0.5,
        snr_db_range=(3.0, 3.0),
    )
    for row in _rows(out / "meta" / "ground_truth.csv"):
        assert row["snr_db"] == "3.0000"
        assert sf.info(str(out / row["target_path"])).frames == 4000


def test_a_file_as_out_dir_and_a_rerun_with_other_parameters_are_refused_untouched(tmp_path):
    """A file given as out_dir is refused and left as it was; a rerun with another seed names
    the parameter that differs with both values and rewrites nothing. Kills: the file check
    dropped (a crash in mkdir, or the file replaced), the differences listing every key."""
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    with pytest.raises(ValueError, match="is a file; give a folder"):
        create_synthetic_dataset(taken, classes=1, per_class=5, sample_rate=8000, duration_s=0.5)
    assert taken.read_text() == "mine"

    out = tmp_path / "data"
    args = {"classes": 1, "per_class": 5, "sample_rate": 8000, "duration_s": 0.5, "seed": 3}
    create_synthetic_dataset(out, **args)
    saved = json.loads((out / "meta" / "synthetic_params.json").read_text())
    with pytest.raises(ValueError, match=r"other parameters \(seed: 3 there, 4 requested\)"):
        create_synthetic_dataset(out, **{**args, "seed": 4})
    assert check_output_folder(out, saved) is True  # still complete and reusable


def test_files_named_like_the_dataset_but_outside_it_are_never_deleted(tmp_path):
    """Only folds 1-5 are the dataset's: an audio/6-100000-A-0.wav or a
    sources/0-100000-A-0_target.wav someone put there is foreign, so the folder is refused
    and the file kept (an interrupted run's own files would be deleted). Kills: the own-file
    pattern widened to any digit ([0-9]) for audio or sources."""
    for name in ("audio/6-100000-A-0.wav", "sources/0-100000-A-0_target.wav"):
        out = tmp_path / name.split("/")[0] / "data"
        (out / name).parent.mkdir(parents=True)
        (out / name).write_bytes(b"mine")
        with pytest.raises(ValueError, match="not part of a synthetic dataset"):
            create_synthetic_dataset(out, classes=1, per_class=5, sample_rate=8000, duration_s=0.5)
        assert (out / name).read_bytes() == b"mine"


# ---------------------------------------------------------------------------
# interference: the out-of-distribution mixtures
# ---------------------------------------------------------------------------


def test_overlap_is_0_8_to_0_2_in_norm_and_each_clip_peaks_at_1():
    """Clips of very different levels: in each evaluated clip, gain * clip has 4 times the
    norm of the added interference (0.8 / 0.2), and each row peaks at exactly 1 on its own.
    Kills: a batch-wide peak (amax over the batch), the weights swapped, norms over the batch."""
    generator = torch.Generator().manual_seed(0)
    clips = torch.randn(3, 64, generator=generator, dtype=torch.float64) * torch.tensor(
        [[0.01], [1.0], [50.0]], dtype=torch.float64
    )
    noise = torch.randn(3, 64, generator=generator, dtype=torch.float64) * torch.tensor(
        [[7.0], [0.1], [1.0]], dtype=torch.float64
    )
    gain, added = overlap_parts(clips, noise)
    ratio = (gain * clips).norm(dim=1) / added.norm(dim=1)
    assert ratio.tolist() == pytest.approx([4.0] * 3)
    assert (gain * clips + added).abs().amax(dim=1).tolist() == pytest.approx([1.0] * 3)


def test_partners_are_of_another_class_drawn_over_all_of_them():
    """Labels (0, 0, 1, 1, 2): over 200 seeds each clip's partner is of another class, and
    every clip of another class is drawn (clip 0 gets 2, 3 and 4, about 1/3 each); the same
    seed gives the same pairing. Kills: a partner of the same class allowed, always the first
    other clip, the draw not from the generator."""
    labels = torch.tensor([0, 0, 1, 1, 2])
    drawn = Counter()
    for seed in range(200):
        partner = pair_different_classes(labels, torch.Generator().manual_seed(seed))
        assert (labels[partner] != labels).all()
        drawn[int(partner[0])] += 1
        again = pair_different_classes(labels, torch.Generator().manual_seed(seed))
        assert torch.equal(partner, again)
    assert set(drawn) == {2, 3, 4} and min(drawn.values()) > 40, drawn
    with pytest.raises(ValueError, match="single class"):
        pair_different_classes(torch.tensor([], dtype=torch.long))


def _tiny_dataset():
    clips = torch.randn(4, 32, generator=torch.Generator().manual_seed(1))
    data = {
        f"c{i}": {"sig": clips[i], "class_string_encoded": torch.tensor([i % 2])} for i in range(4)
    }
    return DynamicItemDataset(data, output_keys=["id", "sig"]), clips


@pytest.mark.parametrize("kind", ["white_noise", "mixtures", "speech"])
def test_interference_is_a_function_of_the_seed_and_the_clip_position(tmp_path, kind):
    """The same seed gives the same evaluated clips, batch by batch (a clip's interference
    depends on its position, not on the object); another seed other ones; for mixtures the
    added signal is the partner clip scaled (the other class's clip at 0.2 of the norm).
    Kills: an unseeded generator, the seed ignored, white noise independent of the start or
    drawn per batch, speech chosen or noise drawn from torch's global generator."""
    for i in range(6):
        t = np.arange(8000) / 8000
        sf.write(tmp_path / f"s{i}.wav", 0.5 * np.sin(2 * np.pi * 300 * (i + 1) * t), 8000)
    dataset, clips = _tiny_dataset()

    def make(seed):
        return Interference(kind, dataset, seed, 8000, 32, speech_folder=str(tmp_path))

    first = make(5)
    whole = first.mix(clips, 0)
    halves = [make(5).mix(clips[:2], 0), make(5).mix(clips[2:], 2)]
    for _ in range(3):  # fresh objects of the same seed: the same clips, whatever was drawn before
        assert torch.allclose(make(5).mix(clips, 0).wavs, whole.wavs)
    # chosen (white noise: drawn) per clip: batches do not matter (found by a torchrun probe: white
    # noise drawn per batch gave other figures at another --batch_size)
    assert torch.allclose(torch.cat([h.wavs for h in halves]), whole.wavs)
    if kind == "white_noise":  # a clip's noise is its position's, not the batch's
        assert not torch.equal(make(5).mix(clips[:2], 0).added, make(5).mix(clips[:2], 2).added)
    others = [make(seed).mix(clips, 0).wavs for seed in range(6, 12)]
    assert any(not torch.allclose(other, whole.wavs) for other in others)
    assert torch.allclose(whole.wavs, whole.gain * clips + whole.added, atol=1e-6)
    if kind == "mixtures":
        for i in range(4):
            partner = clips[int(first.partner[i])]
            assert i % 2 != int(first.partner[i]) % 2
            expected = 0.2 * partner / partner.norm()
            peak = (0.8 * clips[i] / clips[i].norm() + expected).abs().max()
            assert torch.allclose(whole.added[i], expected / peak, atol=1e-6)


def test_files_named_like_the_dataset_without_its_marks_are_never_deleted(tmp_path):
    """Was: a folder holding meta/esc50.csv and ESC-50-named take-A clips (a user's copy of
    them), with no parameters file, was taken for an interrupted run and its files deleted
    with a warning. Now only a folder carrying the mark a run writes first (or the dataset's
    own parameters file) is cleared; a run killed part-way leaves that mark, and the rerun
    clears and finishes it; a finished dataset holds no mark."""
    users = tmp_path / "esc50_copy"
    (users / "meta").mkdir(parents=True)
    (users / "audio").mkdir()
    (users / "meta" / "esc50.csv").write_text("filename,fold,target,category,esc10,src_file,take\n")
    clip = np.zeros(800, dtype=np.int16)
    sf.write(users / "audio" / "1-100032-A-0.wav", clip, 16000, subtype="PCM_16")
    before = {p.name: p.read_bytes() for p in users.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"named like a synthetic dataset's \(audio/1-100032-A-0\.wav"):
        create_synthetic_dataset(users, classes=1, per_class=5, duration_s=0.5)
    assert {p.name: p.read_bytes() for p in users.rglob("*") if p.is_file()} == before

    out, calls = tmp_path / "killed", []

    def make_clip_then_die(target, name):
        calls.append(name)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run is killed while it writes clip 3
        return synthesize_clip(name, np.random.default_rng(len(calls)), 8000, 16000, (-5.0, 5.0))

    from data_prep import synthetic_prepare

    params = {"classes": 1, "per_class": 5, "sample_rate": 16000, "duration_s": 0.5}
    with pytest.raises(KeyboardInterrupt):
        synthetic_prepare.write_dataset(out, params, ["steady_tone"], make_clip_then_die)
    assert (out / "meta" / ".synthetic_params.json.writing").is_file()
    assert len(list((out / "audio").iterdir())) == 2 and not (out / "meta" / "synthetic_params.json").exists()
    root = create_synthetic_dataset(out, classes=1, per_class=5, duration_s=0.5)
    assert len(list((root / "audio").iterdir())) == 5
    assert sorted(p.name for p in (root / "meta").iterdir()) == ["esc50.csv", "ground_truth.csv", "synthetic_params.json"]
