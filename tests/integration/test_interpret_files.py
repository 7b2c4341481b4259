"""`audio-interpret` (recipes/interpret_files.py) never loses a user's file and refuses what it
cannot do before any work, in one line with exit status 2 (issue 24).

The interpreter is the tiny PIQ run of conftest.py (`tiny_piq`), loaded from its exported
`inference/` folder.
"""

import json
import multiprocessing
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from recipes import interpret_files
from recipes.interpreters import inference
from recipes.interpreters.inference import AudioInterpreter

CLIPS = ("5-100004-A-0.wav", "5-100009-A-1.wav")  # two test clips of the tiny set, other classes


@pytest.fixture
def piq_folder(tiny_piq):
    return tiny_piq["folder"] / "inference"


def run(files, folder, out, *flags):
    """interpret_files.main on the command line `files --interpreter folder --out out flags`."""
    return interpret_files.main([*map(str, files), "--interpreter", str(folder), "--out", str(out), *flags])


def listing(folder):
    """The names in `folder`, sorted, without the hidden ones (the run lock)."""
    return sorted(path.name for path in folder.iterdir() if not path.name.startswith("."))


def refusal(capsys):
    """The one line of stderr a refusal writes."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audio-interpret: "), lines
    return lines[0]


def test_an_output_never_replaces_an_input(piq_folder, tiny_synthetic, tmp_path, capsys):
    """Was: `dog.wav`'s `_original` output replaced the user's `dog_original.wav` before it was
    read, and its result was reported for the wrong audio, exit 0."""
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(tiny_synthetic / "audio" / CLIPS[0], clips / "dog.wav")
    shutil.copy(tiny_synthetic / "audio" / CLIPS[1], clips / "dog_original.wav")
    recording = (clips / "dog_original.wav").read_bytes()
    files = [clips / "dog.wav", clips / "dog_original.wav", f"{clips}/./dog.wav"]  # one given twice
    assert run(files, piq_folder, clips) == 0
    err = capsys.readouterr().err
    assert (clips / "dog_original.wav").read_bytes() == recording  # the user's file is intact
    assert f"{clips / 'dog.wav'}: its outputs are named dog-2* in {clips} ({clips / 'dog_original.wav'} is an input" in err
    assert f"{clips / 'dog.wav'} is given 2 times: explained once." in err
    written = listing(clips)
    assert written == [
        "dog-2.png",
        "dog-2_interpretation.wav",
        "dog-2_original.wav",
        "dog.wav",
        "dog_original.png",
        "dog_original.wav",
        "dog_original_interpretation.wav",
        "dog_original_original.wav",
        "predictions.json",
    ]
    # each result is the one of its own audio
    interpreter = AudioInterpreter.from_hparams(source=piq_folder)
    predictions = json.loads((clips / "predictions.json").read_text())
    assert list(predictions["files"]) == [str(clips / "dog.wav"), str(clips / "dog_original.wav")]
    for name, clip in zip(("dog.wav", "dog_original.wav"), CLIPS):
        expected = interpreter.interpret_file(tiny_synthetic / "audio" / clip)
        assert predictions["files"][str(clips / name)]["probability"] == pytest.approx(expected["probability"], abs=1e-6)
    assert len(predictions["notes"]) == 2


def test_an_output_never_replaces_a_file_no_run_wrote(piq_folder, tiny_synthetic, tmp_path, capsys):
    """Was: `dog.wav --out clips` wrote over the user's `clips/dog_original.wav` and `clips/dog.png`
    (files it was not given), exit 0; a rerun still rewrites the run's own outputs."""
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(tiny_synthetic / "audio" / CLIPS[0], clips / "dog.wav")
    shutil.copy(tiny_synthetic / "audio" / CLIPS[1], clips / "dog_original.wav")
    (clips / "dog.png").write_bytes(b"the user's picture")
    mine = {name: (clips / name).read_bytes() for name in ("dog_original.wav", "dog.png")}
    for attempt in range(2):  # the second run: the same outputs again, no dog-3
        assert run([clips / "dog.wav"], piq_folder, clips) == 0
        err = capsys.readouterr().err
        assert {name: (clips / name).read_bytes() for name in mine} == mine
        assert "is already there and no earlier run wrote it, not overwritten" in err, err
        written = listing(clips)
        assert written == [
            "dog-2.png",
            "dog-2_interpretation.wav",
            "dog-2_original.wav",
            "dog.png",
            "dog.wav",
            "dog_original.wav",
            "predictions.json",
        ], attempt
    # a predictions.json that is not this command's: refused before any work
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "predictions.json").write_text('{"model": "theirs"}')
    assert run([clips / "dog.wav"], piq_folder, out) == 2
    assert "is not a predictions.json of audio-interpret" in refusal(capsys)
    assert sorted(path.name for path in out.iterdir()) == ["predictions.json"]


def _hold_lock(out, held, release):
    """Holds `out`'s run lock until `release`, then lets it go as a run's exit does (atexit)."""
    from recipes.core import run_guard

    run_guard._held_locks.clear()  # the forked copy of pytest's own locks: not this run's to empty
    run_guard.lock_output_folder(out)
    held.set()
    release.wait(timeout=60)
    run_guard._release_all()  # a forked process leaves with os._exit: no atexit handlers


def test_a_second_run_on_a_busy_out_is_refused(piq_folder, tiny_synthetic, tmp_path, capsys):
    """Was: two runs on one --out both exited 0 and predictions.json kept one run's entries."""
    out = tmp_path / "out"
    # another run holding --out: a forked process (the imports done; a fresh one takes ~5 s)
    context = multiprocessing.get_context("fork")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(str(out), held, release))
    holder.start()
    try:
        assert held.wait(timeout=60)
        assert run([tiny_synthetic / "audio" / CLIPS[0]], piq_folder, out) == 2
        line = refusal(capsys)
        assert f"{out} is in use by another run (pid {holder.pid}" in line and "pass another --out" in line
        assert sorted(path.name for path in out.iterdir()) == [".run.lock"]  # nothing written
    finally:
        release.set()
        holder.join(timeout=30)
    assert run([tiny_synthetic / "audio" / CLIPS[0]], piq_folder, out) == 0  # free again


@pytest.mark.parametrize("problem", ["a file", "under a file"])
def test_an_out_that_cannot_be_a_folder_is_refused_before_any_work(
    piq_folder, tiny_synthetic, tmp_path, capsys, monkeypatch, problem
):
    """Was: FileExistsError / NotADirectoryError tracebacks after the first file was explained, exit 1."""
    blocker = tmp_path / "taken.txt"
    blocker.write_text("mine")
    out = blocker if problem == "a file" else blocker / "out"

    def never(*args, **kwargs):
        raise AssertionError("the interpreter was loaded before --out was checked")

    monkeypatch.setattr(AudioInterpreter, "from_hparams", never)
    assert run([tiny_synthetic / "audio" / CLIPS[0]], piq_folder, out) == 2
    line = refusal(capsys)
    assert f"Cannot write to {out} ({blocker} is a file, not a folder)" in line and "Pass --out" in line
    assert blocker.read_text() == "mine"


@pytest.mark.parametrize("device", ["bogus", "cuda:0", "cuda:99"])
def test_a_device_this_machine_does_not_have_is_refused(piq_folder, tiny_synthetic, tmp_path, capsys, device):
    """Was: a RuntimeError traceback, exit 1."""
    if device == "cuda:0" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert run([tiny_synthetic / "audio" / CLIPS[0]], piq_folder, tmp_path / "out", "--device", device) == 2
    line = refusal(capsys)
    assert f"--device {device}" in line and "cpu" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kept", [0.6, 0.8, 0.9, "in a class name"])
def test_a_truncated_inference_yaml_is_refused_in_one_line(piq_folder, tiny_synthetic, tmp_path, capsys, kept):
    """Was: `KeyError: 'pretrainer'` and other tracebacks, exit 1; cut in its last lines, the yaml
    loaded the checkpoints without the strict check; cut in a class name, it was called untrusted."""
    folder = tmp_path / "copy"
    shutil.copytree(piq_folder, folder)
    text = (folder / "hyperparams.yaml").read_text()
    start = text.index("!new:models.PIQ.")  # cut three letters into the class name
    end = start + len("!new:models.PIQ.Abc") if kept == "in a class name" else int(kept * len(text))
    (folder / "hyperparams.yaml").write_text(text[:end])
    assert run([tiny_synthetic / "audio" / CLIPS[0]], folder, tmp_path / "out") == 2
    line = refusal(capsys)
    assert line.startswith(f"audio-interpret: cannot load the interpreter {folder}: ")
    assert "truncated" in line or "cut short" in line or "not valid yaml" in line or "not a complete" in line
    if kept == "in a class name":
        assert f"has `{text[start:end]}`, which names nothing in models: the yaml is truncated" in line


def test_a_mistyped_local_path_is_not_sent_to_the_network(piq_folder, tiny_synthetic, tmp_path, capsys, monkeypatch):
    """Was: `results/piqq` taken for a hub id and retried against the network for 31 s."""
    (tmp_path / "results" / "piq").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)

    def no_network(*args, **kwargs):
        raise AssertionError("fetched from the network")

    monkeypatch.setattr(inference, "fetch", no_network)
    assert run([tiny_synthetic / "audio" / CLIPS[0]], "results/piqq", tmp_path / "out") == 2
    line = refusal(capsys)
    assert "The interpreter results/piqq does not exist. Did you mean results/piq?" in line
    assert "not taken for a hub id because results/ is a folder here" in line


def test_trust_code_opts_in_to_a_yaml_that_runs_code(piq_folder, tiny_synthetic, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "downloaded"
    shutil.copytree(piq_folder, folder)
    with open(folder / "hyperparams.yaml", "a", encoding="utf-8") as fout:
        fout.write('evil: !apply:os.system ["touch MARKER"]\n')
    clip = tiny_synthetic / "audio" / CLIPS[0]
    assert run([clip], folder, tmp_path / "out") == 2
    assert "has `!apply:os.system`" in refusal(capsys) and not (tmp_path / "MARKER").exists()
    assert run([clip], folder, tmp_path / "out", "--trust_code") == 0
    assert (tmp_path / "MARKER").exists()


def test_a_flag_given_twice_is_refused(piq_folder, tiny_synthetic, tmp_path, capsys):
    clip = tiny_synthetic / "audio" / CLIPS[0]
    assert run([clip], piq_folder, tmp_path / "a", "--out", str(tmp_path / "b")) == 2
    assert "--out is given twice" in refusal(capsys)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_nan_samples_are_counted_in_the_warnings(piq_folder, tmp_path):
    signal = np.full(16000, 0.5, dtype=np.float32)
    signal[:5] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(str(path), signal, 16000, subtype="FLOAT")
    result = AudioInterpreter.from_hparams(source=piq_folder).interpret_file(path)
    assert result["warnings"] == [f"{path}: 5 of 16000 sample values are NaN or infinite; they are read as 0."]


def test_reruns_keep_earlier_entries_and_a_dollar_in_a_name_is_explained(piq_folder, tiny_synthetic, tmp_path, monkeypatch):
    """Guards the ledger and the merge of `main`, and `plot_interpretation`'s title: a file named
    `b$q$.wav` crashed the run in matplotlib's mathtext (the files after it never explained, no
    predictions.json); a rerun on fewer files dropped the others' entries, so a third run took
    their outputs for the user's; a rerun from another working folder did too."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for name, clip in (("a.wav", CLIPS[0]), ("b$q$.wav", CLIPS[1]), ("c.wav", CLIPS[0])):
        shutil.copy(tiny_synthetic / "audio" / clip, clips / name)
    monkeypatch.chdir(tmp_path)
    assert run([clips / "a.wav", clips / "b$q$.wav", clips / "c.wav"], piq_folder, "out") == 0
    assert listing(tmp_path / "out") == sorted(
        f"{stem}{suffix}" for stem in ("a", "b$q$", "c") for suffix in (".png", "_interpretation.wav", "_original.wav")
    ) + ["predictions.json"]
    assert run([clips / "a.wav"], piq_folder, "out") == 0  # fewer files: the others' entries stay
    record = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert list(record["files"]) == [str(clips / "b$q$.wav"), str(clips / "c.wav"), str(clips / "a.wav")]
    monkeypatch.chdir(clips)  # another working folder: out's relative paths mean nothing here
    assert run([clips / "c.wav"], piq_folder, tmp_path / "out") == 0
    assert "c-2.png" not in listing(tmp_path / "out")  # c's outputs rewritten, not renamed around
    assert not list((tmp_path / "out").glob(".audio-interpret-writing-*"))  # the ledger is gone
