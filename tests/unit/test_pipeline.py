"""Tests for recipes/core/pipeline.py's inversion of a magnitude with the input's phase."""

import pytest
import torch
from speechbrain.processing.features import ISTFT, STFT

from recipes.core.pipeline import invert_to_audio, spectrogram

STFT_ARGS = dict(sample_rate=16000, n_fft=1024, hop_length=11.6099, win_length=23.2199)


def _polar_spec(X, X_stft):
    """The spectrum built from magnitude and angle, the textbook way."""
    phase = torch.atan2(X_stft[..., 1], X_stft[..., 0])
    magnitude = torch.expm1(X).clamp(min=0.0)
    return torch.stack((magnitude * torch.cos(phase), magnitude * torch.sin(phase)), dim=-1)


def test_same_audio_as_magnitude_and_angle():
    torch.manual_seed(0)
    istft = ISTFT(**STFT_ARGS)
    wav = torch.randn(3, 8000)
    X, X_stft = spectrogram(wav, STFT(**STFT_ARGS))
    X_new = X * torch.rand_like(X)  # an interpretation: another magnitude, same phase
    expected = istft(_polar_spec(X_new, X_stft), sig_length=8000)
    audio = invert_to_audio(X_new, X_stft, istft, 8000)
    assert audio.shape == (3, 8000)
    torch.testing.assert_close(audio, expected, atol=1e-5, rtol=1e-5)


def test_bins_without_phase_are_finite_with_phase_zero():
    torch.manual_seed(0)
    istft = ISTFT(**STFT_ARGS)
    X_stft = torch.randn(2, 16, 513, 2)
    X_stft[0, :4] = 0.0  # digital silence
    X_stft[1, :4] = 1e-40  # below the smallest normal float: no usable ratio
    X = torch.rand(2, 16, 513) * 3
    X[1, :4] = 5.0  # magnitude / |X_stft| overflows float32 there
    audio = invert_to_audio(X, X_stft, istft)
    assert torch.isfinite(audio).all()
    spec = _polar_spec(X, X_stft)
    spec[1, :4] = torch.stack((torch.expm1(X[1, :4]), torch.zeros(4, 513)), dim=-1)
    torch.testing.assert_close(audio, istft(spec), atol=1e-5, rtol=1e-5)


def test_complete_mask_is_the_connected_above_floor_regions_the_mask_touches():
    """complete_mask against an independent implementation: for a binary mask, the bins of
    the 8-connected components of R = floor_mask(X, "log") >= 0.5 that hold a masked bin
    (scipy.ndimage.label), plus the mask itself; with two seed values, each region takes the
    highest value that reaches it."""
    import numpy as np
    from scipy import ndimage

    from recipes.core.pipeline import complete_mask, floor_mask

    generator = torch.Generator().manual_seed(3)
    X = torch.rand(2, 40, 30, generator=generator) * 0.5 + 1.0  # a floor between 1 and 1.5
    X[:, 5:9, 2:20] = 6.0  # events: a band, a diagonal, a block
    for i in range(12):
        X[:, 20 + i, 5 + i] = 6.0
    X[:, 30:36, 22:28] = 6.0
    mask = torch.zeros(2, 40, 30)
    mask[0, 6, 10] = 1.0  # clip 0: the band only
    mask[1, 25, 10] = 1.0  # clip 1: the diagonal (8-connected), and a bin outside every region
    mask[1, 0, 0] = 1.0
    region = (floor_mask(X, "log") >= 0.5).numpy()
    completed = complete_mask(mask, X)
    for b in range(2):
        labels, _ = ndimage.label(region[b], structure=np.ones((3, 3)))
        touched = set(np.unique(labels[mask[b].numpy() > 0])) - {0}
        expected = np.isin(labels, list(touched)) | (mask[b].numpy() > 0)
        assert np.array_equal(completed[b].numpy() > 0, expected)
        assert set(np.unique(completed[b].numpy())) <= {0.0, 1.0}
    assert completed[0, 30:36, 22:28].sum() == 0 and completed[1, 5:9, 2:20].sum() == 0
    assert completed[1, 31, 16] == 1.0  # the diagonal's far end
    # two seeds in one region: the higher value wins over the region; the lower keeps its own
    # bin only where it is higher than what reaches it (never: it is lower)
    two = torch.zeros(1, 40, 30)
    two[0, 6, 3], two[0, 6, 18] = 0.3, 0.9
    grown = complete_mask(two, X[:1])
    assert torch.equal(grown[0, 5:9, 2:20], torch.full((4, 18), 0.9))


def test_complete_mask_follows_a_winding_region_to_its_end():
    """A snake through a 13 x 7 clip of 1s: frames 0, 2 and 4 at 4 over every bin, joined by
    bin 6 of frame 1 and bin 0 of frame 3 (each bin's median over the 13 frames is 1, so
    floor_mask(X, "log") = (4 - 1) / 4 = 0.75 >= 0.5 on the snake, 0 elsewhere). From
    its head, (0, 0), its tail (4, 6) is 18 steps away (5 + 1 + 1 + 4 + 1 + 1 + 5, 8-connected),
    more than the clip's 13 frames: the whole snake, 23 bins, takes the mask's value."""
    from recipes.core.pipeline import complete_mask

    X = torch.ones(1, 13, 7)
    X[0, [0, 2, 4]] = 4.0
    X[0, 1, 6] = X[0, 3, 0] = 4.0
    mask = torch.zeros(1, 13, 7)
    mask[0, 0, 0] = 1.0
    completed = complete_mask(mask, X)
    assert completed[0, 4, 6] == 1.0
    assert torch.equal(completed, (X == 4.0).float())


def test_complete_mask_refuses_a_mask_with_nan():
    from recipes.core.pipeline import complete_mask

    mask = torch.zeros(1, 4, 5)
    mask[0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        complete_mask(mask, torch.ones(1, 4, 5))


def test_match_frames_pads_and_crops_at_the_end():
    """A decoder's frames are the input's first ones: missing frames are zeros after them,
    extra ones are cut from the end."""
    from recipes.core.pipeline import match_frames

    decoded = torch.tensor([[[1.0], [2.0]]])  # (1, 2 frames, 1 bin)
    assert match_frames(decoded, 4)[0, :, 0].tolist() == [1.0, 2.0, 0.0, 0.0]
    assert match_frames(decoded, 1)[0, :, 0].tolist() == [1.0]


def test_fit_to_input_resizes_a_grid_with_pixel_centres_by_hand():
    """Two bins (0, 1) onto four (bilinear, align_corners False): the sources of the output
    bins are (i + 0.5) 2 / 4 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to [0, 1]: 0, 0.25,
    0.75, 1."""
    from recipes.core.pipeline import fit_to_input

    grid = type("Backbone", (), {"spans_input": True})()
    resized = fit_to_input(torch.tensor([[[0.0, 1.0]]]), 1, 4, grid)
    assert resized[0, 0].tolist() == pytest.approx([0.0, 0.25, 0.75, 1.0])
