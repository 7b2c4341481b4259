"""Mutation-audit tests of the PIQ Brain (recipes/interpreters/piq.py) and psi's no-VQ path.

Each Brain is made without its set-up (`object.__new__`) and given the hparams it reads and
a real `models.PIQ.VectorQuantizedPSI_Audio` (or, where only the Brain's arithmetic is under
test, a decoder that returns fixed logits). Expected values are worked out by hand or by an
independent formula on Python floats, never by the code under test.
"""

import contextlib
import math
import types

import pytest
import speechbrain as sb
import torch

from models.PIQ import VectorQuantizedPSI_Audio
from recipes.interpreters.piq import PIQ


def piq_brain(**hparams):
    """A PIQ Brain without its set-up: the hparams given, a convolutional (not grid) encoder."""
    brain = object.__new__(PIQ)
    defaults = {
        "embedding_model": torch.nn.Identity(),
        "mask_th": 0.35,
        "mask_target": "peak",
        "activate_class_partitioning": True,
        "shared_keys": 0,
        "out_n_neurons": 4,
    }
    brain.hparams = types.SimpleNamespace(**{**defaults, **hparams})
    brain.modules = torch.nn.ModuleDict()
    brain.device = "cpu"
    brain.evaluation_ctx = contextlib.nullcontext()
    return brain


def softplus(value):
    """log(1 + e^v) on a Python float."""
    return math.log1p(math.exp(value))


def bce_with_logits(logit, target):
    """-(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))) = t softplus(-z) + (1 - t) softplus(z)."""
    return target * softplus(-logit) + (1 - target) * softplus(logit)


class FixedLogits(torch.nn.Module):
    """psi's place in the Brain: the same logits (B, 1, frames, F) whatever it reads, plus the
    (h, z_q, codes) PIQ's psi gives with `return_indices`."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits).view(1, 1, len(logits), len(logits[0]))

    def forward(self, representations, classes=None, return_indices=False):
        logits = self.logits.expand(representations.shape[0], -1, -1, -1)
        return logits, None, None, torch.zeros(1, dtype=torch.long)


def line_codebook_psi(K=8, numclasses=4):
    """A real psi (no adapter, no halving) whose code k is the vector (k, 0): the nearest code
    of a representation (x, 0) among a class's codes is then known by hand. With K = 8 and 4
    classes the partition (first K codes split in contiguous blocks, class 0 first) gives
    class c the codes 2c and 2c + 1."""
    psi = VectorQuantizedPSI_Audio(
        dim=2,
        K=K,
        numclasses=numclasses,
        shared_keys=0,
        use_adapter=False,
        adapter_reduce_dim=False,
    ).eval()
    with torch.no_grad():
        psi.codebook.embedding.weight.copy_(
            torch.stack([torch.arange(K).float(), torch.zeros(K)], dim=1)
        )
    return psi


def grid_of(values):
    """Representations (1, 2, 2, 2) whose four positions are the vectors (v, 0), row-major."""
    hs = torch.zeros(1, 2, 2, 2)
    hs[0, 0] = torch.tensor(values, dtype=torch.float32).view(2, 2)
    return hs


# ------------------------------------------------------------------ the loss terms
def test_mask_output_loss_is_rec_coef_times_bce_against_the_chosen_mask_target():
    """Guards: the BCE target follows `mask_target` (above_floor here), and rec_loss_coef
    scales it. X's 3 frames: bin 0 steady at 3, 3, 3.2; bin 1 at 0.1, 0.1, 1.0. The per-bin
    median over frames is (3, 0.1), so X above it is [[0, 0], [0, 0], [0.2, 0.9]]; 0.35 of
    its maximum 0.9 is 0.315: the target is 1 at (frame 2, bin 1) only (the "peak" rule would
    take all of bin 0 instead). BCE per element t softplus(-z) + (1 - t) softplus(z), its mean
    over the 6 elements, times rec_loss_coef 3."""
    brain = piq_brain(
        use_vq=False, use_mask_output=True, mask_target="above_floor", rec_loss_coef=3.0
    )
    X = torch.tensor([[[3.0, 0.1], [3.0, 0.1], [3.2, 1.0]]])
    logits = [[0.5, -1.0], [2.0, 0.0], [-0.5, 1.5]]
    target = [[0, 0], [0, 0], [0, 1]]
    expected = (
        3.0
        * sum(bce_with_logits(logits[i][j], target[i][j]) for i in range(3) for j in range(2))
        / 6
    )
    terms = brain.interpretation_loss(
        {"X": X, "decoded": torch.tensor([logits])}, None, sb.Stage.TRAIN
    )
    assert set(terms) == {"loss_rec"}
    assert terms["loss_rec"].item() == pytest.approx(expected, abs=1e-6)


def test_spectrogram_loss_is_rec_coef_times_mse_over_the_frames_both_cover_from_the_start():
    """Guards: without the mask output the reconstruction term is rec_loss_coef x MSE(decoded,
    X) (not L1, not unscaled), on the first frames both cover (X has 3, the decoder 2: X's
    frames 0 and 1, not its last two). decoded = 0, X's first frames (1, 2), (3, 4): MSE =
    (1 + 4 + 9 + 16) / 4 = 7.5, times 2 = 15. (Frame 2 holds 100s: aligned at the end it
    would be (9 + 16 + 10^4 + 10^4) / 4; L1 would give 2 x 2.5 = 5.)"""
    brain = piq_brain(use_vq=False, use_mask_output=False, rec_loss_coef=2.0)
    X = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    terms = brain.interpretation_loss(
        {"X": X, "decoded": torch.zeros(1, 2, 2)}, None, sb.Stage.TRAIN
    )
    assert terms["loss_rec"].item() == pytest.approx(15.0)


# ------------------------------------------------------------------ interpret
def test_spectrogram_mode_decodes_softplus_and_masks_psi_s_own_peak():
    """Guards: with use_mask_output False, psi's output is softplus(logits) (not relu) and the
    mask is where that spectrogram exceeds the yaml's mask_th x its own maximum (not X's).
    Logits [[-2, 0, 1], [3, -1, 0.5]]: softplus = log1p(e^v) = [[0.127, 0.693, 1.313], [3.049,
    0.313, 0.974]]. mask_th 0.4: 0.4 x 3.049 = 1.219, mask [[0, 0, 1], [1, 0, 0]] (relu would
    give [[0, 0, 0], [1, 0, 0]] with its threshold 1.2; X's own peak [[1, 0, 0], [0, 0, 0]]).
    mask_th 0.45: 1.372, mask [[0, 0, 0], [1, 0, 0]]."""
    logits = [[-2.0, 0.0, 1.0], [3.0, -1.0, 0.5]]
    brain = piq_brain(use_vq=True, use_mask_output=False, mask_th=0.4, K=1)
    brain.codes_used = torch.zeros(1, dtype=torch.bool)
    brain.modules["psi"] = FixedLogits(logits)
    X = torch.tensor([[[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    outputs = brain.interpret(X, torch.zeros(1, 1, 1, 1), torch.tensor([0]), sb.Stage.TEST)
    expected = [softplus(v) for row in logits for v in row]
    assert outputs["decoded"][0].flatten().tolist() == pytest.approx(expected, abs=1e-5)
    assert outputs["mask"].tolist() == [[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]]
    brain.hparams.mask_th = 0.45
    outputs = brain.interpret(X, torch.zeros(1, 1, 1, 1), torch.tensor([0]), sb.Stage.TEST)
    assert outputs["mask"].tolist() == [[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]]


def test_mask_target_peak_is_each_clip_s_own():
    """Guards: the target's threshold is mask_th times each clip's own maximum, not the
    batch's. Clip 0 (0.5, 1.0): 0.35 x 1 = 0.35, both bins in; clip 1 (5, 10): 3.5, both in
    (a batch-wide peak 10 would leave clip 0 empty). With above_floor, a one-frame clip is its
    own per-bin median: nothing rises above it, the target is empty."""
    from recipes.interpreters.piq import target_mask

    X = torch.tensor([[[0.5, 1.0]], [[5.0, 10.0]]])
    assert target_mask(X, 0.35).tolist() == [[[1.0, 1.0]], [[1.0, 1.0]]]
    assert target_mask(X, 0.35, "above_floor").tolist() == [[[0.0, 0.0]], [[0.0, 0.0]]]


class SpansInput(torch.nn.Identity):
    """An embedding model whose grid spans the whole clip, without a `grid_to_input` of its
    own: the Brain then resizes the decoder's map bilinearly onto X."""

    spans_input = True


def test_a_grid_decoder_s_map_is_resized_onto_the_clip_s_frames_and_bins():
    """Guards: on a backbone whose grid spans the clip, the decoded map (2 x 2 here) is
    resized to X's (frames, bins) = (2, 4), in that order. Logits [[1, 1], [-1, -1]]: the
    time axis keeps its size, each row is constant along the bins, so bilinear resizing gives
    rows of 1 and -1 over 4 bins; the mask is sigmoid: 1 / (1 + e^-1) = 0.731, 0.269."""
    brain = piq_brain(use_vq=True, use_mask_output=True, K=1, embedding_model=SpansInput())
    brain.codes_used = torch.zeros(1, dtype=torch.bool)
    brain.modules["psi"] = FixedLogits([[1.0, 1.0], [-1.0, -1.0]])
    mask = brain.interpret(
        torch.ones(1, 2, 4), torch.zeros(1, 1, 1, 1), torch.tensor([0]), sb.Stage.TEST
    )["mask"]
    high, low = 1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(1.0))
    assert mask.shape == (1, 2, 4)
    assert mask[0].flatten().tolist() == pytest.approx([high] * 4 + [low] * 4, abs=1e-6)


# ------------------------------------------------------------------ the predicted class and codebook usage
def test_decode_quantizes_with_the_given_class_and_codebook_usage_counts_the_stage():
    """Guards: decode hands psi the classifier's class (the codes used lie in that class's
    block), codes_used accumulates over a stage's batches (a code used once counts), is reset
    at each stage start, and codebook_usage is the used share of the K codes; and a batch of
    one keeps its batch axis. Code k is (k, 0) and class c owns codes 2c, 2c + 1 (K = 8, 4
    classes). Stage 1: a class-0 clip all at (0, 0) -> code 0 (x4); a class-3 clip at 7, 6, 6,
    6 -> code 7 (once), code 6 (x3): codes {0, 6, 7}, usage 3/8. Stage 2: a class-1 clip all at
    (2, 0) -> code 2 only: usage 1/8. psi's decoder maps 2 x 2 to 33 x 33."""
    brain = piq_brain(use_vq=True, use_mask_output=True, K=8)
    brain.modules["psi"] = line_codebook_psi()
    brain.load_frozen()
    brain.on_stage_start(sb.Stage.VALID)
    decoded, h, z_q = brain.decode(grid_of([0, 0, 0, 0]), torch.tensor([0]))
    assert decoded.shape == (1, 33, 33)
    assert h.shape == z_q.shape == (1, 2, 2, 2)
    brain.decode(grid_of([7, 6, 6, 6]), torch.tensor([3]))
    assert brain.codes_used.tolist() == [True, False, False, False, False, False, True, True]
    assert brain.stage_extra_stats() == {"codebook_usage": pytest.approx(3 / 8)}
    brain.on_stage_start(sb.Stage.TEST)
    brain.decode(grid_of([2, 2, 2, 2]), torch.tensor([1]))
    assert brain.codes_used.tolist() == [False, False, True, False, False, False, False, False]
    assert brain.stage_extra_stats() == {"codebook_usage": pytest.approx(1 / 8)}


def test_the_quantized_codes_are_the_predicted_class_s_nearest():
    """Guards: the class given to interpret decides the codes (two clips of one batch with
    different classes). Both clips sit at x = 3.4 at every position: class 1 (codes 2, 3)
    takes code 3, class 3 (codes 6, 7) code 6 (|3.4 - 6| < |3.4 - 7|), so z_q's first
    coordinate is 3 for clip 0 and 6 for clip 1."""
    brain = piq_brain(use_vq=True, use_mask_output=True, K=8)
    brain.modules["psi"] = line_codebook_psi()
    brain.on_stage_start(sb.Stage.VALID)
    hs = torch.cat([grid_of([3.4] * 4), grid_of([3.4] * 4)])
    _, _, z_q = brain.decode(hs, torch.tensor([1, 3]))
    assert z_q[:, 0].flatten(1).tolist() == [[3.0] * 4, [6.0] * 4]
    assert z_q[:, 1].abs().sum().item() == 0.0


# ------------------------------------------------------------------ the no-VQ ablation
def lossless_psi():
    """A real psi (adapter and halving on, no partition) whose dictionary holds exactly the
    four vectors the adapter gives for `hs` (1, 4, 4, 4): quantization is then the identity,
    so psi's forward must equal the no-VQ path."""
    torch.manual_seed(0)
    psi = VectorQuantizedPSI_Audio(
        dim=4,
        K=4,
        numclasses=1,
        activate_class_partitioning=False,
        use_adapter=True,
        adapter_reduce_dim=True,
    ).eval()
    hs = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        hcat = psi(hs, None)[1]  # (1, 4, 2, 2)
        psi.codebook.embedding.weight.copy_(hcat.permute(0, 2, 3, 1).reshape(4, 4))
        x_tilde = psi(hs, None)[0]
    return psi, hs, x_tilde


def test_forward_without_vq_is_forward_with_a_lossless_codebook():
    """Guards: `forward_without_vq` is forward's decoder path without the codebook (adapter,
    down, up, decoder: none left out). Expected: psi's forward when every code is exactly one
    of the quantized vectors (the quantizer is then the identity)."""
    psi, hs, x_tilde = lossless_psi()
    with torch.no_grad():
        torch.testing.assert_close(psi.forward_without_vq(hs), x_tilde, atol=1e-5, rtol=1e-5)


def test_use_vq_false_bypasses_the_codebook_in_the_brain():
    """Guards: with use_vq False the Brain decodes without the codebook (no h, no z_q, no code
    counted). Expected decoded: psi's forward with a lossless codebook (previous test), the
    channel axis dropped."""
    psi, hs, x_tilde = lossless_psi()
    brain = piq_brain(use_vq=False, use_mask_output=True, K=4)
    brain.modules["psi"] = psi
    brain.on_stage_start(sb.Stage.VALID)
    with torch.no_grad():
        decoded, h, z_q = brain.decode(hs, torch.tensor([0]))
    assert h is None and z_q is None
    assert not brain.codes_used.any()
    torch.testing.assert_close(decoded, x_tilde.squeeze(1), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ set-up checks
def test_a_codebook_of_exactly_one_code_per_class_is_accepted():
    """Guards: load_frozen refuses only codebooks with fewer than out_n_neurons + shared_keys
    codes: K = 4 with 4 classes and no shared keys gives every class one code (accepted);
    K = 5 with 2 shared keys leaves 3 codes for 4 classes (refused)."""
    piq_brain(use_vq=True, K=4, shared_keys=0).load_frozen()
    with pytest.raises(ValueError, match="at least 6"):
        piq_brain(use_vq=True, K=5, shared_keys=2).load_frozen()


def test_the_floored_encoder_folds_its_batchnorms_for_the_curves():
    """Guards `torch.fx.wrap("above_background_floor")` in models/PIQ.py: with the input floor
    the Conv2d encoder must stay traceable, so `fused_for_inference` folds its 4 BatchNorms (and
    the resblock's) into the convolutions instead of returning the module unfolded. The folded
    copy gives the same embeddings (float rounding) as the encoder itself."""
    from models.PIQ import Conv2dEncoder_v2
    from recipes.core.brains import fused_for_inference

    torch.manual_seed(0)
    encoder = Conv2dEncoder_v2(dim=4, subtract_floor=True).eval()
    fused = fused_for_inference(encoder)
    assert fused is not encoder
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    X = 3 * torch.rand(2, 33, 65)
    with torch.no_grad():
        assert torch.allclose(fused(X), encoder(X), atol=1e-5)
