#!/usr/bin/env python3
"""`make compare`: the demo's interpreters over several training seeds, mean ± std.

    python recipes/compare.py                      # hparams/demo.yaml, 3 seeds -> results/demo/
    python recipes/compare.py --seeds 1234 1235    # these interpreter-training seeds
    python recipes/compare.py --smoke --output_folder /tmp/cmp --interpreters lmac --n_seeds 2

The data, the classifier and the NMF dictionary are the demo's (recipes/demo.py,
the config's `common: seed`, in `<out>/data`, `<out>/classifier`, `<out>/nmf`):
made once and shared. Only the interpreters (L2I, PIQ, L-MAC, or the subset of
`--interpreters`) are trained and evaluated once per seed, with `--seed s`:

    seed = common seed     <out>/{l2i,piq,lmac}           (the demo's own folders)
    any other seed s       <out>/seeds/<s>/{l2i,piq,lmac}
                           (each with its eval/ folder, as in the demo)

The demo's out-of-distribution evaluations (`eval: out_of_distribution`) are
the demo's own: they are not repeated per seed.

An ablation over the same seeds, without editing the config: `--variant NAME` with
`--set STAGE.KEY=VALUE` (repeatable; an interpreter stage's recipe-yaml key, the
value read as yaml) trains and evaluates the interpreters with those settings in
`<out>/variants/<NAME>/seeds/<s>/{l2i,piq,lmac}` (the data, the classifier and the
dictionary still the demo's), and writes its tables in `<out>/variants/<NAME>/compare/`
with, where the demo's settings were run on the same seed, the two side by side:

    python recipes/compare.py --config hparams/demo_focalnet.yaml --interpreters lmac \
        --variant avg3 --set lmac.average_checkpoints=3

Default seeds: the common seed, then common + 1, ... (`--n_seeds`, 3). Every
stage is the demo's `Stage`: one whose outputs exist is reused (so after `make
demo` only the new seeds are trained), an interrupted one resumes, and one
made with other settings stops with the demo's message naming the folder to
delete.

Then, from every seed's `eval/metrics.json` ("methods" and "references" only;
non-numeric values are left out), for each row of the report's summary table
(recipes/report.py: the interpreters, their baselines, the reference masks) and
each metric: the mean and the sample standard deviation (ddof 1) over the
seeds that have a value (`n`); with one value there is no std (null in the
json, no "± std" in the table). Writes into `<out>/compare/`:

    per_seed.csv    one row per (seed, interpreter, row): seed, interpreter, method, metrics
    summary.json    {row: {metric: {"mean", "std", "n"}}}
    summary.md      the mean ± std table, by class too, the seeds and the wall times

Authors
 * audio-interpret contributors 2026
"""

import argparse
import copy
import csv
import io
import json
import math
import os
import re
import statistics
import sys
import time

import yaml
from speechbrain.utils.logger import get_logger

from data_prep.files import write_json, write_text
from recipes.core.startup import check_override_types, recipe_keys
from recipes.demo import (
    DEFAULT_CONFIG,
    INTERPRETERS,
    REPO_ROOT,
    build_stages,
    config_interpreters,
    format_times,
    load_config,
    resolve_output_folder,
    use_data_folder,
)
from recipes.reporting.html_report import load_evaluation
from recipes.reporting.tables import (
    METRICS,
    format_value,
    method_label,
    metric_columns,
    reference_rows,
    summary_rows,
)

logger = get_logger(__name__)

DEFAULT_N_SEEDS = 3
COMPARE_FOLDER = "compare"  # under the output folder: the tables
SEEDS_FOLDER = "seeds"  # under the output folder: <seed>/{l2i,piq,lmac} for the other seeds
SHARED_STAGES = ("data", "classifier", "nmf")
VARIANTS_FOLDER = "variants"  # under the output folder: <name>/seeds/<seed>/..., <name>/compare
#: The figures of the side-by-side table of a variant against the demo's settings.
PAIRED_METRICS = ("si_sdri", "gt_precision", "fid_in")
#: What an evaluation's metrics.json says it was scored on: two evaluations that differ in one
#: of these scored other clips (a variant with `add_wham_noise` is evaluated on noisy clips),
#: and their figures are not a pair. Not `data_folder`: compare gives both the same data, and
#: its path changes when a demo folder holding its data is moved (reused evaluations keep it).
EVALUATED_ON = ("test_folds", "n_clips", "overlap_type", "wham_noise")


def resolve_seeds(common_seed, n_seeds=None, seeds=None):
    """The interpreter-training seeds: `seeds` as given, or `n_seeds` from the common seed on.

    Example
    -------
    >>> resolve_seeds(1234), resolve_seeds(1234, n_seeds=1), resolve_seeds(1234, seeds=[7, 1234])
    ([1234, 1235, 1236], [1234], [7, 1234])
    """
    if seeds is not None:
        seeds = [int(seed) for seed in seeds]
        if not seeds:
            raise ValueError("--seeds needs at least one seed.")
        repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
        if repeated:
            raise ValueError(
                f"--seeds lists {', '.join(map(str, repeated))} more than once: each seed "
                "trains the interpreters once, give every seed once."
            )
        return seeds
    n_seeds = DEFAULT_N_SEEDS if n_seeds is None else int(n_seeds)
    if n_seeds < 1:
        raise ValueError(f"--n_seeds must be at least 1 (got {n_seeds}).")
    return [int(common_seed) + offset for offset in range(n_seeds)]


def resolve_interpreters(names=None, trained=INTERPRETERS):
    """The interpreter stage names asked for (any case, 'L-MAC' = 'lmac'), in the demo's order.

    Arguments
    ---------
    names : list of str, optional
        What ``--interpreters`` names; None: every interpreter the config trains.
    trained : sequence of str
        The interpreters the config trains (``demo.config_interpreters``): the transformer
        demos have no L2I stage, and one they lack is refused by name.

    Example
    -------
    >>> resolve_interpreters(["L-MAC", "l2i"]), resolve_interpreters()
    (['l2i', 'lmac'], ['l2i', 'piq', 'lmac'])
    >>> resolve_interpreters(trained=["piq", "lmac"])
    ['piq', 'lmac']
    """
    if names is None:
        return [name for name in INTERPRETERS if name in trained]
    wanted = {str(name).lower().replace("-", "") for name in names}
    unknown = sorted(wanted - set(INTERPRETERS))
    if unknown:
        raise ValueError(
            f"unknown interpreter {', '.join(repr(name) for name in unknown)}: "
            f"--interpreters takes {', '.join(INTERPRETERS)}."
        )
    untrained = [name for name in INTERPRETERS if name in wanted and name not in trained]
    if untrained:
        raise ValueError(
            f"--interpreters {', '.join(untrained)}: this config trains {', '.join(trained)}; "
            "name those, or give a --config with that stage."
        )
    return [name for name in INTERPRETERS if name in wanted]


def interpreter_base(output_folder, seed, common_seed, variant=None):
    """Where one seed's interpreter folders go: the demo's for the common seed, else
    seeds/<seed>; a variant's under variants/<name>/seeds/<seed> for every seed.

    Example
    -------
    >>> interpreter_base("out", 1234, 1234), interpreter_base("out", 7, 1234)
    ('out', 'out/seeds/7')
    >>> interpreter_base("out", 1234, 1234, variant="avg3")
    'out/variants/avg3/seeds/1234'
    """
    if variant is not None:
        return os.path.join(output_folder, VARIANTS_FOLDER, variant, SEEDS_FOLDER, str(seed))
    if int(seed) == int(common_seed):
        return output_folder
    return os.path.join(output_folder, SEEDS_FOLDER, str(seed))


def apply_settings(config, settings):
    """The config with `--set STAGE.KEY=VALUE` settings in its interpreter stages' overrides.

    Arguments
    ---------
    config : dict
        A demo config (`load_config`).
    settings : list of str
        "STAGE.KEY=VALUE": STAGE one of the config's interpreters, KEY a key of that stage's
        recipe yaml, VALUE read as yaml ("3" an int, "[5, 20]" a list, "True" a bool).

    Returns
    -------
    dict
        A copy of the config; the settings also in its "variant_settings" {stage: {key: value}}.

    Raises
    ------
    ValueError
        A setting not of that form, a stage the config does not train, or a key its
        recipe yaml does not have: named, with what would be accepted.

    Example
    -------
    >>> config = {"stages": {"classifier": {}, "lmac": {"hparams": "hparams/lmac_conv2d.yaml"}}}
    >>> apply_settings(config, ["lmac.average_checkpoints=3"])["stages"]["lmac"]["overrides"]
    {'average_checkpoints': 3}
    >>> apply_settings(config, ["piq.K=30"])
    Traceback (most recent call last):
    ...
    ValueError: --set piq.K=30: this config trains lmac; STAGE is one of them.
    """
    config = copy.deepcopy(config)
    interpreters = config_interpreters(config)
    applied = {}
    for setting in settings:
        match = re.fullmatch(r"([a-z0-9]+)\.([A-Za-z_]\w*)=(.*)", setting, flags=re.S)
        if match is None:
            raise ValueError(f"--set {setting}: write STAGE.KEY=VALUE, e.g. lmac.average_checkpoints=3.")
        stage, key, text = match.groups()
        if stage not in interpreters:
            raise ValueError(f"--set {setting}: this config trains {', '.join(interpreters)}; STAGE is one of them.")
        hparams_file = os.path.join(REPO_ROOT, config["stages"][stage]["hparams"])
        if key not in recipe_keys(hparams_file):
            raise ValueError(
                f"--set {setting}: {config['stages'][stage]['hparams']} has no key {key!r} (the recipe "
                "would refuse the override): see that yaml for its keys."
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"--set {setting}: {text!r} is not a yaml value ({error}).") from None
        config["stages"][stage].setdefault("overrides", {})[key] = value
        applied.setdefault(stage, {})[key] = value
    config["variant_settings"] = applied
    for stage, keys in applied.items():  # a value of the wrong type: refused before any stage runs
        try:
            check_override_types(os.path.join(REPO_ROOT, config["stages"][stage]["hparams"]), keys)
        except ValueError as error:
            raise ValueError(f"--set {stage}.{', '.join(keys)}: {error}") from None
    return config


def check_own_files(folder):
    """Refuses, before any stage runs, a compare folder whose summary.md, per_seed.csv or
    summary.json is not one this command wrote (a file of the user's): nothing would be kept.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = write_text("# my notes\\n", os.path.join(folder, "summary.md"))
    ...     check_own_files(folder)
    Traceback (most recent call last):
    ...
    ValueError: .../summary.md is already there and is not a summary of recipes/compare.py: give another --output_folder (or --variant); nothing was written.
    """
    def ours(name, text):
        if name == "summary.md":
            return text.startswith("# make compare:")
        if name == "per_seed.csv":
            return text.startswith("seed,interpreter,method")
        try:
            summary = json.loads(text)
        except ValueError:
            return False
        return isinstance(summary, dict) and all(
            isinstance(row, dict) and all(isinstance(cell, dict) and "mean" in cell for cell in row.values())
            for row in summary.values()
        )

    for name in ("summary.md", "per_seed.csv", "summary.json"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as fin:
                if not ours(name, fin.read()):
                    raise ValueError(
                        f"{path} is already there and is not a summary of recipes/compare.py: give "
                        "another --output_folder (or --variant); nothing was written."
                    )


def _made_as_planned(stage):
    """Whether a stage's outputs are there and were made with its settings and inputs."""
    try:
        return stage.done()
    except ValueError:  # made with other settings, or from other files
        return False


def paired_table(eval_folders, baseline_folders):
    """A variant's figures beside the demo's settings' on the same seeds, as markdown.

    Arguments
    ---------
    eval_folders, baseline_folders : dict
        {seed: {interpreter: eval folder}}: the variant's and the demo's settings'.

    Returns
    -------
    tuple
        (markdown table or "" when no seed has both: per interpreter and seed, each of
        PAIRED_METRICS as "demo's -> variant", then the mean over those seeds with the mean
        difference (over the seeds with both values, "(n=k)" when fewer; "-" for none); the
        seeds that had no evaluation with the demo's settings). A seed whose two evaluations
        were scored on other clips (`evaluated_on_differs`) gets a row that says so and is
        left out of the mean.
    """
    lines, missing = [], []
    titles = [METRICS.get(key, (key, ""))[0] for key in PAIRED_METRICS]
    for name in INTERPRETERS:
        pairs = []
        for seed, folders in eval_folders.items():
            if name not in folders:
                continue
            base = os.path.join(baseline_folders[seed].get(name, ""), "metrics.json")
            if name not in baseline_folders[seed] or not os.path.isfile(base):
                missing.append(seed)
                continue
            before, after = load_evaluation(baseline_folders[seed][name]), load_evaluation(folders[name])
            differs = evaluated_on_differs(before, after)
            if differs:
                lines.append(
                    f"| {name} | {seed} | not a pair: scored on other clips ({differs}); left out of the mean |"
                    + " |" * (len(PAIRED_METRICS) - 1)
                )
                continue
            pairs.append((seed, before, after))
        for seed, before, after in pairs:
            cells = [
                f"{paired_value(key, own_stats(before).get(key))} -> {paired_value(key, own_stats(after).get(key))}"
                for key in PAIRED_METRICS
            ]
            lines.append(f"| {name} | {seed} | " + " | ".join(cells) + " |")
        if pairs:
            cells = []
            for key in PAIRED_METRICS:
                # the seeds with both values (null in metrics.json: undefined on every clip)
                both = [(own_stats(b).get(key), own_stats(a).get(key)) for _, b, a in pairs]
                both = [(x, y) for x, y in both if is_number(x) and is_number(y)]
                if not both:
                    cells.append("-")
                    continue
                before = statistics.mean(x for x, _ in both)
                after = statistics.mean(y for _, y in both)
                fewer = f" (n={len(both)})" if len(both) < len(pairs) else ""
                cells.append(
                    f"**{paired_value(key, before)} -> {paired_value(key, after)}** ({after - before:+.3f}){fewer}"
                )
            lines.append(f"| {name} | mean of {len(pairs)} | " + " | ".join(cells) + " |")
    if not lines:
        return "", sorted(set(missing))
    head = "| interpreter | seed | " + " | ".join(f"{title}: demo's -> variant" for title in titles) + " |"
    rule = "|---|---|" + "---|" * len(titles)
    return "\n".join([head, rule, *lines]), sorted(set(missing))


def evaluated_on_differs(before, after):
    """What two evaluations' metrics.json say they were scored on, where it differs (EVALUATED_ON),
    as text; "" when they scored the same clips (a key neither records counts as the same).

    Example
    -------
    >>> evaluated_on_differs({"wham_noise": False, "n_clips": 80}, {"wham_noise": True, "n_clips": 80})
    'wham_noise False -> True'
    >>> evaluated_on_differs({"overlap_type": "none"}, {"overlap_type": "none"})
    ''
    """
    return ", ".join(
        f"{key} {before.get(key)} -> {after.get(key)}"
        for key in EVALUATED_ON
        if before.get(key) != after.get(key)
    )


def paired_value(key, value):
    """A cell of the side-by-side table: dB with a sign and 2 decimals, the rest 3 decimals.

    Example
    -------
    >>> paired_value("si_sdri", 13.2225), paired_value("fid_in", 0.975), paired_value("fid_in", None)
    ('+13.22', '0.975', '-')
    """
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:+.2f}" if key == "si_sdri" else f"{value:.3f}"


def own_stats(evaluation):
    """The interpreter's own row of an evaluation's "methods" (its `interpreter` key)."""
    return evaluation["methods"][evaluation["interpreter"]]


def plan_stages(config, output_folder, seeds, interpreters, variant=None):
    """The stages to run, in order, and where each seed's evaluations land.

    Returns
    -------
    tuple
        (list of (label, Stage): the shared stages once, then per seed the
        interpreters' training and evaluation stages; {seed: {interpreter:
        eval folder}}).
    """
    common_seed = config["common"]["seed"]
    shared = [name for name in SHARED_STAGES if name != "nmf" or "l2i" in interpreters]
    plan, eval_folders = [], {}
    for index, seed in enumerate(seeds):
        base = interpreter_base(output_folder, seed, common_seed, variant)
        stages, folders = build_stages(
            config, output_folder, interpreter_folder=base, interpreter_seed=seed
        )
        by_name = {stage.name: stage for stage in stages}
        if index == 0:  # the same for every seed
            plan += [(name, by_name[name]) for name in shared if name in by_name]  # no data: --data_folder
        names = list(interpreters) + [f"eval_{name}" for name in interpreters]
        plan += [(f"{name} [seed {seed}]", by_name[name]) for name in names]
        # build_stages lists the eval folders of the config's own interpreters, in INTERPRETERS
        # order: the transformer demos have no L2I, so zip with those, not with all three
        eval_folders[seed] = {
            name: folder
            for name, folder in zip(config_interpreters(config), folders, strict=True)
            if name in interpreters
        }
    return plan, eval_folders


def is_number(value):
    """True for a finite int or float (not a bool): what the tables average.

    Example
    -------
    >>> [is_number(v) for v in (0.5, 3, float("nan"), None, True, "0.5", [1])]
    [True, True, False, False, False, False, False]
    """
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def numeric_stats(stats):
    """{metric: value} of a row with its non-numeric values left out."""
    if not isinstance(stats, dict):
        return {}
    return {key: value for key, value in stats.items() if is_number(value)}


def evaluation_rows(evaluation):
    """{row label: {metric: value}} of one evaluation: its methods, then its references.

    Example
    -------
    >>> evaluation_rows({"interpreter": "PIQ", "methods": {"PIQ": {"fid_in": 0.5, "x": "a"},
    ...                  "random": {"fid_in": 0.25}}, "references": {"all_ones": {"fid_in": 1}}})
    {'PIQ': {'fid_in': 0.5}, 'PIQ: random mask': {'fid_in': 0.25}, 'all ones': {'fid_in': 1}}
    """
    rows = {
        method_label(evaluation, method): numeric_stats(stats)
        for method, stats in (evaluation.get("methods") or {}).items()
    }
    references = reference_rows(evaluation.get("references") or {})
    rows.update({label: numeric_stats(stats) for label, stats in references.items()})
    return rows


def mean_std(values):
    """(mean, sample std with ddof 1, n) of the numeric values; std None for one value.

    Example
    -------
    >>> mean_std([1.0, 2.0, 3.0]), mean_std([2.0, None]), mean_std([])
    ((2.0, 1.0, 3), (2.0, None, 1), (None, None, 0))
    """
    values = [float(value) for value in values if is_number(value)]
    if not values:
        return None, None, 0
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std, len(values)


def aggregate(rows_per_seed):
    """{row: {metric: {"mean", "std", "n"}}} over a list of {row: {metric: value}} (one per seed).

    Rows and metrics in order of first appearance; `n` counts the seeds with a value.

    Example
    -------
    >>> aggregate([{"PIQ": {"fid_in": 0.5}}, {"PIQ": {"fid_in": 1.0, "AD": 3.0}}])
    {'PIQ': {'fid_in': {'mean': 0.75, 'std': 0.3535533905932738, 'n': 2}, 'AD': {'mean': 3.0, 'std': None, 'n': 1}}}
    """
    keys = {}
    for rows in rows_per_seed:
        for label, stats in rows.items():
            keys.setdefault(label, {}).update(dict.fromkeys(stats))
    summary = {}
    for label, metrics in keys.items():
        summary[label] = {}
        for metric in metrics:
            values = [rows.get(label, {}).get(metric) for rows in rows_per_seed]
            mean, std, n = mean_std(values)
            summary[label][metric] = {"mean": mean, "std": std, "n": n}
    return summary


def format_cell(cell, n_seeds):
    """One table cell: 'mean ± std', '(n=k)' when fewer seeds than `n_seeds` have a value.

    Example
    -------
    >>> format_cell({"mean": 0.5, "std": 0.125, "n": 2}, 2), format_cell({"mean": 12.0, "std": None, "n": 1}, 3)
    ('0.500 ± 0.125', '12.0 (n=1)')
    >>> format_cell(None, 2), format_cell({"mean": 0.5, "std": None, "n": 1}, 1)
    ('-', '0.500')
    """
    if not cell or cell.get("mean") is None:
        return "-"
    text = format_value(cell["mean"])
    if cell.get("std") is not None:
        text += f" ± {format_value(cell['std'])}"
    if cell.get("n", n_seeds) < n_seeds:
        text += f" (n={cell['n']})"
    return text


def summary_table(summary, n_seeds):
    """A markdown table of `aggregate`'s result: rows x metrics (the report's titles and order).

    Example
    -------
    >>> print(summary_table({"PIQ": {"fid_in": {"mean": 0.5, "std": 0.125, "n": 2}}}, 2))
    | mean ± std over 2 seeds | Fid-In |
    |---|---|
    | PIQ | 0.500 ± 0.125 |
    """
    columns = metric_columns(summary)
    titles = [METRICS.get(key, (key, ""))[0] for key in columns]
    seeds = f"{n_seeds} seed" + ("s" if n_seeds != 1 else "")
    lines = [
        f"| mean ± std over {seeds} | " + " | ".join(titles) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for label, cells in summary.items():
        lines.append(
            f"| {label} | "
            + " | ".join(format_cell(cells.get(key), n_seeds) for key in columns)
            + " |"
        )
    return "\n".join(lines)


def per_seed_csv(records):
    """The per-seed table as csv text; `records` is a list of (seed, interpreter, row, stats).

    Example
    -------
    >>> print(per_seed_csv([(1, "piq", "PIQ", {"fid_in": 0.5}), (2, "piq", "PIQ", {})]), end="")
    seed,interpreter,method,fid_in
    1,piq,PIQ,0.5
    2,piq,PIQ,
    """
    columns = metric_columns({index: stats for index, (*_, stats) in enumerate(records)})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["seed", "interpreter", "method", *columns])
    for seed, interpreter, label, stats in records:
        cells = [repr(float(stats[key])) if is_number(stats.get(key)) else "" for key in columns]
        writer.writerow([seed, interpreter, label, *cells])
    return buffer.getvalue()


def by_class_rows(evaluation, key="by_class"):
    """{"<interpreter>: <true class>": {metric: mean}} of one evaluation's `by_class` (its
    interpreter's means per class; {} for an evaluation without one); with `key`
    "by_background", the same per background recording (an evaluation on a collection set).

    Example
    -------
    >>> by_class_rows({"interpreter": "PIQ", "by_class": {"dog": {"n": 2, "PIQ": {"si_sdri": 4.0},
    ...                "ground_truth": {"si_sdri": 9.0}}}})
    {'PIQ: dog': {'si_sdri': 4.0}}
    >>> by_class_rows({"interpreter": "PIQ", "by_class": {}}, "by_background")
    {}
    """
    name = evaluation["interpreter"]
    return {
        f"{name}: {label}": numeric_stats(entry.get(name, {}))
        for label, entry in (evaluation.get(key) or {}).items()
    }


def worst_first(summary, metric="si_sdri"):
    """`aggregate`'s rows, each interpreter's (the label before ": ") in a block, its classes
    by their mean `metric`, lowest first (rows without it last).

    Example
    -------
    >>> rows = {"PIQ: dog": {"si_sdri": {"mean": 4.0}}, "PIQ: cat": {"si_sdri": {"mean": 1.0}},
    ...         "LMAC: dog": {"si_sdri": {"mean": 2.0}}}
    >>> list(worst_first(rows))
    ['PIQ: cat', 'PIQ: dog', 'LMAC: dog']
    """
    blocks = {}
    for label in summary:
        blocks.setdefault(label.split(": ", 1)[0], []).append(label)

    def key(label):
        mean = (summary[label].get(metric) or {}).get("mean")
        return math.inf if mean is None else mean

    return {label: summary[label] for labels in blocks.values() for label in sorted(labels, key=key)}


def run_compare(config, output_folder, seeds, interpreters, start=None, variant=None, baseline_config=None):
    """Runs (or reuses) every stage for every seed, then writes the tables in <out>/compare
    (a variant's, `apply_settings` made into the config: in <out>/variants/<variant>/compare,
    with "paired" beside the demo's settings: those of `baseline_config`, the config before
    `apply_settings`; an evaluation there that its stages did not make with them is left out).

    Returns
    -------
    dict
        "seeds", "interpreters", "summary" ({row: {metric: {mean, std, n}}}),
        "table" (markdown), "by_class" ({"<interpreter>: <class>": {metric: {mean, std, n}}},
        each interpreter's worst class first; in summary.md's "By class"), "by_background"
        (the same per background recording, on a collection set; {} on other sets),
        "per_seed_csv", "summary_json", "summary_md" (paths),
        "eval_folders" ({seed: {interpreter: folder}}), "timings" / "cpu_times"
        ({stage label: seconds, None when reused}), "total_s"; for a variant, "paired" (the
        markdown table, "" when no seed was run with the demo's settings).
    """
    start = time.perf_counter() if start is None else start
    root = output_folder if variant is None else os.path.join(output_folder, VARIANTS_FOLDER, variant)
    compare_folder = os.path.join(root, COMPARE_FOLDER)
    check_own_files(compare_folder)  # before any stage: a file of the user's there is refused
    plan, eval_folders = plan_stages(config, output_folder, seeds, interpreters, variant)
    timings, cpu_times = {}, {}
    for label, stage in plan:
        times = stage.run()
        timings[label], cpu_times[label] = times if times else (None, None)

    records, rows_per_seed, classes_per_seed, backgrounds_per_seed = [], [], [], []
    for seed in seeds:
        evaluations = []
        classes_per_seed.append({})
        backgrounds_per_seed.append({})
        for name, folder in eval_folders[seed].items():
            evaluation = load_evaluation(folder)
            evaluations.append(evaluation)
            classes_per_seed[-1].update(by_class_rows(evaluation))
            backgrounds_per_seed[-1].update(by_class_rows(evaluation, "by_background"))
            records += [
                (seed, name, label, stats) for label, stats in evaluation_rows(evaluation).items()
            ]
        for evaluation in evaluations:  # summary_rows reads "methods" and "references" only
            evaluation.setdefault("methods", {})
        rows_per_seed.append(
            {label: numeric_stats(stats) for label, stats in summary_rows(evaluations).items()}
        )
    summary = aggregate(rows_per_seed)
    table = summary_table(summary, len(seeds))
    by_class = worst_first(aggregate(classes_per_seed))
    classes_text = ""
    if by_class:
        classes_text = (
            "## By class\n\nEach interpreter's means over the clips of each true class (its eval's "
            "metrics.md, per_clip.csv), then mean ± std over the seeds; its worst class first.\n\n"
            f"{summary_table(by_class, len(seeds))}\n\n"
        )
    by_background = worst_first(aggregate(backgrounds_per_seed))
    if by_background:  # a collection set (collection_prepare.py): its background recordings
        classes_text += (
            "## By background recording\n\nEach interpreter's means over the clips of each "
            "background recording (its eval's metrics.md, per_clip.csv), then mean ± std over the "
            f"seeds; its worst recording first.\n\n{summary_table(by_background, len(seeds))}\n\n"
        )

    variant_text, paired = "", None
    if variant is not None:
        # the same seeds' evaluations with the demo's settings: the plan without the variant,
        # each taken only where its stages are done with those settings (not another config's)
        baseline_plan, baseline_folders = plan_stages(baseline_config or config, output_folder, seeds, interpreters)
        made = {label for label, stage in baseline_plan if _made_as_planned(stage)}
        shared = {label for label, _ in baseline_plan if "[seed" not in label}
        baseline_folders = {
            seed: {
                name: folder
                for name, folder in folders.items()
                if shared <= made and {f"{name} [seed {seed}]", f"eval_{name} [seed {seed}]"} <= made
            }
            for seed, folders in baseline_folders.items()
        }
        paired, missing = paired_table(eval_folders, baseline_folders)
        settings = ", ".join(
            f"{stage}.{key}={value!r}"
            for stage, keys in config.get("variant_settings", {}).items()
            for key, value in keys.items()
        )
        variant_text = f"Variant `{variant}`: {settings or 'the demo settings'}.\n\n"
        if paired:
            variant_text += f"## Against the demo's settings, seed by seed\n\n{paired}\n\n"
        if missing:
            variant_text += (
                f"Seeds {', '.join(map(str, missing))} have no evaluation with the demo's settings (none, "
                "or one made with another config): `recipes/compare.py` with the same --config and --seeds, "
                "without --variant, runs them (and says which folders to delete).\n\n"
            )
    csv_path = write_text(per_seed_csv(records), os.path.join(compare_folder, "per_seed.csv"))
    json_path = write_json(summary, os.path.join(compare_folder, "summary.json"))
    total = time.perf_counter() - start
    common_seed = config["common"]["seed"]
    text = (
        f"# make compare: {', '.join(interpreters)} over {len(seeds)} interpreter-training seeds\n\n"
        f"Seeds: {', '.join(map(str, seeds))} (interpreter training and evaluation; the data, "
        f"the classifier and the NMF dictionary are fixed, seed {common_seed}).\n"
        "Mean ± sample std (ddof 1) over the seeds; a cell with one value has no std; "
        "(n=k): only k seeds have a value. Per seed: per_seed.csv.\n\n"
        f"{variant_text}"
        f"{table}\n\n"
        f"{classes_text}"
        f"Wall time: {total:.0f} s. Stages (wall time, CPU time of all threads): "
        f"{format_times(timings, cpu_times)}\n"
    )
    md_path = write_text(text, os.path.join(compare_folder, "summary.md"))
    return {
        "seeds": list(seeds),
        "interpreters": list(interpreters),
        "summary": summary,
        "table": table,
        "by_class": by_class,
        "by_background": by_background,
        "per_seed_csv": os.path.abspath(csv_path),
        "summary_json": os.path.abspath(json_path),
        "summary_md": os.path.abspath(md_path),
        "eval_folders": eval_folders,
        "timings": timings,
        "cpu_times": cpu_times,
        "total_s": total,
        **({} if variant is None else {"paired": paired}),
    }


def main(argv=None):
    """Command line: runs the comparison, prints the timings, the table and the files."""
    parser = argparse.ArgumentParser(
        description="The demo's interpreters over several training seeds: mean ± std."
    )
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="demo yaml (stage overrides)")
    parser.add_argument("--smoke", action="store_true", help="use the config's smoke: sizes")
    parser.add_argument("--output_folder", help="the demo's folder (default: the config's)")
    parser.add_argument(
        "--data_folder",
        help="a dataset with exact sources (data_prep/collection_prepare.py) instead of the synthetic set",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--n_seeds",
        type=int,
        help=f"seeds common, common+1, ... (default {DEFAULT_N_SEEDS})",
    )
    which.add_argument("--seeds", type=int, nargs="+", help="the interpreter-training seeds")
    parser.add_argument(
        "--interpreters", nargs="+", help=f"a subset of {' '.join(INTERPRETERS)} (default: all that the config trains)"
    )
    parser.add_argument(
        "--variant",
        help="a name: the interpreters trained with the --set settings, in <out>/variants/NAME",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="STAGE.KEY=VALUE",
        help="with --variant: an interpreter stage's recipe-yaml key, e.g. lmac.average_checkpoints=3",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    try:
        config = load_config(args.config, smoke=args.smoke)
        interpreters = resolve_interpreters(args.interpreters, config_interpreters(config))
        if args.data_folder:
            config = use_data_folder(config, args.data_folder)
        seeds = resolve_seeds(config["common"]["seed"], args.n_seeds, args.seeds)
        if args.settings and args.variant is None:
            raise ValueError(
                "--set needs --variant NAME: the demo's own interpreter folders keep the config's "
                "settings, a variant's go to <out>/variants/NAME."
            )
        if args.variant is not None:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", args.variant):
                raise ValueError(f"--variant {args.variant!r}: a folder name (letters, digits, _ . -).")
            baseline_config, config = config, apply_settings(config, args.settings)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    output_folder = resolve_output_folder(args.output_folder, config)
    result = run_compare(
        config, output_folder, seeds, interpreters, start=start, variant=args.variant,
        baseline_config=baseline_config if args.variant is not None else None,
    )
    print(
        "\nStages (wall time, CPU time of all threads): "
        + format_times(result["timings"], result["cpu_times"])
    )
    print(f"\n{result['table']}\n")
    if result.get("paired"):
        print(f"Against the demo's settings:\n\n{result['paired']}\n")
    print(f"Per seed: {result['per_seed_csv']}")
    print(f"Summary: {result['summary_md']}, {result['summary_json']}")
    print(f"Seeds {', '.join(map(str, seeds))}: total {result['total_s']:.0f} s")
    return result


if __name__ == "__main__":
    main()
