"""The tables of an evaluation: row labels, the summary rows, cells with intervals, metrics.md.

`recipes.reporting.html_report` renders them as HTML; `metrics_markdown` is the markdown
of one evaluation (`<eval_folder>/metrics.md`). The summary table has every
interpreter of every evaluation and its random mask, then, once per classifier
and evaluated data (they do not depend on the interpreter), the captum
baselines and the reference masks (`_summary_entries`).

Authors
 * audio-interpret contributors 2026
"""

import collections
import json
import math
import os

from recipes.core.labels import CLASSIFIER_ONLY_BASELINES, METHOD_LABELS, ORACLE, REFERENCE_LABELS
from recipes.reporting.agreement import agreement_line, agreement_markdown, metric_agreement

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
    "fid_in_unwidened": (
        "Fid-In, own mask",
        "keep_class: Fid-In of the interpreter's mask before it was widened (the other columns score the widened one)",
    ),
    "si_sdr": (
        "SI-SDR dB",
        "SI-SDR of the interpretation audio against the target event, in dB (needs the exact sources; higher is better)",
    ),
    "si_sdri": (
        "SI-SDRi dB",
        "SI-SDR improvement over the clip itself, in dB (needs the exact sources; higher is better)",
    ),
    "gt_precision": (
        "GT precision",
        "share of the interpretation's energy |STFT|^2 in the target-dominant region, 0 to 1 "
        "(needs the exact sources; higher is better)",
    ),
    "gt_recall": (
        "GT recall",
        "share of the target-dominant region's energy |STFT|^2 that the interpretation keeps, 0 to 1 "
        "(needs the exact sources; higher is better)",
    ),
    "deletion_auc": (
        "Deletion AUC",
        "area under p_c as the mask's top bins are removed, 5 % at a time (lower is better)",
    ),
    "insertion_auc": (
        "Insertion AUC",
        "area under p_c as the mask's top bins are revealed, 5 % at a time (higher is better)",
    ),
    "theta_top1": ("Theta top-1", "L2I: share of clips whose classifier class is Theta's top-1 (higher is better)"),
    "theta_top3": ("Theta top-3", "L2I: share of clips whose classifier class is in Theta's top-3 (higher is better)"),
    "theta_top5": ("Theta top-5", "L2I: share of clips whose classifier class is in Theta's top-5 (higher is better)"),
    "ff_components": ("FF_x", "L2I: median logit drop when the relevant components are removed (higher is better; compare FF_x random)"),
    "ff_random": ("FF_x random", "L2I: the same with as many random components removed (median; near 0 expected)"),
    "n_selected": ("components", "L2I: mean number of relevant components"),
    "nmf_rel_error": ("NMF error", "L2I: relative error of the NMF reconstruction W H (lower is better)"),
}
#: A classifier that gives one class to more than this share of the masked inputs
#: cannot judge masks ...
MAX_MASKED_TOP_CLASS_SHARE = 0.5
#: ... nor one for which the ground-truth mask keeps the class on fewer clips than this.
MIN_GROUND_TRUTH_FID_IN = 0.5

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


def method_label(evaluation, method, label=None):
    """The row label of one method of one evaluation (`label`: the evaluation's, by default
    its `setup_label`)."""
    label = setup_label(evaluation) if label is None else label
    if method == evaluation["interpreter"]:
        return label
    return f"{label}: {METHOD_LABELS.get(method, method)}"


def _folder_tags(folders):
    """Each folder relative to the folders' common parent, or None when a folder is missing,
    given twice or on another drive.

    Example
    -------
    >>> _folder_tags(["/r/demo/l2i/eval", "/r/w9"])
    ['demo/l2i/eval', 'w9']
    >>> _folder_tags(["/r/eval", "/r/eval/w9"]), _folder_tags(["/r/eval", None])
    (['eval', 'eval/w9'], None)
    """
    if None in folders or len(set(folders)) < len(folders):
        return None
    folders = [os.path.abspath(folder) for folder in folders]
    try:
        common = os.path.commonpath(folders)
    except ValueError:  # Windows: folders on two drives
        return None
    if common in folders:  # one folder holds another: name both from above
        common = os.path.dirname(common)
    return [os.path.relpath(folder, common).replace(os.sep, "/") for folder in folders]


def evaluation_labels(evaluations):
    """The label of each evaluation, in order: its `setup_label`, and where several
    evaluations share one (the same interpreter at two thresholds, two seeds), each of them
    with its folder relative to their common parent (`load_evaluation`'s "folder"), or its
    position ("#2") without one.

    Example
    -------
    >>> l2i = {"interpreter": "L2I", "folder": "/r/demo/l2i/eval"}
    >>> evaluation_labels([l2i, {"interpreter": "PIQ"}, {**l2i, "folder": "/r/w9"}])
    ['L2I (demo/l2i/eval)', 'PIQ', 'L2I (w9)']
    >>> evaluation_labels([{"interpreter": "PIQ"}, {"interpreter": "PIQ"}])
    ['PIQ (#1)', 'PIQ (#2)']
    """
    labels = [setup_label(evaluation) for evaluation in evaluations]
    counts = collections.Counter(labels)
    for label in [label for label, count in counts.items() if count > 1]:
        positions = [k for k, other in enumerate(labels) if other == label]
        tags = _folder_tags([evaluations[k].get("folder") for k in positions])
        if tags is None:
            tags = [f"#{k + 1}" for k in positions]
        for k, tag in zip(positions, tags):
            labels[k] = f"{label} ({tag})"
    return labels


def reference_rows(references):
    """{row label: {metric: value}} of one evaluation's reference masks.

    Example
    -------
    >>> list(reference_rows({"all_ones": {"fid_in": 1.0}, "ground_truth": {"fid_in": 0.8}}))
    ['all ones', 'ground truth']
    """
    return {REFERENCE_LABELS.get(key, key): stats for key, stats in references.items()}


def _reference_group(evaluation):
    """What the reference rows depend on: the classifier, the evaluated clips and what a
    deleted bin becomes in the curves (`--deletion_value`), not the interpreter.

    Example
    -------
    >>> zero = {"data_folder": "/d", "curves": {"deletion_value": "zero"}}
    >>> _reference_group(zero) == _reference_group({"data_folder": "/d"})  # "zero" by default
    True
    >>> _reference_group(zero) == _reference_group({**zero, "curves": {"deletion_value": "noise_floor"}})
    False
    """
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
        ]
        + [evaluation.get("curves", {}).get("deletion_value", "zero")],
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
    would share a label. No row is ever dropped: evaluations that share a label
    are told apart by their folders (`evaluation_labels`).
    """
    entries = []
    names = evaluation_labels(evaluations)
    for evaluation, name in zip(evaluations, names):
        group = _reference_group(evaluation)
        intervals = evaluation.get("intervals", {})
        for method, stats in evaluation["methods"].items():
            if method in CLASSIFIER_ONLY_BASELINES:
                continue
            kind = "interpreter" if method == evaluation["interpreter"] else "baseline"
            kind = "reference" if method == ORACLE else kind
            label = method_label(evaluation, method, name)
            entries.append(SummaryRow(label, stats, kind, intervals.get(method, {}), group))
    used = {entry.label for entry in entries}
    shared = {}  # group -> {(kind, method): row}
    for evaluation, evaluation_name in zip(evaluations, names):
        group = _reference_group(evaluation)
        rows = shared.setdefault(group, {})
        intervals = evaluation.get("intervals", {})
        candidates = [
            ("classifier_baseline", method, METHOD_LABELS.get(method, method), stats)
            for method, stats in evaluation["methods"].items()
            if method in CLASSIFIER_ONLY_BASELINES
        ] + [
            ("reference", key, REFERENCE_LABELS.get(key, key), stats)
            for key, stats in evaluation.get("references", {}).items()
        ]
        for kind, method, name, stats in candidates:
            if (kind, method) in rows:
                continue
            label = _with_setup(name, evaluation)
            if label in used:
                label = f"{evaluation_name}: {name}"
            used.add(label)
            rows[(kind, method)] = SummaryRow(label, stats, kind, intervals.get(method, {}), group)
    for rows in shared.values():
        ordered = sorted(rows.items(), key=lambda item: item[0][0] == "reference")  # baselines first
        entries += [row for _, row in ordered]
    return _distinct_labels(entries)


def _distinct_labels(entries):
    """`entries` with a label given twice (an interpreter named like another's row) made
    distinct by its place (' #2'): the tables are keyed by label and must drop no row.

    Example
    -------
    >>> rows = [SummaryRow(label, {}, "interpreter", {}, "g") for label in ("A", "B", "A")]
    >>> [row.label for row in _distinct_labels(rows)]
    ['A', 'B', 'A #3']
    """
    seen = set()
    distinct = []
    for k, entry in enumerate(entries):
        if entry.label in seen:
            entry = entry._replace(label=f"{entry.label} #{k + 1}")
        seen.add(entry.label)
        distinct.append(entry)
    return distinct


def summary_rows(evaluations):
    """{row label: {metric: value}} over all methods of all evaluations, in order,
    then the captum baselines and the reference masks (all ones, ground truth)
    once per classifier and data."""
    return {entry.label: entry.stats for entry in _summary_entries(evaluations)}


def baseline_margins(evaluations):
    """Each interpreter against the best baseline on its classifier and clips, as markdown.

    For every evaluation with ground truth: the interpreter's SI-SDRi, the baseline with
    the highest SI-SDRi among its own random mask and the classifier's baselines (captum,
    AMT, the floor mask) of any evaluation on the same classifier and clips (the demo scores
    them once, with one interpreter), the margin, the interpreter's GT precision as a
    multiple of the all-ones mask's (the share of the clip that is target), and its Fid-In.
    "" when no evaluation has ground truth.

    Example
    -------
    >>> piq = {"interpreter": "PIQ", "methods": {
    ...     "PIQ": {"si_sdri": 13.0, "gt_precision": 0.8, "fid_in": 0.9}, "random": {"si_sdri": -8.0},
    ...     "above_floor": {"si_sdri": 10.0}}, "references": {"all_ones": {"gt_precision": 0.25}}}
    >>> lmac = {"interpreter": "LMAC", "methods": {
    ...     "LMAC": {"si_sdri": 12.0, "gt_precision": 0.5, "fid_in": 1.0}, "random": {"si_sdri": -7.0}},
    ...     "references": {"all_ones": {"gt_precision": 0.25}}}
    >>> print(baseline_margins([piq, lmac]), end="")
    | interpreter | SI-SDRi dB | best baseline | its SI-SDRi dB | margin dB | GT precision | x all ones' | Fid-In |
    |---|---|---|---|---|---|---|---|
    | PIQ | +13.00 | above the clip's floor (no classifier) | +10.00 | +3.00 | 0.800 | 3.20 | 0.900 |
    | LMAC | +12.00 | above the clip's floor (no classifier) | +10.00 | +2.00 | 0.500 | 2.00 | 1.000 |
    """
    shared = {}  # group -> {baseline: SI-SDRi}: the classifier's baselines
    for evaluation in evaluations:
        for method, stats in evaluation["methods"].items():
            if method in CLASSIFIER_ONLY_BASELINES and stats.get("si_sdri") is not None:
                shared.setdefault(_reference_group(evaluation), {})[method] = stats["si_sdri"]
    lines = []
    for evaluation, label in zip(evaluations, evaluation_labels(evaluations)):
        name = evaluation["interpreter"]
        stats = evaluation["methods"].get(name, {})
        if stats.get("si_sdri") is None:
            continue
        candidates = dict(shared.get(_reference_group(evaluation), {}))
        if evaluation["methods"].get("random", {}).get("si_sdri") is not None:
            candidates["random"] = evaluation["methods"]["random"]["si_sdri"]
        best = max(candidates, key=candidates.get) if candidates else None
        ones = evaluation.get("references", {}).get("all_ones", {}).get("gt_precision")
        precision = stats.get("gt_precision")
        cells = [
            _cell(label),
            _fixed(stats["si_sdri"], "+.2f"),
            "-" if best is None else _cell(METHOD_LABELS.get(best, best)),
            "-" if best is None else _fixed(candidates[best], "+.2f"),
            "-" if best is None else _fixed(stats["si_sdri"] - candidates[best], "+.2f"),
            "-" if precision is None else f"{precision:.3f}",
            "-" if precision is None or not ones else f"{precision / ones:.2f}",
            "-" if stats.get("fid_in") is None else f"{stats['fid_in']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if not lines:
        return ""
    header = (
        "| interpreter | SI-SDRi dB | best baseline | its SI-SDRi dB | margin dB | GT precision "
        "| x all ones' | Fid-In |\n|---|---|---|---|---|---|---|---|\n"
    )
    return header + "\n".join(lines) + "\n"


def reference_spread(evaluations):
    """Where the reference rows of one classifier and clips differ between evaluations, as
    lines of text: the summary shows each reference once (the first evaluation's), and a
    reader who opens another evaluation's metrics.md should not find other numbers unexplained.

    Only differences that show at the table's rounding (`format_value`) count. The same
    masks on the same clips give the same figures (the curves' tie order is drawn per seed,
    clip and method: `curves.tie_generator`), so this names evaluations made by other code
    or settings (an older commit's, whose tie order followed the batch and the other masks'
    draws).

    Example
    -------
    >>> a = {"interpreter": "L2I", "references": {"ground_truth": {"deletion_auc": 0.2557, "fid_in": 0.8}}}
    >>> b = {"interpreter": "PIQ", "references": {"ground_truth": {"deletion_auc": 0.2577, "fid_in": 0.8}}}
    >>> reference_spread([a, b])
    ['ground truth Deletion AUC: 0.256 (L2I), 0.258 (PIQ)']
    """
    groups = {}  # (group, reference) -> [(evaluation label, evaluation, stats)]
    for evaluation, label in zip(evaluations, evaluation_labels(evaluations)):
        for key, stats in evaluation.get("references", {}).items():
            groups.setdefault((_reference_group(evaluation), key), []).append((label, evaluation, stats))
    lines = []
    for (_, key), entries in groups.items():
        if len(entries) < 2:
            continue
        name = _with_setup(REFERENCE_LABELS.get(key, key), entries[0][1])
        for metric in metric_columns({label: stats for label, _, stats in entries}):
            cells = [(label, format_value(stats.get(metric))) for label, _, stats in entries]
            if len({text for _, text in cells}) > 1:
                values = ", ".join(f"{text} ({label})" for label, text in cells)
                lines.append(f"{name} {metric_title(metric)}: {values}")
    return lines


def summary_intervals(evaluations):
    """{row label: {metric: {"low", "high"}}} of `summary_rows` (bootstrap intervals)."""
    return {entry.label: entry.intervals for entry in _summary_entries(evaluations)}


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


def pooled_masks(check):
    """The masks whose masked inputs the classifier check pooled, as words; None for a
    metrics.json from before they were recorded ("masked_methods").

    Example
    -------
    >>> pooled_masks({"masked_methods": ["L2I", "saliency", "ground_truth"]})
    'L2I, saliency and ground-truth masks'
    >>> pooled_masks({"masked_methods": ["PIQ"]}), pooled_masks({}) is None
    ('PIQ mask', True)
    """
    names = [{"ground_truth": "ground-truth"}.get(name, name) for name in check.get("masked_methods") or []]
    if not names:
        return None
    if len(names) == 1:
        return f"{names[0]} mask"
    return f"{', '.join(names[:-1])} and {names[-1]} masks"


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
    ...                           "masked_predictions": 10, "ground_truth_fid_in": 0.8,
    ...                           "masked_methods": ["PIQ", "ground_truth"]}))
    masked-input metrics (Fid-In, AI, AD, AG) are not informative for this classifier: 90 % of its predictions on masked inputs (9 of 10, PIQ and ground-truth masks) are class 'dog' (more than half).
    >>> classifier_warning({"masked_top_class_share": 0.4, "ground_truth_fid_in": 0.8}) is None
    True
    """
    if not check:
        return None
    reasons = []
    share = check.get("masked_top_class_share")
    if share is not None and share > MAX_MASKED_TOP_CLASS_SHARE:
        total = check.get("masked_predictions")
        counted = [f"{round(share * total)} of {total}"] if total else []
        masks = [pooled_masks(check)] if pooled_masks(check) else []
        pooled = f" ({', '.join(counted + masks)})" if counted + masks else ""
        reasons.append(
            f"{100 * share:.0f} % of its predictions on masked inputs{pooled} are class "
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
        f"{REFERENCE_LABELS.get(method, METHOD_LABELS.get(method, method))}: "
        + ", ".join(f"{metric} {count}" for metric, count in counts.items())
        for method, counts in n_undefined.items()
    ]
    return "undefined values, left out of the means (clips): " + "; ".join(parts)


def classifier_check_lines(check):
    """The classifier check as short lines of text (empty for an evaluation without one).

    Example
    -------
    >>> classifier_check_lines({"accuracy": 0.5, "masked_top_class": "dog", "masked_top_class_share": 0.25,
    ...                         "masked_predictions": 8, "masked_methods": ["PIQ", "ground_truth"]})
    ['accuracy on the evaluated clips: 50.0 %', "most frequent class on masked inputs: 'dog', 25.0 % of 8 predictions (PIQ and ground-truth masks)"]
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
        masks = pooled_masks(check)
        lines.append(
            f"most frequent class on masked inputs: '{check['masked_top_class']}', "
            f"{100 * check['masked_top_class_share']:.1f} % of {check.get('masked_predictions')} "
            "predictions" + (f" ({masks})" if masks else "")
        )
    return lines


def metric_title(key):
    """A metric's column title (`METRICS`), or its key.

    Example
    -------
    >>> metric_title("fid_in"), metric_title("loss_vq")
    ('Fid-In', 'loss_vq')
    """
    return METRICS.get(key, (key, ""))[0]


def metric_columns(rows):
    """Metric keys present in `rows`: known ones in METRICS order, then the others sorted."""
    present = {key for stats in rows.values() for key in stats if key != "loss"}
    return [key for key in METRICS if key in present] + sorted(present - set(METRICS))


def _fixed(value, spec):
    """`format(value, spec)` (a fixed-point spec), "0.000" and not "-0.000" for a value that
    rounds to zero.

    Example
    -------
    >>> _fixed(-0.0004, ".3f"), _fixed(-0.0, "+.2f"), _fixed(-0.006, "+.2f")
    ('0.000', '+0.00', '-0.01')
    """
    text = format(value, spec)
    return format(0.0, spec) if float(text) == 0 else text


def format_value(value):
    """A table cell: 3 decimals, 1 for magnitudes >= 10, '-' for missing or non-finite.

    Example
    -------
    >>> format_value(0.12345), format_value(41.26), format_value(None)
    ('0.123', '41.3', '-')

    The magnitude is read after rounding to 3 decimals: 9.9996 is 10.0, as 10.0 is.

    >>> format_value(9.9996), format_value(-9.9996), format_value(9.9994)
    ('10.0', '-10.0', '9.999')
    """
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return _fixed(value, ".1f" if abs(float(format(value, ".3f"))) >= 10 else ".3f")


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


#: The per-group tables' sections: (result key, the group's column title, the section's title).
GROUP_TABLES = (
    ("by_class", "true class", "By class"),
    ("by_background", "background recording", "By background recording"),
)


def by_class_table(result, key="by_class"):
    """The per-class table of one evaluation: (column titles, rows of cells as text), or None
    when the result has no `by_class` (`recipes.evaluation.scoring.by_class`); with `key`
    "by_background", the same per background recording
    (`recipes.evaluation.scoring.by_group`, on a collection set).

    For each group: its clips and the means of the interpreter's metrics, the floor mask's
    SI-SDRi (where the evaluation scored it: the bar on real recordings) and the ground-truth
    mask's metrics, the interpreter's worst SI-SDRi first (without SI-SDRi, the groups in the test
    set's order); "-" where a group has no value.

    Example
    -------
    >>> result = {"interpreter": "PIQ", "by_class": {
    ...     "dog": {"n": 2, "PIQ": {"si_sdri": 4.0, "fid_in": 1.0}, "ground_truth": {"si_sdri": 9.0}},
    ...     "cat": {"n": 1, "PIQ": {"si_sdri": -1.0}, "ground_truth": {"si_sdri": 8.0}}}}
    >>> titles, rows = by_class_table(result)
    >>> titles
    ['true class', 'clips', 'PIQ Fid-In', 'PIQ SI-SDRi dB', 'ground truth SI-SDRi dB']
    >>> rows
    [['cat', '1', '-', '-1.000', '8.000'], ['dog', '2', '1.000', '4.000', '9.000']]
    >>> result = {"interpreter": "PIQ", "by_background": {
    ...     "rain.ogg": {"n": 3, "PIQ": {"si_sdri": 4.0}, "above_floor": {"si_sdri": 3.5, "fid_in": 1.0}}}}
    >>> by_class_table(result, "by_background")
    (['background recording', 'clips', 'PIQ SI-SDRi dB', "above the clip's floor (no classifier) SI-SDRi dB"], [['rain.ogg', '3', '4.000', '3.500']])
    """
    classes = result.get(key)
    if not classes:
        return None
    interpreter = result["interpreter"]
    columns = []  # (method, metric)
    # the floor mask's SI-SDRi alone: the bar the interpreter is read against (its Fid-In is 1
    # by construction for a classifier with the input floor)
    for method, names in ((interpreter, METRICS), ("above_floor", ("si_sdri",)), ("ground_truth", METRICS)):
        present = {name for entry in classes.values() for name in entry.get(method, {})}
        columns += [(method, name) for name in names if name in present]
    labels = list(classes)
    if (interpreter, "si_sdri") in columns:
        labels.sort(key=lambda label: classes[label].get(interpreter, {}).get("si_sdri", math.inf))
    group_title = next(title for name, title, _ in GROUP_TABLES if name == key)
    titles = [group_title, "clips"] + [
        f"{REFERENCE_LABELS.get(method, METHOD_LABELS.get(method, method))} {metric_title(name)}"
        for method, name in columns
    ]
    rows = []
    for label in labels:
        cells = [classes[label].get(method, {}).get(name) for method, name in columns]
        rows.append([str(label), str(classes[label]["n"])] + ["-" if v is None else _fixed(v, ".3f") for v in cells])
    return titles, rows


def by_class_markdown(result, key="by_class"):
    """metrics.md's per-class table (`by_class_table`; per background recording with
    `key` "by_background"); "" when the result has none.

    Example
    -------
    >>> result = {"interpreter": "PIQ", "by_class": {"dog": {"n": 2, "PIQ": {"si_sdri": 4.0}}}}
    >>> print(by_class_markdown(result), end="")
    | true class | clips | PIQ SI-SDRi dB |
    |---|---|---|
    | dog | 2 | 4.000 |
    """
    table = by_class_table(result, key)
    if table is None:
        return ""
    titles, rows = table
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


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
    # the rows named as in the report and the summary ("random mask", not "random")
    names = {**METHOD_LABELS, **REFERENCE_LABELS, result["interpreter"]: result["interpreter"]}
    rows = {names.get(method, method): stats for method, stats in result["methods"].items()}
    rows.update(reference_rows(references))
    intervals = {names.get(key, key): value for key, value in result.get("intervals", {}).items()}
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
    agreement = metric_agreement({m: stats for m, stats in result["methods"].items() if m != ORACLE})
    agreement_text = agreement_markdown(agreement, metric_title)
    if agreement_text:
        line = agreement_line(agreement, metric_title)
        agreement_text = "\n## Do the metrics agree?\n\n" + (f"{line}.\n\n" if line else "") + agreement_text + "\n"
    sanity_text = ""
    if result.get("sanity_check"):
        sanity_text = "\n" + sanity_markdown(result["sanity_check"]) + "\n"
    lines = classifier_check_lines(check)
    check_text = (
        "\n## Classifier check\n\n" + "".join(f"- {line}\n" for line in lines) if lines else ""
    )
    classes = ""
    for key, group_title, section in GROUP_TABLES:
        table = by_class_markdown(result, key)
        if table:
            classes += (
                f"\n## {section}\n\nMeans over each {group_title}'s clips (every clip's values: "
                "per_clip.csv), the interpreter's worst first.\n\n" + table
            )
    return header + markdown_table(rows, intervals) + "\n" + table_note + agreement_text + classes + sanity_text + check_text


# ------------------------------------------------------------------ sanity check
def _cell(text):
    return str(text).replace("|", "\\|")


def sanity_markdown(result):
    """A markdown section of a `model_randomisation_check` result.

    One row per cumulative step (the classifier randomised from the top down to
    that block), one column per method with "ρ <Spearman> / SSIM <SSIM>" (means
    over the clips), and the share of clips that keep their predicted class;
    then a line naming the failed methods, or "passed: every mask changed".

    Example
    -------
    >>> result = {"clips": 2, "steps": ["none", "classifier"], "class_kept": [1.0, 0.5],
    ...           "methods": {"ones": {"spearman": [1.0, 1.0], "ssim": [1.0, 1.0]}},
    ...           "max_similarity": 0.9, "failed": ["ones"]}
    >>> print(sanity_markdown(result).splitlines()[-1])
    **FAILED**: ones (its mask did not change).
    """
    methods = list(result["methods"])
    failed = set(result["failed"])
    threshold = result["max_similarity"]
    named = {m: METHOD_LABELS.get(m, m) for m in methods}  # as the report and the tables name them
    header = ["randomised down to", "class kept"] + [
        _cell(f"{named[m]} (FAILED)" if m in failed else named[m]) for m in methods
    ]
    lines = [
        "## Sanity check: model randomisation",
        "",
        f"The classifier's weights are randomised cumulatively from the top down (Adebayo et al. "
        f"2018) on {result['clips']} clips; each cell compares a method's mask with its mask for "
        f"the trained classifier: Spearman rank correlation ρ / SSIM (means over the clips; 1 = "
        f"unchanged). \"class kept\": share of clips whose predicted class is unchanged. A method "
        f"fails when, with every layer randomised, both ρ and SSIM are >= {threshold:g}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for k, step in enumerate(result["steps"]):
        label = "none (trained)" if k == 0 else _cell(step)
        cells = [label, f"{result['class_kept'][k]:.2f}"]
        for m in methods:
            figures = result["methods"][m]
            spearman, ssim = _fixed(figures["spearman"][k], ".2f"), _fixed(figures["ssim"][k], ".2f")
            cells.append(f"ρ {spearman} / SSIM {ssim}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if failed:
        names = ", ".join(named[m] for m in methods if m in failed)
        verb = "its mask" if len(failed) == 1 else "their masks"
        lines.append(f"**FAILED**: {names} ({verb} did not change).")
    else:
        lines.append("passed: every mask changed.")
    return "\n".join(lines) + "\n"
