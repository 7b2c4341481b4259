"""The test-set evaluation: every method and reference mask scored over a dataset.

`run_evaluation` is what `recipes/eval.py` runs on the test folds: it sets up
the interference (`data_prep.interference`) and, on the synthetic dataset, the
ground truth (`data_prep.ground_truth`; out of distribution and with WHAM!
noise too: the target stays the target and the interference joins the
background), then `evaluate` goes batch by batch:

    explain (the interpreter's mask, X_int, audio)
    -> baseline masks (recipes/evaluation/baselines.py: random permutation, captum)
    -> score: the interpreter (`brain.score`), the baselines and the reference
       masks "all ones" and "ground truth" (`brain.score_mask`), and with ground
       truth the interpreter's own ceiling where it has one ("oracle": L2I's best
       NMF components for the target region, `recipes.interpreters.l2i.oracle_selection`)
    -> ground-truth metrics of every mask (recipes/evaluation/metrics.py)
    -> deletion / insertion curves of every mask (recipes/evaluation/curves.py)
    -> the classifier check (can this classifier judge masks?)
    -> PNG and wavs of the clips shown in the report

then the means with their bootstrap intervals (`metrics.StageStats`), the
mean curves (`curves.png`), optionally the sanity check (recipes/evaluation/sanity.py),
and writes `metrics.md`, `metrics.json` and `report/index.html` into the eval
folder. See `recipes/eval.py` for the command line and the definitions.

Authors
 * audio-interpret contributors 2026
"""

import csv
import io
import math
import os

import torch
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.logger import get_logger
from tqdm import tqdm

from data_prep.esc50_prepare import check_folds
from data_prep.files import write_json, write_text
from data_prep.ground_truth import GroundTruth
from data_prep.interference import Interference, dataset_labels
from recipes.core.brains import fused_for_inference
from recipes.core.labels import BASELINES, ORACLE
from recipes.core.pipeline import classify
from recipes.core.process import code_version
from recipes.evaluation import curves, metrics
from recipes.evaluation.baselines import baseline_masks, has_activation_map, parse_baselines
from recipes.evaluation.sanity import sanity_check_of_evaluation
from recipes.reporting.figures import (
    clip_title,
    plot_curves,
    plot_sanity,
    save_interpretation,
    write_wav,
)
from recipes.reporting.html_report import write_report
from recipes.reporting.tables import classifier_warning, metrics_markdown, undefined_line

logger = get_logger(__name__)


def report_clip_positions(labels, count):
    """Positions of `count` clips to show, the classes taken in turn (first clip of each, ...).

    Example
    -------
    >>> report_clip_positions(torch.tensor([0, 0, 0, 1, 1, 2]), 4)
    [0, 3, 5, 1]
    """
    if count <= 0 or labels.numel() == 0:
        return []
    one_hot = torch.nn.functional.one_hot(labels)  # (N, C)
    rank_in_class = one_hot.cumsum(dim=0).gather(1, labels.view(-1, 1)).squeeze(1) - 1  # (N,)
    position = torch.arange(labels.numel())
    order = torch.argsort(rank_in_class * labels.numel() + position)
    return order[:count].tolist()


def interpreter_name(brain):
    """The name the tables use for the interpreter: its Brain class (L2I, PIQ)."""
    return type(brain).__name__


def all_ones_metrics(brain, outputs):
    """The metric suite of the all-ones mask (keep everything), {name: (B,) values}.

    X_int = X exactly, so the classifier's scores on X are reused for X_int:
    Fid-In = 1 and AI = AD = AG = 0 by construction, not up to float rounding of
    another classifier pass. X - X_int is all zeros (one pass, broadcast).
    """
    X, classes = outputs["X"], outputs["classes"]
    scores_zero, _ = brain.classify(torch.zeros_like(X[:1]))  # (1, N)
    probs = brain.class_probabilities(outputs["scores"])  # (B, N)
    probs_removed = brain.class_probabilities(scores_zero).expand_as(probs)
    return metrics.mask_metrics(probs, probs, probs_removed, classes, torch.ones_like(X))


def classifier_check(
    accuracy,
    masked_predictions,
    class_name=str,
    target_accuracy=None,
    ground_truth_fid_in=None,
    masked_methods=None,
):
    """Can this classifier judge masks? The "classifier_check" block of metrics.json.

    Arguments
    ---------
    accuracy : float
        The classifier's accuracy on the evaluated clips.
    masked_predictions : torch.Tensor
        Its predicted class on X_int (the mask applied), pooled over the clips and the
        masks `masked_methods`, (M,).
    class_name : callable
        Class index -> name.
    target_accuracy : float, optional
        Its accuracy on the clean target events alone (data with sources).
    ground_truth_fid_in : float, optional
        Fid-In of the ground-truth mask (data with sources).
    masked_methods : list of str, optional
        The masks pooled in `masked_predictions`: the interpreter's name, "saliency" when it
        is among the baselines, "ground_truth" on data with sources; the report names them.

    Returns
    -------
    dict
        The figures above, the most frequent masked-input class and its share,
        and "warning" (`recipes.reporting.tables.classifier_warning`, None when none).

    Example
    -------
    >>> check = classifier_check(0.9, torch.tensor([2, 2, 2, 1]))
    >>> check["masked_top_class"], check["masked_top_class_share"]
    ('2', 0.75)
    >>> check["warning"].startswith("masked-input metrics")
    True
    """
    counts = torch.bincount(masked_predictions.reshape(-1).long().cpu())
    top = int(counts.argmax()) if counts.numel() else None
    check = {
        "accuracy": accuracy,
        "target_accuracy": target_accuracy,
        "ground_truth_fid_in": ground_truth_fid_in,
        "masked_predictions": int(counts.sum()),
        "masked_top_class": None if top is None else class_name(top),
        "masked_top_class_share": None if top is None else counts[top].item() / counts.sum().item(),
        "masked_methods": None if masked_methods is None else list(masked_methods),
    }
    check["warning"] = classifier_warning(check)
    return check


def _distributed():
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def shard_batch_starts(n_clips, batch_size, rank=None, world_size=None):
    """The first clip of each batch this process evaluates.

    The test set is cut into the batches one process would make, and the
    batches are dealt out to the torchrun processes in turn, so every batch,
    and every random draw seeded by its position, is what a single process
    gets: the figures equal a single-process run on the same clips.

    Example
    -------
    >>> shard_batch_starts(10, 4, rank=0, world_size=2), shard_batch_starts(10, 4, rank=1, world_size=2)
    ([0, 8], [4])
    """
    if rank is None:
        rank = torch.distributed.get_rank() if _distributed() else 0
        world_size = torch.distributed.get_world_size() if _distributed() else 1
    return list(range(rank * batch_size, n_clips, world_size * batch_size))


def _gathered(correct, target_correct, n_evaluated, shown, masked_predictions):
    """The per-process counts summed, the shown clips and masked predictions pooled."""
    masked = torch.cat(masked_predictions) if masked_predictions else torch.zeros(0, dtype=torch.long)
    if not _distributed():
        return correct, target_correct, n_evaluated, shown, masked
    everyone = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(everyone, (correct, target_correct, n_evaluated, shown, masked))
    return (
        sum(part[0] for part in everyone),
        sum(part[1] for part in everyone),
        sum(part[2] for part in everyone),
        [clip for part in everyone for clip in part[3]],
        torch.cat([part[4] for part in everyone]),
    )


class EvaluationOptions:
    """What `evaluate` scores beyond the metric suite (eval.py's flags).

    Arguments
    ---------
    baselines : tuple of str
        The baselines (`recipes.core.labels.BASELINES` names) to score.
    deletion_value : str
        The deletion value of the curves (`recipes.evaluation.curves.DELETION_VALUES`).
    seed : int
        Seeds the batches' random draws and the bootstrap.
    n_resamples : int
        Bootstrap resamples of each confidence interval.
    """

    def __init__(self, baselines=BASELINES, deletion_value="zero", seed=0, n_resamples=metrics.BOOTSTRAP_RESAMPLES):
        self.baselines = tuple(baselines)
        self.deletion_value = deletion_value
        self.seed = int(seed)
        self.n_resamples = int(n_resamples)


def _gathered_list(items):
    """A list's items of every torchrun process, concatenated (one process: the list)."""
    if not _distributed():
        return items
    everyone = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(everyone, items)
    return [item for part in everyone for item in part]


#: The metrics of metrics.md's per-class table (`by_class`), those the evaluation has.
BY_CLASS_METRICS = ("si_sdri", "gt_precision", "fid_in")
#: per_clip.csv's first columns; the metrics follow.
CLIP_COLUMNS = ("id", "true_class", "class", "method")


def clip_rows(values, ids, true_classes, classes):
    """One row per (clip, method) of a batch: {"id", "true_class", "class", "method", metric: value}.

    Arguments
    ---------
    values : dict
        {method: {metric: (B,) values}}; a metric with another shape (a batch scalar) is left out.
    ids, true_classes, classes : list
        The clips' ids, labels and the classifier's classes (names), B each.

    Example
    -------
    >>> values = {"LMAC": {"fid_in": torch.tensor([1.0, 0.0]), "loss": torch.tensor(0.5)}}
    >>> for row in clip_rows(values, ["a", "b"], ["dog", "cat"], ["dog", "dog"]):
    ...     print(row)
    {'id': 'a', 'true_class': 'dog', 'class': 'dog', 'method': 'LMAC', 'fid_in': 1.0}
    {'id': 'b', 'true_class': 'cat', 'class': 'dog', 'method': 'LMAC', 'fid_in': 0.0}
    """
    per_clip = {
        method: {k: v.detach().float().cpu().reshape(-1).tolist() for k, v in metric_values.items() if v.numel() == len(ids)}
        for method, metric_values in values.items()
    }
    rows = []
    for i, clip_id in enumerate(ids):
        for method, metric_values in per_clip.items():
            row = {"id": clip_id, "true_class": true_classes[i], "class": classes[i], "method": method}
            row.update({metric: value[i] for metric, value in metric_values.items()})
            rows.append(row)
    return rows


def per_clip_csv(rows):
    """`clip_rows`' rows as csv text: CLIP_COLUMNS, then every metric in the order first seen;
    an undefined value (NaN, inf) or a metric a method has not is an empty cell.

    Example
    -------
    >>> rows = [{"id": "a", "true_class": "dog", "class": "cat", "method": "PIQ", "si_sdri": float("nan")},
    ...         {"id": "a", "true_class": "dog", "class": "cat", "method": "all_ones", "fid_in": 1.0}]
    >>> print(per_clip_csv(rows), end="")
    id,true_class,class,method,si_sdri,fid_in
    a,dog,cat,PIQ,,
    a,dog,cat,all_ones,,1.0
    """
    names = list(dict.fromkeys(key for row in rows for key in row if key not in CLIP_COLUMNS))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CLIP_COLUMNS, *names])
    for row in rows:
        cells = [row.get(name) for name in names]
        writer.writerow(
            [*(row[c] for c in CLIP_COLUMNS), *("" if v is None or not math.isfinite(v) else repr(v) for v in cells)]
        )
    return buffer.getvalue()


def by_class(rows, names=BY_CLASS_METRICS):
    """Means per true class of `clip_rows`' rows: {class: {"n": clips, method: {metric: mean}}},
    classes in the order first seen; a mean over the class's clips with a finite value
    (none: the metric is left out).

    Example
    -------
    >>> rows = [{"id": "a", "true_class": "dog", "class": "dog", "method": "PIQ", "fid_in": 1.0},
    ...         {"id": "b", "true_class": "dog", "class": "cat", "method": "PIQ", "fid_in": 0.0},
    ...         {"id": "c", "true_class": "cat", "class": "cat", "method": "PIQ", "fid_in": float("nan")}]
    >>> by_class(rows)
    {'dog': {'n': 2, 'PIQ': {'fid_in': 0.5}}, 'cat': {'n': 1, 'PIQ': {}}}
    """
    return by_group(rows, {row["id"]: row["true_class"] for row in rows}, names)


def by_group(rows, groups, names=BY_CLASS_METRICS):
    """Means per group of `clip_rows`' rows, as `by_class` gives them per true class:
    {group: {"n": clips, method: {metric: mean}}}, groups in the order first seen. `groups`
    maps a clip id to its group (e.g. the background recording of a collection set's clip:
    `GroundTruth.background_recordings`); a clip without one is left out.

    Example
    -------
    >>> rows = [{"id": "a", "method": "PIQ", "si_sdri": 2.0}, {"id": "b", "method": "PIQ", "si_sdri": 4.0},
    ...         {"id": "c", "method": "PIQ", "si_sdri": 9.0}]
    >>> by_group(rows, {"a": "rain.ogg", "b": "rain.ogg"})
    {'rain.ogg': {'n': 2, 'PIQ': {'si_sdri': 3.0}}}
    """
    sums, clips = {}, {}
    for row in rows:
        group = groups.get(row["id"])
        if group is None:
            continue
        clips.setdefault(group, set()).add(row["id"])
        method_sums = sums.setdefault(group, {}).setdefault(row["method"], {})
        for name in names:
            value = row.get(name)
            if value is not None and math.isfinite(value):
                total, n = method_sums.get(name, (0.0, 0))
                method_sums[name] = (total + value, n + 1)
    return {
        label: {
            "n": len(clips[label]),
            **{method: {k: total / n for k, (total, n) in m.items()} for method, m in methods.items()},
        }
        for label, methods in sums.items()
    }


def evaluate(brain, dataset, loader_options, interference, ground_truth, clips_folder, n_clips, options=None):
    """Scores the interpreter, the baselines and the reference masks over `dataset`, batch by batch.

    Arguments
    ---------
    brain : InterpreterBrain
        With its interpreter loaded.
    dataset : DynamicItemDataset
    loader_options : dict
        DataLoader options (not shuffled: the interference is indexed by position).
    interference : Interference
    ground_truth : GroundTruth or None
    clips_folder : str
        Where the PNG and wavs of the shown clips go.
    n_clips : int
        Clips shown in the report: the first clip of each class, then the second, ...
    options : EvaluationOptions, optional
        Baselines, deletion value, seed (default: every baseline, zero, the yaml's seed).

    Returns
    -------
    dict
        "methods": {method: {metric: value}}, interpreter first, then the baselines,
        then, with ground truth and where the interpreter has one (L2I), "oracle":
        the interpreter's best mask from the ground truth (`oracle_mask`);
        "references": {reference: {metric: value}}: "all_ones", and "ground_truth"
        (the target-dominant region as the mask) with ground truth;
        "intervals": {method or reference: {metric: {"low", "high"}}}, the 95 %
        bootstrap intervals of the per-clip means;
        "curves": {"fractions", "deletion_value", "methods": {method: {"deletion":
        [...], "insertion": [...]}}, "per_clip": {"ids": [...], method:
        {"deletion_auc": [...], "insertion_auc": [...]}}}: the mean deletion /
        insertion curves and every clip's AUCs (every method and the ground
        truth; not "all ones", whose ranking is all ties);
        "classifier_check": `classifier_check(...)` of the evaluated clips;
        "clips": the clips written for the report (paths relative to clips_folder's parent);
        "n_undefined": {method or reference: {metric: count}}: the clips whose value is
        undefined (e.g. SI-SDR against a silent target), left out of the means; empty for none;
        "per_clip_rows": every clip's values, one row per (clip, method or reference), in the
        test set's order (`clip_rows`; `run_evaluation` writes them to per_clip.csv, not to
        metrics.json).
    """
    if options is None:
        options = EvaluationOptions(seed=brain.hparams.seed)
    name = interpreter_name(brain)
    stats = {name: metrics.StageStats(brain.median_stats), **{b: metrics.StageStats() for b in options.baselines}}
    with_oracle = ground_truth is not None and brain.has_oracle
    if with_oracle:  # the method's ceiling on these clips: a reference, not ranked with the methods
        stats[ORACLE] = metrics.StageStats()
    references = {"all_ones": metrics.StageStats()}
    if ground_truth is not None:
        references["ground_truth"] = metrics.StageStats()
    curve_stats = {method: metrics.StageStats() for method in [*stats, *references] if method != "all_ones"}
    batch_size = int(loader_options["batch_size"])
    starts = shard_batch_starts(len(dataset), batch_size)  # this process's batches
    positions = [p for start in starts for p in range(start, min(start + batch_size, len(dataset)))]
    loader = make_dataloader(dataset, **{**loader_options, "shuffle": False, "sampler": positions})
    shown_positions = set(report_clip_positions(dataset_labels(dataset), n_clips))
    correct, target_correct, n_evaluated, shown, masked_predictions = 0, 0, 0, [], []
    # the masks whose X_int the classifier check pools (see below)
    masked_methods = [name, *(["saliency"] if "saliency" in options.baselines else [])]
    masked_methods += ["ground_truth"] if ground_truth is not None else []
    per_clip_auc = []  # (position, id, {method: [deletion AUC, insertion AUC]})
    per_clip = []  # (position of the clip, one of its rows of clip_rows)

    # the curves' many classifier calls: the same classifier with its BatchNorms folded
    curve_model = fused_for_inference(brain.hparams.embedding_model)

    @torch.no_grad()
    def probabilities(X):
        hparams = brain.hparams
        scores, _ = classify(curve_model, hparams.classifier, X, hparams.compute_fbank, hparams.use_melspectra)
        return brain.class_probabilities(scores)

    batches = tqdm(zip(starts, loader), total=len(starts), desc="eval", disable=not if_main_process())
    for start, batch in batches:
        clips = batch.sig[0].to(brain.device)  # (B, T) the dataset's clips
        mixture = interference.mix(clips, start)  # wavs == gain * clips + added
        wavs = mixture.wavs  # (B, T) the evaluated clips
        # the batch's random draws depend on its position only (see shard_batch_starts)
        generator = torch.Generator().manual_seed(options.seed * 1_000_003 + start)
        outputs = brain.explain(wavs)
        labels = batch.class_string_encoded.data.view(-1).to(brain.device)  # (B,)
        correct += int((outputs["classes"] == labels).sum())
        masks = {name: outputs["mask"], **baseline_masks(brain, outputs, generator, options.baselines)}
        with torch.no_grad():
            values, scores = {}, {}
            values[name], scores[name] = brain.score(outputs, generator)
            for baseline in options.baselines:  # the generic suite for masks without an interpreter
                values[baseline], scores[baseline] = brain.score_mask(outputs, masks[baseline])
            # The classifier on X_int of the interpreter, saliency and ground truth. The random
            # permutation is left out: it scatters the clip's evidence on purpose, and a
            # classifier may rightly call scattered bins one noise-like class.
            masked_predictions += [
                scores[method]["int"].argmax(dim=1).cpu() for method in masked_methods if method in scores
            ]
            values["all_ones"] = all_ones_metrics(brain, outputs)
            target = X_target = None
            if ground_truth is not None:
                # the sources of the evaluated clips: the interference joins the background
                target, background = ground_truth.sources(batch.id, clips, mixture)
                region = metrics.target_region(target, background, brain.hparams.compute_stft)
                values["ground_truth"], ground_truth_scores = brain.score_mask(outputs, region)
                masked_predictions.append(ground_truth_scores["int"].argmax(dim=1).cpu())
                masks["ground_truth"] = region
                if with_oracle:  # after the ground truth: the other masks' random draws stay as they were
                    masks[ORACLE] = brain.oracle_mask(outputs, region)
                    values[ORACLE], _ = brain.score_mask(outputs, masks[ORACLE])
                # the interpreter's audio is already inverted, and keeping everything is the clip
                audio_of = {name: outputs["audio"], "all_ones": wavs}
                for method, mask in {**masks, "all_ones": torch.ones_like(region)}.items():
                    audio = audio_of.get(method)
                    if audio is None:
                        audio = brain.interpretation_audio(
                            outputs["X"], outputs["X_stft"], mask, wavs.shape[-1]
                        )
                    X_int = brain.apply_mask(outputs["X"], mask)
                    values[method].update(
                        metrics.ground_truth_metrics(X_int, outputs["X"], audio, wavs, target, region)
                    )
                X_target, _ = brain.preprocess(target)  # the target events alone, as scaled in the clips
                target_scores, _ = brain.classify(X_target)  # (B, N)
                target_correct += int((target_scores.argmax(dim=1) == labels).sum())
            ends = curves.endpoint_probabilities(
                probabilities, outputs["X"], outputs["classes"], options.deletion_value, outputs["probs"]
            )
            # deletion / insertion along each mask's ranking; the same mask, the same curves
            every_curves = curves.masks_curves(
                probabilities, outputs["X"], masks, outputs["classes"], options.seed, start,
                options.deletion_value, ends,
            )  # fmt: skip
            for method, method_curves in every_curves.items():
                values[method].update(curves.curve_metrics(method_curves))
                curve_stats[method].add_values(curves.curve_step_values(method_curves))
            aucs = {m: torch.stack([values[m][k] for k in curves.CURVE_METRICS], dim=1).tolist() for m in masks}
            per_clip_auc += [
                (start + i, clip_id, {m: aucs[m][i] for m in masks}) for i, clip_id in enumerate(batch.id)
            ]
        true_classes = [brain.class_name(i) for i in labels.tolist()]
        classes = [brain.class_name(i) for i in outputs["classes"].tolist()]
        rows = clip_rows(values, list(batch.id), true_classes, classes)  # len(values) rows per clip, in turn
        per_clip += [(start + k // len(values), row) for k, row in enumerate(rows)]
        for method, method_values in values.items():
            (references if method in references else stats)[method].add_values(method_values)
        in_batch = [i for i in range(wavs.shape[0]) if start + i in shown_positions]
        written = save_report_clips(brain, batch, outputs, labels, target, clips_folder, in_batch, X_target)
        shown += [(start + i, clip) for i, clip in zip(in_batch, written)]
        n_evaluated += wavs.shape[0]
    # every process's counts (one process: as they are)
    correct, target_correct, n_evaluated, shown, masked_predictions = _gathered(
        correct, target_correct, n_evaluated, shown, masked_predictions
    )
    shown = [clip for _, clip in sorted(shown, key=lambda pair: pair[0])]
    per_clip_auc = sorted(_gathered_list(per_clip_auc), key=lambda entry: entry[0])
    per_clip = [row for _, row in sorted(_gathered_list(per_clip), key=lambda entry: entry[0])]
    everything = {**stats, **references}
    summaries = {method: s.summary(options.seed, options.n_resamples) for method, s in everything.items()}
    intervals = {
        method: {metric: {"low": low, "high": high} for metric, (low, high) in s.intervals.items()}
        for method, s in everything.items()
    }
    n_undefined = {method: s.n_undefined for method, s in everything.items() if s.n_undefined}
    n_evaluated = max(n_evaluated, 1)
    with_sources = ground_truth is not None
    check = classifier_check(
        correct / n_evaluated,
        masked_predictions,
        class_name=brain.class_name,
        target_accuracy=target_correct / n_evaluated if with_sources else None,
        ground_truth_fid_in=summaries["ground_truth"]["fid_in"] if with_sources else None,
        masked_methods=masked_methods,
    )
    return {
        "methods": {method: summaries[method] for method in stats},
        "references": {reference: summaries[reference] for reference in references},
        "intervals": intervals,
        "curves": {
            "fractions": list(curves.CURVE_FRACTIONS),
            "deletion_value": options.deletion_value,
            "methods": {method: curves.mean_curves(s.summary()) for method, s in curve_stats.items()},
            # the AUCs of every clip, in the test set's order
            "per_clip": {
                "ids": [clip_id for _, clip_id, _ in per_clip_auc],
                **{
                    method: {
                        metric: [aucs[method][k] for _, _, aucs in per_clip_auc]
                        for k, metric in enumerate(curves.CURVE_METRICS)
                    }
                    for method in curve_stats
                },
            },
        },
        "classifier_check": check,
        "clips": shown,
        "n_undefined": n_undefined,
        "per_clip_rows": per_clip,
    }


def save_report_clips(brain, batch, outputs, labels, target, folder, indices, X_target=None):
    """Writes PNG + original / interpretation (/ target) wavs for the clips `indices` of a batch;
    with the target events' spectrograms `X_target` (B, frames, F), the PNG shows them too."""
    sample_rate = brain.hparams.sample_rate
    written = []
    for i in indices:  # file writing, not tensor work: one file set per clip
        clip_id, c = batch.id[i], int(outputs["classes"][i])
        probability = float(outputs["probs"][i, c])
        title = clip_title(clip_id, brain.class_name(c), probability, brain.class_name(int(labels[i])))
        paths = save_interpretation(
            folder,
            clip_id,
            X=outputs["X"][i],
            mask=outputs["mask"][i],
            X_int=outputs["X_int"][i],
            original=outputs["wavs"][i],
            interpretation=outputs["audio"][i],
            sample_rate=sample_rate,
            title=title,
            X_target=None if X_target is None else X_target[i],
        )
        if target is not None:
            paths["target"] = os.path.join(folder, f"{clip_id}_target.wav")
            write_wav(paths["target"], target[i], sample_rate)
        base = os.path.dirname(os.path.abspath(folder))
        written.append(
            {
                "id": clip_id,
                "class": brain.class_name(c),
                "true_class": brain.class_name(int(labels[i])),
                "probability": probability,
                **{key: os.path.relpath(os.path.abspath(p), base) for key, p in paths.items()},
            }
        )
    return written


def _local_or_hub(path):
    """A local file's absolute path; anything else (a hub id) as it is."""
    path = str(path)
    return os.path.abspath(path) if os.path.exists(path) else path


def run_evaluation(brain, hparams, datasets, args, eval_folder):
    """The test-fold evaluation: metrics.json, metrics.md, clips and the HTML report."""
    n_samples = int(round(hparams["sample_rate"] * hparams["signal_length_s"]))
    dataset = datasets["test"]
    interference = Interference(
        args.overlap_type,
        dataset,
        hparams["seed"],
        hparams["sample_rate"],
        n_samples,
        speech_folder=args.speech_folder,
        wham_mixer=brain.wham_mixer,
    )
    ground_truth = None
    if GroundTruth.available(hparams["data_folder"]):  # in and out of distribution alike
        ground_truth = GroundTruth(hparams["data_folder"], hparams["sample_rate"], n_samples)
    options = EvaluationOptions(
        parse_baselines(args.baselines, has_activation_map(brain)), args.deletion_value, hparams["seed"], args.n_bootstrap
    )
    scored = evaluate(
        brain,
        dataset,
        hparams["test_dataloader_opts"],
        interference,
        ground_truth,
        os.path.join(eval_folder, "clips"),
        args.n_report_clips,
        options,
    )
    check = scored["classifier_check"]
    per_clip = scored.pop("per_clip_rows")
    result = {
        "interpreter": interpreter_name(brain),
        "hparams_file": os.path.abspath(args.hparams_file),
        "pretrained_interpreter": os.path.abspath(args.pretrained_interpreter),
        "data_folder": os.path.abspath(hparams["data_folder"]),
        "overlap_type": args.overlap_type,
        "wham_noise": brain.wham_mixer is not None,
        "n_clips": len(dataset),
        "seed": hparams["seed"],
        "test_folds": check_folds("test_fold_nums", hparams["test_fold_nums"]),
        "code": code_version(),
        "classifier": {
            name: _local_or_hub(hparams[f"{name}_path"])
            for name in ("embedding_model", "classifier_model")
        },
        "classifier_accuracy": check["accuracy"],
        "ground_truth": ground_truth is not None,
        "baselines": list(options.baselines),
        "bootstrap": {"resamples": options.n_resamples, "level": metrics.CONFIDENCE_LEVEL, "seed": options.seed},
        **scored,
        "by_class": by_class(per_clip),
    }
    recordings = ground_truth.background_recordings() if ground_truth is not None else {}
    if recordings:  # a collection set: which backgrounds the interpretations fail on
        result["by_background"] = by_group(per_clip, recordings)
    n_undefined = result["n_undefined"]
    if args.sanity_check and if_main_process():
        result["sanity_check"] = sanity_check_of_evaluation(
            brain, dataset, interference, options.baselines, args.sanity_clips, options.seed
        )
    if not if_main_process():  # under torchrun the main process writes the files
        return result
    if n_undefined:
        logger.warning("%s (see recipes/evaluation/metrics.py's docstring).", undefined_line(n_undefined))
    result["curves"]["png"] = os.path.relpath(
        plot_curves(result["curves"], os.path.join(eval_folder, "curves.png"), result["interpreter"]),
        eval_folder,
    )
    if "sanity_check" in result:
        png = plot_sanity(result["sanity_check"], os.path.join(eval_folder, "sanity_check.png"))
        result["sanity_check"]["png"] = os.path.relpath(png, eval_folder)
    write_text(per_clip_csv(per_clip), os.path.join(eval_folder, "per_clip.csv"))
    write_text(metrics_markdown(result), os.path.join(eval_folder, "metrics.md"))
    # metrics.json last: its presence marks a finished evaluation (make demo reuses it)
    write_json(metrics.finite_or_none(result), os.path.join(eval_folder, "metrics.json"))
    report = write_report([eval_folder], os.path.join(eval_folder, "report"))
    logger.info("Evaluation written to %s (report: %s)", eval_folder, report)
    return result
