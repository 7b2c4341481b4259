"""Start-up of every recipe: arguments, yaml, data, class count, allocator.

`prepare_run(argv)` reads straight down, the SpeechBrain way:

    given_flags (a flag given twice is refused) -> parse_arguments
    -> check_override_types -> load_hyperpyyaml
    -> lock the output folder (recipes.core.run_guard) -> create_experiment_directory
    -> run_on_main(prepare_esc50) -> dataio_prep -> class count from the data

The yaml builds its models with `out_n_neurons` classes. That number is not a
literal: when the data has a different number of classes, the yaml is loaded
once more with `out_n_neurons` set to it, so every module is built for the data.

Authors
 * audio-interpret contributors 2026
"""

import ast
import difflib
import errno
import functools
import json
import os
import re
import shutil
import sys
import warnings

import ruamel.yaml
import speechbrain as sb
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from speechbrain.utils.distributed import run_on_main
from speechbrain.utils.logger import get_logger

from data_prep.esc50_prepare import dataio_prep, prepare_esc50
from recipes.core.process import keep_freed_memory, leave_process_group_at_exit
from recipes.core.run_guard import (
    keep_applied_settings,
    lock_output_folder,
    not_applied_settings,
    record_resume_inputs,
    refuse_changed_resume,
)

logger = get_logger(__name__)

OUTPUT_FOLDER_FLAG = "--output_folder (for recipes/eval.py: --eval_folder)"


_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR)


def _plain_tuple(loader, node):
    """hyperpyyaml's `!tuple` (any value `(a, b)`, also one a `!ref` makes), its items read as
    plain yaml values. hyperpyyaml reads them with PyYAML's full Loader, which runs
    `!!python/object/apply:` tags: `(1, !!python/object/apply:os.system [...])` ran a command."""
    text = loader.construct_scalar(node)
    try:
        return tuple(yaml.safe_load("[" + text[1:-1] + "]") or ())
    except yaml.YAMLError as error:
        problem = str(error).splitlines()[0]
        raise ValueError(
            f"The tuple value {text!r} is not a list of plain yaml values ({problem}): a tuple holds "
            "numbers and strings, and a yaml tag in one (e.g. !!python/...) is never run."
        ) from None


def _no_attribute_reference(loader, suffix, node):
    """The constructor of `!apply:` in a yaml that is data: hyperpyyaml makes `!ref <key.name>`
    an `!apply:getattr` of the object built for `key`, which reaches any method of it (a
    Pretrainer's `collect_in.unlink` deleted a file), so it is refused (an `!apply:` written
    in the yaml is refused before loading: `check_inference_yaml`)."""
    raise ValueError(
        f"A reference <key.attribute> (hyperpyyaml's !apply:{suffix}) reads an attribute of an object "
        "the yaml builds, which can reach code (a method that deletes or writes a file); a yaml "
        "that is data may only refer to keys (<key>, <key[sub]>)."
    )


class _Loader(ruamel.yaml.Loader):
    """hyperpyyaml's loader, with `!tuple` values read as plain yaml (`_plain_tuple`)."""

    @classmethod
    def add_constructor(cls, tag, constructor):
        super().add_constructor(tag, _plain_tuple if tag == "!tuple" else constructor)


class _DataLoader(_Loader):
    """`_Loader` for a yaml that is data (a downloaded inference folder): no `!apply:` either."""

    @classmethod
    def add_multi_constructor(cls, tag_prefix, multi_constructor):
        super().add_multi_constructor(
            tag_prefix, _no_attribute_reference if tag_prefix == "!apply:" else multi_constructor
        )


def load_yaml(stream, overrides=None, data=False):
    """`load_hyperpyyaml`, without the SyntaxWarning its arithmetic parse prints for some paths.

    hyperpyyaml tries every string made with `!ref` as an arithmetic expression, so an output
    folder such as `results/seed-0in` (a number, then a keyword) prints "SyntaxWarning:
    invalid decimal literal", naming no file of the user's; the value itself is right (the
    string is kept). A tuple value `(a, b)` holds plain yaml values only (`_plain_tuple`);
    with `data` (a yaml checked by `check_inference_yaml`, not trusted), `!ref <key.attribute>`
    is refused too (`_no_attribute_reference`).

    >>> load_yaml("out: runs/seed-0in\\nsave: !ref <out>/save\\n")["save"]
    'runs/seed-0in/save'
    >>> load_yaml("size: (2, 3)\\n")["size"]
    (2, 3)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="invalid decimal literal", category=SyntaxWarning)
        return load_hyperpyyaml(stream, overrides, loader=_DataLoader if data else _Loader)


#: hyperpyyaml's KeyError for an override that names no key of the yaml: the key, then the keys there.
_MISSING_OVERRIDE = re.compile(r"Override '(.+?)' not found in: (\[.*\])", re.S)


def _flag_names():
    """The names of SpeechBrain's own command-line flags (`--device` ...), without the dashes."""
    parser = sb.core.RunOptions._create_parser()
    return [option[2:] for action in parser._actions for option in action.option_strings if option.startswith("--")]


def unknown_override_error(error, hparams_file):
    """A ValueError naming an override that is no key of the yaml and the nearest names, for
    hyperpyyaml's KeyError (None for another KeyError).

    Example
    -------
    >>> error = KeyError("Override 'outputt_folder' not found in: ['seed', 'output_folder', 'lr']")
    >>> print(unknown_override_error(error, "piq.yaml"))
    --outputt_folder: piq.yaml has no key outputt_folder, and SpeechBrain no such flag. Did you mean --output_folder?
    >>> print(unknown_override_error(KeyError("Override 'devi' not found in: ['seed']"), "piq.yaml"))
    --devi: piq.yaml has no key devi, and SpeechBrain no such flag. Did you mean --device?
    >>> unknown_override_error(KeyError("embedding_model"), "piq.yaml") is None
    True
    """
    match = _MISSING_OVERRIDE.search(str(error))
    if match is None:
        return None
    key = match.group(1)
    try:
        keys = [str(name) for name in ast.literal_eval(match.group(2)) if not str(name).startswith("__")]
    except (ValueError, SyntaxError):
        keys = []
    names = keys + _flag_names()
    close = [name for name in names if name.startswith(key)][:3] or difflib.get_close_matches(key, names, n=3)
    hint = f" Did you mean {' or '.join(f'--{name}' for name in close)}?" if close else (
        f" Its keys: {', '.join(keys)}." if keys else ""
    )
    return ValueError(f"--{key}: {hparams_file} has no key {key}, and SpeechBrain no such flag.{hint}")


def _load_yaml(hparams_file, overrides):
    """The yaml with its overrides; folders the yaml's objects cannot create get a clear error."""
    with open(hparams_file, encoding="utf-8") as fin:
        try:
            return load_yaml(fin, overrides)
        except KeyError as error:  # an override of no key of the yaml (a typo)
            clear = unknown_override_error(error, hparams_file)
            if clear is None:
                raise
            raise clear from None
        except OSError as error:  # e.g. the Checkpointer or the train logger making their folders
            if error.errno not in _UNWRITABLE:
                raise
            raise PermissionError(
                f"Cannot write to {error.filename} ({error.strerror}): the run writes its "
                f"checkpoints, logs and results under its output folder. Pass {OUTPUT_FOLDER_FLAG} "
                "with a folder you can write to."
            ) from error


def _with_override(overrides, key, value):
    """Adds `key: value` to a hyperpyyaml override (a yaml string or a dict)."""
    if isinstance(overrides, dict):
        return {**overrides, key: value}
    return f"{overrides or ''}\n{key}: {value}\n"


def prepare_data(hparams):
    """Writes the manifests (main process only) and returns datasets and encoder."""
    run_on_main(
        prepare_esc50,
        kwargs={
            "data_folder": hparams["data_folder"],
            "audio_data_folder": hparams["audio_data_folder"],
            "save_json_train": hparams["train_annotation"],
            "save_json_valid": hparams["valid_annotation"],
            "save_json_test": hparams["test_annotation"],
            "train_fold_nums": hparams["train_fold_nums"],
            "valid_fold_nums": hparams["valid_fold_nums"],
            "test_fold_nums": hparams["test_fold_nums"],
            "skip_manifest_creation": hparams.get("skip_manifest_creation", False),
        },
    )
    # The main process builds the data and saves the label encoder; the others then build
    # theirs and read it. Once per process, so each data warning is logged once. Kept here,
    # not returned by run_on_main: it would broadcast (pickle) the datasets to the others.
    prepared = []
    run_on_main(lambda: prepared.append(dataio_prep(hparams)))
    if not prepared:  # not the main process
        prepared.append(dataio_prep(hparams))
    return prepared[0]


_YAML = YAML(typ="safe", pure=True)  # YAML 1.2, as hyperpyyaml reads (1e-4 is a number)
_TOP_LEVEL_SCALAR = re.compile(r"^([A-Za-z_]\w*):[ \t]+([^!#\s][^#]*?)\s*(#.*)?$")


#: Keys whose whole-number defaults stand for real numbers (seconds, dB, scales): they take
#: fractions. Every other key with a whole-number default is a count and refuses them.
REAL_VALUED_KEYS = ("signal_length_s", "aam_scale", "background_snr_low", "background_snr_high")


def _kind(value):
    """The kind of a yaml default the type check enforces, or None for any value."""
    if isinstance(value, bool):
        return "True or False"
    if isinstance(value, (int, float)):
        return "a number"
    return None


def _takes_fractions(key, default):
    """Whether `key` (yaml default `default`) may be given a value with a fractional part."""
    return isinstance(default, float) or key in REAL_VALUED_KEYS or key.endswith(("_s", "_db"))


def recipe_keys(hparams_file):
    """The top-level keys of a recipe yaml (read as text: its `!new:` tags need no loading).

    Example
    -------
    >>> keys = recipe_keys("hparams/lmac_conv2d.yaml")
    >>> "average_checkpoints" in keys, "lr" in keys, "factor" in keys  # factor: lr_annealing's own
    (True, True, False)
    """
    with open(hparams_file, encoding="utf-8") as fin:
        return {match.group(1) for match in re.finditer(r"^([A-Za-z_]\w*)\s*:", fin.read(), flags=re.M)}


def top_level_scalars(source):
    r"""{key: value} of the top-level keys of a yaml whose value is a plain scalar (no tag).

    `source` is a yaml file's path or an open text. Values of `!ref`, `!new:`,
    `!apply:` ... are left out (they are not literals).

    Example
    -------
    >>> import io
    >>> top_level_scalars(io.StringIO("lr: 1e-4  # Adam\nK: 30\nbrain: !new:torch.nn.Linear [2, 3]\n"))
    {'lr': 0.0001, 'K': 30}
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as fin:
            return top_level_scalars(fin)
    scalars = {}
    for line in source:
        match = _TOP_LEVEL_SCALAR.match(line.rstrip("\n"))
        if match:
            try:
                scalars[match.group(1)] = _YAML.load(match.group(2))
            except YAMLError:
                continue
    return scalars


def given_flags(argv):
    """{name: value} of the `--name value` / `--name=value` flags of a command line, in order.

    A value is read as yaml (`--lr 1e-4` gives 0.0001); a flag without a value
    (`--debug`) gives None; other words (the yaml, input files) are skipped.

    Raises
    ------
    ValueError
        A flag is given twice (a yaml override can only be set once).

    Example
    -------
    >>> given_flags(["hparams/piq.yaml", "--K", "30", "--lr=1e-4", "--debug"])
    {'K': 30, 'lr': 0.0001, 'debug': None}
    >>> given_flags(["--K", "30", "--K", "40"])
    Traceback (most recent call last):
    ...
    ValueError: --K is given twice (30 and 40): give it once.
    """
    flags = {}
    for at, word in enumerate(argv):
        if not word.startswith("--") or len(word) == 2:
            continue
        name, equals, value = word[2:].partition("=")
        if not equals:
            following = argv[at + 1] if at + 1 < len(argv) else None
            value = None if following is None or following.startswith("--") else following
        if value is not None:
            try:
                value = _YAML.load(value)
            except YAMLError:
                pass
        if name in flags:
            raise ValueError(f"--{name} is given twice ({flags[name]} and {value}): give it once.")
        flags[name] = value
    return flags


def _yaml_value(words):
    """The words of one flag as yaml text, quoted where yaml would read a comment in them
    (`--experiment_name "run #3"` became `run`)."""
    value = " ".join(words)
    return json.dumps(value) if re.search(r"(^|\s)#", value) else value


def parse_arguments(argv=None):
    r"""`sb.parse_arguments`, with an '=' inside a value kept: `--output_folder runs/lr=0.1`.

    SpeechBrain 1.1.2 joins the override words with '=' and splits them on every '=', so
    that folder became `runs/lr 0.1`: another folder, without a word. The overrides are
    read again from the words its parser leaves, each split at its first '=' only.

    Example
    -------
    >>> parse_arguments(["h.yaml", "--device", "cpu", "--output_folder=runs/lr=0.1", "--K", "3"])[2]
    'output_folder: runs/lr=0.1\nK: 3'
    """
    argv = sys.argv[1:] if argv is None else argv
    hparams_file, run_opts, _ = sb.parse_arguments(argv)
    parser = type(run_opts)._create_parser()
    parser.allow_abbrev = False  # `--data x` (for --data_folder) is not SpeechBrain's --data_parallel_backend
    _, words = parser.parse_known_args(argv)
    flags = []  # (name, its words), in order
    for word in words:
        if word.startswith("--"):
            name, equals, value = word[2:].partition("=")
            flags.append((name, [value] if equals else []))
        elif flags:
            flags[-1][1].append(word)
        else:  # was a yaml ScannerError
            raise ValueError(f"{word}: one yaml file is read ({hparams_file}); give settings as --key value.")
    lines = [f"{name}: {_yaml_value(values)}" if values else f"{name}:" for name, values in flags]
    return hparams_file, run_opts, "\n".join(lines)


def check_override_types(hparams_file, overrides):
    r"""A ValueError naming the key when an override does not fit the yaml's scalar default.

    Numbers must stay numbers and booleans booleans: `--lr abc` would otherwise
    fail deep inside the optimiser.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    ...     _ = f.write("lr: 0.001  # Adam\nnumber_of_epochs: 5\n")
    >>> check_override_types(f.name, "lr: 1e-4\nnumber_of_epochs: 3\n")
    >>> check_override_types(f.name, "number_of_epochs: abc\n")
    Traceback (most recent call last):
    ...
    ValueError: --number_of_epochs 'abc': number_of_epochs is a number in ... (there: 5); give a number, e.g. --number_of_epochs 5.
    >>> os.remove(f.name)
    """
    if isinstance(overrides, dict):
        given = overrides
    else:
        try:
            given = _YAML.load(overrides or "") or {}
        except YAMLError:
            return  # hyperpyyaml reports its own syntax errors
    if not isinstance(given, dict) or not given:
        return
    defaults = top_level_scalars(hparams_file)
    for key, value in given.items():
        kind = _kind(defaults.get(key))
        if kind is None:
            continue
        fits = isinstance(value, bool) if kind == "True or False" else (
            isinstance(value, (int, float)) and not isinstance(value, bool)
        )
        if not fits:
            raise ValueError(
                f"--{key} {value!r}: {key} is {kind} in {hparams_file} (there: "
                f"{defaults[key]}); give {kind}, e.g. --{key} {defaults[key]}."
            )
        if isinstance(value, float) and not _takes_fractions(key, defaults[key]):
            raise ValueError(
                f"--{key} {value!r}: {key} is a whole number in {hparams_file} (there: "
                f"{defaults[key]}); give a whole number, e.g. --{key} {defaults[key]}."
            )


def describe_environment_once():
    """Makes SpeechBrain's environment description (env.log) a once-per-process computation.

    `create_experiment_directory` writes `env.log` (the Python version, `pip
    freeze`, the git revision) into every run's folder; `pip freeze` takes
    about 1 s. A process that starts several runs (`make demo`: 9 stages;
    `make compare`; the test suite: dozens of tiny runs) now computes it once:
    every folder still gets its env.log, with the same text.
    """
    describe = sb.utils.logger.get_environment_description
    if not hasattr(describe, "cache_info"):  # not cached yet
        sb.utils.logger.get_environment_description = functools.lru_cache(maxsize=1)(describe)


def _start_experiment(hparams, hparams_file, overrides, recipe_file, save_yaml=True, check_resume=True, kept=None):
    """Output folder (locked for this run), log file, resolved hyperparams.yaml, recipe copy.

    `save_yaml=False` leaves hyperparams.yaml for a later call (the yaml is about to be
    loaded again for the data's class count): resolving it costs about 0.1 s a run.
    `check_resume=False` for that later call: the resume checks ran in the first (the
    class count is none of their keys), and a second run of them repeated their warnings;
    `kept` hands it what the first found a resume does not apply.

    Returns
    -------
    dict
        `not_applied_settings` (the check's, or `kept`): what hyperparams.yaml keeps.
    """
    describe_environment_once()
    warnings, kept = [], kept or {}
    if sb.utils.distributed.if_main_process():
        lock_output_folder(hparams["output_folder"], OUTPUT_FOLDER_FLAG)
        if check_resume:
            warnings = refuse_changed_resume(hparams)  # before hyperparams.yaml is rewritten
            kept = not_applied_settings(hparams)
            record_resume_inputs(hparams)  # what a later resume must find unchanged
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file if save_yaml else None,
        overrides=overrides,
    )
    if save_yaml and kept and sb.utils.distributed.if_main_process():
        keep_applied_settings(hparams["output_folder"], kept, hparams)
    for warning in warnings:  # now that the run's log is set up: on the console and in log.txt
        logger.warning(warning)
    if recipe_file and sb.utils.distributed.if_main_process():
        shutil.copy(recipe_file, os.path.join(hparams["output_folder"], os.path.basename(recipe_file)))
    return kept


def prepare_run(argv=None, prepare=True, recipe_file=None):
    """Parses the command line, loads the yaml and prepares the data.

    Arguments
    ---------
    argv : list of str, optional
        `[hparams.yaml, --key, value, ...]`; defaults to `sys.argv[1:]`.
    prepare : bool
        False skips the data (for tools that only need the models).
    recipe_file : str, optional
        The recipe script, copied into the output folder with the resolved yaml.

    Returns
    -------
    hparams : dict
    run_opts : dict
    hparams_file : str
    overrides : str
    datasets : dict of DynamicItemDataset or None
        "train", "valid", "test".
    label_encoder : CategoricalEncoder or None
    """
    allocator = keep_freed_memory()
    given_flags(sys.argv[1:] if argv is None else argv)  # a flag given twice: refused, named
    hparams_file, run_opts, overrides = parse_arguments(argv)
    # torchrun's environment (RANK, LOCAL_RANK) switches DDP on: join the group.
    sb.utils.distributed.ddp_init_group(run_opts)
    if torch.distributed.is_initialized():
        leave_process_group_at_exit()
    user_set_classes = "out_n_neurons" in _overrides_keys(overrides)
    # The class count is unknown until the data is read: the first pass builds
    # the modules for one class (every size check passes), the second for the data.
    check_override_types(hparams_file, overrides)
    first_pass = overrides if user_set_classes or not prepare else _with_override(overrides, "out_n_neurons", 1)
    hparams = _load_yaml(hparams_file, first_pass)
    second_pass = prepare and not user_set_classes
    kept = _start_experiment(hparams, hparams_file, first_pass, recipe_file, save_yaml=not second_pass)
    logger.info("Memory: %s", allocator)
    if not prepare:
        return hparams, run_opts, hparams_file, overrides, None, None

    datasets, label_encoder = prepare_data(hparams)
    n_classes = len(label_encoder)
    if user_set_classes:
        if hparams["out_n_neurons"] != n_classes:
            raise ValueError(
                f"--out_n_neurons {hparams['out_n_neurons']} was given but the data in "
                f"{hparams['data_folder']} has {n_classes} classes; drop the override "
                "(the class count is read from the data)."
            )
    else:
        logger.info("The data has %d classes: building the models for %d.", n_classes, n_classes)
        overrides = _with_override(overrides, "out_n_neurons", n_classes)
        hparams = _load_yaml(hparams_file, overrides)
        _start_experiment(hparams, hparams_file, overrides, None, check_resume=False, kept=kept)  # hyperparams.yaml as built
    return hparams, run_opts, hparams_file, overrides, datasets, label_encoder


def _overrides_keys(overrides):
    if isinstance(overrides, dict):
        return set(overrides)
    keys = set()
    for line in (overrides or "").splitlines():
        if ":" in line and not line.startswith(" "):
            keys.add(line.split(":", 1)[0].strip())
    return keys
