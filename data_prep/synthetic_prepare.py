"""The embedded default dataset: synthetic clips in the exact ESC-50 layout.

Every recipe of the project runs on it unchanged, without downloading ESC-50:

    python data_prep/synthetic_prepare.py --out data/synthetic --classes 10 --per-class 40 --seed 1234

writes

    <out>/meta/esc50.csv            filename,fold,target,category,esc10,src_file,take
    <out>/audio/{fold}-{src}-A-{target}.wav          the mixtures (16-bit PCM, mono)
    <out>/sources/<id>_target.wav                    the target event alone
    <out>/sources/<id>_background.wav                the background alone
    <out>/meta/ground_truth.csv     id,target_path,background_path,onset_s,offset_s,snr_db
    <out>/meta/synthetic_params.json                 the parameters (written last)

where ``<id>`` is the clip's file name without ``.wav``.

Each clip is one target event, whose sound alone defines the class (see
`SIGNATURES`), added to a background drawn from ONE family shared by all
classes: pink-to-brown broadband noise, a low mains hum (50 or 60 Hz and two
harmonics) and occasional short noise bursts in a high band (6.2-7.4 kHz at
16 kHz) that no class uses. The background therefore carries no class
information. Event onset, duration (10 % to 50 % of the clip: 0.5-2.5 s for
5 s clips), pitch (+-0.5 semitone) and rates (+-10 %) are random; each event has
10 ms raised-cosine fades (at most a quarter of the event).

SNR: ``snr_db`` is the ratio of target power to background power measured over
the event only, i.e. over the samples ``[onset, offset)``, drawn uniformly from
``snr_db_range``.

Exactness: the three signals are scaled jointly so that the largest absolute
sample of target, background and mixture is 0.9, then the target and the
background are each rounded to 16-bit integers and the mixture is written as
the integer sum of the two. Read back with soundfile, mixture == target +
background holds exactly (in int16, and in float since all three are divided by
32768); against the unquantised float sources each file is off by at most
0.5 / 32768, the mixture by at most 1 / 32768.

Class frequencies are given for 16 kHz and below (all target content stays
under about 5.2 kHz); for a `sample_rate` below 16 kHz every frequency is scaled
by ``sample_rate / 16000`` so nothing aliases.

The same parameters give the same bytes: one numpy Generator, seeded once, is
drawn from in a fixed order. A folder that already holds a complete dataset with
the same parameters is reused; one holding anything else is an error; an
interrupted run (no ``meta/synthetic_params.json``) is cleared and rewritten if
the folder holds only files this module writes.

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

logger = get_logger(__name__)

# Bump when the generator changes, so an old dataset is not silently reused.
GENERATOR_VERSION = 1

ESC50_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
GROUND_TRUTH_COLUMNS = ["id", "target_path", "background_path", "onset_s", "offset_s", "snr_db"]
NUM_FOLDS = 5
FIRST_SRC_ID = 100000  # src_file of the first clip; ESC-50-like six-digit ids
PEAK = 0.9  # largest absolute sample of target, background and mixture
INT16_SCALE = 32768.0  # soundfile reads PCM_16 as int / 32768
REFERENCE_RATE = 16000  # the frequencies below are for this rate (scaled down below it)
MIN_SAMPLE_RATE = 8000
MIN_DURATION_S = 0.5
EVENT_FRACTION = (0.1, 0.5)  # event duration as a fraction of the clip duration
FADE_S = 0.01  # raised-cosine fade in and out of each event
PITCH_JITTER_SEMITONES = 0.5
RATE_JITTER = 0.1  # +-10 % on click, pip, modulation and trill rates
BURST_BAND_HZ = (6200.0, 7400.0)  # background bursts only; no class uses this band
BURSTS_PER_S = 0.4  # mean number of background bursts per second
PARAMS_FILE = "synthetic_params.json"
GROUND_TRUTH_CSV = os.path.join("meta", "ground_truth.csv")  # relative to the dataset root

# The class signatures, in target-index order; `classes=N` uses the first N.
SIGNATURES = (
    "steady_tone",  # pure tone, 700 Hz
    "harmonic_stack",  # 10 harmonics of 300 Hz, amplitude 1/k
    "up_chirp",  # exponential sweep 400 -> 4000 Hz
    "down_chirp",  # exponential sweep 4000 -> 400 Hz
    "noise_burst",  # noise band 2000-3200 Hz
    "click_train",  # 20 clicks/s, each a Gaussian-derivative pulse (broadband 0.2-3.5 kHz)
    "am_tone",  # 1200 Hz tone, full-depth tremolo at 7 Hz
    "fm_tone",  # 2200 Hz tone, vibrato +-200 Hz at 5 Hz
    "decaying_partials",  # bell-like inharmonic partials of 500 Hz, exponential decays
    "tone_pips",  # 50 ms pips of 3400 Hz every 160 ms
    "trill",  # alternation 900 / 1500 Hz every 60 ms
    "square_buzz",  # odd harmonics of 210 Hz up to 5 kHz, amplitude 1/k
    "gliding_harmonics",  # 6 harmonics of a fundamental gliding 250 -> 450 Hz
    "noise_pulses",  # noise band 4000-5000 Hz in 40 ms pulses every 150 ms
    "whistle",  # 4600 Hz tone with a slow +-1 % vibrato
)


# ---------------------------------------------------------------------------
# Signal building blocks
# ---------------------------------------------------------------------------


def _white_spectrum(rng, n):
    """The rfft of n samples of white noise, drawn directly: complex Gaussian bins."""
    bins = n // 2 + 1
    return rng.standard_normal(bins) + 1j * rng.standard_normal(bins)


def _band_noise(rng, n, low_hz, high_hz, sample_rate):
    """White noise restricted to [low_hz, high_hz] with an FFT mask, unit RMS.

    The noise is made at the next power of two (fast FFT for any n) and cropped.
    """
    n_fft = 1 << (n - 1).bit_length()
    spectrum = _white_spectrum(rng, n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0.0
    noise = np.fft.irfft(spectrum, n_fft)[:n]
    return noise / max(np.sqrt(np.mean(noise**2)), 1e-12)


def _pulse_gate(t, period_s, pulse_s, ramp_s):
    """Periodic gate: 1 during the first `pulse_s` of each period, raised-cosine ramps."""
    phase = np.mod(t, period_s)  # seconds into the current period
    ramp_in = np.clip(phase / ramp_s, 0.0, 1.0)
    ramp_out = np.clip((pulse_s - phase) / ramp_s, 0.0, 1.0)
    gate = np.minimum(ramp_in, ramp_out)
    return 0.5 - 0.5 * np.cos(np.pi * gate)


def _exp_sweep_phase(t, f_start, f_end, length_s):
    """Phase (radians) of an exponential sweep from f_start to f_end over length_s."""
    ratio = f_end / f_start
    log_ratio = np.log(ratio)
    return 2 * np.pi * f_start * length_s / log_ratio * (ratio ** (t / length_s) - 1.0)


def _synthesize_event(name, rng, n, sample_rate, fscale):
    """One target event of class `name`, `n` samples, unit RMS, before fades.

    All random draws for the event happen here, in a fixed order per class.
    """
    t = np.arange(n) / sample_rate  # (n,)
    length_s = n / sample_rate
    jitter = 2.0 ** (rng.uniform(-PITCH_JITTER_SEMITONES, PITCH_JITTER_SEMITONES) / 12.0)
    rate = 1.0 + rng.uniform(-RATE_JITTER, RATE_JITTER)
    phase0 = rng.uniform(0.0, 2 * np.pi)
    f = fscale * jitter  # multiply every nominal frequency by this

    if name == "steady_tone":
        x = np.sin(2 * np.pi * 700.0 * f * t + phase0)
    elif name == "harmonic_stack":
        k = np.arange(1, 11)[:, None]  # (10, 1)
        phases = rng.uniform(0.0, 2 * np.pi, size=(10, 1))
        x = (np.sin(2 * np.pi * k * 300.0 * f * t + phases) / k).sum(0)
    elif name == "up_chirp":
        x = np.sin(_exp_sweep_phase(t, 400.0 * f, 4000.0 * f, length_s) + phase0)
    elif name == "down_chirp":
        x = np.sin(_exp_sweep_phase(t, 4000.0 * f, 400.0 * f, length_s) + phase0)
    elif name == "noise_burst":
        x = _band_noise(rng, n, 2000.0 * f, 3200.0 * f, sample_rate)
    elif name == "click_train":
        sigma = 0.00015 / fscale  # s; spectrum peaks near 1 / (2 pi sigma) ~ 1 kHz
        half = int(np.ceil(4 * sigma * sample_rate))
        tk = np.arange(-half, half + 1) / sample_rate
        pulse = -tk / sigma * np.exp(-0.5 * (tk / sigma) ** 2)  # Gaussian derivative
        period = 1.0 / (20.0 * rate)
        start = rng.uniform(0.0, period)
        clicks = np.zeros(n)
        positions = np.round((start + np.arange(0.0, length_s, period)) * sample_rate)
        clicks[positions[positions < n].astype(int)] = 1.0
        x = np.convolve(clicks, pulse, mode="same")
    elif name == "am_tone":
        tremolo = 0.5 - 0.5 * np.cos(2 * np.pi * 7.0 * rate * t)
        x = tremolo * np.sin(2 * np.pi * 1200.0 * f * t + phase0)
    elif name == "fm_tone":
        mod_hz = 5.0 * rate
        depth_hz = 200.0 * f
        x = np.sin(
            2 * np.pi * 2200.0 * f * t + depth_hz / mod_hz * np.sin(2 * np.pi * mod_hz * t) + phase0
        )
    elif name == "decaying_partials":
        ratios = np.array([1.0, 2.76, 5.40, 8.93])[:, None]  # (4, 1) bell-like
        amps = np.array([1.0, 0.7, 0.5, 0.3])[:, None]
        taus = length_s / np.array([4.0, 5.0, 6.0, 7.0])[:, None]  # higher partials decay faster
        phases = rng.uniform(0.0, 2 * np.pi, size=(4, 1))
        x = (amps * np.exp(-t / taus) * np.sin(2 * np.pi * ratios * 500.0 * f * t + phases)).sum(0)
    elif name == "tone_pips":
        gate = _pulse_gate(t, 0.16 / rate, 0.05, 0.005)
        x = gate * np.sin(2 * np.pi * 3400.0 * f * t + phase0)
    elif name == "trill":
        low = np.floor(t / (0.06 / rate)).astype(int) % 2 == 0
        inst_hz = np.where(low, 900.0, 1500.0) * f
        x = np.sin(2 * np.pi * np.cumsum(inst_hz) / sample_rate + phase0)
    elif name == "square_buzz":
        f0 = 210.0 * f
        k = np.arange(1, int(5000.0 * fscale / f0) + 1, 2)[:, None]  # odd harmonics
        x = (np.sin(2 * np.pi * k * f0 * t + phase0) / k).sum(0)
    elif name == "gliding_harmonics":
        base_phase = _exp_sweep_phase(t, 250.0 * f, 450.0 * f, length_s)  # (n,)
        k = np.arange(1, 7)[:, None]  # (6, 1)
        phases = rng.uniform(0.0, 2 * np.pi, size=(6, 1))
        x = (np.sin(k * base_phase + phases) / k).sum(0)
    elif name == "noise_pulses":
        gate = _pulse_gate(t, 0.15 / rate, 0.04, 0.005)
        x = gate * _band_noise(rng, n, 4000.0 * f, 5000.0 * f, sample_rate)
    elif name == "whistle":
        vibrato_hz = 3.0 * rate
        depth_hz = 0.01 * 4600.0 * f
        x = np.sin(
            2 * np.pi * 4600.0 * f * t
            + depth_hz / vibrato_hz * np.sin(2 * np.pi * vibrato_hz * t)
            + phase0
        )
    else:  # pragma: no cover - SIGNATURES and this switch are kept together
        raise NotImplementedError(f"no synthesizer for signature {name!r}")
    return x / max(np.sqrt(np.mean(x**2)), 1e-12)


def _fade(n, sample_rate):
    """Raised-cosine fade in and out over min(FADE_S, event / 4) each, shape (n,)."""
    n_fade = max(1, min(int(round(FADE_S * sample_rate)), n // 4))
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, n_fade + 1) / (n_fade + 1))
    envelope = np.ones(n)
    envelope[:n_fade] = ramp
    envelope[n - n_fade :] = ramp[::-1]
    return envelope


def _synthesize_background(rng, n, sample_rate, fscale):
    """One background of the shared family: coloured noise + hum + high-band bursts."""
    # Noise with a 1/f^alpha power spectrum, alpha from pink (1) to brown (2), no DC.
    alpha = rng.uniform(1.0, 2.0)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    shape = np.zeros_like(freqs)
    audible = freqs >= 20.0
    shape[audible] = freqs[audible] ** (-alpha / 2.0)
    noise = np.fft.irfft(_white_spectrum(rng, n) * shape, n)
    background = noise / max(np.sqrt(np.mean(noise**2)), 1e-12)

    # Mains hum: sum_k sin(k theta + phase_k) / k for k = 1..3, theta = 2 pi (50|60 Hz) t;
    # sin(k theta) and cos(k theta) from sin(theta), cos(theta) by the multiple-angle
    # formulas (one sin and one cos over the clip instead of three of each).
    hum_hz = 50.0 if rng.uniform() < 0.5 else 60.0
    phases = rng.uniform(0.0, 2 * np.pi, size=3)
    theta = 2 * np.pi * hum_hz / sample_rate * np.arange(n)  # (n,)
    sin1, cos1 = np.sin(theta), np.cos(theta)
    sines = (sin1, 2 * sin1 * cos1, sin1 * (3 - 4 * sin1**2))
    cosines = (cos1, 1 - 2 * sin1**2, cos1 * (4 * cos1**2 - 3))
    hum = sum(
        (sk * np.cos(p) + ck * np.sin(p)) / k
        for k, (sk, ck, p) in enumerate(zip(sines, cosines, phases), start=1)
    )
    hum_db = rng.uniform(-20.0, -8.0)
    background += 10.0 ** (hum_db / 20.0) * hum / np.sqrt(np.mean(hum**2))

    # Occasional short noise bursts in a band no class uses.
    for _ in range(rng.poisson(BURSTS_PER_S * n / sample_rate)):
        length = min(n, int(rng.uniform(0.05, 0.3) * sample_rate))
        start = int(rng.integers(0, n - length + 1))
        burst_db = rng.uniform(-6.0, 0.0)
        low, high = (fscale * edge for edge in BURST_BAND_HZ)
        burst = _band_noise(rng, length, low, high, sample_rate) * np.hanning(length)
        background[start : start + length] += 10.0 ** (burst_db / 20.0) * burst
    return background


def _synthesize_clip(name, rng, n, sample_rate, fscale, snr_db_range):
    """Target, background (int16 each), onset and offset sample, SNR in dB."""
    event_s = rng.uniform(*EVENT_FRACTION) * n / sample_rate
    event_n = max(int(round(event_s * sample_rate)), 4)
    onset = int(rng.integers(0, n - event_n + 1))
    offset = onset + event_n
    event = _synthesize_event(name, rng, event_n, sample_rate, fscale) * _fade(event_n, sample_rate)
    background = _synthesize_background(rng, n, sample_rate, fscale)
    snr_db = float(rng.uniform(*snr_db_range))

    # SNR over the event window only.
    event_power = np.mean(event**2)
    background_power = np.mean(background[onset:offset] ** 2)
    gain = np.sqrt(background_power / max(event_power, 1e-20) * 10.0 ** (snr_db / 10.0))
    target = np.zeros(n)
    target[onset:offset] = gain * event
    mixture = target + background

    peak = max(np.abs(target).max(), np.abs(background).max(), np.abs(mixture).max())
    scale = PEAK / max(peak, 1e-12)
    target_int = np.round(target * scale * INT16_SCALE).astype(np.int16)
    background_int = np.round(background * scale * INT16_SCALE).astype(np.int16)
    return target_int, background_int, onset, offset, snr_db


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------

_OWN_FILE_PATTERNS = [
    re.compile(r"meta/(esc50\.csv|ground_truth\.csv|" + re.escape(PARAMS_FILE) + r")(\.tmp)?"),
    re.compile(r"audio/[1-5]-\d+-A-\d+\.wav(\.tmp)?"),
    re.compile(r"sources/[1-5]-\d+-A-\d+_(target|background)\.wav(\.tmp)?"),
]
_OWN_DIRS = ("meta", "audio", "sources")


def _own_and_foreign_entries(root):
    """Splits everything under root into (files this module writes, anything else)."""
    own, foreign = [], []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() and not path.is_symlink() and rel in _OWN_DIRS:
            continue
        if path.is_file() and any(p.fullmatch(rel) for p in _OWN_FILE_PATTERNS):
            own.append(path)
        else:
            foreign.append(path)
    return own, foreign


def _write_wav(path, samples, sample_rate):
    """Writes int16 samples as 16-bit PCM WAV through a temporary file and os.replace."""
    # Encoded in memory: soundfile's close() on a real file fsyncs, which costs more
    # than the whole synthesis when 1200 files are written.
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, subtype="PCM_16", format="WAV")
    partial = path.with_name(path.name + ".tmp")
    partial.write_bytes(buffer.getvalue())
    os.replace(partial, path)


def _write_text(path, text):
    """Writes a text file through a temporary file and os.replace."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text, encoding="utf-8", newline="")
    os.replace(partial, path)


def _csv_text(columns, rows):
    """The csv text of rows (lists of values) under a header."""
    lines = [",".join(columns)]
    lines += [",".join(str(value) for value in row) for row in rows]
    return "\n".join(lines) + "\n"


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
    if not (np.isfinite(duration_s) and duration_s >= MIN_DURATION_S):
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
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise ValueError(f"out_dir {root} is a file; give a folder for the synthetic dataset")
    params_path = root / "meta" / PARAMS_FILE

    if params_path.is_file():
        saved = _read_params(params_path)
        if saved is not None and saved != params:
            differences = ", ".join(
                f"{key}: {saved.get(key)!r} there, {params.get(key)!r} requested"
                for key in sorted(set(saved) | set(params))
                if saved.get(key) != params.get(key)
            )
            raise ValueError(
                f"{root} already holds a synthetic dataset with other parameters "
                f"({differences}). Choose another output folder or delete {root}."
            )
        if saved is not None and _is_complete(root, params):
            logger.info("Reusing the synthetic dataset in %s (same parameters).", root)
            return root
    if root.is_dir():
        own, foreign = _own_and_foreign_entries(root)
        if foreign:
            shown = ", ".join(str(p.relative_to(root)) for p in foreign[:5])
            raise ValueError(
                f"{root} holds files that are not part of a synthetic dataset ({shown}"
                f"{', ...' if len(foreign) > 5 else ''}); give an empty or new folder as "
                f"out_dir so datasets are not mixed."
            )
        if own:
            logger.warning(
                "%s holds an incomplete synthetic dataset (interrupted run?): removing its %d "
                "files and writing it again.",
                root,
                len(own),
            )
            for path in own:
                path.unlink()

    start_time = time.perf_counter()
    for sub in _OWN_DIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(int(seed))
    n = int(round(duration_s * sample_rate))
    fscale = min(1.0, sample_rate / REFERENCE_RATE)
    esc50_rows, truth_rows = [], []
    for target, name in enumerate(SIGNATURES[:classes]):
        for k in range(per_class):
            fold = 1 + k % NUM_FOLDS
            src = FIRST_SRC_ID + target * per_class + k
            clip_id = f"{fold}-{src}-A-{target}"
            target_int, background_int, onset, offset, snr_db = _synthesize_clip(
                name, rng, n, sample_rate, fscale, snr_db_range
            )
            # Exact in int16: the mixture is the sum of the two written sources.
            mixture_int = (target_int.astype(np.int32) + background_int).astype(np.int16)
            target_rel = f"sources/{clip_id}_target.wav"
            background_rel = f"sources/{clip_id}_background.wav"
            _write_wav(root / target_rel, target_int, sample_rate)
            _write_wav(root / background_rel, background_int, sample_rate)
            _write_wav(root / "audio" / f"{clip_id}.wav", mixture_int, sample_rate)
            esc50_rows.append([f"{clip_id}.wav", fold, target, name, False, src, "A"])
            truth_rows.append(
                [
                    clip_id,
                    target_rel,
                    background_rel,
                    f"{onset / sample_rate:.6f}",
                    f"{offset / sample_rate:.6f}",
                    f"{snr_db:.4f}",
                ]
            )

    order = sorted(range(len(esc50_rows)), key=lambda i: esc50_rows[i][0])
    _write_text(
        root / "meta" / "esc50.csv", _csv_text(ESC50_COLUMNS, [esc50_rows[i] for i in order])
    )
    _write_text(
        root / "meta" / "ground_truth.csv",
        _csv_text(GROUND_TRUTH_COLUMNS, [truth_rows[i] for i in order]),
    )
    # Last: its presence marks the dataset complete.
    _write_text(params_path, json.dumps(params, indent=2, sort_keys=True) + "\n")
    logger.info(
        "Wrote the synthetic dataset to %s: %d classes x %d clips of %.2f s at %d Hz in %.1f s.",
        root,
        classes,
        per_class,
        duration_s,
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
    parser.add_argument("--duration", type=float, default=5.0, help="clip duration in seconds")
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
