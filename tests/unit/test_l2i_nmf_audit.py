"""Mutation audit of L2I's selection, ladder, metrics and modules, and of the NMF maths.

Each test guards a line that a plausible one-line slip could change without any
other unit test noticing, and whose change moves a reported figure or what a
user hears. Expected values are worked out by hand (in the docstrings) or by a
small independent implementation in the test, never by the code under test.
The Brains are built without their set-up (`object.__new__`) and given
hand-made modules, as in test_interpreter_brain_known_answers.py.
"""

import math
import types

import pytest
import speechbrain as sb
import torch
from conftest import bare_brain
from speechbrain.processing.features import ISTFT, STFT

from models.L2I import Theta
from models.nmf import nmf_multiplicative_update
from recipes.interpreters.l2i import L2I, activations_from_psi

STFT_ARGS = {"sample_rate": 16000, "n_fft": 1024, "hop_length": 11.6099, "win_length": 23.2199}




class FixedActivations(torch.nn.Module):
    """psi: the same activations whatever the classifier's representations."""

    def __init__(self, H):
        super().__init__()
        self.H = H

    def forward(self, representations):
        return self.H


def l2i_brain(theta_rows, H, **hparams):
    """An L2I Brain with W = I (component k is bin k), psi giving H (B, 3, frames), Theta with
    max pooling and the class weights `theta_rows` (N, 3)."""
    theta = Theta(n_comp=3, T=H.shape[2], num_classes=len(theta_rows), pooling="max")
    with torch.no_grad():
        theta.classifier_weight().copy_(torch.tensor(theta_rows))
    modules = torch.nn.ModuleDict({"psi": FixedActivations(H), "theta": theta})
    brain = bare_brain(L2I, modules, **{"relevance_centered": False, "relevance_th": 0.5, **hparams})
    brain.W = torch.eye(3)
    return brain


# ---------------------------------------------------------------- psi's output -> H
def test_psi_optimized_output_is_transposed_not_reshaped_to_components_by_frames():
    """Guards `squeeze(1).transpose(1, 2)` in activations_from_psi: PsiOptimized's
    (B, 1, T, K) output P becomes H (B, K, T) with H[k, t] = P[t, k]. P[t, k] = 2 t + k
    (T 3, K 2), so H = ((0, 2, 4), (1, 3, 5)); a reshape would give ((0, 1, 2), (3, 4, 5))."""
    P = torch.arange(6.0).reshape(1, 1, 3, 2)
    H = activations_from_psi((P, None), 3)
    assert H.tolist() == [[[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]]


def test_psi_frames_are_resampled_linearly_with_half_pixel_centres():
    """Guards the linear, align_corners=False resampling of H to the input's frames: 2 frames
    (0, 1) to 4 read the source at (i + 0.5) * 2 / 4 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped
    to [0, 1]: H = (0, 0.25, 0.75, 1) (nearest would give (0, 0, 1, 1), align_corners=True
    (0, 1/3, 2/3, 1))."""
    H = activations_from_psi(torch.tensor([[[0.0, 1.0]]]), 4)
    assert H[0, 0].tolist() == pytest.approx([0.0, 0.25, 0.75, 1.0], abs=1e-7)


# ---------------------------------------------------------------- the selection L
def test_relevance_equal_to_the_threshold_is_not_selected():
    """Guards `r > relevance_th` (README: L = {k: r_k > relevance_th}, strict). H = 1 (z = 1
    with max pooling), class 0's weights (1, 0.5, -0.5): r = (1, 0.5, -0.5) exactly. At
    relevance_th 0.5 only component 0 is kept; at 1.0 none (the top component's r is 1), and
    the mask is 0 everywhere."""
    brain = l2i_brain([[1.0, 0.5, -0.5], [0.0, 0.0, 0.0]], torch.ones(1, 3, 4))
    for th, expected in ((0.5, [1.0, 0.0, 0.0]), (1.0, [0.0, 0.0, 0.0])):
        brain.hparams.relevance_th = th
        outputs = brain.interpret(torch.ones(1, 4, 3), None, torch.tensor([0]), sb.Stage.TEST)
        assert outputs["relevance"].tolist() == [[1.0, 0.5, -0.5]]
        assert outputs["selected"].tolist() == [expected], th
        # W = I, H = 1: the mask is 1 / (1 + EPS) on the kept components' bins, 0 elsewhere
        assert torch.allclose(outputs["mask"][0], torch.tensor(expected).expand(4, 3), atol=1e-6)


# ---------------------------------------------------------------- keep_class's ladder
def ladder_brain():
    """Two clips, H = 1, class 0's weights (0.5, -1, 0.25): r = (0.5, -1, 0.25), one
    component exactly at -1; relevance_th 0.6 selects nothing."""
    return l2i_brain([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0]], torch.ones(2, 3, 4), relevance_th=0.6)


def test_ladder_rungs_by_hand_and_the_last_one_keeps_a_component_at_minus_one():
    """Guards the ladder's thresholds and its last rung. th 0.6, 6 steps: 0.6 - j 1.6 / 6 =
    0.6, 0.333, 0.067, -0.2, -0.467, -0.733 keep {}, {0}, {0, 2}, {0, 2}, {0, 2}, {0, 2}; the
    last rung is every component, also component 1 whose r is exactly -1 (a last rung of
    `r > -1` would leave it out), so its mask is 1 everywhere (W H > 0) and X_int = X."""
    brain = ladder_brain()
    outputs = brain.interpret(torch.ones(2, 4, 3), None, torch.tensor([0, 0]), sb.Stage.TEST)
    assert outputs["relevance"][0].tolist() == [0.5, -1.0, 0.25]
    ladder = brain.widened_masks(outputs)
    expected = [[0, 0, 0], [1, 0, 0], [1, 0, 1], [1, 0, 1], [1, 0, 1], [1, 0, 1], [1, 1, 1]]
    assert outputs["ladder_selected"][:, 0].tolist() == expected
    assert torch.allclose(ladder[-1], torch.ones(2, 4, 3), atol=1e-6)


def test_the_components_reported_for_a_clip_no_rung_saves_are_the_interpretations():
    """Guards `step.clamp(min=0)` in widening_chosen: keep_class_mask gives step -1 to a clip
    that no rung keeps in its class, and that clip gets the first candidate (the
    interpretation's own mask), so its selected components (n_selected, component_audio) are
    rung 0's, {} here, not the last rung's (all three). The other clip took rung 5: {0, 2}."""
    brain = ladder_brain()
    outputs = brain.interpret(torch.ones(2, 4, 3), None, torch.tensor([0, 0]), sb.Stage.TEST)
    brain.widened_masks(outputs)
    brain.widening_chosen(outputs, torch.tensor([-1, 5]))
    assert outputs["selected"].tolist() == [[0.0, 0.0, 0.0], [1.0, 0.0, 1.0]]


# ---------------------------------------------------------------- L2I's own metrics
def two_clip_outputs(brain, selected, theta_out):
    """The forward outputs of two hand-made clips for `interpreter_metrics` (H = 1 over 3
    components and 4 frames): clip 0 has X[1, 2] = 3, X[3, 0] = 1 (class 0), clip 1 X[1, 2] =
    0.5, X[3, 0] = 2.5 (class 1); `selected` (2, 3) components, Theta's output `theta_out`."""
    X = torch.zeros(2, 4, 3)
    X[0, 1, 2], X[0, 3, 0] = 3.0, 1.0
    X[1, 1, 2], X[1, 3, 0] = 0.5, 2.5
    scores, _ = brain.classify(X)
    H = torch.ones(2, 3, 4)
    return {
        "X": X,
        "scores": scores,
        "classes": torch.tensor([0, 1]),
        "H": H,
        "WH": brain.reconstruction(H),
        "selected": torch.tensor(selected),
        "theta_out": torch.tensor(theta_out),
    }


def test_l2i_metrics_by_hand():
    """Guards interpreter_metrics: n_selected per clip, nmf_rel_error per clip, FF of the
    components and of random ones, both at the classifier's temperature, as drops.

    W = I, H = 1 (W H = 1 everywhere), classifier_temp 2. Clip 0: X[1, 2] = 3, X[3, 0] = 1
    (logits 6, 2, 1: class 0); clip 1: X[1, 2] = 0.5, X[3, 0] = 2.5 (logits 1, 5, 1: class 1).
    Selected {0, 1} and {1, 2}: n_selected (2, 2), and the random components are the only
    others, {2} and {0}. nmf_rel_error = ||X - 1|| / ||X||: clip 0 sqrt((4 + 0 + 10) / 10),
    clip 1 sqrt((0.25 + 2.25 + 10) / 6.5). FF = (logit_c(X) - logit_c(removed)) / 2: with the
    given removed scores (0, 0, 0) and (0, 1, 0), (6 - 0) / 2 = 3 and (5 - 1) / 2 = 2;
    removing component 2 (bin 2) zeroes clip 0's X[1, 2], logit 0 -> 0: 3; removing component
    0 zeroes clip 1's X[3, 0], logit 1 -> 0: 2.5. Theta's top-1 / top-3: (1, 0) / (1, 1)."""
    brain = l2i_brain([[0.0] * 3] * 3, torch.ones(2, 3, 4), classifier_temp=2.0)
    outputs = two_clip_outputs(brain, [[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]], [[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    assert outputs["scores"].tolist() == [[6.0, 2.0, 1.0], [1.0, 5.0, 1.0]]
    removed = {"removed": torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])}
    values = brain.interpreter_metrics(outputs, removed)
    assert values["n_selected"].tolist() == [2.0, 2.0]
    assert values["nmf_rel_error"].tolist() == pytest.approx([math.sqrt(1.4), math.sqrt(12.5 / 6.5)], rel=1e-6)
    assert values["ff_components"].tolist() == pytest.approx([3.0, 2.0], abs=1e-6)
    assert values["ff_random"].tolist() == pytest.approx([3.0, 2.5], abs=1e-6)
    assert values["theta_top1"].tolist() == [1.0, 0.0]
    assert values["theta_top3"].tolist() == [1.0, 1.0]


def test_ff_random_draws_from_the_given_generator_not_the_global_one():
    """Found by a torchrun probe: eval's L2I 'FF_x random' changed with the number of processes,
    the random components drawn from torch's global generator, which every process seeds alike,
    so a process's first batch drew the same whatever clips it held. With the batch's generator
    (eval: from its position alone) the draw is the generator's, whatever the global state; the
    clip of the by-hand test above, component 1 selected: the random one is 0 or 2, and the two
    give other drops (shown by drawing without a generator under several global seeds)."""
    brain = l2i_brain([[0.0] * 3] * 3, torch.ones(1, 3, 4), classifier_temp=2.0)
    X = torch.zeros(1, 4, 3)
    X[0, 1, 2], X[0, 3, 0] = 3.0, 1.0
    scores, _ = brain.classify(X)
    H = torch.ones(1, 3, 4)
    outputs = {"X": X, "scores": scores, "classes": torch.tensor([0]), "H": H, "WH": brain.reconstruction(H),
               "selected": torch.tensor([[0.0, 1.0, 0.0]]), "theta_out": torch.tensor([[0.5, 0.3, 0.2]])}  # fmt: skip
    removed = {"removed": torch.zeros(1, 3)}
    drawn = set()
    for seed in range(8):
        torch.manual_seed(seed)
        drawn.add(round(brain.interpreter_metrics(outputs, removed)["ff_random"].item(), 5))
    assert len(drawn) == 2  # both random components occur, and they drop the logit differently
    given = set()
    for seed in range(8):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(5)
        given.add(round(brain.interpreter_metrics(outputs, removed, generator)["ff_random"].item(), 5))
    assert len(given) == 1 and given <= drawn


def test_ff_random_removes_the_random_components_as_the_interpretation_is_removed():
    """Guards the finish of the random mask in `interpreter_metrics`: with `mask_above_floor`,
    the interpretation's components are removed above the clip's floor only, so FF_x random
    removes as many random components the same way. W = I, H = 1; X (4 frames, 3 bins): bin 0
    at 2.5 in every frame (its median: all floor, gate 0), X[1, 2] = 0.5. The classifier
    reads X[3, 0] for class 1 (logit 5 = 2 x 2.5). Selected {1, 2}: the random component is
    {0}, bin 0, whose gated mask is 0: nothing is removed, logit 5 -> 5, FF_x random 0. The
    whole mask of component 0 would zero X[3, 0]: 5 -> 0 (the figure before the fix)."""
    brain = l2i_brain([[0.0] * 3] * 3, torch.ones(1, 3, 4), mask_above_floor=True, mask_domain="log")
    X = torch.zeros(1, 4, 3)
    X[0, :, 0] = 2.5
    X[0, 1, 2] = 0.5
    scores, _ = brain.classify(X)
    assert scores[0, 1].item() == 5.0 and scores.argmax().item() == 1
    H = torch.ones(1, 3, 4)
    outputs = {
        "X": X,
        "scores": scores,
        "classes": torch.tensor([1]),
        "H": H,
        "WH": brain.reconstruction(H),
        "selected": torch.tensor([[0.0, 1.0, 1.0]]),
        "theta_out": torch.tensor([[0.2, 0.5, 0.3]]),
        "finish": brain.finished_mask(X, sb.Stage.TEST),  # as forward_waveforms gives it
    }
    values = brain.interpreter_metrics(outputs, {"removed": scores})
    assert values["ff_random"].tolist() == pytest.approx([0.0], abs=1e-6)
    outputs["finish"] = None  # the reference: no gate, the component's whole mask
    values = brain.interpreter_metrics(outputs, {"removed": scores})
    assert values["ff_random"].tolist() == pytest.approx([5.0], abs=1e-6)


def test_the_fidelity_warmup_lasts_exactly_fidelity_warmup_epochs():
    """Guards `current <= fidelity_warmup_epochs`: SpeechBrain's epoch counter reads n
    during epoch n (from 1), so with 2 warm-up epochs epochs 1 and 2 are warm-up and 3 is not;
    with 0, none is."""
    brain = l2i_brain([[0.0] * 3], torch.ones(1, 3, 4))
    for warmup, epoch, expected in ((2, 1, True), (2, 2, True), (2, 3, False), (0, 1, False)):
        brain.hparams.fidelity_warmup_epochs = warmup
        brain.hparams.epoch_counter = types.SimpleNamespace(current=epoch)
        assert brain.in_fidelity_warmup() is expected, (warmup, epoch)


def test_a_silent_clip_has_no_nmf_error_and_the_others_keep_theirs():
    """Guards the NaN of nmf_rel_error on a silent clip (||X|| = 0: the relative error is
    undefined, not ||W H|| / eps): clip 0 is silent, clip 1 has X[1, 2] = 3 and W H = 1
    everywhere, so its error is sqrt((3 - 1)^2 + 11) / 3 = sqrt(15) / 3."""
    brain = l2i_brain([[0.0] * 3] * 3, torch.ones(2, 3, 4))
    X = torch.zeros(2, 4, 3)
    X[1, 1, 2] = 3.0
    scores, _ = brain.classify(X)
    H = torch.ones(2, 3, 4)
    outputs = {
        "X": X,
        "scores": scores,
        "classes": scores.argmax(dim=1),
        "H": H,
        "WH": brain.reconstruction(H),
        "selected": torch.zeros(2, 3),
        "theta_out": torch.full((2, 3), 1 / 3),
    }
    values = brain.interpreter_metrics(outputs, {"removed": scores})
    error = values["nmf_rel_error"].tolist()
    assert math.isnan(error[0])
    assert error[1] == pytest.approx(math.sqrt(15) / 3, rel=1e-6)


def test_the_validation_stage_also_selects_components_and_masks():
    """Guards `stage != TRAIN` in interpret: validation scores the mask like the test, so it
    gets relevance, selection and mask too (r = (1, 0.5, -0.5), th 0.4: {0, 1}); training
    does not need them."""
    brain = l2i_brain([[1.0, 0.5, -0.5], [0.0, 0.0, 0.0]], torch.ones(1, 3, 4), relevance_th=0.4)
    valid = brain.interpret(torch.ones(1, 4, 3), None, torch.tensor([0]), sb.Stage.VALID)
    assert valid["selected"].tolist() == [[1.0, 1.0, 0.0]]
    assert torch.allclose(valid["mask"][0], torch.tensor([1.0, 1.0, 0.0]).expand(4, 3), atol=1e-6)
    brain.hparams.epoch_counter = types.SimpleNamespace(current=1)
    brain.hparams.fidelity_warmup_epochs = 0
    assert "mask" not in brain.interpret(torch.ones(1, 4, 3), None, torch.tensor([0]), sb.Stage.TRAIN)


def test_the_oracle_mask_ranks_by_the_input_not_by_the_reconstruction():
    """Guards `outputs["X"]` in oracle_mask: the shares are of X's energy, not of W H's. The
    hand example of test_l2i_math (W = I, H = 1; X bin 0: 1 in the region, 9 outside; bin 1:
    0.9, all in it) picks component 1 alone, so the oracle mask is 1 on bin 1 and 0 on bin
    0. Ranked on W H = 1 instead, both components have share 1 / 2 and F1 prefers both
    (2 * 2 / (4 + 2) = 0.67 > 2 * 1 / (2 + 2) = 0.5): a mask of ones."""
    brain = l2i_brain([[0.0] * 3], torch.ones(1, 3, 4))
    brain.W = torch.eye(2)
    H = torch.ones(1, 2, 2)
    outputs = {"H": H, "WH": brain.reconstruction(H), "X": torch.tensor([[[1.0, 0.9], [9.0, 0.0]]])}
    region = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    mask = brain.oracle_mask(outputs, region)
    assert torch.allclose(mask, torch.tensor([[[0.0, 1.0], [0.0, 1.0]]]), atol=1e-6)


def test_load_frozen_takes_a_dictionary_of_n_fft_over_2_plus_1_bins(tmp_path):
    """Guards `n_fft // 2 + 1` in load_frozen: an STFT of n_fft 16 has 9 bins, so a (9, 3)
    dictionary loads (W = relu of the saved one) and a (8, 3) one is refused."""
    from models.L2I import NMFDecoderAudio

    brain = l2i_brain([[0.0] * 3], torch.ones(1, 3, 4), n_fft=16, K=3)
    for n_freq in (9, 8):
        saved = NMFDecoderAudio(n_comp=3, n_freq=n_freq)
        with torch.no_grad():
            saved.W.sub_(0.05)  # some negative entries, clipped by return_W
        path = tmp_path / f"nmf_{n_freq}.ckpt"
        torch.save(saved.state_dict(), path)
        brain.hparams.nmf_decoder = NMFDecoderAudio(n_comp=3, n_freq=n_freq)
        brain.hparams.nmf_decoder_path = str(path)
        if n_freq == 9:
            brain.load_frozen()
            assert torch.equal(brain.W, saved.W.detach().clamp(min=0))
        else:
            with pytest.raises(ValueError, match="9 bins"):
                brain.load_frozen()


class MeanLevel(torch.nn.Module):
    """The embedding model: X (B, frames, F) -> its mean level (B, 1)."""

    def forward(self, X):
        return X.mean(dim=(1, 2)).unsqueeze(1)


def test_component_audio_reports_each_chosen_components_own_relevance_and_audio():
    """Guards `outputs["relevance"][0, chosen]` and `outputs["H"][0, chosen]` in
    component_audio: the listed relevance and audio are those of the listed component. psi
    gives constant activations z = (1, 2, 0.5) (constant over time, whatever the
    resampling), class 0's weights (-1, 1, 3): contributions (-1, 2, 1.5), r = (-0.5, 1,
    0.75); relevance_th 0.3 keeps components 1 and 2, listed with r 1 and 0.75 (not r_0,
    r_1). In the magnitude domain the audio is linear in the mask (ISTFT of m |S| with the
    input phase), so the two components' audio adds up to the interpretation's (whose mask
    is their summed share); with the activations of components 0 and 1 it would not."""
    H = torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1).expand(1, 3, 5).clone()
    brain = l2i_brain(
        [[-1.0, 1.0, 3.0], [0.0, 0.0, 0.0]],
        H,
        relevance_th=0.3,
        compute_stft=STFT(**STFT_ARGS),
        compute_istft=ISTFT(**STFT_ARGS),
        embedding_model=MeanLevel(),
        mask_domain="magnitude",
    )
    head = torch.nn.Linear(1, 2)
    with torch.no_grad():  # always class 0
        head.weight.zero_()
        head.bias.copy_(torch.tensor([1.0, 0.0]))
    brain.hparams.classifier = head
    brain.W = torch.rand(513, 3, generator=torch.Generator().manual_seed(0)) + 0.1
    wav = 0.1 * torch.randn(4000, generator=torch.Generator().manual_seed(1))
    components, outputs = brain.component_audio(wav)
    assert outputs["classes"].tolist() == [0]
    assert [k for k, _, _ in components] == [1, 2]
    assert [r for _, r, _ in components] == pytest.approx([1.0, 0.75], abs=1e-6)
    assert all(audio.shape == (4000,) for _, _, audio in components)
    total = components[0][2] + components[1][2]
    assert total.abs().max() > 1e-3
    assert torch.allclose(total, outputs["audio"][0], atol=1e-5)


# ---------------------------------------------------------------- Theta's gated attention
def test_gated_attention_pooling_by_hand():
    """Guards the gated attention of Theta (Ilse et al.): a_t = softmax_t(w g_t + b_w) with
    g_t = tanh(V h_t + b_V) * sigmoid(U h_t + b_U), pooled z = H a. attention_dim 1,
    V = (1, -1), b_V = 0.5, U = (2, 1), b_U = -1, w = 3, b_w = 0.1, computed below on Python
    floats with math.tanh and 1 / (1 + e^-x)."""
    theta = Theta(n_comp=2, T=3, num_classes=2, pooling="attention", attention_dim=1)
    with torch.no_grad():
        theta.attention_V.weight.copy_(torch.tensor([[1.0, -1.0]]))
        theta.attention_V.bias.fill_(0.5)
        theta.attention_U.weight.copy_(torch.tensor([[2.0, 1.0]]))
        theta.attention_U.bias.fill_(-1.0)
        theta.attention_w.weight.fill_(3.0)
        theta.attention_w.bias.fill_(0.1)
    rows = [[0.2, 1.0, 0.5], [0.4, 0.1, 0.9]]  # H (K 2, T 3)
    scores = []
    for h0, h1 in zip(*rows):
        gate = math.tanh(h0 - h1 + 0.5) / (1.0 + math.exp(-(2 * h0 + h1 - 1.0)))
        scores.append(3.0 * gate + 0.1)
    exps = [math.exp(s) for s in scores]
    a = [e / sum(exps) for e in exps]
    z = [sum(h * w for h, w in zip(row, a)) for row in rows]
    H = torch.tensor([rows])
    assert theta.attention_weights(H)[0].tolist() == pytest.approx(a, abs=1e-6)
    assert theta.pool(H)[0].tolist() == pytest.approx(z, abs=1e-6)


# ---------------------------------------------------------------- NMF
def test_mu_atoms_have_unit_euclidean_norm():
    """Guards the rescaling by W.norm(dim=0) (the docstring: unit-norm columns): every atom
    has L2 norm 1 (an L1 rescaling would give sum 1 instead); W H is unchanged by it, so the
    returned error is that of the returned W, H."""
    g = torch.Generator().manual_seed(0)
    X = torch.rand(8, 12, generator=g, dtype=torch.float64)
    W, H, errors = nmf_multiplicative_update(X, K=3, n_iter=5, generator=g)
    assert W.norm(dim=0).tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-9)
    residual = ((X - W @ H).norm() / X.norm()).item()
    assert errors[-1] == pytest.approx(residual, rel=1e-9)


def test_mu_warm_start_with_a_zero_entry_can_still_fit():
    """Guards the warm start's clamp_min(EPS): a multiplicative update keeps an exact zero at
    zero, so a warm W = (1, 0) for X = ones(2, 2) (rank 1, fitted exactly by W = (1, 1) / sqrt 2)
    could never fit the second bin (relative error >= sqrt(2) / 2 = 0.707); clamped, it fits."""
    X = torch.ones(2, 2, dtype=torch.float64)
    W0 = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    W, _, errors = nmf_multiplicative_update(X, K=1, n_iter=50, W=W0, generator=torch.Generator().manual_seed(0))
    assert errors[-1] < 1e-6
    assert W.flatten().tolist() == pytest.approx([2**-0.5, 2**-0.5], abs=1e-6)
    assert W0.flatten().tolist() == [1.0, 0.0]  # the caller's dictionary is not changed


def test_fit_activations_starts_at_the_datas_scale_and_checks_the_bins():
    """Guards the initial scale mean(X) / mean(W) / K of fit_activations: with W = 1 (F 5,
    K 4) and X = 2, each H entry starts in [0.1, 1] * 2 / 4, so each column of W H (a sum
    of 4 entries) starts in [0.2, 2]: at X's level, whatever K. And a dictionary with
    another number of bins than X is refused by name."""
    from models.nmf import fit_activations

    W, X = torch.ones(5, 4), torch.full((5, 6), 2.0)
    H = fit_activations(X, W, n_iter=0, generator=torch.Generator().manual_seed(0))
    WH = W @ H
    assert WH.min() >= 0.2 - 1e-6 and WH.max() <= 2.0 + 1e-6
    with pytest.raises(ValueError, match="W has 4 rows but X has 5"):
        fit_activations(X, torch.ones(4, 4))
