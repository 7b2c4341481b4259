"""Mutation audit of the L2I and PIQ Brains (recipes/interpreters/l2i.py, piq.py): the class
settings the trainer and the scorer read, the set-up checks, Theta's top-5,
PIQ's above_floor target, its BCE at saturated logits, its frame alignment, its bin check and
its codebook usage (over a batch and over processes).

Each test kills one or more one-line mutants (named L<n> in the docstrings) that the earlier
audits (test_l2i_math.py, test_l2i_nmf_audit.py, test_piq_audit.py,
test_interpreter_brain_known_answers.py, test_mutation_audit_models.py,
test_mutation_audit_interpreters.py) let survive. Expected values are worked out by hand in the
docstrings (or by plain Python floats), never by the code under test. The Brains are built
without their set-up (test_l2i_nmf_audit.l2i_brain, test_piq_audit.piq_brain) and given hand-made
modules.
"""

import logging
import math

import pytest
import speechbrain as sb
import torch
from test_l2i_nmf_audit import l2i_brain, two_clip_outputs
from test_piq_audit import FixedLogits, grid_of, line_codebook_psi, piq_brain

from models.L2I import NMFDecoderAudio
from recipes.evaluation.metrics import StageStats
from recipes.interpreters.l2i import L2I
from recipes.interpreters.piq import target_mask


def softplus(value):
    return math.log1p(math.exp(value))


# ---------------------------------------------------------------- L2I
def test_l2i_s_checkpoint_key_oracle_and_median_statistics():
    """Kills L16 (best_key theta_top3), L17 (ff_random averaged, not its median), L18 (no
    oracle). The reference keeps the epoch of the best Theta top-1 fidelity (higher is better);
    L2I has an oracle (its best components, scored next to it); both faithfulness figures are
    medians over clips (the paper's): for the clips' values 0, 0 and 9 the median is 0 (the
    mean would be 3)."""
    assert (L2I.best_key, L2I.best_key_is_lower) == ("theta_top1", False)
    assert L2I.has_oracle is True
    stats = StageStats(L2I.median_stats, gather=False)
    stats.add_values({name: torch.tensor([0.0, 0.0, 9.0]) for name in ("ff_components", "ff_random", "theta_top1")})
    assert stats.summary() == {"ff_components": 0.0, "ff_random": 0.0, "theta_top1": 3.0}


def dictionary_brain(tmp_path, **hparams):
    """l2i_brain with a (9, 3) NMF dictionary saved under tmp_path (n_fft 16, K 3), as training
    sees it (a checkpointer)."""
    brain = l2i_brain([[0.0] * 3], torch.ones(1, 3, 4), n_fft=16, K=3, **hparams)
    path = tmp_path / "nmf.ckpt"
    torch.save(NMFDecoderAudio(n_comp=3, n_freq=9).state_dict(), path)
    brain.hparams.nmf_decoder = NMFDecoderAudio(n_comp=3, n_freq=9)
    brain.hparams.nmf_decoder_path = str(path)
    brain.checkpointer = object()
    return brain


def test_l2i_warns_that_a_threshold_of_one_selects_nothing(tmp_path, caplog):
    """Kills L20 (`-1 <= th <= 1`): r_k lies in [-1, 1] and the selection is r_k > th, so at
    relevance_th 1 no component passes (every interpretation is silence): load_frozen says so.
    At the reference 0.2 it says nothing."""
    brain = dictionary_brain(tmp_path, relevance_th=1.0, alpha=1.0, beta=1.0, fidelity_warmup_epochs=0)
    with caplog.at_level(logging.WARNING):
        brain.load_frozen()
    assert "no component passes" in caplog.text
    caplog.clear()
    brain.hparams.relevance_th = 0.2
    with caplog.at_level(logging.WARNING):
        brain.load_frozen()
    assert "relevance_th" not in caplog.text


def test_l2i_refuses_a_negative_warmup_and_accepts_zero_weights(tmp_path):
    """Kills L22 (fidelity_warmup_epochs not checked): -1 warm-up epochs is refused by name.
    alpha 0, beta 0 and no warm-up (the ablations) are accepted."""
    brain = dictionary_brain(tmp_path, relevance_th=0.2, alpha=0.0, beta=0.0, fidelity_warmup_epochs=0)
    brain.load_frozen()
    brain.hparams.fidelity_warmup_epochs = -1
    with pytest.raises(ValueError, match="fidelity_warmup_epochs = -1"):
        brain.load_frozen()


def test_theta_s_top5_fidelity_is_reported():
    """Kills L32 (k in (1, 3) only: the table's "Theta top-5" column goes missing). Theta's
    output over 6 classes: clip 0's class 0 ranks 5th (top-5 1, top-3 0), clip 1's class 1 ranks
    6th (top-5 0)."""
    brain = l2i_brain([[0.0] * 3] * 3, torch.ones(2, 3, 4))
    theta_out = [[0.10, 0.30, 0.20, 0.15, 0.05, 0.20], [0.20, 0.01, 0.30, 0.19, 0.15, 0.15]]
    outputs = two_clip_outputs(brain, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], theta_out)
    scores = outputs["scores"]
    values = brain.interpreter_metrics(outputs, {"removed": scores}, torch.Generator().manual_seed(0))
    assert values["theta_top3"].tolist() == [0.0, 0.0]
    assert values["theta_top5"].tolist() == [1.0, 0.0]


# ---------------------------------------------------------------- PIQ's target and loss
def test_above_floor_target_subtracts_each_bin_s_median_not_its_mean():
    """Kills L40 (the floor as the mean over frames). 4 frames, bin 0 at (0, 3, 3, 3) (an event
    over most of the clip: its lower median 3 is its floor, nothing rises above it), bin 1 at
    (0, 0, 0, 1) (floor 0: 1 in frame 3). The target is frame 3 of bin 1 alone. With the mean
    (2.25 and 0.25) bin 0 rises by 0.75 in frames 1-3, above 0.35 x 0.75."""
    X = torch.tensor([[[0.0, 0.0], [3.0, 0.0], [3.0, 0.0], [3.0, 1.0]]])
    assert target_mask(X, 0.35, "above_floor").tolist() == [[[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1.0]]]


def test_mask_loss_is_the_bce_of_the_logits_also_where_the_sigmoid_saturates():
    """Kills L47 (BCE of sigmoid(z) instead of BCE with logits). X = (1, 0): target (1, 0)
    (0.35 of the peak 1). Logits (-30, 30): both wrong by 30, BCE = softplus(30) each = 30.0
    (the mean). In float32 sigmoid(30) is exactly 1, so BCE of the probability clamps
    -log(1 - 1) at 100: a mean of 65, and no gradient."""
    brain = piq_brain(use_vq=False, use_mask_output=True, rec_loss_coef=1.0)
    terms = brain.interpretation_loss(
        {"X": torch.tensor([[[1.0, 0.0]]]), "decoded": torch.tensor([[[-30.0, 30.0]]])}, None, sb.Stage.TRAIN
    )
    assert terms["loss_rec"].item() == pytest.approx(softplus(30.0), abs=1e-4)


def test_a_decoder_longer_than_the_clip_is_compared_from_its_first_frame():
    """Kills L55 (the decoder's last n frames): decoded 3 frames, X 2; the loss reads the
    first 2 of both. decoded = (1, 2), (3, 4), (100, 100), X = (1, 2), (3, 4): MSE 0 (its last
    two frames would give (4 + 4 + 97^2 + 96^2) / 4)."""
    brain = piq_brain(use_vq=False, use_mask_output=False, rec_loss_coef=1.0)
    X = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    decoded = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert brain.interpretation_loss({"X": X, "decoded": decoded}, None, sb.Stage.TRAIN)["loss_rec"].item() == 0.0


# ---------------------------------------------------------------- PIQ's set-up checks
def test_piq_training_checks_its_loss_weights():
    """Kills L41 (a weight of 0 refused) and L42 (commitment_coef not checked): weights 0 are
    accepted (the reconstruction alone, or no commitment), a negative commitment_coef is
    refused by name."""
    brain = piq_brain(use_vq=True, use_mask_output=True, K=8, rec_loss_coef=0.0, commitment_coef=0.0)
    brain.checkpointer = object()
    brain.load_frozen()
    brain.hparams.commitment_coef = -0.25
    with pytest.raises(ValueError, match="commitment_coef = -0.25"):
        brain.load_frozen()


@pytest.mark.parametrize("use_vq, partition", [(True, False), (False, True)])
def test_a_small_codebook_is_accepted_without_the_class_partition(use_vq, partition):
    """Kills L43 (activate_class_partitioning not read) and L44 (use_vq not read): K 2 codes
    for 4 classes cannot be split over the classes, but without the partition (or without the
    codebook) nothing is split: load_frozen accepts it. With both it is refused (at least 4)."""
    piq_brain(use_vq=use_vq, activate_class_partitioning=partition, use_mask_output=True, K=2).load_frozen()
    with pytest.raises(ValueError, match="at least 4"):
        piq_brain(use_vq=True, activate_class_partitioning=True, use_mask_output=True, K=2).load_frozen()


def test_the_mask_target_warning_is_for_the_spectrogram_mode_only(caplog):
    """Kills L45 (the warning whatever use_mask_output): mask_target above_floor is read with
    use_mask_output True (no warning), not with False (a warning)."""
    for use_mask_output, warned in ((True, False), (False, True)):
        caplog.clear()
        brain = piq_brain(use_vq=True, use_mask_output=use_mask_output, mask_target="above_floor", K=8,
                          rec_loss_coef=1.0, commitment_coef=0.25)  # fmt: skip
        brain.checkpointer = object()
        with caplog.at_level(logging.WARNING):
            brain.load_frozen()
        assert ("is not read with use_mask_output False" in caplog.text) is warned


def test_an_unknown_mask_target_is_refused_up_front():
    """Kills L46 (no up-front check): a mask_target of another name is refused when the Brain
    loads, also in the spectrogram mode, which never reads it."""
    with pytest.raises(ValueError, match="mask_target 'loudest'"):
        piq_brain(use_vq=False, use_mask_output=False, mask_target="loudest", K=8).load_frozen()


def test_a_decoder_of_fewer_bins_than_the_stft_is_refused():
    """Kills L53 (`>` for `!=`): psi decodes 2 bins, the STFT has 3: refused (a mask of 2 bins
    would otherwise be broadcast or fail later, far from the cause)."""
    brain = piq_brain(use_vq=True, use_mask_output=True, K=1, mask_tail="zeros")
    brain.codes_used = torch.zeros(1, dtype=torch.bool)
    brain.modules["psi"] = FixedLogits([[0.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="psi decodes 2 frequency bins but the STFT has 3"):
        brain.interpret(torch.ones(1, 2, 3), torch.zeros(1, 1, 1, 1), torch.tensor([0]), sb.Stage.TEST)


# ---------------------------------------------------------------- PIQ's codebook usage
def test_codebook_usage_is_not_reported_without_the_codebook():
    """Kills L49 (usage reported with use_vq False: 0, a figure of a codebook never used)."""
    assert piq_brain(use_vq=False, K=8).stage_extra_stats() == {}


def test_codebook_usage_counts_every_clip_of_a_batch():
    """Kills L57 (the first clip's codes only). Code k is (k, 0), class c owns codes 2c, 2c + 1
    (K 8, 4 classes): a class-0 clip at (0, 0) takes code 0, a class-3 clip at (7, 0) code 7, in
    one batch: codes {0, 7}, usage 2 / 8."""
    brain = piq_brain(use_vq=True, use_mask_output=True, K=8)
    brain.modules["psi"] = line_codebook_psi()
    brain.on_stage_start(sb.Stage.VALID)
    brain.decode(torch.cat([grid_of([0, 0, 0, 0]), grid_of([7, 7, 7, 7])]), torch.tensor([0, 3]))
    assert brain.codes_used.tolist() == [True, False, False, False, False, False, False, True]
    assert brain.stage_extra_stats() == {"codebook_usage": pytest.approx(2 / 8)}


def test_codebook_usage_over_processes_is_the_union_of_their_codes(monkeypatch):
    """Kills L58 (a SUM reduce): a code any process used counts once. This process used codes
    {0, 2} of K 4, another (a stand-in all_reduce with the reduction's definition) {1, 2}: the
    union {0, 1, 2}, usage 3 / 4 (a sum (1, 1, 2, 0) would give 4 / 4)."""
    other = torch.tensor([0, 1, 1, 0], dtype=torch.int32)
    ops = []

    def all_reduce(tensor, op):
        ops.append(op)
        if op == torch.distributed.ReduceOp.MAX:
            tensor.copy_(torch.maximum(tensor, other))
        elif op == torch.distributed.ReduceOp.SUM:
            tensor.add_(other)
        else:
            raise AssertionError(op)

    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    brain = piq_brain(use_vq=True, K=4)
    brain.codes_used = torch.tensor([True, False, True, False])
    assert brain.stage_extra_stats() == {"codebook_usage": pytest.approx(3 / 4)}
    assert len(ops) == 1
