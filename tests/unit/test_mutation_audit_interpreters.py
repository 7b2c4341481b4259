"""Mutation audit of the interpreters' method-specific code: keep_class's exponent ladder, L2I's
threshold ladder, PIQ's mask in spectrogram mode and its mask_th check, L-MAC's out-term
gradient and its fine-tuning (guidance, clean reference, crosscor_th check).

Each test kills a one-line mutant that the earlier audits (test_mutation_audit_models.py,
test_mutation_audit_brains.py, test_l2i_*.py, test_lmac_*.py, test_piq_audit.py,
test_interpreter_brain_known_answers.py) let survive. Expected values are worked out by hand in
the docstrings (or by plain Python floats), never by the code under test. The Brains are built
without their set-up (`bare_brain`) and given hand-made modules.
"""

import math
import types

import pytest
import speechbrain as sb
import torch
from conftest import bare_brain
from test_l2i_nmf_audit import l2i_brain

from recipes.interpreters.lmac import LMAC
from recipes.interpreters.piq import PIQ


def sigmoid(value):
    return 1.0 / (1.0 + math.exp(-value))


def softplus(value):
    return math.log1p(math.exp(value))


def softmax(logits):
    exps = [math.exp(value) for value in logits]
    return [value / sum(exps) for value in exps]


# ---------------------------------------------------------------- keep_class's exponent ladder
def test_the_exponent_ladder_of_a_soft_mask_by_hand_ends_with_all_ones():
    """m ** e for e = 1, 1/2, 1/4, 1/8, 1/16, 1/32, then all ones (e = 0): a bin at 0 stays 0
    until the last rung, where it is 1 (a last rung of zeros, or m ** (1 / e), narrows)."""
    mask = torch.tensor([[[0.0, 0.25, 1.0]]])
    ladder = bare_brain().widened_masks({"mask": mask})
    expected = [[0.0, 0.25**e, 1.0] for e in (1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32)] + [[1.0, 1.0, 1.0]]
    assert ladder.shape == (7, 1, 1, 3)
    assert torch.allclose(ladder[:, 0, 0], torch.tensor(expected), atol=1e-6)


def test_a_binary_mask_that_loses_both_classes_goes_straight_to_all_ones():
    """The two-bin classifier (logits 2 X[a], 2 X[b], 1): an all-zeros mask gives class 2 on
    both clips, and so does every rung m ** e of it; only the last rung (all ones) gives X back,
    so both clips take step 6 and an all-ones mask."""
    brain = bare_brain()
    X = torch.zeros(2, 4, 3)
    X[0, 1, 2], X[0, 3, 0] = 3.0, 1.0  # class 0
    X[1, 1, 2], X[1, 3, 0] = 0.5, 2.5  # class 1
    candidates = brain.widened_masks({"mask": torch.zeros_like(X)})
    mask, step = brain.keep_class_mask(X, candidates, torch.tensor([0, 1]))
    assert step.tolist() == [6, 6]
    assert torch.equal(mask, torch.ones_like(X))


# ---------------------------------------------------------------- L2I's threshold ladder
def test_l2i_ladder_s_first_rung_is_the_interpretation_also_below_minus_one():
    """relevance_th -1.5 (load_frozen only warns: every component passes): r = (0.5, -1, 0.25),
    the interpretation keeps all three (r > -1.5, also r = -1), and the ladder's first rung is
    that interpretation itself, not the components above max(th, -1) = -1 (which drop the one
    at exactly -1)."""
    brain = l2i_brain([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0]], torch.ones(1, 3, 4), relevance_th=-1.5)
    outputs = brain.interpret(torch.ones(1, 4, 3), None, torch.tensor([0]), sb.Stage.TEST)
    assert outputs["selected"].tolist() == [[1.0, 1.0, 1.0]]
    ladder = brain.widened_masks(outputs)
    assert outputs["ladder_selected"][0].tolist() == [[1.0, 1.0, 1.0]]
    assert torch.equal(ladder[0], outputs["mask"])


# ---------------------------------------------------------------- PIQ
class FixedLogits(torch.nn.Module):
    """psi: fixed decoder logits (1, 1, frames, F) and the (h, z_q, codes) of `return_indices`."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor([[logits]])

    def forward(self, representations, classes=None, return_indices=False):
        return self.logits, None, None, torch.zeros(1, dtype=torch.long)


def test_piq_spectrogram_mode_masks_by_the_peak_rule_whatever_mask_target():
    """use_mask_output False with mask_target above_floor: the mask follows the peak rule
    (piq.py's docstring; load_frozen says the target is not read). softplus of the logits
    [[-2, 0, 1], [3, -1, 0.5]] is [[0.127, 0.693, 1.313], [3.049, 0.313, 0.974]]; 0.4 x 3.049 =
    1.219: mask [[0, 0, 1], [1, 0, 0]]. (The above_floor rule, on the part above each bin's
    lower median over the 2 frames, [[0, 0.380, 0.339], [2.922, 0, 0]], would give [[0, 0, 0],
    [1, 0, 0]].)"""
    logits = [[-2.0, 0.0, 1.0], [3.0, -1.0, 0.5]]
    brain = bare_brain(
        PIQ, use_vq=True, use_mask_output=False, mask_th=0.4, mask_target="above_floor", K=1,
        embedding_model=torch.nn.Identity(), mask_tail="zeros",
    )
    brain.codes_used = torch.zeros(1, dtype=torch.bool)
    brain.modules["psi"] = FixedLogits(logits)
    peak = max(softplus(v) for row in logits for v in row)
    expected = [[float(softplus(v) > 0.4 * peak) for v in row] for row in logits]
    assert expected == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    outputs = brain.interpret(torch.ones(1, 2, 3), torch.zeros(1, 1, 1, 1), torch.tensor([0]), sb.Stage.TEST)
    assert outputs["mask"].tolist() == [expected]


def test_piq_accepts_mask_th_0_and_1_and_refuses_outside():
    """mask_th is a share of each clip's maximum, 0 to 1 inclusive (0: every bin above 0)."""
    for th in (0.0, 1.0):
        bare_brain(PIQ, mask_th=th, mask_target="peak", use_vq=False, K=4, out_n_neurons=2, shared_keys=0).load_frozen()
    with pytest.raises(ValueError, match="mask_th"):
        bare_brain(PIQ, mask_th=-0.1, mask_target="peak", use_vq=False, K=4, out_n_neurons=2, shared_keys=0).load_frozen()


# ---------------------------------------------------------------- L-MAC's out term
def test_lmac_out_term_trains_the_mask_through_the_masked_out_input():
    """The out-term -CE(f((1 - M) X), y) = f_y - lse(f) has a gradient in M (the mask must not be
    detached there). One clip, X[a] = 3, X[b] = 1, M = 0.5, y = 0, T = 1, log domain: (1 - M) X
    has a = 1.5, b = 0.5, f = (3, 1, 1), p = softmax(f). d/dM[a] = -X[a] 2 (1 - p_0) =
    -6 (1 - p_0); d/dM[b] = -X[b] (-2 p_1) = 2 p_1; 0 elsewhere. l_out_w 0.5 scales it."""
    brain = bare_brain(LMAC, l_in_w=0.0, l_out_w=0.5, reg_w_l1=0.0, out_loss="neg_ce", mask_domain="log")
    brain.finetuning = False
    X = torch.zeros(1, 4, 3)
    X[0, 1, 2], X[0, 3, 0] = 3.0, 1.0
    mask = torch.full((1, 4, 3), 0.5, requires_grad=True)
    terms = brain.interpretation_loss({"X": X, "mask": mask, "classes": torch.tensor([0])}, None, sb.Stage.TRAIN)
    p = softmax([3.0, 1.0, 1.0])
    assert terms["loss_out"].item() == pytest.approx(0.5 * math.log(p[0]), abs=1e-6)
    terms["loss_out"].backward()
    expected = torch.zeros(1, 4, 3)
    expected[0, 1, 2], expected[0, 3, 0] = 0.5 * -6.0 * (1 - p[0]), 0.5 * 2.0 * p[1]
    assert mask.grad is not None
    assert torch.allclose(mask.grad, expected, atol=1e-6)


class LogitParameter(torch.nn.Module):
    """psi: its own logits (1, 1, frames, F) as a parameter, whatever it reads."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor([[logits]]))

    def forward(self, representations):
        return self.logits


def test_lmac_mask_passes_the_gradient_back_to_psi():
    """M = sigmoid(psi's logits): d sum(M) / d z = sigmoid(z) (1 - sigmoid(z)), (0.25 at z = 0)."""
    logits = [[0.0, 1.0], [-2.0, 0.5]]
    brain = bare_brain(LMAC, embedding_model=torch.nn.Identity(), mask_tail="zeros")
    psi = LogitParameter(logits)
    brain.modules["psi"] = psi
    outputs = brain.interpret(torch.ones(1, 2, 2), torch.zeros(1, 1, 1, 1), torch.tensor([0]), sb.Stage.TRAIN)
    outputs["mask"].sum().backward()
    expected = [[sigmoid(v) * (1 - sigmoid(v)) for v in row] for row in logits]
    assert psi.logits.grad is not None
    assert torch.allclose(psi.logits.grad[0, 0], torch.tensor(expected), atol=1e-6)


# ---------------------------------------------------------------- L-MAC's fine-tuning
def test_lmac_guidance_compares_the_masked_in_input_and_targets_the_clean_reference():
    """Two clips of 2 frames x 2 bins, crosscor_th 0.5, bin_th 0.5, g_w 2; psi decodes 3 frames.

    Clip 0: X_c = [[2, 0], [0, 1]], X = [[2, 3], [3, 1]], M = [[1, 0], [0, 1]]: M X = X_c,
    cosine 1, guided (X itself: cosine 5 / sqrt(23 * 5) = 0.47, not). The target is X_c >= 0.5 x
    2: [[1, 0], [0, 1]] (X's would be [[1, 1], [1, 0]]), against the logits' first 2 frames
    [[1, -1], [0, 2]] (not the last two): BCE = (2 softplus(-1) + ln 2 + softplus(-2)) / 4.
    Clip 1: X_c = X = [[1, 0], [0, 0]], M = [[0, 1], [1, 1]]: M X = 0, cosine 0, not guided
    (X itself: cosine 1). loss = g_w mean(BCE_0, 0) = BCE_0; its gradient in clip 0's logits is
    g_w / 2 x (sigmoid(z) - t) / 4 on the 2 frames the target covers, 0 on the third and on
    clip 1."""
    brain = bare_brain(LMAC, crosscor_th=0.5, bin_th=0.5, g_w=2.0, mask_domain="log")
    X_clean = torch.tensor([[[2.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]]])
    brain.clean_spectrogram = lambda batch: X_clean
    z0 = [[1.0, -1.0], [0.0, 2.0], [5.0, 5.0]]
    logits = torch.tensor([z0, [[0.0, 0.0]] * 3], requires_grad=True)
    outputs = {
        "logits": logits,
        "X": torch.tensor([[[2.0, 3.0], [3.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]]]),
        "mask": torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 1.0]]]),
    }
    guided, loss = brain.guidance_loss(outputs, batch=None)
    assert guided.tolist() == [1.0, 0.0]
    bce_0 = (2 * softplus(-1.0) + math.log(2.0) + softplus(-2.0)) / 4
    assert loss.item() == pytest.approx(bce_0, abs=1e-6)
    loss.backward()
    target = [[1.0, 0.0], [0.0, 1.0]]
    expected = torch.zeros(2, 3, 2)
    for t in range(2):
        for f in range(2):
            expected[0, t, f] = 2.0 / 2 * (sigmoid(z0[t][f]) - target[t][f]) / 4
    assert torch.allclose(logits.grad, expected, atol=1e-6)


def test_lmac_clean_reference_is_the_ground_truth_s_target_event():
    """finetuning_reference sources: X_c is the spectrogram of the clips' target events (what
    `GroundTruth.sources` gives for the batch's ids), not of the input clips. An STFT stand-in
    whose magnitude is |wav| per sample (1 frame): X_c = log1p(|source|)."""
    brain = bare_brain(LMAC, compute_stft=lambda w: torch.stack([w.unsqueeze(1), torch.zeros_like(w).unsqueeze(1)], -1))
    seen = []

    class Sources:
        def sources(self, ids, clips):
            seen.append(list(ids))
            return torch.tensor([[3.0, 0.0, 1.0]]), None

    brain.ground_truth = Sources()
    batch = types.SimpleNamespace(id=["clip7"], sig=(torch.tensor([[9.0, 9.0, 9.0]]), torch.ones(1)))
    X_clean = brain.clean_spectrogram(batch)
    assert seen == [["clip7"]]
    assert X_clean[0, 0].tolist() == pytest.approx([math.log(4.0), 0.0, math.log(2.0)], abs=1e-5)


def test_lmac_crosscor_th_may_be_negative_down_to_minus_one():
    """crosscor_th is a cosine similarity's threshold, in [-1, 1]: -0.5 passes that check (the
    next one, the reference, then refuses the bogus value), -1.5 is refused by it."""
    hparams = {"l_in_w": 1.0, "l_out_w": 1.0, "reg_w_l1": 1.0, "g_w": 1.0, "out_loss": "neg_ce",
               "finetuning": True, "bin_th": 0.35, "finetuning_reference": "bogus"}
    brain = bare_brain(LMAC, crosscor_th=-0.5, **hparams)
    brain.checkpointer = object()
    with pytest.raises(ValueError, match="finetuning_reference 'bogus'"):
        brain.load_frozen()
    brain.hparams.crosscor_th = -1.5
    with pytest.raises(ValueError, match="crosscor_th = -1.5"):
        brain.load_frozen()
