"""PIQ and L-MAC on the transformer classifiers, end to end on tiny data (issues 26 and 27).

One epoch of a tiny ViT (width 32, 2 layers), a tiny FocalNet (width 16 -> 32, 2 stages) and a
tiny AST (width 32, 1 layer, 87 frames) classifier on the 3-class, 1 s `tiny_synthetic` set, one
epoch of PIQ on each (the seed's VectorQuantizedPSIViT_Audio / VectorQuantizedPSIFocalNet_Audio,
and VectorQuantizedPSIAST_Audio) and of L-MAC, the evaluation with the AMT row, and the ViT
interpreter's inference folder through AudioInterpreter and `audio-interpret`.
"""

import json

import pytest
import torch
from conftest import HPARAMS, with_flag

from recipes import eval as eval_recipe
from recipes import interpret_files, train_classifier, train_piq
from recipes.interpreters.inference import AudioInterpreter

TINY = ["--signal_length_s", "1", "--batch_size", "4", "--number_of_epochs", "1", "--lin_neurons", "8"]
SIZES = {
    "vit": ["--hidden_size", "32", "--num_hidden_layers", "2", "--num_attention_heads", "2", "--intermediate_size", "32"],
    "focalnet": ["--image_size", "56", "--embed_dim", "16", "--depths", "[1,1]", "--focal_levels", "[2,2]", "--focal_windows", "[3,3]"],
    # 1 s = 87 frames: (87 - 16) // 10 + 1 = 8 time columns x 12 mel rows
    "ast": ["--max_length", "87", "--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--intermediate_size", "32"],
}


def train_backbone(name, data, out):
    """Classifier, then PIQ (K 30), one epoch each; returns PIQ's argv without --output_folder."""
    common = ["--data_folder", str(data), *TINY, *SIZES[name]]
    summary = train_classifier.main([str(HPARAMS / f"classifier_{name}.yaml"), *common, "--output_folder", str(out / "classifier")])
    argv = [str(HPARAMS / f"piq_{name}.yaml"), *common, "--K", "30", "--classifier_folder", str(out / "classifier")]
    argv += ["--n_interpretations_to_save", "1"]
    brain = train_piq.main(argv + ["--output_folder", str(out / "piq")])
    return {"summary": summary, "brain": brain, "argv": argv, "folder": out / "piq"}


@pytest.fixture(scope="module")
def tiny_vit(tiny_synthetic, tmp_path_factory):
    return train_backbone("vit", tiny_synthetic, tmp_path_factory.mktemp("vit"))


@pytest.fixture(scope="module")
def tiny_ast(tiny_synthetic, tmp_path_factory):
    return train_backbone("ast", tiny_synthetic, tmp_path_factory.mktemp("ast"))


@pytest.fixture(scope="module")
def tiny_focalnet(tiny_synthetic, tmp_path_factory):
    return train_backbone("focalnet", tiny_synthetic, tmp_path_factory.mktemp("focalnet"))


@pytest.fixture
def tiny_run(request):
    """The module's tiny classifier + PIQ run of `request.param`."""
    return request.getfixturevalue(f"tiny_{request.param}")


@pytest.mark.parametrize("tiny_run", ["vit", "focalnet", "ast"], indirect=True)
def test_classifier_and_piq_one_epoch(tiny_run):
    run = tiny_run
    assert run["summary"]["n_test_clips"] == 3
    folder = run["folder"]
    assert (folder / "psi_model.ckpt").is_file() and (folder / "inference" / "hyperparams.yaml").is_file()
    stats = json.loads((folder / "test_metrics.json").read_text())
    assert 0.0 <= stats["fid_in"] <= 1.0 and 0.0 < stats["codebook_usage"] <= 1.0
    assert len(list((folder / "interpretations" / "test").glob("*.png"))) == 1
    # the mask covers the 1 s clip's frames: the 14 x 14 grid's 431 x 513 output resized to them
    brain = run["brain"]
    outputs = brain.explain(torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.1)
    assert outputs["mask"].shape == outputs["X"].shape == (2, 87, 513)


def test_piq_with_the_grid_decoder_on_the_vit(tiny_vit, tmp_path):
    """`--psi_decoder grid` (not the seed's): psi decodes 8x the 14 x 14 grid (no halving:
    112 x 112), the recipe resizes it onto the clip, and the exported folder builds the same
    decoder (the export's own check compares its masks with the Brain's)."""
    argv = with_flag(tiny_vit["argv"], "--n_interpretations_to_save", 0)
    argv += ["--psi_decoder", "grid", "--adapter_reduce_dim", "False"]
    brain = train_piq.main(argv + ["--output_folder", str(tmp_path / "piq")])
    _, representations = brain.classify(brain.preprocess(torch.zeros(1, 16000))[0])
    assert tuple(representations.shape[-2:]) == (14, 14)
    decoded = brain.modules.psi(representations, torch.tensor([0]))[0]
    assert tuple(decoded.shape) == (1, 1, 112, 112)
    inference_yaml = (tmp_path / "piq" / "inference" / "hyperparams.yaml").read_text()
    assert "decoder: grid" in inference_yaml
    interpreter = AudioInterpreter.from_hparams(source=tmp_path / "piq" / "inference")
    assert interpreter.interpret_batch(torch.zeros(1, 16000))["mask"].shape[-2:] == (87, 513)
    with pytest.raises(ValueError, match="decoder 'grids': choose one of"):
        train_piq.main(with_flag(argv, "--psi_decoder", "grids") + ["--output_folder", str(tmp_path / "bad")])


@pytest.mark.parametrize("tiny_run", ["vit", "ast"], indirect=True)
def test_eval_scores_the_amt_row(tiny_run, tmp_path):
    argv = tiny_run["argv"] + ["--pretrained_interpreter", str(tiny_run["folder"] / "psi_model.ckpt")]
    argv += ["--eval_folder", str(tmp_path / "eval"), "--n_report_clips", "1", "--n_bootstrap", "20"]
    result = eval_recipe.main(argv + ["--baselines", "random,amt"])
    assert list(result["methods"]) == ["PIQ", "random", "amt"]
    amt = result["methods"]["amt"]
    assert 0.0 <= amt["fid_in"] <= 1.0 and amt["gt_precision"] == amt["gt_precision"]  # not NaN
    assert "| AMT (activation map) |" in (tmp_path / "eval" / "metrics.md").read_text()


def test_amt_is_refused_for_a_classifier_without_a_grid(tiny_piq, tmp_path):
    argv = tiny_piq["argv"] + ["--pretrained_interpreter", str(tiny_piq["folder"] / "psi_model.ckpt")]
    with pytest.raises(ValueError, match="--baselines amt: AMT reads a classifier grid"):
        eval_recipe.main(argv + ["--eval_folder", str(tmp_path / "eval"), "--baselines", "amt"])


def test_inference_folder_and_audio_interpret(tiny_vit, tiny_synthetic, tmp_path):
    folder = tiny_vit["folder"] / "inference"
    interpreter = AudioInterpreter.from_hparams(source=folder)
    clip = next((tiny_synthetic / "audio").glob("5-*.wav"))
    result = interpreter.interpret_file(clip)
    assert result["mask"].shape[-1] == 513 and result["interpretation"].shape[-1] == 16000
    status = interpret_files.main([str(clip), "--interpreter", str(folder), "--out", str(tmp_path / "out")])
    assert status == 0
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert predictions["files"][str(clip)]["class"] == result["class"]
    assert (tmp_path / "out" / f"{clip.stem}_interpretation.wav").is_file()


@pytest.mark.slow  # 14 s / 8 s; the configs are checked by test_demo.py, the chain by demo_ast's smoke below
@pytest.mark.parametrize("name", ["demo_transformers", "demo_focalnet"])
def test_transformer_demo_smoke(tmp_path, repo_root, name):
    """hparams/demo_transformers.yaml's and demo_focalnet.yaml's chain (data, ViT or FocalNet,
    PIQ, L-MAC, eval with AMT) at their smoke sizes."""
    from recipes import demo

    result = demo.main(["--config", str(repo_root / "hparams" / f"{name}.yaml"), "--smoke", "--output_folder", str(tmp_path)])
    assert list(result["timings"]) == ["data", "classifier", "piq", "lmac", "eval_piq", "eval_lmac"]  # no NMF, L2I
    for row in ("| AMT (activation map) |", "| PIQ |", "| LMAC |"):
        assert row in result["summary"], row


def test_ast_demo_smoke(tmp_path, repo_root):
    """hparams/demo_ast.yaml's chain (data, AST, PIQ, L-MAC, eval with AMT) at its smoke sizes."""
    from recipes import demo

    config_path = repo_root / "hparams" / "demo_ast.yaml"
    result = demo.main(["--config", str(config_path), "--smoke", "--output_folder", str(tmp_path)])
    assert list(result["timings"]) == ["data", "classifier", "piq", "lmac", "eval_piq", "eval_lmac"]
    for row in ("| AMT (activation map) |", "| PIQ |", "| LMAC |"):
        assert row in result["summary"], row
    config = demo.load_config(config_path)
    config["stages"]["lmac"]["overrides"]["max_length"] = 300  # not the classifier's 259
    with pytest.raises(ValueError, match="`max_length` differs between the stages"):
        demo.check_config(config)


#: L-MAC's decoder per backbone in test_lmac_one_epoch: the ViT runs `--psi_decoder grid` (the
#: transformer demo's), FocalNet the seed's (the yaml's default), AST its own
LMAC_DECODER = {"vit": ["--psi_decoder", "grid"], "focalnet": [], "ast": []}


@pytest.mark.parametrize("name", ["vit", "focalnet", "ast"])
def test_lmac_one_epoch(name, tiny_synthetic, request, tmp_path):
    """L-MAC (issue 27) on the tiny classifiers: models.LMAC.GridMaskDecoder on the ViT's (with
    `--psi_decoder grid`) and FocalNet's (the seed's decoder) 14 x 14 grid, ASTGridMaskDecoder
    on AST's time x mel grid."""
    from recipes import train_lmac

    classifier = request.getfixturevalue(f"tiny_{name}")["folder"].parent / "classifier"
    argv = [str(HPARAMS / f"lmac_{name}.yaml"), "--data_folder", str(tiny_synthetic), *TINY, *SIZES[name]]
    argv += ["--classifier_folder", str(classifier), "--n_interpretations_to_save", "0", *LMAC_DECODER[name]]
    brain = train_lmac.main(argv + ["--output_folder", str(tmp_path / "lmac")])
    stats = json.loads((tmp_path / "lmac" / "test_metrics.json").read_text())
    assert 0.0 <= stats["fid_in"] <= 1.0
    outputs = brain.explain(torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.1)
    assert outputs["mask"].shape == outputs["X"].shape == (2, 87, 513)
    # the decoder's map over the grid's span (ViT: 431 x 513; AST: 64 x 96 on the mel axis) put onto
    # the 87 frames and 513 bins, not cropped
    assert outputs["logits"].shape == (2, 87, 513)
    assert (tmp_path / "lmac" / "inference" / "psi_model.ckpt").is_file()
    if name == "vit":  # the grid decoder: 8x the 14 x 14 grid, and the exported folder builds it
        _, representations = brain.classify(brain.preprocess(torch.zeros(1, 16000))[0])
        assert tuple(brain.modules.psi(representations).shape) == (1, 1, 112, 112)
        assert "decoder: grid" in (tmp_path / "lmac" / "inference" / "hyperparams.yaml").read_text()
        interpreter = AudioInterpreter.from_hparams(source=tmp_path / "lmac" / "inference")
        assert tuple(interpreter.mods.psi(representations).shape) == (1, 1, 112, 112)
        assert interpreter.interpret_batch(torch.zeros(1, 16000))["mask"].shape[-2:] == (87, 513)
