#!/usr/bin/env python3
"""`make demo`: the whole chain on the embedded synthetic dataset, on a CPU.

    python recipes/demo.py                       # hparams/demo.yaml -> results/demo/
    python recipes/demo.py --smoke --output_folder /tmp/demo_smoke   # tiny sizes (tests)

Stages, each the project's own recipe called with the sizes of
`hparams/demo.yaml` (a plain yaml of `--key value` overrides per stage):

    data        data_prep/synthetic_prepare.py    <out>/data
    classifier  recipes/train_classifier.py       <out>/classifier
    nmf         recipes/train_nmf.py              <out>/nmf
    l2i         recipes/train_l2i.py              <out>/l2i
    piq         recipes/train_piq.py              <out>/piq
    lmac        recipes/train_lmac.py             <out>/lmac
    eval        recipes/eval.py (L2I, PIQ and L-MAC, baselines, ground truth)  <out>/{l2i,piq,lmac}/eval
    eval_mixtures  the same out of distribution (`eval: out_of_distribution`, --overlap_type
                mixtures: the public recipe's headline setting)  <out>/{l2i,piq,lmac}/eval_mixtures
    report      recipes/report.py                 <out>/report/index.html

The summary (printed, and `<out>/summary.md`) has one table per evaluated
set-up: the clips as they are, then each out-of-distribution one.

A stage whose outputs exist (classifier.ckpt, nmf_decoder.ckpt,
psi_model.ckpt, metrics.json) is skipped, so a rerun only does what is
missing; an interrupted training stage resumes from its checkpoints, with the
settings and input files it started with (`demo_stage.started.json`; with others
the demo stops and says which folder to delete). A stage
records the arguments it ran with (`demo_stage.json`) and the SHA-256 of the
files of earlier stages it read (`demo_inputs.json`: the synthetic dataset's
meta/synthetic_params.json, or a `--data_folder`'s meta/ csv files and
parameters file, the classifier's, the dictionary's, the
interpreter's checkpoints) and of the files it made (`demo_outputs.json`); when
the settings or those files changed since (a classifier trained again, a dataset
made again with other settings, an evaluation of `recipes/eval.py` written into a
demo's eval folder), the demo stops and says which folder to delete. Paths in
these records are compared relative to the checkout and the output folder that
the stage ran from (`demo_roots.json`): a demo folder moved, or run again from
another clone, is reused.

The stages run in this process, one recipe `main(argv)` after the other:
every recipe yaml seeds everything when it is loaded (`__set_seed`) and
SpeechBrain points the log at each stage's folder, so nothing leaks from one
stage to the next, and the interpreter start-up (imports, ~5 s) is paid once
rather than per stage. Errors come with the recipe's own traceback.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import copy
import difflib
import glob
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import soundfile as sf
import yaml
from speechbrain.utils.logger import get_logger

from data_prep.esc50_prepare import clip_duration, read_esc50_csv
from data_prep.files import file_sha256, write_json, write_text
from data_prep.interference import OVERLAP_TYPES
from data_prep.synthetic_prepare import create_synthetic_dataset, read_source_paths
from recipes import eval as eval_recipe
from recipes import train_classifier, train_l2i, train_lmac, train_nmf, train_piq
from recipes.core.pipeline import CLASSIFIER_SIZE_KEYS, n_stft_frames
from recipes.core.startup import check_override_types, recipe_keys, top_level_scalars
from recipes.reporting.agreement import agreement_line, agreement_markdown
from recipes.reporting.html_report import is_own_report, load_evaluation, write_report
from recipes.reporting.tables import (
    agreement_groups,
    baseline_margins,
    markdown_table,
    metric_title,
    summary_intervals,
    summary_rows,
)

logger = get_logger(__name__)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO_ROOT, "hparams", "demo.yaml")
STAGE_RECORD = "demo_stage.json"
#: The SHA-256 of the files of earlier stages a stage read, beside its STAGE_RECORD.
INPUTS_RECORD = "demo_inputs.json"
#: A training stage's settings and inputs while it runs (removed when its records are written, or
#: when it fails before any checkpoint): a stage that holds one did not finish, whatever outputs
#: it has, and it resumes its checkpoints only with the same ones (`Stage.check_unfinished`).
STARTED_RECORD = "demo_stage.started.json"
#: The SHA-256 of the files a stage made, as it made them: a file another command wrote over
#: since (`recipes/eval.py` into a demo's eval folder) is not taken for the stage's.
OUTPUTS_RECORD = "demo_outputs.json"
#: The folders a stage's records are relative to (the checkout, the demo's output folder), as
#: they were when it ran: a demo folder moved, or run again from another clone, compares its
#: records with the paths of today (`portable`).
ROOTS_RECORD = "demo_roots.json"
INTERPRETERS = ("l2i", "piq", "lmac")  # their stages (and eval folders), in the report's order
REPORT_TITLE = "make demo: L2I, PIQ and L-MAC on the synthetic dataset"


def config_interpreters(config):
    """The interpreters a demo config trains, in INTERPRETERS order (a config may leave some out,
    e.g. hparams/demo_transformers.yaml has no L2I, hence no NMF stage).

    Example
    -------
    >>> config_interpreters({"stages": {"classifier": {}, "piq": {}}})
    ('piq',)
    """
    return tuple(name for name in INTERPRETERS if name in config["stages"])


def deep_merge(base, update):
    """`base` with the values of `update` (nested dicts merged, the rest replaced).

    Example
    -------
    >>> deep_merge({"a": {"x": 1, "y": 2}, "b": 3}, {"a": {"y": 5}})
    {'a': {'x': 1, 'y': 5}, 'b': 3}
    """
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(path=DEFAULT_CONFIG, smoke=False):
    """The demo settings: the yaml, with its `smoke:` section merged over it when asked."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Demo config {path} does not exist: pass --config FILE.")
    with open(path, encoding="utf-8") as fin:
        config = yaml.safe_load(fin)
    smoke_settings = config.pop("smoke", None) or {}
    if smoke and not smoke_settings:  # else the full sizes would run, unannounced
        raise ValueError(f"--smoke: {path} has no `smoke:` section (the sizes to use): add one, or drop --smoke.")
    if smoke:
        config = deep_merge(config, smoke_settings)
    check_config(config, path)
    return config


#: The sections of a demo config (`smoke:` is merged away by `load_config`; `data_folder` and
#: `title` may come from `use_data_folder`, `variant_settings` from recipes/compare.py's --set).
CONFIG_SECTIONS = (
    "output_folder", "title", "dataset", "common", "stages", "eval", "stage_costs_s", "data_folder", "variant_settings",
)
#: The keys of its `eval:` section (`eval_flags`, `out_of_distribution`).
EVAL_SECTION_KEYS = ("n_report_clips", "options", *(f"{name}_options" for name in INTERPRETERS), "out_of_distribution")


def _unknown(found, known, what, path):
    """A ValueError naming the keys of `found` that are not in `known` (with the nearest ones)."""
    unknown = [key for key in found if key not in known]
    if unknown:
        said = ", ".join(
            f"`{key}`" + "".join(f" (did you mean `{near}`?)" for near in difflib.get_close_matches(str(key), sorted(known), n=1))
            for key in unknown
        )
        raise ValueError(f"{path}: {what} has {said}, which nothing reads; the known ones: {', '.join(sorted(known))}.")


def check_config_keys(config, path="the demo config"):
    """Every section, stage, override and evaluation flag of a config is one the demo reads, and
    every override fits its recipe yaml's type: a typo is refused before any stage runs (not
    when its stage comes, after the ones before it trained, or never, for a section or stage
    the demo would skip).

    Example
    -------
    >>> config = load_config(smoke=True)
    >>> config["stages"]["lmac"]["overrides"]["number_of_epoch"] = 3
    >>> check_config_keys(config)
    Traceback (most recent call last):
    ...
    ValueError: the demo config: the lmac stage's overrides has `number_of_epoch` (did you mean `number_of_epochs`?), which nothing reads; the known ones: ...
    """
    _unknown(config, CONFIG_SECTIONS, "the config", path)
    for section in ("dataset", "common", "stages"):
        if not isinstance(config.get(section), dict):
            raise ValueError(f"{path}: no `{section}:` section (a mapping; see hparams/demo.yaml).")
    stages = config["stages"]
    _unknown(stages, ("classifier", "nmf", *INTERPRETERS), "`stages`", path)
    for name, stage in stages.items():
        hparams = (stage or {}).get("hparams")
        if not hparams or not os.path.isfile(os.path.join(REPO_ROOT, str(hparams))):
            raise ValueError(f"{path}: the {name} stage's `hparams:` ({hparams}) is not a recipe yaml of hparams/.")
        yaml_path = os.path.join(REPO_ROOT, hparams)
        overrides = {**config["common"], **(stage.get("overrides") or {})}
        _unknown(overrides, recipe_keys(yaml_path), f"the {name} stage's overrides", path)
        try:
            check_override_types(yaml_path, overrides)
        except ValueError as error:
            raise ValueError(f"{path}: the {name} stage's overrides: {error}") from None
    eval_config = config.get("eval") or {}
    _unknown(eval_config, EVAL_SECTION_KEYS, "`eval`", path)
    if not isinstance(eval_config.get("out_of_distribution") or [], list):
        raise ValueError(
            f"{path}: eval: out_of_distribution is {eval_config['out_of_distribution']!r}; give a list, "
            "e.g. [mixtures]."
        )
    flags = eval_recipe.eval_flags()
    evaluated = config_interpreters(config)
    shared = set.intersection(*(recipe_keys(os.path.join(REPO_ROOT, stages[name]["hparams"])) for name in evaluated)) if evaluated else set()
    _unknown(eval_config.get("options") or {}, flags | shared, "`eval: options` (recipes/eval.py's flags, or yaml keys)", path)
    for name in evaluated:
        keys = recipe_keys(os.path.join(REPO_ROOT, stages[name]["hparams"]))
        _unknown(eval_config.get(f"{name}_options") or {}, flags | keys, f"`eval: {name}_options` (recipes/eval.py's flags, or yaml keys)", path)


def check_config(config, path="the demo config"):
    """Sizes that two stages must share are equal, or a ValueError naming them (after
    `check_config_keys`)."""
    check_config_keys(config, path)
    stages = config["stages"]
    if "classifier" not in stages:
        raise ValueError(f"{path}: `stages` has no `classifier`, which every interpreter explains.")
    if "l2i" in stages and "nmf" not in stages:
        raise ValueError(f"{path}: the l2i stage needs the nmf stage (its dictionary): add it.")
    overrides = {name: stage.get("overrides") or {} for name, stage in stages.items()}  # empty: null
    must_match = [(key, ("classifier", *INTERPRETERS)) for key in CLASSIFIER_SIZE_KEYS]
    must_match.append(("K", ("nmf", "l2i")))
    for key, names in must_match:
        values = {name: overrides[name].get(key) for name in names if name in overrides}
        if len({str(value) for value in values.values()}) > 1:  # str: lists (depths) too
            raise ValueError(
                f"{path}: `{key}` differs between the stages {values}; the interpreters "
                f"must use the classifier's / dictionary's {key}: set the same value."
            )
    for overlap_type in out_of_distribution(config):
        if overlap_type not in OVERLAP_TYPES[1:]:
            raise ValueError(
                f"{path}: eval: out_of_distribution holds {overlap_type!r}; each entry is one of "
                f"{', '.join(OVERLAP_TYPES[1:])} (recipes/eval.py --overlap_type)."
            )
    if config.get("stage_costs_s") is not None:
        names = ["data", *stages, *(f"eval_{name}" for name in config_interpreters(config))]
        check_stage_costs(config["stage_costs_s"], names, path)
    duration = config["dataset"]["duration_s"]
    length = config["common"]["signal_length_s"]
    if float(duration) != float(length):
        raise ValueError(
            f"{path}: dataset duration_s {duration} and common signal_length_s {length} "
            "differ: the recipes would pad or crop every clip; set them equal."
        )


def use_data_folder(config, data_folder):
    """The config with a dataset of the user's in place of the synthetic one (`--data_folder`).

    The folder needs the synthetic set's layout with ground truth (what
    data_prep/collection_prepare.py and data_prep/fetch_debian_sounds.py --build
    write): meta/esc50.csv, meta/ground_truth.csv, audio/, sources/. The data
    stage is then skipped, and the demo's stages run on it unchanged, at the
    length of its clips (`dataset_clip_length_s`: the longest; the config's
    `signal_length_s` would crop longer clips to their first seconds, perhaps
    without their event, and pad shorter ones).

    Raises
    ------
    FileNotFoundError
        The folder or one of those files is missing: what to run to make it.
    ValueError
        A clip it lists is missing or unreadable.
    """
    folder = os.path.abspath(data_folder)
    missing = [
        name
        for name in (os.path.join("meta", "esc50.csv"), os.path.join("meta", "ground_truth.csv"), "audio", "sources")
        if not os.path.exists(os.path.join(folder, name))
    ]
    if missing:
        raise FileNotFoundError(
            f"--data_folder {data_folder}: no {', '.join(missing)}; the demo's chain needs a dataset "
            "with exact sources: make one from your recordings with `python data_prep/collection_prepare.py "
            "--targets DIR --backgrounds DIR --out FOLDER` (or `python data_prep/fetch_debian_sounds.py "
            "--out DIR --build`, FOLDER = DIR/dataset)."
        )
    refuse_another_sample_rate(config, folder, data_folder)
    title = config.get("title") or f"The demo's chain on {folder}: L2I, PIQ and L-MAC against its exact sources"
    config = {**config, "data_folder": folder, "title": title}
    length = dataset_clip_length_s(folder)
    configured = float(config["common"]["signal_length_s"])
    if abs(length - configured) > 1e-3:  # the recipes would crop (or pad) every clip: read them whole
        bound = {name: stage["overrides"]["max_length"] for name, stage in config["stages"].items()
                 if "max_length" in (stage.get("overrides") or {})}
        if bound:  # an AST sized to the config's clips (its position embeddings): the user's choice
            frames = n_stft_frames(16000, length, 11.6099)
            raise ValueError(
                f"--data_folder {data_folder}: its clips last {length:g} s, but the config reads "
                f"clips of {configured:g} s (common: signal_length_s) and sizes its AST to them "
                f"(max_length {bound}): the recipes would crop or pad every clip to {configured:g} s. "
                f"Copy the config, set common: signal_length_s and dataset: duration_s to {length:g} "
                f"and every max_length to the STFT frames of such a clip ({frames} at the yamls' "
                "16 kHz and 11.61 ms hop: recipes/core/pipeline.py n_stft_frames), and pass --config COPY."
            )
        print(  # before any stage, so before the recipes set up logging
            f"demo: the clips of {folder} last {length:g} s: every stage reads them whole "
            f"(signal_length_s {length:g}, not the config's {configured:g}).",
            flush=True,
        )
        config["common"] = {**config["common"], "signal_length_s": length}
        config["dataset"] = {**config["dataset"], "duration_s": length}
    return config


def refuse_another_sample_rate(config, folder, data_folder):
    """A ValueError, before any stage, when the dataset's sources are at another rate than the
    stages' yamls (`sample_rate`, 16 kHz): the classifier's source augmentation mixes them at
    its own rate and refused them only in its stage, with a flag the demo does not take."""
    stages = config["stages"]
    rate = top_level_scalars(os.path.join(REPO_ROOT, stages["classifier"]["hparams"])).get("sample_rate")
    rate = int((stages["classifier"].get("overrides") or {}).get("sample_rate", rate))
    rates = {sf.info(path).samplerate for pair in read_source_paths(folder).values() for path in pair}
    if rates - {rate}:
        raise ValueError(
            f"--data_folder {data_folder}: its sources are at {sorted(rates)} Hz, and the demo's "
            f"recipes run at {rate} Hz (their yamls' sample_rate), mixing the sources at that rate: "
            f"build the dataset at {rate} Hz (python data_prep/collection_prepare.py ... "
            f"--sample-rate {rate})."
        )


def dataset_clip_length_s(folder):
    """The longest clip of a dataset's meta/esc50.csv, in s (from the files' headers).

    Raises
    ------
    ValueError
        A listed clip is missing or unreadable (its path and the problem), or the csv lists none.
    """
    audio = Path(folder) / "audio"
    durations = []
    for row in read_esc50_csv(Path(folder) / "meta" / "esc50.csv"):
        duration, problem = clip_duration(audio / row["filename"])
        if problem is not None:
            raise ValueError(
                f"--data_folder {folder}: {audio / row['filename']} is {problem}; build the dataset "
                "again (data_prep/collection_prepare.py) or remove the clip's line from meta/esc50.csv."
            )
        durations.append(duration)
    if not durations:
        raise ValueError(f"--data_folder {folder}: meta/esc50.csv lists no clip; build the dataset again.")
    return max(durations)


def out_of_distribution(config):
    """The `--overlap_type`s of the demo's out-of-distribution evaluations (`eval: out_of_distribution`).

    Example
    -------
    >>> out_of_distribution({"eval": {"out_of_distribution": ["mixtures"]}}), out_of_distribution({})
    (['mixtures'], [])
    """
    return list((config.get("eval") or {}).get("out_of_distribution") or [])


def out_of_distribution_folder(eval_folder, overlap_type):
    """An interpreter's eval folder of an overlap type, beside its in-distribution one.

    Example
    -------
    >>> out_of_distribution_folder("out/piq/eval", "mixtures")
    'out/piq/eval_mixtures'
    """
    return os.path.join(os.path.dirname(eval_folder), f"eval_{overlap_type}")


def recipe_argv(hparams_file, overrides):
    """`[hparams_file, --key, value, ...]` for a recipe's main(argv).

    Example
    -------
    >>> recipe_argv("hparams/nmf.yaml", {"K": 100, "seed": 1})
    ['hparams/nmf.yaml', '--K', '100', '--seed', '1']
    """
    argv = [hparams_file]
    for key, value in overrides.items():
        argv += [f"--{key}", str(value)]
    return argv


def eval_flags(eval_config, interpreter):
    """recipes/eval.py's own flags for one interpreter's evaluation.

    `eval_config` is the demo config's `eval:` section: `n_report_clips`, then
    `options` ({flag: value} for every evaluation) and `<interpreter>_options`
    (the same, for that interpreter's evaluation only, over `options`). A value
    True is a bare flag, False or None leaves the flag out.

    Example
    -------
    >>> eval_flags({"n_report_clips": 2, "options": {"sanity_check": False},
    ...             "piq_options": {"baselines": "random"}}, "piq")
    ['--n_report_clips', '2', '--baselines', 'random']
    """
    flags = {
        "n_report_clips": eval_config.get("n_report_clips", 4),
        **(eval_config.get("options") or {}),
        **(eval_config.get(f"{interpreter}_options") or {}),
    }
    argv = []
    for flag, value in flags.items():
        if value is True:
            argv.append(f"--{flag}")
        elif value is not False and value is not None:
            argv += [f"--{flag}", str(value)]
    return argv


class _TaggedLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML's safe loader that reads hyperpyyaml's tags (`!new:...`, `!ref`) as data; its
    parser in C (libyaml) where PyYAML has it: a tenth of the time, the same values."""


def _tagged(loader, suffix, node):
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return {"!" + suffix: value}


_TaggedLoader.add_multi_constructor("!", _tagged)


def input_digest(path, legacy=False):
    r"""What a stage records of a file it reads: the SHA-256 of its bytes, or for a recipe yaml
    of what it says (its parsed content, tags kept as data), so that an edited comment (the
    yamls note their measured figures) does not stop a rerun, and an edited value does. The
    keys' order counts: hyperpyyaml builds the `!new:` objects in the document's order after
    the seed is set, so two modules swapped draw other initial weights (`legacy`: the older
    form, keys sorted, for `same_input`). None when there is no such file.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> a, b, c = (os.path.join(folder, name) for name in ("a.yaml", "b.yaml", "c.yaml"))
    >>> _ = write_text("lr: 0.001  # measured: +3 dB\nw: !new:torch.nn.Linear [2, 3]\n", a)
    >>> _ = write_text("# another comment\nlr: 0.001\nw: !new:torch.nn.Linear [2, 3]\n", b)
    >>> _ = write_text("lr: 0.002\nw: !new:torch.nn.Linear [2, 3]\n", c)
    >>> input_digest(a) == input_digest(b) != input_digest(c)
    True
    >>> _ = write_text("w: !new:torch.nn.Linear [2, 3]\nlr: 0.001\n", c)  # a's keys swapped
    >>> input_digest(a) != input_digest(c)
    True
    >>> import shutil; shutil.rmtree(folder)
    """
    if not str(path).endswith(".yaml") or not os.path.isfile(path):
        return file_sha256(path)
    try:
        with open(path, encoding="utf-8") as fin:
            content = yaml.load(fin, Loader=_TaggedLoader)
    except (yaml.YAMLError, UnicodeDecodeError):
        return file_sha256(path)  # not yaml that this reads: its bytes, then
    text = json.dumps(content, default=str, sort_keys=legacy)  # in the document's order
    return ("yaml:" if legacy else "yaml2:") + hashlib.sha256(text.encode("utf-8")).hexdigest()


def same_input(path, recorded):
    r"""Whether `path` is still what a stage recorded of it (`input_digest`). A digest of the
    older form ("yaml:", the keys sorted) is compared in that form: a folder made before
    the keys' order counted is not called edited for it.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> a = os.path.join(folder, "a.yaml")
    >>> _ = write_text("w: 1\nlr: 2\n", a)
    >>> same_input(a, input_digest(a, legacy=True)), same_input(a, input_digest(a))
    (True, True)
    >>> _ = write_text("lr: 2\nw: 1\n", a)  # the keys swapped: only the new form sees it
    >>> same_input(a, input_digest(a, legacy=True)), same_input(a, "yaml2:0")
    (True, False)
    >>> import shutil; shutil.rmtree(folder)
    """
    legacy = isinstance(recorded, str) and recorded.startswith("yaml:")
    return input_digest(path, legacy=legacy) == recorded


def portable(value, roots):
    r"""`value` (a stage's settings or a path; lists and dicts walked) with every path under
    one of `roots` ({name: absolute folder}) written from that root's name: what a stage's
    records mean wherever the checkout and the demo's folder are. The deepest root wins.

    Example
    -------
    >>> roots = {"<repo>": "/home/a/repo", "<output>": "/home/a/repo/results/demo"}
    >>> portable(["/home/a/repo/hparams/l2i.yaml", "--output_folder", "/home/a/repo/results/demo/l2i"], roots)
    ['<repo>/hparams/l2i.yaml', '--output_folder', '<output>/l2i']
    >>> portable({"data": "/home/a/repo2/x", "seed": 1, "root": "/home/a/repo"}, roots)
    {'data': '/home/a/repo2/x', 'seed': 1, 'root': '<repo>'}
    """
    if isinstance(value, list):
        return [portable(item, roots) for item in value]
    if isinstance(value, dict):
        return {key: portable(item, roots) for key, item in value.items()}
    if not isinstance(value, str):
        return value
    for name, root in sorted(roots.items(), key=lambda item: -len(item[1])):
        if value == root:
            return name
        if value.startswith(root.rstrip(os.sep) + os.sep):
            return name + "/" + os.path.relpath(value, root).replace(os.sep, "/")
    return value


class Stage:
    """One step of the chain: its outputs, how to run it, and the record of its arguments.

    Arguments
    ---------
    name : str
    folder : str
        Where the stage writes (gets `demo_stage.json`).
    outputs : list of str
        Files whose presence means the stage is done.
    run : callable
        Runs the stage (no argument).
    settings : dict
        What the stage ran with (compared on reruns).
    inputs : list of str
        Files that the stage reads: earlier stages' outputs and its recipe's yaml file
        (their SHA-256 is recorded in `demo_inputs.json`, compared on reruns: a yaml
        edited since makes the rerun name it).
    resumes : bool
        The stage's recipe resumes from the checkpoints an interrupted run left
        (the training stages): its settings and inputs are recorded before it runs
        (`demo_stage.started.json`), and a rerun with others is refused.
    roots : dict, optional
        {name: folder} the records are compared relative to (`portable`; recorded in
        `demo_roots.json`): by default the checkout, `REPO_ROOT`.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> source, made = os.path.join(folder, "classifier.ckpt"), os.path.join(folder, "out", "psi.ckpt")
    >>> _ = write_text("first", source)
    >>> stage = Stage("psi", os.path.dirname(made), [made], lambda: write_text("psi", made), ["--lr", "1"], [source])
    >>> _ = stage.run()
    >>> stage.done()
    True
    >>> _ = write_text("trained again", source)
    >>> stage.done()
    Traceback (most recent call last):
    ...
    ValueError: .../out read .../classifier.ckpt, which changed since (an earlier stage ran again): delete .../out (and the stages after it) to rerun it on the new file.
    >>> _ = write_text("first", source)
    >>> _ = write_text("another command's psi", made)
    >>> stage.done()
    Traceback (most recent call last):
    ...
    ValueError: .../out/psi.ckpt changed since the demo's psi stage wrote it (another command wrote into .../out?): the demo would show what it did not make. Delete .../out (and the stages after it) to rerun the stage.
    >>> import shutil; shutil.rmtree(folder)
    """

    def __init__(self, name, folder, outputs, run, settings, inputs=(), resumes=False, roots=None):
        self.name, self.folder, self.outputs = name, folder, outputs
        self._run, self.settings, self.inputs = run, settings, list(inputs)
        self.resumes = resumes
        self.roots = {"<repo>": REPO_ROOT} if roots is None else dict(roots)

    def _recorded_roots(self, started=None):
        """The roots of the stage's records: as recorded when it ran (a folder made before
        they were recorded: where it is now)."""
        if started is not None:
            return started.get("roots") or self.roots
        path = os.path.join(self.folder, ROOTS_RECORD)
        if not os.path.isfile(path):
            return self.roots
        with open(path, encoding="utf-8") as fin:
            return json.load(fin)

    def _same_settings(self, recorded, roots):
        return portable(recorded, roots) == portable(self.settings, self.roots)

    def _by_portable_path(self, recorded, roots):
        """A record {path: digest} keyed by its paths' `portable` form."""
        return {portable(path, roots): digest for path, digest in recorded.items()}

    def check_unfinished(self):
        """Refuses to resume a run of this stage that stopped part-way with other settings or
        from other input files: its recipe would go on from that run's checkpoints, and the
        result would claim the new settings.

        Raises
        ------
        ValueError
            Naming the folder to delete, or the settings to rerun with.
        """
        path = os.path.join(self.folder, STARTED_RECORD)
        if not self.resumes or not os.path.isfile(path):
            return
        with open(path, encoding="utf-8") as fin:
            started = json.load(fin)
        roots = self._recorded_roots(started)
        if not self._same_settings(started.get("settings"), roots):
            raise ValueError(
                f"{self.folder} holds a run of the demo's {self.name} stage that stopped part-way, "
                f"started with other settings ({started.get('settings')} instead of {self.settings}): "
                f"its checkpoints would be resumed under the new ones. Delete {self.folder} (and the "
                "stages after it) to start it again, or rerun with what it started with to resume it."
            )
        recorded = self._by_portable_path(started.get("inputs") or {}, roots)
        for source in self.inputs:
            digest = recorded.get(portable(source, self.roots))
            if digest is not None and not same_input(source, digest):
                raise ValueError(
                    f"{self.folder} holds a run of the demo's {self.name} stage that stopped part-way, "
                    f"started from {source}, which changed or is gone since: its checkpoints were "
                    f"trained on the old file. Delete {self.folder} (and the stages after it) to "
                    "start it again."
                )

    def done(self):
        """True when every output exists and was made with the same settings and input files.

        A stage whose run stopped after its outputs but before its records (its started
        record still there) is not done: it runs again (a training stage's recipe resumes its
        checkpoints, under the same settings only: `check_unfinished`)."""
        if not all(os.path.isfile(path) for path in self.outputs) or os.path.isfile(
            os.path.join(self.folder, STARTED_RECORD)
        ):
            self.check_unfinished()
            return False
        roots = self._recorded_roots()
        record = os.path.join(self.folder, STAGE_RECORD)
        if os.path.isfile(record):
            with open(record, encoding="utf-8") as fin:
                recorded = json.load(fin)
            if not self._same_settings(recorded, roots):
                raise ValueError(
                    f"{self.folder} was made by the demo with other settings "
                    f"({recorded} instead of {self.settings}): delete {self.folder} (and the "
                    "stages after it) to rerun with the new settings."
                )
        inputs_record = os.path.join(self.folder, INPUTS_RECORD)
        if os.path.isfile(inputs_record):  # a folder made before the record existed has none
            with open(inputs_record, encoding="utf-8") as fin:
                recorded = self._by_portable_path(json.load(fin), roots)
            for path in self.inputs:
                now = input_digest(path)
                key = portable(path, self.roots)
                if key in recorded and not same_input(path, recorded[key]):
                    if not now:
                        what = "which is gone (its stage will make a new one)"
                    elif path.endswith(".yaml"):  # the stage's recipe file
                        what = "which was edited since (the stage ran with the file as it was; its comments do not count)"
                    else:
                        what = "which changed since (an earlier stage ran again)"
                    raise ValueError(
                        f"{self.folder} read {path}, {what}: delete {self.folder} (and the "
                        "stages after it) to rerun it on the new file."
                    )
        outputs_record = os.path.join(self.folder, OUTPUTS_RECORD)
        if os.path.isfile(outputs_record):  # a folder made before the record existed has none
            with open(outputs_record, encoding="utf-8") as fin:
                recorded = self._by_portable_path(json.load(fin), roots)
            for path in self.outputs:
                key = portable(path, self.roots)
                if key in recorded and recorded[key] != file_sha256(path):
                    raise ValueError(
                        f"{path} changed since the demo's {self.name} stage wrote it (another "
                        f"command wrote into {self.folder}?): the demo would show what it did not "
                        f"make. Delete {self.folder} (and the stages after it) to rerun the stage."
                    )
        return True

    def run(self):
        """Runs the stage unless done.

        Returns
        -------
        tuple of float or None
            (wall time, CPU time of this process) in s; None when reused.
        """
        if self.done():
            logger.info("demo: %s is done (%s), reused.", self.name, self.folder)
            return None
        logger.info("demo: running %s -> %s", self.name, self.folder)
        read = {path: input_digest(path) for path in self.inputs}  # what it is about to read
        started = os.path.join(self.folder, STARTED_RECORD)
        if self.resumes:  # until its records are written (not in the data stage's dataset folder)
            write_json({"settings": self.settings, "inputs": read, "roots": self.roots}, started)
        start, start_cpu = time.perf_counter(), time.process_time()
        try:
            self._run()
        except BaseException:
            if os.path.isfile(started) and not glob.glob(os.path.join(self.folder, "save", "CKPT+*")):
                os.remove(started)  # nothing to resume: a refused argument does not bind the rerun
            raise
        elapsed = (time.perf_counter() - start, time.process_time() - start_cpu)
        missing = [path for path in self.outputs if not os.path.isfile(path)]
        if missing:
            raise RuntimeError(f"demo: stage {self.name} finished without writing {missing}.")
        write_json(self.settings, os.path.join(self.folder, STAGE_RECORD))
        write_json(self.roots, os.path.join(self.folder, ROOTS_RECORD))
        write_json(read, os.path.join(self.folder, INPUTS_RECORD))
        write_json({path: file_sha256(path) for path in self.outputs}, os.path.join(self.folder, OUTPUTS_RECORD))
        if os.path.isfile(started):
            os.remove(started)
        return elapsed


def build_stages(config, output_folder, interpreter_folder=None, interpreter_seed=None):
    """The chain's stages for a config (see `load_config`) writing under `output_folder`.

    Arguments
    ---------
    config : dict
    output_folder : str
        Gets data/ (unless the config has a `data_folder` of the user's: `use_data_folder`),
        classifier/, nmf/ (and, by default, the interpreters' folders).
    interpreter_folder : str, optional
        Where the interpreters' folders {l2i,piq,lmac}/ (and their eval/) go
        instead of `output_folder` (recipes/compare.py: one per training seed).
    interpreter_seed : int, optional
        The interpreter stages' and their evaluations' `--seed` instead of the
        config's `common: seed` (the data, classifier and NMF stages keep it).

    Returns
    -------
    tuple
        (list of Stage, eval folders of the config's interpreters in INTERPRETERS order). The
        stages end with the in-distribution evaluations `eval_<interpreter>`, then the
        out-of-distribution ones `eval_<overlap type>_<interpreter>` (their folders:
        `out_of_distribution_folder`).
    """
    out = os.path.abspath(output_folder)
    interpreter_base = os.path.abspath(interpreter_folder) if interpreter_folder else out
    interpreters = config_interpreters(config)
    folders = {name: os.path.join(out, name) for name in ("data", "classifier", "nmf")}
    own_data = config.get("data_folder")  # a dataset of the user's (`--data_folder`): no data stage
    if own_data:
        folders["data"] = os.path.abspath(own_data)
    folders.update({name: os.path.join(interpreter_base, name) for name in INTERPRETERS})
    dataset = config["dataset"]
    stages_config = config["stages"]

    def hparams_path(name):
        return os.path.join(REPO_ROOT, stages_config[name]["hparams"])

    def overrides(name, **paths):
        merged = {
            **config["common"],
            **(stages_config[name].get("overrides") or {}),
            "data_folder": folders["data"],
            **paths,
        }
        if name in INTERPRETERS and interpreter_seed is not None:
            merged["seed"] = int(interpreter_seed)  # in common's place: same argv at its seed
        return merged

    classifier_paths = {"classifier_folder": folders["classifier"]}
    nmf_path = os.path.join(folders["nmf"], "nmf_decoder.ckpt")
    extra_paths = {"l2i": {"nmf_decoder_path": nmf_path, **classifier_paths}}
    argv = {
        "classifier": recipe_argv(
            hparams_path("classifier"), overrides("classifier", output_folder=folders["classifier"])
        ),
    }
    if "nmf" in stages_config:
        argv["nmf"] = recipe_argv(hparams_path("nmf"), overrides("nmf", output_folder=folders["nmf"]))
    for name in interpreters:
        paths = extra_paths.get(name, classifier_paths)
        argv[name] = recipe_argv(hparams_path(name), overrides(name, output_folder=folders[name], **paths))
    eval_folders = {name: os.path.join(folders[name], "eval") for name in interpreters}
    for name in interpreters:
        argv[f"eval_{name}"] = argv[name] + [
            "--pretrained_interpreter",
            os.path.join(folders[name], "psi_model.ckpt"),
            "--eval_folder",
            eval_folders[name],
            *eval_flags(config.get("eval", {}), name),
        ]
    recipes = {"l2i": train_l2i, "piq": train_piq, "lmac": train_lmac}
    outputs = {"l2i": ("psi_model.ckpt", "theta.ckpt"), "piq": ("psi_model.ckpt",), "lmac": ("psi_model.ckpt",)}
    stages = [] if own_data else [
        Stage(
            "data",
            folders["data"],
            [os.path.join(folders["data"], "meta", "synthetic_params.json")],
            lambda: create_synthetic_dataset(
                folders["data"],
                classes=dataset["classes"],
                per_class=dataset["per_class"],
                seed=config["common"]["seed"],
                snr_db_range=tuple(dataset["snr_db_range"]),
                duration_s=dataset["duration_s"],
            ),
            {"dataset": dataset, "seed": config["common"]["seed"]},
        ),
    ]
    stages += [
        Stage(
            "classifier",
            folders["classifier"],
            [
                os.path.join(folders["classifier"], f)
                for f in ("embedding_model.ckpt", "classifier.ckpt")
            ],
            lambda: train_classifier.main(argv["classifier"]),
            argv["classifier"],
            [hparams_path("classifier")],
            resumes=True,
        ),
    ]
    if "nmf" in argv:
        stages.append(
            Stage(
                "nmf",
                folders["nmf"],
                [nmf_path],
                lambda: train_nmf.main(argv["nmf"]),
                argv["nmf"],
                [hparams_path("nmf")],
                resumes=True,
            )
        )
    # the dataset every later stage reads (its parameters: the same settings, the same bytes;
    # a user's: its csv files and the parameters file of the writer that made it, if any)
    data_files = stages[0].outputs if not own_data else [
        path
        for name in ("esc50.csv", "ground_truth.csv", "synthetic_params.json", "collection_params.json")
        if os.path.isfile(path := os.path.join(folders["data"], "meta", name))
    ]
    for stage in stages:
        if stage.name != "data":
            stage.inputs = data_files + stage.inputs
    classifier_files = next(stage.outputs for stage in stages if stage.name == "classifier")
    # an interpreter's stages also read its recipe file: one edited since is not done
    reads = {
        name: data_files + classifier_files + ([nmf_path] if name == "l2i" else []) + [hparams_path(name)]
        for name in interpreters
    }
    evaluation_reads = {}  # what an interpreter's evaluations read: its inputs and itself
    for name in interpreters:
        stages.append(
            Stage(
                name,
                folders[name],
                [os.path.join(folders[name], f) for f in outputs[name]],
                lambda name=name: recipes[name].main(argv[name]),
                argv[name],
                reads[name],
                resumes=True,
            )
        )
        evaluation_reads[name] = reads[name] + stages[-1].outputs
    for overlap_type in out_of_distribution(config):  # the same evaluations, out of distribution
        for name in interpreters:
            folder = out_of_distribution_folder(eval_folders[name], overlap_type)
            argv[f"eval_{overlap_type}_{name}"] = argv[name] + [
                "--pretrained_interpreter",
                os.path.join(folders[name], "psi_model.ckpt"),
                "--eval_folder",
                folder,
                *eval_flags(config.get("eval", {}), name),
                "--overlap_type",
                overlap_type,
            ]
    evaluations = [(f"eval_{name}", eval_folders[name], name) for name in interpreters] + [
        (f"eval_{overlap_type}_{name}", out_of_distribution_folder(eval_folders[name], overlap_type), name)
        for overlap_type in out_of_distribution(config)
        for name in interpreters
    ]
    for stage_name, folder, interpreter in evaluations:
        stages.append(
            Stage(
                stage_name,
                folder,
                [os.path.join(folder, "metrics.json")],
                lambda stage_name=stage_name: eval_recipe.main(argv[stage_name]),
                argv[stage_name],
                evaluation_reads[interpreter],
            )
        )
    for stage in stages:  # records read wherever the checkout and the output folder are now
        stage.roots = {"<repo>": REPO_ROOT, "<output>": out}
    return stages, [eval_folders[name] for name in interpreters]


#: Each stage's wall time in a from-scratch `make demo` on 2 CPU cores (35afc62, seconds): the
#: weights of the progress line's estimate; an out-of-distribution evaluation counts as its
#: in-distribution one, a stage not listed (another config's) as an interpreter's training.
STAGE_COST_S = {
    "data": 4,
    "classifier": 123,
    "nmf": 12,
    "l2i": 175,
    "piq": 101,
    "lmac": 39,
    "eval_l2i": 79,
    "eval_piq": 23,
    "eval_lmac": 21,
}


def nominal_cost(stage_name, costs=None):
    """A stage's weight: in `costs` (a config's `stage_costs_s`), else in `STAGE_COST_S`
    (out-of-distribution evaluations as their in-distribution one).

    Example
    -------
    >>> nominal_cost("eval_mixtures_piq"), nominal_cost("classifier"), nominal_cost("eval_ast")
    (23, 123, 23)
    >>> nominal_cost("classifier", {"classifier": 277}), nominal_cost("eval_mixtures_lmac", {"eval_lmac": 40})
    (277, 40)
    """
    table = {**STAGE_COST_S, **(costs or {})}
    if stage_name in table:
        return table[stage_name]
    if stage_name.startswith("eval_"):
        return table.get("eval_" + stage_name.rsplit("_", 1)[-1], table["eval_piq"])
    return table["piq"]


def check_stage_costs(costs, stage_names, path="the demo config"):
    """A config's `stage_costs_s`: {stage: seconds > 0} over the config's stages, or a ValueError.

    Example
    -------
    >>> check_stage_costs({"lmac": 219}, ["data", "classifier", "lmac", "eval_lmac"])
    >>> check_stage_costs({"lmca": 219}, ["data", "lmac"])
    Traceback (most recent call last):
    ...
    ValueError: the demo config: stage_costs_s names 'lmca', not a stage of this config (data, lmac).
    """
    if not isinstance(costs, dict):
        raise ValueError(f"{path}: stage_costs_s is a mapping {{stage: seconds}}, got {costs!r}.")
    for name, seconds in costs.items():
        if name not in stage_names:
            raise ValueError(
                f"{path}: stage_costs_s names {name!r}, not a stage of this config ({', '.join(stage_names)})."
            )
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ValueError(f"{path}: stage_costs_s: {name}: {seconds!r} is not a number of seconds > 0.")


def progress_line(index, stages, done, measured, costs=None):
    """The line printed before stage `index`: where it is in the chain, and the time left.

    The time left is the nominal cost of the stages still to run (`nominal_cost`, 0 for
    those already done; `costs`: the config's own measured costs, `stage_costs_s`), scaled
    by how this machine compared with the nominal costs on the stages run so far (1 before any).

    Arguments
    ---------
    index : int
        The stage about to run (0-based) in `stages` (their names).
    stages : list of str
    done : set of str
        Stages whose outputs exist (reused: no time).
    measured : dict
        {stage name: wall seconds} of the stages run so far.
    costs : dict, optional
        {stage name: seconds} over `STAGE_COST_S` (the config's `stage_costs_s`).

    Example
    -------
    >>> names = ["data", "classifier", "nmf"]
    >>> progress_line(1, names, {"data"}, {})
    'demo: stage 2/3 classifier; about 2 min 15 s left (estimate)'
    >>> progress_line(2, names, {"data"}, {"classifier": 246.0})  # this machine: half the speed
    'demo: stage 3/3 nmf; about 24 s left (estimate)'
    """
    ran = [name for name in measured if measured[name] is not None]
    nominal = sum(nominal_cost(name, costs) for name in ran)
    speed = sum(measured[name] for name in ran) / nominal if ran else 1.0
    left = speed * sum(nominal_cost(name, costs) for name in stages[index:] if name not in done)
    minutes, seconds = divmod(int(round(left)), 60)
    left_text = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    return f"demo: stage {index + 1}/{len(stages)} {stages[index]}; about {left_text} left (estimate)"


def summary_table(evaluations):
    """The summary table (markdown, ± half the bootstrap intervals) of some evaluations."""
    return markdown_table(summary_rows(evaluations), summary_intervals(evaluations))


def reusable_stages(stages):
    """The names of the stages that are done, before any runs.

    Raises
    ------
    ValueError
        Naming every stage folder made with other settings or from files that
        changed since (`Stage.done`), all at once: not one per rerun.
    """
    done, refused = set(), []
    for stage in stages:
        try:
            if stage.done():
                done.add(stage.name)
        except ValueError as error:
            refused.append(str(error))
    if len(refused) == 1:
        raise ValueError(refused[0])
    if refused:
        raise ValueError(f"{len(refused)} folders of the demo cannot be reused:\n- " + "\n- ".join(refused))
    return done


#: The last line of the demo's summary.md: how a rerun knows the file is the demo's to replace.
SUMMARY_TAG = "<!-- written by recipes/demo.py -->"
#: A line of every summary.md the demo wrote before the tag.
_OLD_SUMMARY_LINE = "\n± is half the 95 % bootstrap confidence interval over the clips.\n"


def check_own_files(output_folder):
    """Refuses, before any stage runs, an output folder whose summary.md or report/index.html
    is not the demo's (a file of the user's): nothing of it would be written over.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as out:
    ...     _ = write_text("# my notes\\n", os.path.join(out, "summary.md"))
    ...     check_own_files(out)
    Traceback (most recent call last):
    ...
    ValueError: .../summary.md is already there and is not the demo's summary: give the demo another --output_folder (nothing was written).
    """
    summary = os.path.join(output_folder, "summary.md")
    if os.path.isfile(summary):
        with open(summary, encoding="utf-8", errors="replace") as fin:
            text = fin.read()
        if SUMMARY_TAG not in text and _OLD_SUMMARY_LINE not in text:
            raise ValueError(
                f"{summary} is already there and is not the demo's summary: give the demo another "
                "--output_folder (nothing was written)."
            )
    page = os.path.join(output_folder, "report", "index.html")
    if os.path.isfile(page) and not is_own_report(page):
        raise ValueError(
            f"{page} is already there and is not a report of this project: give the demo another "
            "--output_folder (nothing was written)."
        )


#: The title of the table of each interpreter against the best baseline (`baseline_margins`).
MARGINS_TITLE = (
    "## Each interpreter against the best baseline (SI-SDRi margin; GT precision as a multiple of "
    "the all-ones mask's)"
)


def run_demo(config, output_folder):
    """Runs (or reuses) every stage, then writes the merged report.

    Returns
    -------
    dict
        "report" (path of index.html), "summary" (markdown table of the clips as
        they are), "margins" (each interpreter against the best baseline, `baseline_margins`;
        "" without ground truth), "out_of_distribution" ({overlap type: markdown table}),
        "timings" ({stage: wall seconds, None when reused}), "cpu_times" (the
        same in CPU seconds of all threads), "classifier_accuracy".
    """
    check_own_files(output_folder)
    stages, eval_folders = build_stages(config, output_folder)
    ood_folders = {
        overlap_type: [out_of_distribution_folder(folder, overlap_type) for folder in eval_folders]
        for overlap_type in out_of_distribution(config)
    }
    timings, cpu_times = {}, {}
    names = [stage.name for stage in stages]
    costs = config.get("stage_costs_s")  # checked by check_config
    done = reusable_stages(stages)
    for index, stage in enumerate(stages):
        print(progress_line(index, names, done, timings, costs), flush=True)
        times = stage.run()
        timings[stage.name], cpu_times[stage.name] = times if times else (None, None)
    title = config.get("title", REPORT_TITLE)
    all_folders = eval_folders + [folder for folders in ood_folders.values() for folder in folders]
    report = write_report(all_folders, os.path.join(output_folder, "report"), title)
    evaluations = [load_evaluation(folder) for folder in eval_folders]
    summary = summary_table(evaluations)
    ood_evaluations = {
        overlap_type: [load_evaluation(folder) for folder in folders]
        for overlap_type, folders in ood_folders.items()
    }
    ood_summaries = {overlap_type: summary_table(evals) for overlap_type, evals in ood_evaluations.items()}
    accuracy_file = os.path.join(output_folder, "classifier", "test_accuracy.json")
    accuracy = None
    if os.path.isfile(accuracy_file):
        with open(accuracy_file, encoding="utf-8") as fin:
            accuracy = json.load(fin).get("test_accuracy")
    result = {
        "report": os.path.abspath(report),
        "summary": summary,
        "margins": baseline_margins(evaluations),
        "out_of_distribution": ood_summaries,
        "timings": timings,
        "cpu_times": cpu_times,
        "classifier_accuracy": accuracy,
    }
    agreement = "".join(
        f"\n## Do the metrics agree? ({label})\n\n"
        + (f"{agreement_line(values, metric_title)}.\n\n" if agreement_line(values, metric_title) else "")
        + agreement_markdown(values, metric_title)
        + "\n"
        for label, values in agreement_groups(
            evaluations + [e for evals in ood_evaluations.values() for e in evals]
        )
        if agreement_markdown(values)
    )
    note = "\n± is half the 95 % bootstrap confidence interval over the clips.\n"
    ood_text = "".join(
        f"\n{out_of_distribution_title(overlap_type)}\n\n{table}\n"
        for overlap_type, table in ood_summaries.items()
    )
    margins = f"\n{MARGINS_TITLE}\n\n{result['margins']}" if result["margins"] else ""
    write_text(
        f"# {title}\n\n{summary}\n{margins}{ood_text}{note}{agreement}\n{SUMMARY_TAG}\n",
        os.path.join(output_folder, "summary.md"),
    )
    return result


def out_of_distribution_title(overlap_type):
    """The heading of an out-of-distribution summary table.

    Example
    -------
    >>> out_of_distribution_title("mixtures")
    '## Out of distribution: --overlap_type mixtures (the interference joins the background)'
    """
    return f"## Out of distribution: --overlap_type {overlap_type} (the interference joins the background)"


def resolve_output_folder(output_folder, config):
    """`--output_folder`, or the config's, as an absolute path (relative to the working folder)."""
    output_folder = output_folder or config["output_folder"]
    return output_folder if os.path.isabs(output_folder) else os.path.join(os.getcwd(), output_folder)


def format_times(timings, cpu_times):
    """'name reused' / 'name 12 s (CPU 20 s)' for each stage, comma-separated.

    Example
    -------
    >>> format_times({"data": None, "classifier": 12.3}, {"data": None, "classifier": 20.0})
    'data reused, classifier 12 s (CPU 20 s)'
    """
    return ", ".join(
        f"{name} " + ("reused" if wall is None else f"{wall:.0f} s (CPU {cpu_times[name]:.0f} s)")
        for name, wall in timings.items()
    )


def main(argv=None):
    """Command line: runs the demo, prints the timings, the summary table and the report path."""
    parser = argparse.ArgumentParser(description="The whole chain on the synthetic dataset.")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="demo yaml (stage overrides)")
    parser.add_argument("--smoke", action="store_true", help="use the config's smoke: sizes")
    parser.add_argument("--output_folder", help="where everything goes (default: the config's)")
    parser.add_argument(
        "--data_folder",
        help="a dataset with exact sources (data_prep/collection_prepare.py) instead of the synthetic set",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    config = load_config(args.config, smoke=args.smoke)
    if args.data_folder:
        config = use_data_folder(config, args.data_folder)
    output_folder = resolve_output_folder(args.output_folder, config)
    start = time.perf_counter()
    result = run_demo(config, output_folder)
    result["total_s"] = time.perf_counter() - start
    print("\nStages (wall time, CPU time of all threads): " + format_times(result["timings"], result["cpu_times"]))
    if result["classifier_accuracy"] is not None:
        print(f"Classifier test accuracy: {100 * result['classifier_accuracy']:.1f} %")
    print(f"\n{result['summary']}\n")
    if result["margins"]:
        print(f"{MARGINS_TITLE}\n\n{result['margins']}")
    for overlap_type, table in result["out_of_distribution"].items():
        print(f"{out_of_distribution_title(overlap_type)}\n\n{table}\n")
    print(f"Report: {result['report']}  (total {result['total_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
