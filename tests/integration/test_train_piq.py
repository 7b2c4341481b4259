"""PIQ end to end on tiny data: files, resume, frozen classifier, partitioning, variants."""

import json
import re
import shutil

import pytest
import speechbrain as sb
import torch
from conftest import piq_argv, with_flag

from models.PIQ import partition_of_codes
from recipes import eval as eval_recipe
from recipes import train_piq


def epochs_logged(train_log):
    return [int(n) for n in re.findall(r"^epoch: (\d+)", train_log.read_text(), flags=re.M)]


def test_one_epoch_writes_checkpoint_log_and_interpretations(tiny_piq):
    folder = tiny_piq["folder"]
    assert list((folder / "save").glob("CKPT+*/psi_model.ckpt"))
    assert (folder / "psi_model.ckpt").is_file()
    assert epochs_logged(folder / "train_log.txt") == [1]
    log = (folder / "train_log.txt").read_text()
    for term in ("loss_rec", "loss_vq", "loss_commit", "codebook_usage", "valid fid_in"):
        assert term in log, term
    for stage in ("epoch_1", "test"):
        assert len(list((folder / "interpretations" / stage).glob("*.png"))) == 1
        assert len(list((folder / "interpretations" / stage).glob("*_interpretation.wav"))) == 1
    stats = json.loads((folder / "test_metrics.json").read_text())
    for name in ("fid_in", "faithfulness", "AI", "AD", "AG", "SPS", "COMP", "codebook_usage"):
        assert stats[name] == stats[name], name  # not NaN
    assert 0.0 < stats["codebook_usage"] <= 1.0


def test_rerun_resumes_instead_of_restarting(tiny_piq, tmp_path):
    folder = tmp_path / "resumed"
    shutil.copytree(tiny_piq["folder"], folder)
    train_piq.main(with_flag(tiny_piq["argv"], "--number_of_epochs", 2) + ["--output_folder", str(folder)])
    assert epochs_logged(folder / "train_log.txt") == [1, 2]


def test_a_resume_on_a_classifier_trained_again_in_place_is_refused(tiny_pretrained, tiny_synthetic, tmp_path):
    """Was: the classifier trained again into its own folder (same path, new weights), the
    interpreter's rerun resumed from checkpoints made against the old weights."""
    from conftest import HPARAMS, TINY, TINY_CLASSIFIER

    from recipes import train_classifier

    classifier = tmp_path / "classifier"
    shutil.copytree(tiny_pretrained["classifier"], classifier)  # with its checkpoints: it can resume
    argv = with_flag(piq_argv(tiny_pretrained), "--classifier_folder", classifier)
    folder = tmp_path / "piq"
    train_piq.main(argv + ["--output_folder", str(folder)])
    before = (classifier / "classifier.ckpt").read_bytes()
    classifier_argv = [str(HPARAMS / "classifier_conv2d.yaml"), "--data_folder", str(tiny_synthetic)]
    classifier_argv += with_flag(TINY, "--number_of_epochs", 2) + TINY_CLASSIFIER
    train_classifier.main(classifier_argv + ["--output_folder", str(classifier)])  # one epoch more
    assert (classifier / "classifier.ckpt").read_bytes() != before
    resume = with_flag(argv, "--number_of_epochs", 2) + ["--output_folder", str(folder)]
    with pytest.raises(ValueError, match=r"embedding_model_path = .*/classifier/embedding_model\.ckpt with other contents"):
        train_piq.main(resume)
    assert epochs_logged(folder / "train_log.txt") == [1]
    # its evaluation would score it through the new classifier: refused the same way
    with pytest.raises(ValueError, match=r"trained on embedding_model_path = .* with other contents"):
        eval_recipe.main(argv + ["--pretrained_interpreter", str(folder / "psi_model.ckpt")])


def test_classifier_is_bit_identical_after_training(tiny_piq, tiny_pretrained):
    brain = tiny_piq["brain"]
    for name in ("embedding_model", "classifier"):
        saved = torch.load(tiny_pretrained["classifier"] / f"{name}.ckpt", weights_only=True)
        trained = brain.classifier_modules[name].state_dict()
        for key, value in saved.items():
            assert torch.equal(value, trained[key].cpu()), f"{name}.{key} changed"
    assert not any(p.requires_grad for p in brain.classifier_modules.parameters())


def test_selected_codes_lie_in_the_predicted_class_partition(tiny_piq):
    brain = tiny_piq["brain"]
    psi = brain.unwrapped("psi")
    owner = partition_of_codes(brain.hparams.K, brain.hparams.out_n_neurons, brain.hparams.shared_keys)
    wavs = torch.randn(4, 16000, generator=torch.Generator().manual_seed(0)) * 0.2
    X, _ = brain.preprocess(wavs)
    _, representations = brain.classify(X)
    for classes in (torch.tensor([0, 1, 2, 1]), torch.tensor([2, 2, 0, 0])):  # any labels the classifier gives
        for training in (True, False):
            psi.train(training)
            with torch.no_grad():
                _, h, z_q = psi(representations, classes)
                codes = psi.codebook(h, classes)  # (B, h', w')
            code_owner = owner[codes]
            allowed = (code_owner == classes.view(-1, 1, 1)) | ((not training) & (code_owner == -1))
            assert allowed.all()
            # z_q is the codebook vector of the selected code
            chosen = psi.codebook.embedding.weight[codes].permute(0, 3, 1, 2)
            assert torch.allclose(z_q, chosen)
    psi.eval()


def test_straight_through_gradient_reaches_the_encoder_side(tiny_piq):
    brain = tiny_piq["brain"]
    psi = brain.unwrapped("psi")
    psi.train()
    psi.zero_grad()
    wavs = torch.randn(2, 16000, generator=torch.Generator().manual_seed(1)) * 0.2
    outputs = brain.forward_waveforms(wavs, sb.Stage.TRAIN)
    terms = brain.interpretation_loss(outputs, None, sb.Stage.TRAIN)
    terms["loss_rec"].backward()  # reconstruction only: reaches the adapter through the codes
    adapter_grads = [p.grad for p in psi.adapter.parameters()]
    assert all(g is not None for g in adapter_grads)
    assert sum(g.abs().sum() for g in adapter_grads) > 0
    psi.zero_grad()
    psi.eval()


def test_masks_lie_in_unit_interval(tiny_piq):
    out = tiny_piq["brain"].explain(torch.randn(3, 16000) * 0.2)
    assert out["mask"].shape == out["X"].shape
    assert out["mask"].min() >= 0.0 and out["mask"].max() <= 1.0


def test_explain_runs_at_the_eval_precision(tiny_piq):
    """--eval_precision bf16 (SpeechBrain's autocast context) applies to explain() too."""
    from speechbrain.utils.autocast import TorchAutocast

    brain = tiny_piq["brain"]
    wavs = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.2
    full = brain.explain(wavs)
    seen = []
    hook = brain.modules["psi"].register_forward_hook(lambda m, a, out: seen.append(out[0].dtype))
    fp32_ctx = brain.evaluation_ctx
    try:
        brain.evaluation_ctx = TorchAutocast(device_type="cpu", dtype=torch.bfloat16)
        half = brain.explain(wavs)
    finally:
        brain.evaluation_ctx = fp32_ctx
        hook.remove()
    assert seen == [torch.bfloat16]  # psi ran under autocast
    assert half["mask"].dtype == torch.float32 and torch.isfinite(half["audio"]).all()
    assert (half["mask"] - full["mask"]).abs().max() < 0.1  # bf16 rounding, not another result


@pytest.mark.parametrize("variant", [["--use_vq", "False"], ["--use_mask_output", "False"]])
def test_variants_run_one_epoch(tiny_piq, tmp_path, variant):
    folder = tmp_path / "run"
    brain = train_piq.main(tiny_piq["argv"] + variant + ["--output_folder", str(folder)])
    stats = json.loads((folder / "test_metrics.json").read_text())
    assert stats["fid_in"] == stats["fid_in"]
    if variant[0] == "--use_vq":
        assert "loss_vq" not in stats and "codebook_usage" not in stats
    else:
        mask = brain.explain(torch.randn(2, 16000) * 0.2)["mask"]
        assert set(mask.unique().tolist()) <= {0.0, 1.0}  # thresholded spectrogram


def test_codebook_too_small_for_the_classes_is_a_clear_error(tiny_piq, tmp_path):
    argv = with_flag(tiny_piq["argv"], "--K", 2) + ["--output_folder", str(tmp_path / "run")]
    with pytest.raises(ValueError, match="K"):
        train_piq.main(argv)
