"""Tests for recipes/core/pipeline.py's inversion of a magnitude with the input's phase."""

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
