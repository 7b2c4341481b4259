#!/usr/bin/env python3
"""An HTML report of one or more evaluations (recipes/eval.py folders).

    python recipes/report.py results/demo/l2i/eval results/demo/piq/eval --out results/demo/report

writes `<out>/index.html`: a warning at the top when an evaluation's classifier
cannot judge masks (see `classifier_warning`), a summary table (every
interpreter and baseline of every evaluation x the metrics, and the reference
masks `all ones` and `ground truth` once per classifier and data), then per
evaluation its classifier check and one row per shown clip with its class and
probability, audio players for the clip, the interpretation (and the target
event on the synthetic dataset) and the input / mask / interpretation
spectrogram PNG (scaled to the page width). Links are relative paths to
the files in the eval folders; the page has no script and no external
style, so it opens offline (keep the folders together when moving them).
`recipes/eval.py` writes one for its own folder (`<eval_folder>/report/`).

Authors
 * audio-interpret contributors 2026
"""

import argparse
import collections
import html
import json
import math
import os
import sys
import urllib.parse

from speechbrain.utils.logger import get_logger

from data_prep.files import write_text

logger = get_logger(__name__)

#: Known metrics in table order: key -> (column title, definition).
METRICS = {
    "fid_in": (
        "Fid-In",
        "share of clips whose predicted class on the interpretation is the class on the input (higher is better)",
    ),
    "faithfulness": (
        "FF",
        "p_c(X) - p_c(X - X_int): confidence lost when the interpretation is removed (higher is better)",
    ),
    "AI": (
        "AI %",
        "share of clips where the interpretation alone is more confident in c than the input (higher is better)",
    ),
    "AD": ("AD %", "mean relative confidence drop on the interpretation (lower is better)"),
    "AG": ("AG %", "mean relative confidence gain on the interpretation (higher is better)"),
    "SPS": ("SPS", "sparseness: Gini index of the mask (higher is sparser)"),
    "COMP": ("COMP", "complexity: entropy of the mask normalised to sum 1 (lower is simpler)"),
    "si_sdr": (
        "SI-SDR dB",
        "SI-SDR of the interpretation audio against the target event (synthetic data)",
    ),
    "si_sdri": ("SI-SDRi dB", "SI-SDR improvement over the clip itself (synthetic data)"),
    "gt_precision": (
        "GT precision",
        "share of the kept magnitude (mask * X) in the target-dominant region (synthetic data)",
    ),
    "gt_recall": (
        "GT recall",
        "share of the target-dominant magnitude that the mask keeps (synthetic data)",
    ),
    "deletion_auc": (
        "Deletion AUC",
        "area under p_c as the mask's top bins are removed, 5 % at a time (lower is better)",
    ),
    "insertion_auc": (
        "Insertion AUC",
        "area under p_c as the mask's top bins are revealed, 5 % at a time (higher is better)",
    ),
    "theta_top1": ("Theta top-1", "L2I: the classifier's class is Theta's top-1"),
    "theta_top3": ("Theta top-3", "L2I: the classifier's class is in Theta's top-3"),
    "theta_top5": ("Theta top-5", "L2I: the classifier's class is in Theta's top-5"),
    "ff_components": ("FF_x", "L2I: median logit drop when the relevant components are removed"),
    "ff_random": ("FF_x random", "L2I: the same with as many random components removed (median)"),
    "n_selected": ("components", "L2I: mean number of relevant components"),
    "nmf_rel_error": ("NMF error", "L2I: relative error of the NMF reconstruction W H"),
}
BASELINE_LABELS = {
    "random": "random mask",
    "saliency": "saliency (captum)",
    "integrated_gradients": "Integrated Gradients (captum)",
    "smoothgrad": "SmoothGrad (captum)",
    "occlusion": "occlusion (captum)",
}
#: Baselines of the classifier alone (recipes.baselines.CLASSIFIER_BASELINES): the same for
#: every interpreter on the same classifier and clips, so shown once per classifier and data.
CLASSIFIER_BASELINES = ("saliency", "integrated_gradients", "smoothgrad", "occlusion")
#: The metrics whose method rankings are compared (Kendall tau), +1 higher is better, -1 lower.
AGREEMENT_METRICS = {
    "faithfulness": 1,
    "fid_in": 1,
    "AD": -1,
    "deletion_auc": -1,
    "insertion_auc": 1,
    "si_sdri": 1,
    "gt_precision": 1,
}
#: The ground-truth metric the others are compared with.
AGREEMENT_REFERENCE = "gt_precision"
#: Reference masks (recipes/eval.py "references"): key -> row label.
REFERENCE_LABELS = {"all_ones": "all ones", "ground_truth": "ground truth"}
#: A classifier that gives one class to more than this share of the masked inputs
#: cannot judge masks ...
MAX_MASKED_TOP_CLASS_SHARE = 0.5
#: ... nor one for which the ground-truth mask keeps the class on fewer clips than this.
MIN_GROUND_TRUTH_FID_IN = 0.5

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; vertical-align: middle; }
th { background: #f0f0f0; }
td.label, th.label { text-align: left; }
tr.interpreter td { font-weight: bold; }
tr.reference td { font-style: italic; }
table.clips { width: 100%; }
table.clips td { text-align: left; }
img { max-width: 100%; height: auto; }
.wide { max-width: 100%; overflow-x: auto; }
audio { width: 220px; }
.meta { color: #555; font-size: 90%; }
.warning { background: #fff3cd; border: 1px solid #d9a400; padding: 0.5em 0.8em; }
.ci { color: #666; font-size: 80%; }
"""


def load_evaluation(folder):
    """metrics.json of an eval folder, with "folder" added; a clear error when missing."""
    path = os.path.join(folder, "metrics.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} does not exist: run recipes/eval.py with --eval_folder {folder} first."
        )
    with open(path, encoding="utf-8") as fin:
        evaluation = json.load(fin)
    evaluation["folder"] = os.path.abspath(folder)
    return evaluation


def _with_setup(label, evaluation):
    """`label`, with ' [mixtures, WHAM! noise]' when the clips were not evaluated as they are."""
    extras = []
    if evaluation.get("overlap_type", "none") != "none":
        extras.append(evaluation["overlap_type"])
    if evaluation.get("wham_noise"):
        extras.append("WHAM! noise")
    return f"{label} [{', '.join(extras)}]" if extras else label


def setup_label(evaluation):
    """'PIQ', or 'PIQ [mixtures]' for an out-of-distribution evaluation.

    Example
    -------
    >>> setup_label({"interpreter": "PIQ", "overlap_type": "mixtures", "wham_noise": False})
    'PIQ [mixtures]'
    """
    return _with_setup(evaluation["interpreter"], evaluation)


def method_label(evaluation, method):
    """The row label of one method of one evaluation."""
    if method == evaluation["interpreter"]:
        return setup_label(evaluation)
    return f"{setup_label(evaluation)}: {BASELINE_LABELS.get(method, method)}"


def reference_rows(references):
    """{row label: {metric: value}} of one evaluation's reference masks.

    Example
    -------
    >>> list(reference_rows({"all_ones": {"fid_in": 1.0}, "ground_truth": {"fid_in": 0.8}}))
    ['all ones', 'ground truth']
    """
    return {REFERENCE_LABELS.get(key, key): stats for key, stats in references.items()}


def _reference_group(evaluation):
    """What the reference rows depend on: the classifier and the evaluated clips, not the interpreter."""
    return json.dumps(
        [
            evaluation.get(key)
            for key in (
                "data_folder",
                "overlap_type",
                "wham_noise",
                "n_clips",
                "seed",
                "classifier",
            )
        ],
        sort_keys=True,
    )


class SummaryRow(collections.namedtuple("SummaryRow", "label stats kind intervals group")):
    """One row of the summary table.

    label: the row label; stats: {metric: value}; kind: "interpreter",
    "baseline" (the interpreter's random mask), "classifier_baseline" (a
    captum baseline) or "reference"; intervals: {metric: {"low", "high"}};
    group: the classifier and data it was evaluated on (`_reference_group`).
    """


def _summary_entries(evaluations):
    """The `SummaryRow`s of the summary table, in order.

    Every interpreter and its random mask, then, once per classifier and
    evaluated data (they do not depend on the interpreter), the captum
    baselines and the reference masks `all ones` / `ground truth`, each taken
    from the first evaluation that has it: labelled with the set-up (e.g.
    '[mixtures]'), or with the evaluation's label in front when two groups
    would share a label.
    """
    entries = []
    for evaluation in evaluations:
        group = _reference_group(evaluation)
        intervals = evaluation.get("intervals", {})
        for method, stats in evaluation["methods"].items():
            if method in CLASSIFIER_BASELINES:
                continue
            kind = "interpreter" if method == evaluation["interpreter"] else "baseline"
            label = method_label(evaluation, method)
            entries.append(SummaryRow(label, stats, kind, intervals.get(method, {}), group))
    used = {entry.label for entry in entries}
    shared = {}  # group -> {(kind, method): row}
    for evaluation in evaluations:
        group = _reference_group(evaluation)
        rows = shared.setdefault(group, {})
        intervals = evaluation.get("intervals", {})
        candidates = [
            ("classifier_baseline", method, BASELINE_LABELS.get(method, method), stats)
            for method, stats in evaluation["methods"].items()
            if method in CLASSIFIER_BASELINES
        ] + [
            ("reference", key, REFERENCE_LABELS.get(key, key), stats)
            for key, stats in evaluation.get("references", {}).items()
        ]
        for kind, method, name, stats in candidates:
            if (kind, method) in rows:
                continue
            label = _with_setup(name, evaluation)
            if label in used:
                label = f"{setup_label(evaluation)}: {name}"
            used.add(label)
            rows[(kind, method)] = SummaryRow(label, stats, kind, intervals.get(method, {}), group)
    for rows in shared.values():
        ordered = sorted(rows.items(), key=lambda item: item[0][0] == "reference")  # baselines first
        entries += [row for _, row in ordered]
    return entries


def summary_rows(evaluations):
    """{row label: {metric: value}} over all methods of all evaluations, in order,
    then the captum baselines and the reference masks (all ones, ground truth)
    once per classifier and data."""
    return {entry.label: entry.stats for entry in _summary_entries(evaluations)}


def summary_intervals(evaluations):
    """{row label: {metric: {"low", "high"}}} of `summary_rows` (bootstrap intervals)."""
    return {entry.label: entry.intervals for entry in _summary_entries(evaluations)}


def kendall_tau(a, b):
    """Kendall's tau-b between two rankings (ties counted as in scipy), None when undefined.

    Example
    -------
    >>> kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]), kendall_tau([1, 2, 3], [3, 2, 1])
    (1.0, -1.0)
    >>> kendall_tau([1, 1, 1], [1, 2, 3]) is None
    True
    """
    from scipy.stats import kendalltau

    if len(a) < 3:
        return None
    tau = kendalltau(a, b).statistic
    return None if tau is None or not math.isfinite(tau) else float(tau)


def metric_agreement(rows, metrics=AGREEMENT_METRICS):
    """Kendall tau between the method rankings that each pair of metrics gives.

    Arguments
    ---------
    rows : dict
        {method label: {metric: value}}: the methods ranked (not the references).
    metrics : dict
        {metric: +1 when higher is better, -1 when lower is}; a metric is
        turned into "higher is better" before ranking, so tau = 1 means the two
        metrics order the methods the same way.

    Returns
    -------
    dict
        "metrics": the metrics with a value for at least 3 methods; "methods":
        the number of methods; "tau": {metric: {metric: tau or None}}, over the
        methods where both metrics are defined (None for fewer than 3 or a
        metric constant over them).

    Example
    -------
    >>> rows = {"a": {"AD": 10.0, "fid_in": 0.9}, "b": {"AD": 50.0, "fid_in": 0.5},
    ...         "c": {"AD": 90.0, "fid_in": 0.1}}
    >>> metric_agreement(rows)["tau"]["AD"]["fid_in"]
    1.0
    """

    def value(stats, metric):
        v = stats.get(metric)
        return v * metrics[metric] if isinstance(v, (int, float)) and math.isfinite(v) else None

    present = [
        metric
        for metric in metrics
        if sum(value(stats, metric) is not None for stats in rows.values()) >= 3
    ]
    tau = {}
    for first in present:
        tau[first] = {}
        for second in present:
            pairs = [
                (value(stats, first), value(stats, second))
                for stats in rows.values()
                if value(stats, first) is not None and value(stats, second) is not None
            ]
            tau[first][second] = kendall_tau([p[0] for p in pairs], [p[1] for p in pairs])
    return {"metrics": present, "methods": len(rows), "tau": tau}


def agreement_groups(evaluations):
    """`metric_agreement` per classifier and data: [(group label, agreement)], methods only."""
    groups = {}
    for entry in _summary_entries(evaluations):
        if entry.kind != "reference":
            groups.setdefault(entry.group, {})[entry.label] = entry.stats
    labels = {}
    for evaluation in evaluations:
        labels.setdefault(_reference_group(evaluation), _with_setup("", evaluation).strip() or "clips as they are")
    return [(labels[group], metric_agreement(rows)) for group, rows in groups.items()]


def agreement_markdown(agreement):
    """The Kendall tau matrix of `metric_agreement` as markdown (empty without 2 metrics).

    Example
    -------
    >>> rows = {m: {"AD": ad, "fid_in": f} for m, ad, f in (("a", 1.0, 0.9), ("b", 2.0, 0.8), ("c", 3.0, 0.95))}
    >>> print(agreement_markdown(metric_agreement(rows)))
    | Kendall τ (3 methods) | Fid-In | AD % |
    |---|---|---|
    | Fid-In | 1.00 | -0.33 |
    | AD % | -0.33 | 1.00 |
    """
    present = agreement["metrics"]
    if len(present) < 2:
        return ""
    titles = [METRICS.get(m, (m, ""))[0] for m in present]
    lines = [
        f"| Kendall τ ({agreement['methods']} methods) | " + " | ".join(titles) + " |",
        "|" + "---|" * (len(present) + 1),
    ]
    for metric, title in zip(present, titles):
        cells = [_tau_cell(agreement["tau"][metric][other]) for other in present]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _tau_cell(tau):
    return "-" if tau is None else f"{tau:.2f}"


def agreement_line(agreement, reference=AGREEMENT_REFERENCE):
    """One sentence: how each metric's ranking agrees with the ground truth's, best first."""
    if reference not in agreement["metrics"]:
        return None
    taus = [
        (tau, metric)
        for metric, tau in agreement["tau"][reference].items()
        if metric != reference and tau is not None
    ]
    if not taus:
        return None
    parts = [f"{METRICS.get(m, (m, ''))[0]} {tau:+.2f}" for tau, m in sorted(taus, reverse=True)]
    title = METRICS.get(reference, (reference, ""))[0]
    return f"Kendall τ of each metric's method ranking with {title}'s (the ground truth): " + ", ".join(parts)


def classifier_warning(check):
    """Why the masked-input metrics say nothing about the interpreters, or None.

    Arguments
    ---------
    check : dict or None
        The "classifier_check" block of metrics.json (recipes/eval.py).

    Returns
    -------
    str or None
        Set when one class takes more than MAX_MASKED_TOP_CLASS_SHARE of the
        classifier's predictions on masked inputs, or when the ground-truth
        mask's Fid-In is below MIN_GROUND_TRUTH_FID_IN.

    Example
    -------
    >>> print(classifier_warning({"masked_top_class": "dog", "masked_top_class_share": 0.9,
    ...                           "masked_predictions": 10, "ground_truth_fid_in": 0.8}))
    masked-input metrics (Fid-In, AI, AD, AG) are not informative for this classifier: 90 % of its predictions on masked inputs (9 of 10, interpreter, saliency and ground-truth masks) are class 'dog' (more than half).
    >>> classifier_warning({"masked_top_class_share": 0.4, "ground_truth_fid_in": 0.8}) is None
    True
    """
    if not check:
        return None
    reasons = []
    share = check.get("masked_top_class_share")
    if share is not None and share > MAX_MASKED_TOP_CLASS_SHARE:
        total = check.get("masked_predictions")
        counted = f"{round(share * total)} of {total}, " if total else ""
        reasons.append(
            f"{100 * share:.0f} % of its predictions on masked inputs "
            f"({counted}interpreter, saliency and ground-truth masks) are class "
            f"'{check.get('masked_top_class')}' (more than half)"
        )
    fid_in = check.get("ground_truth_fid_in")
    if fid_in is not None and fid_in < MIN_GROUND_TRUTH_FID_IN:
        reasons.append(
            f"the ground-truth mask (the target-dominant region) keeps the predicted class on "
            f"{100 * fid_in:.0f} % of the clips only (its Fid-In {fid_in:.2f} is below "
            f"{MIN_GROUND_TRUTH_FID_IN})"
        )
    if not reasons:
        return None
    return (
        "masked-input metrics (Fid-In, AI, AD, AG) are not informative for this classifier: "
        + "; ".join(reasons)
        + "."
    )


def undefined_line(n_undefined):
    """metrics.json's "n_undefined" as one line of text, or None when every value is defined.

    Example
    -------
    >>> print(undefined_line({"L2I": {"nmf_rel_error": 1}, "ground_truth": {"SPS": 1, "COMP": 1}}))
    undefined values, left out of the means (clips): L2I: nmf_rel_error 1; ground truth: SPS 1, COMP 1
    """
    if not n_undefined:
        return None
    parts = [
        f"{REFERENCE_LABELS.get(method, BASELINE_LABELS.get(method, method))}: "
        + ", ".join(f"{metric} {count}" for metric, count in counts.items())
        for method, counts in n_undefined.items()
    ]
    return "undefined values, left out of the means (clips): " + "; ".join(parts)


def classifier_check_lines(check):
    """The classifier check as short lines of text (empty for an evaluation without one).

    Example
    -------
    >>> classifier_check_lines({"accuracy": 0.5, "masked_top_class": "dog",
    ...                         "masked_top_class_share": 0.25, "masked_predictions": 8})
    ['accuracy on the evaluated clips: 50.0 %', "most frequent class on masked inputs: 'dog', 25.0 % of 8 predictions (interpreter, saliency and ground-truth masks)"]
    """
    if not check:
        return []
    lines = []
    if check.get("accuracy") is not None:
        lines.append(f"accuracy on the evaluated clips: {100 * check['accuracy']:.1f} %")
    if check.get("target_accuracy") is not None:
        lines.append(
            f"accuracy on the clean target events alone: {100 * check['target_accuracy']:.1f} %"
        )
    if check.get("ground_truth_fid_in") is not None:
        lines.append(f"Fid-In of the ground-truth mask: {check['ground_truth_fid_in']:.3f}")
    if check.get("masked_top_class_share") is not None:
        lines.append(
            f"most frequent class on masked inputs: '{check['masked_top_class']}', "
            f"{100 * check['masked_top_class_share']:.1f} % of {check.get('masked_predictions')} "
            "predictions (interpreter, saliency and ground-truth masks)"
        )
    return lines


def metric_columns(rows):
    """Metric keys present in `rows`: known ones in METRICS order, then the others sorted."""
    present = {key for stats in rows.values() for key in stats if key != "loss"}
    return [key for key in METRICS if key in present] + sorted(present - set(METRICS))


def format_value(value):
    """A table cell: 3 decimals, 1 for magnitudes >= 10, '-' for missing or non-finite.

    Example
    -------
    >>> format_value(0.12345), format_value(41.26), format_value(None)
    ('0.123', '41.3', '-')
    """
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"


def interval_half_width(interval):
    """Half the width of a {"low", "high"} interval, None when it has none.

    Example
    -------
    >>> interval_half_width({"low": 0.5, "high": 0.7})
    0.09999999999999998
    """
    if not interval:
        return None
    low, high = interval.get("low"), interval.get("high")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)):
        return None
    return (high - low) / 2


def format_cell(value, interval=None):
    """`format_value`, with ± half the bootstrap interval's width when there is one.

    Example
    -------
    >>> format_cell(0.5, {"low": 0.4, "high": 0.6}), format_cell(0.5)
    ('0.500 ± 0.100', '0.500')
    """
    half = interval_half_width(interval)
    text = format_value(value)
    if half is None or text == "-":
        return text
    return f"{text} ± {format_value(half)}"


def markdown_table(rows, intervals=None):
    """A markdown table of {row label: {metric: value}} (rows x metrics).

    `intervals` ({row label: {metric: {"low", "high"}}}) adds ± half of each
    bootstrap interval's width.

    Example
    -------
    >>> print(markdown_table({"PIQ": {"fid_in": 0.9, "AD": 12.0}}))
    | method | Fid-In | AD % |
    |---|---|---|
    | PIQ | 0.900 | 12.0 |
    >>> print(markdown_table({"PIQ": {"fid_in": 0.9}}, {"PIQ": {"fid_in": {"low": 0.8, "high": 1.0}}}))
    | method | Fid-In |
    |---|---|
    | PIQ | 0.900 ± 0.100 |
    """
    intervals = intervals or {}
    columns = metric_columns(rows)
    titles = [METRICS.get(key, (key, ""))[0] for key in columns]
    lines = [
        "| method | " + " | ".join(titles) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for label, stats in rows.items():
        cells = [format_cell(stats.get(key), intervals.get(label, {}).get(key)) for key in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _link(path, report_folder):
    """URL of a file relative to the report folder (forward slashes, escaped)."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(report_folder))
    return urllib.parse.quote(relative.replace(os.sep, "/"))


def _summary_html(evaluations):
    entries = _summary_entries(evaluations)
    columns = metric_columns({entry.label: entry.stats for entry in entries})
    head = "".join(
        f'<th title="{html.escape(METRICS.get(key, (key, key))[1])}">'
        f"{html.escape(METRICS.get(key, (key, ''))[0])}</th>"
        for key in columns
    )
    body = []
    for entry in entries:
        css = f' class="{entry.kind}"' if entry.kind in ("interpreter", "reference") else ""
        cells = []
        for key in columns:
            half = interval_half_width(entry.intervals.get(key))
            text = format_value(entry.stats.get(key))
            ci = f'<br><span class="ci">± {format_value(half)}</span>' if half is not None and text != "-" else ""
            cells.append(f"<td>{text}{ci}</td>")
        body.append(f'<tr{css}><td class="label">{html.escape(entry.label)}</td>{"".join(cells)}</tr>')
    definitions = "".join(
        f"<dt>{html.escape(METRICS[key][0])}</dt><dd>{html.escape(METRICS[key][1])}</dd>"
        for key in columns
        if key in METRICS
    )
    return (
        f'<div class="wide"><table class="summary"><tr><th class="label">method</th>{head}</tr>'
        + "".join(body)
        + "</table></div>"
        + f"<details><summary>Metric definitions</summary><dl>{definitions}</dl></details>"
    )


def _agreement_html(evaluations):
    """The "Do the metrics agree?" section: Kendall tau matrices per classifier and data."""
    parts = []
    for label, agreement in agreement_groups(evaluations):
        present = agreement["metrics"]
        if len(present) < 2:
            continue
        titles = [METRICS.get(m, (m, ""))[0] for m in present]
        head = "".join(f"<th>{html.escape(t)}</th>" for t in titles)
        rows = "".join(
            f'<tr><td class="label">{html.escape(title)}</td>'
            + "".join(f"<td>{_tau_cell(agreement['tau'][metric][other])}</td>" for other in present)
            + "</tr>"
            for metric, title in zip(present, titles)
        )
        line = agreement_line(agreement)
        parts.append(
            f"<h3>{html.escape(label)}: {agreement['methods']} methods</h3>"
            + (f"<p>{html.escape(line, quote=False)}.</p>" if line else "")
            + f'<table><tr><th class="label">Kendall τ</th>{head}</tr>{rows}</table>'
        )
    if not parts:
        return ""
    intro = (
        '<p class="meta">Each metric ranks the methods (interpreters, random masks, captum '
        "baselines; AD and deletion AUC turned so that higher is better); the table gives "
        "Kendall's tau-b between the rankings of each pair of metrics: 1 = the same order, "
        "-1 = reversed. The row of GT precision says which metrics agree with the ground truth.</p>"
    )
    return "<h2>Do the metrics agree?</h2>" + intro + "".join(parts)


def _curves_html(evaluation, report_folder):
    curves = evaluation.get("curves") or {}
    if not curves.get("png"):
        return ""
    png = _link(os.path.join(evaluation["folder"], curves["png"]), report_folder)
    return (
        f"<p>Deletion and insertion curves (removed bins set to "
        f"{html.escape(str(curves.get('deletion_value', 'zero')))}; mean over the clips):</p>"
        f'<img src="{png}" alt="mean deletion and insertion curves">'
    )


def _sanity_html(evaluation, report_folder):
    sanity = evaluation.get("sanity_check")
    if not sanity:
        return ""
    steps = sanity["steps"]
    head = "".join(f"<th>{html.escape(step)}</th>" for step in steps)
    rows = []
    for method, values in sanity["methods"].items():
        name = BASELINE_LABELS.get(method, method)
        flag = " (FAILED: the mask did not change)" if method in sanity["failed"] else ""
        cells = "".join(
            f"<td>ρ {format_value(r)}<br>SSIM {format_value(q)}</td>"
            for r, q in zip(values["spearman"], values["ssim"])
        )
        rows.append(f'<tr><td class="label">{html.escape(name + flag)}</td>{cells}</tr>')
    kept = "".join(f"<td>{format_value(v)}</td>" for v in sanity["class_kept"])
    rows.append(f'<tr><td class="label">class kept (share of clips)</td>{kept}</tr>')
    failed = sanity["failed"]
    verdict = (
        f'<p class="warning"><strong>Sanity check failed</strong> for '
        f"{html.escape(', '.join(BASELINE_LABELS.get(m, m) for m in failed))}: with the whole "
        "classifier randomised, the mask stays the same (Spearman and SSIM with the original "
        f"&ge; {sanity['max_similarity']}); it does not depend on what the classifier learned.</p>"
        if failed
        else "<p>Sanity check passed: every method's mask changed when the classifier was randomised.</p>"
    )
    png = ""
    if sanity.get("png"):
        src = _link(os.path.join(evaluation["folder"], sanity["png"]), report_folder)
        png = f'<img src="{src}" alt="sanity check: similarity to the original mask per step">'
    return (
        f"<h3>Sanity check: cumulative classifier randomisation, top layer first "
        f"({sanity['clips']} clips)</h3>{verdict}"
        f'<div class="wide"><table><tr><th class="label">method</th>{head}</tr>{"".join(rows)}</table></div>'
        f"{png}"
    )


def _audio(path, folder, report_folder):
    if not path:
        return "<td>-</td>"
    src = _link(os.path.join(folder, path), report_folder)
    return f'<td><audio controls preload="none" src="{src}"></audio></td>'


def _evaluation_html(evaluation, report_folder):
    folder = evaluation["folder"]
    title = html.escape(setup_label(evaluation))
    accuracy = 100 * evaluation.get("classifier_accuracy", float("nan"))
    meta = (
        f'<p class="meta">{evaluation.get("n_clips", "?")} clips, classifier accuracy '
        f"{accuracy:.1f} %, ground truth: {'yes' if evaluation.get('ground_truth') else 'no'}; "
        f"interpreter {html.escape(str(evaluation.get('pretrained_interpreter', '')))}, "
        f"yaml {html.escape(str(evaluation.get('hparams_file', '')))}</p>"
    )
    undefined = undefined_line(evaluation.get("n_undefined"))
    if undefined:
        meta += f'<p class="meta">{html.escape(undefined, quote=False)}</p>'
    check = evaluation.get("classifier_check")
    lines = classifier_check_lines(check)
    if lines:
        meta += (
            "<p>Classifier check:</p><ul>"
            + "".join(f"<li>{html.escape(line, quote=False)}</li>" for line in lines)
            + "</ul>"
        )
    warning = classifier_warning(check)
    if warning:
        meta += (
            f'<p class="warning"><strong>Warning:</strong> {html.escape(warning, quote=False)}</p>'
        )
    meta += _curves_html(evaluation, report_folder) + _sanity_html(evaluation, report_folder)
    clips = evaluation.get("clips", [])
    if not clips:
        return f"<h2>{title}</h2>{meta}<p>No clip shown (--n_report_clips 0).</p>"
    has_target = any(clip.get("target") for clip in clips)
    header = "<th>clip</th><th>class (p)</th><th>original</th><th>interpretation</th>"
    header += "<th>target event</th>" if has_target else ""
    n_columns = 5 if has_target else 4
    rows = []
    for clip in clips:
        true_class = clip.get("true_class")
        truth = (
            f'<br><span class="meta">true: {html.escape(true_class)}</span>'
            if true_class and true_class != clip["class"]
            else ""
        )
        cells = [
            f"<td>{html.escape(clip['id'])}</td>",
            f"<td>{html.escape(clip['class'])} ({clip['probability']:.2f}){truth}</td>",
            _audio(clip.get("original"), folder, report_folder),
            _audio(clip.get("interpretation"), folder, report_folder),
        ]
        if has_target:
            cells.append(_audio(clip.get("target"), folder, report_folder))
        rows.append("<tr>" + "".join(cells) + "</tr>")
        png = _link(os.path.join(folder, clip["png"]), report_folder)
        alt = f"input / mask / interpretation spectrograms of {html.escape(clip['id'])}"
        rows.append(f'<tr><td colspan="{n_columns}"><img src="{png}" alt="{alt}"></td></tr>')
    return f'<h2>{title}</h2>{meta}<table class="clips"><tr>{header}</tr>{"".join(rows)}</table>'


def _warnings_html(evaluations):
    """The classifier-check warnings of the evaluations, for the top of the page."""
    parts = []
    for evaluation in evaluations:
        warning = classifier_warning(evaluation.get("classifier_check"))
        if warning:
            parts.append(
                f'<p class="warning"><strong>Warning ({html.escape(setup_label(evaluation))}):'
                f"</strong> {html.escape(warning, quote=False)}</p>"
            )
    return "".join(parts)


def render_html(evaluations, report_folder, title="Interpretation report"):
    """The report page for `evaluations` (from `load_evaluation`) written in `report_folder`."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _warnings_html(evaluations),
        "<h2>Summary</h2>",
        '<p class="meta">Means over the clips (L2I\'s FF_x: medians), ± half the 95 % '
        "bootstrap confidence interval (1,000 resamples of the clips). Baselines: the "
        "interpreter's mask with its values randomly permuted (same sparsity), and four captum "
        "attributions of the predicted class normalised to [0, 1] (saliency, Integrated "
        "Gradients, SmoothGrad, occlusion), shown once per classifier and clips. References "
        "(italic, the same for every interpreter on the same classifier and clips): all ones "
        "(keep everything: Fid-In 1, AI = AD = AG = 0, SI-SDRi 0, the floor of precision) and, "
        "with sources, ground truth (the target-dominant region as the mask: the ceiling).</p>",
        _summary_html(evaluations),
        _agreement_html(evaluations),
    ]
    parts += [_evaluation_html(evaluation, report_folder) for evaluation in evaluations]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(eval_folders, report_folder, title="Interpretation report"):
    """Writes `<report_folder>/index.html` for the eval folders; returns its path."""
    evaluations = [load_evaluation(folder) for folder in eval_folders]
    os.makedirs(report_folder, exist_ok=True)
    path = os.path.join(report_folder, "index.html")
    return write_text(render_html(evaluations, report_folder, title), path)


def metrics_markdown(result):
    """One evaluation as markdown: the classifier-check warning (if any), the table
    (methods and reference masks x metrics, ± half the bootstrap intervals), the
    metrics' agreement, the sanity check (when run) and the classifier check."""
    header = (
        f"# {result['interpreter']} on {result['n_clips']} clips "
        f"(overlap_type: {result['overlap_type']}, classifier accuracy "
        f"{100 * result['classifier_accuracy']:.1f} %)\n\n"
    )
    check = result.get("classifier_check")
    warning = classifier_warning(check)
    if warning:
        header += f"**Warning: {warning}**\n\n"
    references = result.get("references", {})
    rows = {**result["methods"], **reference_rows(references)}
    intervals = result.get("intervals", {})
    intervals = {REFERENCE_LABELS.get(key, key): value for key, value in intervals.items()}
    notes = []
    if intervals:
        bootstrap = result.get("bootstrap", {})
        notes.append(
            f"± is half the {100 * bootstrap.get('level', 0.95):.0f} % bootstrap confidence interval "
            f"({bootstrap.get('resamples', '?')} resamples of the clips; low / high in metrics.json)."
        )
    if result.get("curves"):
        notes.append(
            "Deletion / insertion AUC: removed bins set to "
            f"{result['curves'].get('deletion_value', 'zero')} (mean curves: curves.png)."
        )
    undefined = undefined_line(result.get("n_undefined"))
    if undefined:
        notes.append(f"{undefined}.")
    table_note = "".join(f"\n{note}\n" for note in notes)
    agreement = metric_agreement(result["methods"])
    agreement_text = agreement_markdown(agreement)
    if agreement_text:
        line = agreement_line(agreement)
        agreement_text = "\n## Do the metrics agree?\n\n" + (f"{line}.\n\n" if line else "") + agreement_text + "\n"
    sanity_text = ""
    if result.get("sanity_check"):
        from recipes.sanity import sanity_markdown

        sanity_text = "\n" + sanity_markdown(result["sanity_check"]) + "\n"
    lines = classifier_check_lines(check)
    check_text = (
        "\n## Classifier check\n\n" + "".join(f"- {line}\n" for line in lines) if lines else ""
    )
    return header + markdown_table(rows, intervals) + "\n" + table_note + agreement_text + sanity_text + check_text


def main(argv=None):
    """Command line: merges eval folders into one report; prints its path and the summary."""
    parser = argparse.ArgumentParser(description="HTML report of recipes/eval.py folders.")
    parser.add_argument("eval_folders", nargs="+", help="folders holding metrics.json")
    parser.add_argument("--out", required=True, help="report folder (gets index.html)")
    parser.add_argument("--title", default="Interpretation report")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    path = write_report(args.eval_folders, args.out, args.title)
    evaluations = [load_evaluation(folder) for folder in args.eval_folders]
    print(markdown_table(summary_rows(evaluations)))
    print(f"Report: {path}")
    return path


if __name__ == "__main__":
    main()
