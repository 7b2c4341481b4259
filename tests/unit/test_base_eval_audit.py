"""Mutation audit of `recipes/interpreters/base.py` (InterpreterBrain's shared steps) and of
`recipes/eval.py` (its argument parsing, folders, trained settings and `main`'s early glue).

Each test calls one Brain method or one eval function directly on hand-made parts: the
two-bin classifier of conftest.py (`ReadsTwoBins`, `two_bin_head`: logits (2 X[a], 2 X[b], 1)),
a real speechbrain Checkpointer, FileTrainLogger and ReduceLROnPlateau, real files under
tmp_path, and fake interpreter folders (an empty `psi_model.ckpt` beside a hand-written
`hyperparams.yaml`) that stop `eval.main` at a cheap check before any set-up. Expected values
are worked out in the test by hand (Python floats and `math`: weighted means over clips,
medians, softmax probabilities, the lr schedule) or are the literal file names, folders,
flags and messages the docstrings promise; never taken from the code under test.
"""

import json
import logging
import math
import pickle
import types

import numpy as np
import pytest
import soundfile as sf
import speechbrain as sb
import torch
from conftest import HPARAMS, bare_brain
from speechbrain.nnet.schedulers import ReduceLROnPlateau
from speechbrain.processing.features import ISTFT, STFT
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.epoch_loop import EpochCounter
from speechbrain.utils.train_logger import FileTrainLogger

from recipes import eval as eval_recipe
from recipes.core.pipeline import spectrogram
from recipes.core.run_guard import UnwritableFolderError
from recipes.interpreters import base
from recipes.interpreters.base import InterpreterBrain, interpreter_file

BIN_A, BIN_B = (1, 2), (3, 0)  # the bins the two-bin classifier reads (class 0, class 1)
STFT_ARGS = {"sample_rate": 16000, "n_fft": 64, "hop_length": 2, "win_length": 4}


def softmax(logits):
    exps = [math.exp(v) for v in logits]
    return [v / sum(exps) for v in exps]


def clips(*pairs):
    """X (B, 4 frames, 3 bins), zero but X[a], X[b] = each pair."""
    X = torch.zeros(len(pairs), 4, 3)
    for i, (a, b) in enumerate(pairs):
        X[i, BIN_A[0], BIN_A[1]], X[i, BIN_B[0], BIN_B[1]] = a, b
    return X


# ---------------------------------------------------------------- file names
def test_exported_interpreter_file_names_are_the_documented_ones():
    """eval.py and the inference folder read `psi_model.ckpt` and `theta.ckpt` (L2I)."""
    assert interpreter_file("psi") == "psi_model.ckpt"
    assert interpreter_file("theta") == "theta.ckpt"


# ---------------------------------------------------------------- the stage's figures
class Scripted(InterpreterBrain):
    """Loss terms and extra metrics read from the outputs, so each batch's are set by hand."""

    median_stats = ("ranked",)

    def interpretation_loss(self, outputs, batch, stage):
        return {"loss_a": outputs["loss_a"], "loss_b": outputs["loss_b"]}

    def interpreter_metrics(self, outputs, scores, generator=None):
        return {name: outputs[name] for name in ("partly", "ranked", "never")}

    def stage_extra_stats(self):
        return getattr(self, "extra", {})


def scripted(tmp_path, **extra):
    brain = bare_brain(
        Scripted,
        n_interpretations_to_save=0,
        output_folder=str(tmp_path),
        train_logger=FileTrainLogger(str(tmp_path / "train_log.txt")),
        epoch_counter=types.SimpleNamespace(current=3),
        **extra,
    )
    brain.tensorboard = None
    brain.label_encoder = None
    return brain


def batch_outputs(brain, X, mask, loss_a, loss_b, partly, ranked):
    scores, _ = brain.classify(X)
    nan = float("nan")
    return {
        "X": X, "scores": scores, "classes": scores.argmax(dim=1), "mask": mask,
        "loss_a": torch.tensor(loss_a), "loss_b": torch.tensor(loss_b),
        "partly": torch.tensor(partly), "ranked": torch.tensor(ranked),
        "never": torch.full((X.shape[0],), nan),
    }


def two_batches(brain):
    """Batch 1: two clips (class 0, class 1) with the all-ones mask (Fid-In 1, 1); batch 2: one
    clip with the all-zeros mask (X_int = 0: class 2, Fid-In 0)."""
    nan = float("nan")
    first = clips((3.0, 1.0), (0.5, 2.5))
    second = clips((3.0, 1.0))
    return [
        batch_outputs(brain, first, torch.ones_like(first), 1.0, 0.5, [nan, 2.0], [1.0, 10.0]),
        batch_outputs(brain, second, torch.zeros_like(second), 4.0, 0.5, [4.0], [4.0]),
    ]


def test_compute_objectives_sums_the_terms_and_weighs_batch_means_by_batch_size(tmp_path):
    """Batches of 2 and 1 clips with loss_a 1 and 4: the stage's loss_a is (2 * 1 + 1 * 4) / 3
    = 2 (not the mean of the batch means, 2.5); the loss minimised is loss_a + loss_b."""
    brain = scripted(tmp_path)
    brain.on_stage_start(sb.Stage.TRAIN, 1)
    losses = [brain.compute_objectives(out, None, sb.Stage.TRAIN) for out in two_batches(brain)]
    assert [loss.item() for loss in losses] == [1.5, 4.5]
    assert "fid_in" not in brain.stage_stats.summary()  # training scores nothing
    brain.on_stage_end(sb.Stage.TRAIN, 2.5, 1)
    assert brain.train_stats["loss_a"] == pytest.approx(2.0)
    assert brain.train_stats["loss"] == 2.5
    # the train stage's end writes no test file and logs nothing
    assert not (tmp_path / "test_metrics.json").exists()
    assert not (tmp_path / "train_log.txt").exists() or (tmp_path / "train_log.txt").read_text() == ""


@pytest.mark.parametrize("stage", [sb.Stage.VALID, sb.Stage.TEST])
def test_valid_and_test_score_every_clip_and_average_over_clips(tmp_path, stage):
    """Fid-In of the three clips is 1, 1, 0: the stage's is 2 / 3 (a mean over clips, not of
    the batch means, 0.5); the subclass's metrics join the suite."""
    brain = scripted(tmp_path)
    brain.on_stage_start(stage, 1)
    for out in two_batches(brain):
        brain.compute_objectives(out, None, stage)
    summary = brain.stage_stats.summary()
    assert summary["fid_in"] == pytest.approx(2 / 3)
    assert summary["partly"] == pytest.approx(3.0)


def test_test_metrics_json_holds_the_clip_means_medians_and_undefined_counts(tmp_path):
    """test_metrics.json of the two batches: Fid-In 2 / 3, loss_a 2 (clip-weighted), the loss
    the stage was given, `partly` the mean of its finite values (2 + 4) / 2 = 3 with its NaN
    counted (as SPS and COMP of the all-zeros mask are), `ranked` (a median_stats name) the median of 1, 10, 4 = 4 (its mean would be 5),
    `never` (no finite value) null, not the non-standard NaN token."""
    brain = scripted(tmp_path)
    brain.on_stage_start(sb.Stage.TEST)
    for out in two_batches(brain):
        brain.compute_objectives(out, None, sb.Stage.TEST)
    brain.on_stage_end(sb.Stage.TEST, 0.75)

    def no_nan(token):
        raise AssertionError(f"{token} in test_metrics.json")

    written = json.loads((tmp_path / "test_metrics.json").read_text(), parse_constant=no_nan)
    assert written["fid_in"] == pytest.approx(2 / 3)
    assert written["loss_a"] == pytest.approx(2.0)
    assert written["loss"] == 0.75
    assert written["partly"] == pytest.approx(3.0)
    assert written["ranked"] == pytest.approx(4.0)
    assert written["never"] is None
    # and the all-zeros mask's sparsity and compactness (undefined for an empty mask)
    assert written["n_undefined"] == {"partly": 1, "never": 3, "SPS": 1, "COMP": 1}
    assert "fid_in_unwidened" not in written  # no keep_class
    log = (tmp_path / "train_log.txt").read_text()
    assert "Epoch loaded: 3 - test loss: 7.50e-01" in log and "epochs averaged" not in log


def test_a_failed_rewrite_of_test_metrics_json_leaves_the_previous_file_whole(tmp_path):
    """A second test stage whose statistics cannot be written as JSON raises, and the first
    stage's test_metrics.json is still there, whole (written atomically)."""
    brain = scripted(tmp_path)
    brain.on_stage_start(sb.Stage.TEST)
    brain.on_stage_end(sb.Stage.TEST, 0.5)
    before = (tmp_path / "test_metrics.json").read_text()
    assert json.loads(before) == {"loss": 0.5, "n_undefined": {}}
    brain.on_stage_start(sb.Stage.TEST)
    brain.extra = {"codebook": 0.25, "unwritable": object()}
    with pytest.raises(TypeError):
        brain.on_stage_end(sb.Stage.TEST, 0.9)
    assert (tmp_path / "test_metrics.json").read_text() == before


def test_fid_in_unwidened_is_one_only_where_the_interpreters_own_mask_kept_the_class():
    """keep_class's step per clip: 0 (the interpreter's mask kept the class) -> 1; -1 (no
    candidate kept it, the interpreter's mask is scored) and 2 (widened) -> 0."""
    brain = bare_brain()
    X = clips((3.0, 1.0), (0.5, 2.5), (3.0, 1.0))
    scores, _ = brain.classify(X)
    outputs = {"X": X, "scores": scores, "classes": scores.argmax(dim=1), "mask": torch.ones_like(X),
               "keep_class_step": torch.tensor([0, -1, 2])}
    values, _ = brain.score(outputs)
    assert values["fid_in_unwidened"].tolist() == [1.0, 0.0, 0.0]


# ---------------------------------------------------------------- the forward pass
def test_wham_noise_is_mixed_into_training_batches_only():
    brain = bare_brain()
    brain.wham_mixer = lambda wavs: wavs + 1.0  # stands for WhamMixer: adds the noise
    wavs = torch.zeros(2, 8)
    batch = types.SimpleNamespace(sig=(wavs, torch.ones(2)))
    assert torch.equal(brain.input_waveforms(batch, sb.Stage.TRAIN), torch.ones(2, 8))
    for stage in (sb.Stage.VALID, sb.Stage.TEST):
        assert torch.equal(brain.input_waveforms(batch, stage), wavs), stage


class HalfMaskOnX(InterpreterBrain):
    """preprocess gives the X set by the test; psi's mask is 0.5 everywhere."""

    def preprocess(self, wavs):
        return self.X, None

    def interpret(self, X, representations, classes, stage):
        return {"mask": torch.full_like(X, 0.5)}


def test_the_forward_pass_hands_its_finish_to_the_scoring_hooks():
    """With mask_above_floor, what the forward pass did to psi's mask (the floor share: a floor
    of 1, frame 2 at 4, 9, 4, 9 -> 0.75, 8 / 9) is in outputs["finish"], for the other masks
    scored beside it (L2I's random components): finish(all ones) is that floor share."""
    brain = bare_brain(HalfMaskOnX, mask_above_floor=True, mask_domain="log")
    brain.X = torch.ones(1, 5, 4)
    brain.X[0, 2] = torch.tensor([4.0, 9.0, 4.0, 9.0])
    share = torch.zeros(1, 5, 4)
    share[0, 2] = torch.tensor([0.75, 8 / 9, 0.75, 8 / 9])
    outputs = brain.forward_waveforms(torch.zeros(1, 8), sb.Stage.VALID)
    assert torch.allclose(outputs["mask"], 0.5 * share, atol=1e-6)
    assert torch.allclose(outputs["finish"](torch.ones(1, 5, 4)), share, atol=1e-6)
    brain.hparams.mask_above_floor = False
    assert brain.forward_waveforms(torch.zeros(1, 8), sb.Stage.VALID)["finish"] is None


class DropoutMask(InterpreterBrain):
    """psi is a dropout (p 0.5) of a constant 0.5 mask: 0.5 in eval mode, 0 or 1 in training."""

    def interpret(self, X, representations, classes, stage):
        return {"mask": self.modules["psi"](torch.full_like(X, 0.5))}


def test_explain_runs_the_interpreter_in_eval_mode():
    brain = bare_brain(
        DropoutMask, modules=torch.nn.ModuleDict({"psi": torch.nn.Dropout(0.5)}),
        compute_stft=STFT(**STFT_ARGS), compute_istft=ISTFT(**STFT_ARGS),
    )
    brain.modules.train()  # as the training stage leaves it
    wavs = torch.randn(1, 400, generator=torch.Generator().manual_seed(0))
    outputs = brain.explain(wavs)
    assert torch.equal(outputs["mask"], torch.full_like(outputs["X"], 0.5))
    assert outputs["audio"].shape == wavs.shape


def test_finish_of_the_open_clips_uses_their_own_floor_and_region():
    """finish(masks, rows) for clip 1 alone of a batch of two: clip 0 is flat (2 everywhere: no
    floor share, no region), clip 1 has a floor of 1 and frame 2 at 4, 9, 4, 9 (floor shares
    (4 - 1) / 4 = 0.75 and (9 - 1) / 9 = 8 / 9, all above 0.5: one region). A seed at frame 2,
    bin 0 grows over frame 2 (completion), then takes each bin's floor share."""
    X = torch.ones(2, 5, 4)
    X[0] = 2.0
    X[1, 2] = torch.tensor([4.0, 9.0, 4.0, 9.0])
    rows = torch.tensor([False, True])
    seed = torch.zeros(1, 5, 4)
    seed[0, 2, 0] = 1.0
    expected = torch.zeros(1, 5, 4)
    gated = bare_brain(mask_above_floor=True, mask_domain="log").finished_mask(X, sb.Stage.TEST)
    ones = torch.ones(1, 5, 4)
    expected[0, 2] = torch.tensor([0.75, 8 / 9, 0.75, 8 / 9])
    assert gated(ones, rows).shape == (1, 5, 4)
    assert torch.allclose(gated(ones, rows), expected, atol=1e-6)
    completed = bare_brain(mask_completion=True, mask_domain="log").finished_mask(X, sb.Stage.TEST)
    expected[0, 2] = 1.0
    assert completed(seed, rows).shape == (1, 5, 4)
    assert torch.allclose(completed(seed, rows), expected, atol=1e-6)


# ---------------------------------------------------------------- checkpoints, lr, export
class ValidFidIn(InterpreterBrain):
    """The valid Fid-In of each epoch is set by the test (`scripted`)."""

    def stage_extra_stats(self):
        return {"fid_in": self.scripted}


def built_brain(tmp_path, hold_psi=True, **extra):
    """A ValidFidIn made by InterpreterBrain's own __init__: a one-weight psi, a checkpointer
    holding psi (unless not `hold_psi`) and the epoch counter."""
    psi = torch.nn.Linear(1, 1, bias=False)
    counter = EpochCounter(10)
    hparams = {
        "embedding_model": torch.nn.Flatten(), "classifier": torch.nn.Linear(1, 2),
        "use_pretrained": False, "add_wham_noise": False, "use_tensorboard": False,
        "lr_annealing": None, "train_logger": FileTrainLogger(str(tmp_path / "train_log.txt")),
        "epoch_counter": counter, "output_folder": str(tmp_path), **extra,
    }
    recoverables = {"psi_model": psi, "counter": counter} if hold_psi else {"counter": counter}
    brain = ValidFidIn(
        modules={"psi": psi}, hparams=hparams, run_opts={"device": "cpu"},
        checkpointer=Checkpointer(str(tmp_path / "save"), recoverables=recoverables),
    )
    brain.optimizer = torch.optim.SGD(psi.parameters(), lr=0.1)
    return brain


def valid_epochs(brain, script):
    """Valid stage ends with (Fid-In, loss) per epoch; psi's weight at epoch k is k."""
    for epoch, (fid_in, loss) in enumerate(script, start=1):
        brain.hparams.epoch_counter.current = epoch
        with torch.no_grad():
            brain.modules["psi"].weight.fill_(float(epoch))
        brain.on_stage_start(sb.Stage.VALID, epoch)
        brain.scripted = fid_in
        brain.on_stage_end(sb.Stage.VALID, loss, epoch)


def test_an_explicit_key_loads_that_keys_checkpoint_not_best_keys(tmp_path):
    """Fid-In 0.5, 0.9, 0.2: kept are epoch 2 (the best) and epoch 3 (the most recent). No
    key: epoch 2; max_key epoch: epoch 3; min_key fid_in: epoch 3 (0.2)."""
    brain = built_brain(tmp_path)
    valid_epochs(brain, [(0.5, 1.0), (0.9, 1.0), (0.2, 1.0)])
    brain.on_evaluate_start()
    assert brain.modules["psi"].weight.item() == 2.0
    brain.on_evaluate_start(max_key="epoch")
    assert brain.modules["psi"].weight.item() == 3.0
    brain.on_evaluate_start(min_key="fid_in")
    assert brain.modules["psi"].weight.item() == 3.0


def test_without_a_plateau_key_the_lr_halves_when_the_valid_loss_rises(tmp_path):
    """ReduceLROnPlateau (factor 0.5, patience 0) on the valid loss: 1.0 then 2.0 (worse) ->
    the lr halves after epoch 2, 0.1 -> 0.05; the Fid-In, falling too, is not what it reads."""
    annealing = ReduceLROnPlateau(factor=0.5, patience=0, dont_halve_until_epoch=0)
    brain = built_brain(tmp_path, lr_annealing=annealing)
    valid_epochs(brain, [(0.9, 1.0), (0.8, 2.0)])
    assert brain.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_averaging_says_epochs_averaged_only_when_more_than_one_was(tmp_path):
    """average_checkpoints 2 with one valid epoch saved: the test loads it alone, and the test
    log line names the epoch loaded, no 'epochs averaged'."""
    brain = built_brain(tmp_path, average_checkpoints=2)
    valid_epochs(brain, [(0.5, 1.0)])
    brain.on_evaluate_start()
    assert brain.averaged_epochs == [1]
    brain.on_stage_start(sb.Stage.TEST)
    brain.on_stage_end(sb.Stage.TEST, 0.5)
    test_line = [row for row in (tmp_path / "train_log.txt").read_text().splitlines() if "Epoch loaded" in row]
    assert len(test_line) == 1 and test_line[0].startswith("Epoch loaded: 1 - test loss: 5.00e-01")
    assert "epochs averaged" not in test_line[0]


def test_averaging_a_module_the_checkpointer_does_not_hold_is_refused(tmp_path):
    brain = built_brain(tmp_path, hold_psi=False, average_checkpoints=2)
    valid_epochs(brain, [(0.5, 1.0), (0.6, 1.0)])
    with pytest.raises(RuntimeError, match="interpreter module 'psi' is not among the checkpointer's recoverables"):
        brain.on_evaluate_start()


class Wrapped(torch.nn.Module):
    """A DDP-like wrapper: the module under `.module`, its state dict keys prefixed."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def linear(value):
    layer = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(value)
    return layer


def test_export_and_load_use_the_unwrapped_modules_file_or_folder(tmp_path):
    """psi 3 and theta 5 inside DDP-like wrappers: psi_model.ckpt and theta.ckpt hold plain
    state dicts ({"weight"}); a brain with wrapped zeros loads them back from the file path and
    from the folder."""
    brain = bare_brain(modules=torch.nn.ModuleDict({"psi": Wrapped(linear(3.0)), "theta": Wrapped(linear(5.0))}))
    brain.export_interpreter(str(tmp_path))
    psi = torch.load(tmp_path / "psi_model.ckpt", weights_only=True)
    theta = torch.load(tmp_path / "theta.ckpt", weights_only=True)
    assert list(psi) == ["weight"] and psi["weight"].item() == 3.0 and theta["weight"].item() == 5.0
    for path in (tmp_path / "psi_model.ckpt", tmp_path):
        other = bare_brain(modules=torch.nn.ModuleDict({"psi": Wrapped(linear(0.0)), "theta": Wrapped(linear(0.0))}))
        other.load_interpreter(str(path))
        assert other.unwrapped("psi").weight.item() == 3.0 and other.unwrapped("theta").weight.item() == 5.0


class Unpicklable(torch.nn.Linear):
    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        state["hook"] = lambda: None  # torch.save cannot pickle it
        return state


def test_a_failed_export_leaves_the_previous_weights_whole(tmp_path):
    bare_brain(modules=torch.nn.ModuleDict({"psi": linear(3.0)})).export_interpreter(str(tmp_path))
    failing = bare_brain(modules=torch.nn.ModuleDict({"psi": Unpicklable(1, 1, bias=False)}))
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        failing.export_interpreter(str(tmp_path))
    assert torch.load(tmp_path / "psi_model.ckpt", weights_only=True)["weight"].item() == 3.0


# ---------------------------------------------------------------- saved interpretations
def test_interpretations_are_due_at_test_always_and_with_interpret_period_0_every_epoch():
    """interpret_period 2, epoch 3: the valid stage saves nothing, the test stage saves; a
    period of 0 is read as 1 (every epoch); once n_interpretations_to_save are saved, none."""
    brain = bare_brain(n_interpretations_to_save=1, interpret_period=2, epoch_counter=types.SimpleNamespace(current=3))
    brain.n_saved = 0
    assert brain._due_for_saving(sb.Stage.TEST)
    assert not brain._due_for_saving(sb.Stage.VALID)
    brain.hparams.interpret_period = 0
    assert brain._due_for_saving(sb.Stage.VALID)
    brain.n_saved = 1
    assert not brain._due_for_saving(sb.Stage.TEST)


def test_saved_interpretation_title_uses_the_classifier_temperature_and_the_class_index(tmp_path, monkeypatch):
    """No label encoder: the class is named by its index; scores (2, 0, 0) at classifier_temp 2
    give p = softmax(1, 0, 0)[0] = e / (e + 2) = 0.58 (at temperature 1 it would be 0.79)."""
    saved = []
    monkeypatch.setattr(base, "save_interpretation", lambda folder, clip_id, **kw: saved.append((folder, clip_id, kw)))
    brain = bare_brain(
        n_interpretations_to_save=1, output_folder=str(tmp_path), sample_rate=16000, classifier_temp=2.0,
        compute_istft=ISTFT(**STFT_ARGS),
    )
    brain.label_encoder = None
    brain.on_stage_start(sb.Stage.TEST)
    wavs = torch.randn(1, 400, generator=torch.Generator().manual_seed(1))
    X, X_stft = spectrogram(wavs, STFT(**STFT_ARGS))
    outputs = {"X": X, "X_stft": X_stft, "mask": torch.ones_like(X), "wavs": wavs,
               "scores": torch.tensor([[2.0, 0.0, 0.0]]), "classes": torch.tensor([0])}
    brain.save_interpretations(outputs, types.SimpleNamespace(id=["clip7"]), sb.Stage.TEST)
    p = softmax([1.0, 0.0, 0.0])[0]
    assert [(folder, clip_id, kw["title"]) for folder, clip_id, kw in saved] == [
        (str(tmp_path / "interpretations" / "test"), "clip7", f"clip7: predicted 0 (p={p:.2f})")
    ]
    assert f"{p:.2f}" == "0.58"
    # a batch with its true classes (a PaddedData's .data, (B, 1)): the title says whether it is
    brain.n_saved, saved[:] = 0, []
    labelled = types.SimpleNamespace(id=["clip8"], class_string_encoded=types.SimpleNamespace(data=torch.tensor([[2]])))
    brain.save_interpretations(outputs, labelled, sb.Stage.TEST)
    assert saved[0][2]["title"] == f"clip8: predicted 0 (p={p:.2f}), true class 2"


# ---------------------------------------------------------------- eval.py: arguments, folders
def test_eval_argument_defaults_are_the_documented_ones():
    args, rest = eval_recipe.parse_eval_arguments(["hparams/piq.yaml", "--pretrained_interpreter", "p"])
    assert rest == ["hparams/piq.yaml"]
    assert (args.overlap_type, args.baselines, args.deletion_value) == ("none", "all", "zero")
    assert (args.n_report_clips, args.n_bootstrap, args.sanity_clips) == (4, 1000, 16)
    assert (args.window, args.sanity_check, args.override_trained) == (False, False, "")
    assert (args.eval_folder, args.output_folder, args.data_folder, args.single_sample) == (None, None, None, None)
    args, _ = eval_recipe.parse_eval_arguments(["y.yaml", "--pretrained_interpreter", "p", "--window", "--sanity_check"])
    assert args.window and args.sanity_check


def test_a_yaml_override_that_starts_like_an_eval_flag_is_left_to_the_yaml():
    args, rest = eval_recipe.parse_eval_arguments(["y.yaml", "--pretrained_interpreter", "p", "--n_report", "3"])
    assert args.n_report_clips == 4 and rest == ["y.yaml", "--n_report", "3"]


def test_pretrained_interpreter_is_required(capsys):
    with pytest.raises(SystemExit):
        eval_recipe.parse_eval_arguments(["y.yaml"])
    assert "--pretrained_interpreter" in capsys.readouterr().err


def fake_run(tmp_path, yaml_text="signal_length_s: 1\nK: 30\n"):
    """An interpreter folder eval can find: an (empty) psi_model.ckpt and its run's yaml."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "psi_model.ckpt").write_bytes(b"")
    if yaml_text is not None:
        (folder / "hyperparams.yaml").write_text(yaml_text)
    return folder


def test_interpreter_folder_of_a_file_or_a_folder(tmp_path):
    folder = fake_run(tmp_path)
    assert eval_recipe.interpreter_folder(str(folder)) == str(folder)
    assert eval_recipe.interpreter_folder(str(folder / "psi_model.ckpt")) == str(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"--pretrained_interpreter .*empty: no psi_model.ckpt there"):
        eval_recipe.interpreter_folder(str(tmp_path / "empty"))


def test_a_weights_file_of_another_name_is_refused_not_swapped_for_its_sibling(tmp_path):
    """Was: `--pretrained_interpreter run/psi_model_epoch3.ckpt` (a typo, or a copy of older
    weights) was taken as `run/`, and the psi_model.ckpt beside it evaluated instead, silently;
    L-MAC's `finetune_from` (load_interpreter) the same."""
    folder = fake_run(tmp_path)
    (folder / "psi_model_old.ckpt").write_bytes(b"")
    for name, says in (
        ("psi_model_epoch3.ckpt", ": no psi_model.ckpt there"),  # absent: taken as a folder
        ("psi_model_old.ckpt", " is not a psi_model.ckpt: .*Give its psi_model.ckpt or its folder"),
    ):
        with pytest.raises(FileNotFoundError, match=rf"--pretrained_interpreter .*{name}{says}"):
            eval_recipe.interpreter_folder(str(folder / name))
    exported = tmp_path / "exported"
    bare_brain(modules=torch.nn.ModuleDict({"psi": linear(3.0)})).export_interpreter(str(exported))
    torch.save({"weight": torch.full((1, 1), 7.0)}, exported / "psi_model_old.ckpt")
    brain = bare_brain(modules=torch.nn.ModuleDict({"psi": linear(0.0)}))
    with pytest.raises(FileNotFoundError, match="psi_model_old.ckpt is not a psi_model.ckpt: .*Give its psi_model.ckpt or its folder"):
        brain.load_interpreter(str(exported / "psi_model_old.ckpt"))
    assert brain.modules["psi"].weight.item() == 0.0


def test_default_eval_folders():
    assert eval_recipe.default_eval_folder("runs/x", "none") == "runs/x/eval"
    assert eval_recipe.default_eval_folder("runs/x", "speech") == "runs/x/eval_speech"
    assert eval_recipe.default_eval_folder("runs/x", "none", single_sample=True) == "runs/x/single_sample"


# ---------------------------------------------------------------- take_trained_settings
def recipe_yaml(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("signal_length_s: 5\nK: 1024\nn_fft: 512\nmodel: !new:torch.nn.Identity\n")
    return str(path)


def test_omitted_trained_settings_are_added_and_given_ones_kept(tmp_path):
    """Run: signal_length_s 1, K 30, n_fft 512, emb_dim 8; the recipe yaml has no emb_dim (not
    added: the yaml could not take it). --K 30.0 is the trained value (kept as given, not
    added again)."""
    folder = fake_run(tmp_path, "signal_length_s: 1\nK: 30\nn_fft: 512\nemb_dim: 8\n")
    yaml = recipe_yaml(tmp_path)
    argv = eval_recipe.take_trained_settings([yaml], str(folder))
    assert argv[0] == yaml and sorted(argv[1:]) == ["--K=30", "--n_fft=512", "--signal_length_s=1"]
    argv = eval_recipe.take_trained_settings([yaml, "--K", "30.0"], str(folder))
    assert argv[:3] == [yaml, "--K", "30.0"] and sorted(argv[3:]) == ["--n_fft=512", "--signal_length_s=1"]


def test_a_key_an_older_inference_folder_lacks_comes_from_the_run(tmp_path):
    """An inference folder exported before a key joined SIZE_KEYS (adapter_reduce_dim, found by
    a new-user read) lacks it: it is taken from the run's own hyperparams.yaml; a key both
    hold is the inference folder's."""
    from recipes.interpreters.inference import trained_settings

    folder = fake_run(tmp_path, "K: 99\nadapter_reduce_dim: false\nuse_adapter: true\n")
    (folder / "inference").mkdir()
    (folder / "inference" / "hyperparams.yaml").write_text("K: 30\nsignal_length_s: 1\n")
    settings, where = trained_settings(folder)
    assert settings == {"K": 30, "signal_length_s": 1, "adapter_reduce_dim": False, "use_adapter": True}
    assert where == str(folder / "inference" / "hyperparams.yaml")


def test_a_contradicting_setting_is_refused_unless_overridden_then_said(tmp_path, caplog):
    folder = fake_run(tmp_path)
    yaml = recipe_yaml(tmp_path)
    with pytest.raises(ValueError, match=r"--K 40: the interpreter was trained with K = 30 \("):
        eval_recipe.take_trained_settings([yaml, "--K", "40"], str(folder))
    with pytest.raises(ValueError, match=r"--K 40: the interpreter was trained with K = 30"):
        eval_recipe.take_trained_settings([yaml, "--K", "40"], str(folder), ["signal_length_s"])
    with caplog.at_level(logging.INFO):
        argv = eval_recipe.take_trained_settings([yaml, "--K", "40"], str(folder), ["K"])
    assert argv == [yaml, "--K", "40", "--signal_length_s=1"]
    said = [r.getMessage() for r in caplog.records]
    assert "--K 40 (--override_trained): the interpreter was trained with 30." in said
    caplog.clear()
    with caplog.at_level(logging.INFO):
        eval_recipe.take_trained_settings([yaml, "--K", "30"], str(folder), ["K"])  # the same: nothing said
    assert not [m for m in (r.getMessage() for r in caplog.records) if "override_trained" in m]


def test_a_folder_without_its_runs_yaml_is_said_and_left_unchecked(tmp_path, caplog):
    folder = fake_run(tmp_path, yaml_text=None)
    yaml = recipe_yaml(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert eval_recipe.take_trained_settings([yaml, "--K", "7"], str(folder)) == [yaml, "--K", "7"]
    assert any("holds no hyperparams.yaml of its training run" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- speech files, class
def test_speech_folder_files_are_checked_naming_the_bad_one(tmp_path):
    speech = tmp_path / "speech"
    speech.mkdir()
    sf.write(str(speech / "a.wav"), np.full(160, 0.1), 16000)
    assert eval_recipe.check_speech_files(str(speech)) == [speech / "a.wav"]
    (speech / "b.wav").write_text("not audio")
    with pytest.raises(ValueError, match=r"^--speech_folder: .*b\.wav is not audio"):
        eval_recipe.check_speech_files(str(speech))


def test_interpreter_class_is_the_yamls_or_a_clear_error():
    assert eval_recipe.interpreter_class({"interpreter_class": Scripted}) is Scripted
    with pytest.raises(ValueError, match="The yaml has no `interpreter_class`"):
        eval_recipe.interpreter_class({"seed": 1})


# ---------------------------------------------------------------- eval.main's early checks
def main_argv(folder, *extra):
    return [str(HPARAMS / "piq.yaml"), "--pretrained_interpreter", str(folder), *extra]


def test_main_refuses_a_repeated_eval_flag_and_a_yaml_not_first(tmp_path):
    missing = tmp_path / "nothing"
    with pytest.raises(ValueError, match="--n_report_clips is given twice"):
        eval_recipe.main(main_argv(missing, "--n_report_clips", "1", "--n_report_clips", "2"))
    with pytest.raises(ValueError, match="needs the interpreter's yaml first"):
        eval_recipe.main(["--K", "3", str(HPARAMS / "piq.yaml"), "--pretrained_interpreter", str(missing)])


@pytest.mark.parametrize(
    "extra, refused",
    [
        (["--n_report_clips", "-1"], "--n_report_clips -1 must be >= 0"),
        (["--n_report_clips", "0"], None),
        (["--n_bootstrap", "0"], "--n_bootstrap 0 must be >= 1"),
        (["--n_bootstrap", "1"], None),
        (["--sanity_check", "--sanity_clips", "0"], "--sanity_clips 0 must be >= 1"),
        (["--sanity_check", "--sanity_clips", "1"], None),
        (["--sanity_clips", "0"], None),  # no sanity check: not read
        (["--baselines", "random,nope"], "nope"),
    ],
)
def test_main_checks_its_numbers_and_baselines_before_the_interpreter(tmp_path, extra, refused):
    """A missing interpreter is the first thing after these checks: what passes them stops there."""
    argv = main_argv(tmp_path / "nothing", *extra)
    if refused is None:
        with pytest.raises(FileNotFoundError, match="no psi_model.ckpt there"):
            eval_recipe.main(argv)
    else:
        with pytest.raises(ValueError, match=refused):
            eval_recipe.main(argv)


def test_main_applies_override_trained_keys_with_spaces(tmp_path):
    """--K 40 against a run trained with K 30, --override_trained ' K , relevance_th': accepted,
    so eval goes on to the next check (the missing speech folder)."""
    folder = fake_run(tmp_path)
    speech = ["--overlap_type", "speech", "--speech_folder", str(tmp_path / "no_speech")]
    with pytest.raises(ValueError, match="--K 40: the interpreter was trained with K = 30"):
        eval_recipe.main(main_argv(folder, "--K", "40", *speech))
    with pytest.raises(FileNotFoundError, match="--speech_folder .*no_speech does not exist"):
        eval_recipe.main(main_argv(folder, "--K", "40", "--override_trained", " K , signal_length_s", *speech))


@pytest.mark.parametrize(
    "extra, refused",
    [
        # not a trained setting: was accepted and did nothing
        (["--override_trained", "K,bogus_key"], r"--override_trained bogus_key: not a setting the interpreter was trained with \(.* holds K, signal_length_s\)"),
        # was: silently evaluated in distribution
        (["--speech_folder", "speech"], "--speech_folder is read only with --overlap_type speech \\(here: none\\)"),
        (["--overlap_type", "mixtures", "--speech_folder", "speech"], "here: mixtures"),
        # was: silently ignored for PIQ
        (["--single_sample", "clip.wav", "--max_components", "3"], "--max_components caps L2I's component wavs; PIQ has no NMF components"),
    ],
)
def test_main_refuses_options_that_would_do_nothing(tmp_path, extra, refused):
    folder = fake_run(tmp_path)
    sf.write(str(tmp_path / "clip.wav"), np.full(1600, 0.1), 16000)
    extra = [str(tmp_path / arg) if arg in ("speech", "clip.wav") else arg for arg in extra]
    with pytest.raises(ValueError, match=refused):
        eval_recipe.main(main_argv(folder, *extra))


def blocked(path):
    """A file where eval would make a folder: check_writable_folder refuses it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("mine")
    return path


def test_main_picks_the_eval_folder_and_names_the_flag_to_change(tmp_path):
    """Every candidate folder is blocked, so the refusal names the one eval chose, and its flag:
    --single_sample alone -> <interpreter>/single_sample (--eval_folder); --overlap_type
    mixtures -> <interpreter>/eval_mixtures; --output_folder O -> O/eval (--output_folder);
    --output_folder O --eval_folder E -> E (--eval_folder)."""
    folder = fake_run(tmp_path)
    for name in ("eval", "eval_mixtures", "single_sample"):
        blocked(folder / name)
    out = tmp_path / "out"
    blocked(out / "eval")
    clip = tmp_path / "clip.wav"
    sf.write(str(clip), np.full(1600, 0.1), 16000)
    cases = [
        (["--single_sample", str(clip)], folder / "single_sample", "--eval_folder"),
        (["--overlap_type", "mixtures"], folder / "eval_mixtures", "--eval_folder"),
        (["--output_folder", str(out)], out / "eval", "--output_folder"),
        (["--output_folder", str(out), "--eval_folder", str(blocked(tmp_path / "chosen"))], tmp_path / "chosen", "--eval_folder"),
    ]
    for extra, chosen, flag in cases:
        with pytest.raises(UnwritableFolderError) as error:
            eval_recipe.main(main_argv(folder, *extra))
        message = str(error.value)
        assert message.startswith(f"Cannot write to {chosen} ("), (extra, message)
        assert f"Pass {flag} with a folder" in message, (extra, message)


def test_main_refuses_window_without_a_file_and_a_file_with_an_overlap(tmp_path):
    folder = fake_run(tmp_path)
    clip = tmp_path / "clip.wav"
    sf.write(str(clip), np.full(1600, 0.1), 16000)
    with pytest.raises(ValueError, match="--window explains one long file: it needs --single_sample FILE"):
        eval_recipe.main(main_argv(folder, "--window"))
    with pytest.raises(ValueError, match="--single_sample explains the file as it is: drop --overlap_type"):
        eval_recipe.main(main_argv(folder, "--single_sample", str(clip), "--overlap_type", "white_noise"))
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(ValueError, match="text.wav is not audio"):
        eval_recipe.main(main_argv(folder, "--single_sample", str(tmp_path / "text.wav")))
    with pytest.raises(FileNotFoundError, match="--single_sample .*absent.wav does not exist"):
        eval_recipe.main(main_argv(folder, "--single_sample", str(tmp_path / "absent.wav")))


# ---------------------------------------------------------------- eval.main's hand-over
class GlueRecorder:
    """Stands for what main hands its decisions to (the run's set-up, the Brain, the scoring):
    records what it is given, so the decisions themselves (main's) are checked."""

    def __init__(self, monkeypatch, changed=None):
        self.calls = {}
        self.hparams = {"interpreter_class": Scripted}
        recorder = self

        class Brain:
            def load_interpreter(self, path):
                recorder.calls["loaded"] = path

        def prepare_run(argv):
            self.calls["prepare_run"] = list(argv)
            return self.hparams, {"device": "cpu"}, None, None, "the datasets", "the encoder"

        def single_sample_setup(args, argv, folder):
            self.calls["single_sample_setup"] = (list(argv), folder)
            return self.hparams, {"device": "cpu"}, "the run's encoder"

        def build_brain(brain_class, hparams, run_opts, train=True, label_encoder=None):
            self.calls["built"] = (brain_class, train, label_encoder)
            return Brain()

        def run_evaluation(brain, hparams, datasets, args, eval_folder):
            self.calls["evaluated"] = (datasets, args.hparams_file, eval_folder)
            return {"scored": True}

        def explain(brain, hparams, path, out, window=False, max_components=None):
            self.calls["explained"] = (path, out, window)
            self.calls["max_components"] = max_components
            return {"class": "dog", "probability": 0.5, "files": {"interpretation": "x.wav"}}

        for name, fake in [
            ("prepare_run", prepare_run), ("single_sample_setup", single_sample_setup),
            ("build_brain", build_brain), ("run_evaluation", run_evaluation),
            ("explain_single_sample", explain), ("metrics_markdown", lambda result: "table"),
            ("changed_input", lambda hparams, folder: changed),
        ]:
            monkeypatch.setattr(eval_recipe, name, fake)


def test_main_hands_on_the_eval_folder_the_trained_settings_and_the_yamls_class(tmp_path, monkeypatch):
    """--K 30 given (the trained value), signal_length_s left out (taken from the run: 1),
    --overlap_type white_noise: the run is set up with the eval folder <run>/eval_white_noise
    as its output folder (not the interpreter's), the data folder, the yaml's interpreter_class
    built for evaluation only, the weights given, and metrics.json's yaml is the first word."""
    folder = fake_run(tmp_path)
    glue = GlueRecorder(monkeypatch)
    yaml = str(HPARAMS / "piq.yaml")
    result = eval_recipe.main(
        [yaml, "--pretrained_interpreter", str(folder / "psi_model.ckpt"), "--K", "30",
         "--data_folder", str(tmp_path / "data"), "--overlap_type", "white_noise"]
    )
    eval_folder = str(folder / "eval_white_noise")
    argv = glue.calls["prepare_run"]
    assert argv[:3] == [yaml, "--K", "30"] and "--signal_length_s=1" in argv and "--K=30" not in argv
    assert argv[argv.index("--output_folder") + 1] == eval_folder
    assert argv[argv.index("--data_folder") + 1] == str(tmp_path / "data")
    assert glue.calls["built"] == (Scripted, False, "the encoder")
    assert glue.calls["loaded"] in (str(folder / "psi_model.ckpt"), str(folder))  # the same weights
    assert glue.calls["evaluated"] == ("the datasets", yaml, eval_folder)
    assert result == {"scored": True} and "single_sample_setup" not in glue.calls


@pytest.mark.parametrize("with_data", [False, True])
def test_main_explains_a_single_sample_into_its_stem_folder(tmp_path, monkeypatch, with_data):
    """--single_sample clip.wav: written into <run>/single_sample/clip; without --data_folder
    the class names come from the training run (single_sample_setup), with it from the data
    (prepare_run)."""
    folder = fake_run(tmp_path)
    clip = tmp_path / "clip.wav"
    sf.write(str(clip), np.full(1600, 0.1), 16000)
    glue = GlueRecorder(monkeypatch)
    data = ["--data_folder", str(tmp_path / "data")] if with_data else []
    result = eval_recipe.main(main_argv(folder, "--single_sample", str(clip), *data))
    eval_folder = str(folder / "single_sample")
    assert glue.calls["explained"] == (str(clip), str(folder / "single_sample" / "clip"), False)
    assert glue.calls["max_components"] == 10  # L2I's component wavs: the 10 most relevant by default
    assert result["class"] == "dog"
    if with_data:
        assert "single_sample_setup" not in glue.calls
        argv = glue.calls["prepare_run"]
        assert argv[argv.index("--data_folder") + 1] == str(tmp_path / "data")
        assert glue.calls["built"] == (Scripted, False, "the encoder")
    else:
        assert "prepare_run" not in glue.calls
        argv, given_folder = glue.calls["single_sample_setup"]
        assert given_folder == str(folder) and argv[argv.index("--output_folder") + 1] == eval_folder
        assert glue.calls["built"] == (Scripted, False, "the run's encoder")


def test_main_hands_on_max_components_and_refuses_it_where_it_means_nothing(tmp_path, monkeypatch):
    """--max_components 3 reaches the single-sample explanation; without --single_sample, below
    0 or with --window (which writes no component wavs), it is refused before any set-up."""
    folder = fake_run(tmp_path)
    clip = tmp_path / "clip.wav"
    sf.write(str(clip), np.full(1600, 0.1), 16000)
    def main_argv(folder, *extra):  # L2I's yaml: the method with components
        return [str(HPARAMS / "l2i_conv2d.yaml"), "--pretrained_interpreter", str(folder), *extra]

    glue = GlueRecorder(monkeypatch)
    eval_recipe.main(main_argv(folder, "--single_sample", str(clip), "--max_components", "3"))
    assert glue.calls["max_components"] == 3
    glue = GlueRecorder(monkeypatch)
    with pytest.raises(ValueError, match="--max_components caps the component wavs of one explained file"):
        eval_recipe.main(main_argv(folder, "--max_components", "3", "--data_folder", str(tmp_path / "data")))
    with pytest.raises(ValueError, match="--max_components -1 must be >= 0"):
        eval_recipe.main(main_argv(folder, "--single_sample", str(clip), "--max_components", "-1"))
    with pytest.raises(ValueError, match="with --window no component wavs are written"):
        eval_recipe.main(main_argv(folder, "--single_sample", str(clip), "--window", "--max_components", "3"))
    assert "prepare_run" not in glue.calls and "single_sample_setup" not in glue.calls


def test_main_refuses_an_interpreter_whose_classifier_changed_since_its_training(tmp_path, monkeypatch):
    folder = fake_run(tmp_path)
    glue = GlueRecorder(monkeypatch, changed=("classifier_folder", "/x/classifier.ckpt"))
    with pytest.raises(ValueError, match=r"was trained on classifier_folder = /x/classifier.ckpt with other contents"):
        eval_recipe.main(main_argv(folder, "--data_folder", str(tmp_path / "data")))
    assert "built" not in glue.calls


def test_only_the_training_stage_gathers_its_figures_over_torchrun_processes():
    """Found by a torchrun probe: SpeechBrain 1.1.2 deals out the training batches but gives every
    process the whole valid and test sets, and gathering those counted each clip once per
    process (test_metrics.json's n_undefined doubled under 2 processes)."""
    brain = bare_brain()
    gathers = {}
    for stage in (sb.Stage.TRAIN, sb.Stage.VALID, sb.Stage.TEST):
        brain.on_stage_start(stage)
        gathers[stage.name] = brain.stage_stats.gather
    assert gathers == {"TRAIN": True, "VALID": False, "TEST": False}
