"""Transformer backbones of `transformers` as spectrogram classifiers' embedding models.

Each class here is the `transformers` model itself (a subclass: its state dict
is the model's, key for key, so the published checkpoints load with
`strict=True`) whose `forward` follows the classifier contract of
`recipes.core.pipeline.split_classifier_output`: it reads the log1p
magnitude spectrogram X (B, frames, F) and returns

    embedding       (B, D)            the head's input (ECAPA `Classifier(input_size=D)`)
    representation  (B, D, T', F')    a grid over (time, frequency) that spans the whole clip

as the public ESC-50 recipes compute them: X resized to `image_size` x
`image_size` (time as rows, frequency as columns), copied to 3 channels.

- `AudioViT` (`transformers.ViTModel`, reference `google/vit-base-patch16-224`):
  embedding = the mean over all tokens (CLS included); representation = the
  patch tokens without CLS on their (image / patch) x (image / patch) grid
  (14 x 14 at the reference sizes).
- `AudioFocalNet` (`transformers.FocalNetBackbone`, reference
  `microsoft/focalnet-base`): embedding = the mean of the last feature map;
  representation = that map upsampled 2x (7 x 7 -> 14 x 14 at the reference
  sizes), what the seed's `VectorQuantizedPSIFocalNet_Audio` decodes.
- `AudioAST` (`transformers.ASTModel`, the Audio Spectrogram Transformer,
  reference `MIT/ast-finetuned-audioset-10-10-0.4593`): not an image. X becomes
  128 log-mel bins (power, Kaldi's mel scale), zero-padded to `max_length`
  frames and normalised as `ASTFeatureExtractor` does; 16 x 16 patches with
  strides 10 x 10 give a frequency x time token grid (12 x 101 at the
  reference sizes). embedding = the mean of the CLS and distillation tokens
  (`ASTModel`'s pooled output); representation = the patch tokens on their
  grid, transposed to (time, mel) and cut to the columns that cover the clip.
  Its decoders' outputs are on a mel axis: `grid_to_input` puts them back on
  the STFT's linear bins (`mel_to_linear`), not by a plain resize.

Adding a backbone is one small class: a `transformers` model subclass with
`TransformerBackbone` (or `SpectrogramImageBackbone` for an image model) first
in its bases, a constructor from sizes, and a `forward(X)` that returns
(embedding, representation).

Sizes are constructor arguments (the yamls' top-level keys), the reference
sizes their defaults; `load_pretrained_backbone` replaces the weights by those
of `from_pretrained` (a local folder, or a hub id when online).

Authors
 * audio-interpret contributors 2026
"""

import functools
import json
import math
import os
import re

import torch
import torch.nn.functional as F
from torchaudio.functional import melscale_fbanks
from transformers import (
    ASTConfig,
    ASTModel,
    FocalNetBackbone,
    FocalNetConfig,
    PretrainedConfig,
    ViTConfig,
    ViTModel,
)


def spectrogram_image(X, image_size):
    """X (B, frames, F) resized to (B, 3, image_size, image_size), copied to 3 channels.

    Bilinear with antialiasing, as torchvision's `resize` of the public recipes.

    Example
    -------
    >>> spectrogram_image(torch.rand(2, 259, 513), 224).shape
    torch.Size([2, 3, 224, 224])
    """
    image = F.interpolate(
        X.unsqueeze(1), size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
    )  # (B, 1, S, S)
    return image.expand(-1, 3, -1, -1)


class TransformerBackbone:
    """Mixin of the transformer backbones: a grid that spans the clip, and pretrained weights.

    Class attributes the interpreters read:

    - `spans_input = True`: the representation grid covers the whole clip
      whatever its length, so a decoder's output is resized onto X's frames and
      bins rather than cropped (`recipes.core.pipeline.fit_to_input`; a
      backbone whose grid is not X's axes, AST's mel rows, gives its own
      `grid_to_input`), and the AMT baseline (the grid as an activation map)
      applies.
    - `size_keys`: the config fields the yamls set; `load_pretrained_backbone`
      checks them against the pretrained config.
    """

    spans_input = True
    size_keys = ()
    #: The `transformers` class whose `from_pretrained` reads the checkpoints (its own key
    #: conversions apply to it, not to a subclass).
    pretrained_class = None
    #: Prefixes of the weights the backbone's forward does not use, which a checkpoint may lack
    #: (a task model's checkpoint has no pooler): they keep their initial values.
    unused_weights = ()

    def load_pretrained_backbone(self, source):
        """Replaces the weights by `from_pretrained(source)`'s (strict), sizes checked first.

        A checkpoint of another model type, or one that leaves weights of the backbone
        missing (which transformers would initialise at random, with only a log line), is
        refused.

        Arguments
        ---------
        source : str
            A local folder (`save_pretrained` layout: config.json + weights),
            or a hub id (e.g. google/vit-base-patch16-224), fetched when online.
        """
        path = os.path.expanduser(source)
        local = os.path.isdir(path)
        expected_type = self.pretrained_class.config_class.model_type
        if not local and (os.path.exists(path) or os.path.isabs(path) or path.startswith(".") or path.count("/") > 1):
            what = "is a file" if os.path.exists(path) else "does not exist"
            raise ValueError(
                f"--pretrained_backbone {source} {what}: give the folder save_pretrained wrote "
                "(config.json and the weights), or a hub id owner/name."
            )
        if local:
            config_path = os.path.join(path, "config.json")
            if not os.path.isfile(config_path):
                raise ValueError(
                    f"--pretrained_backbone {source}: the folder holds no config.json, so no "
                    f"{self.pretrained_class.__name__} checkpoint; give a folder written by "
                    "save_pretrained (config.json and the weights)."
                )
            with open(config_path, encoding="utf-8") as fin:
                try:
                    found_type = json.load(fin).get("model_type")
                except (ValueError, AttributeError) as error:
                    raise ValueError(f"--pretrained_backbone {source}: {config_path} is not a json object ({error}).") from error
        try:
            if not local:  # the hub's config.json as written: from_pretrained reads it as its own class's
                found_type = PretrainedConfig.get_config_dict(path)[0].get("model_type")
            self._check_model_type(source, found_type, expected_type)
            pretrained, loading = self.pretrained_class.from_pretrained(
                path, local_files_only=local, output_loading_info=True
            )
        except OSError as error:
            if local:
                raise ValueError(
                    f"--pretrained_backbone {source}: the folder holds no {self.pretrained_class.__name__} "
                    f"checkpoint that transformers can read ({error}); give a folder written by "
                    "save_pretrained (config.json and the weights)."
                ) from error
            raise ValueError(
                f"--pretrained_backbone {source}: cannot fetch the hub id ({error}). Offline? "
                "Download it where there is a network (e.g. `hf download "
                f"{source} --local-dir DIR`) and pass the local folder: --pretrained_backbone DIR."
            ) from error
        missing = sorted(
            key
            for key in [*loading["missing_keys"], *(item[0] for item in loading["mismatched_keys"])]
            if not key.startswith(self.unused_weights)
        )
        if missing:
            raise ValueError(
                f"--pretrained_backbone {source}: the checkpoint lacks {len(missing)} of the "
                f"backbone's weights or holds them in other shapes ({', '.join(missing[:3])}"
                f"{', ...' if len(missing) > 3 else ''}); they would start at random. Give a complete "
                f"{self.pretrained_class.__name__} checkpoint (save_pretrained of the whole model)."
            )
        differing = {
            key: getattr(pretrained.config, key)
            for key in self.size_keys
            if getattr(pretrained.config, key) != getattr(self.config, key)
        }
        if differing:
            flags = " ".join(f"--{key} {_flag_value(value)}" for key, value in differing.items())
            raise ValueError(
                f"--pretrained_backbone {source} has other sizes than the yaml: run with {flags}."
            )
        self.load_state_dict(pretrained.state_dict(), strict=True)
        return self

    def _check_model_type(self, source, found, expected):
        """Refuses a checkpoint of another model type (a FocalNet's folder for the ViT yaml)."""
        if found != expected:
            raise ValueError(
                f"--pretrained_backbone {source} holds a {found!r} checkpoint, and this yaml's "
                f"backbone is {expected!r} ({self.pretrained_class.__name__}): give a {expected} "
                "checkpoint, or the classifier yaml of its kind (hparams/classifier_vit.yaml, "
                "classifier_focalnet.yaml, classifier_ast.yaml)."
            )


class SpectrogramImageBackbone(TransformerBackbone):
    """The image backbones (ViT, FocalNet): X resized to `image_size` x `image_size`, 3 channels."""

    def spectrogram_image(self, X):
        return spectrogram_image(X, self.config.image_size)


def _flag_value(value):
    """A config value as a command-line override ([2, 2, 18, 2] without spaces)."""
    return str(list(value)).replace(" ", "") if isinstance(value, (list, tuple)) else str(value)


class AudioViT(SpectrogramImageBackbone, ViTModel):
    """`transformers.ViTModel` on spectrograms: (embedding (B, D), token grid (B, D, g, g)).

    Built from `ViTConfig` with these sizes (defaults: ViT-base, 16 x 16 patches of
    224 x 224 images), with the pooling layer as `ViTModel.from_pretrained` builds it
    (unused; kept so the published checkpoints load strictly).

    Example
    -------
    >>> vit = AudioViT(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    >>> embedding, grid = vit(torch.rand(2, 259, 513))
    >>> embedding.shape, grid.shape
    (torch.Size([2, 32]), torch.Size([2, 32, 14, 14]))
    """

    size_keys = ("image_size", "patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    pretrained_class = ViTModel
    unused_weights = ("pooler.",)  # the published image-classification checkpoints have none

    def __init__(
        self,
        config=None,
        image_size=224,
        patch_size=16,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        **kwargs,
    ):
        if config is None:
            config = ViTConfig(
                image_size=image_size,
                patch_size=patch_size,
                hidden_size=hidden_size,
                num_hidden_layers=num_hidden_layers,
                num_attention_heads=num_attention_heads,
                intermediate_size=intermediate_size,
            )
        super().__init__(config, **kwargs)
        self._register_load_state_dict_pre_hook(_vit_legacy_keys)

    def forward(self, X):
        """X (B, frames, F) -> embedding (B, D), patch-token grid (B, D, g, g), g = image / patch."""
        tokens = super().forward(pixel_values=self.spectrogram_image(X)).last_hidden_state  # (B, 1 + g*g, D)
        embedding = tokens.mean(dim=1)  # (B, D): every token, CLS included
        grid_size = self.config.image_size // self.config.patch_size
        grid = tokens[:, 1:].transpose(1, 2).reshape(X.shape[0], -1, grid_size, grid_size)  # (B, D, g, g)
        return embedding, grid


class AudioFocalNet(SpectrogramImageBackbone, FocalNetBackbone):
    """`transformers.FocalNetBackbone` on spectrograms: (embedding (B, D), map upsampled 2x).

    Built from `FocalNetConfig` with these sizes (defaults: FocalNet-base, srf);
    D = embed_dim x 2^(stages - 1) (`focalnet_channels`).

    Example
    -------
    >>> net = AudioFocalNet(image_size=56, embed_dim=8, depths=[1, 1], focal_levels=[2, 2], focal_windows=[3, 3])
    >>> embedding, grid = net(torch.rand(2, 259, 513))
    >>> embedding.shape, grid.shape
    (torch.Size([2, 16]), torch.Size([2, 16, 14, 14]))
    """

    size_keys = ("image_size", "patch_size", "embed_dim", "depths", "focal_levels", "focal_windows")
    pretrained_class = FocalNetBackbone

    def __init__(
        self,
        config=None,
        image_size=224,
        patch_size=4,
        embed_dim=128,
        depths=(2, 2, 18, 2),
        focal_levels=(2, 2, 2, 2),
        focal_windows=(3, 3, 3, 3),
        **kwargs,
    ):
        if config is None:
            n_stages = len(depths)
            config = FocalNetConfig(
                image_size=image_size,
                patch_size=patch_size,
                embed_dim=embed_dim,
                depths=list(depths),
                focal_levels=list(focal_levels),
                focal_windows=list(focal_windows),
                # the stages' output channels as the reference configs list them (a list:
                # FocalNetBackbone concatenates it to one)
                hidden_sizes=[embed_dim * 2 ** min(i + 1, n_stages - 1) for i in range(n_stages)],
            )
        super().__init__(config, **kwargs)

    def forward(self, X):
        """X (B, frames, F) -> embedding (B, D), last feature map upsampled 2x (B, D, 2h, 2w)."""
        feature_map = super().forward(pixel_values=self.spectrogram_image(X)).feature_maps[-1]  # (B, D, h, w)
        embedding = feature_map.mean(dim=(2, 3))  # (B, D)
        grid = F.interpolate(
            feature_map, scale_factor=2, mode="bilinear", antialias=True, align_corners=False
        )  # (B, D, 2h, 2w)
        return embedding, grid


#: ASTFeatureExtractor's normalisation of the log-mel (AudioSet's mean and std; it divides by 2 std).
AST_MEL_MEAN = -4.2677393
AST_MEL_STD = 4.5689974
#: The mel filterbank starts here, Hz (Kaldi's fbank default, which ASTFeatureExtractor uses).
AST_LOW_FREQ = 20.0
#: Kaldi's floor before the log of the mel energies (float32 epsilon).
AST_LOG_FLOOR = torch.finfo(torch.float32).eps


@functools.lru_cache(maxsize=8)
def mel_filterbank(n_bins, n_mels, sample_rate):
    """Triangular mel filters (n_bins, n_mels) on Kaldi's (HTK) mel scale, AST_LOW_FREQ to Nyquist.

    torchaudio's filters: each triangle is linear in Hz between points equally spaced in mel.
    Kaldi's (so ASTFeatureExtractor's) are linear in mel; the weights differ by at most
    2.4e-3 at 16 kHz and 128 bands, about 1e-3 in AST's normalised input
    (tests/unit/test_transformer_backbones_audit.py compares with the extractor).
    """
    return melscale_fbanks(
        n_freqs=n_bins, f_min=AST_LOW_FREQ, f_max=sample_rate / 2, n_mels=n_mels, sample_rate=sample_rate, mel_scale="htk"
    )


def _htk_mel(hz):
    """Hz -> mel on Kaldi's (HTK) scale, for a tensor of frequencies."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


@functools.lru_cache(maxsize=8)
def mel_positions(n_bins, n_mels, sample_rate):
    """Where each linear STFT bin lies on the axis of `mel_filterbank`'s filters (fractional index).

    Filter i peaks at the (i + 1)-th of n_mels + 2 points equally spaced in mel
    from AST_LOW_FREQ to Nyquist; a bin between two peaks gets a fraction.
    Clamped to [0, n_mels - 1] below the first and above the last peak.

    Example
    -------
    >>> positions = mel_positions(513, 128, 16000)
    >>> positions.shape, float(positions[0]), float(positions[-1])
    (torch.Size([513]), 0.0, 127.0)
    """
    low, high = _htk_mel(torch.tensor([AST_LOW_FREQ, sample_rate / 2], dtype=torch.float64))
    mel = _htk_mel(torch.linspace(0, sample_rate / 2, n_bins, dtype=torch.float64))
    positions = (mel - low) / (high - low) * (n_mels + 1) - 1
    return positions.clamp(0, n_mels - 1).float()


def mel_to_linear(mel_map, n_bins, sample_rate):
    """A map over mel bands (B, T, n_mels) on the STFT's linear bins (B, T, n_bins).

    Each bin takes the map at its place on the mel axis (`mel_positions`),
    linearly interpolated between the two nearest filters: a mask over mel
    bands becomes a mask over the bins those bands cover.

    Example
    -------
    >>> band = torch.zeros(1, 1, 128)
    >>> band[..., 60:70] = 1.0  # mel bands 60-69
    >>> linear = mel_to_linear(band, 513, 16000)
    >>> hz = torch.nonzero(linear[0, 0] == 1.0).flatten() * 8000 / 512
    >>> int(hz.min()), int(hz.max())  # the peaks of filters 60 and 69: 1639 and 2084 Hz
    (1640, 2078)
    """
    n_mels = mel_map.shape[-1]
    positions = mel_positions(n_bins, n_mels, sample_rate).to(mel_map.device)
    below = positions.floor().long()
    above = (below + 1).clamp(max=n_mels - 1)
    weight = (positions - below).to(mel_map.dtype)
    return mel_map[..., below] * (1 - weight) + mel_map[..., above] * weight


class AudioAST(TransformerBackbone, ASTModel):
    """`transformers.ASTModel` on spectrograms: (embedding (B, D), token grid (B, D, T', F')).

    Built from `ASTConfig` with these sizes (defaults: the reference AST, 128 mel
    bins, 1024 frames, 16 x 16 patches with strides 10 x 10, ViT-base widths).
    X = log1p |STFT| (B, frames, n_fft / 2 + 1) becomes AST's input as
    `ASTFeatureExtractor` makes it: power mel energies (`mel_filterbank`), their
    log, zero-padded to `max_length` frames, minus `mel_mean`, over 2 `mel_std`.
    A clip may not have more than `max_length` frames (AST's position
    embeddings are learnt for that many; the reference truncates silently, this
    refuses).

    embedding: the mean of the CLS and distillation tokens (`ASTModel`'s pooled
    output, what the reference classifies). Representation: the patch tokens,
    (B, D, T', F') with T' the time columns that cover the clip (those over the
    padding are left out) and F' = (num_mel_bins - patch) / frequency_stride + 1
    mel rows, lowest band first. `grid_to_input` maps a decoder's output from
    this (time, mel) span onto X's frames and linear bins.

    Example
    -------
    >>> ast = AudioAST(max_length=259, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    >>> embedding, grid = ast(torch.rand(2, 259, 513))
    >>> embedding.shape, grid.shape  # (259 - 16) // 10 + 1 = 25 columns, (128 - 16) // 10 + 1 = 12 rows
    (torch.Size([2, 32]), torch.Size([2, 32, 25, 12]))
    >>> ast.grid_to_input(torch.rand(2, 200, 96), 259, 513).shape
    torch.Size([2, 259, 513])
    """

    size_keys = (
        "num_mel_bins",
        "max_length",
        "patch_size",
        "frequency_stride",
        "time_stride",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
    )
    pretrained_class = ASTModel

    def __init__(
        self,
        config=None,
        num_mel_bins=128,
        max_length=1024,
        patch_size=16,
        frequency_stride=10,
        time_stride=10,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        sample_rate=16000,
        mel_mean=AST_MEL_MEAN,
        mel_std=AST_MEL_STD,
        **kwargs,
    ):
        if config is None:
            config = ASTConfig(
                num_mel_bins=num_mel_bins,
                max_length=max_length,
                patch_size=patch_size,
                frequency_stride=frequency_stride,
                time_stride=time_stride,
                hidden_size=hidden_size,
                num_hidden_layers=num_hidden_layers,
                num_attention_heads=num_attention_heads,
                intermediate_size=intermediate_size,
            )
        super().__init__(config, **kwargs)
        self._register_load_state_dict_pre_hook(_vit_legacy_keys)  # ASTModel's layers are ViT's
        self.sample_rate = sample_rate
        self.mel_mean = mel_mean
        self.mel_std = mel_std

    def grid_shape(self, n_frames):
        """(time columns covering n_frames, mel rows) of the token grid (`forward`'s T', F')."""
        config = self.config
        rows = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
        columns = (config.max_length - config.patch_size) // config.time_stride + 1
        covering = math.ceil(max(n_frames - config.patch_size, 0) / config.time_stride) + 1
        return min(columns, covering), rows

    def log_mel(self, X):
        """X = log1p |STFT| (B, frames, bins) -> AST's normalised input (B, max_length, num_mel_bins)."""
        n_frames, n_bins = X.shape[1], X.shape[2]
        if n_frames > self.config.max_length:
            raise ValueError(
                f"AST reads at most max_length = {self.config.max_length} frames; this clip has {n_frames}. "
                f"Give --max_length {n_frames} or more (a pretrained AST keeps its own: then shorter clips, "
                "--signal_length_s)."
            )
        filters = mel_filterbank(n_bins, self.config.num_mel_bins, self.sample_rate).to(X)  # (bins, mels)
        power = torch.expm1(X).clamp(min=0) ** 2  # |STFT|^2
        log_mel = torch.log((power @ filters).clamp(min=AST_LOG_FLOOR))  # (B, frames, mels)
        log_mel = F.pad(log_mel, (0, 0, 0, self.config.max_length - n_frames))  # zeros, as the extractor
        return (log_mel - self.mel_mean) / (2 * self.mel_std)

    def forward(self, X):
        """X (B, frames, F) -> embedding (B, D), patch-token grid (B, D, T', F') over (time, mel)."""
        tokens = super().forward(input_values=self.log_mel(X)).last_hidden_state  # (B, 2 + F'_all * T'_all, D)
        embedding = (tokens[:, 0] + tokens[:, 1]) / 2  # (B, D): ASTModel's pooled output
        columns, rows = self.grid_shape(self.config.max_length)
        # the patches are ordered mel row by row (the conv's (F', T') output flattened)
        grid = tokens[:, 2:].transpose(1, 2).reshape(X.shape[0], -1, rows, columns)  # (B, D, F', T'_all)
        covering, _ = self.grid_shape(X.shape[1])
        return embedding, grid[..., :covering].transpose(2, 3)  # (B, D, T', F')

    def grid_to_input(self, decoded, n_frames, n_bins):
        """A map over the grid's span (B, T', F' on the mel axis) on X's frames and linear bins.

        Resized to (n_frames, num_mel_bins) (the grid's columns cover the clip,
        its rows the mel bands), then each linear bin takes the value at its
        place on the mel axis (`mel_to_linear`).
        """
        on_mel = F.interpolate(
            decoded.unsqueeze(1), size=(n_frames, self.config.num_mel_bins), mode="bilinear", align_corners=False
        ).squeeze(1)  # (B, frames, mels)
        return mel_to_linear(on_mel, n_bins, self.sample_rate)


#: transformers < 5 named ViTModel's (and ASTModel's) parameters otherwise; the published ESC-50
#: checkpoints (`speechbrain/vit-base-esc50`'s embedding_model.ckpt) and AST's AudioSet ones have
#: these names: (old, new), in order.
VIT_LEGACY_NAMES = (
    (r"^encoder\.layer\.", "layers."),
    (r"attention\.attention\.query", "attention.q_proj"),
    (r"attention\.attention\.key", "attention.k_proj"),
    (r"attention\.attention\.value", "attention.v_proj"),
    (r"attention\.output\.dense", "attention.o_proj"),
    (r"intermediate\.dense", "mlp.fc1"),
    (r"\boutput\.dense", "mlp.fc2"),
)


def vit_current_name(name):
    """A ViTModel parameter name of transformers < 5 as transformers >= 5 names it.

    Example
    -------
    >>> vit_current_name("encoder.layer.3.attention.attention.query.weight")
    'layers.3.attention.q_proj.weight'
    >>> vit_current_name("encoder.layer.3.output.dense.bias"), vit_current_name("pooler.dense.bias")
    ('layers.3.mlp.fc2.bias', 'pooler.dense.bias')
    """
    for old, new in VIT_LEGACY_NAMES:
        name = re.sub(old, new, name)
    return name


def _vit_legacy_keys(state_dict, prefix, *args):
    """load_state_dict pre-hook: a state dict of transformers < 5's names is renamed in place,
    so the published checkpoints load with strict=True."""
    for key in [key for key in state_dict if key.startswith(prefix + "encoder.layer.")]:
        state_dict[prefix + vit_current_name(key[len(prefix):])] = state_dict.pop(key)


def focalnet_channels(embed_dim, depths):
    """Channels of FocalNet's last stage: embed_dim x 2^(stages - 1) (the head's input size).

    Example
    -------
    >>> focalnet_channels(128, [2, 2, 18, 2])
    1024
    """
    return int(embed_dim) * 2 ** (len(depths) - 1)
