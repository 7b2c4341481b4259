"""The one audio reader: datasets, eval's single files, the pretrained interface.

Every recording the project reads goes through `read_audio` (mono, resampled,
not padded nor normalised); a dataset clip is `load_clip` (then padded or
cropped to the clip length and peak-normalised with `peak_normalise`); a file
a user gives is `read_user_file` (the same, with messages that name the file).
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

import soundfile as sf
import torch
import torchaudio

EPS = 1e-10  # the one epsilon: divisions and normalisations (a silent clip stays zeros)
#: Audio files a dataset may hold (soundfile reads each of them; rows may mix them).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
#: What soundfile raises on a file it cannot read as audio.
AUDIO_READ_ERRORS = (RuntimeError, OSError, TypeError)


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


def peak_normalise(sig):
    """sig / max |sig| over the last dimension; a silent signal stays zeros."""
    return sig / sig.abs().amax(dim=-1, keepdim=True).clamp_min(EPS)


def read_audio(path, sample_rate):
    """Reads a whole audio file as it is: mono, resampled, not padded nor normalised.

    Arguments
    ---------
    path : str or Path
        Audio file (anything soundfile reads: wav, flac, ogg, mp3, ...).
    sample_rate : int
        Output sample rate.

    Returns
    -------
    torch.Tensor
        (T,) float32 signal; T = 0 for a file without samples.

    Raises
    ------
    AUDIO_READ_ERRORS
        As soundfile raises them, for a file it cannot read as audio; callers
        say what that means where they are (`load_clip`: a manifest out of date).
    """
    data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)  # (T, C)
    sig = torch.from_numpy(data).mean(dim=1)  # (T,)
    sig = torch.nan_to_num(sig, nan=0.0, posinf=0.0, neginf=0.0)
    if file_rate != sample_rate and sig.numel():
        sig = torchaudio.functional.resample(sig, file_rate, sample_rate)
    return sig


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
        sig = read_audio(path, sample_rate)
    except AUDIO_READ_ERRORS as err:
        raise RuntimeError(f"Cannot read {path} ({err}): {fix}.") from err
    return peak_normalise(pad_or_crop(sig, n_samples))


def _not_audio(path, err, prefix):
    return ValueError(
        f"{prefix}{path} is not audio that soundfile can read ({err}): give an audio "
        f"file ({', '.join(AUDIO_EXTENSIONS)})."
    )


def _no_samples(path, prefix):
    return ValueError(f"{prefix}{path} holds no audio (0 samples): there is nothing to explain.")


def check_audio_file(path, prefix=""):
    """Raises ValueError, naming `path`, when soundfile cannot read it or it has no sample.

    Cheap (the header only): a command calls it before any set-up. `prefix`
    starts the message (e.g. the flag that gave the file).
    """
    try:
        info = sf.info(str(path))
    except AUDIO_READ_ERRORS as err:
        raise _not_audio(path, err, prefix) from err
    if info.frames <= 0:
        raise _no_samples(path, prefix)


def read_user_file(path, sample_rate, prefix=""):
    """A file a user gives: the whole file, mono at `sample_rate` (T,), not padded nor
    normalised; ValueError as `check_audio_file` for what is not audio or has no sample."""
    try:
        sig = read_audio(path, sample_rate)
    except AUDIO_READ_ERRORS as err:
        raise _not_audio(path, err, prefix) from err
    if sig.numel() == 0:
        raise _no_samples(path, prefix)
    return sig
