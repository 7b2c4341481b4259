"""Mutation audit of the recipes' core: `recipes/core/startup.py` (command line, yaml
overrides, class count, output folder), `recipes/core/process.py` (allocator settings),
`recipes/core/labels.py` (the row labels of the reports), `recipes/core/brains.py` (building,
wrapping, freezing and loading the Brains' modules) and `models/layers.py` (the decoders' last
layer and the input floor).

Expected values come from outside the code under test: figures and messages worked out by
hand and written literally, a hand-made ESC-50 layout whose label order is known in advance,
the glibc constants of malloc.h, and numpy loops that state a transposed convolution, its
gradients and a BatchNorm folded into a convolution from their definitions, run with the
layer's own weights. Real SpeechBrain objects (Brain, Checkpointer, EpochCounter, the yamls)
where the code uses them; the only stand-ins are for the C library and for the GPU count.
Each test names the mutations of the audit it catches.
"""

import ctypes
import ctypes.util
import functools
import math
import types

import numpy as np
import pytest
import soundfile as sf
import speechbrain as sb
import torch
import torch.nn as nn
from conftest import HPARAMS
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.epoch_loop import EpochCounter

from models.layers import (
    SingleChannelConvTranspose2d,
    above_background_floor,
    background_floor,
    kernel_rows_conv_transpose,
)
from recipes.core import brains, labels, process, startup

TINY_CLASSIFIER = ["--emb_dim", "8", "--lin_neurons", "8", "--signal_length_s", "1"]


# =============================================================== startup: the command line
def test_given_flags_reads_each_value_as_yaml_and_splits_only_at_the_first_equals():
    """`--lr 1e-4` is the float 0.0001 (YAML 1.2), `--K=30` the int 30, `True` a bool, a
    negative number a value (not a flag), `--debug` None, `--` skipped, and a value holding '='
    is kept whole. Catches: partition -> rpartition / split, `startswith("--")` -> `("-")`
    (the negative value lost), dropping `len(word) == 2` (a bare `--` read as a flag), the
    yaml read of values dropped (strings)."""
    argv = [
        "hparams/piq.yaml", "--lr", "1e-4", "--K=30", "--use_tensorboard", "True",
        "--background_snr_low", "-5", "--output_folder=runs/lr=0.1", "--debug", "--", "x",
    ]
    flags = startup.given_flags(argv)
    assert flags == {
        "lr": 0.0001, "K": 30, "use_tensorboard": True, "background_snr_low": -5,
        "output_folder": "runs/lr=0.1", "debug": None,
    }
    assert type(flags["lr"]) is float and type(flags["K"]) is int


def test_a_float_override_reaches_the_optimiser_as_a_float(tmp_path):
    """`--lr 1e-4` (a string under YAML 1.1) is the number 0.0001 in hparams and in the
    optimiser the yaml's `opt_class` builds."""
    argv = [str(HPARAMS / "piq.yaml"), "--lr", "1e-4", "--output_folder", str(tmp_path / "run"),
            "--data_folder", str(tmp_path)]
    hparams, _, _, overrides, *_ = startup.prepare_run(argv, prepare=False)
    assert type(hparams["lr"]) is float and hparams["lr"] == 0.0001
    optimiser = hparams["opt_class"]([nn.Parameter(torch.zeros(1))])
    assert optimiser.param_groups[0]["lr"] == 0.0001
    assert "lr: 1e-4" in overrides.splitlines()


def test_an_unknown_key_is_refused_naming_it_before_any_folder_is_made(tmp_path):
    """`--lrr 0.1` (a typo of --lr) must not be ignored: hyperpyyaml's must-match check finds
    it, and the error names it and the key meant. Catches: `load_hyperpyyaml(...,
    overrides_must_match=False)` in `load_yaml`."""
    argv = [str(HPARAMS / "piq.yaml"), "--lrr", "0.1", "--output_folder", str(tmp_path / "run"),
            "--data_folder", str(tmp_path)]
    with pytest.raises(ValueError, match=r"^--lrr: .*piq.yaml has no key lrr, .* Did you mean --lr\b"):
        startup.prepare_run(argv, prepare=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("joined", [False, True])
def test_a_value_holding_an_equals_sign_is_kept_whole(tmp_path, joined):
    """Was: SpeechBrain 1.1.2 joins the override words with '=' and splits them on every '=',
    so `--output_folder runs/lr=0.1` wrote the run into `runs/lr 0.1` (another folder, no
    message); a data folder or checkpoint path holding '=' was looked for elsewhere."""
    folder = tmp_path / "piq_lr=0.1"
    flag = [f"--output_folder={folder}"] if joined else ["--output_folder", str(folder)]
    argv = [str(HPARAMS / "piq.yaml"), *flag, "--data_folder", str(tmp_path / "data=A"), "--lr", "0.5"]
    hparams, _, _, overrides, *_ = startup.prepare_run(argv, prepare=False)
    assert hparams["output_folder"] == str(folder)
    assert hparams["data_folder"] == str(tmp_path / "data=A")
    assert hparams["lr"] == 0.5
    assert (folder / "hyperparams.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["piq_lr=0.1"]
    assert f"output_folder: {folder}" in overrides.splitlines()


def test_a_value_yaml_would_read_as_a_comment_is_kept_whole(tmp_path):
    """Was: `--output_folder "runs/try #3"` reached the yaml as `output_folder: runs/try #3`,
    whose ` #3` is a comment: the run went to `runs/try`, without a word."""
    folder = tmp_path / "try #3"
    argv = [str(HPARAMS / "piq.yaml"), "--output_folder", str(folder), "--data_folder", str(tmp_path)]
    hparams, *_ = startup.prepare_run(argv, prepare=False)
    assert hparams["output_folder"] == str(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["try #3"]
    overrides = startup.parse_arguments(["a.yaml", "--name", "#1", "--path", "a#b", "--lr", "0.1"])[2]
    assert overrides == 'name: "#1"\npath: a#b\nlr: 0.1'  # a '#' inside a word is no comment


def test_run_options_stay_run_options_and_overrides_keep_speechbrains_text(tmp_path):
    """`--device cpu` / `--debug` are SpeechBrain's run options, not yaml keys; the overrides
    text is `key: value` lines, a valueless unknown flag `key:` (null)."""
    argv = [str(HPARAMS / "piq.yaml"), "--device=cpu", "--output_folder", str(tmp_path / "run"),
            "--data_folder", str(tmp_path), "--debug", "--lr", "0.25"]
    hparams_file, run_opts, overrides = startup.parse_arguments(argv)
    assert hparams_file == str(HPARAMS / "piq.yaml")
    assert run_opts["device"] == "cpu" and run_opts["debug"] is True
    assert overrides == f"output_folder: {tmp_path / 'run'}\ndata_folder: {tmp_path}\nlr: 0.25"
    assert startup.parse_arguments(["a.yaml", "--flag", "--words", "3", "4"])[2] == "flag:\nwords: 3 4"
    with pytest.raises(ValueError, match=r"^b.yaml: one yaml file is read \(a.yaml\); give settings as --key value.$"):
        startup.parse_arguments(["a.yaml", "b.yaml", "--lr", "0.1"])  # was a yaml ScannerError


# ---------------------------------------------------------------- startup: override types
OVERRIDE_YAML = (
    "name: abc  # a string: any value\n"
    "lr: 0.001  # Adam\n"
    "epochs: 5\n"
    "use_it: True\n"
    "quiet_s: 2\n"
    "gain_db: 3\n"
    "aam_scale: 30\n"
    "ref: !ref <epochs>\n"
    "block:\n"
    "  inner: 4\n"
)


@pytest.fixture
def override_yaml(tmp_path):
    path = tmp_path / "h.yaml"
    path.write_text(OVERRIDE_YAML)
    return path


def test_top_level_scalars_are_the_column_zero_literals_without_comments(override_yaml):
    """Catches: the comment group of `_TOP_LEVEL_SCALAR` dropped ('0.001  # Adam' a string),
    indented keys read (`inner`), tagged values read (`ref`)."""
    assert startup.top_level_scalars(override_yaml) == {
        "name": "abc", "lr": 0.001, "epochs": 5, "use_it": True, "quiet_s": 2, "gain_db": 3,
        "aam_scale": 30,
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs: abc", "--epochs 'abc': epochs is a number in {f} (there: 5); give a number, e.g. --epochs 5."),
        ("epochs: True", "--epochs True: epochs is a number in {f} (there: 5); give a number, e.g. --epochs 5."),
        ("epochs: null", "--epochs None: epochs is a number in {f} (there: 5); give a number, e.g. --epochs 5."),
        ("lr: fast", "--lr 'fast': lr is a number in {f} (there: 0.001); give a number, e.g. --lr 0.001."),
        ("use_it: 1", "--use_it 1: use_it is True or False in {f} (there: True); give True or False, e.g. --use_it True."),
        ("use_it: yes", "--use_it 'yes': use_it is True or False in {f} (there: True); give True or False, e.g. --use_it True."),
        ("epochs: 2.5", "--epochs 2.5: epochs is a whole number in {f} (there: 5); give a whole number, e.g. --epochs 5."),
        ("name: 1\nepochs: 1e1", "--epochs 10.0: epochs is a whole number in {f} (there: 5); give a whole number, e.g. --epochs 5."),
    ],
)
def test_an_override_of_the_wrong_kind_is_refused_naming_key_file_and_default(override_yaml, override, message):
    """Catches: `_kind`'s bool test after the number test (True a number, 1 a boolean),
    `not isinstance(value, bool)` dropped (`--epochs True` is 1 epoch), `continue` -> `return`
    on a free key (a later key unchecked), the whole-number check dropped or its message
    changed."""
    with pytest.raises(ValueError) as caught:
        startup.check_override_types(override_yaml, override + "\n")
    assert str(caught.value) == message.format(f=override_yaml)


def test_overrides_of_the_right_kind_pass(override_yaml):
    """Fractions for float defaults, `*_s`, `*_db` and REAL_VALUED_KEYS; an int for a float;
    booleans for booleans; anything for strings and nested or unknown keys (hyperpyyaml
    judges those). A dict is read as the text is. Catches: `_takes_fractions` losing its
    suffix or list test, `isinstance(default, float)` dropped (lr 1e-4 refused)."""
    for override in (
        "lr: 1e-4\nepochs: 3\nuse_it: false\nquiet_s: 0.5\ngain_db: -2.5\naam_scale: 0.2\n",
        "lr: 1\nname: 5\ninner: x\nunknown: 1.5\n",
        "",
        None,
        "[not, a, mapping]",
    ):
        assert startup.check_override_types(override_yaml, override) is None
    with pytest.raises(ValueError, match="--epochs 1.5: epochs is a whole number"):
        startup.check_override_types(override_yaml, {"epochs": 1.5})


def test_override_helpers_add_and_find_keys():
    """`_with_override` on text and dicts, `_overrides_keys` reads only top-level keys."""
    assert startup._with_override(None, "out_n_neurons", 3) == "\nout_n_neurons: 3\n"
    assert startup._with_override("lr: 1", "out_n_neurons", 3) == "lr: 1\nout_n_neurons: 3\n"
    assert startup._with_override({"lr": 1}, "out_n_neurons", 3) == {"lr": 1, "out_n_neurons": 3}
    assert startup._overrides_keys("lr: 1\nblock:\n  out_n_neurons: 3\nK: 2") == {"lr", "block", "K"}
    assert startup._overrides_keys({"a": 1}) == {"a"}
    assert startup._overrides_keys(None) == set()


# ---------------------------------------------------------------- startup: the output folder
def test_an_output_folder_that_is_a_users_file_is_refused_and_the_file_kept(tmp_path):
    """Catches: ENOTDIR dropped from `_UNWRITABLE` (a bare NotADirectoryError traceback)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    argv = [str(HPARAMS / "piq.yaml"), "--output_folder", str(notes), "--data_folder", str(tmp_path)]
    with pytest.raises(PermissionError, match=rf"Cannot write to {notes}/save \(Not a directory\).*Pass --output_folder"):
        startup.prepare_run(argv, prepare=False)
    assert notes.read_text() == "mine"


def test_the_recipe_and_the_resolved_yaml_are_written_beside_the_users_files(tmp_path):
    """The recipe is copied byte for byte; the resolved yaml has the override; a file of the
    user's in the folder is left alone. Catches: the recipe copy dropped or misnamed."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    recipe = HPARAMS.parent / "recipes" / "train_piq.py"
    argv = [str(HPARAMS / "piq.yaml"), "--output_folder", str(run), "--data_folder", str(tmp_path), "--lr", "0.3"]
    startup.prepare_run(argv, prepare=False, recipe_file=str(recipe))
    assert (run / "train_piq.py").read_bytes() == recipe.read_bytes()
    saved = [line.split("#")[0].strip() for line in (run / "hyperparams.yaml").read_text().splitlines()]
    assert "lr: 0.3" in saved
    assert (run / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------- startup: the class count
# Targets out of csv order and of alphabetical order: the encoder's index follows the target id.
CLIPS = [(1, 7, "zebra"), (2, 2, "apple"), (3, 40, "mid"), (4, 2, "apple"), (5, 7, "zebra")]
BY_TARGET_ID = {0: "apple", 1: "zebra", 2: "mid"}  # 2 < 7 < 40


@pytest.fixture(scope="module")
def three_class_data(tmp_path_factory):
    """An ESC-50 layout of 5 one-second clips (one per fold) of 3 classes."""
    root = tmp_path_factory.mktemp("esc50_like")
    (root / "audio").mkdir()
    (root / "meta").mkdir()
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    for n, (fold, target, category) in enumerate(CLIPS):
        name = f"{fold}-{100 + n}-A-{target}.wav"
        sf.write(root / "audio" / name, noise * (n + 1) / 5, 16000)
        rows.append(f"{name},{fold},{target},{category},False,{100 + n},A")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return root


def classifier_argv(data, out, *extra):
    return [str(HPARAMS / "classifier_conv2d.yaml"), "--data_folder", str(data), "--output_folder", str(out),
            *TINY_CLASSIFIER, *extra]


def test_the_models_are_built_for_the_datas_classes_in_target_id_order(three_class_data, tmp_path):
    """The yaml says 50 classes; the data has 3: the classifier is built with 3 outputs, the
    saved yaml and the returned overrides say 3, and index i is the i-th class by target id.
    Catches: `n_classes = len(label_encoder)` off by one, the second pass not loading the yaml
    again (50 or 1 outputs), the second `_start_experiment` given the first pass (the saved
    yaml says 1), the first pass's `out_n_neurons` override dropped when `prepare`."""
    hparams, _, _, overrides, datasets, encoder = startup.prepare_run(classifier_argv(three_class_data, tmp_path / "run"))
    assert encoder.ind2lab == BY_TARGET_ID
    assert hparams["out_n_neurons"] == 3
    assert hparams["classifier"].weight.shape == (3, 8)
    assert "out_n_neurons: 3" in overrides.splitlines()
    saved = (tmp_path / "run" / "hyperparams.yaml").read_text().splitlines()
    assert [line.split("#")[0].strip() for line in saved if line.startswith("out_n_neurons")] == ["out_n_neurons: 3"]
    assert len(datasets["train"]) == 3 and len(datasets["valid"]) == len(datasets["test"]) == 1
    encoded = {item["class_string"]: int(item["class_string_encoded"]) for item in datasets["train"]}
    assert encoded == {"zebra": 1, "apple": 0, "mid": 2}


def test_a_class_count_given_on_the_command_line_must_be_the_datas(three_class_data, tmp_path):
    """`--out_n_neurons 3` on 3 classes: kept as given, one pass; `--out_n_neurons 5` on 3
    classes: refused, naming both. Catches: `user_set_classes` ignored (5 replaced silently)
    or the comparison inverted, the key search of `_overrides_keys` broken."""
    hparams, _, _, overrides, _, _ = startup.prepare_run(classifier_argv(three_class_data, tmp_path / "a", "--out_n_neurons", "3"))
    assert hparams["classifier"].weight.shape == (3, 8)
    assert overrides.splitlines().count("out_n_neurons: 3") == 1
    with pytest.raises(ValueError, match=rf"^--out_n_neurons 5 was given but the data in {three_class_data} has 3 classes"):
        startup.prepare_run(classifier_argv(three_class_data, tmp_path / "b", "--out_n_neurons", "5"))


def test_the_first_pass_builds_for_one_class_so_a_small_dictionary_fits(three_class_data, tmp_path):
    """PIQ partitions its K codes among the classes (K >= classes): the yaml's 50 classes would
    refuse --K 12 before the data is read; built for 1 class, then for the data's 3, it fits.
    Catches: the first pass's `out_n_neurons: 1` override dropped."""
    argv = [str(HPARAMS / "piq.yaml"), "--data_folder", str(three_class_data), "--output_folder", str(tmp_path / "run"),
            "--K", "12", *TINY_CLASSIFIER]
    hparams, *_ = startup.prepare_run(argv)
    assert hparams["out_n_neurons"] == 3 and hparams["K"] == 12


# =============================================================== process: the allocator
class RecordingLibc:
    """Stands in for glibc: records mallopt / malloc_trim calls, answers `result`."""

    def __init__(self, result=1):
        self.calls, self.result = [], result

    def mallopt(self, parameter, value):
        self.calls.append(("mallopt", parameter, value))
        return self.result

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return self.result


@pytest.fixture
def fake_libc(monkeypatch):
    """`ctypes.CDLL` answers a RecordingLibc (process._libc's cache cleared around the test)."""
    libc = RecordingLibc()
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: "libc.so.6" if name == "c" else None)
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    monkeypatch.delenv("KEEP_FREED_MEMORY", raising=False)
    process._libc.cache_clear()
    yield libc
    process._libc.cache_clear()


def test_keep_freed_memory_sets_malloc_h_parameters(fake_libc, monkeypatch):
    """M_MMAP_MAX is -4 and M_TRIM_THRESHOLD -1 in glibc's malloc.h: no mmap'd blocks, trim
    above 1 GiB. Catches: either constant or value changed, `and` -> `or` (a refusal of the
    second reported as done), the env test inverted."""
    assert process.keep_freed_memory() == "glibc keeps freed memory for reuse (KEEP_FREED_MEMORY=0 turns this off)"
    assert fake_libc.calls == [("mallopt", -4, 0), ("mallopt", -1, 2**30)]
    fake_libc.calls.clear()
    fake_libc.result = 0
    assert process.keep_freed_memory() == "allocator left as it is (glibc refused the mallopt settings)"
    monkeypatch.setenv("KEEP_FREED_MEMORY", "0")
    fake_libc.calls.clear()
    assert process.keep_freed_memory() == "allocator left as it is (KEEP_FREED_MEMORY=0)"
    assert fake_libc.calls == []


def test_no_c_library_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.delenv("KEEP_FREED_MEMORY", raising=False)
    process._libc.cache_clear()
    try:
        assert process.keep_freed_memory() == "allocator left as it is (no glibc mallopt here)"
        assert process.release_freed_memory() is False
    finally:
        process._libc.cache_clear()


def test_a_c_library_without_mallopt_is_left_alone(fake_libc, monkeypatch):
    """musl and others: no mallopt symbol. Catches: the `hasattr(libc, "mallopt")` test dropped."""
    monkeypatch.setattr(ctypes, "CDLL", lambda name: types.SimpleNamespace())
    process._libc.cache_clear()
    assert process.keep_freed_memory() == "allocator left as it is (no glibc mallopt here)"
    assert process.release_freed_memory() is False


def test_release_freed_memory_trims_with_no_padding(fake_libc):
    assert process.release_freed_memory() is True
    assert fake_libc.calls == [("malloc_trim", 0)]
    fake_libc.result = 0  # nothing could be released
    assert process.release_freed_memory() is False


def test_leaving_without_a_process_group_does_nothing():
    assert not torch.distributed.is_initialized()
    process._leave_process_group()  # no group: no error


# =============================================================== labels: the reports' row names
def test_row_labels_are_the_documented_names_in_report_order():
    """What every table, figure and HTML report prints for each method. Catches: a label
    changed or swapped, the report order changed, `BASELINES[1:]` -> another slice (the random
    mask counted as a classifier baseline, or one lost), AMT missing from the classifier-only
    set, the oracle's label."""
    assert list(labels.BASELINE_LABELS.items()) == [
        ("random", "random mask"),
        ("saliency", "saliency (captum)"),
        ("integrated_gradients", "Integrated Gradients (captum)"),
        ("smoothgrad", "SmoothGrad (captum)"),
        ("occlusion", "occlusion (captum)"),
        ("above_floor", "above the clip's floor (no classifier)"),
    ]
    assert labels.BASELINES == ("random", "saliency", "integrated_gradients", "smoothgrad", "occlusion", "above_floor")
    assert labels.MAP_BASELINES == ("amt",)
    assert labels.CLASSIFIER_BASELINES == ("saliency", "integrated_gradients", "smoothgrad", "occlusion", "above_floor")
    assert labels.CLASSIFIER_ONLY_BASELINES == labels.CLASSIFIER_BASELINES + ("amt",)
    assert labels.ORACLE == "oracle"
    assert labels.REFERENCE_LABELS == {"all_ones": "all ones", "ground_truth": "ground truth"}
    assert labels.METHOD_LABELS == {
        **dict(labels.BASELINE_LABELS), "amt": "AMT (activation map)", "oracle": "best components (oracle)",
    }


# =============================================================== brains: building
class TinyBrain(sb.Brain):
    pass


def tiny_hparams(tmp_path, epochs=1):
    linear = nn.Linear(2, 1)
    return {
        "modules": {"linear": linear},
        "opt_class": functools.partial(torch.optim.SGD, lr=0.5),
        "checkpointer": Checkpointer(tmp_path / "save", {"linear": linear}),
        "epoch_counter": EpochCounter(epochs),
    }


def test_build_brain_for_training_and_for_evaluation(tmp_path):
    """Training: the yaml's optimiser and checkpointer, a killed run's incomplete checkpoint
    moved aside; evaluation: neither, and no epoch check. Catches: `opt_class` / `checkpointer`
    passed (or withheld) the wrong way round, the quarantine call dropped."""
    hparams = tiny_hparams(tmp_path)
    incomplete = tmp_path / "save" / "CKPT+2026-01-01+00-00-00+00"
    incomplete.mkdir(parents=True)
    (incomplete / "CKPT.yaml").write_text("end-of-epoch: true\n")
    brain = brains.build_brain(TinyBrain, hparams, {"device": "cpu"})
    assert brain.opt_class is hparams["opt_class"] and brain.checkpointer is hparams["checkpointer"]
    assert not incomplete.exists() and (tmp_path / "save" / f"incomplete-{incomplete.name}").is_dir()
    evaluation = brains.build_brain(TinyBrain, tiny_hparams(tmp_path / "e", epochs=0), {"device": "cpu"}, train=False)
    assert evaluation.opt_class is None and evaluation.checkpointer is None
    assert evaluation.modules.linear is not None


@pytest.mark.parametrize("epochs", [0, -1])
def test_build_brain_refuses_a_training_run_of_no_epoch(tmp_path, epochs):
    """Catches: `limit < 1` -> `< 0` / `<= 1` (1 epoch refused: see the test above)."""
    with pytest.raises(ValueError, match=rf"^--number_of_epochs {epochs}: a training run needs at least 1 epoch"):
        brains.build_brain(TinyBrain, tiny_hparams(tmp_path, epochs), {"device": "cpu"})


def test_check_device_names_what_torch_cannot_run(monkeypatch):
    """Catches: `index >= count` -> `>` (cuda:2 on 2 GPUs accepted), the no-GPU check
    dropped, the messages changed."""
    assert brains.check_device("cpu") == "cpu"
    with pytest.raises(ValueError, match=r"^--device gpu0 is not a device torch knows"):
        brains.check_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"^--eval_device cuda: torch sees no GPU on this machine; give --eval_device cpu"):
        brains.check_device("cuda", flag="--eval_device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert brains.check_device("cuda:1") == "cuda:1" and brains.check_device("cuda") == "cuda"
    with pytest.raises(ValueError, match=r"^--device cuda:2: this machine has 2 GPU\(s\), cuda:0 to cuda:1\.$"):
        brains.check_device("cuda:2")


class DDPBrain(brains.CPUFriendlyDDP, sb.Brain):
    pass


def ddp_brain(distributed, opt_class):
    """A DDPBrain without its __init__: a trainable and a frozen module on the CPU."""
    brain = object.__new__(DDPBrain)
    brain.modules = nn.ModuleDict({"trained": nn.Linear(2, 2), "frozen": brains.freeze(nn.Linear(2, 2))})
    brain.distributed_launch, brain.data_parallel_backend = distributed, False
    brain.opt_class, brain.device, brain.find_unused_parameters = opt_class, "cpu", False
    return brain


def test_on_cpu_only_modules_with_trainable_weights_are_wrapped_in_ddp(tmp_path):
    """One-process gloo group. Catches: `any(p.requires_grad ...)` dropped (DDP refuses a
    module with nothing to train), the evaluation-only early return dropped, the CPU branch
    sent to SpeechBrain's (SyncBatchNorm) path."""
    from torch.nn.parallel import DistributedDataParallel

    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        brain = ddp_brain(True, torch.optim.SGD)
        brain._wrap_distributed()
        assert isinstance(brain.modules["trained"], DistributedDataParallel)
        assert type(brain.modules["frozen"]) is nn.Linear
        evaluation = ddp_brain(True, None)
        evaluation._wrap_distributed()
        assert all(type(m) is nn.Linear for m in evaluation.modules.values())
    finally:
        torch.distributed.destroy_process_group()
    alone = ddp_brain(False, torch.optim.SGD)
    alone._wrap_distributed()
    assert all(type(m) is nn.Linear for m in alone.modules.values())


# ---------------------------------------------------------------- brains: freezing
def test_freeze_is_eval_mode_and_no_gradient_while_the_input_still_gets_one():
    """A frozen BatchNorm block: eval mode in every submodule (running statistics unchanged by
    a forward), no parameter gets a gradient, the input does (gradients flow through, not into,
    the frozen model). Catches: `module.eval()` dropped, `requires_grad_(False)` dropped."""
    block = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).train()
    assert brains.freeze(block) is block
    assert not any(m.training for m in block.modules())
    mean = block[1].running_mean.clone()
    x = torch.randn(5, 3, requires_grad=True)
    block(x).pow(2).sum().backward()
    assert torch.equal(block[1].running_mean, mean)
    assert all(not p.requires_grad and p.grad is None for p in block.parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0


def conv_bn_by_hand(conv, bn, x):
    """BN(conv(x)) in eval mode, numpy loops from the definitions."""
    w, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    xs = x.numpy()
    batch, _, height, width = xs.shape
    out_c, _, kh, kw = w.shape
    y = np.zeros((batch, out_c, height - kh + 1, width - kw + 1))
    for o in range(out_c):
        for i in range(height - kh + 1):
            for j in range(width - kw + 1):
                y[:, o, i, j] = (xs[:, :, i : i + kh, j : j + kw] * w[o]).sum(axis=(1, 2, 3)) + b[o]
    mean, var = bn.running_mean.numpy(), bn.running_var.numpy()
    gamma, beta = bn.weight.detach().numpy(), bn.bias.detach().numpy()
    return (y - mean[:, None, None]) / np.sqrt(var[:, None, None] + bn.eps) * gamma[:, None, None] + beta[:, None, None]


def test_fused_for_inference_is_the_folded_batchnorm_frozen_and_leaves_the_original():
    """The fused copy computes BN(conv(x)) with BN's running statistics (numpy, by hand), has
    no BatchNorm left, trains nothing, lies channels-last on CPU; the original keeps its
    modules, mode and gradients. Catches: `freeze(fused)` dropped, freezing the original
    instead, the channels-last conversion dropped."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    with torch.no_grad():
        net[1].running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        net[1].running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
        net[1].weight.copy_(torch.tensor([1.5, -2.0, 0.5]))
        net[1].bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    net.eval()
    fused = brains.fused_for_inference(net)
    x = torch.randn(2, 2, 6, 5)
    np.testing.assert_allclose(fused(x).detach().numpy(), conv_bn_by_hand(net[0], net[1], x), atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert not any(p.requires_grad for p in fused.parameters()) and not fused.training
    assert fused.get_parameter("0.weight").is_contiguous(memory_format=torch.channels_last)
    assert isinstance(net[1], nn.BatchNorm2d) and all(p.requires_grad for p in net.parameters())


class BranchesOnShape(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, x):
        return self.linear(x) if x.shape[0] > 1 else x


def test_an_untraceable_module_is_returned_as_it_is():
    module = BranchesOnShape()
    assert brains.fused_for_inference(module) is module
    assert module.training and all(p.requires_grad for p in module.parameters())


# ---------------------------------------------------------------- brains: loading
def test_load_state_dict_file_names_each_problem(tmp_path):
    """Catches: the missing-file, unreadable-file and not-a-dict checks dropped or their
    messages changed, `weights_only` or `map_location` dropped (see test_safe_loading)."""
    missing = tmp_path / "none.ckpt"
    with pytest.raises(FileNotFoundError, match=rf"^classifier checkpoint not found: {missing}\. Train it first"):
        brains.load_state_dict_file(missing, "classifier")
    torch.save({"w": torch.arange(4.0)}, tmp_path / "good.ckpt")
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes((tmp_path / "good.ckpt").read_bytes()[:40])
    with pytest.raises(ValueError, match=rf"^classifier checkpoint {truncated} cannot be read: it is truncated"):
        brains.load_state_dict_file(truncated, "classifier")
    torch.save(torch.zeros(2), tmp_path / "tensor.ckpt")
    with pytest.raises(ValueError, match=r"is not a state dict \(it holds a Tensor\)"):
        brains.load_state_dict_file(tmp_path / "tensor.ckpt", "classifier")
    assert torch.equal(brains.load_state_dict_file(tmp_path / "good.ckpt", "x")["w"], torch.arange(4.0))


def test_load_state_dict_strict_loads_the_weights_or_names_the_file(tmp_path):
    """Catches: `strict=True` -> False (an extra or missing key loaded silently)."""
    source = nn.Linear(3, 2)
    torch.save(source.state_dict(), tmp_path / "w.ckpt")
    target = nn.Linear(3, 2)
    assert brains.load_state_dict_strict(target, tmp_path / "w.ckpt", "psi") is target
    assert torch.equal(target.weight, source.weight) and torch.equal(target.bias, source.bias)
    torch.save({**source.state_dict(), "extra": torch.zeros(1)}, tmp_path / "extra.ckpt")
    with pytest.raises(ValueError, match=rf"^psi at {tmp_path / 'extra.ckpt'} does not fit the module"):
        brains.load_state_dict_strict(nn.Linear(3, 2), tmp_path / "extra.ckpt", "psi")
    with pytest.raises(ValueError, match="does not fit the module"):
        brains.load_state_dict_strict(nn.Linear(4, 2), tmp_path / "w.ckpt", "psi")


def test_a_missing_local_pretrained_file_is_named_and_hub_ids_are_told_apart(tmp_path):
    """Catches: `_hub_id`'s three-part or local-prefix test changed (a missing local path sent
    to the hub, or a hub id refused as missing)."""
    from speechbrain.utils.parameter_transfer import Pretrainer

    path = str(tmp_path / "classifier.ckpt")
    pretrainer = Pretrainer(tmp_path / "collect", {"classifier": nn.Linear(2, 2)}, {"classifier": path})
    with pytest.raises(FileNotFoundError, match=rf"^Pretrained classifier file\(s\) not found \(classifier: {path}\)"):
        brains.load_pretrained(pretrainer, {"classifier": path})
    assert brains._hub_id("owner/repo/classifier.ckpt")
    for local in ("repo/classifier.ckpt", "./a/b", "/a/b", "~/a/b", "a/b/c/d", str(tmp_path / "classifier.ckpt")):
        assert not brains._hub_id(local), local
    (tmp_path / "o" / "r").mkdir(parents=True)
    (tmp_path / "o" / "r" / "f.ckpt").write_bytes(b"")
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert not brains._hub_id("o/r/f.ckpt")  # an existing relative file is local
        assert not brains._hub_id("o/untrained/f.ckpt")  # its first folder is here: local
        assert brains._hub_id("owner/r/f.ckpt")
    finally:
        os.chdir(cwd)


class HasBackbone(nn.Module):
    def load_pretrained_backbone(self, source):
        self.source = source


def test_pretrained_backbone_only_for_models_that_have_one():
    with pytest.raises(ValueError, match=r"^--pretrained_backbone x/y: the yaml's embedding model \(Linear\) has no"):
        brains.load_pretrained_backbone(nn.Linear(1, 1), "x/y")
    model = HasBackbone()
    from pathlib import Path

    assert brains.load_pretrained_backbone(model, Path("/models/vit")) is model
    assert model.source == "/models/vit"


# =============================================================== layers: the decoders' last layer
def conv_transpose_by_hand(x, weight, bias, padding):
    """conv_transpose2d, stride 1, one output channel, from its definition (numpy loops):
    y[b, h + i - ph, w + j - pw] += sum_c x[b, c, h, w] W[c, 0, i, j], cropped to the output."""
    batch, channels, height, width = x.shape
    _, _, kh, kw = weight.shape
    ph, pw = padding
    full = np.zeros((batch, height + kh - 1, width + kw - 1))
    for i in range(kh):
        for j in range(kw):
            full[:, i : i + height, j : j + width] += np.einsum("bchw,c->bhw", x, weight[:, 0, i, j])
    out = full[:, ph : full.shape[1] - ph, pw : full.shape[2] - pw]
    return (out + (0.0 if bias is None else bias[0]))[:, None]


def conv_transpose_grads_by_hand(x, weight, grad, padding):
    """The input, weight and bias gradients of `conv_transpose_by_hand` for an upstream
    gradient `grad` (B, 1, H', W'): each output position [h + i, w + j] of the uncropped map got
    x[b, c, h, w] W[c, i, j]; the cropped border gets no gradient."""
    batch, channels, height, width = x.shape
    _, _, kh, kw = weight.shape
    ph, pw = padding
    full = np.pad(grad[:, 0], ((0, 0), (ph, ph), (pw, pw)))
    grad_x, grad_w = np.zeros_like(x), np.zeros_like(weight)
    for i in range(kh):
        for j in range(kw):
            window = full[:, i : i + height, j : j + width]  # (B, H, W)
            grad_x += np.einsum("bhw,c->bchw", window, weight[:, 0, i, j])
            grad_w[:, 0, i, j] = np.einsum("bchw,bhw->c", x, window)
    return grad_x, grad_w, grad.sum(axis=(0, 2, 3))


@pytest.mark.parametrize(("kernel", "padding"), [((4, 3), (1, 0)), ((3, 5), (0, 2)), ((5, 5), (2, 1))])
def test_kernel_rows_conv_transpose_is_the_definition(kernel, padding):
    """Shape (H + kh - 1 - 2 ph, W + kw - 1 - 2 pw) and values. Catches: the row offset of
    the sum, the crop taking ph for pw (or the same on both sides of a non-square kernel),
    the reshape of the kernel into (C, kh, 1, kw)."""
    rng = np.random.default_rng(1)
    x, weight = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((3, 1, *kernel))
    out = kernel_rows_conv_transpose(torch.from_numpy(x), torch.from_numpy(weight), padding)
    expected = conv_transpose_by_hand(x, weight, None, padding)
    assert out.shape == (2, 1, 6 + kernel[0] - 1 - 2 * padding[0], 7 + kernel[1] - 1 - 2 * padding[1])
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(("kernel", "padding", "bias"), [((4, 3), (1, 0), True), ((3, 5), (0, 2), False)])
def test_single_channel_layer_forward_and_gradients_are_the_definitions(kernel, padding, bias):
    """The layer (its own weights, float64) against the numpy definition: output, and the
    gradients of x, weight and bias for a non-uniform upstream gradient. Catches: the bias
    added with another shape or not at all, the backward's padding (pw, pw, ph, ph) swapped,
    the row slices of the gradient, the bias gradient's sum axes, `needs_input_grad` indices."""
    torch.manual_seed(3)
    layer = SingleChannelConvTranspose2d(3, 1, kernel, 1, padding, bias=bias).double()
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    assert layer.uses_kernel_rows(x)
    out = layer(x)
    weight = layer.weight.detach().numpy()
    b = layer.bias.detach().numpy() if bias else None
    np.testing.assert_allclose(out.detach().numpy(), conv_transpose_by_hand(x.detach().numpy(), weight, b, padding), atol=1e-12)
    upstream = torch.linspace(-1.0, 2.0, out.numel(), dtype=torch.float64).reshape(out.shape) ** 2
    (out * upstream).sum().backward()
    grad_x, grad_w, grad_b = conv_transpose_grads_by_hand(x.detach().numpy(), weight, upstream.numpy(), padding)
    np.testing.assert_allclose(x.grad.numpy(), grad_x, atol=1e-10)
    np.testing.assert_allclose(layer.weight.grad.numpy(), grad_w, atol=1e-10)
    if bias:
        np.testing.assert_allclose(layer.bias.grad.numpy(), grad_b, atol=1e-10)


def test_a_frozen_layer_passes_gradients_to_its_input_only():
    """Weights and bias frozen (as in a frozen decoder): the input still gets the gradient of
    the definition, the parameters none."""
    torch.manual_seed(4)
    layer = brains.freeze(SingleChannelConvTranspose2d(2, 1, (3, 4), 1, (1, 1)).double())
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    layer(x).sum().backward()
    grad_x, _, _ = conv_transpose_grads_by_hand(
        x.detach().numpy(), layer.weight.numpy(), np.ones((1, 1, 4, 6)), (1, 1)
    )
    np.testing.assert_allclose(x.grad.numpy(), grad_x, atol=1e-10)
    assert layer.weight.grad is None and layer.bias.grad is None


def test_unbatched_and_non_cpu_inputs_take_the_plain_path():
    """A 3-D (unbatched) input is nn.ConvTranspose2d's; a tensor off the CPU never takes the
    kernel-rows path. Catches: `x.dim() == 4` dropped (unbatched input crashes), the device
    test dropped."""
    torch.manual_seed(5)
    layer = SingleChannelConvTranspose2d(2, 1, 3, 1, 1).double()
    x = torch.randn(2, 4, 5, dtype=torch.float64)
    assert not layer.uses_kernel_rows(x)
    expected = conv_transpose_by_hand(x[None].numpy(), layer.weight.detach().numpy(), layer.bias.detach().numpy(), (1, 1))[0]
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, atol=1e-12)
    assert not layer.uses_kernel_rows(torch.empty(1, 2, 4, 5, device="meta"))


# ---------------------------------------------------------------- layers: the input floor
def lower_median(values):
    """The lower middle value (torch.median's choice for an even count)."""
    return sorted(values)[(len(values) - 1) // 2]


def test_background_floor_is_the_lower_median_of_each_frequency_over_frames():
    """4 frames (even: the lower of the middle two), two clips, hand-picked values. Catches:
    `middle = (n - 1) // 2` -> `n // 2` (the upper median), the frames axis mixed up with the
    frequencies (transpose dropped)."""
    X = torch.tensor(
        [
            [[1.0, 9.0, 0.0], [4.0, 2.0, 0.5], [3.0, 7.0, 0.5], [2.0, 5.0, 8.0]],
            [[0.0, 1.0, 1.0], [0.0, 1.0, 2.0], [6.0, 1.0, 3.0], [5.0, 1.0, 4.0]],
        ]
    )  # (2 clips, 4 frames, 3 frequencies)
    expected = [[[2.0, 5.0, 0.5]], [[0.0, 1.0, 2.0]]]
    assert expected == [[[lower_median(X[b, :, f].tolist()) for f in range(3)]] for b in range(2)]
    assert background_floor(X).tolist() == expected
    assert background_floor(X.double()).tolist() == expected
    half = background_floor(X.half())  # the torch.median path (numpy has no partition for it)
    assert half.tolist() == expected and half.dtype == torch.float16
    assert above_background_floor(X).tolist() == [
        [[0.0, 4.0, 0.0], [2.0, 0.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 7.5]],
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [6.0, 0.0, 1.0], [5.0, 0.0, 2.0]],
    ]


def test_background_floor_gradient_goes_to_the_first_frame_holding_the_floor():
    """Ties (a steady bin) send the whole gradient to the first frame with the floor's value;
    above_background_floor passes gradient only where X rises above the floor. Catches:
    the gather's frame taken by argmax over another axis, the differentiable branch dropped
    (no gradient), `clamp_(min=0)` dropped."""
    X = torch.tensor([[[3.0, 1.0], [1.0, 0.0], [3.0, 2.0], [5.0, 0.0]]], requires_grad=True)  # floors 3, 0
    weights = torch.tensor([[[2.0, 10.0]]])
    (background_floor(X) * weights).sum().backward()
    assert X.grad.tolist() == [[[2.0, 0.0], [0.0, 10.0], [0.0, 0.0], [0.0, 0.0]]]
    X.grad = None
    above_background_floor(X).sum().backward()
    # d/dX of clamp(X - floor, min=0): 1 where X >= floor (clamp passes its bound), 0 below
    # (frame 1 of the first bin); the floor's own frame then gets 1 minus that count
    assert X.grad.tolist() == [[[1.0 - 3.0, 1.0], [0.0, 1.0 - 4.0], [1.0, 1.0], [1.0, 1.0]]]


def test_floor_arithmetic_matches_a_numpy_reference_on_random_clips():
    """Odd and even frame counts, float32, against numpy's sort (independent of partition)."""
    rng = np.random.default_rng(2)
    for frames in (7, 10):
        x = rng.standard_normal((3, frames, 5)).astype(np.float32)
        floor = np.sort(x, axis=1)[:, (frames - 1) // 2][:, None]
        np.testing.assert_array_equal(background_floor(torch.from_numpy(x)).numpy(), floor)
        np.testing.assert_array_equal(above_background_floor(torch.from_numpy(x)).numpy(), np.maximum(x - floor, 0))
    assert math.isclose(float(background_floor(torch.tensor([[[1.0], [2.0]]]))), 1.0)
