"""What a recipe process does to itself: the allocator setting and leaving torchrun's group.

Kept apart from `recipes.core.startup` (which imports SpeechBrain): these need only torch
and the C library, so a small process (a test's probe, a launcher) can use them.

Authors
 * audio-interpret contributors 2026
"""

import atexit
import ctypes
import ctypes.util
import functools
import os
import subprocess

import torch

# glibc mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@functools.lru_cache(maxsize=1)
def _libc():
    """The C library (ctypes), or None where there is none to find."""
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


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
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return "allocator left as it is (no glibc mallopt here)"
    if libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**30):
        return "glibc keeps freed memory for reuse (KEEP_FREED_MEMORY=0 turns this off)"
    return "allocator left as it is (glibc refused the mallopt settings)"


def release_freed_memory():
    """Hands the memory glibc keeps for reuse back to the system (`malloc_trim`); True if done.

    For a loop whose every step frees what it allocated (e.g. the batches of a
    `--window` explanation): with `keep_freed_memory`, and across the threads'
    arenas even without it, the freed blocks of each step otherwise pile up and
    the process grows with the number of steps, not with the work of one. A
    no-op without glibc.
    """
    libc = _libc()
    return bool(libc is not None and hasattr(libc, "malloc_trim") and libc.malloc_trim(0))


def _leave_process_group():
    """Destroys the default process group if this process still holds one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@functools.lru_cache(maxsize=1)
def leave_process_group_at_exit():
    """Registers (once per process) the leaving of torchrun's process group at exit.

    A process that exits still holding a gloo group can die in the
    interpreter's teardown ("terminate called without an active exception",
    SIGABRT) while gloo's worker threads are destroyed: the run's work is done
    but torchrun reports it failed. Destroying the group while Python is still
    alive, after `main` returns, ends it cleanly.
    """
    atexit.register(_leave_process_group)


#: The repository's root (recipes/core/ is two folders below it).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def code_version(folder=REPO_ROOT):
    """The code a result came from: {"commit": the git commit checked out, "local_changes":
    whether tracked files differ from it}, or None where `folder` is not a git checkout (an
    installed copy, a tarball) or git is missing. Written into metrics.json, so a figure can
    be traced to its code.

    Example
    -------
    >>> import tempfile
    >>> code_version(tempfile.mkdtemp()) is None  # not a checkout
    True
    """

    def git(*args):
        done = subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=20)
        return done.stdout.strip() if done.returncode == 0 else None

    try:
        top = git("rev-parse", "--show-toplevel")
        if top is None or os.path.realpath(top) != os.path.realpath(folder):
            return None  # not a checkout, or a copy inside another project's repository
        commit = git("rev-parse", "--verify", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    if commit is None:  # a repository without a commit yet
        return None
    return {"commit": commit, "local_changes": bool(status)}
