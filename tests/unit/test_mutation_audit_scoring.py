"""Mutation audit of recipes/evaluation/scoring.py (eval.py's test-set loop: every method and
reference scored, the classifier check, metrics.json) and recipes/core/labels.py.

Each test kills mutants that the other tests let live (named in its docstring: the line's code
and the mutation). The Brain is test_scoring_tables_audit.py's (no set-up, a classifier that
tells sound from silence: logits (10 mean(X), 1, 0)) on its five hand-made clips c0 .. c4
(labels 0, 1, 0, 1, 0; c2 silent unless said). Expected values are worked out by hand in the
docstrings, or from the documented rule written down again here (the batch generator's
seed), never by running the code under test.
"""

import json
import math
import statistics
import types

import torch
from test_scoring_tables_audit import (
    N_SAMPLES,
    KeepsSoundClips,
    TargetOf,
    five_clips,
    loudness_brain,
)

from data_prep.interference import Interference, Mixture
from recipes.evaluation import metrics, scoring

#: p_c of class 0 on silence, where the classifier's logits are (0, 1, 0): e^0 / (e^0 + e^1 + e^0).
P_CLASS_0_OF_SILENCE = 1 / (2 + math.e)


class LoudBinsFirst(KeepsSoundClips):
    """An interpreter whose mask ranks a clip's bins by loudness (X / max X), with an oracle (the
    target region itself), a metric of its own that reads the batch's generator ("draw": one
    uniform draw per clip, reported as the median over the clips, as L2I's FF) and one that is
    never defined ("undefined": NaN)."""

    has_oracle = True
    median_stats = ("draw",)

    def interpret(self, X, representations, classes, stage):
        return {"mask": X / X.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)}

    def interpreter_metrics(self, outputs, scores, generator=None):
        n = outputs["X"].shape[0]
        return {"draw": torch.rand(n, generator=generator), "undefined": torch.full((n,), math.nan)}

    def oracle_mask(self, outputs, region):
        return region.float()


def loud_bins_brain(seed=0):
    brain = loudness_brain()
    brain.__class__ = LoudBinsFirst
    brain.hparams.seed = seed
    return brain


def batch_draws(seed, starts_and_sizes):
    """The documented draws: batch `start`'s generator is seeded seed * 1_000_003 + start."""
    return [
        value
        for start, size in starts_and_sizes
        for value in torch.rand(size, generator=torch.Generator().manual_seed(seed * 1_000_003 + start)).tolist()
    ]


#: five clips in batches of 2: starts 0, 2, 4 with 2, 2, 1 clips.
BATCHES = [(0, 2), (2, 2), (4, 1)]


def rows_of(result, method):
    return {row["id"]: row for row in result["per_clip_rows"] if row["method"] == method}


def evaluate(brain, dataset, ground_truth, tmp_path, options, interference=None):
    interference = interference or Interference("none", dataset, 0, 16000, N_SAMPLES)
    return scoring.evaluate(
        brain, dataset, {"batch_size": 2}, interference, ground_truth, str(tmp_path / "clips"), 0, options
    )


def test_evaluation_options_keep_what_they_are_given_and_default_to_zero_deletion():
    """EvaluationOptions: the default `deletion_value="zero"` changed to "noise_floor" (C19);
    `self.n_resamples = int(n_resamples)` halved (C20). eval.py's documented defaults: every
    baseline, deletion value zero, seed 0, 1000 resamples; given values are kept (as ints)."""
    default = scoring.EvaluationOptions()
    assert default.baselines == ("random", "saliency", "integrated_gradients", "smoothgrad", "occlusion", "above_floor")
    assert (default.deletion_value, default.seed, default.n_resamples) == ("zero", 0, 1000)
    given = scoring.EvaluationOptions(["random"], "noise_floor", "4", "30")
    assert (given.baselines, given.deletion_value, given.seed, given.n_resamples) == (("random",), "noise_floor", 4, 30)


def test_evaluate_scores_the_oracle_as_a_method_and_the_masks_gt_metrics_on_their_own_x_int(tmp_path):
    """Clips c0 .. c3 their own target, c4's target silent (TargetOf, as in
    test_scoring_tables_audit.py); seed 2, no baseline. Kills:

    - C32 `stats[ORACLE]` made `references[ORACLE]`: the oracle is a row of "methods" (evaluate's
      docstring), not of "references". Its mask is the target region, the ground truth's: Fid-In
      (1 + 1 + 1 + 1 + 0) / 5 = 0.8 as worked out in test_scoring_tables_audit.py.
    - C35 `brain.score(...)` made `brain.score_mask(outputs, outputs["mask"])`: the interpreter's own
      metrics ("draw") are lost.
    - C66 the oracle's mask not put in `masks` (scored, but without curves and GT metrics): the
      oracle has its curves and its GT precision, as every method.
    - C33 the batch generator seeded `seed * 1_000_003` without `+ start`: every batch would draw the
      same numbers; clip k's draw is the documented generator's (seed 2 * 1_000_003 + its batch's
      start), draw number k - start.
    - C67 `metrics.StageStats(brain.median_stats)` made `StageStats()`: the figure of a median
      statistic is the median of the five draws (the third smallest), not their mean.
    - C52 the intervals' "low" and "high" swapped: five different draws, their median lies
      strictly inside the 95 % bootstrap interval of the median.
    - C40 the all-ones mask of the ground-truth metrics made `region`: c4's region is empty
      (its target is silent) and the all-ones mask keeps all of c4's energy, none of it in the
      region: GT precision 0 / E = 0, defined (the region's mask would keep nothing: 0 / 0).
    - C41 `X_int = brain.apply_mask(outputs["X"], mask)` made `outputs["X"]`: the ground truth's
      and the oracle's mask on c4 keep nothing, and the region holds none of c4's energy either:
      GT precision 0 / 0, NaN (metrics.ground_truth_metrics' docstring), not the whole clip's 0.
      On c0 they keep the whole region, all of the clip's energy: precision and recall 1.
    - C56 the per-clip AUC lists `aucs[method][k]` made `aucs[method][0]` (the insertion AUCs
      would be the deletion AUCs): the interpreter ranks the loudest bins first, so deleting the
      top share f leaves less of X's sum than keeping the top 1 - f, and this classifier's p_c
      rises with the sum: on noise clip c0 the insertion AUC is well above the deletion AUC.
    """
    brain = loud_bins_brain(seed=2)
    ground_truth = TargetOf(["c0", "c1", "c2", "c3"])
    options = scoring.EvaluationOptions(baselines=(), seed=2, n_resamples=200)
    result = evaluate(brain, five_clips(), ground_truth, tmp_path, options)
    name = "LoudBinsFirst"
    assert list(result["methods"]) == [name, "oracle"]
    assert list(result["references"]) == ["all_ones", "ground_truth"]
    assert math.isclose(result["methods"]["oracle"]["fid_in"], 0.8, rel_tol=1e-6)

    draws = [rows_of(result, name)[f"c{i}"]["draw"] for i in range(5)]
    expected = batch_draws(2, BATCHES)
    assert draws == [float(torch.tensor(v)) for v in expected]
    median = result["methods"][name]["draw"]
    assert math.isclose(median, statistics.median(expected), rel_tol=1e-6)
    interval = result["intervals"][name]["draw"]
    assert interval["low"] < median < interval["high"]
    assert len(result["curves"]["per_clip"]["oracle"]["deletion_auc"]) == 5

    assert rows_of(result, "all_ones")["c4"]["gt_precision"] == 0.0
    for method in ("ground_truth", "oracle"):
        assert math.isnan(rows_of(result, method)["c4"]["gt_precision"]), method
        c0 = rows_of(result, method)["c0"]
        assert math.isclose(c0["gt_precision"], 1.0, rel_tol=1e-6) and math.isclose(c0["gt_recall"], 1.0, rel_tol=1e-6)

    aucs = result["curves"]["per_clip"][name]
    assert aucs["insertion_auc"][0] > aucs["deletion_auc"][0] + 0.05


def test_without_ground_truth_there_is_no_oracle_and_the_curves_end_at_the_deletion_value(tmp_path):
    """No ground truth, deletion value noise_floor, no silent clip (all five are noise: class 0).
    Kills:

    - C31 `with_oracle = ground_truth is not None and brain.has_oracle` made `brain.has_oracle`: the
      oracle needs the target region; without ground truth there is no "oracle" row or curve.
    - C45 `endpoint_probabilities(..., options.deletion_value, ...)` made "zero": the deletion curve
      ends (everything removed) at p_c of the deletion value alone. With zeros that is p_c of
      silence, 1 / (2 + e) ~ 0.21 on every clip; a noise clip's floor (the 10 % quantile of each
      frequency's log1p magnitudes, > 0) has a positive mean, so p_c is higher. With "zero" the
      end is 1 / (2 + e) (the same clips, for contrast).
    """
    brain = loud_bins_brain()
    dataset = five_clips(silent=None)
    floor = evaluate(brain, dataset, None, tmp_path, scoring.EvaluationOptions((), "noise_floor", 0, 20))
    assert "oracle" not in result_rows(floor)
    assert "oracle" not in floor["curves"]["methods"] and "oracle" not in floor["curves"]["per_clip"]
    assert floor["curves"]["deletion_value"] == "noise_floor"
    end = floor["curves"]["methods"]["LoudBinsFirst"]["deletion"][-1]
    assert end > P_CLASS_0_OF_SILENCE + 0.1
    zero = evaluate(brain, dataset, None, tmp_path, scoring.EvaluationOptions((), "zero", 0, 20))
    assert math.isclose(zero["curves"]["methods"]["LoudBinsFirst"]["deletion"][-1], P_CLASS_0_OF_SILENCE, rel_tol=1e-5)


def result_rows(result):
    return {**result["methods"], **result["references"]}


class AddsHum:
    """An interference that adds a 1 kHz hum (amplitude 0.05) to every clip: the evaluated
    clips are not the dataset's."""

    def mix(self, clips, start):
        hum = 0.05 * torch.sin(2 * math.pi * 1000 * torch.arange(clips.shape[-1]) / 16000)
        added = hum.expand_as(clips)
        return Mixture(clips + added, torch.ones_like(clips[:, :1]), added)


def test_the_all_ones_audio_is_the_evaluated_clip_so_its_si_sdri_is_zero(tmp_path):
    """With an interference (a hum added to each clip), "keeping everything" is the evaluated
    clip, hum included: its audio is that clip and the improvement is measured over that clip,
    so SI-SDRi = SI-SDR(clip, target) - SI-SDR(clip, target) = 0 exactly on every clip with a
    target (c0, c1, c3; silent c2's and c4's target: undefined). Kills C39 (`"all_ones": wavs`
    made the dataset's clips, without the hum: here the target itself, a large positive SI-SDRi)
    and C42 (the reference of `ground_truth_metrics` made the dataset's clips, the target itself:
    its SI-SDR is unbounded and the SI-SDRi not 0)."""
    ground_truth = TargetOf(["c0", "c1", "c3"])
    options = scoring.EvaluationOptions(baselines=(), seed=0, n_resamples=20)
    result = evaluate(loudness_brain(), five_clips(), ground_truth, tmp_path, options, AddsHum())
    ones = rows_of(result, "all_ones")
    assert [ones[c]["si_sdri"] for c in ("c0", "c1", "c3")] == [0.0, 0.0, 0.0]
    assert math.isnan(ones["c4"]["si_sdri"])


def test_evaluate_without_options_scores_every_baseline_with_the_yamls_seed(tmp_path, monkeypatch):
    """`options=None`: every baseline, deletion value zero and the yaml's seed (evaluate's
    docstring). Kills C28 (`EvaluationOptions(seed=brain.hparams.seed)` made `EvaluationOptions()`:
    seed 0 instead of the yaml's 3, so the batch draws are not seed 3's) and C19 through evaluate.
    The baselines themselves are stood in for by the interpreter's mask (what they are is
    recipes/evaluation/baselines.py's business; that they are asked for is evaluate's)."""
    asked = []

    def stand_in(brain, outputs, generator, baselines):
        asked.append(tuple(baselines))
        return {baseline: outputs["mask"] for baseline in baselines}

    monkeypatch.setattr(scoring, "baseline_masks", stand_in)
    result = scoring.evaluate(
        loud_bins_brain(seed=3), five_clips(), {"batch_size": 2},
        Interference("none", five_clips(), 0, 16000, N_SAMPLES), None, str(tmp_path / "clips"), 0,
    )  # fmt: skip
    every = ("random", "saliency", "integrated_gradients", "smoothgrad", "occlusion", "above_floor")
    assert asked == [every] * 3
    assert list(result["methods"]) == ["LoudBinsFirst", *every]
    assert result["curves"]["deletion_value"] == "zero"
    draws = [row["draw"] for row in result["per_clip_rows"] if row["method"] == "LoudBinsFirst"]
    assert draws == [float(torch.tensor(v)) for v in batch_draws(3, BATCHES)]


def test_run_evaluation_writes_the_runs_figures_into_metrics_json(tmp_path):
    """run_evaluation on the five clips (c2 silent; no ground truth: the data folder has none),
    the random baseline, 30 bootstrap resamples, yaml seed 5, one report clip. By hand: accuracy
    2 / 5 (the classifier says 0 for c0, c1, c3, c4, 1 for silent c2; labels 0, 1, 0, 1, 0), 5
    clips, per-class counts 3 (class '0': c0, c2, c4) and 2 (class '1'), per_clip.csv with a row
    per (clip, method): 5 x 3 + the header. The interpreter's "undefined" metric is NaN on every
    clip: its mean is null in metrics.json (JSON has no NaN). Kills C60 (`args.n_bootstrap` not
    handed on: 1000 resamples), C61 (`"classifier_accuracy"` the target accuracy, None without
    ground truth), C62 (`"n_clips"` the report clips), C63 (`by_class` of half the rows), C64 (the
    bootstrap seed not the yaml's) and C65 (metrics.json without `finite_or_none`: refused)."""
    brain = loud_bins_brain(seed=5)
    brain.wham_mixer = None
    data_folder = tmp_path / "data"
    data_folder.mkdir()
    hparams = {
        "sample_rate": 16000,
        "signal_length_s": N_SAMPLES / 16000,
        "seed": 5,
        "data_folder": str(data_folder),
        "test_dataloader_opts": {"batch_size": 2},
        "test_fold_nums": [5],
        "embedding_model_path": "hub/embedding",
        "classifier_model_path": "hub/classifier",
    }
    args = types.SimpleNamespace(
        overlap_type="none", speech_folder=None, baselines="random", deletion_value="zero", n_bootstrap=30,
        n_report_clips=1, hparams_file="hparams.yaml", pretrained_interpreter="run", sanity_check=False,
        sanity_clips=2,
    )  # fmt: skip
    eval_folder = tmp_path / "eval"
    result = scoring.run_evaluation(brain, hparams, {"test": five_clips()}, args, str(eval_folder))
    written = json.loads((eval_folder / "metrics.json").read_text())
    for figures in (result, written):
        assert figures["classifier_accuracy"] == 2 / 5
        assert figures["n_clips"] == 5
        assert figures["bootstrap"] == {"resamples": 30, "level": metrics.CONFIDENCE_LEVEL, "seed": 5}
        assert {label: entry["n"] for label, entry in figures["by_class"].items()} == {"0": 3, "1": 2}
        assert figures["baselines"] == ["random"]
    assert written["methods"]["LoudBinsFirst"]["undefined"] is None
    assert written["n_undefined"]["LoudBinsFirst"]["undefined"] == 5
    lines = (eval_folder / "per_clip.csv").read_text().splitlines()
    assert len(lines) == 1 + 5 * 3 and lines[0].startswith("id,true_class,class,method,")
