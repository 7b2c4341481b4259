"""Mutation audit of bench/evidence.py: the figures the README's "What holds on real
recordings" quotes (low-band energy shares, decisions with the low band zeroed, the
background alone, clean-target accuracy, the interpreter's and the reference masks' rows,
masks on clips of other classes, L-MAC's loss on its mask and on that mask cut to the
event's frames).

How expected values are derived:

- the pure helpers (`coarse_masks`, `share_of`, `share`, `other_class_pairs`,
  `training_setting`) get small hand-made tensors / files whose answers are worked out by
  hand in the comments;
- `main` runs for real on a data folder written here (7 clips of fold 5 and one of fold 1,
  with their `sources/` and `meta/ground_truth.csv`, float wavs of 12 samples at 16 kHz)
  and a hand-made interpreter: the two-bin classifier of tests/conftest.py (`ReadsTwoBins`
  reads X[frame 1, bin 2] for class 0 and X[frame 3, bin 0] for class 1, `two_bin_head`:
  logits (2 X_a, 2 X_b, 1), class 2 when both are quiet), an identity "STFT" that lays the
  12 samples out as 4 frames x 3 bins (|STFT| = |sample|, its sign the phase, so the
  region, the energies and the decisions are read straight off the samples), and a real
  InterpreterBrain / LMAC subclass whose `interpret` returns a fixed mask (bin 0 of every
  frame plus the cell (frame 1, bin 1)). Only the loader, `AudioInterpreter.from_hparams`,
  is replaced (it would need a trained, exported folder); every computing line of
  `main` runs. The decisions and shares are worked out by hand per clip in CLIPS' comments
  (written literally in the tests); SI-SDRi, the pairs table and L-MAC's loss are
  recomputed by an independent numpy model of the toy (`_np_*`).

Each test names the mutations of the audit it catches.
"""

import os
import types

import numpy as np
import soundfile as sf
import torch
from conftest import bare_brain

from bench import evidence
from recipes.interpreters.base import InterpreterBrain
from recipes.interpreters.lmac import LMAC

FRAMES, BINS = 4, 3
N_SAMPLES, RATE = FRAMES * BINS, 16000
CATEGORIES = {"a": 0, "b": 1, "quiet": 2}
# A sample's cell: index = 3 frame + bin. The classifier reads index 5 (frame 1, bin 2) for
# class 0 and index 9 (frame 3, bin 0, in the low band) for class 1; |x| > e^0.5 - 1 = 0.649
# beats the silence logit 1.
# (id, fold, category, target {index: sample}, background {index: sample});
# per clip: the classifier on the mixture / the clean target / the background alone / the
# mixture with bin 0 zeroed / the target with bin 0 zeroed / the ground-truth mask (the
# cells where |target| > |background|)
CLIPS = [
    ("c0", 5, "a", {5: 1.0}, {9: 0.9}),  # 0 / 0 / 1 / 0 / 0 / 0
    ("c1", 5, "a", {5: 0.5}, {9: 1.0}),  # 1 / 2 / 1 / 2 / 2 / 2
    ("c2", 5, "b", {9: 1.0}, {5: -0.3}),  # 1 / 1 / 2 / 2 / 2 / 1
    ("c3", 5, "quiet", {3: 1.0}, {7: 0.2}),  # 2 / 2 / 2 / 2 / 2 / 2
    ("c4", 5, "b", {9: -0.8}, {5: 1.0}),  # 0 / 1 / 0 / 0 / 2 / 1
    ("c5", 5, "a", {5: 0.9}, {9: 1.0}),  # 1 / 0 / 1 / 2 / 0 / 0
    ("c6", 5, "b", {9: 0.4, 4: 0.3}, {9: 0.6}),  # 1 / 2 / 2 / 2 / 2 / 2 (region: cell 4 only)
    ("x7", 1, "b", {9: 1.0}, {0: 0.5}),  # fold 1: not read by the default --fold 5
    ("x8", 1, "quiet", {}, {2: 1.0}),  # fold 1: a silent target (SI-SDR, recall undefined)
    ("y9", 2, "a", {5: 1.0}, {1: 0.5, 4: 0.5, 7: 0.5, 10: 0.6}),  # fold 2: a steady bin 1
]
# the interpreter's mask: bin 0 of every frame (the low band) and the cell (frame 1, bin 1)
MASK_CELLS = (0, 3, 6, 9, 4)


def _sources(fold=5):
    rows = [clip for clip in CLIPS if clip[1] == fold]
    target = np.zeros((len(rows), N_SAMPLES), dtype=np.float32)
    background = np.zeros_like(target)
    for row, (_, _, _, t, b) in enumerate(rows):
        for index, value in t.items():
            target[row, index] = value
        for index, value in b.items():
            background[row, index] = value
    return rows, target, background


def _write_dataset(root):
    """audio/, sources/, meta/esc50.csv and meta/ground_truth.csv of CLIPS (float wavs)."""
    for folder in ("audio", "sources", "meta"):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    esc50 = ["filename,fold,target,category"]
    truth = ["id,target_path,background_path"]
    for fold in (5, 1, 2):
        rows, target, background = _sources(fold)
        for (clip_id, _, category, _, _), t, b in zip(rows, target, background):
            sf.write(os.path.join(root, "audio", f"{clip_id}.wav"), t + b, RATE, subtype="FLOAT")
            sf.write(os.path.join(root, "sources", f"{clip_id}_target.wav"), t, RATE, subtype="FLOAT")
            sf.write(os.path.join(root, "sources", f"{clip_id}_background.wav"), b, RATE, subtype="FLOAT")
            esc50.append(f"{clip_id}.wav,{fold},{CATEGORIES[category]},{category}")
            truth.append(f"{clip_id},sources/{clip_id}_target.wav,sources/{clip_id}_background.wav")
    with open(os.path.join(root, "meta", "esc50.csv"), "w", encoding="utf-8") as fout:
        fout.write("\n".join(esc50) + "\n")
    with open(os.path.join(root, "meta", "ground_truth.csv"), "w", encoding="utf-8") as fout:
        fout.write("\n".join(truth) + "\n")


class CellSTFT(torch.nn.Module):
    """An identity "STFT": (B, 12) samples -> (B, 4 frames, 3 bins, (sample, 0))."""

    def forward(self, wavs):
        real = wavs.reshape(wavs.shape[0], FRAMES, BINS)
        return torch.stack([real, torch.zeros_like(real)], dim=-1)


class CellISTFT(torch.nn.Module):
    """Its inverse: the real part, laid out as samples again."""

    def forward(self, spec, sig_length=None):
        return spec[..., 0].reshape(spec.shape[0], -1)[:, :sig_length]


def _band_mask(X):
    mask = torch.zeros_like(X).flatten(1)
    mask[:, list(MASK_CELLS)] = 1.0
    return mask.reshape(X.shape)


class BandInterpreter(InterpreterBrain):
    """An interpreter whose mask is the low band plus one cell, whatever the clip."""

    def interpret(self, X, representations, classes, stage):
        return {"mask": _band_mask(X)}


class BandLMAC(LMAC):
    """L-MAC's Brain (its loss) with the same fixed mask instead of a decoder."""

    def interpret(self, X, representations, classes, stage):
        return {"mask": _band_mask(X)}


LMAC_WEIGHTS = {"l_in_w": 1.0, "l_out_w": 0.5, "reg_w_l1": 2.0}


def _interpreter(method, **hparams):
    brain_class = BandLMAC if method == "LMAC" else BandInterpreter
    brain = bare_brain(
        brain_class, compute_stft=CellSTFT(), compute_istft=CellISTFT(), **LMAC_WEIGHTS, **hparams
    )
    brain.finetuning = False  # as LMAC.load_frozen leaves it at inference
    labels = types.SimpleNamespace(lab2ind=dict(CATEGORIES))
    return types.SimpleNamespace(
        brain=brain, sample_rate=RATE, n_samples=N_SAMPLES, label_encoder=labels, method=method
    )


def _run_main(tmp_path, monkeypatch, capsys, method="LMAC", extra=(), **hparams):
    data = tmp_path / "data"
    _write_dataset(data)
    run = tmp_path / "run"
    (run / "inference").mkdir(parents=True)
    (run / "inference" / "hyperparams.yaml").write_text("sample_rate: 16000\n")  # no loss keys
    (run / "hyperparams.yaml").write_text("out_loss: not_class\nl1_weighting: bins\n")
    interpreter = _interpreter(method, **hparams)
    given = []

    class Loader:
        @staticmethod
        def from_hparams(source):
            given.append(source)
            return interpreter

    monkeypatch.setattr(evidence, "AudioInterpreter", Loader)
    evidence.main(["--interpreter", str(run / "inference"), "--data_folder", str(data), "--low_bins", "1", *extra])
    assert given == [str(run / "inference")]
    return capsys.readouterr().out.splitlines()


def _rows(lines, start):
    """{first cell: [other cells]} of the markdown table whose header starts with `start`."""
    at = next(i for i, line in enumerate(lines) if line.startswith(start))
    rows = {}
    for line in lines[at + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


# ----------------------------------------------------------------------- numpy model of the toy


def _np_decision(x):
    """The two-bin classifier on samples x (B, 12): argmax (2 log1p|x5|, 2 log1p|x9|, 1)."""
    X = np.log1p(np.abs(x))
    logits = np.stack([2 * X[:, 5], 2 * X[:, 9], np.ones(len(x))], axis=1)
    return logits.argmax(axis=1), logits


def _np_si_sdr(estimate, reference):
    estimate = estimate - estimate.mean(axis=1, keepdims=True)
    reference = reference - reference.mean(axis=1, keepdims=True)
    alpha = (estimate * reference).sum(axis=1) / (reference**2).sum(axis=1)
    target = alpha[:, None] * reference
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = 10 * np.log10((target**2).sum(axis=1) / ((target - estimate) ** 2).sum(axis=1))
    # an exact match is +100 dB, a silent estimate -100 dB (recipes.evaluation.metrics.si_sdr)
    return np.where((estimate**2).sum(axis=1) <= 1e-10, -100.0, np.clip(ratio, -100.0, 100.0))


def _np_mask(cells_per_clip):
    mask = np.zeros((len(cells_per_clip), N_SAMPLES))
    for row, cells in enumerate(cells_per_clip):
        mask[row, list(cells)] = 1.0
    return mask


# --------------------------------------------------------------------------- pure helpers


def test_coarse_masks_frames_and_band_by_hand():
    """Guards `coarse_masks` on two clips (5 frames x 5 bins; energies |STFT|^2, X =
    log1p sqrt(E)). Clip 0: frame 0 holds 900 (bin 0), 50 (bin 2), 40 (bin 3), 10 (bin 4):
    1000; frame 1 exactly 1 = 1e-3 x 1000 (out: strictly above), frame 2 holds 2 (in), both
    in bin 1. Its bins: 900, 3, 50, 40, 10 of 1003; ranked, the energy before each is 0
    (bin 0), 900 / 1003 = 0.897 (bin 2), 950 / 1003 = 0.947 (bin 3), 0.987 (bin 4), 0.997
    (bin 1): the band is bins 0, 2, 3. Clip 1 is quiet (frame 0: 1, frame 3: 0.01, both bin
    2): its frames are judged against its own loudest frame (both in), not clip 0's (both
    out), its band is bin 2. Catches: the loudest frame taken over the batch, the per-frame
    or per-bin sums over the wrong axis, EVENT_FRAME_SHARE 1e-3 -> 1e-2, `before` with the
    bin itself (bin 3 out), the sort ascending, the energy taken as X itself (no expm1^2),
    the band or the frames broadcast over the wrong axis."""
    E = torch.zeros(2, 5, 5, dtype=torch.float64)
    E[0, 0, 0], E[0, 0, 2], E[0, 0, 3], E[0, 0, 4] = 900.0, 50.0, 40.0, 10.0
    E[0, 1, 1], E[0, 2, 1] = 1.0, 2.0
    E[1, 0, 2], E[1, 3, 2] = 1.0, 0.01
    masks = evidence.coarse_masks(torch.log1p(E.sqrt()))
    frames = masks["the event's frames, all bins"]
    assert frames.shape == (2, 5, 5)
    assert frames[0, :, 0].tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert frames[1, :, 4].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert bool((frames == frames[:, :, :1]).all())  # all bins of an event frame
    box = masks["the event's frames x its band"]
    band = [1.0, 0.0, 1.0, 1.0, 0.0]
    assert box[0].tolist() == [band, [0.0] * 5, band, [0.0] * 5, [0.0] * 5]
    assert box[1].tolist() == [[0.0, 0.0, float(f in (0, 3)), 0.0, 0.0] for f in range(5)]


def test_coarse_masks_band_stops_at_exactly_95_percent():
    """Guards the band's `before < BAND_ENERGY_SHARE`: one frame, bin energies 90, 5, 4, 1
    (total 100): the energy before each ranked bin is 0, 90, 95, 99 %, so the band is the
    90 and the 5 (together exactly 95 %). Catches `<` -> `<=` (the 4 joins), `before`
    including the bin itself (the 5 leaves), BAND_ENERGY_SHARE 0.95 -> 0.9, and the
    descending sort flipped."""
    E = torch.tensor([[[5.0, 90.0, 1.0, 4.0]]], dtype=torch.float64)
    box = evidence.coarse_masks(torch.log1p(E.sqrt()))["the event's frames x its band"]
    assert box.tolist() == [[[1.0, 1.0, 0.0, 0.0]]]


def test_coarse_masks_frame_threshold_is_strict():
    """Guards `per_frame > EVENT_FRAME_SHARE * amax`: frame energies 1000, exactly 1 (= 1e-3 x
    1000 in float32), 1.5. Catches `>` -> `>=` (the frame at exactly the share joins) and
    `>` -> `<`."""
    E = torch.tensor([[[1000.0], [1.0], [1.5]]], dtype=torch.float64)
    frames = evidence.coarse_masks(torch.log1p(E.sqrt()))["the event's frames, all bins"]
    assert frames[0, :, 0].tolist() == [1.0, 0.0, 1.0]


def test_share_of_and_share_by_hand():
    """Guards `share_of` and `share`: 2 of the 3 chosen flags are set (0.667), none chosen is
    "-", no `chosen` means all 5 (3 of 5: 0.600); `share` is a percentage with one decimal.
    Catches: the mean over all flags instead of the chosen ones, `chosen.any()` -> `.all()`,
    the "-" branch dropped (NaN printed), a 2-decimal format, `100 *` dropped in `share`."""
    flags = torch.tensor([True, False, True, True, False])
    chosen = torch.tensor([True, True, True, False, False])
    assert evidence.share_of(flags, chosen) == "0.667"
    assert evidence.share_of(flags, torch.zeros(5, dtype=torch.bool)) == "-"
    assert evidence.share_of(flags) == "0.600"
    assert evidence.share_of(flags, torch.tensor([False, False, False, True, True])) == "0.500"
    assert evidence.share(flags) == "60.0 %"
    assert evidence.share(torch.tensor([True, False, False])) == "33.3 %"


def test_other_class_pairs_are_of_other_classes_one_permutation_per_draw():
    """Guards `other_class_pairs`. Two clips of two classes: each draw is the identity (no
    pair) or the swap (pairs (0, 1) and (1, 0)); 40 draws give both, the pairs always of
    different clips and classes, clip ascending within a draw. One class: no pair. Four
    clips of four classes: each draw keeps the clips its permutation moves, each owner at
    most once per draw. Catches: `!=` -> `==`, owners not a permutation (randint), n_draws
    ignored, the seed ignored (two seeds give other pairs), clip / owner swapped in the
    return (clip would not ascend within a draw)."""
    clip, owner = evidence.other_class_pairs(torch.tensor([0, 1]), n_draws=40)
    assert len(clip) % 2 == 0 and 0 < len(clip) < 80
    assert bool((clip != owner).all())
    assert sorted(set(zip(clip.tolist(), owner.tolist()))) == [(0, 1), (1, 0)]
    assert clip.tolist() == [0, 1] * (len(clip) // 2)
    none = evidence.other_class_pairs(torch.tensor([3, 3, 3]), n_draws=5)
    assert len(none[0]) == 0 and len(none[1]) == 0
    classes = torch.tensor([0, 1, 2, 3])
    clip, owner = evidence.other_class_pairs(classes, n_draws=7, seed=3)
    assert bool((classes[clip] != classes[owner]).all())
    # the draws split where clip stops ascending: each draw's owners are distinct
    draws, current = [], []
    for c, o in zip(clip.tolist(), owner.tolist()):
        if current and c <= current[-1][0]:
            draws.append(current)
            current = []
        current.append((c, o))
    draws.append(current)
    assert len(draws) <= 7 and len(clip) > 7
    assert all(len({o for _, o in draw}) == len(draw) for draw in draws)
    again = evidence.other_class_pairs(classes, n_draws=7, seed=3)
    other = evidence.other_class_pairs(classes, n_draws=7, seed=4)
    assert torch.equal(again[1], owner)
    assert not (len(other[1]) == len(owner) and torch.equal(other[1], owner))
    assert len(evidence.other_class_pairs(classes, n_draws=70, seed=3)[0]) > 8 * len(clip) // 2


def test_training_setting_reads_the_inference_folder_then_its_run(tmp_path):
    """Guards `training_setting`: `given` wins; the folder's own yaml first, then the run's
    (the folder above); a key in neither is a SystemExit naming the flag. Catches: the
    parent's yaml read first, `given` ignored, the parent never read, a missing key
    returning None (the loss would run with out_loss None)."""
    run = tmp_path / "run"
    (run / "inference").mkdir(parents=True)
    (run / "hyperparams.yaml").write_text("out_loss: not_class\nl1_weighting: input\n")
    (run / "inference" / "hyperparams.yaml").write_text("l1_weighting: bins\n")
    folder = str(run / "inference")
    assert evidence.training_setting(folder, "out_loss") == "not_class"
    assert evidence.training_setting(folder, "l1_weighting") == "bins"
    assert evidence.training_setting(folder, "out_loss", given="neg_ce") == "neg_ce"
    try:
        evidence.training_setting(folder, "reg_w_l1")
    except SystemExit as error:
        assert "--reg_w_l1" in str(error)
    else:
        raise AssertionError("a missing setting must stop the run")


def test_lmac_loss_table_by_hand(capsys):
    """Guards `lmac_loss_table`: one clip X (4 x 3) with X[1, 2] = log 3 (class 0's bin: logit
    2 log 3 = log 9) and 0 elsewhere, the class 0; mask = 1 on that cell only. In-term:
    CE of logits (log 9, 0, 1) at 0 = log(9 + 1 + e) - log 9 = 0.3457; out-term on (1 - M) X
    = 0: logits (0, 0, 1), not_class: -log(1 - p_0) = log(2 + e) - log(1 + e) = 0.3181, x
    l_out_w 0.5 = 0.1590; size term: mean|M| = 1/12 x reg_w_l1 2 = 0.1667; loss = the sum,
    0.6714. The `--out_loss` given wins over the run's yaml (neg_ce there). Catches: the
    loss summing two of the three terms, the terms printed in another order, the given
    out_loss ignored (neg_ce: -1.0986 x 0.5), the keeps column of the wrong mask."""
    brain = bare_brain(BandLMAC, **LMAC_WEIGHTS)
    brain.finetuning = False
    X = torch.zeros(1, 4, 3)
    X[0, 1, 2] = np.log(3.0)
    mask = torch.zeros_like(X)
    mask[0, 1, 2] = 1.0
    args = types.SimpleNamespace(interpreter="no/such/run", out_loss="not_class", l1_weighting="bins", fold=1)
    masks = {"its mask": (mask, torch.tensor([True])), "nothing": (torch.zeros_like(X), torch.tensor([False]))}
    evidence.lmac_loss_table(args, brain, X, torch.tensor([0]), masks)
    rows = _rows(capsys.readouterr().out.splitlines(), "| L-MAC's loss (out_loss not_class, l1_weighting bins; fold 1)")
    in_term = np.log(9 + 1 + np.e) - np.log(9)
    out_term = 0.5 * (np.log(2 + np.e) - np.log(1 + np.e))
    assert rows["its mask"] == [f"{v:.3f}" for v in (in_term, out_term, 2 / 12, in_term + out_term + 2 / 12)] + ["1.000"]
    # the empty mask: in-term CE at logits (0, 0, 1), out-term on X itself, no size term
    in_empty = np.log(2 + np.e)
    out_full = 0.5 * (np.log(9 + 1 + np.e) - np.log(1 + np.e))
    assert rows["nothing"] == [f"{v:.3f}" for v in (in_empty, out_full, 0.0, in_empty + out_full)] + ["0.000"]


# ------------------------------------------------------------------------ main, end to end


def test_main_figures_of_the_first_block(tmp_path, monkeypatch, capsys):
    """Guards main's first block on the hand-made set (decisions per clip in CLIPS' comments;
    low_bins 1: bin 0). Mixtures right on c0, c2, c3, c6: 4/7 = 57.1 %; clean targets right on
    all but c1, c6: 5/7 = 71.4 %. Bin-0 energy, pooled over the clips: targets (1 + 1 + 0.64 +
    0.16) / 4.95 = 56.6 %, backgrounds (0.81 + 1 + 1 + 0.36) / 4.30 = 73.7 %. Bin 0 zeroed: the
    mixture's decision changes on c1, c2, c5, c6 (4/7 = 57.1 %), the target's (against its
    own decision) on c2, c4 (2/7 = 28.6 %). The background alone gets the mixture's decision
    on c1, c3, c4, c5 (57.1 %). The ground-truth mask keeps the class on c0, c2, c3 (42.9 %),
    with bin 0 added on all but c4 (85.7 %). Catches: the fold filter dropped (8 clips), the
    low band cut on frames (`[:, :low_bins]`) or as bins from low_bins on, the clean-target
    accuracy against the mixture's decision, the shares per clip averaged (targets 52.0 %),
    targets / backgrounds swapped, the target's change counted against the mixture's class
    (71.4 %), the background against the labels (14.3 %), `with_band` zeroing the band
    (28.6 %) or without `.clone()` (the ground truth's Fid-In then 85.7 %)."""
    lines = _run_main(tmp_path, monkeypatch, capsys, method="PIQ")
    assert lines[0].endswith("fold 5 (7 clips)")
    assert "- classifier accuracy: mixtures 57.1 %, clean targets 71.4 %" in lines
    assert "- bins 0-0 hold 56.6 % of the target events' energy" in lines
    assert "- bins 0-0 hold 73.7 % of the backgrounds' energy" in lines
    assert "- bins 0-0 zeroed: the decision changes on 57.1 % of the mixtures, 28.6 % of the clean targets" in lines
    assert "- the background alone gets the mixture's decision on 57.1 %" in lines
    assert "- ground-truth mask Fid-In 42.9 %; with bins 0-0 added 85.7 %" in lines
    assert not any(line.startswith("| L-MAC's loss") for line in lines)  # not an L-MAC


def _expected_rows():
    """The interpreter's and the reference masks' rows from the numpy model of the toy."""
    rows, target, background = _sources()
    clips = (target + background).astype(np.float64)
    target = target.astype(np.float64)
    classes, _ = _np_decision(clips)
    labels = np.array([CATEGORIES[row[2]] for row in rows])
    region = (np.abs(target) > np.abs(background)).astype(float)
    gt_keeps = _np_decision(clips * region)[0] == classes
    good = (classes == labels) & gt_keeps
    base = _np_si_sdr(clips, target)

    def row(mask, chosen):
        kept = clips * mask
        energy = kept**2
        with np.errstate(invalid="ignore"):  # nothing kept, the region holding energy: 0
            precision = np.nan_to_num((energy * region).sum(1) / energy.sum(1))
        recall = (energy * region).sum(1) / (clips**2 * region).sum(1)
        keeps = _np_decision(kept)[0] == classes
        sdri = _np_si_sdr(kept, target) - base
        return [
            f"{sdri[chosen].mean():+.2f}",
            f"{precision[chosen].mean():.3f}",
            f"{recall[chosen].mean():.3f}",
            f"{keeps[chosen].mean():.3f}",
        ]

    band = _np_mask([MASK_CELLS] * len(rows))
    frames = [{index // BINS for index in row[3]} for row in rows]  # the target's frames
    event = _np_mask([[3 * f + b for f in fs for b in range(BINS)] for fs in frames])
    return {"band": band, "event": event, "region": region, "good": good, "row": row}


def test_main_interpreter_rows_split_by_clip(tmp_path, monkeypatch, capsys):
    """Guards the interpreter's table: its mask (bin 0 and the cell (1, 1)) keeps the class on
    all but c0, c4 (5/7: 0.714); over c0, c2, c3 (right, the ground truth keeping the class)
    0.667; over c1, c4, c5 (wrong) 0.667; GT precision over all: c2, c3, c4 1, c6 0.09 /
    1.09, the rest 0: 0.440; recall 4/7 = 0.571 (c6's region, cell 4, kept); SI-SDRi from
    the numpy model. Catches: `good` as `right | gt_keeps` (4 clips) or `right` alone,
    `~right` -> `right`, the metrics fed the clip instead of the interpretation, precision
    / recall swapped, keeps against the labels, a row's mean over all clips."""
    lines = _run_main(tmp_path, monkeypatch, capsys)
    rows = _rows(lines, "| LMAC: clips | n |")
    model = _expected_rows()
    band, good = model["band"], model["good"]
    right = np.array([True, False, True, True, False, False, True])
    assert good.tolist() == [True, False, True, True, False, False, False]
    assert rows["all"] == ["7", *model["row"](band, np.ones(7, dtype=bool))]
    assert rows["all"][2:] == ["0.440", "0.571", "0.714"]
    assert rows["the classifier right and the ground truth keeping its class"] == ["3", *model["row"](band, good)]
    assert rows["the classifier wrong"] == ["3", *model["row"](band, ~right)]
    assert rows["the classifier wrong"][4] == "0.667"


def test_main_reference_rows(tmp_path, monkeypatch, capsys):
    """Guards the reference table. Event frames (the target's): c6 frames 1 and 3, the others
    one. Time gate: mean (6 x 3 + 6) / 84 = 0.286, keeps c0, c2, c3, c6 (57.1 %: 0.571), on the
    3 good clips 1.000. Box (frames x 95 % band; c6's band bins 0, 1): mean 10 / 84 = 0.119.
    Ground truth: one cell per clip, 0.083, Fid-In 0.429 / 1.000. Floor: every non-zero cell
    (two per clip) kept, 0.167, Fid-In 1.000. The interpreter's mask cut to the event's frames:
    13 / 84 = 0.155, keeps c2, c3, c6: 0.429, on the good clips 0.667. SI-SDRi / precision /
    recall from the numpy model. Catches: the cut made with the box instead of the frames,
    the cut not applied (mean 0.417), the references' audio or metrics from the mixture, the
    Fid-In on good clips over all clips, floor_mask on X_target, the header's clip count."""
    lines = _run_main(tmp_path, monkeypatch, capsys)
    header = next(line for line in lines if line.startswith("| reference mask"))
    assert "Fid-In on the 3 clips the classifier gets right" in header
    rows = _rows(lines, "| reference mask")
    model = _expected_rows()
    band, event, region, good = model["band"], model["event"], model["region"], model["good"]
    everything = np.ones(7, dtype=bool)

    def expected(mean, mask):
        cells = model["row"](mask, everything)
        return [mean, *cells, model["row"](mask, good)[3]]

    assert rows["the event's frames, all bins"] == expected("0.286", event)
    assert rows["the event's frames, all bins"][4:] == ["0.571", "1.000"]
    assert rows["ground truth"] == expected("0.083", region)
    assert rows["ground truth"][4:] == ["0.429", "1.000"]
    assert rows["LMAC's mask x the event's frames"] == expected("0.155", band * event)
    assert rows["LMAC's mask x the event's frames"][4:] == ["0.429", "0.667"]
    box = event.copy()
    box[6] *= np.tile([1.0, 1.0, 0.0], FRAMES)  # c6's band: bins 0 and 1
    box[:6] *= region[:6] > 0  # the others: the target's one cell
    assert rows["the event's frames x its band"][0] == "0.119"
    assert rows["the event's frames x its band"][4:] == ["0.571", "1.000"]
    assert rows["the event's frames x its band"] == expected("0.119", box)
    assert rows["above the clip's floor (no classifier)"][0] == "0.167"
    assert rows["above the clip's floor (no classifier)"][4:] == ["1.000", "1.000"]


def test_main_masks_on_clips_of_other_classes(tmp_path, monkeypatch, capsys):
    """Guards the other-class table: the pairs are `other_class_pairs` of the mixtures'
    classes (0, 1, 1, 2, 0, 1, 1); each mask of the owner clip on the other clip, decided by the
    numpy classifier. Own clip: the interpreter keeps 0.714, the ground truth 0.429. Catches:
    the mask of the clip itself (mask[clip]) put on it, the owner's X, the two last columns
    swapped, the pairs drawn from the labels, the own-clip column of the other mask."""
    lines = _run_main(tmp_path, monkeypatch, capsys)
    rows_, target, background = _sources()
    clips = (target + background).astype(np.float64)
    classes = _np_decision(clips)[0]
    clip, owner = (t.numpy() for t in evidence.other_class_pairs(torch.tensor(classes)))
    header = next(line for line in lines if line.startswith("| mask | on its own clip"))
    assert f"({len(clip)} pairs)" in header
    rows = _rows(lines, "| mask | on its own clip")
    band = _np_mask([MASK_CELLS] * len(clips))
    region = (np.abs(target) > np.abs(background)).astype(float)
    for name, mask, own in (("LMAC", band, "0.714"), ("ground truth", region, "0.429")):
        swapped = _np_decision(clips[clip] * mask[owner])[0]
        assert rows[name] == [
            own,
            f"{(swapped == classes[clip]).mean():.3f}",
            f"{(swapped == classes[owner]).mean():.3f}",
        ]
    # the ground truth's mask of another clip: the two columns differ here
    assert rows["ground truth"][1] != rows["ground truth"][2]


def test_main_lmac_loss_rows(tmp_path, monkeypatch, capsys):
    """Guards the L-MAC branch of main and `lmac_loss_table` there: out_loss and l1_weighting
    read from the run's yaml above the inference folder (not_class, bins), the two masks
    (its mask, keeping 0.714; cut to the event's frames, 0.429), each priced by the numpy
    model: in-term CE(f(M X), y) x 1, out-term -log(1 - p_y(f((1 - M) X))) x 0.5, size mean M x 2.
    Catches: the cut mask's row given the uncut mask or the uncut keeps, the classes of the
    loss taken from the labels, the table's fold."""
    lines = _run_main(tmp_path, monkeypatch, capsys)
    rows = _rows(lines, "| L-MAC's loss (out_loss not_class, l1_weighting bins; fold 5)")
    _, target, background = _sources()
    clips = (target + background).astype(np.float64)
    classes, _ = _np_decision(clips)
    model = _expected_rows()

    def priced(mask):
        _, logits_in = _np_decision(clips * mask)
        _, logits_out = _np_decision(clips * (1 - mask))
        index = np.arange(len(clips))
        log_in = logits_in - np.log(np.exp(logits_in).sum(1, keepdims=True))
        in_term = -log_in[index, classes].mean()
        total = np.log(np.exp(logits_out).sum(1))
        others = np.log(np.exp(logits_out).sum(1) - np.exp(logits_out[index, classes]))
        out_term = 0.5 * (total - others).mean()
        size = 2.0 * mask.mean()
        return [f"{v:.3f}" for v in (in_term, out_term, size, in_term + out_term + size)]

    assert rows["its mask"] == [*priced(model["band"]), "0.714"]
    assert rows["its mask x the event's frames"] == [*priced(model["band"] * model["event"]), "0.429"]


def test_main_rows_leave_out_a_clip_whose_target_is_silent(tmp_path, monkeypatch, capsys):
    """Guards the rows' `nanmean`: on fold 1 (x7, and x8 whose target is silent: its SI-SDRi
    and GT recall are NaN, `ground_truth_metrics`), the "all" row is x7's values alone, from
    the numpy model (its mask keeps x7's background cell 0 (0.25) and its target cell 9 (1):
    precision 0.8, recall 1). Also runs main on a silent target without a crash, and the
    loss table names fold 1. Catches: `.nanmean()` -> `.mean()` (nan printed), `--fold`
    ignored."""
    lines = _run_main(tmp_path, monkeypatch, capsys, extra=("--fold", "1"))
    assert lines[0].endswith("fold 1 (2 clips)")
    rows = _rows(lines, "| LMAC: clips | n |")
    _, target, background = _sources(fold=1)
    clips = (target + background).astype(np.float64)
    kept = clips[:1] * _np_mask([MASK_CELLS])
    sdri = _np_si_sdr(kept, target[:1].astype(np.float64)) - _np_si_sdr(clips[:1], target[:1].astype(np.float64))
    assert rows["all"] == ["2", f"{sdri[0]:+.2f}", "0.800", "1.000", "1.000"]
    assert any(line.startswith("| L-MAC's loss (out_loss not_class, l1_weighting bins; fold 1)") for line in lines)


def test_main_floor_row_in_the_brains_mask_domain(tmp_path, monkeypatch, capsys):
    """Guards the reference "above the clip's floor" row's `floor_mask(X, brain.mask_domain)`:
    fold 2's one clip holds its target in cell 5 and a steady background in bin 1 (0.5 on
    frames 0-2, 0.6 on frame 3: median log1p 0.5). With `mask_domain: magnitude` the floor
    mask is 1 on cell 5 and (expm1(log1p 0.6 - log1p 0.5)) / 0.6 = (1.6 / 1.5 - 1) / 0.6 =
    0.111 on frame 3's bin 1: mean (1 + 0.111) / 12 = 0.093 (in the log domain it would be
    (1 + 0.137) / 12 = 0.095). One clip: no pair of clips of other classes, whose columns are
    "-" (before the fix, the empty batch of pairs crashed the classifier: RuntimeError, and
    the L-MAC loss table was never printed). Catches: the floor in a fixed domain (not the
    brain's), the empty-pairs guard removed."""
    lines = _run_main(tmp_path, monkeypatch, capsys, extra=("--fold", "2"), mask_domain="magnitude")
    rows = _rows(lines, "| reference mask")
    assert rows["above the clip's floor (no classifier)"][0] == "0.093"
    assert _rows(lines, "| mask | on its own clip")["ground truth"] == ["1.000", "-", "-"]
