"""Mutation audit of the Brains: `recipes/interpreters/base.py` (InterpreterBrain),
`recipes/interpreters/training.py`, `recipes/core/brains.py` and `recipes/train_classifier.py`.

Only the mutations the other unit tests let through are guarded here; each test names its
mutation. Expected values are worked out by hand (seeds, frame counts, which module is
wrapped) and written literally, never read from the code under test.
"""

import types

import speechbrain as sb
import torch
import torch.nn as nn
from conftest import bare_brain

from recipes.core import brains
from recipes.interpreters.base import InterpreterBrain


# ------------------------------------------------------------ base.py: mask_tail's default
def test_mask_tail_without_the_yaml_key_is_the_references_zero_tail():
    """A yaml (or inference folder) without `mask_tail`: the reference's zero tail. A decoder
    mask of 2 frames on a 4-frame input: rows 0-1 are the mask, rows 2-3 zeros (not a copy of
    row 1). Catches: the default "zeros" changed to "edge"."""
    brain = bare_brain()
    brain._warned_mask_tail = True  # the warning is not this test's
    mask = torch.tensor([[[0.25, 0.5], [0.75, 1.0]]])  # (1, 2 frames, 2 bins)
    fitted = brain.fit_mask_frames(mask, 4)
    expected = torch.tensor([[[0.25, 0.5], [0.75, 1.0], [0.0, 0.0], [0.0, 0.0]]])
    assert brain.mask_tail == "zeros"
    assert torch.equal(fitted, expected)


# ------------------------------------------- base.py: each valid / test batch's own generator
class _Recorder(InterpreterBrain):
    """An InterpreterBrain whose loss is a constant and whose score records the first draw of
    the generator it is given."""

    def interpretation_loss(self, outputs, batch, stage):
        return {"term": torch.tensor(1.0)}

    def score(self, outputs, generator=None):
        self.draws.append(torch.rand(1, generator=generator).item())
        return {"metric": torch.zeros(outputs["X"].shape[0])}, {}

    def save_interpretations(self, outputs, batch, stage):
        pass


def test_each_valid_batch_draws_from_a_generator_seeded_by_its_position():
    """seed 3: batch k of a valid / test stage draws from manual_seed(3 * 1_000_003 + k), i.e.
    3000009 for the first, 3000010 for the second; a new stage starts again at 3000009.
    Catches: `self.stage_batches += 1` dropped (every batch the same random draws)."""
    brain = bare_brain(_Recorder, seed=3)
    brain.draws = []
    outputs = {"X": torch.zeros(2, 3, 4)}
    brain.on_stage_start(sb.Stage.VALID)
    for _ in range(2):
        brain.compute_objectives(outputs, None, sb.Stage.VALID)
    brain.on_stage_start(sb.Stage.TEST)
    brain.compute_objectives(outputs, None, sb.Stage.TEST)
    expected = [torch.rand(1, generator=torch.Generator().manual_seed(seed)).item() for seed in (3000009, 3000010, 3000009)]
    assert brain.draws == expected
    assert brain.draws[0] != brain.draws[1]


# --------------------------------------------- brains.py: CPUFriendlyDDP, partly frozen modules
class _DDPBrain(brains.CPUFriendlyDDP, sb.Brain):
    pass


def test_a_module_with_some_trainable_weights_is_wrapped_in_ddp_on_cpu(tmp_path):
    """A module with a trainable Linear and a frozen one (an interpreter around a frozen part)
    has weights to synchronise: it is wrapped; the wholly frozen one is not. Catches:
    `any(p.requires_grad ...)` turned into `all(...)`."""
    from torch.nn.parallel import DistributedDataParallel

    partly = nn.Sequential(nn.Linear(2, 2), brains.freeze(nn.Linear(2, 2)))
    brain = object.__new__(_DDPBrain)
    brain.modules = nn.ModuleDict({"partly": partly, "frozen": brains.freeze(nn.Linear(2, 2))})
    brain.distributed_launch, brain.data_parallel_backend = True, False
    brain.opt_class, brain.device, brain.find_unused_parameters = torch.optim.SGD, "cpu", False
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        brain._wrap_distributed()
        assert isinstance(brain.modules["partly"], DistributedDataParallel)
        assert brain.modules["partly"].module is partly
        assert type(brain.modules["frozen"]) is nn.Linear
    finally:
        torch.distributed.destroy_process_group()


# ------------------------------------- train_classifier.py: the near-silent augmented clip
def test_a_near_silent_augmented_clip_stays_silent_not_raised_to_the_gain():
    """train_on_sources with the yaml's RandAmp (gain 0.5 here) and a pass-through background:
    clip 0 (0.5, -0.25, 0, 0) peaks at 0.5 -> (1, -0.5, 0, 0) -> times 0.5: (0.5, -0.25, 0, 0);
    clip 1 peaks at 2e-11, under data_prep.audio's EPS 1e-10, so it is silence: zeros, not its
    noise raised to a peak of 0.5 (RandAmp alone divides by any peak). Catches: `peak_normalise` dropped before
    `source_gain`."""
    from speechbrain.augment.time_domain import RandAmp

    from recipes.train_classifier import ClassifierBrain

    targets = torch.tensor([[0.5, -0.25, 0.0, 0.0], [2e-11, -1e-11, 0.0, 0.0]])
    mixtures = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    brain = bare_brain(
        ClassifierBrain, train_on_sources=True, add_background=lambda x, lengths: x.clone(),
        source_gain=RandAmp(amp_low=0.5, amp_high=0.5),
    )
    brain.wham_mixer, brain.noise_position = None, None
    batch = types.SimpleNamespace(sig=(mixtures, torch.ones(2)), target_sig=(targets, torch.ones(2)))
    wavs = brain.training_waveforms(batch)
    expected = torch.tensor([
        [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1],
        [0.5, -0.25, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0],
    ])
    torch.testing.assert_close(wavs, expected, rtol=0, atol=1e-7)


# ------------------------------------------------------ base.py: explain's and score's inputs
def test_explain_gives_the_probabilities_at_the_classifiers_temperature():
    """scores (2, 0) at classifier_temp 2: softmax(1, 0) = (e / (e + 1), 1 / (e + 1)) =
    (0.7311, 0.2689), not softmax(2, 0) = (0.8808, 0.1192). Catches: `explain` taking the
    softmax of the raw scores."""
    brain = bare_brain(classifier_temp=2.0)
    X = torch.ones(1, 2, 3)
    brain.forward_waveforms = lambda wavs, stage: {
        "X": X, "X_stft": torch.zeros(1, 2, 3, 2), "mask": torch.ones(1, 2, 3), "scores": torch.tensor([[2.0, 0.0]]),
    }
    brain.invert = lambda X_int, X_stft, length: torch.zeros(1, length)
    probs = brain.explain(torch.zeros(1, 8))["probs"]
    e = 2.718281828459045
    torch.testing.assert_close(probs, torch.tensor([[e / (e + 1), 1 / (e + 1)]]), rtol=0, atol=1e-6)


class _GeneratorMetrics(InterpreterBrain):
    def score_mask(self, outputs, mask):
        return {}, {}

    def interpreter_metrics(self, outputs, scores, generator=None):
        self.given = generator
        return {"drawn": torch.rand(1, generator=generator)}


def test_score_hands_its_generator_to_the_interpreters_metrics():
    """eval.py's per-batch generator (seed 7) reaches `interpreter_metrics`: its first draw is
    manual_seed(7)'s. Catches: `generator` not passed on (the metric's random reference then
    drawn from the global generator, different however the clips are dealt out)."""
    brain = bare_brain(_GeneratorMetrics)
    generator = torch.Generator().manual_seed(7)
    values, _ = brain.score({"mask": torch.ones(1, 2, 3)}, generator)
    assert brain.given is generator
    assert values["drawn"].item() == torch.rand(1, generator=torch.Generator().manual_seed(7)).item()


# ---------------------------------------------- brains.py: build_brain checkpoints the generators
def test_build_brain_for_training_checkpoints_the_random_generators(tmp_path):
    """A checkpoint of a training Brain holds random_state.ckpt; recovered, torch's generator
    draws again what it drew right after the save. Catches: the RandomState recoverable not
    added (a resumed run's augmentation drawn from the start-up seed)."""
    from speechbrain.utils.checkpoints import Checkpointer
    from speechbrain.utils.epoch_loop import EpochCounter

    linear = nn.Linear(2, 2)
    hparams = {
        "epoch_counter": EpochCounter(1), "modules": {"linear": linear}, "opt_class": torch.optim.SGD,
        "checkpointer": Checkpointer(tmp_path / "save", recoverables={"linear": linear}),
    }
    brains.build_brain(sb.Brain, hparams, {"device": "cpu"})
    torch.manual_seed(0)
    checkpoint = hparams["checkpointer"].save_checkpoint()
    drawn = torch.rand(3)
    assert (checkpoint.path / "random_state.ckpt").is_file()
    hparams["checkpointer"].recover_if_possible()
    assert torch.equal(torch.rand(3), drawn)


# --------------------------------------- train_classifier.py: NoisePosition, the noise list's place
class _FakeAddNoise:
    """AddNoise's loader habits: made at the first call (10 noises, batches of 2), one batch
    drawn per call; records what each call drew."""

    def __init__(self):
        self.drawn = []

    def __call__(self, waveforms, lengths):
        if not hasattr(self, "data_loader"):
            self.data_loader = torch.utils.data.DataLoader(list(range(10)), batch_size=2)
            self.noise_data = iter(self.data_loader)
        self.drawn.append(next(self.noise_data).tolist())
        return waveforms


def test_a_resumed_run_draws_the_background_after_those_drawn_before_the_checkpoint(tmp_path):
    """Three calls draw noises [0, 1], [2, 3], [4, 5]: the checkpoint holds [batch size 2,
    3 batches drawn]; a fresh AddNoise given it draws [6, 7] at its first real call. Catches:
    the position not saved (a resumed run restarts at [0, 1]), the drawn batches not skipped."""
    from recipes.train_classifier import NoisePosition

    before = _FakeAddNoise()
    for _ in range(3):
        before(torch.zeros(2, 4), torch.ones(2))
    NoisePosition(before).save(tmp_path / "noise_position.ckpt")
    assert torch.load(tmp_path / "noise_position.ckpt", weights_only=True) == [2, 3]

    after = _FakeAddNoise()
    position = NoisePosition(after)
    position.load(tmp_path / "noise_position.ckpt")
    position.restore(torch.zeros(2, 4))
    after(torch.zeros(2, 4), torch.ones(2))
    assert after.drawn[-1] == [6, 7]


# ------------------------------------------ train_classifier.py main: precise_bn_batches 1
def test_main_with_precise_bn_batches_1_gives_the_brain_its_calibration_batches(tmp_path):
    """One epoch on 6 clips with --precise_bn_batches 1: before validation the BatchNorm
    statistics are recomputed over 1 training batch, which needs the training loader that
    `main` hands the Brain; the run ends with its test summary of the 2 test clips. Catches:
    the loader given only from 2 batches on (`> 1`): the valid stage then stops with
    "precise_bn_batches > 0 needs the training set"."""
    from test_train_classifier_audit import _main_argv, _write_dataset

    from recipes import train_classifier

    root, _ = _write_dataset(tmp_path / "data")
    argv = _main_argv(root, tmp_path / "out", "--batch_size", "2", "--number_of_epochs", "1", "--precise_bn_batches", "1")
    summary = train_classifier.main(argv)
    assert summary["n_test_clips"] == 2 and summary["epoch_loaded"] == 1
