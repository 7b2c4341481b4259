"""Faults of a run (issue "Nothing lost"): torn checkpoints, busy folders, bad epochs,
truncated or foreign checkpoints, overrides of the wrong type, folders that cannot be written.

Each test is one row of the issue's table, run through the real recipes on the tiny set.
"""

import logging
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch
from conftest import HPARAMS, REPO_ROOT, piq_argv, with_flag

from recipes import eval as eval_recipe
from recipes import train_piq
from recipes.core.run_guard import LOCK_FILE, QUARANTINE_PREFIX, lock_output_folder


def _checkpoints(save_folder, prefix="CKPT+"):
    return sorted(p for p in save_folder.iterdir() if p.is_dir() and p.name.startswith(prefix))


def _epochs_logged(folder):
    lines = (folder / "train_log.txt").read_text().splitlines()
    return [int(line.split(",")[0].split(":")[1]) for line in lines if line.startswith("epoch:")]


def test_a_kill_during_the_checkpoint_write_resumes_from_the_previous_one(tiny_pretrained, tmp_path):
    folder = tmp_path / "piq"
    argv = piq_argv(tiny_pretrained) + ["--output_folder", str(folder)]
    train_piq.main(argv)  # epoch 1, one complete checkpoint
    (complete,) = _checkpoints(folder / "save")
    later = time.time() + 1000  # newer than the complete one: what recovery would pick
    # What kills leave behind: CKPT.yaml written, the parameter files not (yet) ...
    no_files = folder / "save" / "CKPT+2099-01-01+00-00-00+00"
    no_files.mkdir()
    (no_files / "CKPT.yaml").write_text(f"end-of-epoch: true\nfid_in: 1.0\nepoch: 2\nunixtime: {later}\n")
    # ... an empty CKPT.yaml ...
    empty = folder / "save" / "CKPT+2099-01-01+00-00-01+00"
    empty.mkdir()
    (empty / "CKPT.yaml").write_text("")
    # ... and a parameter file cut short
    truncated = folder / "save" / "CKPT+2099-01-01+00-00-02+00"
    shutil.copytree(complete, truncated)
    (truncated / "CKPT.yaml").write_text(f"end-of-epoch: true\nfid_in: 1.0\nepoch: 2\nunixtime: {later + 1}\n")
    psi = truncated / "psi_model.ckpt"
    psi.write_bytes(psi.read_bytes()[: psi.stat().st_size // 2])
    # ... and the files the Brain registers itself, written last: the optimizer cut, or not there
    torn = []
    for n, cut in enumerate((lambda data: data[:1], lambda data: data[: len(data) // 2], None)):
        folder_n = folder / "save" / f"CKPT+2099-01-01+00-00-{3 + n:02d}+00"
        shutil.copytree(complete, folder_n)
        (folder_n / "CKPT.yaml").write_text(
            f"end-of-epoch: true\nfid_in: 1.0\nepoch: 2\nunixtime: {later + 2 + n}\n"
        )
        optimizer = folder_n / "optimizer.ckpt"
        if cut is None:
            optimizer.unlink()
        else:
            optimizer.write_bytes(cut(optimizer.read_bytes()))
        torn.append(folder_n)

    # ... and the log line of epoch 2, which the Brain writes before its checkpoint
    log = folder / "train_log.txt"
    log.write_text(log.read_text() + "epoch: 2, lr: 1.00e-03 - train loss: 99.0 - valid loss: 99.0\n")

    train_piq.main(with_flag(argv, "--number_of_epochs", 2))  # the same command, one epoch more

    # resumed after epoch 1: not restarted, not skipped, and the killed run's epoch 2 not kept
    assert _epochs_logged(folder) == [1, 2]
    assert "99.0" not in log.read_text()
    aside = _checkpoints(folder / "save", QUARANTINE_PREFIX)
    expected = (no_files, empty, truncated, *torn)
    assert {p.name for p in aside} == {QUARANTINE_PREFIX + p.name for p in expected}
    assert all((p / "CKPT.yaml").exists() for p in aside)  # moved aside, not deleted
    assert (folder / "psi_model.ckpt").is_file()


def test_a_second_run_on_a_busy_folder_is_refused_and_a_stale_lock_taken_over(
    tiny_pretrained, tmp_path, caplog
):
    folder = tmp_path / "busy"
    argv = with_flag(piq_argv(tiny_pretrained), "--number_of_epochs", 1000)
    command = [sys.executable, str(REPO_ROOT / "recipes" / "train_piq.py"), *argv]
    first = subprocess.Popen(
        command + ["--output_folder", str(folder)], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock = folder / LOCK_FILE
        deadline = time.monotonic() + 120
        while not (lock.is_file() and f"pid {first.pid}" in lock.read_text()):
            assert first.poll() is None, "the first run ended before taking its folder"
            assert time.monotonic() < deadline, "the first run never took its folder"
            time.sleep(0.1)
        with pytest.raises(RuntimeError, match=rf"{folder}.*in use.*pid {first.pid}"):
            train_piq.main(argv + ["--output_folder", str(folder)])
        assert first.poll() is None  # the refused run did not disturb the first one
    finally:
        first.kill()
        first.wait(timeout=30)
    # the first run is gone (SIGKILL): its lock file stays, and is taken over with a warning
    assert f"pid {first.pid}" in (folder / LOCK_FILE).read_text()
    with caplog.at_level(logging.WARNING, logger="recipes.core.run_guard"):
        lock_output_folder(str(folder))
    assert f"pid {first.pid}" in caplog.text and "gone" in caplog.text
    assert f"pid {os.getpid()}" in (folder / LOCK_FILE).read_text()


@pytest.mark.parametrize("epochs", ["0", "-1"])
def test_fewer_than_one_epoch_is_an_error_and_exports_nothing(tiny_pretrained, tmp_path, epochs):
    folder = tmp_path / f"epochs{epochs}"
    argv = with_flag(piq_argv(tiny_pretrained), "--number_of_epochs", epochs)
    with pytest.raises(ValueError, match="at least 1 epoch.*recipes/eval.py"):
        train_piq.main(argv + ["--output_folder", str(folder)])
    assert not (folder / "psi_model.ckpt").exists() and not (folder / "test_metrics.json").exists()


@pytest.mark.parametrize(
    "key, value, kind",
    [("lr", "abc", "a number"), ("number_of_epochs", "abc", "a number"), ("use_vq", "maybe", "True or False")],
)
def test_an_override_of_the_wrong_type_names_the_key(tiny_pretrained, tmp_path, key, value, kind):
    argv = with_flag(piq_argv(tiny_pretrained), f"--{key}", value)
    with pytest.raises(ValueError, match=rf"--{key} '?{value}'?: {key} is {kind} in .*piq.yaml"):
        train_piq.main(argv + ["--output_folder", str(tmp_path / "run")])


def test_a_folder_that_cannot_be_written_says_which_flag_to_change(tiny_pretrained, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    if os.geteuid() != 0:  # root writes anywhere: a file in the way stands in for read-only
        blocker = tmp_path / "read_only"
        blocker.mkdir(mode=0o500)
    with pytest.raises(PermissionError, match=r"Cannot write to .*--output_folder"):
        train_piq.main(piq_argv(tiny_pretrained) + ["--output_folder", str(blocker / "run")])


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_truncated_and_mis_shaped_checkpoints_name_the_file(tiny_pretrained, tiny_piq, tmp_path):
    # the classifier: truncated, then of another size
    classifier = tmp_path / "classifier"
    shutil.copytree(tiny_pretrained["classifier"], classifier)
    argv = piq_argv(tiny_pretrained)
    argv = with_flag(argv, "--classifier_folder", classifier)
    _truncate(classifier / "embedding_model.ckpt")
    with pytest.raises(ValueError, match=rf"{classifier / 'embedding_model.ckpt'}.*truncated"):
        train_piq.main(argv + ["--output_folder", str(tmp_path / "a")])
    shutil.copy(tiny_pretrained["classifier"] / "embedding_model.ckpt", classifier)
    other = {k: torch.zeros(3) for k in torch.load(classifier / "classifier.ckpt", weights_only=True)}
    torch.save(other, classifier / "classifier.ckpt")
    with pytest.raises(ValueError, match=rf"{classifier / 'classifier.ckpt'}.*does not fit"):
        train_piq.main(argv + ["--output_folder", str(tmp_path / "b")])

    # the interpreter given to eval.py: truncated, then of another size
    exported = tmp_path / "exported"
    shutil.copytree(tiny_piq["folder"], exported, ignore=shutil.ignore_patterns(LOCK_FILE, "save"))
    eval_argv = tiny_piq["argv"] + ["--pretrained_interpreter", str(exported)]
    _truncate(exported / "psi_model.ckpt")
    with pytest.raises(ValueError, match=rf"{exported / 'psi_model.ckpt'}.*truncated"):
        eval_recipe.main(eval_argv + ["--eval_folder", str(tmp_path / "e1")])
    # a psi of another codebook size (the trained K is overridden on purpose: eval.py refuses a
    # contradicting --K otherwise, see tests/integration/test_eval_guards.py)
    wrong_size = with_flag(eval_argv, "--K", 33) + ["--override_trained", "K"]
    shutil.copy(tiny_piq["folder"] / "psi_model.ckpt", exported)
    with pytest.raises(ValueError, match=rf"{exported / 'psi_model.ckpt'}.*does not fit"):
        eval_recipe.main(wrong_size + ["--eval_folder", str(tmp_path / "e2")])


def test_a_truncated_nmf_dictionary_names_the_file(tiny_pretrained, tmp_path):
    from recipes import train_l2i

    nmf = tmp_path / "nmf_decoder.ckpt"
    shutil.copy(tiny_pretrained["nmf"], nmf)
    _truncate(nmf)
    argv = [str(HPARAMS / "l2i_conv2d.yaml"), "--K", "12"] + tiny_pretrained["overrides"]
    argv = with_flag(argv, "--nmf_decoder_path", nmf)
    with pytest.raises(ValueError, match=rf"{nmf}.*truncated"):
        train_l2i.main(argv + ["--output_folder", str(tmp_path / "l2i")])


def _tiny_argv(method, tiny_pretrained):
    from conftest import lmac_argv

    if method == "piq":
        return piq_argv(tiny_pretrained)
    if method == "lmac":
        return lmac_argv(tiny_pretrained)
    return [str(HPARAMS / "l2i_conv2d.yaml"), "--K", "12"] + list(tiny_pretrained["overrides"])


@pytest.mark.parametrize(
    "method, flags, said",
    [
        ("piq", ["--rec_loss_coef", "-1"], "rec_loss_coef = -1: the loss weights are >= 0"),
        ("piq", ["--commitment_coef", "-1"], "commitment_coef = -1: the loss weights are >= 0"),
        ("piq", ["--mask_th", "2"], "mask_th = 2: the share of each clip's maximum"),
        ("l2i", ["--alpha", "-1"], "alpha = -1: it must be >= 0"),
        ("l2i", ["--beta", "-1"], "beta = -1: it must be >= 0"),
        ("lmac", ["--finetuning", "True", "--finetune_from", "x.ckpt", "--crosscor_th", "5"], "crosscor_th = 5, bin_th = 0.35: a cosine similarity lies in"),
        ("lmac", ["--finetuning", "True", "--finetune_from", "x.ckpt", "--bin_th", "2"], "bin_th = 2: a cosine"),
    ],
)
def test_a_loss_setting_out_of_its_range_is_refused_before_training(tiny_pretrained, tmp_path, method, flags, said):
    """Guards the range checks of the Brains' `load_frozen` (found by a probe: a negative PIQ or
    L2I loss weight trained a negative loss, mask_th 2 an all-zero target, crosscor_th 5 a
    fine-tuning that guides no clip; L-MAC refused its own weights already)."""
    from recipes import train_l2i, train_lmac, train_piq

    recipe = {"piq": train_piq, "l2i": train_l2i, "lmac": train_lmac}[method]
    argv = _tiny_argv(method, tiny_pretrained)
    for flag, value in zip(flags[::2], flags[1::2]):
        argv = with_flag(argv, flag, value)
    with pytest.raises(ValueError, match=re.escape(said)):
        recipe.main(argv + ["--output_folder", str(tmp_path / "run")])
    assert not list((tmp_path / "run").glob("save/CKPT+*"))


def test_a_relevance_threshold_outside_the_relevance_range_is_said_and_the_ladder_widens(tiny_l2i, caplog):
    """Guards the relevance_th warning of `L2I.load_frozen` and the `keep_class` ladder below -1:
    relevance_th -2 selects every component (said), and the ladder's rungs then only widen
    (were: thresholds -2, -1.8, ... rising: narrower masks than the interpretation's)."""
    import logging

    brain = tiny_l2i["brain"]
    r = torch.tensor([[-1.0, -0.5, 0.0, 0.5, 1.0]])
    H = torch.rand(1, 5, 4)
    outputs = {"relevance": r, "H": H, "WH": None}
    old = brain.hparams.relevance_th
    try:
        brain.hparams.relevance_th = -2.0
        with caplog.at_level(logging.WARNING):
            brain.load_frozen()
        assert "relevance_th = -2.0" in caplog.text and "every component passes" in caplog.text
        brain.W = torch.rand(7, 5)
        brain.widened_masks(outputs)
        counts = outputs["ladder_selected"].sum(dim=(1, 2)).tolist()  # components kept per rung
        assert counts[0] == 5 and all(later >= earlier for earlier, later in zip(counts[1:], counts[2:]))
    finally:
        brain.hparams.relevance_th = old
        brain.load_frozen()


def test_more_checkpoints_averaged_than_epochs_is_said(tiny_pretrained, tmp_path):
    """Guards the average_checkpoints warning of `InterpreterBrain.__init__`: 5 with 1 epoch said
    "the mean of the 5 best checkpoints", then averaged 1 (found by a probe)."""
    from recipes import train_piq

    argv = with_flag(with_flag(piq_argv(tiny_pretrained), "--average_checkpoints", 5), "--number_of_epochs", 1)
    train_piq.main(argv + ["--output_folder", str(tmp_path / "run")])
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "average_checkpoints 5 with number_of_epochs 1: at most 1 checkpoints exist" in log
