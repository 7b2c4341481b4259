"""Tests added by a manual mutation audit of the interpretation maths (models/, the signal
path, the interpreters' losses): each one kills a mutation that the other tests let through.

Every expected value is worked out by hand (or by plain torch from the documented formula),
not by calling the code under test. The mutation each test guards is named in its docstring.
"""

import math
import types

import pytest
import speechbrain as sb
import torch
from conftest import bare_brain
from test_l2i_nmf_audit import FixedActivations  # psi: the given H, whatever the classifier gives

from models.L2I import Theta
from recipes.core.pipeline import log_mel
from recipes.interpreters.l2i import L2I
from recipes.interpreters.lmac import LMAC, binarised_reference


# ---------------------------------------------------------------- the signal path
class SumOfBins(torch.nn.Module):
    """A one-band "filterbank" that adds the bins of each frame: (B, frames, F) -> (B, frames, 1)."""

    def forward(self, spectrum):
        return spectrum.sum(dim=-1, keepdim=True)


def test_log_mel_reads_the_filterbank_of_the_magnitude_not_of_log1p():
    """X = log1p |S| with |S| = (3, 8): CNN14's input is log1p(fbank(|S|)) = log1p(3 + 8) = ln 12.
    Guards `compute_fbank(torch.expm1(X))` (the mutation `compute_fbank(X)` gives
    log1p(ln 4 + ln 9) = ln(1 + ln 36) = 1.5292)."""
    X = torch.log1p(torch.tensor([[[3.0, 8.0]]]))
    assert log_mel(X, SumOfBins()).item() == pytest.approx(math.log(12.0), abs=1e-6)


# ---------------------------------------------------------------- L2I's loss
def l2i_brain(H, **hparams):
    """An L2I Brain with W = I (K = 2 components, 2 bins), psi giving H, Theta with max pooling."""
    theta = Theta(n_comp=2, T=H.shape[2], num_classes=2, pooling="max")
    with torch.no_grad():
        theta.classifier_weight().copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    modules = torch.nn.ModuleDict({"psi": FixedActivations(H), "theta": theta})
    brain = bare_brain(L2I, modules, relevance_centered=False, relevance_th=0.5, **hparams)
    brain.W = torch.eye(2)
    return brain


def test_l2i_l1_term_is_beta_times_the_mean_over_every_element_of_h():
    """beta ||H||_1 with a mean over the elements (the module docstring): H = ((1, 2), (3, 6))
    (K 2, 2 frames) has mean |H| = 12 / 4 = 3, times beta 0.5 = 1.5. Guards `.abs().mean()`
    (the mutation `.abs().sum(dim=1).mean()`, a sum over the K components, gives 3)."""
    H = torch.tensor([[[1.0, 2.0], [3.0, 6.0]]])
    brain = l2i_brain(H, alpha=0.0, beta=0.5)
    outputs = {
        "scores": torch.zeros(1, 2),
        "theta_out": torch.full((1, 2), 0.5),
        "X": torch.zeros(1, 2, 2),
        "WH": torch.zeros(1, 2, 2),
        "H": H,
    }
    terms = brain.interpretation_loss(outputs, None, sb.Stage.TRAIN)
    assert terms["loss_l1"].item() == pytest.approx(1.5)


def test_l2i_fidelity_targets_the_classifier_s_softmax_at_its_temperature():
    """L_FID is the cross-entropy of Theta's output against softmax(scores / classifier_temp)
    (l2i.py's docstring): scores (1, 0) at temperature 0.5 give the target softmax(2, 0) =
    (e^2, 1) / (e^2 + 1); against Theta's (1/4, 3/4), L_FID = -(p0 ln 1/4 + p1 ln 3/4).
    Guards `self.class_probabilities` (the mutation softmax(scores), temperature left out,
    gives the target (0.731, 0.269))."""
    H = torch.ones(1, 2, 2)
    brain = l2i_brain(H, alpha=0.0, beta=0.0, classifier_temp=0.5)
    outputs = {
        "scores": torch.tensor([[1.0, 0.0]]),
        "theta_out": torch.tensor([[0.25, 0.75]]),
        "X": torch.zeros(1, 2, 2),
        "WH": torch.zeros(1, 2, 2),
        "H": H,
    }
    p0 = math.exp(2.0) / (math.exp(2.0) + 1.0)
    expected = -(p0 * math.log(0.25) + (1.0 - p0) * math.log(0.75))
    terms = brain.interpretation_loss(outputs, None, sb.Stage.TRAIN)
    assert terms["loss_fid"].item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("epoch, psi_learns", [(1, False), (2, True)])
def test_l2i_fidelity_trains_theta_only_during_the_warmup(epoch, psi_learns):
    """With fidelity_warmup_epochs 1, epoch 1's L_FID reaches Theta but not psi's activations
    (H detached in it), epoch 2's reaches both. Guards `self.modules.theta(H.detach())` (the
    mutation `theta(H)` lets the warm-up's L_FID train psi)."""
    H = torch.tensor([[[1.0, 3.0], [2.0, 0.5]]], requires_grad=True)  # (1, K 2, 2 frames)
    counter = types.SimpleNamespace(current=epoch)
    brain = l2i_brain(H, alpha=0.0, beta=0.0, fidelity_warmup_epochs=1, epoch_counter=counter)
    outputs = brain.interpret(torch.ones(1, 2, 2), None, torch.tensor([0]), sb.Stage.TRAIN)
    outputs.update(X=torch.ones(1, 2, 2), scores=torch.tensor([[2.0, 0.0]]))
    brain.interpretation_loss(outputs, None, sb.Stage.TRAIN)["loss_fid"].backward()
    theta_grad = brain.modules.theta.classifier_weight().grad
    assert theta_grad is not None and theta_grad.abs().sum().item() > 0  # Theta learns in both
    reached_psi = H.grad is not None and H.grad.abs().sum().item() > 0
    assert reached_psi is psi_learns


# ---------------------------------------------------------------- L-MAC's fine-tuning
def test_binarised_reference_keeps_a_bin_at_exactly_bin_th_of_the_peak():
    """The fine-tuning's target is X_c >= bin_th max X_c (lmac.py's docstring): with peak 1 and
    bin_th 0.5 the bin at 0.5 is in it, the one at 0.25 is not. Guards `>=` (the mutation `>`
    drops the bin on the threshold)."""
    X_clean = torch.tensor([[[0.5, 1.0, 0.25]]])
    assert binarised_reference(X_clean, 0.5).tolist() == [[[1.0, 1.0, 0.0]]]


def test_lmac_guides_a_clip_whose_similarity_is_exactly_crosscor_th():
    """Clips whose masked-in spectrogram has cosine similarity >= crosscor_th with the clean
    reference are guided (lmac.py's docstring). X_c = (1, 0, 0, 0) for both clips, M X =
    (1, 1, 1, 1) (similarity 1 / 2, exactly crosscor_th 0.5: guided) and (0, 1, 1, 1)
    (similarity 0: not guided). With logits 0 each bin's BCE is ln 2, so the guidance term is
    g_w * mean(ln 2, 0) = ln 2 / 2 with g_w 1. Guards `similarity >= crosscor_th` (the
    mutation `>` guides neither clip) and the product by `guided` (a BCE over every clip gives
    ln 2)."""
    brain = bare_brain(LMAC, crosscor_th=0.5, bin_th=0.5, g_w=1.0, mask_domain="log")
    X_clean = torch.tensor([[[1.0, 0.0, 0.0, 0.0]], [[1.0, 0.0, 0.0, 0.0]]])
    brain.clean_spectrogram = lambda batch: X_clean
    outputs = {
        "logits": torch.zeros(2, 1, 4),
        "X": torch.tensor([[[1.0, 1.0, 1.0, 1.0]], [[0.0, 1.0, 1.0, 1.0]]]),
        "mask": torch.ones(2, 1, 4),
    }
    guided, loss = brain.guidance_loss(outputs, batch=None)
    assert guided.tolist() == [1.0, 0.0]
    assert loss.item() == pytest.approx(math.log(2) / 2, abs=1e-6)


@pytest.mark.parametrize(
    "domain, expected",
    [
        ("log", math.log(4.0)),  # d(m X)/dm = X = ln 4
        ("magnitude", 3.0 / 1.75),  # d log1p(m S)/dm = S / (1 + m S)
        ("power", 1.2),  # d log1p(sqrt(m) S)/dm = S / (2 sqrt(m) (1 + sqrt(m) S)) = 3 / 2.5
    ],
)
def test_apply_mask_passes_the_gradient_to_the_mask_in_every_domain(domain, expected):
    """|S| = 3 (X = ln 4), m = 0.25: the losses of L-MAC train psi through dX_int/dm, worked out
    by hand from each domain's formula (pipeline.apply_mask's docstring). Guards the gradient
    of `mask * X` (the mutation `mask.detach() * X` leaves the reference recipes' log-domain
    L-MAC without a gradient to its decoder, while every value stays the same)."""
    from recipes.core.pipeline import apply_mask

    X = torch.log1p(torch.tensor([[[3.0]]]))
    mask = torch.tensor([[[0.25]]], requires_grad=True)
    apply_mask(X, mask, domain).sum().backward()
    assert mask.grad is not None
    assert mask.grad.item() == pytest.approx(expected, rel=1e-5)
