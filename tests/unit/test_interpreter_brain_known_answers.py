"""The InterpreterBrain's steps on hand-made parts whose answer is known (issue 25).

No training: each Brain is made without its set-up (`object.__new__`) and given
hand-made modules, so the recipe's own methods run on inputs worked out by hand:

- `score_mask` with a classifier that reads two bins (the masked-in and masked-out
  inputs, the all-ones row);
- `explain`'s interpretation audio (all ones: the input, zeros: silence, the
  ground-truth mask: the target event);
- checkpoint selection by a maximised and a minimised key (a scripted sequence of
  valid statistics through `on_stage_end`, then the test stage's loading and the export);
- L2I's mask with Theta, W and H set by hand, raw and class-centred relevance.
"""

import math

import numpy as np
import pytest
import speechbrain as sb
import torch
from conftest import bare_brain, minimal_interpreter_hparams
from speechbrain.processing.features import ISTFT, STFT
from speechbrain.utils.checkpoints import Checkpointer

from data_prep.audio import EPS
from data_prep.synthesis import INT16_SCALE, synthesize_clip
from models.L2I import Theta
from recipes.evaluation import metrics, scoring
from recipes.interpreters.base import InterpreterBrain
from recipes.interpreters.l2i import L2I

STFT_ARGS = {"sample_rate": 16000, "n_fft": 1024, "hop_length": 11.6099, "win_length": 23.2199}


# ---------------------------------------------------------------- a hand-made classifier
FRAMES, BINS = 4, 3
BIN_A, BIN_B = (1, 2), (3, 0)  # the evidence of class 0 and of class 1




def softmax(logits):
    """An independent softmax on Python floats."""
    exps = [math.exp(value) for value in logits]
    return [value / sum(exps) for value in exps]


def two_clips():
    """Clip 0: X[a] = 3, X[b] = 1 (logits 6, 2, 1: class 0); clip 1: X[a] = 0.5, X[b] = 2.5
    (logits 1, 5, 1: class 1)."""
    X = torch.zeros(2, FRAMES, BINS)
    X[0, BIN_A[0], BIN_A[1]], X[0, BIN_B[0], BIN_B[1]] = 3.0, 1.0
    X[1, BIN_A[0], BIN_A[1]], X[1, BIN_B[0], BIN_B[1]] = 0.5, 2.5
    brain = bare_brain()
    scores, _ = brain.classify(X)
    return brain, {"X": X, "scores": scores, "classes": scores.argmax(dim=1)}


def test_the_hand_made_classifier_is_what_the_hand_computation_says():
    _, outputs = two_clips()
    assert outputs["classes"].tolist() == [0, 1]
    assert torch.allclose(outputs["scores"], torch.tensor([[6.0, 2.0, 1.0], [1.0, 5.0, 1.0]]))


def test_score_mask_of_the_all_zeros_mask():
    """X_int = 0: p(X_int) = softmax(0, 0, 1) (class 2), X - X_int = X (FF = 0)."""
    brain, outputs = two_clips()
    values, scores = brain.score_mask(outputs, torch.zeros_like(outputs["X"]))
    p = [softmax([6, 2, 1])[0], softmax([1, 5, 1])[1]]  # p_c(X)
    p_silence = softmax([0, 0, 1])  # p(0), class 2
    assert values["fid_in"].tolist() == [0.0, 0.0]
    assert values["faithfulness"].tolist() == [0.0, 0.0]
    assert values["AI"].tolist() == [0.0, 0.0] and values["AG"].tolist() == [0.0, 0.0]
    expected_ad = [100 * (p[0] - p_silence[0]) / p[0], 100 * (p[1] - p_silence[1]) / p[1]]
    assert values["AD"].tolist() == pytest.approx(expected_ad, abs=1e-4)
    assert torch.allclose(scores["int"], torch.tensor([[0.0, 0.0, 1.0]] * 2))
    assert torch.allclose(scores["removed"], outputs["scores"])


def test_score_mask_of_a_mask_that_keeps_the_evidence_bin():
    """Each clip keeps only the bin of its class: the masked-in input keeps the class, the
    masked-out one loses it, by the probabilities computed by hand."""
    brain, outputs = two_clips()
    mask = torch.zeros_like(outputs["X"])
    mask[0, BIN_A[0], BIN_A[1]] = 1.0
    mask[1, BIN_B[0], BIN_B[1]] = 1.0
    values, _ = brain.score_mask(outputs, mask)
    p = [softmax([6, 2, 1])[0], softmax([1, 5, 1])[1]]
    p_int = [softmax([6, 0, 1])[0], softmax([0, 5, 1])[1]]  # X_int: only the evidence bin
    p_removed = [softmax([0, 2, 1])[0], softmax([1, 0, 1])[1]]  # X - X_int
    assert values["fid_in"].tolist() == [1.0, 1.0]
    assert values["faithfulness"].tolist() == pytest.approx(
        [p[i] - p_removed[i] for i in (0, 1)], abs=1e-6
    )
    assert values["AI"].tolist() == [100.0, 100.0]  # the evidence alone is more confident
    assert values["AD"].tolist() == [0.0, 0.0]
    expected_ag = [100 * (p_int[i] - p[i]) / (1 - p[i]) for i in (0, 1)]
    assert values["AG"].tolist() == pytest.approx(expected_ag, rel=1e-4)
    # one bin of 12 kept: Gini (n - 1) / n, entropy 0
    assert values["SPS"].tolist() == pytest.approx([11 / 12] * 2, abs=1e-5)
    assert values["COMP"].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_score_mask_of_the_all_ones_mask_is_exactly_the_all_ones_row():
    brain, outputs = two_clips()
    values, _ = brain.score_mask(outputs, torch.ones_like(outputs["X"]))
    reference = scoring.all_ones_metrics(brain, outputs)
    assert set(values) == set(reference)
    for name in reference:
        assert torch.equal(values[name], reference[name]), name
    p = [softmax([6, 2, 1])[0], softmax([1, 5, 1])[1]]
    p_silence = softmax([0, 0, 1])
    assert values["fid_in"].tolist() == [1.0, 1.0]
    assert values["AI"].tolist() == values["AD"].tolist() == values["AG"].tolist() == [0.0, 0.0]
    assert values["faithfulness"].tolist() == pytest.approx(
        [p[0] - p_silence[0], p[1] - p_silence[1]], abs=1e-6
    )


# ---------------------------------------------------------------- the interpretation audio
class FixedMask(InterpreterBrain):
    """An interpreter whose mask is set by the test (`next_mask`): explain() around it is the base's."""

    def interpret(self, X, representations, classes, stage):
        return {"mask": self.next_mask.expand_as(X)}


def fixed_mask_brain():
    return bare_brain(
        FixedMask,
        embedding_model=torch.nn.Flatten(),  # any classifier: the audio does not depend on it
        classifier=torch.nn.LazyLinear(3),
        compute_stft=STFT(**STFT_ARGS),
        compute_istft=ISTFT(**STFT_ARGS),
    )


def synthetic_clip(name, seed):
    """One synthetic clip (1 s, 0 dB over the event): target, background, mixture as floats."""
    clip = synthesize_clip(name, np.random.default_rng(seed), 16000, 16000, (0.0, 0.0))
    return [torch.from_numpy(signal / INT16_SCALE).float().unsqueeze(0) for signal in clip[:3]]


def test_explain_with_the_all_ones_mask_gives_the_input_back():
    brain = fixed_mask_brain()
    _, _, mixture = synthetic_clip("harmonic_stack", 0)
    brain.next_mask = torch.ones(1)
    outputs = brain.explain(mixture)
    assert (outputs["audio"] - mixture).abs().max() < 1e-3  # the STFT round trip
    assert metrics.si_sdr(outputs["audio"], mixture).item() > 40.0


def test_explain_with_the_zero_mask_gives_silence():
    brain = fixed_mask_brain()
    _, _, mixture = synthetic_clip("harmonic_stack", 0)
    brain.next_mask = torch.zeros(1)
    outputs = brain.explain(mixture)
    assert outputs["audio"].abs().max() < 1e-7
    assert outputs["X_int"].abs().max() == 0


# the target-dominant region as the mask, at 0 dB: at least this (16-19 dB on these clips)
GROUND_TRUTH_SI_SDR_DB = 10.0


@pytest.mark.parametrize("name, seed", [("steady_tone", 1), ("up_chirp", 2), ("harmonic_stack", 3)])
def test_explain_with_the_ground_truth_mask_gives_the_target(name, seed):
    """The region where the target dominates, as the mask, gives audio close to the target
    event (SI-SDR above GROUND_TRUTH_SI_SDR_DB) and far closer than the clip itself."""
    brain = fixed_mask_brain()
    target, background, mixture = synthetic_clip(name, seed)
    brain.next_mask = metrics.target_region(target, background, brain.hparams.compute_stft)
    outputs = brain.explain(mixture)
    interpretation = metrics.si_sdr(outputs["audio"], target).item()
    assert interpretation > GROUND_TRUTH_SI_SDR_DB
    assert interpretation > metrics.si_sdr(mixture, target).item() + 5.0


# ---------------------------------------------------------------- checkpoint selection
class ScriptedStatistics(InterpreterBrain):
    """An interpreter whose valid statistic `best_key` is read from a script, one per epoch."""

    def stage_extra_stats(self):
        return {} if self.best_key == "loss" else {self.best_key: self.scripted}


def scripted_brain(tmp_path, best_key, lower, **extra):
    """A Brain made by InterpreterBrain's own __init__ (a one-weight psi, a checkpointer);
    `extra`: more hparams."""
    psi = torch.nn.Linear(1, 1, bias=False)
    hparams = minimal_interpreter_hparams(tmp_path, **extra)
    brain_class = type(
        "Scripted", (ScriptedStatistics,), {"best_key": best_key, "best_key_is_lower": lower}
    )
    brain = brain_class(
        modules={"psi": psi},
        hparams=hparams,
        run_opts={"device": "cpu"},
        checkpointer=Checkpointer(str(tmp_path / "save"), recoverables={"psi_model": psi}),
    )
    brain.optimizer = torch.optim.SGD(psi.parameters(), lr=0.1)
    return brain


@pytest.mark.parametrize(
    "brain_class, script",
    [
        (L2I, [0.5, 0.9, 0.2]),  # maximised (theta_top1): the best is epoch 2's 0.9
        ("PIQ", [0.5, 0.1, 0.7]),  # minimised (the valid loss): the best is epoch 2's 0.1
    ],
)
def test_the_test_stage_and_the_export_load_the_best_epoch(tmp_path, brain_class, script):
    if brain_class == "PIQ":
        from recipes.interpreters.piq import PIQ as brain_class
    brain = scripted_brain(tmp_path, brain_class.best_key, brain_class.best_key_is_lower)
    psi = brain.modules["psi"]
    for epoch, value in enumerate(script, start=1):
        with torch.no_grad():
            psi.weight.fill_(float(epoch))  # the weights of epoch k are k
        brain.on_stage_start(sb.Stage.VALID, epoch)
        brain.scripted = value
        brain.on_stage_end(sb.Stage.VALID, value if brain.best_key == "loss" else 1.0, epoch)
    log = (tmp_path / "train_log.txt").read_text()
    assert f"{brain.best_key}: " in log  # selected by a key that is logged
    with torch.no_grad():
        psi.weight.fill_(-1.0)  # what the last step of training left: not a checkpoint
    brain.on_evaluate_start()  # what the test stage (Brain.evaluate) runs first
    assert psi.weight.item() == 2.0
    brain.export_interpreter(str(tmp_path))  # what train_interpreter exports after the test stage
    exported = torch.load(tmp_path / "psi_model.ckpt", weights_only=True)
    assert exported["weight"].item() == 2.0


@pytest.mark.parametrize(
    "n, expected",
    [
        (1, 2.0),  # the lowest valid loss alone: epoch 2's weights
        (2, (2.0 + 4.0) / 2),  # epochs 2 (0.1) and 4 (0.3)
        (3, (2.0 + 4.0 + 1.0) / 3),  # and epoch 1 (0.5); epoch 3 (0.7) is out
        (9, (2.0 + 4.0 + 1.0 + 3.0) / 4),  # more than were saved: all four
    ],
)
def test_average_checkpoints_tests_and_exports_the_mean_of_the_best_epochs(tmp_path, n, expected):
    brain = scripted_brain(tmp_path, "loss", True, average_checkpoints=n)
    psi = brain.modules["psi"]
    for epoch, value in enumerate([0.5, 0.1, 0.7, 0.3], start=1):
        with torch.no_grad():
            psi.weight.fill_(float(epoch))  # the weights of epoch k are k
        brain.on_stage_start(sb.Stage.VALID, epoch)
        brain.on_stage_end(sb.Stage.VALID, value, epoch)
    with torch.no_grad():
        psi.weight.fill_(-1.0)
    brain.on_evaluate_start()
    assert psi.weight.item() == pytest.approx(expected)
    brain.export_interpreter(str(tmp_path))
    assert torch.load(tmp_path / "psi_model.ckpt", weights_only=True)["weight"].item() == pytest.approx(expected)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "3"])
def test_a_wrong_average_checkpoints_is_refused_when_the_brain_is_built(tmp_path, bad):
    with pytest.raises(ValueError, match="average_checkpoints .*: a whole number >= 1"):
        scripted_brain(tmp_path, "loss", True, average_checkpoints=bad)


# ---------------------------------------------------------------- L2I's mask
# W (F 6, K 3): overlapping components, so a component's share of a bin is a fraction
W = torch.tensor(
    [
        [1.0, 1.0, 0.0],
        [1.0, 0.0, 1.0],
        [0.0, 1.0, 1.0],
        [2.0, 0.0, 0.0],
        [0.0, 2.0, 0.0],
        [0.0, 0.0, 2.0],
    ]
)
# H (1, K 3, frames 4): each component peaks at 1 (max pooling: z = (1, 1, 1))
H = torch.tensor([[[1.0, 0.2, 0.0, 0.5], [0.3, 1.0, 0.1, 0.0], [0.0, 0.4, 1.0, 0.6]]])
# Theta's weights (2 classes x 3 components): raw relevance for class 0 is (1, 0.8, -0.5), so
# components 0 and 1 pass the threshold 0.5; centred over the classes (mean (1, 0, 0)) it is
# (0, 0.8, -0.5) / 0.8: component 1 alone
THETA = torch.tensor([[1.0, 0.8, -0.5], [1.0, -0.8, 0.5]])


class FixedActivations(torch.nn.Module):
    """psi: the activations H, whatever the classifier's representations."""

    def forward(self, representations):
        return H


def l2i_brain(centered):
    brain = bare_brain(L2I, relevance_centered=centered, relevance_th=0.5)
    theta = Theta(n_comp=3, T=4, num_classes=2, pooling="max")
    with torch.no_grad():
        theta.classifier_weight().copy_(THETA)
    brain.modules = torch.nn.ModuleDict({"psi": FixedActivations(), "theta": theta})
    brain.W = W
    return brain


def share_of(components):
    """sum_{k in components} W_fk H_kt / sum_k W_fk H_kt, by loops (B 1, frames 4, F 6)."""
    expected = torch.zeros(1, 4, 6)
    for t in range(4):
        for f in range(6):
            total = sum(W[f, k].item() * H[0, k, t].item() for k in range(3))
            kept = sum(W[f, k].item() * H[0, k, t].item() for k in components)
            expected[0, t, f] = kept / (total + EPS)
    return expected


@pytest.mark.parametrize("centered, components", [(False, [0, 1]), (True, [1])])
def test_l2i_mask_is_the_share_of_the_relevant_components(centered, components):
    brain = l2i_brain(centered)
    X = torch.ones(1, 4, 6)
    outputs = brain.interpret(
        X, representations=None, classes=torch.tensor([0]), stage=sb.Stage.TEST
    )
    chosen = torch.zeros(1, 3)
    chosen[0, components] = 1.0
    assert torch.equal(outputs["selected"], chosen)
    assert torch.allclose(outputs["mask"], share_of(components), atol=1e-6)
    # the mask is not trivial: fractions, and bins of the other components at 0
    assert ((outputs["mask"] > 0.05) & (outputs["mask"] < 0.95)).any()


def test_train_interpreter_tests_and_exports_the_best_epoch(tmp_path, monkeypatch):
    """The recipes' training flow (`train_interpreter`) with a scripted fit: the test stage
    and the exported weights are those of the best epoch (2 of 3), not the last step's."""
    from recipes.interpreters import training

    brain = scripted_brain(tmp_path, L2I.best_key, L2I.best_key_is_lower)
    brain.hparams.output_folder = str(tmp_path)
    psi = brain.modules["psi"]

    def scripted_fit(brain_, hparams, datasets):
        for epoch, value in enumerate([0.5, 0.9, 0.2], start=1):  # maximised: epoch 2
            with torch.no_grad():
                psi.weight.fill_(float(epoch))
            brain.on_stage_start(sb.Stage.VALID, epoch)
            brain.scripted = value
            brain.on_stage_end(sb.Stage.VALID, 1.0, epoch)
        with torch.no_grad():
            psi.weight.fill_(-1.0)  # the last step of training: not a checkpoint

    tested = []

    def evaluate(test_set, max_key=None, min_key=None, **kwargs):  # Brain.evaluate's first step
        brain.on_evaluate_start(max_key=max_key, min_key=min_key)
        tested.append(psi.weight.item())

    hparams = {"test_dataloader_opts": {}}
    monkeypatch.setattr(
        training,
        "prepare_run",
        lambda argv, recipe_file=None: (hparams, {}, None, None, {"test": []}, None),
    )
    monkeypatch.setattr(training, "build_brain", lambda *args, **kwargs: brain)
    monkeypatch.setattr(training, "fit_interpreter", scripted_fit)
    monkeypatch.setattr(training, "export_inference", lambda brain_, folder: folder)
    monkeypatch.setattr(brain, "evaluate", evaluate)
    training.train_interpreter(type(brain), argv=[])
    assert tested == [2.0]
    exported = torch.load(tmp_path / "psi_model.ckpt", weights_only=True)
    assert exported["weight"].item() == 2.0


class TwoClipActivations(torch.nn.Module):
    """psi: the activations H for each of two clips."""

    def forward(self, representations):
        return H.repeat(2, 1, 1)


# with threshold 0.4, class 1 (Theta's row (1, -0.8, 0.5)): raw relevance (1, -0.8, 0.5) keeps
# components 0 and 2; centred, (0, -0.8, 0.5) / 0.8 = (0, -1, 0.625) keeps component 2; class 0
# keeps (0, 1) raw and (1) centred, as above
@pytest.mark.parametrize("centered, components", [(False, [[0, 1], [0, 2]]), (True, [[1], [2]])])
def test_l2i_mask_uses_each_clip_s_own_class(centered, components):
    brain = l2i_brain(centered)
    brain.hparams.relevance_th = 0.4
    brain.modules["psi"] = TwoClipActivations()
    outputs = brain.interpret(
        torch.ones(2, 4, 6), representations=None, classes=torch.tensor([0, 1]), stage=sb.Stage.TEST
    )
    for clip, kept in enumerate(components):
        chosen = torch.zeros(3)
        chosen[kept] = 1.0
        assert torch.equal(outputs["selected"][clip], chosen), clip
        assert torch.allclose(outputs["mask"][clip], share_of(kept)[0], atol=1e-6), clip


# ---------------------------------------------------------------- the mask's domain
@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_a_constant_mask_in_the_magnitude_domain_scales_the_waveform(keep):
    """`mask_domain: magnitude`: a mask m everywhere scales every |STFT| bin by m, so the
    interpretation audio is m times the input (the ISTFT is linear), 20 log10 m dB down;
    in the log domain (the reference) the same mask keeps expm1(m log1p |S|) <= m |S| of each
    bin, a smaller share the louder the bin: much less of the clip."""
    _, _, mixture = synthetic_clip("harmonic_stack", 0)
    audio = {}
    for domain in ("magnitude", "log"):
        brain = fixed_mask_brain()
        brain.hparams.mask_domain = domain
        brain.next_mask = torch.full((1,), keep)
        audio[domain] = brain.explain(mixture)["audio"]
    assert (audio["magnitude"] - keep * mixture).abs().max() < 1e-3
    assert metrics.si_sdr(audio["magnitude"], mixture).item() > 40.0
    log_gain = audio["log"].norm() / mixture.norm()
    assert log_gain < 0.75 * keep  # m = 0.5: sqrt(1 + |S|) - 1 of each bin


@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_a_constant_mask_in_the_power_domain_scales_the_energy(keep):
    """`mask_domain: power`: a mask m everywhere scales every bin's energy by m, so the
    interpretation audio is sqrt(m) times the input, 10 log10 m dB down."""
    _, _, mixture = synthetic_clip("harmonic_stack", 0)
    brain = fixed_mask_brain()
    brain.hparams.mask_domain = "power"
    brain.next_mask = torch.full((1,), keep)
    audio = brain.explain(mixture)["audio"]
    assert (audio - math.sqrt(keep) * mixture).abs().max() < 1e-3
    assert 10 * math.log10((audio.square().sum() / mixture.square().sum()).item()) == pytest.approx(
        10 * math.log10(keep), abs=1e-3
    )


def test_binary_masks_are_the_same_in_every_domain_and_power_has_finite_gradients():
    """A 0 / 1 mask keeps or drops whole bins whatever the domain; in the power domain the
    gradient through sqrt is finite at 0 (a mask that trains through it gives no NaN)."""
    from recipes.core.pipeline import MASK_DOMAINS, apply_mask, remove_interpretation

    X = torch.log1p(torch.tensor([[[3.0, 8.0, 0.0], [1.0, 0.0, 2.0]]]))
    binary = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]])
    for domain in MASK_DOMAINS:
        assert torch.allclose(apply_mask(X, binary, domain), binary * X, atol=1e-6), domain
        removed = remove_interpretation(X, apply_mask(X, binary, domain), domain)
        assert torch.allclose(removed, (1 - binary) * X, atol=1e-6), domain
    mask = torch.tensor([[[0.0, 0.25, 1.0], [0.0, 0.5, 1.0]]], requires_grad=True)
    apply_mask(X, mask, "power").sum().backward()
    assert torch.isfinite(mask.grad).all()


def test_the_log_domain_and_a_yaml_without_the_key_are_the_reference_mask_times_x():
    """No `mask_domain` (a run from before the key) and `log`: X_int = mask * X exactly, and
    the masked-out input X - X_int, as the reference recipes compute them."""
    brain, outputs = two_clips()
    mask = torch.rand_like(outputs["X"], generator=torch.Generator().manual_seed(0))
    for domain in (None, "log"):
        if domain:
            brain.hparams.mask_domain = domain
        assert torch.equal(brain.apply_mask(outputs["X"], mask), mask * outputs["X"])
        _, scores = brain.score_mask(outputs, mask)
        expected, _ = brain.classify(outputs["X"] - mask * outputs["X"])
        assert torch.equal(scores["removed"], expected)


def test_the_magnitude_domain_removes_the_kept_magnitude():
    """`magnitude`: the masked-out input keeps (1 - m) of each bin's |STFT|, by hand."""
    brain, outputs = two_clips()
    brain.hparams.mask_domain = "magnitude"
    mask = torch.full_like(outputs["X"], 0.25)
    _, scores = brain.score_mask(outputs, mask)
    # clip 0: X[a] = 3 -> |S| = e^3 - 1; kept 0.75 of it: X'[a] = log1p(0.75 (e^3 - 1))
    removed_a = math.log1p(0.75 * math.expm1(3.0))
    removed_b = math.log1p(0.75 * math.expm1(1.0))
    assert scores["removed"][0].tolist() == pytest.approx([2 * removed_a, 2 * removed_b, 1.0], rel=1e-5)
    kept_a = math.log1p(0.25 * math.expm1(3.0))
    assert scores["int"][0, 0].item() == pytest.approx(2 * kept_a, rel=1e-5)
    with pytest.raises(ValueError, match="mask_domain 'lin'.*log.*magnitude.*power"):
        brain.hparams.mask_domain = "lin"
        brain.apply_mask(outputs["X"], mask)


def test_the_power_domain_removes_the_kept_energy():
    """`power`: a mask of 0.25 keeps a quarter of each bin's energy, sqrt(0.25) = 0.5 of its
    |STFT|; the masked-out input holds the rest of the energy, sqrt(0.75) of |STFT|, by hand."""
    brain, outputs = two_clips()
    brain.hparams.mask_domain = "power"
    mask = torch.full_like(outputs["X"], 0.25)
    _, scores = brain.score_mask(outputs, mask)
    removed_a = math.log1p(math.sqrt(0.75) * math.expm1(3.0))
    removed_b = math.log1p(math.sqrt(0.75) * math.expm1(1.0))
    assert scores["removed"][0].tolist() == pytest.approx([2 * removed_a, 2 * removed_b, 1.0], rel=1e-5)
    kept_a = math.log1p(0.5 * math.expm1(3.0))
    assert scores["int"][0, 0].item() == pytest.approx(2 * kept_a, rel=1e-5)



# ---------------------------------------------------------------- the clip's floor
def lower_median_gate(X, domain):
    """floor_mask by hand on numpy: each bin's lower median over the frames, what rises above
    it (in log1p magnitude), as a share of X (log) or of |STFT| (magnitude); 0 where X is 0."""
    X = X.double().numpy()
    floor = np.sort(X, axis=1)[:, (X.shape[1] - 1) // 2 : (X.shape[1] - 1) // 2 + 1, :]
    kept = np.maximum(X - floor, 0.0)
    if domain in ("magnitude", "power"):
        kept, X = np.expm1(kept), np.expm1(X)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(X > 0, kept / X, 0.0)
    return torch.from_numpy(share**2 if domain == "power" else share).float()


def test_the_floor_mask_keeps_what_rises_above_each_bins_median():
    """|S| of one bin 1, 1, 1, 9, 1 over five frames (median log 2): the loud frame keeps
    log 10 - log 2 = log 5 of X = log 10, i.e. |S| = 4 of 9; the quiet frames nothing; a
    silent bin nothing (no NaN); in either domain the masked X is log 5."""
    from recipes.core.pipeline import apply_mask, floor_mask

    magnitude = torch.tensor([[1.0, 1.0, 1.0, 9.0, 1.0], [0.0] * 5]).T.unsqueeze(0)  # (1, 5, 2)
    X = torch.log1p(magnitude)
    log_mask, magnitude_mask = floor_mask(X, "log"), floor_mask(X, "magnitude")
    power_mask = floor_mask(X, "power")
    assert log_mask[0, :, 0].tolist() == pytest.approx([0, 0, 0, math.log(5) / math.log(10), 0])
    assert magnitude_mask[0, :, 0].tolist() == pytest.approx([0, 0, 0, 4 / 9, 0])
    assert power_mask[0, :, 0].tolist() == pytest.approx([0, 0, 0, 16 / 81, 0])  # energy 4^2 of 9^2
    assert torch.equal(log_mask[0, :, 1], torch.zeros(5)) and torch.equal(magnitude_mask[0, :, 1], torch.zeros(5))
    assert torch.equal(power_mask[0, :, 1], torch.zeros(5))
    for domain, mask in (("log", log_mask), ("magnitude", magnitude_mask), ("power", power_mask)):
        assert apply_mask(X, mask, domain)[0, 3, 0].item() == pytest.approx(math.log(5), rel=1e-6)
    with pytest.raises(ValueError, match="mask_domain 'lin'.*log.*magnitude"):
        floor_mask(X, "lin")


@pytest.mark.parametrize("domain", ["log", "magnitude", "power"])
def test_mask_above_floor_multiplies_the_interpreters_mask_by_the_floor_mask(domain):
    """`mask_above_floor: True`: explain's mask is the interpreter's times the clip's floor
    mask (by hand, on numpy), in training's forward too; without the key (the reference, a
    folder from before it) the interpreter's mask as it is. The evaluation's `above_floor`
    baseline is that floor mask alone."""
    from recipes.evaluation.baselines import baseline_masks

    _, _, mixture = synthetic_clip("harmonic_stack", 0)
    brain = fixed_mask_brain()
    brain.hparams.mask_domain = domain
    brain.next_mask = torch.full((1,), 0.5)
    reference = brain.explain(mixture)
    assert torch.equal(reference["mask"], torch.full_like(reference["X"], 0.5))
    gate = lower_median_gate(reference["X"], domain)
    assert 0.05 < (gate > 0).float().mean() < 0.6  # the event's bins, not all or none
    brain.hparams.mask_above_floor = True
    gated = brain.explain(mixture)
    assert torch.allclose(gated["mask"], 0.5 * gate, atol=1e-6)
    assert torch.allclose(gated["X_int"], brain.apply_mask(gated["X"], 0.5 * gate), atol=1e-5)
    trained = brain.forward_waveforms(mixture, sb.Stage.TRAIN)
    assert torch.allclose(trained["mask"], 0.5 * gate, atol=1e-6)
    baseline = baseline_masks(brain, gated, None, ("above_floor",))
    assert list(baseline) == ["above_floor"]
    assert torch.allclose(baseline["above_floor"], gate, atol=1e-6)


def test_lmac_keeps_the_reference_checkpoint_choice_unless_asked():
    """No checkpoint_key (a yaml or run from before the key): the highest valid Fid-In, as
    the reference; checkpoint_key: loss -> the lowest valid loss."""
    from recipes.interpreters.lmac import LMAC

    reference = bare_brain(LMAC)
    assert (reference.best_key, reference.best_key_is_lower) == ("fid_in", False)
    by_loss = bare_brain(LMAC, checkpoint_key="loss")
    assert (by_loss.best_key, by_loss.best_key_is_lower) == ("loss", True)


# ---------------------------------------------------------------- keep_class
def test_keep_class_mask_takes_each_clips_first_candidate_that_keeps_its_class():
    """Two-bin classifier. Candidates: nothing (class 2 on both clips), bin a alone (clip 0:
    logits 6, 0, 1 -> class 0, kept; clip 1: 1, 0, 1 -> a tie, class 0, lost), all ones (both
    kept). Clip 0 takes step 1, clip 1 step 2; without the all-ones rung clip 1 has none
    (step -1) and keeps the first candidate."""
    brain, outputs = two_clips()
    X, classes = outputs["X"], outputs["classes"]
    bin_a = torch.zeros_like(X)
    bin_a[:, BIN_A[0], BIN_A[1]] = 1.0
    candidates = torch.stack([torch.zeros_like(X), bin_a, torch.ones_like(X)])
    mask, step = brain.keep_class_mask(X, candidates, classes)
    assert step.tolist() == [1, 2]
    assert torch.equal(mask[0], bin_a[0]) and torch.equal(mask[1], torch.ones_like(X[1]))
    mask, step = brain.keep_class_mask(X, candidates[:2], classes)
    assert step.tolist() == [1, -1]
    assert torch.equal(mask[1], torch.zeros_like(X[1]))


def test_keep_class_mask_checks_each_candidate_as_finish_makes_it_for_the_open_clips_only():
    """`finish` (mask_completion, mask_above_floor) shapes each candidate before its check, for
    the clips still open: the same two clips as above. With finish = all ones both keep their
    class at step 0 and get all ones; with finish recording its rows, step 2 sees clip 1 only."""
    brain, outputs = two_clips()
    X, classes = outputs["X"], outputs["classes"]
    bin_a = torch.zeros_like(X)
    bin_a[:, BIN_A[0], BIN_A[1]] = 1.0
    candidates = torch.stack([torch.zeros_like(X), bin_a, torch.ones_like(X)])
    mask, step = brain.keep_class_mask(X, candidates, classes, lambda m, rows: torch.ones_like(m))
    assert step.tolist() == [0, 0] and torch.equal(mask, torch.ones_like(X))
    seen = []

    def recording(masks, rows):
        seen.append(rows.tolist())
        return masks

    mask, step = brain.keep_class_mask(X, candidates, classes, recording)
    assert seen == [[True, True], [True, True], [False, True]]
    assert step.tolist() == [1, 2] and torch.equal(mask[0], bin_a[0])


class MeanLevel(torch.nn.Module):
    """The embedding model: X (B, frames, F) -> its mean level (B, 1)."""

    def forward(self, X):
        return X.mean(dim=(1, 2)).unsqueeze(1)


@pytest.mark.parametrize("floor", [False, True])
def test_keep_class_widens_a_soft_mask_up_the_exponent_ladder_at_test_only(floor):
    """Class 0 while X_int's mean level stays above 0.8 of the clip's (with `mask_above_floor`,
    of the floor mask's X_int; log domain: a constant mask m scales it by m). m = 0.5 loses
    it, 0.5 ** 0.5 = 0.71 too, 0.5 ** 0.25 = 0.84 keeps it: explain's mask is 0.84 (times
    the floor mask); training's and validation's forward keep 0.5."""
    _, _, mixture = synthetic_clip("harmonic_stack", 0)
    brain = fixed_mask_brain()
    brain.hparams.keep_class = True
    brain.hparams.mask_above_floor = floor
    X, _ = brain.preprocess(mixture)
    gate = lower_median_gate(X, "log") if floor else torch.ones_like(X)
    level = (gate * X).mean().item()
    head = torch.nn.Linear(1, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0], [0.0]]))
        head.bias.copy_(torch.tensor([-0.8 * level, 0.0]))
    brain.hparams.embedding_model, brain.hparams.classifier = MeanLevel(), head
    brain.next_mask = torch.full((1,), 0.5)
    expected = next(
        (step, 0.5**e) for step, e in enumerate((1.0, 0.5, 0.25, 0.125, 0.0625)) if (0.5**e * gate * X).mean() > 0.8 * level
    )
    assert expected[0] == 2  # the ladder is climbed, not its first or last rung
    outputs = brain.explain(mixture)
    assert outputs["keep_class_step"].tolist() == [expected[0]]
    assert torch.allclose(outputs["mask"], expected[1] * gate, atol=1e-6)
    values, _ = brain.score(outputs)  # the widened mask keeps the class, the interpreter's did not
    assert values["fid_in"].tolist() == [1.0] and values["fid_in_unwidened"].tolist() == [0.0]
    for stage in (sb.Stage.TRAIN, sb.Stage.VALID):  # the losses that pick the checkpoint
        trained = brain.forward_waveforms(mixture, stage)
        assert "keep_class_step" not in trained
        assert torch.allclose(trained["mask"], 0.5 * gate, atol=1e-6)


def test_l2i_keep_class_ladder_lowers_the_relevance_threshold_then_takes_all_components():
    """Relevance (1, 0.8, -0.5), relevance_th 0.5: the thresholds 0.5, 0.25, 0, -0.25, -0.5
    keep components 0 and 1, -0.75 all three, and the last rung is all of them."""
    brain = l2i_brain(centered=False)
    outputs = brain.interpret(torch.ones(1, 4, 6), None, torch.tensor([0]), sb.Stage.TEST)
    ladder = brain.widened_masks(outputs)
    assert ladder.shape == (7, 1, 4, 6)
    assert torch.allclose(ladder[0], outputs["mask"])
    for step in range(5):
        assert torch.allclose(ladder[step], share_of([0, 1]), atol=1e-6), step
    for step in (5, 6):
        assert torch.allclose(ladder[step], share_of([0, 1, 2]), atol=1e-6), step
    brain.widening_chosen(outputs, torch.tensor([5]))  # the components of the chosen rung
    assert outputs["selected"].tolist() == [[1.0, 1.0, 1.0]]


def test_l2i_component_audio_follows_keep_class_and_the_floor():
    """relevance_th 1: no component is relevant, X_int is silence and loses the class (class
    0 while X_int's mean level is above half the floor mask's), so `keep_class` widens: the
    components listed are the chosen rung's, and with `mask_above_floor` each one's mask is
    its share above the floor, so that in the magnitude domain (the ISTFT of log1p(m |S|)
    with the input phase is linear in m) their audio adds up to the interpretation's."""
    _, _, mixture = synthetic_clip("harmonic_stack", 0)
    brain = l2i_brain(centered=False)
    brain.hparams.__dict__.update(
        relevance_th=1.0,
        keep_class=True,
        mask_above_floor=True,
        mask_domain="magnitude",
        compute_stft=STFT(**STFT_ARGS),
        compute_istft=ISTFT(**STFT_ARGS),
    )
    brain.W = torch.rand(513, 3, generator=torch.Generator().manual_seed(0)) + 0.1
    X, _ = brain.preprocess(mixture)
    level = brain.apply_mask(X, lower_median_gate(X, "magnitude")).mean().item()
    head = torch.nn.Linear(1, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0], [0.0]]))
        head.bias.copy_(torch.tensor([-0.5 * level, 0.0]))
    brain.hparams.embedding_model, brain.hparams.classifier = MeanLevel(), head
    components, outputs = brain.component_audio(mixture)
    assert outputs["keep_class_step"].item() > 0
    assert outputs["selected"].sum().item() == len(components) > 0
    total = torch.stack([audio for _k, _r, audio in components]).sum(dim=0)
    assert torch.allclose(total, outputs["audio"][0], atol=1e-4)


# ---------------------------------------------------------------- the losses' values by hand
def test_l2i_loss_terms_by_hand():
    """The classifier's softmax (1/2, 1/2) against Theta's (1/4, 3/4): L_FID = -(1/2 ln 1/4 +
    1/2 ln 3/4) = 0.8370 per clip (a sum over the classes, a mean over the clips);
    ||X - W H||^2 = mean(1, 4) = 2.5 times alpha 2; ||H||_1 = mean(2, 0) = 1 times beta 0.5."""
    brain = bare_brain(L2I, alpha=2.0, beta=0.5)
    outputs = {
        "scores": torch.tensor([[0.0, 0.0], [0.0, 0.0]]),
        "theta_out": torch.tensor([[0.25, 0.75], [0.25, 0.75]]),
        "X": torch.tensor([[[1.0, 2.0]], [[1.0, 2.0]]]),
        "WH": torch.zeros(2, 1, 2),
        "H": torch.tensor([[[2.0]], [[0.0]]]),
    }
    terms = brain.interpretation_loss(outputs, None, sb.Stage.TRAIN)
    fidelity = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert terms["loss_fid"].item() == pytest.approx(fidelity, abs=1e-5)
    assert terms["loss_nmf"].item() == pytest.approx(5.0)
    assert terms["loss_l1"].item() == pytest.approx(0.5)


def test_piq_target_mask_is_strictly_above_the_threshold_and_empty_on_silence():
    """A bin at exactly 0.35 of the peak is not in the target; a silent clip has no target."""
    from recipes.interpreters.piq import target_mask

    assert target_mask(torch.tensor([[[0.35, 1.0]]]), 0.35).tolist() == [[[0.0, 1.0]]]
    assert target_mask(torch.zeros(1, 2, 2), 0.35).sum().item() == 0.0


def test_piq_codebook_and_commitment_terms_move_what_they_should_by_hand():
    """h = (1, 3), z_q = (2, 2): both MSEs are (1 + 1) / 2 = 1 (the commitment times 0.25).
    The codebook term moves z_q only (its gradient 2 (z_q - h) / 2 = (1, -1)), the commitment
    term h only (0.25 * 2 (h - z_q) / 2 = (-0.25, 0.25)); the mask target's BCE at logits 0 is
    ln 2 whatever the target."""
    from recipes.interpreters.piq import PIQ

    brain = bare_brain(
        PIQ, use_vq=True, use_mask_output=True, mask_th=0.35, mask_target="peak",
        rec_loss_coef=1.0, commitment_coef=0.25,
    )

    def terms():
        h = torch.tensor([[1.0, 3.0]], requires_grad=True)
        z_q = torch.tensor([[2.0, 2.0]], requires_grad=True)
        outputs = {"X": torch.ones(1, 1, 2), "decoded": torch.zeros(1, 1, 2), "h": h, "z_q": z_q}
        return brain.interpretation_loss(outputs, None, sb.Stage.TRAIN), h, z_q

    values, h, z_q = terms()
    assert values["loss_rec"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert values["loss_vq"].item() == pytest.approx(1.0)
    assert values["loss_commit"].item() == pytest.approx(0.25)
    values["loss_vq"].backward()
    assert z_q.grad.tolist() == [[1.0, -1.0]] and h.grad is None
    values, h, z_q = terms()
    values["loss_commit"].backward()
    assert h.grad.tolist() == [[-0.25, 0.25]] and z_q.grad is None


def test_completion_runs_before_the_floor_product():
    """A floor of 1 and an event along frame 2 at 4 and 9 (floor_mask (4 - 1) / 4 = 0.75 and
    (9 - 1) / 9 = 0.889); the mask holds one bin of it at 1. Completed first, the event is at
    1 everywhere, then each bin takes its own floor share; the other order would spread the
    seed's 0.75 over the 9s."""
    brain = bare_brain(mask_completion=True, mask_above_floor=True, mask_domain="log")
    X = torch.ones(1, 5, 4)
    X[0, 2] = torch.tensor([4.0, 9.0, 4.0, 9.0])
    mask = torch.zeros(1, 5, 4)
    mask[0, 2, 0] = 1.0
    finished = brain.finished_mask(X, sb.Stage.TEST)(mask)
    assert finished[0, 2].tolist() == pytest.approx([0.75, 8 / 9, 0.75, 8 / 9], abs=1e-6)
    assert finished.sum().item() == pytest.approx(2 * 0.75 + 2 * 8 / 9, abs=1e-5)
    assert brain.finished_mask(X, sb.Stage.VALID)(mask)[0, 2].tolist() == pytest.approx([0.75, 0, 0, 0])


# ---------------------------------------------------------------- mask_tail
class FixedLogits(torch.nn.Module):
    """A decoder that gives the same logits (B, 1, 2 frames, 3 bins) whatever it reads, as
    PIQ's psi does with `return_indices`, or as L-MAC's psi alone."""

    def __init__(self, piq):
        super().__init__()
        self.piq = piq
        self.logits = torch.tensor([[[[0.0, 1.0, -1.0], [2.0, -2.0, 0.0]]]])  # frames 0 and 1

    def forward(self, representations, classes=None, return_indices=False):
        logits = self.logits.expand(representations.shape[0], -1, -1, -1)
        if self.piq:
            return logits, None, None, torch.zeros(1, dtype=torch.long)
        return logits


@pytest.mark.parametrize("interpreter", ["lmac", "piq"])
@pytest.mark.parametrize("tail", [None, "zeros", "edge"])
def test_mask_tail_fills_the_frames_past_the_decoders_last(interpreter, tail):
    """The decoder covers 2 of the input's 4 frames. Without the key (a run from before it)
    and with zeros, the reference: frames 2 and 3 are 0. With edge: they repeat frame 1,
    sigmoid(2, -2, 0) = (0.881, 0.119, 0.5)."""
    from recipes.interpreters.lmac import LMAC
    from recipes.interpreters.piq import PIQ

    extra = {} if tail is None else {"mask_tail": tail}
    if interpreter == "lmac":
        brain = bare_brain(LMAC, embedding_model=torch.nn.Identity(), **extra)
    else:
        brain = bare_brain(PIQ, embedding_model=torch.nn.Identity(), use_vq=True, use_mask_output=True, K=1, **extra)
        brain.codes_used = torch.zeros(1, dtype=torch.bool)
    brain.modules["psi"] = FixedLogits(piq=interpreter == "piq")
    X = torch.ones(2, 4, 3)
    mask = brain.interpret(X, torch.zeros(2, 1, 1, 1), torch.tensor([0, 1]), sb.Stage.TEST)["mask"]
    first = [0.5, 1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(1.0))]
    second = [1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(2.0)), 0.5]
    tail_rows = [second, second] if tail == "edge" else [[0.0] * 3, [0.0] * 3]
    for clip in range(2):
        expected = torch.tensor([first, second] + tail_rows)
        assert torch.allclose(mask[clip], expected, atol=1e-6), mask[clip]


def test_a_mask_tail_of_another_name_is_refused():
    from recipes.core.pipeline import match_frames

    with pytest.raises(ValueError, match="mask_tail 'replicate'"):
        match_frames(torch.ones(1, 2, 3), 4, tail="replicate")


def test_a_zero_tail_is_said_once_and_edge_says_nothing(caplog):
    """The decoder covers 2 of 4 frames of 11.6099 ms: with zeros the last 2 frames, 2 x
    11.6099 = 23 ms, are outside the interpretation, said once however many batches; with
    edge nothing is left out, nothing said."""
    from recipes.interpreters.lmac import LMAC

    for tail, expected in (("zeros", 1), ("edge", 0)):
        caplog.clear()
        brain = bare_brain(LMAC, embedding_model=torch.nn.Identity(), mask_tail=tail, hop_length=11.6099)
        brain.modules["psi"] = FixedLogits(piq=False)
        for _ in range(2):
            brain.interpret(torch.ones(1, 4, 3), torch.zeros(1, 1, 1, 1), torch.tensor([0]), sb.Stage.TEST)
        said = [r.getMessage() for r in caplog.records if "mask_tail" in r.getMessage()]
        assert len(said) == expected, said
        if said:
            assert "covers 2 of the input's 4 frames" in said[0] and "last 2 (23 ms)" in said[0]
