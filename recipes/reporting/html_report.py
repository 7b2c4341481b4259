"""The HTML report of one or more evaluations (recipes/eval.py folders).

`write_report(eval_folders, report_folder)` (the command is recipes/report.py)
writes `<report_folder>/index.html`: a warning at the top when an evaluation's classifier
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
Each evaluation also shows its mean deletion / insertion curves and, with
`--sanity_check`, the sanity check; after the summary, "Do the metrics agree?"
gives the Kendall tau between the metrics' method rankings (recipes/reporting/agreement.py).
The rows, cells and metrics.md are recipes/reporting/tables.py's; this file is the HTML.

Authors
 * audio-interpret contributors 2026
"""

import html
import json
import os
import re
import urllib.parse

from speechbrain.utils.logger import get_logger

from data_prep.files import write_text
from recipes.core.labels import METHOD_LABELS
from recipes.reporting.agreement import agreement_line, tau_cell
from recipes.reporting.tables import (
    GROUP_TABLES,
    METRICS,
    _summary_entries,
    agreement_groups,
    by_class_table,
    classifier_check_lines,
    classifier_warning,
    evaluation_labels,
    format_value,
    interval_half_width,
    metric_columns,
    metric_title,
    reference_spread,
    undefined_line,
)

logger = get_logger(__name__)

#: The report page's `<meta name="generator">`: what `is_own_report` recognises.
GENERATOR = "audio-interpret report"
#: A line of STYLE that the pages written before the generator tag hold too.
LEGACY_MARK = "tr.interpreter td { font-weight: bold; }"
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


def _link(path, report_folder):
    """URL of a file relative to the report folder (forward slashes, escaped); a file that
    is not there is still linked, with a logged warning (the page would show a broken link)."""
    if not os.path.isfile(path):
        logger.warning("The report links %s, which does not exist: its player or image will be empty.", path)
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
    spread = reference_spread(evaluations)
    spread_html = (
        '<p class="meta">The reference rows show the first evaluation\'s values; on the same '
        "classifier and clips the evaluations' own differ (made by other code or settings): "
        + "; ".join(html.escape(line, quote=False) for line in spread)
        + ".</p>"
        if spread
        else ""
    )
    definitions = "".join(
        f"<dt>{html.escape(METRICS[key][0])}</dt><dd>{html.escape(METRICS[key][1])}</dd>"
        for key in columns
        if key in METRICS
    )
    return (
        f'<div class="wide"><table class="summary"><tr><th class="label">method</th>{head}</tr>'
        + "".join(body)
        + "</table></div>"
        + spread_html
        + f"<details><summary>Metric definitions</summary><dl>{definitions}</dl></details>"
    )


def _agreement_html(evaluations):
    """The "Do the metrics agree?" section: Kendall tau matrices per classifier and data."""
    parts = []
    for label, agreement in agreement_groups(evaluations):
        present = agreement["metrics"]
        if len(present) < 2:
            continue
        titles = [metric_title(m) for m in present]
        head = "".join(f"<th>{html.escape(t)}</th>" for t in titles)
        rows = "".join(
            f'<tr><td class="label">{html.escape(title)}</td>'
            + "".join(f"<td>{tau_cell(agreement['tau'][metric][other])}</td>" for other in present)
            + "</tr>"
            for metric, title in zip(present, titles)
        )
        line = agreement_line(agreement, metric_title)
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
    png = None
    if sanity.get("png"):
        png = _link(os.path.join(evaluation["folder"], sanity["png"]), report_folder)
    return sanity_html(sanity, png)


def _audio(path, folder, report_folder):
    if not path:
        return "<td>-</td>"
    src = _link(os.path.join(folder, path), report_folder)
    return f'<td><audio controls preload="none" src="{src}"></audio></td>'


def _by_class_html(evaluation):
    """The per-class table (`by_class_table`) of one evaluation, and on a collection set the
    per-background-recording one; "" without them."""
    parts = []
    for key, group_title, section in GROUP_TABLES:
        table = by_class_table(evaluation, key)
        if table is None:
            continue
        titles, rows = table
        head = "".join(f"<th>{html.escape(title)}</th>" for title in titles)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
        parts.append(
            f"<p>{section} (means over each {group_title}'s clips, the interpreter's worst first; "
            "every clip's values: per_clip.csv in the evaluation folder):</p>"
            f'<table class="{key.replace("_", "-")}"><tr>{head}</tr>{body}</table>'
        )
    return "".join(parts)


def _test_folds(evaluation):
    """The test folds an evaluation scored ("fold 5", "folds 4, 5"): metrics.json's
    "test_folds", or for an evaluation made before it had them, its folder's
    hyperparams.yaml; None without either."""
    recorded = evaluation.get("test_folds")
    if recorded:
        return f"fold{'s' if len(recorded) > 1 else ''} {', '.join(str(fold) for fold in recorded)}"
    folder = evaluation.get("folder")
    if not folder:
        return None
    try:
        with open(os.path.join(folder, "hyperparams.yaml"), encoding="utf-8") as fin:
            found = re.search(r"^test_fold_nums:\s*(\[[^\]\n]*\])", fin.read(), re.M)
    except OSError:
        return None
    if not found:
        return None
    folds = [fold.strip() for fold in found.group(1).strip("[]").split(",") if fold.strip()]
    return f"fold{'s' if len(folds) > 1 else ''} {', '.join(folds)}" if folds else None


def _provenance(evaluation):
    """Which clips, seed, code and classifier an evaluation scored, as one line of text: the
    test set of its data folder (its folds, from the folder's hyperparams.yaml), the seed, the
    commit (metrics.json's "code")."""
    folds = _test_folds(evaluation)
    data = str(evaluation.get("data_folder", "?"))
    parts = [f"test set{f' ({folds})' if folds else ''} of {data}", f"seed {evaluation.get('seed', '?')}"]
    code = evaluation.get("code")
    if isinstance(code, dict) and code.get("commit"):
        parts.append(f"code {code['commit'][:10]}" + (" with local changes" if code.get("local_changes") else ""))
    classifier = evaluation.get("classifier")
    if isinstance(classifier, dict) and classifier:
        parts.append("classifier " + ", ".join(str(path) for path in classifier.values()))
    elif classifier:
        parts.append(f"classifier {classifier}")
    return "; ".join(parts)


def _number_first(value):
    """Sort key: numbers by value, then anything else by its text (200 before 1000)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, value, "") if is_number else (1, 0, str(value))


def _bootstrap_line(evaluations):
    """'95 % bootstrap confidence interval (1000 resamples of the clips)', from the
    evaluations' metrics.json ("bootstrap"), each setting the evaluations disagree on listed,
    in increasing order.

    Example
    -------
    >>> _bootstrap_line([{"bootstrap": {"level": 0.95, "resamples": 1000}}, {"bootstrap": {"resamples": 200}}])
    '95 % bootstrap confidence interval (200 / 1000 resamples of the clips)'
    """
    settings = [evaluation.get("bootstrap") or {} for evaluation in evaluations]
    levels = sorted({f"{100 * s['level']:g}" for s in settings if s.get("level") is not None})
    resamples = sorted({s["resamples"] for s in settings if s.get("resamples") is not None}, key=_number_first)
    level = " / ".join(levels) if levels else "95"
    counts = " / ".join(map(str, resamples)) if resamples else "?"
    return f"{level} % bootstrap confidence interval ({counts} resamples of the clips)"


def _evaluation_html(evaluation, report_folder, label):
    """One evaluation's section, headed by its `label` (`evaluation_labels`)."""
    folder = evaluation["folder"]
    title = html.escape(label)
    accuracy = 100 * evaluation.get("classifier_accuracy", float("nan"))
    meta = (
        f'<p class="meta">{html.escape(_provenance(evaluation))}</p>'
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
    meta += _by_class_html(evaluation)
    meta += _curves_html(evaluation, report_folder) + _sanity_html(evaluation, report_folder)
    clips = evaluation.get("clips", [])
    if not clips:
        return f"<h2>{title}</h2>{meta}<p>No clip shown (--n_report_clips 0).</p>"
    has_target = any(clip.get("target") for clip in clips)
    header = "<th>clip</th><th>predicted class (p)</th><th>original</th><th>interpretation</th>"
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
        shown = "input / mask / interpretation" + (" / target event" if clip.get("target") else "")
        alt = f"{shown} spectrograms of {html.escape(clip['id'])}"
        rows.append(f'<tr><td colspan="{n_columns}"><img src="{png}" alt="{alt}"></td></tr>')
    return f'<h2>{title}</h2>{meta}<table class="clips"><tr>{header}</tr>{"".join(rows)}</table>'


def _warnings_html(evaluations):
    """The classifier-check warnings of the evaluations, for the top of the page."""
    parts = []
    for evaluation, label in zip(evaluations, evaluation_labels(evaluations)):
        warning = classifier_warning(evaluation.get("classifier_check"))
        if warning:
            parts.append(
                f'<p class="warning"><strong>Warning ({html.escape(label)}):'
                f"</strong> {html.escape(warning, quote=False)}</p>"
            )
    return "".join(parts)


def render_html(evaluations, report_folder, title="Interpretation report"):
    """The report page for `evaluations` (from `load_evaluation`) written in `report_folder`."""
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="{GENERATOR}">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _warnings_html(evaluations),
        "<h2>Summary</h2>",
        '<p class="meta">Means over the clips (L2I\'s FF_x: medians), ± half the '
        f"{_bootstrap_line(evaluations)}. Baselines: the "
        "interpreter's mask with its values randomly permuted (same sparsity), four captum "
        "attributions of the predicted class normalised to [0, 1] (saliency, Integrated "
        "Gradients, SmoothGrad, occlusion), and what rises above each frequency's median over "
        "the clip's frames (no classifier: the trivial answer 'not the steady background'), "
        "shown once per classifier and clips. References "
        "(italic, the same for every interpreter on the same classifier and clips): all ones "
        "(keep everything: Fid-In 1, AI = AD = AG = 0, SI-SDRi 0, the floor of precision) and, "
        "with sources, ground truth (the target-dominant region as the mask: the ceiling).</p>",
        _summary_html(evaluations),
        _agreement_html(evaluations),
    ]
    labels = evaluation_labels(evaluations)
    parts += [_evaluation_html(evaluation, report_folder, label) for evaluation, label in zip(evaluations, labels)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def is_own_report(path):
    """Whether the file at `path` is a report page this module wrote (its generator tag, or,
    from before the tag, its style sheet's rows of the interpreters and references).

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     page = os.path.join(tmp, "index.html")
    ...     _ = write_text("<html><title>my site</title></html>", page)
    ...     mine = is_own_report(page)
    ...     _ = write_text(render_html([], tmp), page)
    ...     mine, is_own_report(page)
    (False, True)
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as fin:
            head = fin.read(4096)
    except OSError:
        return False
    return f'content="{GENERATOR}"' in head or LEGACY_MARK in head


def write_report(eval_folders, report_folder, title="Interpretation report"):
    """Writes `<report_folder>/index.html` for the eval folders; returns its path.

    An index.html already there that is not a report of this module (`is_own_report`) is
    the user's: refused, not replaced.
    """
    evaluations = [load_evaluation(folder) for folder in eval_folders]
    path = os.path.join(report_folder, "index.html")
    if os.path.exists(path) and not is_own_report(path):
        raise ValueError(
            f"{path} is already there and is not a report of this project: give the report "
            "another folder (recipes/report.py --out)."
        )
    os.makedirs(report_folder, exist_ok=True)
    return write_text(render_html(evaluations, report_folder, title), path)


def sanity_html(sanity, png=None):
    """The report's section of a `model_randomisation_check` result: verdict, table, PNG.

    `png` is the PNG's link relative to the report (none: no image).
    """
    steps = sanity["steps"]
    head = "".join(f"<th>{html.escape(step)}</th>" for step in steps)
    rows = []
    for method, values in sanity["methods"].items():
        name = METHOD_LABELS.get(method, method)
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
        f"{html.escape(', '.join(METHOD_LABELS.get(m, m) for m in failed))}: with the whole "
        "classifier randomised, the mask stays the same (Spearman and SSIM with the original "
        f"&ge; {sanity['max_similarity']}); it does not depend on what the classifier learned.</p>"
        if failed
        else "<p>Sanity check passed: every method's mask changed when the classifier was randomised.</p>"
    )
    image = f'<img src="{png}" alt="sanity check: similarity to the original mask per step">' if png else ""
    return (
        f"<h3>Sanity check: cumulative classifier randomisation, top layer first "
        f"({sanity['clips']} clips)</h3>{verdict}"
        f'<div class="wide"><table><tr><th class="label">method</th>{head}</tr>{"".join(rows)}</table></div>'
        f"{image}"
    )
