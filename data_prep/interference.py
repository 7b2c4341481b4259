"""What an evaluation mixes into the clips it explains: interference and WHAM! noise.

`Interference` is the signal path of one evaluation set-up (`recipes/eval.py
--overlap_type`):

- `none`: the clips as they are, mixed with WHAM! noise when the yaml says
  `add_wham_noise: True` (in distribution);
- `mixtures | white_noise | speech` (out of distribution): each clip x and an
  interfering signal n are scaled to unit L2 norm, mixed as 0.8 x + 0.2 n and
  peak-normalised like every clip (`overlap_mix`). n is another clip of a
  different class (pairing drawn once from the seed), white noise, or a speech
  recording of a folder of audio files (e.g. LJSpeech's wavs/; chosen per clip from
  the seed).

`Interference.mix` also says how the evaluated clips were made (a `Mixture`:
wavs == gain * clips + added, the interference as it is in the clip), so the
ground truth follows them out of distribution: the target, scaled by `gain`,
stays the target, and the interference joins the background
(`data_prep.ground_truth.GroundTruth.sources`).

Authors
 * audio-interpret contributors 2026
"""

import os
from pathlib import Path
from typing import NamedTuple

import torch

from data_prep.audio import AUDIO_EXTENSIONS, EPS, load_clip

OVERLAP_TYPES = ("none", "mixtures", "white_noise", "speech")
CLIP_WEIGHT = 0.8  # out-of-distribution mixtures: 0.8 clip + 0.2 interference (unit norms)


def dataset_labels(dataset):
    """Class index of every clip of a dataset, (N,) (reads no audio)."""
    with dataset.output_keys_as(["class_string_encoded"]):
        return torch.cat([item["class_string_encoded"].view(-1) for item in dataset])


class Mixture(NamedTuple):
    """The evaluated clips and how they were made: wavs == gain * clips + added."""

    wavs: torch.Tensor  # (B, T) the evaluated clips
    gain: torch.Tensor  # (B, 1) the scale of the dataset's clips in them
    added: torch.Tensor  # (B, T) the interference (or WHAM! noise) as it is in them


def overlap_parts(clips, interference, clip_weight=CLIP_WEIGHT):
    """The two terms of `overlap_mix`: (gain (B, 1), added (B, T)), mixed = gain * clips + added.

    Example
    -------
    >>> gain, added = overlap_parts(torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 2.0]]))
    >>> gain, added
    (tensor([[0.3333]]), tensor([[0.0000, 0.2500]]))
    """
    gain = clip_weight / clips.norm(dim=1, keepdim=True).clamp(min=EPS)  # (B, 1)
    added = (1.0 - clip_weight) * interference / interference.norm(dim=1, keepdim=True).clamp(min=EPS)
    peak = (gain * clips + added).abs().amax(dim=1, keepdim=True).clamp(min=EPS)  # (B, 1)
    return gain / peak, added / peak


def overlap_mix(clips, interference, clip_weight=CLIP_WEIGHT):
    """clip_weight x + (1 - clip_weight) n with unit-norm x and n, then peak-normalised.

    Arguments
    ---------
    clips, interference : torch.Tensor
        (B, T) each.
    clip_weight : float

    Returns
    -------
    torch.Tensor
        (B, T), max |.| = 1 per clip (zeros stay zeros).

    Example
    -------
    >>> x = torch.tensor([[3.0, 0.0, 0.0, 0.0]])
    >>> overlap_mix(x, torch.tensor([[0.0, 2.0, 0.0, 0.0]]))
    tensor([[1.0000, 0.2500, 0.0000, 0.0000]])
    """
    gain, added = overlap_parts(clips, interference, clip_weight)
    return gain * clips + added  # (B, T)


def pair_different_classes(labels, generator=None):
    """For each clip, a random other clip of a different class.

    Arguments
    ---------
    labels : torch.Tensor
        Class index per clip, (N,).
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor
        (N,) partner indices with labels[partner] != labels.

    Example
    -------
    >>> labels = torch.tensor([0, 0, 1, 2])
    >>> partner = pair_different_classes(labels, torch.Generator().manual_seed(0))
    >>> bool((labels[partner] != labels).all())
    True
    """
    different = (labels.view(-1, 1) != labels.view(1, -1)).float()  # (N, N)
    if labels.numel() == 0 or (different.sum(dim=1) == 0).any():
        raise ValueError(
            "--overlap_type mixtures pairs every clip with a clip of another class, but the "
            "evaluated set has a single class: evaluate on folds with two classes or more, or "
            "use --overlap_type white_noise / speech."
        )
    return torch.multinomial(different, 1, generator=generator).squeeze(1)


def speech_files(folder):
    """The audio files under `folder` (recursively, sorted; any of `AUDIO_EXTENSIONS`, in any
    case: `a.WAV`, `b.flac`), or a FileNotFoundError saying what to do."""
    hint = (
        f"--overlap_type speech needs --speech_folder, a folder of speech recordings "
        f"({', '.join(AUDIO_EXTENSIONS)}), e.g. LJSpeech's LJSpeech-1.1/wavs (https://keithito.com/LJ-Speech-Dataset/)"
    )
    if not folder:
        raise FileNotFoundError(hint + ".")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--speech_folder {folder} does not exist: {hint}.")
    files = sorted(path for path in Path(folder).rglob("*") if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file())
    if not files:
        raise FileNotFoundError(f"--speech_folder {folder} holds no audio file: {hint}.")
    return files


class Interference:
    """The signal path of one evaluation set-up: what is added to each test batch.

    Arguments
    ---------
    overlap_type : str
        One of OVERLAP_TYPES.
    dataset : DynamicItemDataset
        The evaluated set (mixtures take their partners from it).
    seed : int
        Makes pairings, speech choices, noise and WHAM! crops reproducible.
    sample_rate : int
    n_samples : int
        Clip length.
    speech_folder : str, optional
        For overlap_type speech.
    wham_mixer : data_prep.wham_prepare.WhamMixer, optional
        WHAM! noise (the brain's `wham_mixer`) for overlap_type none.
    """

    def __init__(
        self,
        overlap_type,
        dataset,
        seed,
        sample_rate,
        n_samples,
        speech_folder=None,
        wham_mixer=None,
    ):
        if overlap_type not in OVERLAP_TYPES:
            raise ValueError(f"overlap_type {overlap_type!r}: choose one of {OVERLAP_TYPES}.")
        self.overlap_type = overlap_type
        self.dataset = dataset
        self.sample_rate, self.n_samples = sample_rate, n_samples
        self.wham_mixer = wham_mixer if overlap_type == "none" else None
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)  # pairings and speech choices
        if overlap_type == "mixtures":
            self.partner = pair_different_classes(dataset_labels(dataset), self.generator)  # (N,)
        elif overlap_type == "speech":
            self.speech = speech_files(speech_folder)
            self.choice = torch.randint(len(self.speech), (len(dataset),), generator=self.generator)

    def batch_generator(self, start):
        """The generator of position `start`: white noise draws one per clip (at the clip's
        position), WHAM!'s crops one per batch (at its first clip's). They depend on positions
        only, so a run sharded over processes draws what one process does."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + int(start))

    def interference(self, start, count):
        """The (count, T) signals mixed into the clips start .. start + count - 1."""
        if self.overlap_type == "white_noise":  # each clip's own draw: any batch size, any sharding
            return torch.stack(
                [torch.randn(self.n_samples, generator=self.batch_generator(start + i)) for i in range(count)]
            )
        if self.overlap_type == "mixtures":
            with self.dataset.output_keys_as(["sig"]):  # file reads, one per clip
                return torch.stack(
                    [self.dataset[int(j)]["sig"] for j in self.partner[start : start + count]]
                )
        files = [self.speech[int(j)] for j in self.choice[start : start + count]]
        return torch.stack([load_clip(path, self.sample_rate, self.n_samples) for path in files])

    def mix(self, wavs, start):
        """The evaluated waveforms for clips start .. start + B - 1 and how they were made.

        Arguments
        ---------
        wavs : torch.Tensor
            The dataset's clips (B, T).
        start : int
            The position of the first one in the evaluated set.

        Returns
        -------
        Mixture
            wavs (B, T) == gain (B, 1) * the clips + added (B, T): the clips as they
            are (gain 1, nothing added), with WHAM! noise (gain 1), or the 0.8 / 0.2
            mixture (`overlap_parts`).
        """
        if self.overlap_type == "none":
            gain = torch.ones_like(wavs[:, :1])  # (B, 1)
            if self.wham_mixer is None:
                return Mixture(wavs, gain, torch.zeros_like(wavs))
            noisy = self.wham_mixer(wavs, self.batch_generator(start))
            return Mixture(noisy, gain, noisy - wavs)
        gain, added = overlap_parts(wavs, self.interference(start, wavs.shape[0]).to(wavs))
        return Mixture(gain * wavs + added, gain, added)

    def __call__(self, wavs, start):
        """The evaluated waveforms (B, T) for clips start .. start + B - 1 (`mix`'s wavs)."""
        return self.mix(wavs, start).wavs
