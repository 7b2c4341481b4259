"""Tests added by a mutation audit of the commands' guards: each one fails under a small,
plausible change of the code that the other tests let through (named in each docstring), and
its expected value is worked out by hand, not read from the code under test.

- recipes/core/run_guard.py: a folder writable but not searchable is refused;
- recipes/evaluation/explain_file.py: the PNG's last, shorter group of frames is a mean;
- recipes/interpret_files.py: `--max_components 0`, the exit status and the errors of skipped
  files, the entries predictions.json keeps, the ledger of a killed run, an earlier run's
  component wavs; the interpreter is a hand-made stand-in (no trained model);
- recipes/compare.py: a seed given as text, a summary.json of the user's, a variant not
  paired with demo runs whose shared stages (data, classifier) another config made.
"""

import json
import os

import pytest
import torch

from recipes import compare, demo, interpret_files
from recipes.core import run_guard
from recipes.core.run_guard import UnwritableFolderError, check_writable_folder
from recipes.evaluation.explain_file import _PooledFrames

# ---------------------------------------------------------------- run_guard


def test_a_folder_writable_but_not_searchable_is_refused(tmp_path, monkeypatch):
    """A folder of mode 0o600 (w without x): no file can be made in it. The real test of this
    is skipped as root, so os.access answers as for a normal user here: w yes, x no.
    Catches: `os.access(existing, os.W_OK)` without `os.X_OK`."""
    parent = tmp_path / "locked"
    parent.mkdir()
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if os.path.abspath(path) == str(parent):
            return not mode & os.X_OK  # writable, not searchable
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(run_guard.os, "access", access)
    with pytest.raises(UnwritableFolderError, match=rf"{parent} is not writable for this user\): .*Pass --out "):
        check_writable_folder(str(parent / "run"), "--out")
    check_writable_folder(str(tmp_path / "free" / "run"), "--out")  # an ordinary folder passes


# ---------------------------------------------------------------- explain_file


def test_the_last_group_of_two_frames_is_their_mean_not_their_sum():
    """Frames 0..4 (bin 1: 100 + g), pooled by 3: groups (0 1 2) and the short (3 4), means
    1 and 3.5 (101, 103.5); the sum of the last would be 7. The existing test's last group
    has one frame, whose sum is its mean. Catches: `self.rest.sum(...)` for `.mean(...)`."""
    pooled = _PooledFrames(3)
    g = torch.arange(0.0, 5.0)
    pooled.add(torch.stack([g, 100 + g], dim=1))
    assert pooled.result().tolist() == [[1.0, 101.0], [3.5, 103.5]]


# ---------------------------------------------------------------- interpret_files


class HandMadeInterpreter:
    """Stands for AudioInterpreter: a missing file is a FileNotFoundError, as the reader's;
    with `components`, L2I-like results with components 0, 1, 2 of relevance 0.1, 0.5, 0.3."""

    method = "hand-made"

    def __init__(self, components=False):
        self.components = components

    def interpret_file(self, path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist")
        result = {
            "X": torch.ones(2, 2), "mask": torch.ones(2, 2), "X_int": torch.ones(2, 2),
            "input": torch.zeros(4), "interpretation": torch.zeros(4), "sample_rate": 4,
            "class": "dog", "probability": 0.75, "warnings": [],
        }  # fmt: skip
        if self.components:
            result["components"] = [
                {"component": k, "relevance": r, "waveform": torch.zeros(4)} for k, r in ((0, 0.1), (1, 0.5), (2, 0.3))
            ]
        return result


def _fake_save_interpretation(folder, clip_id, **_):
    """The three files of `save_interpretation`, without drawing the figure."""
    paths = {
        "png": os.path.join(folder, f"{clip_id}.png"),
        "original": os.path.join(folder, f"{clip_id}_original.wav"),
        "interpretation": os.path.join(folder, f"{clip_id}_interpretation.wav"),
    }
    for path in paths.values():
        with open(path, "w", encoding="utf-8") as fout:
            fout.write(clip_id)
    return paths


@pytest.fixture
def hand_made(monkeypatch):
    """interpret_files.main with HandMadeInterpreter (`components` set by the test)."""
    made = {"components": False}
    monkeypatch.setattr(
        interpret_files.AudioInterpreter,
        "from_hparams",
        classmethod(lambda cls, **kwargs: HandMadeInterpreter(made["components"])),
    )
    monkeypatch.setattr(interpret_files, "save_interpretation", _fake_save_interpretation)
    monkeypatch.setattr(interpret_files, "write_wav", lambda path, *_: open(path, "w").close())
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    return made


def _audio(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"stands for audio")
    return str(path)


def _main(files, out, *flags):
    return interpret_files.main([*files, "--interpreter", "unused", "--out", str(out), *flags])


def test_max_components_zero_is_accepted():
    """0: write no component wav (the help says so). Catches: `_count` refusing 0 (`value < 1`)."""
    assert interpret_files.parse_arguments(["a.wav", "--interpreter", "x", "--max_components", "0"]).max_components == 0


def test_a_skipped_file_is_counted_and_the_exit_status_is_1(hand_made, tmp_path, capsys):
    """One good file, one missing: 1 of 2 not explained, named in "errors", exit 1.
    Catches: `return 0` after the failures are printed; a skipped file left out of `failures`."""
    good, missing = _audio(tmp_path / "in" / "a.wav"), str(tmp_path / "in" / "gone.wav")
    out = tmp_path / "out"
    assert _main([good, missing], out) == 1
    assert "1 of 2 files could not be explained" in capsys.readouterr().err
    predictions = json.loads((out / "predictions.json").read_text())
    assert list(predictions["files"]) == [good]
    assert predictions["errors"] == {missing: f"{missing} does not exist"}
    assert _main([good], out) == 0  # nothing skipped: 0


def test_an_entry_whose_outputs_a_rerun_wrote_over_is_dropped(hand_made, tmp_path):
    """x/a.wav, then y/a.wav in the same --out: the second run writes a_* over the first's
    (they are an earlier run's, not the user's), so predictions.json lists y/a.wav only.
    Catches: keeping every earlier entry not explained again (`if path not in predictions`)."""
    first, second = _audio(tmp_path / "x" / "a.wav"), _audio(tmp_path / "y" / "a.wav")
    out = tmp_path / "out"
    assert _main([first], out) == 0
    assert _main([second], out) == 0
    predictions = json.loads((out / "predictions.json").read_text())
    assert list(predictions["files"]) == [second]
    assert predictions["files"][second]["files"]["png"] == str(out / "a.png")


def test_a_run_killed_while_writing_is_taken_for_ours_by_the_rerun(hand_made, tmp_path, monkeypatch):
    """A run killed after writing a_original.wav, before predictions.json: its ledger names
    a_interpretation.wav, a_original.wav, a.png (hand-listed), so the rerun writes over them
    as `a`, not `a-2`, with no note. Catches: the ledger line (`_note_outputs`) removed."""
    clip = _audio(tmp_path / "in" / "a.wav")
    out = tmp_path / "out"
    real_save = interpret_files.save_result

    def killed(result, folder, stem, max_components=None):
        with open(os.path.join(folder, f"{stem}_original.wav"), "w", encoding="utf-8") as fout:
            fout.write("half")
        raise KeyboardInterrupt  # the kill

    monkeypatch.setattr(interpret_files, "save_result", killed)
    with pytest.raises(KeyboardInterrupt):
        _main([clip], out)
    ledger = out / f"{interpret_files.LEDGER_PREFIX}0"
    assert sorted(ledger.read_text().splitlines()) == ["a.png", "a_interpretation.wav", "a_original.wav"]
    monkeypatch.setattr(interpret_files, "save_result", real_save)
    assert _main([clip], out) == 0
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions["notes"] == []
    assert predictions["files"][clip]["files"]["original"] == str(out / "a_original.wav")
    assert (out / "a_original.wav").read_text() == "a"  # rewritten by the rerun
    assert not list(out.glob("a-2*")) and not ledger.exists()


def test_an_earlier_runs_component_wavs_not_written_again_are_removed(hand_made, tmp_path):
    """Components 0, 1, 2 of relevance 0.1, 0.5, 0.3: --max_components 3 writes 000, 001,
    002; a rerun with 1 writes 001 only (the most relevant), and 000 and 002 of the earlier
    run are removed, not left beside it. Catches: the removal of an earlier run's outputs."""
    hand_made["components"] = True
    clip = _audio(tmp_path / "in" / "a.wav")
    out = tmp_path / "out"
    assert _main([clip], out, "--max_components", "3") == 0
    assert sorted(path.name for path in out.glob("*_component*")) == [
        "a_component000.wav", "a_component001.wav", "a_component002.wav"
    ]  # fmt: skip
    assert _main([clip], out, "--max_components", "1") == 0
    assert sorted(path.name for path in out.glob("*_component*")) == ["a_component001.wav"]
    entry = json.loads((out / "predictions.json").read_text())["files"][clip]
    assert entry["files"]["components"] == [str(out / "a_component001.wav")] and entry["components_kept"] == 3


# ---------------------------------------------------------------- compare


def test_the_common_seed_given_as_text_is_the_demos_own_folder():
    """Seed "1234" (text) with the common seed 1234: the demo's folder "out", not
    "out/seeds/1234". Catches: `seed == common_seed` without `int()`."""
    assert compare.interpreter_base("out", "1234", 1234) == "out"
    assert compare.interpreter_base("out", 1234, "1234") == "out"


def test_a_summary_json_of_the_users_is_not_overwritten(tmp_path):
    """A summary.json that is JSON but no table of this command (a mapping of mappings of
    {"mean", ...}) is the user's: refused. Catches: the json check accepting any JSON."""
    (tmp_path / "summary.json").write_text(json.dumps({"notes": {"seed 1": "looked fine"}}))
    with pytest.raises(ValueError, match=r"summary.json is already there and is not a summary"):
        compare.check_own_files(str(tmp_path))
    (tmp_path / "summary.json").write_text(json.dumps({"PIQ": {"fid_in": {"mean": 0.5, "std": None, "n": 1}}}))
    compare.check_own_files(str(tmp_path))  # its own: kept going


def _write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fout:
        json.dump(data, fout)


def _made_beforehand(config, out, seeds, evaluation, variant=None):
    """Every planned stage's outputs written (each stage is reused, nothing trains), each
    lmac evaluation's metrics.json `evaluation`."""
    plan, eval_folders = compare.plan_stages(config, str(out), seeds, ["lmac"], variant)
    for folders in eval_folders.values():
        _write_json(os.path.join(folders["lmac"], "metrics.json"), evaluation)
    for _, stage in plan:
        for path in stage.outputs:
            if not os.path.isfile(path):
                _write_json(path, {})


def test_a_variant_is_not_paired_with_demo_runs_on_another_classifier(tmp_path, monkeypatch):
    """The demo's lmac folders of both seeds are done with the demo's settings, but its data
    and classifier were made by another config: those lmac runs were trained on another
    classifier, so no seed is paired (an empty table) and both seeds are named as having no
    evaluation with the demo's settings. Catches: `shared <= made` dropped from the pairing."""
    smoke = demo.load_config(smoke=True)
    common = smoke["common"]["seed"]
    seeds = [common, common + 1]
    config = compare.apply_settings(smoke, ["lmac.average_checkpoints=3"])
    evaluation = {"interpreter": "LMAC", "methods": {"LMAC": {"si_sdri": 2.0, "gt_precision": 0.5, "fid_in": 0.5}}}
    _made_beforehand(smoke, tmp_path, seeds, evaluation)
    _made_beforehand(config, tmp_path, seeds, evaluation, variant="avg3")
    # the demo's shared stages: not made with its settings (stage.done() would refuse them)
    monkeypatch.setattr(compare, "_made_as_planned", lambda stage: stage.name not in compare.SHARED_STAGES)
    result = compare.run_compare(config, str(tmp_path), seeds, ["lmac"], variant="avg3", baseline_config=smoke)
    assert result["paired"] == ""
    text = (tmp_path / "variants" / "avg3" / "compare" / "summary.md").read_text(encoding="utf-8")
    assert f"Seeds {common}, {common + 1} have no evaluation with the demo's settings" in text
    assert "Against the demo's settings" not in text
