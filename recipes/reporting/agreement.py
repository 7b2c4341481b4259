"""Do the metrics agree? Kendall's tau between the method rankings of the metrics.

Each metric of `AGREEMENT_METRICS` ranks the methods of an evaluation (the
interpreters, their random masks, the captum baselines; not the reference
masks), after turning a lower-is-better metric (AD, deletion AUC) around so
that higher is better everywhere. `metric_agreement` gives Kendall's tau-b
(scipy; ties counted) between the rankings of every pair of metrics, over the
methods where both are defined: 1 means the same order, -1 the reverse. The
row of GT precision (`AGREEMENT_REFERENCE`, the ground truth of the synthetic
dataset) says which single-mask or curve metrics rank the methods as the
ground truth does (Bolanos et al., Interspeech 2025, show that they can
disagree). `recipes/report.py` renders it in the report, `metrics_markdown`
in metrics.md.

Authors
 * audio-interpret contributors 2026
"""

import math

from scipy.stats import kendalltau

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


def kendall_tau(a, b):
    """Kendall's tau-b between two rankings (ties counted as in scipy), None when undefined.

    Example
    -------
    >>> kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]), kendall_tau([1, 2, 3], [3, 2, 1])
    (1.0, -1.0)
    >>> kendall_tau([1, 1, 1], [1, 2, 3]) is None
    True
    """
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


def agreement_markdown(agreement, title=str):
    """The Kendall tau matrix of `metric_agreement` as markdown (empty without 2 metrics).

    `title` turns a metric key into its column title (`recipes.reporting.tables.metric_title`).

    Example
    -------
    >>> rows = {m: {"AD": ad, "fid_in": f} for m, ad, f in (("a", 1.0, 0.9), ("b", 2.0, 0.8), ("c", 3.0, 0.95))}
    >>> print(agreement_markdown(metric_agreement(rows), {"AD": "AD %", "fid_in": "Fid-In"}.get))
    | Kendall τ (3 methods) | Fid-In | AD % |
    |---|---|---|
    | Fid-In | 1.00 | -0.33 |
    | AD % | -0.33 | 1.00 |
    """
    present = agreement["metrics"]
    if len(present) < 2:
        return ""
    titles = [title(m) for m in present]
    lines = [
        f"| Kendall τ ({agreement['methods']} methods) | " + " | ".join(titles) + " |",
        "|" + "---|" * (len(present) + 1),
    ]
    for metric, title in zip(present, titles):
        cells = [tau_cell(agreement["tau"][metric][other]) for other in present]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tau_cell(tau):
    """A tau as a table cell: 2 decimals, '-' when undefined."""
    return "-" if tau is None else f"{tau:.2f}"


def agreement_line(agreement, title=str, reference=AGREEMENT_REFERENCE):
    """One sentence: how each metric's ranking agrees with the ground truth's, best first (or None)."""
    if reference not in agreement["metrics"]:
        return None
    taus = [
        (tau, metric)
        for metric, tau in agreement["tau"][reference].items()
        if metric != reference and tau is not None
    ]
    if not taus:
        return None
    parts = [f"{title(m)} {tau:+.2f}" for tau, m in sorted(taus, reverse=True)]
    return f"Kendall τ of each metric's method ranking with {title(reference)}'s (the ground truth): " + ", ".join(parts)
