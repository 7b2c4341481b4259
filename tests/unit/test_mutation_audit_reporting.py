"""Mutation audit of the figures that reach a paper's table: recipes/reporting/tables.py,
recipes/reporting/agreement.py, recipes/reporting/html_report.py's numbers and
recipes/compare.py's aggregation over seeds.

Each test kills a mutant that the other tests let live (named in its docstring: the file, the
line's code and the mutation). Expected values are worked out by hand in the docstrings or
comments, or with `statistics`, never by running the code under test.
"""

import json
import statistics

from recipes import compare
from recipes.reporting import agreement, html_report, tables


def test_setup_label_names_the_wham_noise():
    """tables._with_setup: `extras.append("WHAM! noise")` dropped (an evaluation with WHAM!
    noise labelled as one without: its rows would read as the clean set's)."""
    assert tables.setup_label({"interpreter": "PIQ", "wham_noise": True}) == "PIQ [WHAM! noise]"
    evaluation = {"interpreter": "PIQ", "overlap_type": "mixtures", "wham_noise": True}
    assert tables.setup_label(evaluation) == "PIQ [mixtures, WHAM! noise]"


def test_exactly_half_the_masked_predictions_on_one_class_is_no_warning():
    """tables.classifier_warning: `share > MAX_MASKED_TOP_CLASS_SHARE` made `>=`. The warning
    says "more than half": 5 of 10 is half, not more; 6 of 10 is."""
    check = {"masked_top_class": "dog", "masked_predictions": 10, "ground_truth_fid_in": 0.8}
    assert tables.classifier_warning({**check, "masked_top_class_share": 0.5}) is None
    warning = tables.classifier_warning({**check, "masked_top_class_share": 0.6})
    assert "60 % of its predictions on masked inputs (6 of 10) are class 'dog'" in warning


def test_metrics_md_says_95_percent_and_unknown_resamples_without_the_bootstrap_settings():
    """tables.metrics_markdown: the default level `bootstrap.get('level', 0.95)` changed (a
    metrics.json without "bootstrap" settings, as older ones, still has intervals: the
    default 95 % level, resamples unknown "?")."""
    result = {
        "interpreter": "PIQ",
        "n_clips": 4,
        "overlap_type": "none",
        "classifier_accuracy": 0.75,
        "methods": {"PIQ": {"fid_in": 0.5}},
        "intervals": {"PIQ": {"fid_in": {"low": 0.25, "high": 0.75}}},
    }
    text = tables.metrics_markdown(result)
    assert "| PIQ | 0.500 ± 0.250 |" in text.splitlines()  # (0.75 - 0.25) / 2
    assert "± is half the 95 % bootstrap confidence interval (? resamples of the clips" in text


def test_x_all_ones_is_a_dash_when_the_all_ones_precision_is_zero():
    """tables.baseline_margins: `"-" if precision is None or not ones` made `ones is None`
    (a division by zero for a clip set whose target has no energy in the all-ones mask).
    By hand: margin 13 - (-8) = +21.00 over the random mask, the only baseline."""
    piq = {
        "interpreter": "PIQ",
        "methods": {
            "PIQ": {"si_sdri": 13.0, "gt_precision": 0.8, "fid_in": 0.9},
            "random": {"si_sdri": -8.0},
        },
        "references": {"all_ones": {"gt_precision": 0.0}},
    }
    assert tables.baseline_margins([piq]).splitlines()[-1] == (
        "| PIQ | +13.00 | random mask | -8.00 | +21.00 | 0.800 | - | 0.900 |"
    )


def test_the_agreement_of_one_metric_is_no_table():
    """agreement.agreement_markdown: `if len(present) < 2` made `< 1` (a 1 x 1 table of
    tau = 1.00, a metric agreeing with itself)."""
    rows = {"a": {"fid_in": 0.9}, "b": {"fid_in": 0.5}, "c": {"fid_in": 0.1}}
    result = agreement.metric_agreement(rows)
    assert result["metrics"] == ["fid_in"]
    assert agreement.agreement_markdown(result, tables.metric_title) == ""


def _paired_evaluation(folder, stats):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(
        json.dumps({"interpreter": "L2I", "methods": {"L2I": stats}})
    )
    return str(folder)


def test_paired_table_means_over_three_seeds_are_means_not_medians(tmp_path):
    """compare.paired_table: `statistics.mean` of the demo's (`before`) or the variant's
    (`after`) values made `statistics.median` (two seeds, as the other tests have, cannot
    tell them apart). By hand over seeds 1, 2, 3:
    SI-SDRi 0, 0, 6 -> 1, 1, 10: means 2 -> 4 (+2.000), medians would be 0 -> 1;
    GT precision 0.1, 0.1, 0.4 -> 0.2, 0.2, 0.5: means 0.2 -> 0.3 (+0.100);
    Fid-In 0, 0, 0.9 -> 0.5, 0.5, 0.8: means 0.3 -> 0.6 (+0.300)."""
    before = [(0.0, 0.1, 0.0), (0.0, 0.1, 0.0), (6.0, 0.4, 0.9)]
    after = [(1.0, 0.2, 0.5), (1.0, 0.2, 0.5), (10.0, 0.5, 0.8)]
    keys = ("si_sdri", "gt_precision", "fid_in")
    base, var = {}, {}
    for seed, (b, a) in enumerate(zip(before, after), start=1):
        base[seed] = {"l2i": _paired_evaluation(tmp_path / f"b{seed}", dict(zip(keys, b)))}
        var[seed] = {"l2i": _paired_evaluation(tmp_path / f"v{seed}", dict(zip(keys, a)))}
    assert statistics.mean([0.0, 0.0, 6.0]) != statistics.median([0.0, 0.0, 6.0])
    table, missing = compare.paired_table(var, base)
    assert missing == []
    assert table.splitlines()[-1] == (
        "| l2i | mean of 3 | **+2.00 -> +4.00** (+2.000) | **0.200 -> 0.300** (+0.100) "
        "| **0.300 -> 0.600** (+0.300) |"
    )


def test_paired_table_mean_of_counts_the_seeds_not_the_last_metrics_values(tmp_path):
    """compare.paired_table: "mean of {len(pairs)}" made len(both) (the seeds with both values
    of the last metric, Fid-In). Two seeds; the variant's Fid-In absent on seed 2: the row is
    still the mean of 2 seeds, the Fid-In cell of 1 ("(n=1)", 0.5 -> 0.7, +0.200); SI-SDRi
    (1, 3) -> (2, 6): 2 -> 4."""
    base = {
        1: {"l2i": _paired_evaluation(tmp_path / "b1", {"si_sdri": 1.0, "fid_in": 0.5})},
        2: {"l2i": _paired_evaluation(tmp_path / "b2", {"si_sdri": 3.0, "fid_in": 0.9})},
    }
    var = {
        1: {"l2i": _paired_evaluation(tmp_path / "v1", {"si_sdri": 2.0, "fid_in": 0.7})},
        2: {"l2i": _paired_evaluation(tmp_path / "v2", {"si_sdri": 6.0})},
    }
    assert compare.paired_table(var, base)[0].splitlines()[-1] == (
        "| l2i | mean of 2 | **+2.00 -> +4.00** (+2.000) | - | **0.500 -> 0.700** (+0.200) (n=1) |"
    )


def test_worst_first_keeps_a_class_whose_name_has_a_colon_in_its_interpreters_block():
    """compare.worst_first: `label.split(": ", 1)[0]` made `rsplit` (a class named
    "speech: male" would start a block of its own, out of PIQ's worst-first order).
    PIQ's classes by mean SI-SDRi: dog 1 before speech: male 5; then LMAC's."""
    rows = {
        "PIQ: speech: male": {"si_sdri": {"mean": 5.0}},
        "PIQ: dog": {"si_sdri": {"mean": 1.0}},
        "LMAC: dog": {"si_sdri": {"mean": 2.0}},
    }
    assert list(compare.worst_first(rows)) == ["PIQ: dog", "PIQ: speech: male", "LMAC: dog"]


def _evaluation(folder, **fields):
    return {
        "interpreter": "PIQ",
        "folder": str(folder),
        "methods": {"PIQ": {"fid_in": 0.5}},
        **fields,
    }


def test_report_gives_a_bootstrap_level_with_its_decimals_and_every_evaluations(tmp_path):
    """html_report._bootstrap_line: `f"{100 * s['level']:g}"` made `:.0f` (97.5 % shown as
    98 %), and the settings read from the first evaluation only (`evaluations[:1]`: a second
    evaluation's 90 % level and 500 resamples not shown)."""
    one = _evaluation(tmp_path, bootstrap={"level": 0.975, "resamples": 200})
    page = html_report.render_html([one], str(tmp_path))
    assert "97.5 % bootstrap confidence interval (200 resamples of the clips)" in page
    other = _evaluation(tmp_path / "w", bootstrap={"level": 0.9, "resamples": 500})
    page = html_report.render_html([one, other], str(tmp_path))
    assert "90 / 97.5 % bootstrap confidence interval (200 / 500 resamples of the clips)" in page


def test_report_says_fold_for_one_test_fold_and_folds_for_two(tmp_path):
    """html_report._test_folds: `len(recorded) > 1` made `>= 1` ("folds 5")."""
    page = html_report.render_html(
        [_evaluation(tmp_path, test_folds=[5], data_folder="/d")], str(tmp_path)
    )
    assert "test set (fold 5) of /d" in page
    page = html_report.render_html(
        [_evaluation(tmp_path, test_folds=[4, 5], data_folder="/d")], str(tmp_path)
    )
    assert "test set (folds 4, 5) of /d" in page


def test_report_summary_gives_the_reference_rows_their_intervals(tmp_path):
    """html_report._summary_html: the reference rows' ± dropped (their intervals read, then
    not shown). All ones' Fid-In interval [0.9, 1.0]: ± (1.0 - 0.9) / 2 = 0.050."""
    evaluation = _evaluation(
        tmp_path,
        references={"all_ones": {"fid_in": 1.0}},
        intervals={"all_ones": {"fid_in": {"low": 0.9, "high": 1.0}}},
    )
    page = html_report.render_html([evaluation], str(tmp_path))
    assert (
        '<tr class="reference"><td class="label">all ones</td><td>1.000<br><span class="ci">± 0.050</span></td></tr>'
        in page
    )


def test_evaluations_given_the_same_folder_are_numbered_not_named_twice_alike():
    """tables._folder_tags: the "given twice" check (`len(set(folders)) < len(folders)`)
    dropped: both rows would be "PIQ (eval)", told apart only by a later "#2"."""
    evaluations = [
        {"interpreter": "PIQ", "folder": "/r/eval"},
        {"interpreter": "PIQ", "folder": "/r/eval"},
    ]
    assert tables.evaluation_labels(evaluations) == ["PIQ (#1)", "PIQ (#2)"]


def test_by_class_columns_follow_the_metrics_order_not_the_alphabet():
    """tables.by_class_table: the columns `[... for key in METRICS if key in present]` made
    `sorted(present)`: SI-SDRi comes before GT precision in METRICS (and in every other
    table), after it alphabetically."""
    result = {
        "interpreter": "PIQ",
        "by_class": {"dog": {"n": 1, "PIQ": {"gt_precision": 0.5, "si_sdri": 2.0}}},
    }
    titles, rows = tables.by_class_table(result)
    assert titles == ["true class", "clips", "PIQ SI-SDRi dB", "PIQ GT precision"]
    assert rows == [["dog", "1", "2.000", "0.500"]]


def test_reference_spread_names_the_set_up_of_the_reference():
    """tables.reference_spread: the reference's name without `_with_setup` (the mixtures'
    ground truth read as the clean clips'). 0.2557 and 0.2577 round to 0.256 and 0.258."""

    def evaluation(interpreter, auc):
        references = {"ground_truth": {"deletion_auc": auc}}
        return {"interpreter": interpreter, "overlap_type": "mixtures", "references": references}

    assert tables.reference_spread([evaluation("L2I", 0.2557), evaluation("PIQ", 0.2577)]) == [
        "ground truth [mixtures] Deletion AUC: 0.256 (L2I [mixtures]), 0.258 (PIQ [mixtures])"
    ]


def test_classifier_warning_without_the_number_of_predictions_gives_the_share_alone():
    """tables.classifier_warning: `... if total else []` guard dropped (a metrics.json without
    "masked_predictions": `share * None` raised)."""
    warning = tables.classifier_warning({"masked_top_class": "dog", "masked_top_class_share": 0.9})
    assert "90 % of its predictions on masked inputs are class 'dog' (more than half)" in warning


def test_classifier_warning_gives_the_ground_truth_fid_in_with_two_decimals():
    """tables.classifier_warning: `{fid_in:.2f}` made `.3f`. 0.4: 40 % of the clips, 0.40."""
    warning = tables.classifier_warning({"ground_truth_fid_in": 0.4})
    assert (
        "keeps the predicted class on 40 % of the clips only (its Fid-In 0.40 is below 0.5)"
        in warning
    )


def test_agreement_line_is_none_when_no_metric_has_a_tau_with_the_ground_truth():
    """agreement.agreement_line: `if not taus: return None` dropped (a sentence ending in
    "(the ground truth): " and nothing). Fid-In is constant over the methods: its tau with
    GT precision is undefined."""
    rows = {m: {"gt_precision": p, "fid_in": 1.0} for m, p in (("a", 0.1), ("b", 0.5), ("c", 0.9))}
    result = agreement.metric_agreement(rows)
    assert result["metrics"] == ["fid_in", "gt_precision"]
    assert result["tau"]["gt_precision"]["fid_in"] is None
    assert agreement.agreement_line(result) is None


def test_report_says_95_percent_without_the_bootstrap_settings(tmp_path):
    """html_report._bootstrap_line: the default level "95" changed (a metrics.json without
    "bootstrap", as older ones)."""
    page = html_report.render_html([_evaluation(tmp_path)], str(tmp_path))
    assert "95 % bootstrap confidence interval (? resamples of the clips)" in page
