"""What keeps a run's folder sound: one run per folder, no resuming from a torn checkpoint.

- `lock_output_folder(folder)`: one run per output folder. The lock is an
  exclusive `flock` on `<folder>/.run.lock`, held until the process ends (the
  kernel releases it when the process dies, even by SIGKILL). A second run on
  a busy folder stops at once with an error naming the folder and the process
  holding it; a lock file left by a process that is gone is taken over with a
  warning. `check_writable_folder(folder, flag)` says before any work whether
  a folder can be made and written, naming the flag to change when not
  (`UnwritableFolderError`).
- `quarantine_incomplete_checkpoints(checkpointer)`: SpeechBrain's
  Checkpointer writes `CKPT.yaml` first and the parameter files after it, so a
  run killed in the middle of a checkpoint leaves a folder that looks like a
  checkpoint but cannot be loaded (an empty `CKPT.yaml`, missing or truncated
  parameter files). Before a recipe builds its Brain, every such folder is
  renamed `incomplete-CKPT+...` (kept, not deleted, so nothing is lost), with a
  warning; the run then resumes from the newest complete checkpoint.
- `refuse_changed_resume(hparams)`: a run that would resume from checkpoints
  made with another frozen classifier (or NMF dictionary) or other model
  sizes or the figure that chose its checkpoints (`RESUME_KEYS`, read from the
  folder's `hyperparams.yaml`, which the
  run then rewrites) stops with an error naming the key, both values and the
  fix; a classifier file moved or copied elsewhere, with the same bytes, is
  the same classifier. A file changed in place since the run started (a
  classifier trained again into its folder) is another file: each start
  records the SHA-256 of those files in `<output_folder>/resume_inputs.json`
  (`record_resume_inputs`), and `changed_input` compares them (also for
  `recipes/eval.py`, which refuses to score an interpreter through a
  classifier changed since its training). A run asked for fewer epochs than
  its folder's newest checkpoint holds (`trained_epochs`) stops too:
  SpeechBrain would train nothing and export that longer-trained model under
  the new setting.
- `trim_train_log(path, epoch)`: a resumed run's `train_log.txt` holds each
  epoch once; the line of an epoch logged by a run killed before its
  checkpoint was complete goes.

Authors
 * audio-interpret contributors 2026
"""

import atexit
import fcntl
import filecmp
import json
import os
import re
import socket
import sys
import time
import zipfile
from pathlib import Path

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from speechbrain.utils.checkpoints import CKPT_PREFIX, METAFNAME, PARAMFILE_EXT
from speechbrain.utils.logger import get_logger

from data_prep.files import file_sha256, write_json, write_text
from recipes.core.pipeline import CLASSIFIER_SIZE_KEYS

logger = get_logger(__name__)

LOCK_FILE = ".run.lock"
#: The resolved yaml SpeechBrain writes in every output folder (`create_experiment_directory`).
SAVED_HPARAMS = "hyperparams.yaml"
#: Files a run's checkpoints were trained against: another file there is another run.
RESUME_FILE_KEYS = ("embedding_model_path", "classifier_model_path", "nmf_decoder_path")
#: Sizes of what a run trains (and of the frozen classifier it reads): its checkpoints hold them.
RESUME_SIZE_KEYS = ("sample_rate", "n_fft", "n_mels", *CLASSIFIER_SIZE_KEYS, "K", "psi_decoder", "use_adapter")
#: What the checkpoints' meta hold: the valid figure that chose them (L-MAC's `checkpoint_key`).
#: Under another key no checkpoint holds the figure, and the test stage would take the newest.
RESUME_CHOICE_KEYS = ("checkpoint_key",)
RESUME_KEYS = RESUME_FILE_KEYS + RESUME_SIZE_KEYS + RESUME_CHOICE_KEYS
#: Settings a resume may change without a word: the epochs (checked on their own), the lr (its
#: own warning: `not_applied_settings`), the class count (read from the data: the first pass of
#: a start builds for 1 class, and other classes are refused by the label encoder) and what only
#: shows or logs the training.
RESUME_FREE_KEYS = (
    "number_of_epochs",
    "lr",
    "out_n_neurons",
    "n_interpretations_to_save",
    "interpret_period",
    "use_tensorboard",
)
QUARANTINE_PREFIX = "incomplete-"
#: What SpeechBrain's Brain adds to the checkpointer itself: "brain" when built, "optimizer" in fit.
TRAINING_RECOVERABLES = ("brain", "optimizer")
#: The SHA-256 of the RESUME_FILE_KEYS files at the run's last start, in its output folder.
RESUME_RECORD = "resume_inputs.json"
ZIP_MAGIC = b"PK\x03\x04"  # how every torch.save file begins

_held_locks = {}  # folder -> open file object holding the flock (one per folder per process)


class UnwritableFolderError(PermissionError):
    """An output folder that cannot be made or written; the message names the flag to change."""


def exit_status(main, argv, command):
    """Runs a command's `main(argv)`: 0, or 2 with one line on stderr (`command: message`) for
    an UnwritableFolderError (an output folder it cannot or may not write), not a traceback.

    Example
    -------
    >>> def main(argv):
    ...     raise UnwritableFolderError("Cannot write to /x: pass --out with a folder you can write to.")
    >>> exit_status(main, [], "recipes/report.py")
    2
    """
    try:
        main(argv)
    except UnwritableFolderError as error:
        print(f"{command}: {error}", file=sys.stderr)
        return 2
    return 0


def _writable_folder_error(folder, error, flag):
    """The UnwritableFolderError of `folder`, saying why (`error`: an OSError or a reason)."""
    reason = error.strerror or error if isinstance(error, OSError) else error
    return UnwritableFolderError(
        f"Cannot write to {folder} ({reason}): the run writes its results there. Pass {flag} "
        "with a folder you can write to."
    )


def check_writable_folder(folder, flag):
    """Raises UnwritableFolderError, naming `flag`, when `folder` cannot be a folder this process writes.

    Creates nothing: the folder, or the nearest part of its path that exists,
    must be a folder this process can write into. For a command's checks
    before any work.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as blocker:
    ...     check_writable_folder(os.path.join(blocker.name, "out"), "--out")
    Traceback (most recent call last):
    ...
    recipes.core.run_guard.UnwritableFolderError: Cannot write to .../out (... is a file, not a folder): ... Pass --out with a folder you can write to.
    """
    folder = os.path.abspath(folder)
    existing = folder
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.exists(existing):  # a link to nothing
        target = os.readlink(existing)
        raise _writable_folder_error(folder, f"{existing} is a link to {target}, which does not exist", flag)
    if not os.path.isdir(existing):
        raise _writable_folder_error(folder, f"{existing} is a file, not a folder", flag)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _writable_folder_error(folder, f"{existing} is not writable for this user", flag)


def lock_output_folder(folder, flag="--output_folder"):
    """Takes the run lock of `folder` (created when missing) for this process.

    Arguments
    ---------
    folder : str
        The run's output folder.
    flag : str
        The command-line option that sets the folder, for the messages.

    Returns
    -------
    str
        The lock file's path.

    Raises
    ------
    RuntimeError
        Another live process holds the folder.
    UnwritableFolderError
        The folder cannot be created or written (a PermissionError).
    """
    folder = os.path.abspath(folder)
    key = os.path.realpath(folder)  # the same folder through a link is the lock this process holds
    if key in _held_locks:
        return os.path.join(folder, LOCK_FILE)
    path = os.path.join(folder, LOCK_FILE)
    check_writable_folder(folder, flag)
    try:
        os.makedirs(folder, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")
    except OSError as error:
        raise _writable_folder_error(folder, error, flag) from error
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RuntimeError(
            f"{folder} is in use by another run ({holder}). Wait for it to finish, stop it, "
            f"or pass another {flag}."
        ) from None
    handle.seek(0)
    previous = handle.read().strip()
    if previous:
        logger.warning(
            "Took over the lock of %s, left by a run that is gone (%s).", folder, previous
        )
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
    handle.flush()
    _held_locks[key] = handle
    return path


def _release_all():
    """At exit: the lock files are emptied (a clean end leaves no stale holder) and released."""
    for handle in _held_locks.values():
        try:
            handle.seek(0)
            handle.truncate()
            handle.close()
        except OSError:
            pass
    _held_locks.clear()


atexit.register(_release_all)


def _paramfile_problem(path):
    """Why a parameter file cannot be loaded, or None when it looks whole."""
    if not path.is_file():
        return f"{path.name} is missing"
    if path.stat().st_size == 0:
        return f"{path.name} is empty"
    with open(path, "rb") as fin:
        head = fin.read(len(ZIP_MAGIC))
    if len(head) < len(ZIP_MAGIC) and ZIP_MAGIC.startswith(head):
        return f"{path.name} is truncated ({len(head)} bytes)"
    if head == ZIP_MAGIC:  # torch.save's format: the central directory and CRCs catch a truncation
        try:
            with zipfile.ZipFile(path) as archive:
                broken = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            return f"{path.name} is truncated or corrupt ({error})"
        if broken is not None:
            return f"{path.name} is corrupt (member {broken})"
    return None


def checkpoint_problem(ckpt_dir, recoverable_names):
    """Why the checkpoint folder `ckpt_dir` cannot be resumed from, or None when it is complete.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = Path(tmp) / "CKPT+x"
    ...     folder.mkdir()
    ...     _ = (folder / "CKPT.yaml").write_text("unixtime: 1\\n")
    ...     checkpoint_problem(folder, ["psi"])
    'psi.ckpt is missing'
    """
    ckpt_dir = Path(ckpt_dir)
    try:
        meta = yaml.safe_load((ckpt_dir / METAFNAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        return f"{METAFNAME} cannot be read ({error})"
    if not isinstance(meta, dict):
        return f"{METAFNAME} is empty or not a mapping"
    present = sorted(path.stem for path in ckpt_dir.glob(f"*{PARAMFILE_EXT}"))
    for name in dict.fromkeys([*recoverable_names, *present]):  # also the files no one named
        problem = _paramfile_problem(ckpt_dir / f"{name}{PARAMFILE_EXT}")
        if problem:
            return problem
    return None


def quarantine_incomplete_checkpoints(checkpointer, later_names=()):
    """Renames every incomplete checkpoint folder of `checkpointer` aside, with a warning.

    Arguments
    ---------
    checkpointer : speechbrain.utils.checkpoints.Checkpointer or None
    later_names : sequence of str
        Recoverables the Brain registers after this check, and so are not yet in
        `checkpointer` (SpeechBrain adds `brain` when the Brain is built and
        `optimizer` at the start of `fit`): their files must be there too. The
        optimizer is the last file of a checkpoint, the one a kill most often cuts.

    Returns
    -------
    list of Path
        The folders moved aside (now `incomplete-CKPT+...`).
    """
    if checkpointer is None or not Path(checkpointer.checkpoints_dir).is_dir():
        return []
    moved = []
    names = [*checkpointer.recoverables, *later_names]
    for ckpt_dir in sorted(Path(checkpointer.checkpoints_dir).iterdir()):
        if not (ckpt_dir.is_dir() and ckpt_dir.name.startswith(CKPT_PREFIX)):
            continue
        problem = checkpoint_problem(ckpt_dir, names)
        if problem is None:
            continue
        target = ckpt_dir.with_name(QUARANTINE_PREFIX + ckpt_dir.name)
        n = 1
        while target.exists():
            n += 1
            target = ckpt_dir.with_name(f"{QUARANTINE_PREFIX}{n}-{ckpt_dir.name}")
        ckpt_dir.rename(target)
        logger.warning(
            "Checkpoint %s is incomplete (%s), probably written by a run that was killed: "
            "moved aside to %s; resuming from the newest complete checkpoint, if any.",
            ckpt_dir,
            problem,
            target.name,
        )
        moved.append(target)
    return moved


#: A training line of SpeechBrain's FileTrainLogger: "epoch: 3, lr: ... - train loss: ...".
_EPOCH_LINE = re.compile(r"^epoch: (\d+)(,|$)")


def trim_train_log(path, epoch):
    r"""Drops from a resumed run's `train_log.txt` the lines of epochs after `epoch`.

    Each epoch's line is written before its checkpoint: a run killed in between (the
    checkpoint then moved aside as incomplete, or never begun) logged an epoch it resumes
    before, and trains and logs it again. Called once the checkpoint is recovered, so that the
    log holds each epoch once, the line of the run that produced the weights. Test lines
    ("Epoch loaded: ...") and anything else are kept; the file is rewritten atomically, and
    only when a line goes.

    Arguments
    ---------
    path : str or Path
        The train log (a missing file is left alone).
    epoch : int
        The epoch the run resumed after; 0 (nothing recovered) changes nothing.

    Returns
    -------
    list of int
        The epochs whose lines were dropped.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     log = Path(folder) / "train_log.txt"
    ...     _ = log.write_text("epoch: 1, lr: 1 - loss: 2\nEpoch loaded: 1 - test loss: 2\nepoch: 2, lr: 1 - loss: 9\n")
    ...     fresh = trim_train_log(log, 0)  # nothing recovered: a new run appends
    ...     dropped = trim_train_log(log, 1)
    ...     kept = log.read_text().splitlines()
    >>> fresh, dropped, kept
    ([], [2], ['epoch: 1, lr: 1 - loss: 2', 'Epoch loaded: 1 - test loss: 2'])
    """
    path = Path(path)
    if epoch < 1 or not path.is_file():
        return []
    kept, dropped = [], []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        match = _EPOCH_LINE.match(line)
        if match and int(match.group(1)) > epoch:
            dropped.append(int(match.group(1)))
        else:
            kept.append(line)
    if dropped:
        write_text("".join(kept), path)
        logger.warning(
            "%s: dropped the line(s) of epoch(s) %s, logged by a run stopped before their "
            "checkpoint was complete; the run resumes after epoch %d and logs them again.",
            path,
            ", ".join(map(str, dropped)),
            epoch,
        )
    return dropped


def saved_settings(path):
    """{key: value} of the plain (untagged) top-level values of a saved hyperparams.yaml; {} when unreadable."""
    try:
        with open(path, encoding="utf-8") as fin:
            data = YAML(typ="rt", pure=True).load(fin)
    except (OSError, YAMLError):
        return {}
    if not isinstance(data, dict):
        return {}
    plain = (str, int, float, bool, list)
    return {key: value for key, value in data.items() if isinstance(value, plain) and not getattr(value, "tag", None)}


def _same_value(key, before, now, recorded_digest=None):
    """Whether a RESUME_KEYS value is unchanged: files by their bytes, the rest by value.

    A file given at another path is the same file when both paths hold the same bytes, or,
    when the old path is gone (the file was moved), when the new one's SHA-256 is the one
    recorded at the run's last start (`recorded_digest`, from RESUME_RECORD).
    """
    if before == now or (isinstance(before, list) and list(before) == list(now or [])):
        return True
    if key not in RESUME_FILE_KEYS or not os.path.isfile(str(now)):
        return False
    if os.path.isfile(str(before)):
        return filecmp.cmp(str(before), str(now), shallow=False)
    return recorded_digest is not None and file_sha256(str(now)) == recorded_digest


def trained_epochs(save_folder, recoverable_names=()):
    """The epochs done by the checkpoint a run in `save_folder` resumes from, or None.

    SpeechBrain resumes from the newest complete checkpoint (by its `unixtime`);
    its `counter.ckpt` holds the epoch it ended. A checkpoint missing one of
    `recoverable_names`' files, or with a torn one, is not complete: the run sets it
    aside (`quarantine_incomplete_checkpoints`) and resumes from an older one. None
    when there is no complete checkpoint or it has no readable counter.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for name, time, epoch in (("CKPT+a", 2, "20"), ("CKPT+b", 1, "12")):
    ...         folder = Path(tmp) / name
    ...         folder.mkdir()
    ...         _ = (folder / METAFNAME).write_text(f"unixtime: {time}\\n")
    ...         _ = (folder / "counter.ckpt").write_text(epoch)
    ...     trained_epochs(tmp)
    20
    """
    newest = newest_complete_checkpoint(save_folder, recoverable_names)
    if newest is None:
        return None
    try:
        return int((newest / f"counter{PARAMFILE_EXT}").read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def newest_complete_checkpoint(save_folder, recoverable_names=()):
    """The checkpoint folder a run in `save_folder` resumes from (the newest complete one by
    its `unixtime`), or None: there is none, or every one is incomplete and is set aside
    (`quarantine_incomplete_checkpoints`), so the run starts afresh."""
    newest = None  # (unixtime, folder)
    for ckpt_dir in Path(save_folder).iterdir():
        if not (ckpt_dir.is_dir() and ckpt_dir.name.startswith(CKPT_PREFIX)):
            continue
        if checkpoint_problem(ckpt_dir, recoverable_names) is not None:
            continue  # an incomplete one: set aside before the run resumes
        meta = yaml.safe_load((ckpt_dir / METAFNAME).read_text(encoding="utf-8"))
        unixtime = meta.get("unixtime")
        if isinstance(unixtime, (int, float)) and (newest is None or unixtime > newest[0]):
            newest = (unixtime, ckpt_dir)
    return None if newest is None else newest[1]


def changed_settings(saved, hparams):
    """[(key, last start's value, this start's)] for the numbers and flags of the yaml that
    differ, but RESUME_KEYS (refused) and RESUME_FREE_KEYS.

    Example
    -------
    >>> changed_settings({"alpha": 10, "lr": 0.1, "beta": 0.5, "name": "a"}, {"alpha": 1, "lr": 1, "beta": 0.5, "name": "b"})
    [('alpha', 10, 1)]
    """
    changed = []
    for key, before in saved.items():
        now = hparams.get(key)
        if key in RESUME_KEYS + RESUME_FREE_KEYS or key not in hparams:
            continue
        numbers = all(isinstance(value, (int, float)) for value in (before, now))
        if numbers and (type(before) is bool) == (type(now) is bool) and before != now:
            changed.append((key, before, now))
    return changed


def _recoverable_names(hparams):
    """The names a complete checkpoint of the run holds (its checkpointer's and the Brain's)."""
    checkpointer = hparams.get("checkpointer")
    return [*getattr(checkpointer, "recoverables", {}), *TRAINING_RECOVERABLES] if checkpointer else []


def not_applied_settings(hparams):
    """{key: its value at the last start} for the settings this start gives otherwise and a
    resume does not apply: the learning rate, which comes back with the optimiser's state
    from the newest complete checkpoint. Empty for a fresh start. Read before SpeechBrain
    rewrites the folder's hyperparams.yaml."""
    save_folder = hparams.get("save_folder")
    if not save_folder or not os.path.isdir(save_folder):
        return {}
    saved = saved_settings(os.path.join(hparams["output_folder"], SAVED_HPARAMS))
    if saved.get("lr") is None or hparams.get("lr") is None or saved["lr"] == hparams["lr"]:
        return {}
    if newest_complete_checkpoint(save_folder, _recoverable_names(hparams)) is None:  # a fresh start applies it
        return {}
    return {"lr": saved["lr"]}


def keep_applied_settings(output_folder, kept, given):
    """Rewrites the top-level lines of `kept`'s keys in the folder's hyperparams.yaml (which
    SpeechBrain wrote with this start's values) to the values the run applies, the given one
    in a comment: the record of how the model was trained stays true (`not_applied_settings`).

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as out:
    ...     _ = Path(out, SAVED_HPARAMS).write_text("seed: 1\\nlr: 0.01\\nopt: !name:torch.optim.Adam\\n    lr: !ref <lr>\\n")
    ...     keep_applied_settings(out, {"lr": 0.0002}, {"lr": 0.01})
    ...     print(Path(out, SAVED_HPARAMS).read_text(), end="")
    seed: 1
    lr: 0.0002  # the checkpoints' (this start gave 0.01, not applied: a resume keeps the optimiser's state)
    opt: !name:torch.optim.Adam
        lr: !ref <lr>
    """
    path = os.path.join(output_folder, SAVED_HPARAMS)
    if not kept or not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as fin:
        text = fin.read()
    for key, value in kept.items():
        line = (
            f"{key}: {value}  # the checkpoints' (this start gave {given.get(key)}, not applied: "
            "a resume keeps the optimiser's state)"
        )
        text = re.sub(rf"^{re.escape(key)}:[^\n]*$", lambda _match, line=line: line, text, count=1, flags=re.M)
    write_text(text, path)


def refuse_changed_resume(hparams):
    """A ValueError when the run would resume from checkpoints made with another classifier or sizes.

    SpeechBrain resumes from `<save_folder>`'s checkpoints whatever the new
    command says: a run given another `--classifier_folder` in the same
    output folder went on training (or, with its epochs done, exported) the
    interpreter of the old classifier, with the new one's name in its logs.
    The settings of the last start are in the folder's `hyperparams.yaml`
    (SpeechBrain rewrites it at each start: call this before). The learning
    rate and the like may change on a resume, but the optimiser's state, with its
    learning rate, comes back from the checkpoint: a new `lr` is not applied, and the
    returned warning says so (not when every checkpoint is incomplete: those are set aside
    and the run starts afresh, with the new lr). The number of epochs may grow
    (the run goes on training); fewer epochs than the newest checkpoint holds
    are refused (`trained_epochs`).

    Arguments
    ---------
    hparams : dict
        The run's loaded yaml (`output_folder`, `save_folder`, RESUME_KEYS).

    Returns
    -------
    list of str
        Warnings for the run's log: the caller logs them once SpeechBrain has set up the
        logging (this check runs before, and a warning then reached the console only).

    Raises
    ------
    ValueError
        Naming the key, the folder's value and the new one, and what to do.
    """
    warnings = []
    save_folder = hparams.get("save_folder")
    if not save_folder or not os.path.isdir(save_folder):
        return warnings
    if not any(name.startswith(CKPT_PREFIX) for name in os.listdir(save_folder)):
        return warnings  # nothing to resume from
    saved = saved_settings(os.path.join(hparams["output_folder"], SAVED_HPARAMS))
    recorded = _recorded_inputs(os.path.join(hparams["output_folder"], RESUME_RECORD))
    for key in RESUME_KEYS:
        if key not in saved or key not in hparams or hparams[key] is None:
            continue
        if not _same_value(key, saved[key], hparams[key], recorded.get(key)):
            raise ValueError(
                f"{hparams['output_folder']} holds checkpoints of a run with {key} = {saved[key]}; "
                f"this command gives {hparams[key]}, and would resume from them. Give another "
                "--output_folder (or --experiment_name) for the new run, or delete "
                f"{save_folder} to start this folder over."
            )
    changed = changed_settings(saved, hparams)
    if changed and newest_complete_checkpoint(save_folder, _recoverable_names(hparams)) is not None:
        warnings.append(
            f"{hparams['output_folder']} resumes from its checkpoints with other settings than its last "
            f"start ({', '.join(f'{key} {before} -> {now}' for key, before, now in changed)}): what is "
            "trained so far was trained with the old ones, the rest of the run (its epochs, test and "
            "export) uses the new ones, which hyperparams.yaml records. Give another --output_folder "
            "for a run wholly with the new settings."
        )
    if "lr" in not_applied_settings(hparams):
        warnings.append(
            f"{hparams['output_folder']} resumes from its checkpoints, whose optimiser state holds the "
            f"learning rate (lr = {saved['lr']} at the last start, annealed since): --lr {hparams['lr']} "
            "is not applied (hyperparams.yaml keeps the run's). Give another --output_folder for a run "
            "with the new lr."
        )
    changed = changed_input(hparams, hparams["output_folder"])
    if changed:
        raise ValueError(
            f"{hparams['output_folder']} holds checkpoints of a run that read {changed[0]} = "
            f"{changed[1]} with other contents: the file changed since that run started (trained "
            "again?), and this command would resume from them. Give another --output_folder (or "
            f"--experiment_name) for a run on the new file, or delete {save_folder} to start "
            "this folder over."
        )
    epochs, done = hparams.get("number_of_epochs"), trained_epochs(save_folder, _recoverable_names(hparams))
    if isinstance(epochs, int) and done is not None and done > epochs:
        raise ValueError(
            f"{hparams['output_folder']} holds a run already trained for {done} epochs; "
            f"--number_of_epochs {epochs} would train nothing and export that {done}-epoch "
            f"model as a run of {epochs}. Give another --output_folder (or --experiment_name) "
            f"for the new run, --number_of_epochs {done} or more to reuse or continue this "
            f"one, or delete {save_folder} to start this folder over."
        )
    return warnings


def _recorded_inputs(path):
    """{key: SHA-256} of a RESUME_RECORD file; {} when there is none or it cannot be read."""
    try:
        with open(path, encoding="utf-8") as fin:
            recorded = json.load(fin)
    except (OSError, ValueError):
        return {}
    return {key: value for key, value in recorded.items() if isinstance(value, str)} if isinstance(recorded, dict) else {}


def changed_input(hparams, run_folder):
    """(key, path) of the first RESUME_FILE_KEYS file of `hparams` whose SHA-256 is not the one
    recorded in `<run_folder>/RESUME_RECORD`, or None (also when there is no record)."""
    recorded = _recorded_inputs(os.path.join(run_folder, RESUME_RECORD))
    for key, digest in recorded.items():
        path = hparams.get(key)
        if key in RESUME_FILE_KEYS and path and os.path.isfile(str(path)) and file_sha256(str(path)) != digest:
            return key, str(path)
    return None


#: The flag a user gives for each RESUME_FILE_KEYS file (the classifier's two come from its folder).
INPUT_FLAGS = {"embedding_model_path": "classifier_folder", "classifier_model_path": "classifier_folder"}


def changed_input_message(hparams, run_folder, key, path):
    """Why the interpreter trained in `run_folder` refuses `key`'s file `path` (`changed_input`), and
    what to do: another file than its training's (the flag behind `key`, e.g. `classifier_folder`,
    has another value than in its saved hyperparams.yaml), or the same file, changed since.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     _ = Path(run, SAVED_HPARAMS).write_text("classifier_folder: /runs/cls\\n")
    ...     message = changed_input_message(
    ...         {"classifier_folder": "results/cls"}, run, "classifier_model_path", "results/cls/c.ckpt")
    >>> message.endswith("give --classifier_folder /runs/cls (or the folder that classifier is in now).")
    True
    """
    flag = INPUT_FLAGS.get(key, key)
    before = saved_settings(os.path.join(run_folder, SAVED_HPARAMS)).get(flag)
    now = hparams.get(flag)
    if before is not None and now is not None and str(before) != str(now):
        where = "the folder that classifier is in now" if flag == "classifier_folder" else "where that file is now"
        return (
            f"The interpreter in {run_folder} was trained with {flag} = {before}; this command reads "
            f"{key} = {path} (--{flag} {now}, given or the yaml's default), another file: give "
            f"--{flag} {before} (or {where})."
        )
    return (
        f"The interpreter in {run_folder} was trained on {key} = {path} with other contents: the "
        "file changed since its training started (trained again?). Evaluate it with the file it "
        "was trained on, or train the interpreter again on this one."
    )


def record_resume_inputs(hparams):
    """Writes the SHA-256 of the run's RESUME_FILE_KEYS files to `<output_folder>/RESUME_RECORD`.

    Called at each start once `refuse_changed_resume` has passed: a later resume
    compares the files it is given with these.
    """
    digests = {}
    for key in RESUME_FILE_KEYS:
        path = hparams.get(key)
        if path and os.path.isfile(str(path)):
            digests[key] = file_sha256(str(path))
    write_json(digests, os.path.join(hparams["output_folder"], RESUME_RECORD))
