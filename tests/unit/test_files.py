"""data_prep/files.py: the atomic writer never shares its temporary file with another process."""

import errno
import fcntl
import hashlib
import os
import stat

import pytest

from data_prep.files import file_sha256, partial_path, write_text


def test_a_write_during_another_writers_write_uses_its_own_temporary_file(tmp_path):
    """Was: both wrote `.<name>.partial`; the second truncated the first one's content
    and one of them crashed on the rename (`FileNotFoundError ... .partial`)."""
    target = tmp_path / "dog.png"
    other = partial_path(target)
    with open(other, "w", encoding="utf-8") as writing:  # another writer, in the middle of its write
        fcntl.flock(writing, fcntl.LOCK_EX)
        writing.write("the other writer's half")
        writing.flush()
        write_text("mine", target)
        assert target.read_text() == "mine"
        with open(other, encoding="utf-8") as fin:  # untouched, still there for its writer
            assert fin.read() == "the other writer's half"
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(other), "dog.png"]


def test_a_partial_file_left_by_a_killed_write_is_reused(tmp_path):
    target = tmp_path / "metrics.json"
    with open(partial_path(target), "w", encoding="utf-8") as fout:  # no lock: its writer is gone
        fout.write("torn")
    write_text("{}", target)
    assert target.read_text() == "{}" and os.listdir(tmp_path) == ["metrics.json"]


def test_a_write_that_fails_halfway_leaves_the_old_file_and_no_temporary_file(tmp_path):
    """The writer raises after writing half: the file keeps its old content (the new one
    went to the temporary file, never renamed) and the temporary file is removed."""
    import pytest

    from data_prep.files import write_atomic

    target = tmp_path / "m.json"
    write_text("old", target)

    def half_then_crash(tmp):
        with open(tmp, "w", encoding="utf-8") as fout:
            fout.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, half_then_crash)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["m.json"]


def test_a_file_replaced_with_its_size_and_modification_time_kept_is_read_again(tmp_path):
    """a.ckpt holds "classifier a", then is replaced by "classifier b" (as many bytes) with
    a's modification time, written beside it and renamed over it, as `rsync -a` does: the
    digest is b's, hashlib's own, not the cached digest of a."""
    path, new = tmp_path / "a.ckpt", tmp_path / ".a.ckpt.new"
    path.write_bytes(b"classifier a")
    before = os.stat(path).st_mtime_ns
    assert file_sha256(str(path)) == hashlib.sha256(b"classifier a").hexdigest()
    new.write_bytes(b"classifier b")
    os.utime(new, ns=(before, before))
    os.replace(new, path)
    assert os.stat(path).st_mtime_ns == before
    assert file_sha256(str(path)) == hashlib.sha256(b"classifier b").hexdigest()


def test_the_content_reaches_the_disk_before_the_rename_and_the_rename_after(tmp_path, monkeypatch):
    """fsync of the temporary file (holding the whole content) before os.replace, then of the
    folder: otherwise a machine crash can leave the new name on an empty file."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}"), os.fstat(fd).st_size))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.realpath(src), os.path.realpath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "sub" / "metrics.json"
    write_text("0123456789", target)
    partial = os.path.realpath(partial_path(os.path.abspath(target)))
    assert events == [
        ("fsync", partial, 10),
        ("replace", partial, os.path.realpath(target)),
        ("fsync", os.path.realpath(tmp_path / "sub"), os.stat(tmp_path / "sub").st_size),
    ]
    assert target.read_text() == "0123456789"


def test_a_filesystem_that_cannot_sync_still_gets_the_file_but_a_failed_sync_is_an_error(tmp_path, monkeypatch):
    """EINVAL (a filesystem without fsync): written; EIO (the disk lost the data): raised, the old
    file kept and no temporary file left."""
    target = tmp_path / "a.txt"
    target.write_text("old")

    def cannot(fd):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "fsync", cannot)
    write_text("new", target)
    assert target.read_text() == "new"

    def lost(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", lost)
    with pytest.raises(OSError, match="Input/output error"):
        write_text("newer", target)
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_failed_sync_of_the_folder_leaves_the_partial_name_to_the_next_writer(tmp_path, monkeypatch):
    """After the rename, `.<name>.partial` may already be another writer's file: a failed sync
    of the folder is raised, but that file is not removed."""
    target = tmp_path / "a.txt"
    partial = partial_path(os.path.abspath(target))
    real_fsync, real_replace = os.fsync, os.replace

    def replace(src, dst):
        real_replace(src, dst)
        with open(partial, "w") as other:  # the next writer starts at once
            other.write("someone else's")

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="Input/output error"):
        write_text("new", target)
    assert target.read_text() == "new"
    assert open(partial).read() == "someone else's"
