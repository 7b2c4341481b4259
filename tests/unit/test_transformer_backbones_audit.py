"""Mutation audit of models/transformer_backbones.py: what test_transformer_backbones.py lets through.

Every expected value here comes from outside the module under test:

- AST's input against `transformers`' own `ASTFeatureExtractor` on the same waveform (its
  default torchaudio Kaldi fbank, and its numpy path, which frames 400 samples at any rate),
  X being that extractor's frames written out in numpy (DC removal, pre-emphasis, Hann,
  FFT 512); Kaldi's triangles are linear in mel, the module's in Hz: < 2e-3 apart here;
- the log floor, the clamp of negative X and the AudioSet normalisation by hand (log 2^-23);
- the token grid's shape from the stride arithmetic by hand, its cells read from
  `ASTModel`'s own last hidden state (patch p = mel row x columns + time column, after CLS
  and distillation);
- the mel position of each linear bin at 8 kHz from the HTK formula in numpy;
- the size-mismatch message's flags written out; the FocalNet stages' channels from the
  stages' own outputs; legacy checkpoints from `save_pretrained` (transformers 4 names).
"""

import math

import numpy as np
import pytest
import torch
import transformers.models.audio_spectrogram_transformer.feature_extraction_audio_spectrogram_transformer as ast_fe
from safetensors.torch import load_file
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    ASTModel,
    FocalNetBackbone,
    FocalNetConfig,
    ViTConfig,
    ViTModel,
)
from transformers.audio_utils import window_function

from models.transformer_backbones import AudioAST, AudioFocalNet, AudioViT

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
TINY_VIT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
TINY_FOCALNET = {"image_size": 56, "embed_dim": 16, "depths": [1, 1], "focal_levels": [2, 2], "focal_windows": [3, 3]}


def extractor_frames(wave):
    """log1p |rfft| of the frames ASTFeatureExtractor's numpy path cuts (400 samples, hop 160,
    DC removed, pre-emphasis 0.97, symmetric Hann, FFT 512): (frames, 257)."""
    n = 1 + (len(wave) - 400) // 160
    frames = np.stack([wave[i * 160 : i * 160 + 400].astype(np.float64) for i in range(n)])
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames[:, 1:] = frames[:, 1:] - 0.97 * frames[:, :-1]
    frames[:, 0] *= 1 - 0.97
    return np.log1p(np.abs(np.fft.rfft(frames * window_function(400, "hann", periodic=False), n=512)))


@pytest.mark.parametrize(
    "path, sizes",
    [
        ("torchaudio", {}),  # the extractor's default: Kaldi's fbank, at the reference's sizes
        ("numpy", {}),
        # its numpy path frames 400 samples whatever the rate, as X here
        ("numpy", {"sample_rate": 8000, "num_mel_bins": 64, "mel_mean": -1.0, "mel_std": 4.0}),
    ],
)
def test_log_mel_equals_the_ast_feature_extractor(path, sizes, monkeypatch):
    """Kills: float64 eps as the floor (silence), mel_mean / mel_std / sample_rate arguments
    ignored, num_mel_bins hard-coded to 128, the filters at 16 kHz whatever sample_rate."""
    if path == "numpy":
        monkeypatch.setattr(ast_fe, "is_speech_available", lambda: False)
    rate = sizes.get("sample_rate", 16000)
    extractor = ASTFeatureExtractor(
        sampling_rate=rate,
        num_mel_bins=sizes.get("num_mel_bins", 128),
        max_length=120,
        mean=sizes.get("mel_mean", -4.2677393),
        std=sizes.get("mel_std", 4.5689974),
    )
    rng = np.random.default_rng(0)
    t = np.arange(rate) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(rate)
    wave[int(0.375 * rate) : int(0.5625 * rate)] = 0.0  # silent frames: every band at the floor
    wave = wave.astype(np.float32)
    expected = extractor(wave, sampling_rate=rate, return_tensors="np").input_values[0]  # (120, mels)
    ast = AudioAST(max_length=120, **TINY, **sizes)
    X = torch.tensor(extractor_frames(wave), dtype=torch.float32).unsqueeze(0)
    assert X.shape[1] < 120  # padded
    np.testing.assert_allclose(ast.log_mel(X)[0].numpy(), expected, atol=2e-3, rtol=0)


def test_log_mel_floor_and_negative_input_by_hand():
    """Mel energies under float32 eps are floored (not eps added), and X < 0 (a noisy or
    shifted log1p magnitude) is no magnitude: log(2^-23) for every band; zeros after the clip.
    Kills: float64 eps, log(E + eps), power without the clamp at 0, filters not cast to X's dtype."""
    ast = AudioAST(max_length=40, **TINY)
    X = torch.full((1, 30, 513), math.log1p(5e-5))  # |S|^2 = 2.5e-9 a bin: < 1.2e-7 in every band
    X[:, 15:] = -0.5  # expm1 < 0
    floor = (math.log(2.0**-23) - -4.2677393) / (2 * 4.5689974)
    padding = (0.0 - -4.2677393) / (2 * 4.5689974)
    expected = torch.tensor([floor] * 30 + [padding] * 10).view(40, 1).expand(40, 128)
    torch.testing.assert_close(ast.log_mel(X)[0], expected, atol=1e-5, rtol=0)
    # float64 X (the filters follow its dtype): the same values
    torch.testing.assert_close(ast.log_mel(X.double())[0], expected.double(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("n_frames, covering", [(100, 11), (50, 6), (17, 2), (16, 1), (5, 1)])
def test_grid_with_unequal_strides_and_short_clips(n_frames, covering):
    """frequency_stride 12, time_stride 8, 100 frames: (128 - 16) // 12 + 1 = 10 mel rows,
    (100 - 16) // 8 + 1 = 11 time columns; a clip of n frames keeps the first
    ceil(max(n - 16, 0) / 8) + 1 columns, and cell (t, f) is patch f * 11 + t of ASTModel.
    Kills: a stride for the other (rows, columns, covering, the config's time_stride),
    a negative count below one patch, the last columns instead of the first."""
    torch.manual_seed(0)
    ast = AudioAST(max_length=100, frequency_stride=12, time_stride=8, **TINY).eval()
    X = torch.rand(1, n_frames, 257) * 2
    _, grid = ast(X)
    assert grid.shape == (1, 32, covering, 10)
    tokens = ASTModel.forward(ast, input_values=ast.log_mel(X)).last_hidden_state
    assert tokens.shape[1] == 2 + 10 * 11
    expected = torch.stack([torch.stack([tokens[0, 2 + f * 11 + t] for f in range(10)], -1) for t in range(covering)], 1)
    torch.testing.assert_close(grid[0], expected)


def test_grid_to_input_at_8_khz():
    """A ramp over the 128 bands (value = band index) read at each of 257 bins of a 8 kHz STFT:
    the bin's position between the filters' peaks, n_mels + 2 points equally spaced in HTK
    mel from 20 Hz to 4 kHz. Kills: the mel axis mapped at 16 kHz whatever sample_rate."""
    ast = AudioAST(max_length=40, sample_rate=8000, **TINY)
    ramp = torch.arange(128, dtype=torch.float32).expand(1, 4, 128)

    def mel(hz):
        return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)

    peaks = np.linspace(mel(20.0), mel(4000.0), 130)[1:-1]
    expected = np.interp(mel(np.linspace(0, 4000, 257)), peaks, np.arange(128))  # clamped at both ends
    mapped = ast.grid_to_input(ramp, 4, 257)
    assert mapped.shape == (1, 4, 257)
    np.testing.assert_allclose(mapped[0, 2].numpy(), expected, atol=1e-3)


def mismatch_message(model, folder):
    with pytest.raises(ValueError) as error:
        model.load_pretrained_backbone(str(folder))
    return str(error.value)


def test_every_size_key_is_reported_with_its_flag(tmp_path):
    """A checkpoint that differs in every size key names every flag, lists without spaces.
    Kills: a key left out of AudioViT's / AudioFocalNet's / AudioAST's size_keys, `_flag_value`
    without the space removal or blind to lists."""
    ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=1, intermediate_size=24)).save_pretrained(tmp_path / "vit")
    message = mismatch_message(AudioViT(**TINY_VIT), tmp_path / "vit")
    assert message.endswith(
        "run with --image_size 32 --patch_size 8 --hidden_size 16 --num_hidden_layers 1 "
        "--num_attention_heads 1 --intermediate_size 24."
    )
    FocalNetBackbone(
        FocalNetConfig(image_size=32, patch_size=2, embed_dim=8, depths=[1, 1, 1], focal_levels=[1, 1, 1],
                       focal_windows=[2, 2, 2], hidden_sizes=[16, 32, 32])
    ).save_pretrained(tmp_path / "focalnet")
    message = mismatch_message(AudioFocalNet(**TINY_FOCALNET), tmp_path / "focalnet")
    assert message.endswith(
        "run with --image_size 32 --patch_size 2 --embed_dim 8 --depths [1,1,1] --focal_levels [1,1,1] "
        "--focal_windows [2,2,2]."
    )
    ASTModel(ASTConfig(num_mel_bins=64, max_length=100, patch_size=8, frequency_stride=6, time_stride=5, hidden_size=16,
                       num_hidden_layers=2, num_attention_heads=1, intermediate_size=24)).save_pretrained(tmp_path / "ast")
    message = mismatch_message(AudioAST(max_length=259, **TINY), tmp_path / "ast")
    assert message.endswith(
        "run with --num_mel_bins 64 --max_length 100 --patch_size 8 --frequency_stride 6 --time_stride 5 "
        "--hidden_size 16 --num_hidden_layers 2 --num_attention_heads 1 --intermediate_size 24."
    )


def test_pretrained_backbone_from_a_folder_under_home(tmp_path, monkeypatch):
    """`--pretrained_backbone ~/vit` reads $HOME/vit; `~/empty` says the folder holds no checkpoint
    (not the hub id's offline error). Kills: `~` not expanded for the read or the folder check."""
    monkeypatch.setenv("HOME", str(tmp_path))
    torch.manual_seed(1)
    reference = ViTModel(ViTConfig(**TINY_VIT))
    reference.save_pretrained(tmp_path / "vit")
    vit = AudioViT(**TINY_VIT).load_pretrained_backbone("~/vit")
    assert torch.equal(vit.state_dict()["layers.1.mlp.fc2.weight"], reference.state_dict()["layers.1.mlp.fc2.weight"])
    (tmp_path / "empty").mkdir()
    assert "holds no config.json, so no ViTModel checkpoint" in mismatch_message(AudioViT(**TINY_VIT), "~/empty")


def test_legacy_names_load_for_ast_and_inside_a_parent_module(tmp_path):
    """transformers 4's names (what save_pretrained writes) load strictly into AudioAST, and into an
    AudioViT held by a parent module (keys prefixed). Kills: AST without the renaming hook, the
    hook blind to the module's prefix."""
    torch.manual_seed(2)
    reference = ASTModel(ASTConfig(max_length=100, **TINY))
    reference.save_pretrained(tmp_path / "ast")
    legacy = load_file(str(tmp_path / "ast" / "model.safetensors"))
    assert any(key.startswith("encoder.layer.0.attention.attention.") for key in legacy)
    ast = AudioAST(max_length=100, **TINY)
    ast.load_state_dict(legacy, strict=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(ast.state_dict()[key], value), key
    vit_reference = ViTModel(ViTConfig(**TINY_VIT))
    vit_reference.save_pretrained(tmp_path / "vit")
    legacy = load_file(str(tmp_path / "vit" / "model.safetensors"))
    parent = torch.nn.ModuleDict({"embedding_model": AudioViT(**TINY_VIT)})
    parent.load_state_dict({f"embedding_model.{key}": value for key, value in legacy.items()}, strict=True)
    for key, value in vit_reference.state_dict().items():
        assert torch.equal(parent["embedding_model"].state_dict()[key], value), key


def test_focalnet_hidden_sizes_are_the_stages_channels():
    """The config's hidden_sizes (what save_pretrained writes, what `channels` reads) are the
    stages' output channels: 8 -> 16 -> 32 -> 32 for three stages (the last one not downsampled).
    Kills: hidden_sizes one doubling short ([8, 16, 32])."""
    net = AudioFocalNet(image_size=32, embed_dim=8, depths=[1, 1, 1], focal_levels=[2, 2, 2], focal_windows=[3, 3, 3])
    assert net.config.hidden_sizes == [16, 32, 32]
    stages = net.focalnet(torch.rand(1, 3, 32, 32), output_hidden_states=True).reshaped_hidden_states[1:]
    assert [stage.shape[1] for stage in stages] == net.config.hidden_sizes
    assert net.channels == [32]  # the last stage, the feature map the backbone returns
