"""WHAM! noise: download, a looping noise source, and mixing at a given SNR.

`prepare_wham` returns a `WhamNoise` source (or None when noise is off),
downloading the WHAM! noise archive when `wham_folder` has no `wham_noise/`.
`combine_batches` adds a randomly cropped noise clip to every clip of a clean
batch at a given SNR; it also takes a plain tensor of noise clips.

Example
-------
>>> clean = torch.ones(2, 8)
>>> noise = torch.tensor([[1.0, -1.0] * 8])  # (N=1, T_noise=16)
>>> mixed = combine_batches(clean, noise, snr_db=0.0, generator=torch.Generator().manual_seed(0))
>>> mixed.shape
torch.Size([2, 8])
>>> bool(torch.isfinite(mixed).all())
True

Authors
 * audio-interpret contributors 2026
"""

import numbers
from pathlib import Path

import soundfile as sf
import torch
from speechbrain.utils.logger import get_logger

from data_prep.audio import EPS, read_audio
from data_prep.esc50_prepare import download_and_unpack

logger = get_logger(__name__)

WHAM_URL = "https://my-bucket-a8b4b49c25c811ee9a7e8bba05fa24c7.s3.amazonaws.com/wham_noise.zip"
WHAM_ARCHIVE_TOP = "wham_noise"  # the archive's top folder (tr/, cv/, tt/, metadata/)
SILENCE_POWER = 1e-20  # mean power at or below which a clip counts as silent (-200 dBFS)


def prepare_wham(
    wham_folder,
    add_wham_noise,
    sample_rate,
    signal_length_s,
    wham_audio_folder=None,
    download_url=None,
):
    """Returns the WHAM! noise source, downloading WHAM! noise if needed.

    Arguments
    ---------
    wham_folder : str or Path
        Folder holding (or receiving) `wham_noise/` as unpacked from the archive.
    add_wham_noise : bool
        False returns None (no noise).
    sample_rate : int
        Sample rate of the noise clips returned.
    signal_length_s : float
        Length of the clips the source yields when iterated.
    wham_audio_folder : str or Path, optional
        Folder of the noise wav files; None means `<wham_folder>/wham_noise/tr`.
    download_url : str, optional
        Archive to fetch when `<wham_folder>/wham_noise` is missing (URL, `file://`
        URL or local zip); defaults to `WHAM_URL`.

    Returns
    -------
    WhamNoise or None

    Raises
    ------
    ValueError
        add_wham_noise is True without a wham_folder, or bad sizes.
    RuntimeError
        The noise is missing and could not be downloaded (offline).
    FileNotFoundError
        The audio folder has no readable wav file.
    """
    if not add_wham_noise:
        return None
    if wham_folder is None or not str(wham_folder).strip():
        raise ValueError(
            "add_wham_noise is True but wham_folder is not set: pass --wham_folder DIR "
            "(WHAM! noise is downloaded there if missing) or set add_wham_noise: False."
        )
    wham_folder = Path(wham_folder)
    audio_folder = (
        Path(wham_audio_folder) if wham_audio_folder else wham_folder / WHAM_ARCHIVE_TOP / "tr"
    )
    _check_sizes(sample_rate, signal_length_s)
    archive_folder = wham_folder / WHAM_ARCHIVE_TOP
    from_archive = audio_folder.absolute().is_relative_to(archive_folder.absolute())
    if from_archive and not archive_folder.exists():
        url = WHAM_URL if download_url is None else download_url
        logger.info(
            "%s has no %s/: downloading WHAM! noise from %s.", wham_folder, WHAM_ARCHIVE_TOP, url
        )
        try:
            download_and_unpack(
                url, wham_folder / WHAM_ARCHIVE_TOP, archive_top=WHAM_ARCHIVE_TOP, required=("tr",)
            )
        except Exception as err:
            raise RuntimeError(
                f"WHAM! noise is not in {wham_folder} and fetching it from {url} failed "
                f"({type(err).__name__}: {err}). Unzip wham_noise.zip into {wham_folder} by hand "
                f"(giving {wham_folder / WHAM_ARCHIVE_TOP}/tr/*.wav), point wham_audio_folder at "
                "a folder of noise wav files, or set add_wham_noise: False."
            ) from err
    return WhamNoise(_wav_files(audio_folder), sample_rate, signal_length_s, audio_folder)


def _wav_files(folder):
    folder = Path(folder)
    return sorted(folder.glob("*.wav")) if folder.is_dir() else []


class WhamNoise(torch.utils.data.Dataset):
    """Noise clips read with soundfile, mono, resampled to `sample_rate`.

    Indexing gives a whole clip; `sample` draws random crops for a batch;
    iterating yields random `signal_length_s` crops forever.

    Arguments
    ---------
    files : list of str or Path
        Noise wav files; unreadable or empty ones are skipped with a warning.
    sample_rate : int
        Output sample rate.
    signal_length_s : float
        Length of the crops yielded when iterating.
    folder : str or Path, optional
        Where the files are (for error messages).
    seed : int, optional
        Seed of the generator used when iterating.
    """

    def __init__(self, files, sample_rate, signal_length_s, folder=None, seed=None):
        super().__init__()
        _check_sizes(sample_rate, signal_length_s)
        self.sample_rate = int(sample_rate)
        self.n_samples = max(1, int(round(sample_rate * signal_length_s)))
        self.seed = seed
        self.files = []
        for path in files:
            try:
                info = sf.info(str(path))
            except (RuntimeError, OSError, TypeError) as err:
                logger.warning("Skipping noise file %s: unreadable (%s).", path, err)
                continue
            if info.frames <= 0:
                logger.warning("Skipping noise file %s: zero-length audio.", path)
                continue
            self.files.append(str(path))
        skipped = len(files) - len(self.files)
        if skipped:
            logger.warning("Skipped %d unreadable noise file(s) of %s.", skipped, folder)
        if not self.files:
            raise FileNotFoundError(
                f"No readable noise .wav file in {folder}: unzip WHAM! noise there, point "
                "wham_audio_folder at a folder of noise wav files, or set add_wham_noise: False."
            )

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        """Returns the whole clip `index`: (T,) float32, mono, at `sample_rate`."""
        return read_audio(self.files[index], self.sample_rate)

    def sample(self, batch_size, length, generator=None):
        """Draws `batch_size` random clips and random crops of `length` samples.

        Arguments
        ---------
        batch_size : int
        length : int
        generator : torch.Generator, optional
            Makes the draw reproducible.

        Returns
        -------
        torch.Tensor
            (batch_size, length) noise.
        """
        index = torch.randint(len(self), (batch_size,), generator=generator)  # (B,)
        clips = [self[i] for i in index.tolist()]  # file reads: one per clip
        return random_crops(clips, length, generator)

    def __iter__(self):
        generator = torch.Generator()
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        while True:
            yield self.sample(1, self.n_samples, generator)[0]


def _is_positive(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0


def _check_sizes(sample_rate, signal_length_s):
    if not _is_positive(sample_rate) or int(sample_rate) != sample_rate:
        raise ValueError(f"sample_rate={sample_rate!r} must be a positive integer.")
    if not _is_positive(signal_length_s):
        raise ValueError(f"signal_length_s={signal_length_s!r} must be a positive number.")


def random_crops(clips, length, generator=None):
    """Crops `length` samples from each clip at a random start; short clips are tiled.

    A clip at least `length` long gives a crop starting uniformly in
    [0, len - length]; a shorter one is repeated (circularly) from a random start.

    Arguments
    ---------
    clips : list of torch.Tensor or torch.Tensor
        (T_i,) clips, or a (B, T) tensor.
    length : int
        Crop length.
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor
        (B, length)

    Example
    -------
    >>> random_crops(torch.tensor([[1.0, 2.0]]), 5).shape
    torch.Size([1, 5])
    """
    if isinstance(clips, torch.Tensor):
        clips = list(clips)
    lengths = torch.tensor([clip.shape[-1] for clip in clips])  # (B,)
    if (lengths <= 0).any():
        raise ValueError("random_crops got an empty noise clip.")
    padded = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)  # (B, T_max)
    starts_range = torch.where(lengths >= length, lengths - length + 1, lengths)  # (B,)
    draw = torch.rand(len(clips), generator=generator)  # (B,)
    starts = (draw * starts_range).long().clamp_max(starts_range - 1)  # (B,)
    index = (starts[:, None] + torch.arange(length)[None, :]) % lengths[:, None]  # (B, length)
    return padded.gather(1, index)


def _draw_noise(noise_source, batch_size, length, generator):
    if noise_source is None:
        raise ValueError(
            "noise_source is None (prepare_wham returns None when add_wham_noise is False): "
            "do not call combine_batches without noise."
        )
    if isinstance(noise_source, torch.Tensor):
        noise = noise_source.reshape(1, -1) if noise_source.dim() == 1 else noise_source
        if noise.dim() != 2 or noise.shape[0] == 0 or noise.shape[1] == 0:
            raise ValueError(
                f"A noise tensor must be (N, T_noise) with N, T_noise > 0, got {tuple(noise_source.shape)}."
            )
        index = torch.randint(noise.shape[0], (batch_size,), generator=generator)  # (B,)
        return random_crops(noise.detach().cpu()[index], length, generator)
    if hasattr(noise_source, "sample"):
        return noise_source.sample(batch_size, length, generator)
    raise TypeError(
        f"noise_source must be what prepare_wham returns or a (N, T_noise) tensor, "
        f"got {type(noise_source).__name__}."
    )


def combine_batches(clean, noise_source, snr_db=0.0, generator=None):
    """Adds noise to every clip of a batch at the given SNR.

    Each clip gets a random noise clip, cropped at a random start (tiled when
    shorter than the clean clip), scaled so that 10 log10(P_clean / P_noise)
    equals `snr_db` (P = mean power over the clip). Silent inputs never give
    NaN: silent noise returns the clean clip unchanged; for a silent clean clip
    there is no power to match, so the noise is peak-normalised to 1 (the level
    of the peak-normalised clean clips) and attenuated by `snr_db` dB.

    Arguments
    ---------
    clean : torch.Tensor
        (B, T) clean signals.
    noise_source : WhamNoise or torch.Tensor
        What `prepare_wham` returns, or a (N, T_noise) tensor of noise clips.
    snr_db : float or torch.Tensor
        Signal-to-noise ratio in dB: a number or one value per clip (B,).
    generator : torch.Generator, optional
        Makes the noise choice and the crops reproducible.

    Returns
    -------
    torch.Tensor
        (B, T) noisy signals.

    Example
    -------
    >>> clean = torch.sin(torch.arange(100.0))[None]  # (1, 100)
    >>> noisy = combine_batches(clean, torch.randn(3, 50), snr_db=10.0)
    >>> snr = 10 * torch.log10(clean.pow(2).mean() / (noisy - clean).pow(2).mean())
    >>> round(float(snr), 3)
    10.0
    """
    if not isinstance(clean, torch.Tensor) or clean.dim() != 2:
        raise ValueError(f"clean must be a (B, T) tensor, got {getattr(clean, 'shape', clean)!r}.")
    batch_size, length = clean.shape
    if length == 0:
        raise ValueError("clean has no samples (T = 0).")
    noise = _draw_noise(noise_source, batch_size, length, generator).to(clean)  # (B, T)
    snr = torch.as_tensor(snr_db, dtype=clean.dtype, device=clean.device).reshape(-1)
    snr = snr.expand(batch_size)  # (B,)
    power_clean = clean.pow(2).mean(dim=1)  # (B,)
    power_noise = noise.pow(2).mean(dim=1)  # (B,)
    gain = torch.sqrt(power_clean / (power_noise.clamp_min(SILENCE_POWER) * 10 ** (snr / 10)))
    gain_silent_clean = 10 ** (-snr / 20) / noise.abs().amax(dim=1).clamp_min(EPS)  # (B,)
    gain = torch.where(power_clean > SILENCE_POWER, gain, gain_silent_clean)
    gain = torch.where(power_noise > SILENCE_POWER, gain, torch.zeros_like(gain))
    return clean + gain[:, None] * noise  # (B, T)


class WhamMixer:
    """The recipes' one WHAM! mixer: a noise source and an SNR, set up from a yaml.

    `WhamMixer.from_hparams(hparams)` is None when the yaml says
    `add_wham_noise: False`; otherwise it reads `wham_folder`,
    `wham_audio_folder` (downloading WHAM! noise when missing, see
    `prepare_wham`), `sample_rate`, `signal_length_s` and `wham_snr_db`.
    Calling it adds noise to a batch (`combine_batches`).

    Example
    -------
    >>> mixer = WhamMixer(torch.randn(3, 50), snr_db=10.0)
    >>> mixer(torch.sin(torch.arange(100.0))[None]).shape
    torch.Size([1, 100])
    """

    def __init__(self, noise_source, snr_db=0.0):
        self.noise_source = noise_source
        self.snr_db = snr_db

    @classmethod
    def from_hparams(cls, hparams):
        """The mixer a loaded yaml (dict or Brain hparams namespace) asks for, or None."""

        def get(key):
            return hparams[key] if isinstance(hparams, dict) else getattr(hparams, key)

        if not get("add_wham_noise"):
            return None
        source = prepare_wham(
            get("wham_folder"),
            True,
            get("sample_rate"),
            get("signal_length_s"),
            get("wham_audio_folder"),
        )
        return cls(source, get("wham_snr_db"))

    def __call__(self, wavs, generator=None):
        """`wavs` (B, T) with a random noise crop added to each clip at `snr_db`."""
        return combine_batches(wavs, self.noise_source, self.snr_db, generator)
