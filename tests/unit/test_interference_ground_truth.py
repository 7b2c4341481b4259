"""Ground truth out of distribution (issue 25): the interference joins the background.

For every set-up of `data_prep.interference.Interference` (the clips as they are,
WHAM! noise, another clip, white noise, speech), the sources of the evaluated clip
that `GroundTruth.sources` gives, target' = g target and background' = g background
+ the interference as mixed in, sum to the evaluated clip exactly (float rounding):
the interference is scaled as it is mixed, and the target stays the target.
On the tiny synthetic set (data files only, no training).
"""

import csv

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from data_prep.audio import load_clip
from data_prep.ground_truth import GroundTruth
from data_prep.interference import Interference, overlap_mix, overlap_parts, speech_files
from data_prep.wham_prepare import WhamMixer

N_SAMPLES = 16000  # the tiny set's 1 s clips at 16 kHz


@pytest.fixture(scope="module")
def test_fold(tiny_synthetic):
    """The tiny set's fold 5 (3 clips, 3 classes): (dataset, ids, clips (3, T))."""
    with open(tiny_synthetic / "meta" / "esc50.csv", newline="") as fin:
        rows = [row for row in csv.DictReader(fin) if row["fold"] == "5"]
    ids = [row["filename"].removesuffix(".wav") for row in rows]
    clips = torch.stack(
        [load_clip(tiny_synthetic / "audio" / row["filename"], 16000, N_SAMPLES) for row in rows]
    )
    data = {
        clip_id: {"sig": clip, "class_string_encoded": torch.tensor([int(row["target"])])}
        for clip_id, clip, row in zip(ids, clips, rows)
    }
    return DynamicItemDataset(data, output_keys=["id", "sig"]), ids, clips


@pytest.fixture(scope="module")
def speech_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    rng = np.random.default_rng(0)
    for i in range(2):  # 22.05 kHz, resampled when read
        t = np.arange(22050) / 22050
        sf.write(
            folder / f"LJ{i}.wav",
            0.3 * np.sin(2 * np.pi * 200 * (i + 1) * t) + 0.01 * rng.standard_normal(22050),
            22050,
        )
    return folder


def interference_of(kind, dataset, speech_folder):
    if kind == "wham":  # in distribution with WHAM! noise (noise clips of another length)
        noise = torch.randn(2, 5000, generator=torch.Generator().manual_seed(0))
        return Interference(
            "none", dataset, 3, 16000, N_SAMPLES, wham_mixer=WhamMixer(noise, snr_db=0.0)
        )
    return Interference(kind, dataset, 3, 16000, N_SAMPLES, speech_folder=str(speech_folder))


@pytest.mark.parametrize("kind", ["none", "wham", "mixtures", "white_noise", "speech"])
def test_target_plus_background_is_the_evaluated_clip(
    tiny_synthetic, test_fold, speech_folder, kind
):
    dataset, ids, clips = test_fold
    interference = interference_of(kind, dataset, speech_folder)
    mixture = interference.mix(clips, 0)
    assert torch.equal(mixture.wavs, interference(clips, 0))  # what eval classifies
    target, background = GroundTruth(tiny_synthetic, 16000, N_SAMPLES).sources(ids, clips, mixture)
    assert (target + background - mixture.wavs).abs().max() < 1e-6  # the exact sum
    clean_target, _ = GroundTruth(tiny_synthetic, 16000, N_SAMPLES).sources(ids, clips)
    assert torch.allclose(target, mixture.gain * clean_target)  # the target stays the target
    if kind == "none":
        assert mixture.wavs is clips and torch.equal(target, clean_target)
    else:  # something was added, and it went to the background
        assert (mixture.added.abs().amax(dim=1) > 0.01).all()


def test_overlap_parts_scales_each_clip_by_its_own_norm_by_hand():
    """Two clips with interferences of norms 2 and 4: each is 0.2 n / |n| = (0, 0.2, 0, 0)
    beside 0.8 x / 3 = (0.8, 0, 0, 0), peak 0.8: gain 1/3 and (0, 0.25, 0, 0) for both. And
    x = (1, 1, 1, 1), |x| = 2 (not its peak 1): 0.4 per sample plus 0.2 at sample 1, peak
    0.6: gain 0.4 / 0.6 = 2/3, the interference (0, 1/3, 0, 0)."""
    clips = torch.tensor([[3.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0]])
    noise = torch.tensor([[0.0, 2.0, 0.0, 0.0], [0.0, 4.0, 0.0, 0.0]])
    gain, added = overlap_parts(clips, noise)
    assert gain.flatten().tolist() == pytest.approx([1 / 3, 1 / 3])
    assert added.tolist() == [pytest.approx([0.0, 0.25, 0.0, 0.0])] * 2
    gain, added = overlap_parts(torch.ones(1, 4), torch.tensor([[0.0, 2.0, 0.0, 0.0]]))
    assert gain.item() == pytest.approx(2 / 3) and added.tolist()[0] == pytest.approx([0, 1 / 3, 0, 0])


def test_sources_are_padded_like_the_clips_when_the_recipe_reads_longer_clips(tiny_synthetic, test_fold):
    """At a signal_length_s beyond the files' 1 s, load_clip pads each clip with zeros; the
    sources are read the same way, so they still sum to the clip and are 0 in the padding."""
    _, ids, _ = test_fold
    longer = int(1.5 * N_SAMPLES)
    clips = torch.stack([load_clip(tiny_synthetic / "audio" / f"{clip_id}.wav", 16000, longer) for clip_id in ids])
    target, background = GroundTruth(tiny_synthetic, 16000, longer).sources(ids, clips)
    assert target.shape == background.shape == (3, longer)
    assert not target[:, N_SAMPLES:].any() and not background[:, N_SAMPLES:].any()
    assert (target + background - clips).abs().max() < 1e-6


def test_overlap_parts_by_hand():
    """x = (3, 0, 0, 0), n = (0, 2, 0, 0): 0.8 x / 3 + 0.2 n / 2 = (0.8, 0.2, 0, 0), peak 0.8:
    gain 1 / 3 on the clip, the interference (0, 0.25, 0, 0)."""
    clips, noise = torch.tensor([[3.0, 0.0, 0.0, 0.0]]), torch.tensor([[0.0, 2.0, 0.0, 0.0]])
    gain, added = overlap_parts(clips, noise)
    assert gain.item() == pytest.approx(1 / 3) and added.tolist()[0] == pytest.approx(
        [0.0, 0.25, 0.0, 0.0]
    )
    assert overlap_mix(clips, noise).tolist()[0] == pytest.approx([1.0, 0.25, 0.0, 0.0])


def test_speech_files_are_every_audio_format_in_any_case(tmp_path):
    """A speech folder of `.WAV` (as some recorders write) or `.flac` files is read, not refused
    as holding no file; other files and a folder named like audio are left out."""
    (tmp_path / "b.flac").mkdir()  # a folder, not a file
    (tmp_path / "b.flac" / "c.ogg").write_bytes(b"")
    for name in ("a.WAV", "d.mp3", "e.wav", "notes.txt", "wav"):
        (tmp_path / name).write_bytes(b"")
    names = [path.relative_to(tmp_path).as_posix() for path in speech_files(str(tmp_path))]
    assert names == ["a.WAV", "b.flac/c.ogg", "d.mp3", "e.wav"]
    (tmp_path / "only_text").mkdir()
    (tmp_path / "only_text" / "x.txt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"only_text holds no audio file: .*\.wav, \.flac, \.ogg, \.mp3"):
        speech_files(str(tmp_path / "only_text"))
