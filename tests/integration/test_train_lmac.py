"""L-MAC end to end on tiny data: files, resume, frozen classifier, the loss, eval, fine-tuning."""

import json
import re
import shutil
import types

import pytest
import speechbrain as sb
import torch
import torch.nn.functional as F
from conftest import HPARAMS, TINY, TINY_CLASSIFIER, lmac_argv, with_flag

from data_prep.esc50_prepare import load_clip
from models.LMAC import Conv2dMaskDecoder
from models.PIQ import VectorQuantizedPSI_Audio
from recipes import eval as eval_recipe
from recipes import train_lmac
from recipes.core.pipeline import floor_mask
from recipes.interpreters.lmac import out_loss


def epochs_logged(train_log):
    return [int(n) for n in re.findall(r"^epoch: (\d+)", train_log.read_text(), flags=re.M)]


def clips(n, seed=0):
    """n random 1 s waveforms (white noise, std 0.2)."""
    return torch.randn(n, 16000, generator=torch.Generator().manual_seed(seed)) * 0.2


def test_one_epoch_writes_checkpoint_log_and_interpretations(tiny_lmac):
    folder = tiny_lmac["folder"]
    assert list((folder / "save").glob("CKPT+*/psi_model.ckpt"))
    assert (folder / "psi_model.ckpt").is_file()
    assert epochs_logged(folder / "train_log.txt") == [1]
    log = (folder / "train_log.txt").read_text()
    for term in ("train loss_in", "train loss_out", "train loss_l1", "valid fid_in"):
        assert term in log, term
    for stage in ("epoch_1", "test"):
        assert len(list((folder / "interpretations" / stage).glob("*.png"))) == 1
        assert len(list((folder / "interpretations" / stage).glob("*_interpretation.wav"))) == 1
    stats = json.loads((folder / "test_metrics.json").read_text())
    for name in ("fid_in", "faithfulness", "AI", "AD", "AG", "SPS", "COMP", "loss_in", "loss_out", "loss_l1"):
        assert stats[name] == stats[name], name  # present and not NaN
    assert stats["loss_out"] <= 0 <= stats["loss_in"]  # - l_out_w CE and + l_in_w CE
    assert "guided_share" not in stats and "loss_guide" not in stats  # no fine-tuning


def test_rerun_resumes_instead_of_restarting(tiny_lmac, tmp_path):
    folder = tmp_path / "resumed"
    shutil.copytree(tiny_lmac["folder"], folder)
    argv = with_flag(tiny_lmac["argv"], "--number_of_epochs", 2)
    train_lmac.main(with_flag(argv, "--n_interpretations_to_save", 0) + ["--output_folder", str(folder)])
    assert epochs_logged(folder / "train_log.txt") == [1, 2]


def test_checkpoint_key_loss_keeps_the_epoch_of_the_lowest_valid_loss(tiny_lmac, tmp_path):
    """checkpoint_key: loss (the demos'): the test stage loads, and the export holds, the
    epoch whose valid loss is the lowest of the run's, read back from its train_log."""
    argv = with_flag(with_flag(tiny_lmac["argv"], "--number_of_epochs", 3), "--n_interpretations_to_save", 0)
    folder = tmp_path / "by_loss"
    train_lmac.main(argv + ["--checkpoint_key", "loss", "--output_folder", str(folder)])
    log = (folder / "train_log.txt").read_text()
    losses = [float(v) for v in re.findall(r"valid loss: ([-\d.e+]+)", log)]
    assert len(losses) == 3 and len(set(losses)) == 3
    best = losses.index(min(losses)) + 1
    assert re.search(r"^Epoch loaded: (\d+)", log, flags=re.M).group(1) == str(best)
    kept = [d for d in (folder / "save").glob("CKPT+*") if f"epoch: {best}" in (d / "CKPT.yaml").read_text()]
    exported = torch.load(folder / "psi_model.ckpt", weights_only=True)
    saved = torch.load(kept[0] / "psi_model.ckpt", weights_only=True)
    assert all(torch.equal(exported[name], saved[name]) for name in saved)
    with pytest.raises(ValueError, match="checkpoint_key 'fidin': choose one of"):
        train_lmac.main(argv + ["--checkpoint_key", "fidin", "--output_folder", str(tmp_path / "bad")])


def log(folder):
    return (folder / "train_log.txt").read_text()


def test_average_checkpoints_tests_and_exports_the_mean_of_the_best_ones(tiny_lmac, tmp_path):
    """average_checkpoints: 2 keeps the two epochs of the lowest valid losses (read back from
    the train_log) and exports the mean of their saved weights, computed here from the files."""
    argv = with_flag(with_flag(tiny_lmac["argv"], "--number_of_epochs", 3), "--n_interpretations_to_save", 0)
    folder = tmp_path / "averaged"
    train_lmac.main(argv + ["--checkpoint_key", "loss", "--average_checkpoints", "2", "--output_folder", str(folder)])
    losses = [float(v) for v in re.findall(r"valid loss: ([-\d.e+]+)", log(folder))]
    assert len(losses) == 3 and len(set(losses)) == 3
    best_two = sorted(range(1, 4), key=lambda epoch: losses[epoch - 1])[:2]
    saved = {}
    for ckpt in (folder / "save").glob("CKPT+*"):
        epoch = int(re.search(r"epoch: (\d+)", (ckpt / "CKPT.yaml").read_text()).group(1))
        saved[epoch] = torch.load(ckpt / "psi_model.ckpt", weights_only=True)
    assert set(best_two) <= set(saved)
    loaded = re.search(r"^Epoch loaded: (\d+), epochs averaged: (\d+) \+ (\d+) - test", log(folder), flags=re.M)
    assert loaded and [int(v) for v in loaded.groups()] == [best_two[0], *best_two]
    exported = torch.load(folder / "psi_model.ckpt", weights_only=True)
    a, b = (saved[epoch] for epoch in best_two)
    floats = [name for name in exported if exported[name].is_floating_point()]
    assert floats and any(not torch.equal(a[name], b[name]) for name in floats)
    for name in floats:
        torch.testing.assert_close(exported[name], (a[name] + b[name]) / 2)
    with pytest.raises(ValueError, match="average_checkpoints 0: a whole number >= 1"):
        train_lmac.main(argv + ["--average_checkpoints", "0", "--output_folder", str(tmp_path / "bad")])


def test_classifier_is_bit_identical_after_training(tiny_lmac, tiny_pretrained):
    brain = tiny_lmac["brain"]
    for name in ("embedding_model", "classifier"):
        saved = torch.load(tiny_pretrained["classifier"] / f"{name}.ckpt", weights_only=True)
        trained = brain.classifier_modules[name].state_dict()
        assert saved.keys() == trained.keys()
        for key, value in saved.items():
            assert torch.equal(value, trained[key].cpu()), f"{name}.{key} changed"
    assert not any(p.requires_grad for p in brain.classifier_modules.parameters())
    trainable = {id(p) for p in brain.modules.parameters()}
    assert not any(id(p) in trainable for p in brain.classifier_modules.parameters())


def test_classifier_reading_x_above_its_floor_reaches_the_interpreter_and_its_export(
    tiny_synthetic, tiny_pretrained, tmp_path
):
    """--subtract_background_floor True (the demo's classifier): the interpreter's yaml builds a
    default encoder, and the classifier's checkpoint switches the floor on, in training and in
    the exported inference folder. With it, L-MAC's --mask_above_floor True and --keep_class
    True (the demo's L-MAC): the exported folder keeps both and gives the trained brain's
    masks, widened on the same clips, which keep nothing where the clip's floor mask is 0."""
    from recipes import train_classifier
    from recipes.interpreters.inference import AudioInterpreter

    classifier = tmp_path / "classifier"
    train_classifier.main(
        [str(HPARAMS / "classifier_conv2d.yaml"), "--data_folder", str(tiny_synthetic)]
        + ["--output_folder", str(classifier), "--subtract_background_floor", "True"]
        + TINY
        + TINY_CLASSIFIER
    )
    argv = with_flag(lmac_argv(tiny_pretrained), "--classifier_folder", classifier)
    argv = with_flag(with_flag(argv, "--mask_above_floor", "True"), "--keep_class", "True")
    brain = train_lmac.main(argv + ["--output_folder", str(tmp_path / "lmac")])
    assert brain.classifier_modules["embedding_model"].subtract_floor is True
    exported = AudioInterpreter.from_hparams(source=tmp_path / "lmac" / "inference")
    assert exported.brain.classifier_modules["embedding_model"].subtract_floor is True
    assert brain.mask_above_floor and exported.brain.mask_above_floor
    assert brain.keep_class and exported.brain.keep_class
    wavs = clips(3, seed=5)
    mine, theirs = brain.explain(wavs), exported.brain.explain(wavs)
    assert torch.allclose(mine["mask"], theirs["mask"], atol=1e-6)
    assert torch.equal(mine["keep_class_step"], theirs["keep_class_step"])
    batch = exported.interpret_batch(wavs)  # what a user's script reads: how far each was widened
    assert torch.equal(batch["keep_class_step"], brain.explain(batch["input"])["keep_class_step"])
    outside = floor_mask(mine["X"], brain.mask_domain) == 0
    assert 0.3 < outside.float().mean() < 0.95  # white noise: about half of each bin's frames
    assert mine["mask"][outside].abs().max() == 0 and mine["mask"][~outside].max() > 0


def test_masks_lie_in_unit_interval_and_cover_the_spectrogram(tiny_lmac):
    brain = tiny_lmac["brain"]
    for gain in (0.2, 5.0):  # a normal and a clipping-loud input
        out = brain.explain(clips(3) * gain)
        assert out["mask"].shape == out["X"].shape
        assert out["mask"].min() >= 0.0 and out["mask"].max() <= 1.0
        assert torch.equal(out["X_int"], out["mask"] * out["X"])
        assert torch.isfinite(out["audio"]).all()


def test_batched_explanation_equals_clip_by_clip(tiny_lmac):
    brain = tiny_lmac["brain"]
    wavs = clips(3, seed=4)
    batched = brain.explain(wavs)
    for b in range(3):
        alone = brain.explain(wavs[b : b + 1])
        assert torch.allclose(alone["mask"], batched["mask"][b : b + 1], atol=1e-5)


def _loss_terms(brain, wavs, stage=sb.Stage.VALID):
    outputs = brain.forward_waveforms(wavs, stage)
    return outputs, brain.interpretation_loss(outputs, None, stage)


@pytest.mark.parametrize("kind", ["neg_ce", "not_class"])
def test_out_term_step_lowers_the_confidence_on_the_masked_out_input(tiny_lmac, kind):
    """One gradient step on the out-term alone lowers the classifier's confidence in y
    on (1 - M) X: the term pushes the evidence for y into the mask (a + sign would
    raise it). The confidence is the log-odds log p_y - log(1 - p_y), exact in
    float32 where p_y rounds to 1 (the tiny classifier is sure of itself)."""
    brain = tiny_lmac["brain"]
    psi = brain.unwrapped("psi")
    saved = {k: v.clone() for k, v in psi.state_dict().items()}
    wavs = clips(4, seed=2)

    def confidence_out():
        with torch.no_grad():
            out = brain.forward_waveforms(wavs, sb.Stage.VALID)
            logits = brain.classifier_logits(brain.apply_mask(out["X"], 1 - out["mask"]))
            own = logits.gather(1, out["classes"].view(-1, 1)).squeeze(1)
            others = logits.scatter(1, out["classes"].view(-1, 1), float("-inf")).logsumexp(dim=1)
            return (own - others).mean()

    psi.eval()  # the same BatchNorm statistics before and after the step
    brain.hparams.out_loss = kind
    try:
        before = confidence_out()
        psi.zero_grad()
        _, terms = _loss_terms(brain, wavs)
        terms["loss_out"].backward()
        grads = [p.grad for p in psi.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
        with torch.no_grad():
            for p in psi.parameters():
                p -= 1e-3 * p.grad / max(g.abs().max() for g in grads)
        after = confidence_out()
    finally:
        brain.hparams.out_loss = "neg_ce"
        psi.load_state_dict(saved)
        psi.zero_grad()
    assert after < before


def test_loss_terms_do_not_grow_with_the_batch_size(tiny_lmac):
    """The same two clips, once and twice in a batch: every term is a mean, so equal
    (the public recipe's summed L1 term would double)."""
    brain = tiny_lmac["brain"]
    wavs = clips(2, seed=3)
    with torch.no_grad():
        _, pair = _loss_terms(brain, wavs)
        _, twice = _loss_terms(brain, torch.cat([wavs, wavs]))
    assert pair["loss_l1"] > 0
    for name in ("loss_in", "loss_out", "loss_l1"):
        assert torch.allclose(pair[name], twice[name], rtol=1e-5), name


def test_loss_matches_its_definition(tiny_lmac):
    """L = l_in_w CE(f(M X), y) - l_out_w CE(f((1 - M) X), y) + reg_w_l1 mean|M|,
    recomputed here from the classifier's probabilities."""
    brain = tiny_lmac["brain"]
    hp = brain.hparams
    with torch.no_grad():
        outputs, terms = _loss_terms(brain, clips(3, seed=5))
        X, M, y = outputs["X"], outputs["mask"], outputs["classes"]
        p_in = brain.class_probabilities(brain.classify(M * X)[0])
        p_out = brain.class_probabilities(brain.classify((1 - M) * X)[0])
    picked_in = p_in.gather(1, y.view(-1, 1)).squeeze(1)
    picked_out = p_out.gather(1, y.view(-1, 1)).squeeze(1)
    assert torch.allclose(terms["loss_in"], -hp.l_in_w * picked_in.log().mean(), rtol=1e-4)
    assert torch.allclose(terms["loss_out"], hp.l_out_w * picked_out.log().mean(), rtol=1e-4)
    assert torch.allclose(terms["loss_l1"], hp.reg_w_l1 * M.mean(), rtol=1e-5)
    # the bounded out-term: the cross-entropy of "not y", -log(1 - p_y)
    logits_out = brain.classifier_logits((1 - M) * X)
    expected = -(1 - logits_out.double().softmax(dim=1).gather(1, y.view(-1, 1))).log().mean()  # p_y ~ 1
    assert torch.allclose(out_loss(logits_out, y, "not_class").double(), expected, rtol=1e-4)
    # l1_weighting input: the share of X each clip's mask keeps, sum(M X) / sum(X), averaged over
    # the clips (written out clip by clip in float64)
    brain.hparams.l1_weighting = "input"
    try:
        with torch.no_grad():
            weighted = brain.interpretation_loss(outputs, None, sb.Stage.VALID)["loss_l1"]
    finally:
        brain.hparams.l1_weighting = "bins"
    shares = [float((M[b].double() * X[b].double()).sum() / X[b].double().sum()) for b in range(3)]
    assert abs(float(weighted) - hp.reg_w_l1 * sum(shares) / 3) < 1e-5 * hp.reg_w_l1
    assert not torch.allclose(weighted, terms["loss_l1"])  # not mean |M|


def test_conv2d_decoder_is_piqs_decoder_without_the_codebook():
    """PIQ's adapter and decoder weights load into it, and it decodes the same map."""
    piq = VectorQuantizedPSI_Audio(dim=8, K=6, numclasses=3, adapter_reduce_dim=False).eval()
    decoder = Conv2dMaskDecoder(dim=8).eval()
    missing, unexpected = decoder.load_state_dict(piq.state_dict(), strict=False)
    assert not missing and all(key.startswith("codebook.") for key in unexpected)
    h = torch.randn(2, 8, 5, 32)
    with torch.no_grad():
        assert torch.allclose(decoder(h), piq.forward_without_vq(h), atol=1e-5)
    assert decoder(h).shape[-1] == 513
    with pytest.raises(ValueError, match="emb_dim"):
        decoder(torch.randn(2, 4, 5, 32))


def test_eval_and_single_sample(tiny_lmac, tiny_synthetic, tmp_path, capsys):
    argv = list(tiny_lmac["argv"]) + ["--pretrained_interpreter", str(tiny_lmac["folder"] / "psi_model.ckpt")]
    result = eval_recipe.main(argv + ["--eval_folder", str(tmp_path / "eval"), "--n_report_clips", "1"])
    evaluation = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluation["interpreter"] == "LMAC"
    assert {"LMAC", "random", "saliency"} <= set(evaluation["methods"])
    assert list(evaluation["references"]) == ["all_ones", "ground_truth"]
    for name in ("fid_in", "faithfulness", "si_sdri", "gt_precision"):
        value = evaluation["methods"]["LMAC"][name]
        assert value == value, name
    assert (tmp_path / "eval" / "report" / "index.html").is_file()
    assert result is not None
    # one file, without the dataset: the class names come from the training run
    clip = tiny_synthetic / "audio" / "5-100004-A-0.wav"
    at = argv.index("--data_folder")
    single = argv[:at] + argv[at + 2 :] + ["--eval_folder", str(tmp_path / "one"), "--single_sample", str(clip)]
    result = eval_recipe.main(single)
    assert (tmp_path / "one" / "5-100004-A-0" / "5-100004-A-0_interpretation.wav").is_file()
    assert "components" not in result
    assert f"{result['class']} (p={result['probability']:.3f})" in capsys.readouterr().out
    expected = tiny_lmac["brain"].explain(load_clip(clip, 16000, 16000).unsqueeze(0))
    assert result["probability"] == pytest.approx(expected["probs"].max().item(), abs=1e-5)


@pytest.fixture(scope="module")
def finetuned(tiny_lmac, tmp_path_factory):
    """One fine-tuning epoch from the tiny L-MAC, every clip guided (crosscor_th -1)."""
    folder = tmp_path_factory.mktemp("lmac_finetuned") / "run"
    argv = with_flag(tiny_lmac["argv"], "--n_interpretations_to_save", 0) + [
        "--finetuning", "True", "--finetune_from", str(tiny_lmac["folder"]), "--crosscor_th", "-1.0",
    ]
    return folder, train_lmac.main(argv + ["--output_folder", str(folder)])


def test_finetuning_guides_the_clips_towards_the_clean_target(finetuned, tiny_lmac, tiny_synthetic):
    folder, brain = finetuned
    stats = json.loads((folder / "test_metrics.json").read_text())
    assert stats["guided_share"] == 1.0  # cosine >= -1: every clip
    assert stats["loss_guide"] > 0 and stats["loss_l1"] == 0.0  # guided clips drop the L1 term
    # the guidance term by hand, on two test clips and their target events
    ids = ["5-100004-A-0", "5-100009-A-1"]
    wavs = torch.stack([load_clip(tiny_synthetic / "audio" / f"{i}.wav", 16000, 16000) for i in ids])
    batch = types.SimpleNamespace(id=ids, sig=(wavs, torch.ones(2)))
    with torch.no_grad():
        outputs = brain.forward_waveforms(wavs, sb.Stage.VALID)
        terms = brain.interpretation_loss(outputs, batch, sb.Stage.VALID)
        target, _ = brain.ground_truth.sources(ids, wavs)
        X_clean, _ = brain.preprocess(target)
        n = outputs["logits"].shape[1]
        binary = (X_clean >= brain.hparams.bin_th * X_clean.amax(dim=(1, 2), keepdim=True)).float()[:, :n]
        expected = F.binary_cross_entropy(torch.sigmoid(outputs["logits"]), binary)
    assert torch.allclose(terms["loss_guide"], brain.hparams.g_w * expected, rtol=1e-4)
    # a threshold no clip reaches: no guidance, the full L1 term
    brain.hparams.crosscor_th = 1.1
    try:
        with torch.no_grad():
            terms = brain.interpretation_loss(brain.forward_waveforms(wavs, sb.Stage.VALID), batch, sb.Stage.VALID)
    finally:
        brain.hparams.crosscor_th = -1.0
    assert terms["loss_guide"] == 0 and terms["loss_l1"] > 0
    # it started from the trained L-MAC and moved away from it
    start = torch.load(tiny_lmac["folder"] / "psi_model.ckpt", weights_only=True)
    tuned = brain.unwrapped("psi").state_dict()
    assert any(not torch.equal(start[k], tuned[k].cpu()) for k in start if start[k].is_floating_point())


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"finetune_from": None}, "finetune_from"),
        ({"finetuning_reference": "clip"}, "add_wham_noise"),
        ({"finetuning_reference": "oracle"}, "finetuning_reference"),
        ({"data_folder": "ESC50"}, "ground_truth.csv"),  # sources without separate sources
        ({"finetuning": False, "l1_weighting": "energy"}, "l1_weighting 'energy': choose one of"),
    ],
)
def test_finetuning_configuration_errors(tiny_lmac, esc50_sample_dir, settings, match):
    """The fine-tuning set-up and the loss's options (checked when the Brain is built, before any
    training)."""
    brain = tiny_lmac["brain"]
    if settings.get("data_folder") == "ESC50":
        settings = {"data_folder": str(esc50_sample_dir)}
    settings = {"finetuning": True, "finetune_from": str(tiny_lmac["folder"]), **settings}
    saved = {key: getattr(brain.hparams, key) for key in settings}
    try:
        vars(brain.hparams).update(settings)
        with pytest.raises(ValueError, match=match):
            brain.load_frozen()
    finally:
        vars(brain.hparams).update(saved)
        brain.load_frozen()  # back to the plain L-MAC
    assert not brain.finetuning


@pytest.mark.slow
def test_cnn14_yaml_runs_one_epoch(tiny_synthetic, tmp_path):
    """lmac_cnn14.yaml end to end: a CNN14 classifier on log-mel (trained one epoch by
    its recipe) and the reference decoder CNN14PSI_stft (237M parameters; 2.325 s
    clips = 201 frames). Slow: `make test-slow`."""
    from conftest import HPARAMS

    from recipes import train_classifier

    data = ["--data_folder", str(tiny_synthetic), "--signal_length_s", "2.325"]
    small = ["--batch_size", "2", "--number_of_epochs", "1"]
    train_classifier.main(
        [str(HPARAMS / "classifier_cnn14.yaml"), *data, *small, "--output_folder", str(tmp_path / "cnn14")]
    )
    folder = tmp_path / "lmac"
    brain = train_lmac.main(
        [str(HPARAMS / "lmac_cnn14.yaml"), *data, *small, "--output_folder", str(folder)]
        + ["--classifier_folder", str(tmp_path / "cnn14"), "--n_interpretations_to_save", "1"]
    )
    assert epochs_logged(folder / "train_log.txt") == [1]
    assert (folder / "psi_model.ckpt").is_file()
    stats = json.loads((folder / "test_metrics.json").read_text())
    assert stats["fid_in"] == stats["fid_in"]
    out = brain.explain(torch.randn(1, 37200) * 0.2)
    assert out["mask"].shape == out["X"].shape and 0 <= out["mask"].min() <= out["mask"].max() <= 1


def test_mask_completion_at_test_and_in_the_export_not_in_training(tiny_lmac, tmp_path):
    """`mask_completion: True` (with the transformer demos' mask_above_floor and keep_class):
    explain's mask, where the own mask kept the class, is complete_mask(own mask) times the
    floor mask; the valid stage (the checkpoint's choice) sees the own mask; the exported
    inference folder keeps the key and gives the same masks."""
    from recipes.core.pipeline import complete_mask
    from recipes.interpreters.inference import AudioInterpreter

    argv = with_flag(tiny_lmac["argv"], "--n_interpretations_to_save", 0)
    argv += ["--mask_completion", "True", "--mask_above_floor", "True", "--keep_class", "True"]
    brain = train_lmac.main(argv + ["--output_folder", str(tmp_path / "lmac")])
    assert brain.mask_completion
    wavs = clips(4, seed=7)
    outputs = brain.explain(wavs)
    with torch.no_grad():
        X, _ = brain.preprocess(wavs)
        _, representations = brain.classify(X)
        own = brain.interpret(X, representations, outputs["classes"], sb.Stage.TEST)["mask"]
        gate = floor_mask(X, brain.mask_domain)
        expected = complete_mask(own, X) * gate
        valid = brain.forward_waveforms(wavs, sb.Stage.VALID)["mask"]
    assert torch.allclose(valid, own * gate)
    kept = outputs["keep_class_step"] == 0
    assert kept.any()
    assert torch.allclose(outputs["mask"][kept], expected[kept], atol=1e-6)
    grew = (expected > 0) & (own * gate == 0)  # bins the completion added
    assert grew.any() and (outputs["mask"][kept][grew[kept]] > 0).all()
    exported = AudioInterpreter.from_hparams(source=tmp_path / "lmac" / "inference")
    assert exported.brain.mask_completion
    assert torch.allclose(exported.brain.explain(wavs)["mask"], outputs["mask"], atol=1e-6)


def test_mask_tail_travels_with_the_export(tiny_lmac, tmp_path):
    """`--mask_tail edge`: the exported inference folder carries the key (a folder without it
    reads as zeros: the reference's tail, other masks) and explains with the same masks."""
    from recipes.interpreters.inference import AudioInterpreter

    argv = with_flag(tiny_lmac["argv"], "--n_interpretations_to_save", 0) + ["--mask_tail", "edge"]
    brain = train_lmac.main(argv + ["--output_folder", str(tmp_path / "lmac")])
    exported = AudioInterpreter.from_hparams(source=tmp_path / "lmac" / "inference")
    assert brain.mask_tail == "edge" and exported.brain.mask_tail == "edge"
    wavs = clips(2, seed=7)
    assert torch.allclose(exported.brain.explain(wavs)["mask"], brain.explain(wavs)["mask"], atol=1e-6)


@pytest.mark.parametrize("flag, value", [("--n_fft", 512), ("--sample_rate", 8000)])
def test_a_classifier_trained_on_another_signal_is_refused(tiny_pretrained, tmp_path, flag, value):
    """Guards `check_classifier_signal`: an interpreter whose STFT or sample rate is not the
    classifier's (its run's hyperparams.yaml: n_fft 1024, 16 kHz) would feed it a spectrogram it
    never learnt; the state dicts load all the same, so only this check stops it, before
    any training."""
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=rf"trained with {flag[2:]} \d+.*this run has {flag[2:]} {value}.*Run with {flag} "):
        train_lmac.main(with_flag(lmac_argv(tiny_pretrained), flag, value) + ["--output_folder", str(out)])
    assert not list(out.glob("save/CKPT*")) and not (out / "train_log.txt").exists()


def test_a_resume_with_another_loss_weight_says_what_was_trained_with_what(tiny_lmac, tmp_path):
    """Guards `changed_settings` in `refuse_changed_resume`: a finished run rerun with another
    out-term weight tests and exports again under it (found by a probe: nothing said so, and
    hyperparams.yaml named the new weight as if every epoch had used it)."""
    folder = tmp_path / "resumed"
    shutil.copytree(tiny_lmac["folder"], folder)
    argv = with_flag(tiny_lmac["argv"], "--n_interpretations_to_save", 0)
    train_lmac.main(with_flag(argv, "--l_out_w", 0.7) + ["--output_folder", str(folder)])
    log = (folder / "log.txt").read_text()
    assert "resumes from its checkpoints with other settings than its last start (l_out_w 0.2 -> 0.7)" in log
