"""Start-up of every recipe: arguments, yaml, data, class count, allocator.

`prepare_run(argv)` reads straight down, the SpeechBrain way:

    parse_arguments -> load_hyperpyyaml -> create_experiment_directory
    -> run_on_main(prepare_esc50) -> dataio_prep -> class count from the data

The yaml builds its models with `out_n_neurons` classes. That number is not a
literal: when the data has a different number of classes, the yaml is loaded
once more with `out_n_neurons` set to it, so every module is built for the data.

Authors
 * audio-interpret contributors 2026
"""

import ctypes
import ctypes.util
import os
import shutil

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)


# glibc mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory():
    """Lets glibc keep freed memory for reuse instead of giving it back at once.

    A large tensor (an activation of a few MB) is otherwise a fresh mmap(),
    zero-filled page by page at first touch and unmapped when freed: at every
    training step and every interpretation. Serving every block from the heap
    and trimming only above 1 GiB made batch-1 interpretation 1.6-1.7x faster on CPU
    (bench/README.md; `bench/run_all.py --options glibc_malloc` turns it off),
    for a few hundred MB more peak RSS. Set KEEP_FREED_MEMORY=0 to leave the
    allocator alone.

    Returns
    -------
    str
        What was done, for the log.
    """
    if os.environ.get("KEEP_FREED_MEMORY", "1") == "0":
        return "allocator left as it is (KEEP_FREED_MEMORY=0)"
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return "allocator left as it is (no glibc mallopt here)"
    if libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**30):
        return "glibc keeps freed memory for reuse (KEEP_FREED_MEMORY=0 turns this off)"
    return "allocator left as it is (glibc refused the mallopt settings)"


def _load_yaml(hparams_file, overrides):
    with open(hparams_file, encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, overrides)


def _with_override(overrides, key, value):
    """Adds `key: value` to a hyperpyyaml override (a yaml string or a dict)."""
    if isinstance(overrides, dict):
        return {**overrides, key: value}
    return f"{overrides or ''}\n{key}: {value}\n"


def prepare_data(hparams):
    """Writes the manifests (main process only) and returns datasets and encoder."""
    from data_prep.esc50_prepare import dataio_prep, prepare_esc50

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
    # The main process writes the label encoder; the others then read it.
    run_on_main(_write_label_encoder, args=[hparams])
    return dataio_prep(hparams)


def _write_label_encoder(hparams):
    """dataio_prep on the main process, for its side effect: the saved label encoder."""
    from data_prep.esc50_prepare import dataio_prep

    dataio_prep(hparams)


def _start_experiment(hparams, hparams_file, overrides, recipe_file):
    """Output folder, log file, resolved hyperparams.yaml, and a copy of the recipe."""
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    if recipe_file and sb.utils.distributed.if_main_process():
        shutil.copy(recipe_file, os.path.join(hparams["output_folder"], os.path.basename(recipe_file)))


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
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    # torchrun's environment (RANK, LOCAL_RANK) switches DDP on: join the group.
    sb.utils.distributed.ddp_init_group(run_opts)
    user_set_classes = "out_n_neurons" in _overrides_keys(overrides)
    # The class count is unknown until the data is read: the first pass builds
    # the modules for one class (every size check passes), the second for the data.
    first_pass = overrides if user_set_classes or not prepare else _with_override(overrides, "out_n_neurons", 1)
    hparams = _load_yaml(hparams_file, first_pass)
    _start_experiment(hparams, hparams_file, first_pass, recipe_file)
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
        _start_experiment(hparams, hparams_file, overrides, None)  # hyperparams.yaml as built
    return hparams, run_opts, hparams_file, overrides, datasets, label_encoder


def _overrides_keys(overrides):
    if isinstance(overrides, dict):
        return set(overrides)
    keys = set()
    for line in (overrides or "").splitlines():
        if ":" in line and not line.startswith(" "):
            keys.add(line.split(":", 1)[0].strip())
    return keys
