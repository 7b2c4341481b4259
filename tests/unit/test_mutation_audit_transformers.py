"""Mutation audit of models/transformer_backbones.py: the survivors of test_transformer_backbones.py
and test_transformer_backbones_audit.py.

Expected values come from outside the module under test: the paths' kinds from the file
system (a file, a missing folder), the messages' names and counts of the weights removed here
by hand from a checkpoint `save_pretrained` wrote, the extra weights of a FocalNet whose
config adds them, and the reference sizes from `ViTConfig()` / `ASTConfig()` /
`ASTFeatureExtractor()`'s defaults (google/vit-base-patch16-224's,
MIT/ast-finetuned-audioset-10-10-0.4593's) and microsoft/focalnet-base's model card.

Kills (ids of the audit's list):

- T5 (a file taken for a local folder), T6 (a relative file name sent to the hub), T7 (an
  absolute path with one slash sent to the hub), T8 (`./name` sent to the hub), T9 (a
  relative path of three parts sent to the hub), T10 (a file said not to exist);
- T12 (a config.json that is json but no object escapes as an AttributeError);
- T19 (a checkpoint missing one weight loads with it at random), T20 (the missing weights'
  list cut one name early);
- T29 / T30 (AudioViT's default width / depth), T37 / T38 (AudioFocalNet's default
  embed_dim / depths), T58 (AudioAST's default max_length).

Also guarded here, though already caught elsewhere: T22 (`strict=False` in the final load;
test_mutation_audit_inference.py's checkpoint without q/k/v biases catches the weights the
checkpoint lacks, the test here the converse: extra weights dropped silently), T57 / T59
(AudioAST's default mel bins / rate, which the doctest and the extractor test read).

Judged equivalent:

- T14 (`local_files_only=False`): a local folder is read without the hub either way, and a
  hub id already has `local = False`;
- T16 (the model type check after `from_pretrained` dropped): `pretrained` is an instance of
  `pretrained_class`, whose config's `model_type` is that class's constant whatever the
  folder's config.json says (transformers converts it, with a warning): the check never
  fired. It is gone since this audit: a hub id's type is now read from its config.json as
  written, before loading, as a local folder's was
  (`test_transformer_backbones.test_a_hub_id_of_another_model_type_is_refused_before_loading`);
- T17 (mismatched keys left out of the missing ones): `from_pretrained` without
  `ignore_mismatched_sizes` raises on a shape mismatch itself, so that list is always empty;
- T41 (`feature_maps[0]` for `[-1]`): FocalNetBackbone's default `out_features` is the last
  stage only, so it returns one map;
- T44 (FocalNet's 2x upsampling without antialias): antialiasing only changes a
  downsampling; upsampled, the two differ by float rounding (1e-7);
- T51 (`log` for `log10` in `_htk_mel`): the factor between the two cancels in
  `mel_positions`' ratio (mel - low) / (high - low);
- T73 (`^` dropped from `^encoder\\.layer\\.`): the hook renames only keys that start with the
  prefix's `encoder.layer.`, and no ViT / AST parameter has it elsewhere;
- T74 (`\\b` dropped from `\\boutput\\.dense`): the rule before it has already renamed
  `attention.output.dense`, so `output.dense` is left only where a word boundary precedes it.
"""

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_transformer_backbones import TINY_FOCALNET, TINY_VIT
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    FocalNetBackbone,
    FocalNetConfig,
    ViTConfig,
    ViTModel,
)

from models.transformer_backbones import AudioAST, AudioFocalNet, AudioViT


def refusal(source, model=None):
    """The ValueError's message of `load_pretrained_backbone(source)` on a tiny ViT."""
    with pytest.raises(ValueError) as error:
        (model or AudioViT(**TINY_VIT)).load_pretrained_backbone(str(source))
    return str(error.value)


def test_a_path_that_is_no_checkpoint_folder_is_named_so(tmp_path, monkeypatch):
    """A file (relative or absolute) "is a file"; `./missing`, `/missing` and `a/b/c` (no hub
    id: owner/name has one slash and no dot first) "do not exist", offline, without asking
    the hub. Kills T5, T6, T7, T8, T9, T10."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    assert "--pretrained_backbone weights.bin is a file:" in refusal("weights.bin")
    assert "is a file:" in refusal(tmp_path / "weights.bin")
    absolute = f"/no-such-backbone-{tmp_path.name}"  # one slash, absolute
    for source in ("./missing", absolute, "a/b/c"):
        assert f"--pretrained_backbone {source} does not exist:" in refusal(source)


@pytest.mark.parametrize("text", ["[1, 2]", '"vit"', "{"])
def test_a_config_json_that_is_no_object_is_refused(text, tmp_path):
    """config.json holding a list, a string or broken json: the folder's error, not an
    AttributeError. Kills T12."""
    (tmp_path / "config.json").write_text(text)
    assert "config.json is not a json object" in refusal(tmp_path)


@pytest.mark.parametrize(
    "removed, listed",
    [
        (["layernorm.bias"], "lacks 1 of the backbone's weights or holds them in other shapes (layernorm.bias);"),
        (
            ["layernorm.bias", "embeddings.cls_token", "layernorm.weight"],
            "lacks 3 of the backbone's weights or holds them in other shapes "
            "(embeddings.cls_token, layernorm.bias, layernorm.weight);",
        ),
        (
            ["layernorm.bias", "embeddings.cls_token", "layernorm.weight", "embeddings.position_embeddings"],
            "lacks 4 of the backbone's weights or holds them in other shapes "
            "(embeddings.cls_token, embeddings.position_embeddings, layernorm.bias, ...);",
        ),
    ],
)
def test_a_checkpoint_missing_even_one_weight_is_refused(removed, listed, tmp_path):
    """One weight removed from the saved file: refused, not loaded at random; the message lists
    the first three names, sorted, and `...` only when there are more. Kills T19, T20."""
    ViTModel(ViTConfig(**TINY_VIT)).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    assert set(removed) <= set(weights)
    save_file({key: value for key, value in weights.items() if key not in removed}, tmp_path / "model.safetensors")
    assert listed in refusal(tmp_path)


def test_a_checkpoint_with_weights_the_backbone_lacks_is_refused(tmp_path):
    """A FocalNet of the yaml's sizes whose config adds a layer norm in each modulation
    (`use_post_layernorm_in_modulation`, no size key): its extra weights must not be dropped
    silently. Guards T22 (with test_mutation_audit_inference.py's converse)."""
    config = FocalNetConfig(**TINY_FOCALNET, hidden_sizes=[32, 32], use_post_layernorm_in_modulation=True)
    FocalNetBackbone(config).save_pretrained(tmp_path)
    assert any("modulation.layernorm" in key for key in load_file(tmp_path / "model.safetensors"))
    with pytest.raises((RuntimeError, ValueError), match="modulation.layernorm"):
        AudioFocalNet(**TINY_FOCALNET).load_pretrained_backbone(str(tmp_path))


def test_the_defaults_are_the_reference_sizes():
    """Built without sizes (on the meta device: no weights allocated), each backbone has the
    reference checkpoint's sizes. Kills T29, T30, T37, T38, T58 (guards T57, T59)."""
    with torch.device("meta"):
        vit, focalnet, ast = AudioViT(), AudioFocalNet(), AudioAST()
    reference = ViTConfig()  # google/vit-base-patch16-224
    for key in ("image_size", "patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        assert getattr(vit.config, key) == getattr(reference, key), key
    assert (reference.hidden_size, reference.num_hidden_layers, reference.image_size) == (768, 12, 224)
    # microsoft/focalnet-base (srf)
    focal = focalnet.config
    assert (focal.image_size, focal.patch_size, focal.embed_dim) == (224, 4, 128)
    assert (focal.depths, focal.focal_levels, focal.focal_windows) == ([2, 2, 18, 2], [2, 2, 2, 2], [3, 3, 3, 3])
    assert focal.hidden_sizes == [256, 512, 1024, 1024]
    reference = ASTConfig()  # MIT/ast-finetuned-audioset-10-10-0.4593
    for key in ("num_mel_bins", "max_length", "patch_size", "frequency_stride", "time_stride", "hidden_size",
                "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        assert getattr(ast.config, key) == getattr(reference, key), key
    extractor = ASTFeatureExtractor()
    assert (ast.sample_rate, ast.mel_mean, ast.mel_std) == (extractor.sampling_rate, extractor.mean, extractor.std)
    assert (extractor.num_mel_bins, extractor.max_length) == (ast.config.num_mel_bins, ast.config.max_length) == (128, 1024)

