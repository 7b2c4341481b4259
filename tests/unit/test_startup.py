"""Tests for recipes/core/startup.py and recipes/core/process.py: the allocator setting (keep_freed_memory), leaving torchrun's group, and the command line."""

import os
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT

# Allocates and frees a 64 MB tensor 20 times (glibc's heap takes a few rounds to
# settle), then prints how many fresh zeroed pages the process had to map (minor
# faults) over 20 more allocations of the same size.
_PROBE = textwrap.dedent(
    """
    import resource, sys, torch
    from recipes.core.process import keep_freed_memory
    print(keep_freed_memory())
    for _ in range(20):
        torch.empty(16 * 2**20).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        torch.empty(16 * 2**20).fill_(1.0)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _start_probe(env_value):
    env = {"KEEP_FREED_MEMORY": env_value, "PATH": "/usr/bin:/bin"}
    return subprocess.Popen(
        [sys.executable, "-c", _PROBE],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(probe):
    stdout, stderr = probe.communicate(timeout=120)
    assert probe.returncode == 0, stderr[-2000:]
    message, faults = stdout.strip().splitlines()[-2:]
    return message, int(faults)


def test_freed_memory_is_reused_and_can_be_turned_off():
    probes = [_start_probe("1"), _start_probe("0")]  # side by side: each counts its own faults
    (message_on, faults_on), (message_off, faults_off) = (_result(probe) for probe in probes)
    assert "keeps freed memory" in message_on
    assert "KEEP_FREED_MEMORY=0" in message_off and "left as it is" in message_off
    # 20 x 64 MB: 16k page faults each without the setting, none once the heap settled
    assert faults_off > 20 * 1000
    assert faults_on < faults_off / 20


# ------------------------------------------------------------------ the command line (issue 24)


def test_a_flag_given_twice_is_refused_naming_it(tmp_path):
    """Was: ruamel's DuplicateKeyError traceback."""
    from recipes.core.startup import prepare_run

    argv = [str(REPO_ROOT / "hparams" / "piq.yaml"), "--lr", "0.1", "--output_folder", str(tmp_path / "run")]
    with pytest.raises(ValueError, match=r"^--lr is given twice \(0.1 and 0.2\): give it once.$"):
        prepare_run(argv + ["--lr=0.2"], prepare=False)
    assert not (tmp_path / "run").exists()  # before any set-up


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("--outputt_folder", "--output_folder"), ("--data", "--data_folder"), ("--devi", "--device")],
)
def test_a_key_the_yaml_does_not_have_is_named_with_the_nearest(tmp_path, typed, meant):
    """Was: hyperpyyaml's KeyError listing every key; and an abbreviation of one of SpeechBrain's
    own flags was taken for it (`--data x` set --data_parallel_backend, `--devi cpu` the device)."""
    from recipes.core.startup import prepare_run

    argv = [str(REPO_ROOT / "hparams" / "piq.yaml"), "--output_folder", str(tmp_path / "run"), typed, "x"]
    with pytest.raises(ValueError, match=rf"^{typed}: .*piq.yaml has no key {typed[2:]}, .* Did you mean {meant}\b"):
        prepare_run(argv, prepare=False)


@pytest.mark.parametrize(("key", "value"), [("number_of_epochs", 1.5), ("batch_size", 8.0), ("K", 2.5)])
def test_a_whole_number_key_refuses_a_fraction(key, value):
    """Was: `--number_of_epochs 1.5` ran 1 epoch."""
    from recipes.core.startup import check_override_types

    with pytest.raises(ValueError, match=rf"--{key} {value}: {key} is a whole number in .*piq.yaml"):
        check_override_types(REPO_ROOT / "hparams" / "piq.yaml", f"{key}: {value}\n")
    # seconds and real-valued keys keep taking fractions
    check_override_types(REPO_ROOT / "hparams" / "piq.yaml", "signal_length_s: 0.5\nlr: 1e-4\nnumber_of_epochs: 2\n")


def test_a_joined_process_group_is_left_at_exit(tmp_path):
    """A process that exits holding a gloo group can abort in teardown (seen as a torchrun
    failure after the work was done): `leave_process_group_at_exit` destroys it while
    Python is alive. A one-process group; a handler registered earlier runs after ours."""
    script = tmp_path / "join.py"
    script.write_text(
        "import atexit, socket\n"
        "import torch.distributed as dist\n"
        "from recipes.core.process import leave_process_group_at_exit\n"
        "atexit.register(lambda: print('still joined' if dist.is_initialized() else 'left'))\n"
        "with socket.socket() as s:\n"
        "    s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]\n"
        "dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)\n"
        "leave_process_group_at_exit()\n"
        "leave_process_group_at_exit()  # a second call is harmless\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["left"]


def test_a_resume_with_another_classifier_or_size_is_refused(tmp_path):
    """Was: a run given another --classifier_folder (or emb_dim) in the folder of an earlier
    run resumed from that run's checkpoints: the old classifier's interpreter went on, with
    the new classifier's name in its logs."""
    from recipes.core.startup import prepare_run

    for name, content in (("first", b"first classifier"), ("second", b"second classifier"), ("copy", b"first classifier")):
        (tmp_path / name).mkdir()
        for file in ("embedding_model.ckpt", "classifier.ckpt"):
            (tmp_path / name / file).write_bytes(content)
    run = tmp_path / "run"
    base = [str(REPO_ROOT / "hparams" / "piq.yaml"), "--output_folder", str(run), "--data_folder", str(tmp_path)]
    argv = base + ["--emb_dim", "8", "--lin_neurons", "8", "--K", "64"]
    prepare_run(argv + ["--classifier_folder", str(tmp_path / "first")], prepare=False)
    # no checkpoint yet: nothing to resume from, any classifier goes
    prepare_run(argv + ["--classifier_folder", str(tmp_path / "second")], prepare=False)
    prepare_run(argv + ["--classifier_folder", str(tmp_path / "first")], prepare=False)
    (run / "save" / "CKPT+2026-12-04+12-00-00+00").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"embedding_model_path = .*first/embedding_model.ckpt; this command gives .*second/"):
        prepare_run(argv + ["--classifier_folder", str(tmp_path / "second")], prepare=False)
    with pytest.raises(ValueError, match=r"emb_dim = 8; this command gives 16.*delete .*save to start"):
        sizes = ["--emb_dim", "16", "--lin_neurons", "8", "--K", "64"]
        prepare_run(base + sizes + ["--classifier_folder", str(tmp_path / "first")], prepare=False)
    # what may change on a resume: epochs, lr; the same classifier's bytes elsewhere
    prepare_run(argv + ["--classifier_folder", str(tmp_path / "copy"), "--lr", "0.5", "--number_of_epochs", "3"], prepare=False)


def test_a_path_that_reads_as_bad_arithmetic_loads_without_a_warning():
    """hyperpyyaml parses every interpolated `!ref` string as arithmetic; `0in` warns there."""
    import warnings

    from recipes.core.startup import load_yaml

    text = "out: runs/seed-0in\nsave: !ref <out>/save\n"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hparams = load_yaml(text)
        other = load_yaml(text.replace("seed-0in", "x/3else"))
    assert hparams["save"] == "runs/seed-0in/save"
    assert other["save"] == "runs/x/3else/save"
    assert [str(w.message) for w in caught] == []


def test_the_resume_checks_run_once_per_start(tmp_path, tiny_synthetic, monkeypatch):
    """prepare_run loads the yaml twice (the second time for the data's class count) and set up
    the experiment each time: the resume checks ran twice, and a resume given another --lr
    warned twice that it is not applied. They run once, in the first pass, with the run's
    files recorded once."""
    from recipes.core import startup

    calls = []
    monkeypatch.setattr(startup, "refuse_changed_resume", lambda hparams: calls.append("refuse") or [])
    monkeypatch.setattr(startup, "record_resume_inputs", lambda hparams: calls.append("record"))
    argv = [str(REPO_ROOT / "hparams" / "piq.yaml"), "--output_folder", str(tmp_path / "run"),
            "--data_folder", str(tiny_synthetic), "--emb_dim", "8", "--lin_neurons", "8", "--K", "30"]  # fmt: skip
    hparams = startup.prepare_run(argv)[0]
    assert hparams["out_n_neurons"] == 3  # the second pass ran: the data's classes
    assert calls == ["refuse", "record"]


def test_the_data_is_prepared_once_per_start(tmp_path, tiny_synthetic, caplog):
    """prepare_data called dataio_prep twice (once to save the label encoder, once for its
    result): each split's long-clip warning and the encoder's Saved / Loaded line came twice.
    Once each now, with the same datasets and encoder; a second start loads the encoder."""
    import logging

    from recipes.core.startup import prepare_data

    hparams = {
        "data_folder": str(tiny_synthetic),
        "audio_data_folder": str(tiny_synthetic / "audio"),
        "save_folder": str(tmp_path / "save"),
        "train_annotation": str(tmp_path / "train.json"),
        "valid_annotation": str(tmp_path / "valid.json"),
        "test_annotation": str(tmp_path / "test.json"),
        "train_fold_nums": [1, 2, 3],
        "valid_fold_nums": [4],
        "test_fold_nums": [5],
        "sample_rate": 16000,
        "signal_length_s": 0.5,  # the clips last 1 s: every split warns
    }
    for start, encoder_line in ((1, "Saved the label encoder"), (2, "Loaded the label encoder")):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="data_prep.esc50_prepare"):
            datasets, label_encoder = prepare_data(hparams)
        messages = [record.getMessage() for record in caplog.records]
        long_clips = [m for m in messages if "last longer than signal_length_s" in m]
        assert [m.split(" clips")[0] for m in long_clips] == ["9 of the 9 train", "3 of the 3 valid", "3 of the 3 test"], start
        assert sum("label encoder" in m for m in messages) == 1, (start, messages)
        assert any(m.startswith(encoder_line) for m in messages), (start, messages)
        assert {split: len(datasets[split]) for split in datasets} == {"train": 9, "valid": 3, "test": 3}
        assert [label_encoder.ind2lab[i] for i in range(3)] == ["steady_tone", "harmonic_stack", "up_chirp"]


# ------------------------------------------------------------------ process.code_version (mutation audit)


def test_repo_root_is_the_checkout_that_holds_recipes():
    """Catches a `dirname` too few or too many in process.REPO_ROOT: code_version() reads the
    commit of that folder, so recipes/ (not a checkout's top) would write no code version."""
    from recipes.core import process

    assert os.path.realpath(process.REPO_ROOT) == os.path.realpath(REPO_ROOT)


def test_a_repository_without_a_commit_has_no_code_version(tmp_path):
    """Catches the `commit is None` test dropped: `git init` without a commit has a top folder
    but no HEAD; its code version is None, not {"commit": None, ...}."""
    from recipes.core import process

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert process.code_version(str(tmp_path)) is None


def test_code_version_is_none_without_git_or_when_git_hangs(tmp_path, monkeypatch):
    """Catches OSError or SubprocessError left out of code_version's `except` (the docstring:
    None where git is missing): no git on PATH (FileNotFoundError), and git past its timeout
    (subprocess.TimeoutExpired), give None instead of stopping the evaluation."""
    from recipes.core import process

    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "one"], check=True)  # fmt: skip
    assert process.code_version(str(repo))["local_changes"] is False  # with git: a version
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # an empty folder: no git
    assert process.code_version(str(repo)) is None
    monkeypatch.undo()

    def hanging_git(args, **kwargs):
        raise subprocess.TimeoutExpired(args, kwargs.get("timeout"))

    monkeypatch.setattr(subprocess, "run", hanging_git)
    assert process.code_version(str(repo)) is None
