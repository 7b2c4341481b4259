"""Known answers for the mask steps that a mutation audit of pipeline.py and base.py found
unguarded: the completion region's threshold, `keep_class`'s ladder and its choice per clip
(the finished first candidate, the mask's domain, clips that close at different steps),
the interpretation audio's domain, the classifier temperature, the mask-tail warning.

Every expected value is worked out by hand in the docstrings (small tensors: 2 clips, 3
frames, 4 bins), never by the code under test. Brains are made without their set-up
(`object.__new__`), with a hand-made classifier, as in test_interpreter_brain_known_answers.
"""

import math
import re

import pytest
import speechbrain as sb
import torch
from conftest import ReadsTwoBins, two_bin_head
from conftest import bare_brain as shared_bare_brain
from speechbrain.processing.features import ISTFT, STFT

from recipes.core.pipeline import complete_mask, completion_region, split_classifier_output

STFT_ARGS = {"sample_rate": 16000, "n_fft": 1024, "hop_length": 11.6099, "win_length": 23.2199}

# ---------------------------------------------------------------- a hand-made classifier
FRAMES, BINS = 3, 4
BIN_A, BIN_B = (0, 0), (2, 3)  # the evidence of class 0 and of class 1




def bare_brain(silence_logit=2.0, **hparams):
    """An InterpreterBrain without its set-up: the hparams given, the two-bin classifier on
    this file's bins."""
    return shared_bare_brain(
        embedding_model=ReadsTwoBins(BIN_A, BIN_B), classifier=two_bin_head(silence_logit), **hparams
    )


def floor_clips():
    """Two clips (2, 3 frames, 4 bins) at 1 everywhere but their evidence bins: clip 0 X[a] = 4,
    X[b] = 2; clip 1 X[a] = 2, X[b] = 2.5. Each bin's median over the 3 frames is 1, so the
    log floor mask (X - 1) / X is, clip 0: a 3/4, b 1/2; clip 1: a 1/2, b 3/5; 0 elsewhere.
    Classifier (silence logit 2) on X: clip 0 (8, 4, 2) -> class 0, clip 1 (4, 5, 2) -> 1."""
    X = torch.ones(2, FRAMES, BINS)
    X[0, BIN_A[0], BIN_A[1]], X[0, BIN_B[0], BIN_B[1]] = 4.0, 2.0
    X[1, BIN_A[0], BIN_A[1]], X[1, BIN_B[0], BIN_B[1]] = 2.0, 2.5
    gate = torch.zeros(2, FRAMES, BINS)
    gate[0, BIN_A[0], BIN_A[1]], gate[0, BIN_B[0], BIN_B[1]] = 0.75, 0.5
    gate[1, BIN_A[0], BIN_A[1]], gate[1, BIN_B[0], BIN_B[1]] = 0.5, 0.6
    return X, gate


# ---------------------------------------------------------------- the completion region
def test_completion_region_holds_a_bin_at_exactly_twice_its_floor():
    """Guards `>=` in completion_region: R is "X at least twice its frequency's median", i.e.
    floor_mask(X, "log") >= 0.5. Bin 0 over 3 frames: 1, 1, 2 (median 1; (2 - 1) / 2 = 0.5
    exactly): in R at frame 2. Bin 1: 1, 1, 1.9 ((0.9) / 1.9 = 0.47): never in R. Bin 2:
    1, 1, 4 (0.75): in R at frame 2."""
    X = torch.ones(1, 3, 3)
    X[0, 2] = torch.tensor([2.0, 1.9, 4.0])
    expected = torch.zeros(1, 3, 3)
    expected[0, 2] = torch.tensor([1.0, 0.0, 1.0])
    assert torch.equal(completion_region(X), expected)


def test_complete_mask_grows_only_over_the_bins_its_region_th_lets_in():
    """Guards `region_th` reaching the region and the log floor mask defining it. A floor of 1
    (3 frames x 4 bins), frame 1 at 4, 4, 2, 4: floor_mask(X, "log") there 0.75, 0.75, 0.5,
    0.75. The mask holds bin 0 of frame 1 at 1. With the default 0.5 all of frame 1 is R and
    takes 1; with region_th 0.6 the bin at 2 is out of R, so the growth stops at bin 1 (bin 3
    is cut off: frames 0 and 2 are at the floor). Had R been read in the magnitude domain,
    expm1(3) / expm1(4) = 0.36 < 0.5: nothing would grow."""
    X = torch.ones(1, 3, 4)
    X[0, 1] = torch.tensor([4.0, 4.0, 2.0, 4.0])
    mask = torch.zeros(1, 3, 4)
    mask[0, 1, 0] = 1.0
    default = complete_mask(mask, X)
    assert default[0, 1].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert default[0, 0].sum() == 0 and default[0, 2].sum() == 0
    strict = complete_mask(mask, X, region_th=0.6)
    assert strict[0, 1].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert strict[0, 0].sum() == 0 and strict[0, 2].sum() == 0


# ---------------------------------------------------------------- keep_class's ladder
def test_widened_masks_is_the_readme_ladder_ending_in_all_ones():
    """Guards KEEP_CLASS_EXPONENTS and widened_masks: the README's ladder for a soft mask m is
    m ** e for e = 1, 1/2, 1/4, 1/8, 1/16, 1/32, then all ones (7 rungs). m = 0.5 gives
    0.5, 0.7071, 0.8409, 0.9170, 0.9576, 0.9786, 1; m = 0 stays 0 until the last rung, 1."""
    brain = bare_brain()
    mask = torch.zeros(2, FRAMES, BINS)
    mask[0] = 0.5
    mask[1, 1, 2] = 0.25
    ladder = brain.widened_masks({"mask": mask})
    assert ladder.shape == (7, 2, FRAMES, BINS)
    halves = [0.5, 0.70710678, 0.84089642, 0.91700404, 0.95760328, 0.97857206, 1.0]
    quarters = [0.25, 0.5, 0.70710678, 0.84089642, 0.91700404, 0.95760328, 1.0]
    assert ladder[:, 0, 1, 2].tolist() == pytest.approx(halves, abs=1e-6)
    assert ladder[:, 1, 1, 2].tolist() == pytest.approx(quarters, abs=1e-6)
    assert torch.equal(ladder[:6, 1, 0], torch.zeros(6, BINS))  # 0 ** e = 0 ...
    assert torch.equal(ladder[6], torch.ones(2, FRAMES, BINS))  # ... until all ones


def test_keep_class_with_the_floor_closes_clips_at_different_steps():
    """Guards keep_class_mask with `mask_above_floor` when clips close at different steps
    (`finish` must gate only the open clips' rows). Candidates: constant 0.25, 0.5, 1, each
    times the floor gate (floor_clips). Clip 0: X_int[a] = c 0.75 4 = 3c, X_int[b] = c 0.5 2
    = c: logits (6c, 2c, 2): c = 0.25 (1.5, 0.5, 2) lost, c = 0.5 (3, 1, 2) kept, step 1.
    Clip 1: X_int[a] = c 0.5 2 = c, X_int[b] = c 0.6 2.5 = 1.5c: logits (2c, 3c, 2): 0.25 and
    0.5 lost ((1, 1.5, 2)), c = 1 (2, 3, 2) kept, step 2 (the only open clip then)."""
    brain = bare_brain(mask_above_floor=True)
    X, gate = floor_clips()
    scores, _ = brain.classify(X)
    classes = scores.argmax(dim=1)
    assert classes.tolist() == [0, 1]
    candidates = torch.stack([torch.full_like(X, c) for c in (0.25, 0.5, 1.0)])
    mask, step = brain.keep_class_mask(
        X, candidates, classes, brain.finished_mask(X, sb.Stage.TEST)
    )
    assert step.tolist() == [1, 2]
    assert torch.allclose(mask[0], 0.5 * gate[0]) and torch.allclose(mask[1], gate[1])


def test_keep_class_with_completion_closes_clips_at_different_steps():
    """Guards keep_class_mask with `mask_completion` (at test) when clips close at different
    steps (`finish` must complete the open clips against their own regions). floor_clips: R
    (floor_mask >= 0.5) is bins a and b of each clip, isolated, so completion leaves a
    candidate as it is. Candidates: 0 but bin b at 0.5, then bin b at 1, then all ones.
    Clip 0, logits (2 X_int[a], 2 X_int[b], 2): (0, 2, 2), (0, 4, 2), (8, 4, 2) -> step 2.
    Clip 1: (0, 2.5, 2) -> class 1 at step 0."""
    brain = bare_brain(mask_completion=True)
    X, _ = floor_clips()
    classes = brain.classify(X)[0].argmax(dim=1)
    candidates = torch.zeros(3, 2, FRAMES, BINS)
    candidates[0, :, BIN_B[0], BIN_B[1]] = 0.5
    candidates[1, :, BIN_B[0], BIN_B[1]] = 1.0
    candidates[2] = 1.0
    mask, step = brain.keep_class_mask(
        X, candidates, classes, brain.finished_mask(X, sb.Stage.TEST)
    )
    assert step.tolist() == [2, 0]
    assert torch.equal(mask[0], torch.ones(FRAMES, BINS))
    assert torch.equal(mask[1], candidates[0, 1])


def test_keep_class_gives_a_clip_no_candidate_keeps_its_finished_first_candidate():
    """Guards the fallback of keep_class_mask: a clip that no candidate keeps gets the first
    candidate as the interpretation makes it (finished: times the floor gate), not the raw
    candidate. The ladder of the test above without its last rung: clip 0 kept at step 1
    (0.5 gate), clip 1 never (step -1), its mask 0.25 times its gate (a 0.125, b 0.15)."""
    brain = bare_brain(mask_above_floor=True)
    X, gate = floor_clips()
    classes = brain.classify(X)[0].argmax(dim=1)
    candidates = torch.stack([torch.full_like(X, c) for c in (0.25, 0.5)])
    mask, step = brain.keep_class_mask(
        X, candidates, classes, brain.finished_mask(X, sb.Stage.TEST)
    )
    assert step.tolist() == [1, -1]
    assert torch.allclose(mask[0], 0.5 * gate[0])
    assert torch.allclose(mask[1], 0.25 * gate[1])
    assert mask[1, BIN_A[0], BIN_A[1]].item() == pytest.approx(0.125)
    assert mask[1, BIN_B[0], BIN_B[1]].item() == pytest.approx(0.15)


def test_keep_class_checks_each_candidate_in_the_masks_domain():
    """Guards keep_class_mask applying the candidate in the yaml's `mask_domain`. One clip,
    X[a] = 4, 0 elsewhere (logits (8, 0, 2): class 0). Candidate 0.2 everywhere: in the
    magnitude domain X_int[a] = log1p(0.2 expm1(4)) = log1p(10.72) = 2.461, logit 4.92 > 2:
    kept at step 0; in the log domain X_int[a] = 0.2 4 = 0.8, logit 1.6 < 2: lost, step 1."""
    X = torch.zeros(1, FRAMES, BINS)
    X[0, BIN_A[0], BIN_A[1]] = 4.0
    candidates = torch.stack([torch.full_like(X, 0.2), torch.ones_like(X)])
    for domain, expected in (("magnitude", 0), ("log", 1)):
        brain = bare_brain(mask_domain=domain)
        classes = brain.classify(X)[0].argmax(dim=1)
        assert classes.tolist() == [0]
        mask, step = brain.keep_class_mask(X, candidates, classes)
        assert step.tolist() == [expected], domain
        assert torch.equal(mask, candidates[expected]), domain


# ---------------------------------------------------------------- audio, probabilities, warning
@pytest.mark.parametrize("domain, keep", [("magnitude", 0.5), ("power", 0.25)])
def test_interpretation_audio_scales_the_waveform_in_the_masks_domain(domain, keep):
    """Guards interpretation_audio going through the yaml's `mask_domain` (L2I's component
    audio and the evaluation's wavs use it): a constant mask 0.5 in the magnitude domain, or
    0.25 in the power domain (sqrt(0.25) = 0.5 of |STFT|), scales every bin's STFT by 0.5, so
    the audio is 0.5 times the ISTFT of the input's own STFT (the ISTFT is linear)."""
    istft = ISTFT(**STFT_ARGS)
    brain = bare_brain(mask_domain=domain, compute_istft=istft)
    wav = torch.randn(1, 4000, generator=torch.Generator().manual_seed(0))
    X_stft = STFT(**STFT_ARGS)(wav)
    X = torch.log1p(torch.sqrt(X_stft[..., 0] ** 2 + X_stft[..., 1] ** 2))
    audio = brain.interpretation_audio(X, X_stft, torch.full_like(X, keep), 4000)
    expected = 0.5 * istft(X_stft, sig_length=4000)
    torch.testing.assert_close(audio, expected, atol=1e-4, rtol=1e-4)


def test_the_brains_probabilities_use_the_yamls_temperature():
    """Guards InterpreterBrain.class_probabilities reading `classifier_temp`: scores (1, 0)
    at temperature 0.5 are softmax(2, 0) = (e^2, 1) / (e^2 + 1) = (0.8808, 0.1192)."""
    brain = bare_brain(classifier_temp=0.5)
    probs = brain.class_probabilities(torch.tensor([[1.0, 0.0]]))
    e2 = math.exp(2.0)
    assert probs[0].tolist() == pytest.approx([e2 / (e2 + 1), 1 / (e2 + 1)], abs=1e-6)


def test_a_mask_that_covers_every_frame_is_not_said_to_miss_any(caplog):
    """Guards `missing > 0` in fit_mask_frames: a decoder's mask with as many frames as the
    input, or more (cropped), leaves no frame out, so the zero-tail warning is not given."""
    brain = bare_brain(mask_tail="zeros", hop_length=11.6099)
    caplog.clear()
    same = brain.fit_mask_frames(torch.ones(1, 4, 3), 4)
    longer = brain.fit_mask_frames(torch.ones(1, 6, 3), 4)
    assert same.shape == longer.shape == (1, 4, 3)
    assert not [r for r in caplog.records if "mask_tail" in r.getMessage()]


@pytest.mark.parametrize(
    "output, said",
    [
        ({"embedding": torch.zeros(2, 8), "map": torch.zeros(2, 8, 4, 4)}, "a dict with keys ['embedding', 'map']"),
        ((torch.zeros(2, 8, 4, 4), torch.zeros(2, 8)), "a tuple of 2: [(2, 8, 4, 4), (2, 8)]"),  # swapped
        ((torch.zeros(2, 8), torch.zeros(2, 8, 4, 4), torch.zeros(2)), "a tuple of 3: [(2, 8), (2, 8, 4, 4), (2,)]"),
        (torch.zeros(2, 8, 5), "one tensor of shape (2, 8, 5)"),  # a 3-D map (B, C, T')
    ],
)
def test_an_embedding_output_outside_the_contract_is_named(output, said):
    """Guards `split_classifier_output`'s checks (found by a probe of "Your own classifier"): was
    `'dict' object has no attribute 'dim'`, or a BatchNorm size error in the head."""
    with pytest.raises(ValueError, match=re.escape(said) + r": it must return a map \(B, C, T', F'\)"):
        split_classifier_output(output)


def test_the_contracts_outputs_split_as_documented():
    """A map is averaged; a pair's (B, D) embedding gets its middle axis; (B, 1, D) is kept."""
    grid = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    embedding, representations = split_classifier_output(grid)
    assert embedding.shape == (2, 1, 3) and representations is grid
    assert float(embedding[0, 0, 0]) == (0 + 1 + 2 + 3) / 4
    pair_embedding, pair_map = split_classifier_output((torch.ones(2, 5), grid))
    assert pair_embedding.shape == (2, 1, 5) and pair_map is grid
    assert split_classifier_output(torch.ones(2, 1, 7))[0].shape == (2, 1, 7)
