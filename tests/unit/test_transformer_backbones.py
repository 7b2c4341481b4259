"""The transformer backbones (models/transformer_backbones.py) through the classifier contract.

Tiny configs (width 32, 1-2 layers / stages): the contract's shapes, the scores equal to
the `transformers` model's own forward, the grid laid out as the seed's PIQ decoders
read it; AST's log-mel input against the feature extractor's recipe written out, and its
mel axis put back onto the STFT's bins; `--pretrained_backbone` from a local folder, and the offline hub-id error.
The parity of the published checkpoint layout at the reference sizes is marked slow.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hyperpyyaml import load_hyperpyyaml
from safetensors.torch import load_file
from speechbrain.lobes.models.ECAPA_TDNN import Classifier
from transformers import ASTConfig, ASTModel, FocalNetBackbone, FocalNetConfig, ViTConfig, ViTModel

from models.LMAC import ASTGridMaskDecoder
from models.PIQ import (
    VectorQuantizedPSIAST_Audio,
    VectorQuantizedPSIFocalNet_Audio,
    VectorQuantizedPSIViT_Audio,
)
from models.transformer_backbones import (
    AudioAST,
    AudioFocalNet,
    AudioViT,
    mel_filterbank,
    mel_to_linear,
)
from recipes.core.brains import load_pretrained_backbone
from recipes.core.pipeline import classify, fit_to_input
from recipes.evaluation.baselines import amt_mask

TINY_VIT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
# 56 / 4 = 14, halved once: a 7 x 7 last map (the reference's 224 / 4 / 8), 2 x 16 = 32 channels
TINY_FOCALNET = {"image_size": 56, "embed_dim": 16, "depths": [1, 1], "focal_levels": [2, 2], "focal_windows": [3, 3]}
# 3 s = 259 frames: (259 - 16) // 10 + 1 = 25 time columns, (128 - 16) // 10 + 1 = 12 mel rows
TINY_AST = {"max_length": 259, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}


def image_of(X, size):
    """The public recipes' classifier input, written out: X resized, 3 channels."""
    image = F.interpolate(X.unsqueeze(1), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return image.expand(-1, 3, -1, -1)


def head(input_size):
    return Classifier(input_size=input_size, out_neurons=5, lin_blocks=1, lin_neurons=8).eval()


def test_vit_contract_scores_grid_and_decoder():
    torch.manual_seed(0)
    vit = AudioViT(**TINY_VIT).eval()
    classifier = head(32)
    X = torch.rand(2, 259, 513)  # 3 s clips
    scores, grid = classify(vit, classifier, X)
    assert scores.shape == (2, 5) and grid.shape == (2, 32, 14, 14)
    # the model's own forward: ViTModel on the image, the mean of every token
    tokens = ViTModel.forward(vit, pixel_values=image_of(X, 224)).last_hidden_state  # (2, 197, 32)
    expected = classifier(tokens.mean(dim=1, keepdim=True)).squeeze(1)
    torch.testing.assert_close(scores, expected)
    # the grid: token 1 + row * 14 + column (CLS left out), rows = time
    torch.testing.assert_close(grid[:, :, 3, 5], tokens[:, 1 + 3 * 14 + 5])
    torch.testing.assert_close(grid[:, :, 13, 0], tokens[:, 1 + 13 * 14])
    decoded, _, _ = VectorQuantizedPSIViT_Audio(dim=32, K=10, numclasses=5)(grid, torch.tensor([0, 1]))
    assert decoded.shape == (2, 1, 431, 513)  # the 5 s STFT's frames x bins
    assert fit_to_input(decoded.squeeze(1), 259, 513, vit).shape == (2, 259, 513)
    # the grid spans the clip: the decoder's frames are resized onto the clip's, not cropped
    ramp = torch.linspace(0, 1, 431).view(1, 431, 1).expand(2, 431, 513)
    fitted = fit_to_input(ramp, 259, 513, vit)
    assert float(fitted[0, -1, 0]) > 0.99 and float(fitted[0, 0, 0]) < 0.01


def test_vit_grid_rows_follow_time():
    """An event in the clip's first frames moves the first grid rows, not the last ones."""
    torch.manual_seed(0)
    vit = AudioViT(**{**TINY_VIT, "num_hidden_layers": 0}).eval()  # patch embeddings + final norm only
    X = torch.zeros(1, 259, 513)
    _, silent = vit(X)
    X[:, :30, 100:200] = 3.0  # frames 0-29 of 259: the image's first rows
    _, loud = vit(X)
    change = (loud - silent).abs().sum(dim=(0, 1))  # (14 time rows, 14 frequency columns)
    assert change[:2].sum() > 0 and change[3:].sum() == 0
    assert change[:, :2].sum() == 0  # bins 100-200 of 513: columns 2-5
    amt = amt_mask(loud - silent, 259, 513)
    assert amt.shape == (1, 259, 513) and float(amt.min()) == 0.0 and float(amt.max()) == 1.0


def test_focalnet_contract_scores_grid_and_decoder():
    torch.manual_seed(0)
    net = AudioFocalNet(**TINY_FOCALNET).eval()
    classifier = head(32)
    X = torch.rand(2, 259, 513)
    scores, grid = classify(net, classifier, X)
    assert scores.shape == (2, 5) and grid.shape == (2, 32, 14, 14)
    feature_map = FocalNetBackbone.forward(net, pixel_values=image_of(X, 56)).feature_maps[-1]  # (2, 32, 7, 7)
    expected = classifier(feature_map.mean(dim=(2, 3)).unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(scores, expected)
    upsampled = F.interpolate(feature_map, scale_factor=2, mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(grid, upsampled)
    decoded, _, _ = VectorQuantizedPSIFocalNet_Audio(dim=32, K=10, numclasses=5)(grid, torch.tensor([0, 1]))
    assert decoded.shape == (2, 1, 431, 513)


def htk_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def htk_hz(mel):
    return 700.0 * (10 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def triangles(n_bins, n_mels, sample_rate, low=20.0):
    """HTK mel filters as torchaudio builds them, written out: n_mels + 2 points equally spaced in
    mel from `low` to Nyquist, filter i rising linearly in Hz from point i to i + 1 and falling
    to point i + 2 (Kaldi's rise linearly in mel: the audit file compares with its extractor)."""
    points = htk_hz(np.linspace(htk_mel(low), htk_mel(sample_rate / 2), n_mels + 2))
    hz = np.linspace(0, sample_rate / 2, n_bins)
    filters = np.zeros((n_bins, n_mels))
    for i in range(n_mels):
        left, centre, right = points[i : i + 3]
        filters[:, i] = np.clip(np.minimum((hz - left) / (centre - left), (right - hz) / (right - centre)), 0, None)
    return filters, points[1:-1]


def test_ast_log_mel_is_the_feature_extractors_recipe():
    """AST's input from X = log1p |S|: log of the power mel energies (floor: float32 eps), zeros
    up to max_length frames, minus the AudioSet mean, over 2 stds (ASTFeatureExtractor)."""
    filters, _ = triangles(513, 128, 16000)
    np.testing.assert_allclose(mel_filterbank(513, 128, 16000).numpy(), filters, atol=5e-5)  # float32
    ast = AudioAST(**{**TINY_AST, "max_length": 300})
    torch.manual_seed(0)
    X = torch.rand(1, 259, 513) * 3
    power = np.expm1(X[0].double().numpy()) ** 2
    log_mel = np.log(np.maximum(power @ filters, np.finfo(np.float32).eps))
    expected = np.concatenate([log_mel, np.zeros((41, 128))])  # padded to 300 frames
    expected = (expected - (-4.2677393)) / (2 * 4.5689974)
    np.testing.assert_allclose(ast.log_mel(X)[0].double().numpy(), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="at most max_length = 300 frames; this clip has 301. Give --max_length 301"):
        ast(torch.rand(1, 301, 513))


def test_ast_contract_scores_grid_and_decoder():
    torch.manual_seed(0)
    ast = AudioAST(**TINY_AST).eval()
    torch.nn.init.normal_(ast.embeddings.distillation_token)  # initialised as CLS (zeros): now told apart
    classifier = head(32)
    X = torch.rand(2, 259, 513)
    scores, grid = classify(ast, classifier, X)
    assert scores.shape == (2, 5) and grid.shape == (2, 32, 25, 12)
    # the model's own forward: ASTModel on the log-mel, the pooled (CLS + distillation) / 2
    output = ASTModel.forward(ast, input_values=ast.log_mel(X))
    tokens = output.last_hidden_state  # (2, 2 + 12 * 25, 32)
    torch.testing.assert_close(scores, classifier(output.pooler_output.unsqueeze(1)).squeeze(1))
    # patch p = mel row * 25 + time column (the conv's (F', T') output flattened), after 2 tokens
    torch.testing.assert_close(grid[:, :, 3, 5], tokens[:, 2 + 5 * 25 + 3])
    torch.testing.assert_close(grid[:, :, 24, 0], tokens[:, 2 + 24])
    for psi in (VectorQuantizedPSIAST_Audio(dim=32, K=10, numclasses=5), ASTGridMaskDecoder(dim=32)):
        decoded = psi(grid, torch.tensor([0, 1]))[0] if isinstance(psi, VectorQuantizedPSIAST_Audio) else psi(grid)
        assert decoded.shape[-1] == 96  # 8 x 12 mel rows
        fitted = fit_to_input(decoded.squeeze(1), 259, 513, ast)  # through the backbone's mel axis
        torch.testing.assert_close(fitted, ast.grid_to_input(decoded.squeeze(1), 259, 513))
        assert fitted.shape == (2, 259, 513)


def test_ast_grid_follows_time_then_mel_and_leaves_the_padding_out():
    """An event in the first frames and the top bins moves the first columns and last mel rows only;
    a shorter clip gets only the columns that cover it."""
    ast = AudioAST(**{**TINY_AST, "num_hidden_layers": 0}).eval()  # patch embeddings + final norm
    X = torch.zeros(1, 259, 513)
    _, silent = ast(X)
    X[:, :30, 400:] = 3.0  # frames 0-29, 6.25-8 kHz: mel bands from 116 up
    _, loud = ast(X)
    change = (loud - silent).abs().sum(dim=(0, 1))  # (25 time columns, 12 mel rows)
    assert change[:3].sum() > 0 and change[3:].sum() == 0  # columns 0-2 cover frames 0-35
    assert change[:, 11].sum() > 0 and change[:, :11].sum() == 0  # row 11: bands 110-125 (row 10: 100-115)
    _, short = ast(torch.zeros(1, 100, 513))
    assert short.shape == (1, 32, 10, 12)  # columns 0..9 start before frame 100: 9 * 10 + 16 >= 100
    # AMT puts the grid onto the bins through the mel axis: row 11 (its centre at band 122 once
    # resized to the 128 bands, from band 111.5, row 10's centre, up) lands on the high bins only
    amt = amt_mask((loud - silent).abs(), 259, 513, ast)
    assert amt.shape == (1, 259, 513) and float(amt[0, :, :250].max()) == 0.0 and float(amt[0, 5, 512]) > 0.5
    assert float(amt[0, 5, 405]) > 0.2  # 6.3 kHz: band 117, halfway to row 11 (a linear resize: row 9.0)


def test_mel_to_linear_reads_each_bin_at_its_place_on_the_mel_axis():
    _, centres = triangles(513, 128, 16000)
    hz = np.linspace(0, 8000, 513)
    expected_position = np.interp(htk_mel(hz), htk_mel(centres), np.arange(128))  # clamped at both ends
    ramp = torch.arange(128, dtype=torch.float32).view(1, 1, 128)  # each band's value = its index
    np.testing.assert_allclose(mel_to_linear(ramp, 513, 16000)[0, 0].numpy(), expected_position, atol=1e-3)
    ast = AudioAST(**TINY_AST)
    on_mel = torch.rand(2, 200, 96)
    mapped = ast.grid_to_input(on_mel, 259, 513)
    resized = F.interpolate(on_mel.unsqueeze(1), size=(259, 128), mode="bilinear", align_corners=False).squeeze(1)
    torch.testing.assert_close(mapped, mel_to_linear(resized, 513, 16000))


def test_pretrained_backbone_from_a_local_folder(tmp_path):
    torch.manual_seed(1)
    reference = ViTModel(ViTConfig(**TINY_VIT))
    reference.save_pretrained(tmp_path / "vit")
    vit = load_pretrained_backbone(AudioViT(**TINY_VIT), tmp_path / "vit")
    for key, value in reference.state_dict().items():
        assert torch.equal(vit.state_dict()[key], value), key
    with pytest.raises(ValueError, match="--hidden_size 32 --intermediate_size 64"):
        load_pretrained_backbone(AudioViT(**{**TINY_VIT, "hidden_size": 64, "intermediate_size": 128}), tmp_path / "vit")
    with pytest.raises(ValueError, match="from_pretrained weights; use a transformer classifier yaml"):
        load_pretrained_backbone(torch.nn.Linear(2, 2), tmp_path / "vit")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no config.json, so no ViTModel checkpoint"):
        load_pretrained_backbone(AudioViT(**TINY_VIT), tmp_path / "empty")
    ASTModel(ASTConfig(**TINY_AST)).save_pretrained(tmp_path / "ast")
    ast = load_pretrained_backbone(AudioAST(**TINY_AST), tmp_path / "ast")
    assert torch.equal(ast.embeddings.position_embeddings, ASTModel.from_pretrained(tmp_path / "ast").embeddings.position_embeddings)
    with pytest.raises(ValueError, match="--max_length 259"):
        load_pretrained_backbone(AudioAST(**{**TINY_AST, "max_length": 300}), tmp_path / "ast")


def test_a_pretrained_backbone_that_would_leave_weights_random_is_refused(tmp_path):
    """Guards `TransformerBackbone.load_pretrained_backbone`'s checks: transformers loads a
    checkpoint of another model type, or one missing weights, with a log line and random
    values where the weights are missing; here they are refused, and a task model's
    checkpoint (a classification head, no pooler) still loads."""
    from safetensors.torch import load_file, save_file
    from transformers import ViTForImageClassification

    torch.manual_seed(2)
    ViTModel(ViTConfig(**TINY_VIT)).save_pretrained(tmp_path / "partial")
    weights = load_file(tmp_path / "partial" / "model.safetensors")
    save_file({key: value for key, value in weights.items() if "encoder" not in key}, tmp_path / "partial" / "model.safetensors")
    with pytest.raises(ValueError, match="lacks .* of the backbone's weights"):
        load_pretrained_backbone(AudioViT(**TINY_VIT), tmp_path / "partial")
    ASTModel(ASTConfig(**TINY_AST)).save_pretrained(tmp_path / "ast")
    with pytest.raises(ValueError, match="holds a 'audio-spectrogram-transformer' checkpoint.*'vit'"):
        load_pretrained_backbone(AudioViT(**TINY_VIT), tmp_path / "ast")
    (tmp_path / "weights_only").mkdir()
    (tmp_path / "weights_only" / "model.safetensors").write_bytes((tmp_path / "ast" / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="holds no config.json"):
        load_pretrained_backbone(AudioAST(**TINY_AST), tmp_path / "weights_only")
    with pytest.raises(ValueError, match="does not exist"):
        load_pretrained_backbone(AudioViT(**TINY_VIT), tmp_path / "no" / "such")
    classifier = ViTForImageClassification(ViTConfig(**TINY_VIT, num_labels=3))
    classifier.save_pretrained(tmp_path / "task")
    vit = load_pretrained_backbone(AudioViT(**TINY_VIT), tmp_path / "task")
    assert torch.equal(vit.embeddings.cls_token, classifier.vit.embeddings.cls_token)


def test_hub_id_offline_says_to_pass_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # HF_HUB_OFFLINE=1: no network
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to reuse
    with pytest.raises(ValueError) as error:
        load_pretrained_backbone(AudioViT(**TINY_VIT), "google/vit-base-patch16-224")
    message = str(error.value)
    assert "google/vit-base-patch16-224" in message and "Offline?" in message
    assert "--pretrained_backbone DIR" in message  # the local folder to pass instead


def hub_cache_entry(cache, repo_id, model):
    """`model.save_pretrained` as the hub's cache holds a downloaded repo (models--owner--name,
    its main ref, one snapshot): what a hub id resolves to offline."""
    entry = cache / f"models--{repo_id.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text("0" * 40, encoding="utf-8")
    model.save_pretrained(entry / "snapshots" / ("0" * 40))


def test_a_hub_id_of_another_model_type_is_refused_before_loading(tmp_path, monkeypatch):
    """A hub id resolves through the hub's cache (offline here): an AST repo given to the ViT
    yaml is refused by its model type, read from the repo's config.json as written (loaded, the
    config is ViTModel's own class and says 'vit'; the load then failed on shapes instead). A
    ViT repo loads, weight for weight."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    hub_cache_entry(tmp_path / "hub", "someone/ast", ASTModel(ASTConfig(**TINY_AST)))
    with pytest.raises(ValueError, match="someone/ast holds a 'audio-spectrogram-transformer' checkpoint.*'vit'"):
        load_pretrained_backbone(AudioViT(**TINY_VIT), "someone/ast")
    torch.manual_seed(3)
    published = ViTModel(ViTConfig(**TINY_VIT))
    hub_cache_entry(tmp_path / "hub", "someone/vit", published)
    vit = load_pretrained_backbone(AudioViT(**TINY_VIT), "someone/vit")
    assert torch.equal(vit.embeddings.cls_token, published.embeddings.cls_token)


def yaml_modules(name, tmp_path):
    """The embedding model and head the yaml builds at its default (reference) sizes."""
    with open(f"hparams/{name}", encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, {"data_folder": str(tmp_path), "output_folder": str(tmp_path)})
    return hparams["embedding_model"], hparams["classifier"]


def published_state_dict(model, folder):
    """The state dict as transformers < 5 (that trained the published ESC-50 checkpoints) named
    it: what `save_pretrained` writes (transformers >= 5 converts its own names back on saving)."""
    model.save_pretrained(folder)
    return load_file(str(folder / "model.safetensors"))


def test_vit_loads_the_names_of_transformers_4(tmp_path):
    torch.manual_seed(3)
    reference = ViTModel(ViTConfig(**TINY_VIT))
    legacy = published_state_dict(reference, tmp_path / "vit")
    assert "encoder.layer.1.attention.attention.query.weight" in legacy  # the old names indeed
    vit = AudioViT(**TINY_VIT)
    vit.load_state_dict(legacy, strict=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(vit.state_dict()[key], value), key


@pytest.mark.slow
@pytest.mark.parametrize(
    "yaml_name, published",
    [
        ("classifier_vit.yaml", lambda: ViTModel(ViTConfig())),  # google/vit-base-patch16-224's sizes
        ("classifier_ast.yaml", lambda: ASTModel(ASTConfig())),  # MIT/ast-finetuned-audioset-10-10-0.4593's
        (
            "classifier_focalnet.yaml",  # microsoft/focalnet-base's (srf) sizes
            lambda: FocalNetBackbone(
                FocalNetConfig(embed_dim=128, depths=[2, 2, 18, 2], hidden_sizes=[256, 512, 1024, 1024])
            ),
        ),
    ],
)
def test_published_checkpoint_layout_loads_strictly(yaml_name, published, tmp_path, repo_root, monkeypatch):
    """embedding_model.ckpt = the transformers model's state dict (transformers 4 names); classifier.ckpt
    = the ECAPA head's (input 768 / 1024, lin_blocks 1, 50 classes), as the ESC-50 recipes publish."""
    monkeypatch.chdir(repo_root)
    torch.manual_seed(2)
    backbone = published()
    width = 1024 if isinstance(backbone, FocalNetBackbone) else 768
    files = {
        "embedding_model": published_state_dict(backbone, tmp_path / "backbone"),
        "classifier": Classifier(input_size=width, out_neurons=50, lin_blocks=1).state_dict(),
    }
    for name, state in files.items():
        torch.save(state, tmp_path / f"{name}.ckpt")
    embedding_model, classifier = yaml_modules(yaml_name, tmp_path)
    for name, module in (("embedding_model", embedding_model), ("classifier", classifier)):
        module.load_state_dict(torch.load(tmp_path / f"{name}.ckpt", weights_only=True), strict=True)
    for key, value in backbone.state_dict().items():
        assert torch.equal(embedding_model.state_dict()[key], value), key
