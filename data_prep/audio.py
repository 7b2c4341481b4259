"""The one audio reader: datasets, eval's single files, the pretrained interface.

Every recording the project reads goes through `read_audio` (mono, resampled,
not padded nor normalised); a dataset clip is `load_clip` (then padded or
cropped to the clip length and peak-normalised with `peak_normalise`); a file
a user gives is `read_user_file` (the same, with messages that name the file).

A file is read only as far as it is used: `read_audio(..., start, n_samples)`
decodes the frames of that part (and the few around it that resampling needs,
so a part equals the same part of the whole file read at once), and
`read_audio_pieces` reads a whole file in consecutive pieces, so memory is
bounded by the piece, not by the file. NaN and infinite samples are read as 0
with a warning that counts them; a file (or part) without a finite sample is
refused.
`EPS` is the project's one epsilon (guards of divisions and normalisations),
used by the signal path, the metrics and the NMF updates alike.

Example
-------
>>> pad_or_crop(torch.ones(3), 5)
tensor([1., 1., 1., 0., 0.])
>>> peak_normalise(torch.tensor([[0.5, -0.25], [0.0, 0.0]]))
tensor([[ 1.0000, -0.5000],
        [ 0.0000,  0.0000]])

Authors
 * audio-interpret contributors 2026
"""

import math

import numpy as np
import soundfile as sf
import torch
import torchaudio
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

EPS = 1e-10  # the one epsilon: divisions and normalisations (a silent clip stays zeros)
#: A recording whose |sample| stays below this (-80 dBFS) holds no sound: a dataset leaves it out
#: (`collection_prepare`), and an explained one peak-normalised from it is said to be its noise.
SILENT_PEAK = 1e-4
#: Audio files a dataset may hold (soundfile reads each of them; rows may mix them).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
#: What soundfile raises on a file it cannot read as audio.
AUDIO_READ_ERRORS = (RuntimeError, OSError, TypeError)
#: How far torchaudio.functional.resample's filter reaches (its defaults): a part of a file
#: is read with that much context on each side, so it resamples as the whole file does.
RESAMPLE_FILTER_WIDTH = 6
RESAMPLE_ROLLOFF = 0.99


def pad_or_crop(sig, length):
    """Zero-pads on the right or crops (keeping the start) a signal to `length` samples.

    Arguments
    ---------
    sig : torch.Tensor
        (..., T) signal.
    length : int
        Target number of samples.

    Returns
    -------
    torch.Tensor
        (..., length) signal.

    Example
    -------
    >>> pad_or_crop(torch.arange(5.0), 3)
    tensor([0., 1., 2.])
    """
    if sig.shape[-1] >= length:
        return sig[..., :length]
    return torch.nn.functional.pad(sig, (0, length - sig.shape[-1]))


def silent_warning(name, first_s=None):
    """The sentence about an explained clip of zeros: the recording, or its first `first_s` s.

    Example
    -------
    >>> silent_warning("a.wav", first_s=1.0)[:38]
    'the first 1 s of a.wav are silent (eve'
    """
    what = f"the first {first_s:g} s of {name} are silent" if first_s else f"{name} is silent"
    return f"{what} (every sample is 0): the prediction is the classifier's answer to silence, not to a sound."


def quiet_warning(name, peak):
    """The sentence about an explained clip whose peak is above 0 but below SILENT_PEAK, or None.

    Peak-normalised as every clip, such a clip reaches the classifier at full scale: what
    is explained is its noise (dither, a channel cancelled by the downmix), not a sound.

    Example
    -------
    >>> quiet_warning("a.wav", 3.05e-5)
    'a.wav peaks at -90 dBFS, below -80 dBFS: it is scaled to full scale like every clip, so what is explained is its noise, not a sound.'
    >>> quiet_warning("a.wav", 0.0), quiet_warning("a.wav", 0.5)
    (None, None)
    """
    if not EPS < peak < SILENT_PEAK:
        return None
    return (
        f"{name} peaks at {20 * math.log10(peak):.0f} dBFS, below {20 * math.log10(SILENT_PEAK):.0f} dBFS: "
        "it is scaled to full scale like every clip, so what is explained is its noise, not a sound."
    )


def peak_normalise(sig):
    """sig / max |sig| over the last dimension; a silent signal (peak at most EPS) is zeros.

    Example
    -------
    >>> peak_normalise(torch.tensor([[0.5, -2.0], [5e-11, 0.0], [0.0, 0.0]]))
    tensor([[ 0.2500, -1.0000],
            [ 0.0000,  0.0000],
            [ 0.0000,  0.0000]])
    """
    peak = sig.abs().amax(dim=-1, keepdim=True)
    return torch.where(peak > EPS, sig / peak.clamp_min(EPS), torch.zeros_like(sig))


def samples_at(frames, file_rate, sample_rate):
    """How many samples `frames` samples at `file_rate` are at `sample_rate` (as resampling gives).

    Example
    -------
    >>> samples_at(44100, 44100, 16000), samples_at(3, 48000, 16000), samples_at(4, 48000, 16000)
    (16000, 1, 2)
    """
    if file_rate == sample_rate:
        return frames
    return -(-frames * sample_rate // file_rate)


def audio_length(path, sample_rate):
    """The length of an audio file in samples at `sample_rate`, from its header (nothing decoded).

    Raises AUDIO_READ_ERRORS as soundfile does for what it cannot read.
    """
    info = sf.info(str(path))
    return samples_at(info.frames, info.samplerate, sample_rate)


class _FrameReader:
    """Ranges of input frames of an open soundfile.SoundFile, read forward.

    What a range shares with the previous one is kept, not decoded again;
    frames before a range are skipped by seeking, or, where soundfile's seek is
    not sample-exact (Ogg Vorbis / Opus), by decoding them.
    """

    SKIP_BLOCK = 2**18  # frames decoded at a time when skipping without seek

    def __init__(self, audio):
        self.audio = audio
        self.start = 0  # the first frame of `kept`
        self.kept = torch.zeros(0, audio.channels)  # (T, C), the frames from `start` on read so far
        self.ends_at = None  # the frame where the file ended before its header's count, if it did

    def read(self, first, last):
        """Frames [first, last) (fewer where the file ends), (T, C) float32; `first` never goes back."""
        end = self.start + self.kept.shape[0]
        if first >= end:  # nothing kept is needed
            if self.audio.format == "OGG":
                while end < first:
                    skipped = len(self.audio.read(frames=min(self.SKIP_BLOCK, first - end), dtype="float32"))
                    if not skipped:  # the file ends before its header says
                        break
                    end += skipped
            else:
                self.audio.seek(first)
            self.start, self.kept, end = first, self.kept[:0], first
        if last > end:
            more = self.audio.read(frames=last - end, dtype="float32", always_2d=True)
            self.kept = torch.cat([self.kept, torch.from_numpy(more)])
            if len(more) < min(last, self.audio.frames) - end:  # a truncated file: its header claims more
                self.ends_at = end + len(more)
        self.kept = self.kept[first - self.start :]
        self.start = first
        return self.kept[: last - first]


def _read_span(reader, sample_rate, start, stop):
    """Output samples [start, stop) of a `_FrameReader`'s file: mono at `sample_rate`.

    Decodes only the input frames they come from, with RESAMPLE_FILTER_WIDTH of
    context on each side, read from a multiple of the rates' reduced ratio so
    the samples are the ones resampling the whole file gives.

    Returns
    -------
    sig : torch.Tensor
        (stop - start,) float32, non-finite values as 0.
    n_nonfinite, n_values : int
        NaN / infinite values among the input values the span stands for (its
        context is counted by its neighbours), and how many there are.
    """
    file_rate = reader.audio.samplerate
    if file_rate == sample_rate:
        first, last, offset = start, stop, 0
    else:
        gcd = math.gcd(file_rate, sample_rate)
        orig, new = file_rate // gcd, sample_rate // gcd  # one block: orig frames in, new samples out
        width = math.ceil(RESAMPLE_FILTER_WIDTH * orig / (min(orig, new) * RESAMPLE_ROLLOFF))
        context = -(-width // orig) + 1  # blocks on each side
        first_block = max(0, start // new - context)
        first = first_block * orig
        last = (-(-stop // new) + context) * orig
        offset = start - first_block * new
    values = reader.read(first, last)  # (T, C)
    own = values[samples_at(start, sample_rate, file_rate) - first : samples_at(stop, sample_rate, file_rate) - first]
    n_nonfinite = own.numel() - int(torch.isfinite(own).sum())
    sig = torch.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0).mean(dim=1)  # (T,)
    if file_rate != sample_rate and sig.numel():
        sig = torchaudio.functional.resample(sig, file_rate, sample_rate)
    return sig[offset : offset + stop - start], n_nonfinite, own.numel()


def check_finite(path, n_nonfinite, n_values, warnings, part=""):
    """Warns (logged, and appended to `warnings`) about non-finite values; refuses a file of none else."""
    if not n_nonfinite:
        return
    if n_nonfinite == n_values:
        raise ValueError(
            f"{path}{part} holds no finite sample (all {n_values} sample values are NaN or "
            "infinite): it is not a recording; write it again from its source."
        )
    message = (
        f"{path}{part}: {n_nonfinite} of {n_values} sample values are NaN or infinite; "
        "they are read as 0."
    )
    logger.warning(message)
    if warnings is not None:
        warnings.append(message)


def read_audio(path, sample_rate, start=0, n_samples=None, warnings=None):
    """Reads an audio file, or a part of it, as it is: mono, resampled, not padded nor normalised.

    Only the part is decoded (with the few frames around it resampling needs),
    so reading the first seconds of a long file costs those seconds.

    Arguments
    ---------
    path : str or Path
        Audio file (anything soundfile reads: wav, flac, ogg, mp3, ...).
    sample_rate : int
        Output sample rate.
    start : int
        First output sample.
    n_samples : int, optional
        Output samples from `start` (fewer where the file ends); the rest of
        the file when None.
    warnings : list, optional
        Receives the sentence about NaN / infinite samples, if any (also logged).

    Returns
    -------
    torch.Tensor
        (T,) float32 signal; T = 0 for a file without samples. NaN and
        infinite values are read as 0.

    Raises
    ------
    AUDIO_READ_ERRORS
        As soundfile raises them, for a file it cannot read as audio; callers
        say what that means where they are (`load_clip`: a manifest out of date).
    ValueError
        The part read holds no finite sample.
    """
    with sf.SoundFile(str(path)) as audio:
        total = samples_at(audio.frames, audio.samplerate, sample_rate)
        stop = total if n_samples is None else min(total, start + n_samples)
        start = min(start, stop)
        sig, n_nonfinite, n_values = _read_span(_FrameReader(audio), sample_rate, start, stop)
    part = "" if (start, stop) == (0, total) else f" (samples {start} to {stop} at {sample_rate} Hz)"
    check_finite(path, n_nonfinite, n_values, warnings, part)
    return sig


def read_audio_pieces(path, sample_rate, piece_samples, warnings=None):
    """A whole audio file in consecutive pieces, mono at `sample_rate`: memory bounded by a piece.

    The pieces, end to end, are `read_audio(path, sample_rate)`.

    Arguments
    ---------
    path : str or Path
    sample_rate : int
    piece_samples : int
        Samples per piece (the last one may be shorter).
    warnings : list, optional
        As `read_audio`, for the whole file (once every piece is read).

    Yields
    ------
    torch.Tensor
        (piece_samples,) float32 pieces.

    A file that ends before its header says (a truncated mp3) is read as far as
    it goes, with a warning (logged, and appended to `warnings`); one whose
    decoding fails part-way (a damaged flac) is a ValueError naming it.

    Raises
    ------
    AUDIO_READ_ERRORS, ValueError
        As `read_audio` (the ValueError once the last piece is read).
    """
    n_nonfinite = n_values = 0
    with sf.SoundFile(str(path)) as audio:
        total = samples_at(audio.frames, audio.samplerate, sample_rate)
        reader = _FrameReader(audio)
        for start in range(0, total, piece_samples):
            try:
                sig, bad, count = _read_span(reader, sample_rate, start, min(total, start + piece_samples))
            except AUDIO_READ_ERRORS as error:
                raise ValueError(
                    f"{path} cannot be decoded past {start / sample_rate:.2f} s ({error}): the file is "
                    "damaged; write it again from its source."
                ) from None
            n_nonfinite, n_values = n_nonfinite + bad, n_values + count
            if reader.ends_at is not None:  # what the file holds ends in this piece
                kept = samples_at(reader.ends_at, audio.samplerate, sample_rate) - start
                if kept > 0:
                    yield sig[:kept]
                message = (
                    f"{path} ends at {reader.ends_at / audio.samplerate:.2f} s, though its header says "
                    f"{audio.frames / audio.samplerate:.2f} s (a truncated file?): what it holds is read."
                )
                logger.warning(message)
                if warnings is not None:
                    warnings.append(message)
                break
            yield sig
    check_finite(path, n_nonfinite, n_values, warnings)


#: What a dataset clip that cannot be read means, by default (`load_clip`'s `fix`).
MANIFEST_FIX = "the file changed since the manifest was written; rerun prepare_esc50 (skip_manifest_creation: False)"


def load_clip(path, sample_rate, n_samples, fix=MANIFEST_FIX):
    """Reads a clip: mono, resampled, padded / cropped, peak-normalised (silence stays 0).

    Arguments
    ---------
    path : str or Path
        Audio file (anything soundfile reads).
    sample_rate : int
        Output sample rate.
    n_samples : int
        Output length.
    fix : str
        What the error says to do when the file cannot be read.

    Returns
    -------
    torch.Tensor
        (n_samples,) float32 signal with max |sig| = 1, or zeros for a silent clip.
    """
    try:
        sig = read_audio(path, sample_rate, n_samples=n_samples)  # only what the clip keeps
    except AUDIO_READ_ERRORS as err:
        raise RuntimeError(f"Cannot read {path} ({err}): {fix}.") from err
    return peak_normalise(pad_or_crop(sig, n_samples))


def _not_audio(path, err, prefix, fix=None):
    fix = fix or f"give an audio file ({', '.join(AUDIO_EXTENSIONS)})"
    return ValueError(f"{prefix}{path} is not audio that soundfile can read ({err}): {fix}.")


def _no_samples(path, prefix, fix=None):
    return ValueError(f"{prefix}{path} holds no audio (0 samples): {fix or 'there is nothing to explain'}.")


#: soundfile subtypes that can hold NaN / infinite samples (integer PCM cannot).
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


def has_finite_sample(path, info=None):
    """False only for a float file whose every sample is NaN or infinite (integer PCM: True
    unread). Read block by block up to the first finite value, so a usable file costs one
    block. `info`: its `soundfile.info`, when the caller has it."""
    info = info or sf.info(str(path))
    if info.subtype not in FLOAT_SUBTYPES:
        return True
    return any(
        np.isfinite(block).any() for block in sf.blocks(str(path), blocksize=65536, dtype="float32", always_2d=True)
    )


def check_audio_file(path, prefix="", fix=None):
    """Raises ValueError, naming `path`, when soundfile cannot read it, it has no sample, or
    (a float file) none of its samples is finite.

    Cheap (the header, and for a float file its first block): a command calls it before any
    set-up. `prefix` starts the message (e.g. the flag that gave the file), `fix` says what to
    do about a file that is not audio (default: give an audio file).
    """
    try:
        info = sf.info(str(path))
        finite = info.frames <= 0 or has_finite_sample(path, info)
    except AUDIO_READ_ERRORS as err:
        raise _not_audio(path, err, prefix, fix) from err
    if info.frames <= 0:
        raise _no_samples(path, prefix, fix)
    if not finite:
        raise ValueError(
            f"{prefix}{path} holds no finite sample (every sample value is NaN or infinite): it is "
            "not a recording; write it again from its source."
        )


def read_user_file(path, sample_rate, prefix="", n_samples=None, warnings=None):
    """A file a user gives: mono at `sample_rate` (T,), not padded nor normalised.

    Its first `n_samples` only (the whole file when None: `read_audio`);
    ValueError as `check_audio_file` for what is not audio or has no sample,
    and for a file with no finite sample; `warnings` as `read_audio`.
    """
    try:
        sig = read_audio(path, sample_rate, n_samples=n_samples, warnings=warnings)
    except AUDIO_READ_ERRORS as err:
        raise _not_audio(path, err, prefix) from err
    except ValueError as err:  # no finite sample
        raise ValueError(f"{prefix}{err}") from err
    if sig.numel() == 0:
        raise _no_samples(path, prefix)
    return sig
