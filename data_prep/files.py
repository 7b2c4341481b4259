"""Writing files that a killed run cannot leave half-written: the one atomic writer.

Every file the project writes for a person or a later stage (manifests, csv,
wav, png, json, checkpoints, the HTML report) goes through `write_atomic`: the
content is written to a hidden temporary file beside the target,
`.<name>.partial`, which is then renamed onto the target with `os.replace`. A
reader sees the previous file or the new one, never a torn one; a run killed in
the middle leaves at most a `.partial` file, which the next write replaces.
The writer holds an exclusive `flock` on its `.partial` file while it writes:
a second process writing the same file at the same time writes its own
`.<name>.<pid>.partial` instead, so the two never share a temporary file.
`file_sha256(path)` gives a file's SHA-256, read once per version of the file.

Example
-------
>>> import os, tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = write_json({"accuracy": 0.5}, os.path.join(tmp, "out", "metrics.json"))
...     sorted(os.listdir(os.path.dirname(path)))
['metrics.json']

Authors
 * audio-interpret contributors 2026
"""

import errno
import fcntl
import functools
import hashlib
import json
import os

PARTIAL_SUFFIX = ".partial"


def partial_path(path, pid=None):
    """The temporary file `write_atomic` writes before renaming it onto `path`.

    `pid` gives the name a process uses while another one writes the same file.

    >>> partial_path("/data/meta/esc50.csv")
    '/data/meta/.esc50.csv.partial'
    >>> partial_path("/data/meta/esc50.csv", pid=4242)
    '/data/meta/.esc50.csv.4242.partial'
    """
    directory, name = os.path.split(os.fspath(path))
    process = "" if pid is None else f".{pid}"
    return os.path.join(directory, f".{name}{process}{PARTIAL_SUFFIX}")


def _claim_partial(path):
    """(temporary path, descriptor holding its lock or None) for writing `path`.

    The usual `.<name>.partial` is taken when no other process holds its lock
    (a file a killed write left is reused); when one does, the name of this
    process (`partial_path(path, pid)`), which no one else writes.
    """
    partial = partial_path(path)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        mine = os.fstat(fd)
        current = os.stat(partial)  # still the file at that name (not renamed by its writer)?
        if (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino):
            os.ftruncate(fd, 0)
            return partial, fd
    except (BlockingIOError, FileNotFoundError):
        pass  # another process is writing it now
    os.close(fd)
    return partial_path(path, pid=os.getpid()), None


def _fsync(path):
    """Flushes a file's (or a folder's entries') data to the disk; a filesystem that cannot
    (EINVAL, ENOTSUP, ENOSYS: some network and FUSE ones, folders on some systems) is left as
    it is, while a failed write (EIO, ENOSPC) is raised."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


def write_atomic(path, write_fn):
    """Calls `write_fn(temporary_path)`, then moves the result onto `path`.

    The content reaches the disk (fsync) before the rename, and the rename before the
    function returns: after a crash of the machine, `path` holds the old content or
    the new one, never an empty or partial file.

    Arguments
    ---------
    path : str or os.PathLike
        The file to write; its folder is created when missing.
    write_fn : callable
        Writes the whole content to the path it is given, e.g.
        `lambda tmp: torch.save(state, tmp)` or `lambda tmp: fig.savefig(tmp, format="png")`
        (give writers that guess the format from the name an explicit format:
        the temporary name ends in `.partial`).

    Returns
    -------
    str
        `path`, as a string.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial, lock = _claim_partial(os.path.abspath(path))
    try:
        write_fn(partial)
        _fsync(partial)  # the content first: a rename that reached the disk before it leaves an empty file
        os.replace(partial, path)
    except BaseException:  # only before the rename: after it, the name may be another writer's file
        if os.path.exists(partial):
            os.remove(partial)
        raise
    finally:
        if lock is not None:
            os.close(lock)
    _fsync(directory)  # the rename itself (outside the cleanup above: `partial` is no longer ours)
    return path


def write_text(text, path):
    """Writes a text file (UTF-8, newlines as given) atomically; returns `path`."""

    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as fout:
            fout.write(text)

    return write_atomic(path, write)


def write_bytes(data, path):
    """Writes bytes atomically; returns `path`."""

    def write(tmp):
        with open(tmp, "wb") as fout:
            fout.write(data)

    return write_atomic(path, write)


def write_json(data, path, indent=2):
    """Writes `data` as JSON atomically; returns `path`.

    Values JSON cannot hold as numbers (NaN, inf) are refused, not written as
    the non-standard `NaN` token: map them to None first.
    """
    return write_text(json.dumps(data, indent=indent, allow_nan=False) + "\n", path)


def file_sha256(path):
    """The SHA-256 of a file's bytes (hex), or None when there is no such file.

    Read once per version of the file (its inode, size, modification and change
    times: a file replaced by one of the same size with its modification time kept,
    as `cp -p` or `rsync -a` do, has a new change time): every stage of the demo
    after the classifier's asks for the classifier's.
    """
    if not os.path.isfile(path):
        return None
    status = os.stat(path)
    version = (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
    return _sha256(os.path.abspath(path), version)


@functools.lru_cache(maxsize=64)
def _sha256(path, version):
    digest = hashlib.sha256()
    with open(path, "rb") as fin:
        for block in iter(lambda: fin.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
