"""Tests added by the second mutation audit of the speed and evidence benchmarks (bench/):
each one fails under a small, plausible change of the code that test_bench_audit.py,
test_evidence_audit.py and the modules' doctests let through (named in each docstring,
"Catches: ..."), and its expected value is worked out by hand, not read from the code under
test.

Survivor left: run_all.py:158 `SETTINGS.setdefault(column, ...)` -> `SETTINGS[column] = ...`
(the settings line of a column from its last train run instead of its first) is a choice the
code does not document, not a wrong figure: no test pins it.

No training, no recipe run: the Brains are hand-made modules, subprocess.run, the workspace and
the checkpoint writer are replaced by recorders, the long "wav" is a sparse file.
"""

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from test_bench_audit import BENCH, Clock, FakeBrain, _cells, _datasets, _patch_workspace, _probe
from test_evidence_audit import _interpreter, _write_dataset

from bench import evidence
from models.layers import SingleChannelConvTranspose2d

sys.path.insert(0, str(BENCH))  # run_all.py and measure.py `import bench_common`

import bench_common  # noqa: E402
import long_file_memory  # noqa: E402
import measure  # noqa: E402
import run_all  # noqa: E402


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(bench_common.time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(bench_common.time, "process_time", clock.process_time)
    return clock


# ------------------------------------------------------------------------ bench_common


def test_settings_on_last_layer_and_allocator_default(monkeypatch):
    """Guards bench_common.py:171 (`m.out_channels == 1`) and :164 (the default "1" of
    KEEP_FREED_MEMORY). psi: a 4 -> 4 ConvTranspose2d inside, a SingleChannelConvTranspose2d
    last: the last one-channel layer is SingleChannelConvTranspose2d alone. With the variable
    unset the recipes keep freed memory (recipes/core/process.py reads it with default "1").
    Catches: `== 1` -> `>= 1` (the 4-channel layer listed as a last layer), the default
    "1" -> "0" (an unset variable reported as glibc defaults)."""
    monkeypatch.setenv("KEEP_FREED_MEMORY", "1")
    monkeypatch.delenv("KEEP_FREED_MEMORY")  # unset, restored afterwards
    psi = torch.nn.Sequential(torch.nn.ConvTranspose2d(4, 4, 3), SingleChannelConvTranspose2d(4, 1, 3))
    brain = types.SimpleNamespace(
        modules=torch.nn.ModuleDict({"psi": psi}), classifier_modules=torch.nn.ModuleDict()
    )
    assert bench_common.settings_on(brain)[:2] == [
        "allocator: keeps freed memory",
        "last layer: SingleChannelConvTranspose2d",
    ]


def test_peak_rss_in_mib_and_one_minute_load(monkeypatch):
    """Guards bench_common.py:206 and :211. Linux's ru_maxrss is in KiB: 3145728 KiB = 3072
    MiB; getloadavg() is (1, 5, 15 minutes): the first. Catches: / 1000 (3145.7), the 5- or
    15-minute average."""
    monkeypatch.setattr(
        bench_common.resource, "getrusage", lambda who: types.SimpleNamespace(ru_maxrss=3145728)
    )
    monkeypatch.setattr(bench_common.os, "getloadavg", lambda: (1.25, 2.5, 3.75))
    assert bench_common.peak_rss_mb() == 3072.0
    assert bench_common.load_average() == 1.25


def test_stand_in_checkpoints_sizes(tmp_path, monkeypatch):
    """Guards bench_common.py:362 and :333: the modules saved are built at the sizes measured.
    The L2I stand-ins (classifier + NMF dictionary) at "full": emb_dim 256, K 100 (L2I's K, not
    PIQ's 1024: the recipe loads the dictionary with --K 100); the AST at "cpu": the demo's
    sizes (64 wide, 2 layers), at "full": no override (the yaml's reference AST). Catches: K
    of PIQ, the AST always at the "cpu" sizes."""
    saved = []

    def save(yaml_path, root, files, overrides):
        saved.append((Path(yaml_path).name, sorted(files), dict(overrides)))
        return files

    monkeypatch.setattr(bench_common, "_save_modules", save)
    bench_common.save_stand_in_checkpoints(tmp_path, "full")
    bench_common.save_transformer_checkpoints(tmp_path, "lmac_ast", "full")
    bench_common.save_transformer_checkpoints(tmp_path, "lmac_ast", "cpu")
    assert saved[0] == (
        "l2i_conv2d.yaml", ["classifier", "embedding_model", "nmf_decoder"], {"emb_dim": 256, "K": 100}
    )
    assert saved[1] == ("classifier_ast.yaml", ["classifier", "embedding_model"], {})
    assert saved[2][2]["hidden_size"] == 64 and saved[2][2]["num_hidden_layers"] == 2


def test_recipe_argv_ast_sizes(tmp_path, monkeypatch):
    """Guards bench_common.py:371: the AST run gets the sizes its checkpoint was saved at
    (--hidden_size 64 ... --max_length 431 at "cpu"; none at "full"), and the AST's own
    checkpoint files. Catches: the AST sizes left off the command line (the recipe would
    build the yaml's 768-wide AST and fail to load the 64-wide checkpoint)."""
    files = {"embedding_model": tmp_path / "e.ckpt", "classifier": tmp_path / "c.ckpt"}
    monkeypatch.setattr(bench_common, "save_transformer_checkpoints", lambda root, method, size: files)
    workspace = {
        "root": tmp_path,
        "data_folder": tmp_path / "data",
        "manifests": {split: tmp_path / f"{split}.json" for split in ("train", "valid", "test")},
    }
    argv = bench_common.recipe_argv("lmac_ast", workspace, "cpu")

    def value(flag):
        return argv[argv.index(flag) + 1]

    assert [value(f) for f in ("--hidden_size", "--num_hidden_layers", "--num_attention_heads")] == ["64", "2", "4"]
    assert (value("--intermediate_size"), value("--max_length")) == ("128", "431")
    assert value("--embedding_model_path") == str(tmp_path / "e.ckpt")
    assert "--emb_dim" not in argv and "--nmf_decoder_path" not in argv
    assert "--hidden_size" not in bench_common.recipe_argv("lmac_ast", workspace, "full")


# ------------------------------------------------------------------------------ measure


def test_measure_explain_full_size_times_the_classifier_three_times(tmp_path, monkeypatch, clock):
    """Guards measure.py:209: at --size full the classifier is timed 3 times (after 2 warm-up
    calls), not 3 x runs (the reference AST is slow). Call order, batch 1: first call, 3 timed
    (no warm-up at full size), 3 for the ConvTranspose2d share; classifier 2 + 3 calls of 4, 8,
    6 ms: median 6, min 4. Catches: 3 x runs at full size (9 timed calls: the hand-made Brain
    runs out of durations)."""
    brain = FakeBrain(clock, [2.0, 0.9, 0.7, 0.8, 0.1, 0.1, 0.1], [0.1, 0.1, 0.004, 0.008, 0.006])
    _patch_workspace(monkeypatch, brain, _datasets(20, 4))
    result = measure.measure_explain("piq", tmp_path, size="full", batches=[1], runs=7)
    assert brain.explain_s == [] and brain.classify_s == []
    assert result["explain"]["1"]["runs"] == 3
    assert result["explain"]["1"]["median_ms_per_clip"] == pytest.approx(800.0)
    assert result["classifier_ms"] == {"median": pytest.approx(6.0), "min": pytest.approx(4.0)}


def test_measure_reports_every_option_applied(tmp_path, monkeypatch, clock):
    """Guards measure.py:114 and :168 (`applied += ...`): the options reported are the process
    option (glibc_malloc, set before the Brain is built) and the model options. Catches:
    `+=` -> `=` in measure_train or in measure_explain (glibc_malloc left out of the result,
    which then reads as the recipe's own allocator)."""
    monkeypatch.setenv("KEEP_FREED_MEMORY", "1")  # restored after the test
    monkeypatch.setattr(bench_common, "apply_model_options", lambda brain, options: ["contiguous"])
    options = ["glibc_malloc", "contiguous"]
    brain = FakeBrain(clock, [0.5, 0.2, 0.2, 0.03, 0.01, 0.08, 0.1, 0.1, 0.1], [0.1, 0.1] + [0.005] * 9)
    _patch_workspace(monkeypatch, brain, _datasets(20, 4))
    result = measure.measure_explain("l2i", tmp_path, batches=[1], runs=3, options=options)
    assert result["options"] == ["glibc_malloc", "contiguous"]
    assert os.environ["KEEP_FREED_MEMORY"] == "0"

    brain = types.SimpleNamespace(
        stage_seconds={"train": [{"wall": 6.0, "cpu": 6.0}], "valid": [{"wall": 1.0, "cpu": 1.0}]}
    )
    _patch_workspace(monkeypatch, brain, {"train": [0] * 60, "valid": [0] * 10})
    monkeypatch.setattr("recipes.interpreters.training.fit_interpreter", lambda *args: None)
    result = measure.measure_train("l2i", tmp_path, options=options)
    assert result["options"] == ["glibc_malloc", "contiguous"]
    assert result["train_clips_per_s"] == 10.0  # 60 clips / 6 s


# ------------------------------------------------------------------------------ run_all


def test_print_table_widens_the_method_column_for_lmac_ast(capsys):
    """Guards run_all.py:277: the method column is as wide as the longest name (LMAC_AST: 8),
    every line as long as the header, the cells where the header puts them. Catches: a fixed
    width 6 (LMAC_AST's rows two characters longer, every cell shifted)."""
    run_all.print_table({"ours": {("LMAC_AST", "train clips/s"): (3.5, 512.0, None)}})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("method   figure")  # "method" padded to 8
    assert len({len(line) for line in lines}) == 1
    line = lines[2]
    assert line[:8] == "LMAC_AST" and line[9:].startswith("train clips/s")
    assert _cells(line[2:], 1)[4:] == ["3.5", "", "512"]  # the 6-wide parser, 2 characters on


@pytest.fixture
def quiet_main(monkeypatch):
    """run_all.main with the workspace, the idle check and the measurements replaced."""
    prepared = []
    monkeypatch.setattr(bench_common, "prepare_workspace", lambda root: prepared.append(root))
    monkeypatch.setattr(bench_common, "cpu_idle_fraction", lambda seconds: 0.8)
    monkeypatch.setattr(run_all, "IDLE_BEFORE", [])
    monkeypatch.setattr(run_all, "SETTINGS", {})
    monkeypatch.setattr(
        run_all, "measure_all", lambda args, workspace, folder, options, column: {("L2I", "train clips/s"): (4.0, 800.0, None)}
    )
    return prepared


def test_main_notes_lmac_ast_among_other_methods(tmp_path, quiet_main, capsys):
    """Guards run_all.py:332 (`any(...)`): with --methods l2i,lmac_ast the AST's sizes are
    printed (AST hidden_size 64, ...); with l2i alone they are not. Catches: `any` -> `all`
    (the note only when every method is on the AST)."""
    run_all.main(["--workspace", str(tmp_path), "--methods", "l2i,lmac_ast"])
    out = capsys.readouterr().out
    assert "LMAC_AST: L-MAC (hparams/lmac_ast.yaml) on the AST, AST hidden_size 64, num_hidden_layers 2" in out
    run_all.main(["--workspace", str(tmp_path), "--methods", "l2i"])
    assert "LMAC_AST" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [(["--options", "plain_final,bogus"], "unknown --options"), (["--methods", "l2i,bogus"], "unknown 'bogus'")],
)
def test_main_refuses_a_bad_name_before_any_work(tmp_path, quiet_main, argv, message):
    """Guards run_all.py:309 and :310: an unknown --options or --methods name fails at once,
    before the workspace is prepared (minutes of data and checkpoints). Catches: either check
    dropped (--options: no error at all, a column measured with a name measure.py refuses;
    --methods: the error only after the workspace is built)."""
    with pytest.raises(ValueError, match=message):
        run_all.main(["--workspace", str(tmp_path), *argv])
    assert quiet_main == []


def test_progress_line_idle_share_in_percent(capsys):
    """Guards run_all.py:241: an idle share 0.93 before a run of 42.4 s, load 1.26 at its
    end: "done in 42 s (CPUs 93% idle before, load average 1.3 at end)". Catches: the share
    printed without x 100 ("1% idle")."""
    run_all._progress("train L2I", {"wall_s": 42.4, "idle_before": 0.93, "load_average": 1.26})
    assert capsys.readouterr().err == (
        "  train L2I: done in 42 s (CPUs 93% idle before, load average 1.3 at end)\n"
    )


# ---------------------------------------------------------------------- long_file_memory


def test_long_file_size_in_mib_and_no_classifier_flag_without_one(tmp_path, monkeypatch, capsys):
    """Guards long_file_memory.py:121 and :126. The file is replaced by a sparse one of exactly
    100 MiB (104857600 B: 105 MB if divided by 1e6); with --run and no --classifier_folder,
    eval.py gets no --classifier_folder (it would read the string "None"). Catches: / 1e6,
    `if classifier:` dropped."""

    def sparse(path, minutes, piece_s=60):
        with open(path, "wb") as fout:
            fout.truncate(100 * 2**20)
        return path

    monkeypatch.setattr(long_file_memory, "write_long_file", sparse)
    fake, calls = _probe("PEAK_RSS_KB 1048576 STATUS 0\n")
    monkeypatch.setattr(subprocess, "run", fake)
    long_file_memory.main(["--minutes", "5", "--run", str(tmp_path / "run"), "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "5 min of 48 kHz stereo (100 MiB on disk)" in out
    assert "peak RSS 1.00 GiB = 1.07 GB" in out  # 1048576 KiB = 2**30 B
    assert "--classifier_folder" not in calls[0]


def test_train_tiny_piq_commands(tmp_path, monkeypatch):
    """Guards long_file_memory.py:75-92 (`train_tiny_piq`): the data set of 3 classes x 5
    clips of --window_s, then the classifier (emb_dim 8) and PIQ (K 30) on it, PIQ given that
    classifier's folder. Catches: PIQ's --classifier_folder dropped (it would look for a
    classifier elsewhere), the window not passed on."""
    commands = []
    monkeypatch.setattr(
        subprocess, "run", lambda command, **kwargs: commands.append([str(c) for c in command])
    )
    run, classifier = long_file_memory.train_tiny_piq(tmp_path, 2.5)
    assert (run, classifier) == (tmp_path / "piq", tmp_path / "classifier")
    data, train_classifier, train_piq = commands
    assert data[-2:] == [str(tmp_path / "data"), "2.5"]
    assert train_classifier[1].endswith("train_classifier.py")
    assert train_classifier[train_classifier.index("--emb_dim") + 1] == "8"
    assert train_classifier[train_classifier.index("--output_folder") + 1] == str(tmp_path / "classifier")
    assert train_piq[1].endswith("train_piq.py") and train_piq[train_piq.index("--K") + 1] == "30"
    assert train_piq[train_piq.index("--classifier_folder") + 1] == str(tmp_path / "classifier")
    assert train_piq[train_piq.index("--signal_length_s") + 1] == "2.5"


# ----------------------------------------------------------------------------- evidence


def test_evidence_main_a_fold_without_clips_is_a_clear_error(tmp_path, monkeypatch):
    """Guards evidence.py:184: the hand-made set of test_evidence_audit has folds 1, 2 and 5;
    --fold 3 stops with a message naming the fold. Catches: the guard dropped (torch.stack of
    no clip: a RuntimeError traceback that does not say which fold was empty)."""
    _write_dataset(tmp_path / "data")
    interpreter = _interpreter("PIQ")
    monkeypatch.setattr(
        evidence, "AudioInterpreter", types.SimpleNamespace(from_hparams=lambda source: interpreter)
    )
    with pytest.raises(SystemExit, match="no clip in fold 3"):
        evidence.main(["--interpreter", str(tmp_path), "--data_folder", str(tmp_path / "data"), "--fold", "3"])
