"""Mutation audit of recipes/interpreters/lmac.py (the L-MAC Brain) and models/LMAC.py.

68 one-line mutants (M1-M68, listed in the audit's commit message); 58 are caught by the earlier
tests (test_lmac_math.py, test_lmac_checkpoints_audit.py, test_lmac_decoders_audit.py,
test_mutation_audit_interpreters.py, test_mutation_audit_models.py, test_mutation_audit_export.py,
test_interpreter_brain_known_answers.py, the two modules' doctests and
tests/integration/test_train_lmac.py). The tests below kill the other 10:

- M2: `out_loss` took an unknown kind for "not_class" instead of refusing it;
- M7: `mask_l1` took mean M for mean |M|;
- M13: `mask_share` dropped the clips' weights (fine-tuning with `l1_weighting: input`);
- M25 / M26: `load_frozen` let a negative g_w through / refused a weight of 0;
- M32: crosscor_th 1 (the top of a cosine's range) refused;
- M35: the clean sources' clip length truncated, not rounded (2.01 s at 16 kHz: 32159);
- M40: psi's "must match the size" error not turned into the clip-length advice;
- M63: `weights_init` dropped (PyTorch's own init draws nonzero biases);
- M68: `Conv2dMaskDecoder`'s default width not Conv2dEncoder_v2's 256.

None is judged equivalent. Expected values are worked out by hand in the docstrings, never by
the code under test. The Brains are built without their set-up (`bare_brain`).
"""

import pytest
import speechbrain as sb
import torch
from conftest import bare_brain

from models.LMAC import Conv2dMaskDecoder
from recipes.interpreters import lmac as lmac_module
from recipes.interpreters.lmac import LMAC, mask_l1, mask_share, out_loss

# ---------------------------------------------------------------- the loss helpers


def test_out_loss_refuses_an_unknown_kind():
    """M2: only "neg_ce" and "not_class" exist; "bogus" is an error, not "not_class"."""
    with pytest.raises(ValueError, match="out_loss 'bogus': choose one of"):
        out_loss(torch.zeros(1, 2), torch.tensor([0]), "bogus")


def test_mask_l1_takes_the_absolute_value():
    """M7: mean |M| of (-1, 1) is 1 (the plain mean is 0)."""
    assert mask_l1(torch.tensor([[[-1.0, 1.0]]])).item() == pytest.approx(1.0)


def test_mask_share_weighs_each_clip():
    """M13: clip 0 keeps 9 / 10 of its X, clip 1 1 / 2 of its own; weights (0, 1) (fine-tuning:
    clip 0 guided) -> (0 * 0.9 + 1 * 0.5) / 2 = 0.25 (unweighted: 0.7)."""
    X = torch.tensor([[[9.0, 1.0]], [[1.0, 1.0]]])
    mask = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])
    assert mask_share(mask, X, torch.tensor([0.0, 1.0])).item() == pytest.approx(0.25)


# ---------------------------------------------------------------- load_frozen's checks
SETTINGS = {"l_in_w": 1.0, "l_out_w": 1.0, "reg_w_l1": 1.0, "g_w": 1.0, "out_loss": "neg_ce", "finetuning": False}


def checked(**settings):
    """A training L-MAC (a checkpointer stand-in) after load_frozen, on SETTINGS and `settings`;
    load_interpreter records the path it is given."""
    brain = bare_brain(LMAC, **{**SETTINGS, **settings})
    brain.checkpointer = object()
    brain.loaded = []
    brain.load_interpreter = brain.loaded.append
    brain.load_frozen()
    return brain


FINETUNING = {"finetuning": True, "finetuning_reference": "clip", "add_wham_noise": True,
              "finetune_from": "trained/psi_model.ckpt", "crosscor_th": 0.6, "bin_th": 0.35}


@pytest.mark.parametrize("key", ["l_in_w", "l_out_w", "reg_w_l1", "g_w"])
def test_every_loss_weight_may_be_zero_but_not_negative(key):
    """M25 / M26: a weight of 0 switches its term off; -1 is refused, g_w included."""
    assert checked(**{key: 0.0}).finetuning is False
    with pytest.raises(ValueError, match=f"{key} = -1.0: the loss weights are >= 0"):
        checked(**{key: -1.0})


@pytest.mark.parametrize("settings", [{"bin_th": 0.0}, {"bin_th": 1.0}, {"crosscor_th": 1.0}, {"crosscor_th": -1.0}])
def test_finetuning_thresholds_may_sit_on_their_bounds_and_start_from_the_given_psi(settings):
    """M32 (M31 and M39 are caught elsewhere too): bin_th in [0, 1], crosscor_th in [-1, 1], both bounds included; the
    clip reference with WHAM! noise passes, and psi starts from `finetune_from`."""
    brain = checked(**{**FINETUNING, **settings})
    assert brain.finetuning is True and brain.ground_truth is None
    assert brain.loaded == ["trained/psi_model.ckpt"]


class StandInGroundTruth:
    """GroundTruth: available in the folder "synthetic" only; records what it is built with."""

    def __init__(self, data_folder, sample_rate, n_samples):
        self.built = (data_folder, sample_rate, n_samples)

    @staticmethod
    def available(data_folder):
        return data_folder == "synthetic"


def test_the_sources_reference_reads_the_ground_truth_of_whole_clips(monkeypatch):
    """M35 (M34 and M36 are caught by test_train_lmac.py too): sources in a folder with ground truth builds GroundTruth over clips of
    2.01 s x 16000 Hz = 32160 samples (16000 * 2.01 is 32159.999... in floats: rounded, not
    truncated) and keeps it; a folder without is refused."""
    monkeypatch.setattr(lmac_module, "GroundTruth", StandInGroundTruth)
    sources = {**FINETUNING, "finetuning_reference": "sources", "add_wham_noise": False,
               "sample_rate": 16000, "signal_length_s": 2.01}
    brain = checked(**sources, data_folder="synthetic")
    assert brain.ground_truth.built == ("synthetic", 16000, 32160)
    with pytest.raises(ValueError, match="ESC50 has no meta/ground_truth.csv"):
        checked(**sources, data_folder="ESC50")


# ---------------------------------------------------------------- interpret's errors


class Raising(torch.nn.Module):
    def __init__(self, message):
        super().__init__()
        self.message = message

    def forward(self, representations):
        raise RuntimeError(self.message)


def test_a_frame_count_psi_cannot_decode_is_named_other_errors_pass():
    """M40: psi's "must match the size" error becomes the clip-length advice; another runtime
    error goes through unchanged."""
    size = "The size of tensor a (12) must match the size of tensor b (13) at non-singleton dimension 2"
    for message, error, match in ((size, ValueError, "takes 201 or 431 frames"), ("out of memory", RuntimeError, "out of memory")):
        brain = bare_brain(LMAC, modules=torch.nn.ModuleDict({"psi": Raising(message)}))
        with pytest.raises(error, match=match):
            brain.interpret(torch.zeros(1, 5, 3), torch.zeros(1, 2, 2, 2), torch.tensor([0]), sb.Stage.TEST)


# ---------------------------------------------------------------- models/LMAC.py


def test_conv2d_decoder_defaults_adapter_on_zero_biases_and_the_encoders_width():
    """M63 / M68 (M64 is caught by test_train_lmac.py too): by default the decoder adapts the representations (adapter.* weights),
    every convolution's bias starts at 0 (weights_init; PyTorch's own init draws them), and it
    reads Conv2dEncoder_v2's default 256 channels (lmac_conv2d.yaml's emb_dim)."""
    decoder = Conv2dMaskDecoder()
    assert decoder.dim == 256 and any(name.startswith("adapter.") for name in decoder.state_dict())
    convolutions = [m for m in decoder.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convolutions and all(float(m.bias.abs().max()) == 0.0 for m in convolutions if m.bias is not None)
    with torch.no_grad():
        assert decoder.eval()(torch.zeros(1, 256, 2, 2)).shape[:2] == (1, 1)
