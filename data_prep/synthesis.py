"""Signal synthesis of the synthetic dataset: events, backgrounds, mixing at an SNR.

This module makes the sounds and nothing else: it writes no file and knows no
folder (`synthetic_prepare` writes the dataset). `synthesize_clip` makes one
clip from a numpy Generator: a target event, whose sound alone defines the
class (see `SIGNATURES`), added to a background drawn from ONE family shared
by all classes: pink-to-brown broadband noise, a low mains hum (50 or 60 Hz
and two harmonics) and occasional short noise bursts in a high band
(6.2-7.4 kHz at 16 kHz) that no class uses. The background therefore carries
no class information. Event onset, duration (10 % to 50 % of the clip:
0.5-2.5 s for 5 s clips), pitch (+-0.5 semitone) and rates (+-10 %) are
random; each event has 10 ms raised-cosine fades (at most a quarter of the
event).

SNR: ``snr_db`` is the ratio of target power to background power measured over
the event only, i.e. over the samples ``[onset, offset)``, drawn uniformly from
``snr_db_range``.

Exactness: the three signals are scaled jointly so that the largest absolute
sample of target, background and mixture is 0.9, then the target and the
background are each rounded to 16-bit integers and the mixture is the integer
sum of the two. Written as 16-bit PCM and read back with soundfile, mixture ==
target + background holds exactly (in int16, and in float since all three are
divided by 32768); against the unquantised float sources each signal is off by
at most 0.5 / 32768, the mixture by at most 1 / 32768.

Class frequencies are given for 16 kHz and below (all target content stays
under about 5.2 kHz); for a `sample_rate` below 16 kHz every frequency is scaled
by ``sample_rate / 16000`` (`frequency_scale`) so nothing aliases.

Determinism: every random draw goes through the Generator passed in, in a fixed
order per clip (event duration, onset, the event's own draws, the background's,
the SNR), so the same Generator state gives the same samples.

Example
-------
>>> rng = np.random.default_rng(0)
>>> clip = synthesize_clip("steady_tone", rng, n=8000, sample_rate=16000, snr_db_range=(3.0, 3.0))
>>> clip.target.dtype, clip.mixture.shape
(dtype('int16'), (8000,))
>>> bool(np.array_equal(clip.mixture, clip.target.astype(np.int32) + clip.background))
True
>>> window = slice(clip.onset, clip.offset)
>>> power = lambda x: np.mean(x[window].astype(float) ** 2)
>>> round(float(10 * np.log10(power(clip.target) / power(clip.background))), 1)
3.0

Authors
 * audio-interpret contributors 2026
"""

from typing import NamedTuple

import numpy as np

from data_prep.audio import EPS

PEAK = 0.9  # largest absolute sample of target, background and mixture
INT16_SCALE = 32768.0  # soundfile reads PCM_16 as int / 32768
REFERENCE_RATE = 16000  # the frequencies below are for this rate (scaled down below it)
EVENT_FRACTION = (0.1, 0.5)  # event duration as a fraction of the clip duration
FADE_S = 0.01  # raised-cosine fade in and out of each event
PITCH_JITTER_SEMITONES = 0.5
RATE_JITTER = 0.1  # +-10 % on click, pip, modulation and trill rates
BURST_BAND_HZ = (6200.0, 7400.0)  # background bursts only; no class uses this band
BURSTS_PER_S = 0.4  # mean number of background bursts per second

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
    return noise / max(np.sqrt(np.mean(noise**2)), EPS)


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


def synthesize_event(name, rng, n, sample_rate, fscale):
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
    return x / max(np.sqrt(np.mean(x**2)), EPS)


def event_fade(n, sample_rate):
    """Raised-cosine fade in and out over min(FADE_S, event / 4) each, shape (n,)."""
    n_fade = max(1, min(int(round(FADE_S * sample_rate)), n // 4))
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, n_fade + 1) / (n_fade + 1))
    envelope = np.ones(n)
    envelope[:n_fade] = ramp
    envelope[n - n_fade :] = ramp[::-1]
    return envelope


def synthesize_background(rng, n, sample_rate, fscale):
    """One background of the shared family: coloured noise + hum + high-band bursts."""
    # Noise with a 1/f^alpha power spectrum, alpha from pink (1) to brown (2), no DC.
    alpha = rng.uniform(1.0, 2.0)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    shape = np.zeros_like(freqs)
    audible = freqs >= 20.0
    shape[audible] = freqs[audible] ** (-alpha / 2.0)
    noise = np.fft.irfft(_white_spectrum(rng, n) * shape, n)
    background = noise / max(np.sqrt(np.mean(noise**2)), EPS)

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


def frequency_scale(sample_rate):
    """The factor on every nominal frequency: 1 at 16 kHz and above, smaller below.

    >>> frequency_scale(44100), frequency_scale(8000)
    (1.0, 0.5)
    """
    return min(1.0, sample_rate / REFERENCE_RATE)


# ---------------------------------------------------------------------------
# Mixing and the whole clip
# ---------------------------------------------------------------------------


def mix_at_snr(event, background, onset, snr_db):
    """Adds `event` to `background` from sample `onset` at `snr_db`, as 16-bit integers.

    The event is scaled so that its power over its own window,
    ``[onset, onset + len(event))``, is `snr_db` dB above the background's
    power over the same window; the target (the scaled event, zero elsewhere)
    and the background are then scaled jointly so that the largest absolute
    sample of target, background and mixture is `PEAK`, and rounded.

    Arguments
    ---------
    event : numpy.ndarray
        (n_event,) float event.
    background : numpy.ndarray
        (n,) float background, n >= onset + n_event.
    onset : int
        First sample of the event in the clip.
    snr_db : float
        Target-to-background power ratio over the event window, in dB.

    Returns
    -------
    target, background, mixture : numpy.ndarray
        (n,) int16 each; mixture == target + background exactly.

    Example
    -------
    >>> target, background, mixture = mix_at_snr(np.ones(2), np.full(4, 0.5), 1, 0.0)
    >>> target.tolist(), background.tolist()  # equal power in the window; peak 0.9 * 32768
    ([0, 14746, 14746, 0], [14746, 14746, 14746, 14746])
    >>> mixture.tolist()  # the sum of the rounded sources, not the rounded sum (29491)
    [14746, 29492, 29492, 14746]
    """
    n = len(background)
    offset = onset + len(event)
    event_power = np.mean(event**2)
    background_power = np.mean(background[onset:offset] ** 2)
    gain = np.sqrt(background_power / max(event_power, 1e-20) * 10.0 ** (snr_db / 10.0))
    target = np.zeros(n)
    target[onset:offset] = gain * event
    mixture = target + background

    peak = max(np.abs(target).max(), np.abs(background).max(), np.abs(mixture).max())
    scale = PEAK / max(peak, EPS)
    target_int = np.round(target * scale * INT16_SCALE).astype(np.int16)
    background_int = np.round(background * scale * INT16_SCALE).astype(np.int16)
    # Exact in int16: the mixture is the sum of the two sources.
    mixture_int = (target_int.astype(np.int32) + background_int).astype(np.int16)
    return target_int, background_int, mixture_int


class Clip(NamedTuple):
    """One synthetic clip: three (n,) int16 signals and where the event is."""

    target: np.ndarray  # the event alone, zero outside [onset, offset)
    background: np.ndarray
    mixture: np.ndarray  # target + background, exactly
    onset: int  # first sample of the event
    offset: int  # one past its last sample
    snr_db: float  # target-to-background power over [onset, offset)
    provenance: tuple = ()  # values of the writer's extra ground_truth.csv columns, if any


def synthesize_clip(name, rng, n, sample_rate, snr_db_range):
    """One clip of class `name`: an event at a random place and SNR over a background.

    Arguments
    ---------
    name : str
        One of `SIGNATURES`.
    rng : numpy.random.Generator
        The source of every random draw (drawn from in a fixed order).
    n : int
        Clip length in samples.
    sample_rate : int
        Sampling rate in Hz; below 16 kHz all frequencies are scaled down.
    snr_db_range : tuple of float
        (low, high) of the uniform SNR draw, in dB.

    Returns
    -------
    Clip
    """
    fscale = frequency_scale(sample_rate)
    event_s = rng.uniform(*EVENT_FRACTION) * n / sample_rate
    event_n = max(int(round(event_s * sample_rate)), 4)
    onset = int(rng.integers(0, n - event_n + 1))
    offset = onset + event_n
    event = synthesize_event(name, rng, event_n, sample_rate, fscale) * event_fade(
        event_n, sample_rate
    )
    background = synthesize_background(rng, n, sample_rate, fscale)
    snr_db = float(rng.uniform(*snr_db_range))
    target, background, mixture = mix_at_snr(event, background, onset, snr_db)
    return Clip(target, background, mixture, onset, offset, snr_db)
