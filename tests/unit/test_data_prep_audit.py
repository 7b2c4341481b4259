"""Audit tests (mutation testing) of the data preparation and the metric agreement.

Guards what the existing tests left open in data_prep/esc50_prepare.py (folds left out of
every split, disjointness of train and test, durations of multi-channel files, csv errors),
data_prep/ground_truth.py (which file is the target, the sum check), the reuse of the
synthetic dataset (data_prep/synthetic_prepare.py) and recipes/reporting/agreement.py
(ties, undefined values, the direction of each metric). Expected values are worked out
by hand (or with scipy as an independent implementation), on small real files in tmp_path.
"""

import csv
import hashlib
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.stats import kendalltau

from data_prep.audio import load_clip
from data_prep.esc50_prepare import check_folds, prepare_esc50
from data_prep.ground_truth import GroundTruth
from data_prep.synthetic_prepare import create_synthetic_dataset
from recipes.reporting import agreement

RATE = 16000
CSV_HEADER = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]


# ---- esc50_prepare ------------------------------------------------------------------------


def _write_esc50(root, rows, rate=RATE, audio=None):
    """A small ESC-50 layout: rows (filename, fold, target, category), 0.5 s mono sines."""
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(exist_ok=True)
    with open(root / "meta" / "esc50.csv", "w", newline="", encoding="utf-8") as fout:
        writer = csv.writer(fout)
        writer.writerow(CSV_HEADER)
        for filename, fold, target, category in rows:
            writer.writerow([filename, fold, target, category, "False", 100, "A"])
    t = np.arange(rate // 2) / rate
    for filename, *_ in rows:
        if filename:
            sf.write(root / "audio" / filename, 0.3 * np.sin(2 * np.pi * 440 * t) if audio is None else audio, rate)
    return root


def _prepare(data, out, **folds):
    paths = {split: out / f"{split}.json" for split in ("train", "valid", "test")}
    prepare_esc50(data, None, paths["train"], paths["valid"], paths["test"], **folds)
    return {split: json.loads(path.read_text()) for split, path in paths.items()}


def test_folds_of_no_split_reach_no_manifest_on_real_clips(esc50_sample_dir, tmp_path):
    """Guards the split of each fold: with train (2, 4), valid (1), test (3), the real sample's
    fold-5 clip is in no manifest (not added to training), and each clip is in the split of
    its fold. Expected by hand from the sample's file names (ESC-50 names start with the fold)."""
    manifests = _prepare(
        esc50_sample_dir, tmp_path, train_fold_nums=[2, 4], valid_fold_nums=1, test_fold_nums=[3]
    )
    assert {split: sorted(entries) for split, entries in manifests.items()} == {
        "train": ["2-100648-A-43", "4-156993-A-19"],
        "valid": ["1-100032-A-0"],
        "test": ["3-103051-C-19"],
    }
    assert {entry["fold"] for entry in manifests["train"].values()} == {2, 4}


@pytest.mark.parametrize(
    "folds, shared",
    [
        ({"train_fold_nums": [1, 2, 3], "valid_fold_nums": [4], "test_fold_nums": [3]}, "[3]"),
        ({"train_fold_nums": [1, 2], "valid_fold_nums": [4, 5], "test_fold_nums": [5]}, "[5]"),
    ],
)
def test_train_or_valid_sharing_a_fold_with_test_is_refused(tmp_path, folds, shared):
    """Guards the disjointness check between train and test (and valid and test): a fold in
    both would put test clips in the other split or silently drop them. Expected: ValueError
    naming the shared fold, nothing written (the folds are read before any file)."""
    rows = [(f"{fold}-1-A-0.wav", fold, 0, "dog") for fold in range(1, 6)]
    data = _write_esc50(tmp_path / "data", rows)
    with pytest.raises(ValueError, match=rf"share fold\(s\) \{shared}"):
        _prepare(data, tmp_path / "out", **folds)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", [0, [0, 1], 6])
def test_check_folds_refuses_fold_zero_and_six(bad):
    """Guards the range 1..5 of ESC-50 folds (the docstring): 0 and 6 are ValueErrors."""
    with pytest.raises(ValueError, match="folds are integers in 1..5"):
        check_folds("train_fold_nums", bad)


def test_manifest_duration_of_a_stereo_22k_clip_is_its_length_in_seconds(tmp_path):
    """Guards the manifest's duration on a multi-channel, non-16 kHz file: 33075 stereo
    frames at 22050 Hz last 33075 / 22050 = 1.5 s (by hand; frames count per channel)."""
    t = np.arange(33075) / 22050
    stereo = 0.3 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1)
    rows = [(f"{fold}-1-A-0.wav", fold, 0, "dog") for fold in range(1, 6)]
    data = _write_esc50(tmp_path / "data", rows, rate=22050, audio=stereo)
    manifests = _prepare(data, tmp_path / "out")
    assert manifests["test"]["5-1-A-0"]["duration"] == 1.5
    assert {entry["duration"] for entry in manifests["train"].values()} == {1.5}


def test_csv_errors_name_the_file_line(tmp_path):
    """Guards the line number in the csv error (header = line 1, first row = line 2): a
    non-integer fold on the second data row is line 3; an empty category on the first is
    line 2 (the docstring: empty filename or category is a ValueError)."""
    rows = [("1-1-A-0.wav", 1, 0, "dog"), ("2-1-A-0.wav", "two", 0, "dog")]
    data = _write_esc50(tmp_path / "a", rows)
    with pytest.raises(ValueError, match=r"esc50.csv, line 3: fold 'two'"):
        _prepare(data, tmp_path / "out")
    data = _write_esc50(tmp_path / "b", [("1-1-A-0.wav", 1, 0, "")])
    with pytest.raises(ValueError, match=r"line 2: empty filename or category"):
        _prepare(data, tmp_path / "out")


def test_a_clip_listed_twice_is_refused_before_any_manifest(tmp_path):
    """Guards the one-row-per-clip check of `read_esc50_csv`: a clip listed in fold 1 (line 2)
    and again in fold 5 (line 3) would be in train.json and test.json at once; the same stem
    with another extension would be one manifest key for two files. Refused, naming both
    lines, and no manifest is written."""
    rows = [("1-1-A-0.wav", 1, 0, "dog"), ("1-1-A-0.wav", 5, 0, "dog")]
    data = _write_esc50(tmp_path / "a", rows)
    with pytest.raises(ValueError, match=r"line 3: clip 1-1-A-0 is listed already on line 2"):
        _prepare(data, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.json"))
    data = _write_esc50(tmp_path / "b", [("1-1-A-0.wav", 1, 0, "dog"), ("1-1-A-0.flac", 5, 0, "dog")])
    with pytest.raises(ValueError, match=r"line 3: clip 1-1-A-0 is listed already on line 2"):
        _prepare(data, tmp_path / "out")


# ---- ground truth ---------------------------------------------------------------------------


def _write_ground_truth(root, sources):
    """A synthetic-layout set by hand: {id: (target, background)} as float wavs, their sum as
    the clip, and meta/ground_truth.csv. Returns root."""
    for sub in ("meta", "audio", "sources"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    lines = ["id,target_path,background_path,onset_s,offset_s,snr_db"]
    for clip_id, (target, background) in sources.items():
        sf.write(root / "sources" / f"{clip_id}_target.wav", target, RATE, subtype="FLOAT")
        sf.write(root / "sources" / f"{clip_id}_background.wav", background, RATE, subtype="FLOAT")
        sf.write(root / "audio" / f"{clip_id}.wav", target + background, RATE, subtype="FLOAT")
        lines.append(f"{clip_id},sources/{clip_id}_target.wav,sources/{clip_id}_background.wav,0,0,0")
    (root / "meta" / "ground_truth.csv").write_text("\n".join(lines) + "\n")
    return root


def _two_clips():
    n = 1600
    t = np.arange(n) / RATE
    target = np.zeros(n, dtype="float32")
    target[400:800] = 0.5 * np.sin(2 * np.pi * 1000 * t[400:800])  # the event: samples 400..799
    background = (0.1 * np.cos(2 * np.pi * 150 * t)).astype("float32")
    return {"c1": (target, background), "c2": (0.5 * target, 2 * background)}


def test_sources_are_the_target_and_background_files_scaled_by_the_clip_gain(tmp_path):
    """Guards which file is the target (not the background), the shared gain and the padding:
    expected target = t / max|t + b| and background = b / max|t + b| (numpy, by hand), zero
    after the files' 1600 samples when the recipe reads 2000; the target is 0 outside 400..799."""
    sources = _two_clips()
    root = _write_ground_truth(tmp_path / "gt", sources)
    ids = list(sources)
    clips = torch.stack([load_clip(root / "audio" / f"{i}.wav", RATE, 2000) for i in ids])
    target, background = GroundTruth(root, RATE, 2000).sources(ids, clips)
    for row, clip_id in enumerate(ids):
        t, b = (s.astype(np.float64) for s in sources[clip_id])
        gain = 1.0 / np.abs(t + b).max()
        expected_t = np.concatenate([gain * t, np.zeros(400)])
        expected_b = np.concatenate([gain * b, np.zeros(400)])
        assert np.allclose(target[row].numpy(), expected_t, atol=1e-6)
        assert np.allclose(background[row].numpy(), expected_b, atol=1e-6)
    assert not target[:, :400].any() and not target[:, 800:].any()


def test_sources_that_do_not_sum_to_the_clip_are_refused(tmp_path):
    """Guards the sum check (SOURCE_CHECK_ATOL 1e-3, max over samples, any clip): c2's
    background is off by 0.03 on 10 of its 1600 samples, about 0.03 / 0.6 = 0.05 after the
    gain (mean error only 3e-4); the pair (c1 good, c2 bad) is a ValueError naming c2 alone."""
    sources = _two_clips()
    clips = {}
    root = _write_ground_truth(tmp_path / "gt", sources)
    for clip_id in sources:
        clips[clip_id] = load_clip(root / "audio" / f"{clip_id}.wav", RATE, 1600)
    _, background = sources["c2"]
    wrong = background.copy()
    wrong[1000:1010] += 0.03
    sf.write(root / "sources" / "c2_background.wav", wrong, RATE, subtype="FLOAT")
    truth = GroundTruth(root, RATE, 1600)
    truth.sources(["c1"], clips["c1"][None])  # the good clip alone passes
    with pytest.raises(ValueError, match=r"clip\(s\) \['c2'\] do not sum"):
        truth.sources(["c1", "c2"], torch.stack([clips["c1"], clips["c2"]]))


def test_ground_truth_is_available_only_where_the_csv_is(tmp_path, esc50_sample_dir):
    """Guards GroundTruth.available: True for a folder with meta/ground_truth.csv (a file),
    False for real ESC-50 (no csv), for a folder whose ground_truth.csv is a directory, and None."""
    root = _write_ground_truth(tmp_path / "gt", _two_clips())
    assert GroundTruth.available(str(root)) is True
    assert GroundTruth.available(str(esc50_sample_dir)) is False
    (tmp_path / "odd" / "meta" / "ground_truth.csv").mkdir(parents=True)
    assert GroundTruth.available(str(tmp_path / "odd")) is False
    assert GroundTruth.available(None) is False


# ---- synthetic dataset reuse ----------------------------------------------------------------

SMALL = {"classes": 1, "per_class": 5, "seed": 3, "duration_s": 0.5}


def _hashes(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_complete_dataset_missing_a_source_or_a_row_is_written_again(tmp_path):
    """Guards the reuse test of a complete dataset (params file present): a deleted source
    file, or a clip row dropped from meta/esc50.csv, makes the rerun write the dataset again,
    byte for byte as the first run (same seed), instead of reusing it."""
    out = create_synthetic_dataset(tmp_path / "data", **SMALL)
    first = _hashes(out)
    (out / "sources" / "3-100002-A-0_background.wav").unlink()
    create_synthetic_dataset(out, **SMALL)
    assert _hashes(out) == first
    esc50_csv = out / "meta" / "esc50.csv"
    esc50_csv.write_text("".join(esc50_csv.read_text().splitlines(keepends=True)[:-1]))
    create_synthetic_dataset(out, **SMALL)
    assert _hashes(out) == first


def test_a_dataset_with_another_duration_is_not_reused(tmp_path):
    """Guards the parameter comparison on a rerun: same seed and clip count but another
    duration_s (0.5 s -> 1 s) is refused ("other parameters", naming duration_s), not reused
    with clips of the wrong length."""
    out = create_synthetic_dataset(tmp_path / "data", **SMALL)
    with pytest.raises(ValueError, match="other parameters.*duration_s"):
        create_synthetic_dataset(out, **{**SMALL, "duration_s": 1.0})


# ---- metric agreement -----------------------------------------------------------------------


def test_kendall_tau_is_none_below_three_methods():
    """Guards 'None for fewer than 3': two methods, although ordered, give None; and in
    metric_agreement two metrics each defined on 3 methods but sharing only 2 give None."""
    assert agreement.kendall_tau([1.0, 2.0], [1.0, 2.0]) is None
    rows = {
        "a": {"faithfulness": 0.1, "gt_precision": 0.1},
        "b": {"faithfulness": 0.2, "gt_precision": 0.2},
        "c": {"faithfulness": 0.3},
        "d": {"gt_precision": 0.3},
    }
    result = agreement.metric_agreement(rows)
    assert result["metrics"] == ["faithfulness", "gt_precision"]
    assert result["tau"]["faithfulness"]["gt_precision"] is None


def test_ties_give_kendall_tau_b():
    """Guards tau-b (ties counted, as the module says): a = (1, 1, 2, 3), b = (1, 2, 3, 4):
    6 pairs, 1 tied in a, the 5 others concordant: (5 - 0) / sqrt((6 - 1) * 6) = 5 / sqrt(30)
    by hand (tau-c would give 0.9375, a broken tie 1.0); scipy's default agrees."""
    expected = 5 / math.sqrt(30)
    assert expected == pytest.approx(kendalltau([1, 1, 2, 3], [1, 2, 3, 4]).statistic)
    rows = {
        m: {"faithfulness": ff, "gt_precision": gt}
        for m, ff, gt in (("a", 0.5, 0.1), ("b", 0.5, 0.2), ("c", 0.7, 0.3), ("d", 0.9, 0.4))
    }
    tau = agreement.metric_agreement(rows)["tau"]
    assert tau["faithfulness"]["gt_precision"] == pytest.approx(expected)
    assert agreement.kendall_tau([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(expected)


@pytest.mark.parametrize("hole", [None, math.nan, "n/a"])
def test_tau_is_over_the_methods_where_both_metrics_are_defined(hole):
    """Guards the pairing over methods where both values are defined: method d has no usable
    FF (missing, NaN or not a number), so tau is over a, b, c: FF (0.1, 0.2, 0.3) vs GT
    (0.1, 0.3, 0.2): 2 concordant pairs, 1 discordant: (2 - 1) / 3 = 1/3 by hand."""
    rows = {
        "a": {"faithfulness": 0.1, "gt_precision": 0.1},
        "b": {"faithfulness": 0.2, "gt_precision": 0.3},
        "c": {"faithfulness": 0.3, "gt_precision": 0.2},
        "d": {"gt_precision": 0.9},
    }
    if hole is not None:
        rows["d"]["faithfulness"] = hole
    result = agreement.metric_agreement(rows)
    assert result["tau"]["faithfulness"]["gt_precision"] == pytest.approx(1 / 3)
    assert result["methods"] == 4


def test_every_metric_is_turned_to_higher_is_better():
    """Guards the direction of each metric (AGREEMENT_METRICS): the better method has higher FF,
    Fid-In, insertion AUC, SI-SDRi, GT precision and lower AD, deletion AUC. Four methods
    better in every metric at once: every pair ranks them the same way, tau = +1 everywhere
    (by hand: all 6 pairs concordant)."""
    rows = {
        f"m{i}": {
            "faithfulness": 0.1 * i,
            "fid_in": 0.2 * i,
            "AD": 80.0 - 10 * i,
            "deletion_auc": 0.9 - 0.2 * i,
            "insertion_auc": 0.1 + 0.2 * i,
            "si_sdri": -3.0 + 2 * i,
            "gt_precision": 0.3 + 0.1 * i,
        }
        for i in range(4)
    }
    result = agreement.metric_agreement(rows)
    assert sorted(result["metrics"]) == sorted(agreement.AGREEMENT_METRICS)
    for first in result["metrics"]:
        for second in result["metrics"]:
            assert result["tau"][first][second] == pytest.approx(1.0), (first, second)
