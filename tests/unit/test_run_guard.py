"""recipes/core/run_guard.py on real folders: the run lock, writable-folder checks, which
checkpoints are set aside, and which resumes are refused.

Each expected value is worked out by hand in the test's docstring.
"""

import fcntl
import logging
import os
import re

import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from recipes.core import run_guard
from recipes.core.run_guard import (
    LOCK_FILE,
    QUARANTINE_PREFIX,
    SAVED_HPARAMS,
    UnwritableFolderError,
    changed_input,
    changed_input_message,
    check_writable_folder,
    lock_output_folder,
    quarantine_incomplete_checkpoints,
    record_resume_inputs,
    refuse_changed_resume,
    trained_epochs,
)


@pytest.fixture(autouse=True)
def own_locks(monkeypatch):
    """Each test takes its locks in a table of its own, closed when it ends: the locks of the
    session are not touched, and no folder of the test stays locked."""
    held = {}
    monkeypatch.setattr(run_guard, "_held_locks", held)
    yield held
    for handle in held.values():
        handle.close()


def _checkpoint(folder, unixtime, epoch, names=("psi",)):
    """A checkpoint folder as SpeechBrain writes it: CKPT.yaml, counter.ckpt (the epoch, as
    text) and one torch.save file (a zip archive) per name."""
    folder.mkdir(parents=True)
    (folder / "CKPT.yaml").write_text(f"end-of-epoch: true\nunixtime: {unixtime}\n")
    (folder / "counter.ckpt").write_text(str(epoch))
    for name in names:
        torch.save({"w": torch.zeros(4)}, folder / f"{name}.ckpt")
    return folder


def _resume_hparams(tmp_path, **values):
    """The keys refuse_changed_resume reads, for a run in `tmp_path/run` (its save folder made)."""
    output = tmp_path / "run"
    (output / "save").mkdir(parents=True)
    return {"output_folder": str(output), "save_folder": str(output / "save"), **values}


# ---------------------------------------------------------------- the run lock


def test_a_folder_locked_by_another_run_is_refused_naming_the_holder(tmp_path, own_locks):
    """Another run holds the folder. It is played by the lock this process takes first, handed
    over: taken out of run_guard's table, its file kept open (as the other process keeps its
    own). flock locks belong to an open file, not to a process, so the next lock_output_folder
    opens the file again and meets that exclusive lock: a RuntimeError naming the folder, the
    holder's line as the file holds it ("pid <this pid> on <host> since ...") and the flag;
    the holder's line is left as it was. A shared lock would let both runs in."""
    folder = tmp_path / "out"
    lock_output_folder(str(folder))
    other_run = own_locks.pop(str(folder))
    try:
        holder = (folder / LOCK_FILE).read_text()
        assert holder.startswith(f"pid {os.getpid()} on ")
        expected = f"{folder} is in use by another run ({holder}). Wait for it to finish, stop it, or pass another --out."
        with pytest.raises(RuntimeError, match=re.escape(expected)):
            lock_output_folder(str(folder), "--out")
        assert (folder / LOCK_FILE).read_text() == holder
    finally:
        other_run.close()
    assert lock_output_folder(str(folder)) == str(folder / LOCK_FILE)  # free once the other ends


def test_the_lock_is_held_after_the_call_returns(tmp_path):
    """The lock must last as long as the run: its file stays open after lock_output_folder
    returns. A non-blocking exclusive flock through another open file must fail (EWOULDBLOCK);
    had the file been closed, the lock would be gone and the flock would succeed."""
    path = lock_output_folder(str(tmp_path / "out"))
    with open(path, encoding="utf-8") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_second_lock_of_the_same_folder_in_one_process_is_the_lock_it_holds(tmp_path):
    """A process that locks its folder twice (a recipe run twice in one process) holds it
    already: the second call returns the same path, and is not refused as "another run"
    (a second open of the file would meet the first one's exclusive flock)."""
    folder = tmp_path / "out"
    first = lock_output_folder(str(folder))
    assert lock_output_folder(str(folder)) == first == str(folder / LOCK_FILE)
    assert (folder / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} on ")


def test_a_stale_lock_is_taken_over_and_then_names_only_the_new_holder(tmp_path, caplog):
    """A killed run leaves its line in the lock file and no flock (the kernel dropped it). The
    next run takes the folder, warns naming the old line ("... a run that is gone (<line>)"),
    and the file then holds this process's line alone. The file is opened in append mode: left
    unemptied, it would read "<old line>pid <this pid> ...", and the next refused run would
    name the dead process as the holder."""
    folder = tmp_path / "out"
    folder.mkdir()
    stale = "pid 4194305 on elsewhere since 2026-01-01 00:00:00"
    (folder / LOCK_FILE).write_text(stale)
    with caplog.at_level(logging.WARNING, logger="recipes.core.run_guard"):
        lock_output_folder(str(folder))
    assert f"a run that is gone ({stale})" in caplog.text
    line = (folder / LOCK_FILE).read_text()
    assert line.startswith(f"pid {os.getpid()} on ") and "4194305" not in line


def test_a_clean_exit_empties_the_lock_file_so_the_next_run_warns_of_nothing(tmp_path, caplog):
    """At exit (`_release_all`, registered with atexit) the lock file is emptied, then closed.
    The next run on the folder finds it empty: no "Took over the lock ... gone" warning, which
    would tell the user that a run was killed when it ended well."""
    folder = tmp_path / "out"
    lock_output_folder(str(folder))
    run_guard._release_all()
    assert (folder / LOCK_FILE).read_text() == ""
    with caplog.at_level(logging.WARNING, logger="recipes.core.run_guard"):
        lock_output_folder(str(folder))
    assert "Took over" not in caplog.text


# ---------------------------------------------------------------- writable folders


def test_a_new_folder_several_levels_deep_is_writable(tmp_path):
    """Only tmp_path exists; a/b/c below it would be made by the run: the check walks up to
    tmp_path (a folder this user writes) and passes; the lock then makes the three levels."""
    folder = tmp_path / "a" / "b" / "c"
    check_writable_folder(str(folder), "--output_folder")
    assert lock_output_folder(str(folder)) == str(folder / LOCK_FILE)
    assert (folder / LOCK_FILE).is_file()


def test_a_file_in_the_way_is_named_however_deep_the_folder(tmp_path):
    """tmp_path/taken.txt is a file; the folder asked for is taken.txt/a/b. The nearest part of
    that path that exists is taken.txt: the error names it as "a file, not a folder", the whole
    folder asked for, and the flag; the file keeps its contents."""
    blocker = tmp_path / "taken.txt"
    blocker.write_text("mine")
    folder = blocker / "a" / "b"
    expected = f"Cannot write to {folder} ({blocker} is a file, not a folder): the run writes its results there. Pass --eval_folder"
    with pytest.raises(UnwritableFolderError, match=re.escape(expected)):
        check_writable_folder(str(folder), "--eval_folder")
    assert blocker.read_text() == "mine"


def _can_make_a_folder_in(folder):
    """Whether this process makes a folder in `folder` despite its mode (root can)."""
    try:
        (folder / "probe").mkdir()
    except PermissionError:
        return False
    (folder / "probe").rmdir()
    return True


@pytest.mark.parametrize("mode", [0o555, 0o600])
def test_a_folder_this_user_cannot_write_or_enter_is_refused(tmp_path, mode):
    """0o555: readable and searchable, not writable; 0o600: writable, but no file in it can be
    made without the search (x) bit. Either way no run can write there: refused, naming the
    folder and the flag. Skipped where this process writes there all the same (root with its
    capabilities): the folder is then writable for it."""
    parent = tmp_path / "locked"
    parent.mkdir(mode=mode)
    try:
        if _can_make_a_folder_in(parent):
            pytest.skip("this process writes into folders whatever their mode (root)")
        with pytest.raises(
            UnwritableFolderError, match=rf"{parent} is not writable for this user\): .*Pass --out "
        ):
            check_writable_folder(str(parent / "run"), "--out")
    finally:
        parent.chmod(0o755)


# ---------------------------------------------------------------- torn checkpoints


def test_only_incomplete_checkpoints_are_set_aside(tmp_path):
    """The checkpointer has `psi`; the Brain adds `optimizer` later (later_names). In its folder:
    - CKPT+...01: CKPT.yaml, counter, psi and optimizer whole: complete, stays.
    - CKPT+...02: no optimizer.ckpt (killed before it): incomplete, though only later_names names it.
    - CKPT+...03: every named file whole, but brain.ckpt, which no one named, is its first half:
      incomplete (a cut zip has no central directory).
    - CKPT+...04: CKPT.yaml cut in its first key ("end-of-ep", a string, not a mapping):
      incomplete.
    - incomplete-CKPT+...00: set aside by an earlier run; no longer a checkpoint: keeps its name.
    - notes: a folder of the user's, not a checkpoint: untouched.
    So 02, 03, 04 become incomplete-CKPT+...02/03/04 (returned in name order), with their files."""
    save = tmp_path / "save"
    complete = _checkpoint(save / "CKPT+2026-01-01+00-00-01+00", 1, 1, ("psi", "optimizer"))
    no_optimizer = _checkpoint(save / "CKPT+2026-01-01+00-00-02+00", 2, 2, ("psi",))
    cut_brain = _checkpoint(
        save / "CKPT+2026-01-01+00-00-03+00", 3, 3, ("psi", "optimizer", "brain")
    )
    data = (cut_brain / "brain.ckpt").read_bytes()
    (cut_brain / "brain.ckpt").write_bytes(data[: len(data) // 2])
    cut_meta = _checkpoint(save / "CKPT+2026-01-01+00-00-04+00", 4, 4, ("psi", "optimizer"))
    (cut_meta / "CKPT.yaml").write_text("end-of-ep")
    earlier = save / f"{QUARANTINE_PREFIX}CKPT+2026-01-01+00-00-00+00"
    earlier.mkdir()
    (earlier / "CKPT.yaml").write_text("")
    (save / "notes").mkdir()
    checkpointer = Checkpointer(save, recoverables={"psi": torch.nn.Linear(2, 2)})

    moved = quarantine_incomplete_checkpoints(checkpointer, later_names=("optimizer",))

    aside = [
        save / f"{QUARANTINE_PREFIX}{path.name}" for path in (no_optimizer, cut_brain, cut_meta)
    ]
    assert moved == aside
    assert sorted(path.name for path in save.iterdir()) == sorted(
        [complete.name, earlier.name, "notes", *(path.name for path in aside)]
    )
    assert (aside[1] / "brain.ckpt").read_bytes() == data[: len(data) // 2]  # kept, not deleted
    assert sorted(path.name for path in complete.iterdir()) == [
        "CKPT.yaml",
        "counter.ckpt",
        "optimizer.ckpt",
        "psi.ckpt",
    ]


def test_a_parameter_file_of_full_size_with_zeroed_data_is_set_aside(tmp_path):
    """A crash before the data pages reach the disk leaves a file of the right size whose
    bytes are zeros. psi.ckpt holds 64 float32 1.5s (bytes 00 00 c0 3f each), stored
    uncompressed by torch.save; those 256 bytes are zeroed in place. Its zip structure (local
    header, central directory) is whole; only the member's CRC-32 no longer matches its data
    (testzip names that member): incomplete, set aside. The same checkpoint with psi.ckpt
    untouched stays."""
    save = tmp_path / "save"
    whole = save / "CKPT+a"
    zeroed = save / "CKPT+b"
    for folder in (whole, zeroed):
        _checkpoint(folder, 1, 1, names=())
        torch.save({"w": torch.full((64,), 1.5)}, folder / "psi.ckpt")
    data = (zeroed / "psi.ckpt").read_bytes()
    values = b"\x00\x00\xc0\x3f" * 64
    assert data.count(values) == 1
    (zeroed / "psi.ckpt").write_bytes(data.replace(values, bytes(len(values))))
    checkpointer = Checkpointer(save, recoverables={"psi": torch.nn.Linear(2, 2)})

    assert quarantine_incomplete_checkpoints(checkpointer) == [save / "incomplete-CKPT+b"]
    assert sorted(path.name for path in save.iterdir()) == ["CKPT+a", "incomplete-CKPT+b"]


def test_a_name_set_aside_twice_before_goes_to_the_first_free_one(tmp_path):
    """Two earlier runs set aside a CKPT+x: incomplete-CKPT+x and incomplete-2-CKPT+x are
    taken, each with its CKPT.yaml. A third incomplete CKPT+x (no psi.ckpt) goes to the first
    free name, incomplete-3-CKPT+x; the two earlier ones keep their files (a rename onto a
    folder that holds files fails, or would lose them)."""
    save = tmp_path / "save"
    for name, text in (("incomplete-CKPT+x", "first"), ("incomplete-2-CKPT+x", "second")):
        (save / name).mkdir(parents=True)
        (save / name / "CKPT.yaml").write_text(text)
    torn = save / "CKPT+x"
    torn.mkdir()
    (torn / "CKPT.yaml").write_text("unixtime: 5\n")
    checkpointer = Checkpointer(save, recoverables={"psi": torch.nn.Linear(2, 2)})

    assert quarantine_incomplete_checkpoints(checkpointer) == [save / "incomplete-3-CKPT+x"]
    assert (save / "incomplete-CKPT+x" / "CKPT.yaml").read_text() == "first"
    assert (save / "incomplete-2-CKPT+x" / "CKPT.yaml").read_text() == "second"
    assert (save / "incomplete-3-CKPT+x" / "CKPT.yaml").read_text() == "unixtime: 5\n"


def test_trained_epochs_skips_a_newer_torn_checkpoint(tmp_path):
    """CKPT+a: complete, unixtime 1, counter 3. CKPT+b: newer (unixtime 2), counter 5, but its
    psi.ckpt holds only "PK\\x03", the first 3 bytes of torch's zip format. trained_epochs is
    given no names: only the files present in b show that it is torn. SpeechBrain resumes
    from a, so 3 epochs are done, and --number_of_epochs 4 (one more) is no shorter run."""
    save = tmp_path / "run" / "save"
    _checkpoint(save / "CKPT+a", 1, 3)
    torn = _checkpoint(save / "CKPT+b", 2, 5)
    (torn / "psi.ckpt").write_bytes(b"PK\x03")
    assert trained_epochs(save) == 3
    refuse_changed_resume(
        {"output_folder": str(tmp_path / "run"), "save_folder": str(save), "number_of_epochs": 4}
    )


# ---------------------------------------------------------------- refused resumes


def test_a_rerun_with_as_many_epochs_as_done_is_allowed_and_fewer_refused(tmp_path):
    """The newest complete checkpoint ended epoch 3. --number_of_epochs 3 (the same command
    again, to export) and 4 (go on) are allowed; 2 is refused: SpeechBrain would train nothing
    and export the 3-epoch model as a run of 2."""
    hparams = _resume_hparams(tmp_path)
    _checkpoint(tmp_path / "run" / "save" / "CKPT+a", 1, 3)
    for epochs in (3, 4):
        refuse_changed_resume({**hparams, "number_of_epochs": epochs})
    with pytest.raises(
        ValueError, match=r"already trained for 3 epochs; --number_of_epochs 2 would train nothing"
    ):
        refuse_changed_resume({**hparams, "number_of_epochs": 2})


def test_checkpoints_set_aside_are_nothing_to_resume_from(tmp_path):
    """The folder's hyperparams.yaml names classifier a.ckpt; this command gives b.ckpt (other
    bytes). Its save folder holds only incomplete-CKPT+x: SpeechBrain looks for folders named
    CKPT..., finds none and starts over, so b.ckpt is no resume of a's run: allowed. Named
    back to CKPT+x, the same folder is a checkpoint of a's run: refused, naming both files."""
    a, b = tmp_path / "a.ckpt", tmp_path / "b.ckpt"
    a.write_bytes(b"classifier a")
    b.write_bytes(b"classifier b")
    hparams = _resume_hparams(tmp_path, classifier_model_path=str(b))
    (tmp_path / "run" / SAVED_HPARAMS).write_text(f"classifier_model_path: {a}\n")
    aside = tmp_path / "run" / "save" / f"{QUARANTINE_PREFIX}CKPT+x"
    aside.mkdir()
    refuse_changed_resume(hparams)
    aside.rename(aside.with_name("CKPT+x"))
    with pytest.raises(
        ValueError, match=re.escape(f"classifier_model_path = {a}; this command gives {b},")
    ):
        refuse_changed_resume(hparams)


def test_another_classifier_of_the_same_size_and_time_is_another_classifier(tmp_path):
    """a.ckpt and b.ckpt: 12 bytes each, other bytes, one modification time (as two archives
    unpacked with their times kept). A comparison by size and time (filecmp's shallow one)
    would call them the same file; their bytes differ: refused. c.ckpt, a's bytes copied
    elsewhere: the same classifier, allowed."""
    a, b, c = tmp_path / "a.ckpt", tmp_path / "b.ckpt", tmp_path / "c.ckpt"
    a.write_bytes(b"classifier a")
    b.write_bytes(b"classifier b")
    c.write_bytes(b"classifier a")
    for path in (a, b):
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    hparams = _resume_hparams(tmp_path)
    (tmp_path / "run" / SAVED_HPARAMS).write_text(f"classifier_model_path: {a}\n")
    (tmp_path / "run" / "save" / "CKPT+x").mkdir()
    with pytest.raises(
        ValueError, match=re.escape(f"classifier_model_path = {a}; this command gives {b},")
    ):
        refuse_changed_resume({**hparams, "classifier_model_path": str(b)})
    refuse_changed_resume({**hparams, "classifier_model_path": str(c)})


def test_a_dictionary_changed_in_place_is_found_though_the_classifier_is_not(tmp_path):
    """record_resume_inputs records the SHA-256 of the three RESUME_FILE_KEYS files (embedding,
    classifier, NMF dictionary, in that order). Then only the dictionary, the last of them, is
    written again with other bytes (and another size) at its path. changed_input must name
    nmf_decoder_path and that path (before the change: None, nothing changed), and a resume
    from the folder's checkpoints is refused, naming them."""
    files = {}
    for key in ("embedding_model_path", "classifier_model_path", "nmf_decoder_path"):
        files[key] = tmp_path / f"{key}.ckpt"
        files[key].write_bytes(key.encode())
    hparams = _resume_hparams(tmp_path, **{key: str(path) for key, path in files.items()})
    (tmp_path / "run" / "save" / "CKPT+x").mkdir()
    record_resume_inputs(hparams)
    assert changed_input(hparams, hparams["output_folder"]) is None
    files["nmf_decoder_path"].write_bytes(b"the dictionary, trained again")
    assert changed_input(hparams, hparams["output_folder"]) == (
        "nmf_decoder_path",
        str(files["nmf_decoder_path"]),
    )
    expected = f"read nmf_decoder_path = {files['nmf_decoder_path']} with other contents"
    with pytest.raises(ValueError, match=re.escape(expected)):
        refuse_changed_resume(hparams)


def test_a_classifier_moved_with_its_bytes_is_the_same_classifier(tmp_path):
    """The run started with old/classifier.ckpt (its SHA-256 recorded in resume_inputs.json),
    then the file was moved to new/classifier.ckpt: the old path is gone, the bytes are the
    recorded ones, so a resume with the new path is the same run: allowed. Another file at
    the new path (other bytes) is another classifier: refused, naming both paths. Without a
    record (a folder from before it), a moved file cannot be told from another: refused."""
    old, new = tmp_path / "old" / "classifier.ckpt", tmp_path / "new" / "classifier.ckpt"
    old.parent.mkdir()
    new.parent.mkdir()
    old.write_bytes(b"classifier a")
    hparams = _resume_hparams(tmp_path, classifier_model_path=str(old))
    (tmp_path / "run" / SAVED_HPARAMS).write_text(f"classifier_model_path: {old}\n")
    (tmp_path / "run" / "save" / "CKPT+x").mkdir()
    record_resume_inputs(hparams)
    old.rename(new)
    moved = {**hparams, "classifier_model_path": str(new)}
    refuse_changed_resume(moved)
    refused = re.escape(f"classifier_model_path = {old}; this command gives {new},")
    new.write_bytes(b"classifier b")
    with pytest.raises(ValueError, match=refused):
        refuse_changed_resume(moved)
    new.write_bytes(b"classifier a")
    (tmp_path / "run" / "resume_inputs.json").unlink()
    with pytest.raises(ValueError, match=refused):
        refuse_changed_resume(moved)


def test_a_newer_checkpoint_without_its_optimizer_is_not_what_a_run_resumes_from(tmp_path):
    """CKPT+a: complete (psi, brain, optimizer), unixtime 1, epoch 3. CKPT+b: newer, epoch 5,
    with psi and brain but no optimizer.ckpt (the last file written: the run was killed
    before it). The checkpointer names psi; SpeechBrain adds brain and optimizer. The build
    sets b aside and resumes from a: 3 epochs are done, so --number_of_epochs 4 goes on
    training (allowed), 2 is refused as a shorter run of 3. Without the names, b's present
    files are whole and it would count: 5."""
    hparams = _resume_hparams(tmp_path)
    save = tmp_path / "run" / "save"
    _checkpoint(save / "CKPT+a", 1, 3, names=("psi", "brain", "optimizer"))
    _checkpoint(save / "CKPT+b", 2, 5, names=("psi", "brain"))
    assert trained_epochs(save) == 5
    assert trained_epochs(save, ["psi", "brain", "optimizer"]) == 3
    hparams["checkpointer"] = Checkpointer(str(save), recoverables={"psi": torch.nn.Linear(1, 1)})
    refuse_changed_resume({**hparams, "number_of_epochs": 4})
    with pytest.raises(ValueError, match="already trained for 3 epochs; --number_of_epochs 2"):
        refuse_changed_resume({**hparams, "number_of_epochs": 2})


def test_a_link_to_nothing_is_named_before_any_work(tmp_path):
    """out is a symbolic link to gone/, which does not exist: nothing can be made there
    (makedirs meets the link: "File exists"). The check names the link and its target, and
    the flag; the output folder below the link is refused the same way."""
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    expected = f"{link} is a link to {tmp_path / 'gone'}, which does not exist"
    for folder in (link, link / "run"):
        with pytest.raises(UnwritableFolderError, match=re.escape(expected) + r".*Pass --out"):
            check_writable_folder(str(folder), "--out")
    with pytest.raises(UnwritableFolderError, match=re.escape(expected)):
        lock_output_folder(str(link), "--out")


def test_a_folder_locked_through_a_link_is_the_lock_this_process_holds(tmp_path, own_locks):
    """run/ is locked, then the same process locks it again through link -> run: the same
    folder, so the lock it holds (one table entry), not "in use by another run (pid <this
    pid>)"."""
    folder, link = tmp_path / "run", tmp_path / "link"
    lock_output_folder(str(folder))
    link.symlink_to(folder)
    assert lock_output_folder(str(link)) == str(link / LOCK_FILE)
    assert list(own_locks) == [str(folder)]


def test_a_rerun_with_another_checkpoint_key_is_refused(tmp_path):
    """Guards `checkpoint_key` in RESUME_KEYS: checkpoints saved with `checkpoint_key: fid_in`
    hold valid Fid-In in their meta and no loss; resumed with `loss`, none holds the key and the
    test stage would take the newest checkpoint instead of the best. Refused, naming both values;
    the same key again is allowed."""
    hparams = _resume_hparams(tmp_path, checkpoint_key="fid_in")
    (tmp_path / "run" / "hyperparams.yaml").write_text("checkpoint_key: fid_in\n")
    _checkpoint(tmp_path / "run" / "save" / "CKPT+a", 1, 3)
    refuse_changed_resume(hparams)
    with pytest.raises(ValueError, match=r"a run with checkpoint_key = fid_in; this command gives loss"):
        refuse_changed_resume({**hparams, "checkpoint_key": "loss"})


def test_a_new_lr_on_a_resume_is_said_not_to_apply(tmp_path):
    """SpeechBrain's checkpointer brings the optimiser's state back, its lr with it: a resume
    given another --lr trains on with the old (annealed) one. It is allowed, and a warning
    says that the new lr is not applied; the same lr, or no checkpoint yet, says nothing."""
    hparams = _resume_hparams(tmp_path, lr=0.5)
    (tmp_path / "run" / SAVED_HPARAMS).write_text("lr: 0.001\nnumber_of_epochs: 3\n")
    assert refuse_changed_resume(hparams) == []  # no checkpoint yet: a fresh start, the new lr applies
    _checkpoint(tmp_path / "run" / "save" / "CKPT+a", 1, 1)
    assert refuse_changed_resume({**hparams, "lr": 0.001}) == []
    (warning,) = refuse_changed_resume(hparams)
    assert "lr = 0.001 at the last start" in warning
    assert "--lr 0.5 is not applied" in warning


def test_a_new_lr_over_only_incomplete_checkpoints_is_applied_and_no_warning_says_otherwise(tmp_path):
    """The only checkpoint lacks optimizer.ckpt (a run killed while saving it): the build sets it
    aside and the run starts afresh, with the new lr. No warning may say that the lr is not
    applied; with the optimizer's file there, it is said."""
    hparams = _resume_hparams(tmp_path, lr=0.01)
    save = tmp_path / "run" / "save"
    (tmp_path / "run" / SAVED_HPARAMS).write_text("lr: 0.001\nnumber_of_epochs: 3\n")
    hparams["checkpointer"] = Checkpointer(str(save), recoverables={"psi": torch.nn.Linear(1, 1)})
    _checkpoint(save / "CKPT+a", 1, 2, names=("psi", "brain"))
    assert refuse_changed_resume(hparams) == []
    torch.save({"w": torch.zeros(4)}, save / "CKPT+a" / "optimizer.ckpt")
    (warning,) = refuse_changed_resume(hparams)
    assert "--lr 0.01 is not applied" in warning


def test_a_changed_input_is_named_as_another_file_or_the_same_file_changed(tmp_path):
    """eval.py's refusal (`changed_input_message`): an interpreter trained with classifier_folder
    /runs/cls, evaluated with the yaml's default folder, is told to give --classifier_folder
    /runs/cls (it was: "the file changed since its training started", though nothing had);
    given that folder, whose classifier was trained again, it says the file changed. The
    dictionary's flag is its own key."""
    run = tmp_path / "l2i"
    run.mkdir()
    (run / SAVED_HPARAMS).write_text("classifier_folder: /runs/cls\nnmf_decoder_path: /runs/nmf/d.ckpt\n")
    default = {"classifier_folder": "results/classifier_conv2d/1234"}
    message = changed_input_message(default, str(run), "embedding_model_path", "results/classifier_conv2d/1234/e.ckpt")
    assert message == (
        f"The interpreter in {run} was trained with classifier_folder = /runs/cls; this command reads "
        "embedding_model_path = results/classifier_conv2d/1234/e.ckpt (--classifier_folder "
        "results/classifier_conv2d/1234, given or the yaml's default), another file: give "
        "--classifier_folder /runs/cls (or the folder that classifier is in now)."
    )
    same = changed_input_message({"classifier_folder": "/runs/cls"}, str(run), "embedding_model_path", "/runs/cls/e.ckpt")
    assert "was trained on embedding_model_path = /runs/cls/e.ckpt with other contents" in same
    nmf = changed_input_message({"nmf_decoder_path": "/new/d.ckpt"}, str(run), "nmf_decoder_path", "/new/d.ckpt")
    assert "trained with nmf_decoder_path = /runs/nmf/d.ckpt" in nmf and "give --nmf_decoder_path /runs/nmf/d.ckpt" in nmf
