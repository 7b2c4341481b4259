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

Adding a backbone is one small class: a `transformers` model subclass with
`SpectrogramImageBackbone` first in its bases, a constructor from sizes, and a
`forward(X)` that returns (embedding, representation).

Sizes are constructor arguments (the yamls' top-level keys), the reference
sizes their defaults; `load_pretrained_backbone` replaces the weights by those
of `from_pretrained` (a local folder, or a hub id when online).

Authors
 * audio-interpret contributors 2026
"""

import os
import re

import torch  # noqa: F401 (the doctests use it)
import torch.nn.functional as F
from transformers import FocalNetBackbone, FocalNetConfig, ViTConfig, ViTModel


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


class SpectrogramImageBackbone:
    """Mixin of the transformer backbones: the spectrogram as an image, and pretrained weights.

    Class attributes the interpreters read:

    - `spans_input = True`: the representation grid covers the whole clip
      whatever its length (the input is resized), so a decoder's output is
      resized to X rather than cropped, and the AMT baseline (the grid as an
      activation map) applies.
    - `size_keys`: the config fields the yamls set; `load_pretrained_backbone`
      checks them against the pretrained config.
    """

    spans_input = True
    size_keys = ()
    #: The `transformers` class whose `from_pretrained` reads the checkpoints (its own key
    #: conversions apply to it, not to a subclass).
    pretrained_class = None

    def spectrogram_image(self, X):
        return spectrogram_image(X, self.config.image_size)

    def load_pretrained_backbone(self, source):
        """Replaces the weights by `from_pretrained(source)`'s (strict), sizes checked first.

        Arguments
        ---------
        source : str
            A local folder (`save_pretrained` layout: config.json + weights),
            or a hub id (e.g. google/vit-base-patch16-224), fetched when online.
        """
        local = os.path.isdir(os.path.expanduser(source))
        try:
            pretrained = self.pretrained_class.from_pretrained(os.path.expanduser(source), local_files_only=local)
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


#: transformers < 5 named ViTModel's parameters otherwise; the published ESC-50 checkpoints
#: (`speechbrain/vit-base-esc50`'s embedding_model.ckpt) have these names: (old, new), in order.
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
