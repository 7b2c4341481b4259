"""A demo folder keeps its stages when the checkout and the folder move together, or when it is
run again from another clone (`recipes/demo.py`: `portable`, `demo_roots.json`).

Nothing is trained: each stage of the smoke demo's real plan (`build_stages`) runs a writer of
placeholder outputs through `Stage.run`, which writes the records as the demo does; the
checkout is a copy of hparams/ under a temporary folder (`demo.REPO_ROOT` pointed at it).
"""

import json
import os
import shutil

import pytest

from recipes import demo

SMOKE = demo.load_config(smoke=True)


def _plan(repo, out, monkeypatch):
    monkeypatch.setattr(demo, "REPO_ROOT", str(repo))
    stages, _ = demo.build_stages(SMOKE, str(out))
    for stage in stages:

        def write(stage=stage):
            for path in stage.outputs:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as fout:
                    fout.write(f"{stage.name} output")

        stage._run = write
    return stages


@pytest.fixture
def moved(tmp_path, monkeypatch):
    """A finished demo run from checkout a/ into a/results/demo, then a/ moved to b/."""
    repo = tmp_path / "a"
    shutil.copytree(os.path.join(demo.REPO_ROOT, "hparams"), repo / "hparams")
    for stage in _plan(repo, repo / "results" / "demo", monkeypatch):
        assert stage.run() is not None  # ran, and wrote its records
    shutil.move(str(repo), str(tmp_path / "b"))
    return tmp_path / "b", tmp_path / "b" / "results" / "demo"


def test_moved_checkout_and_folder_are_reused(moved, monkeypatch):
    repo, out = moved
    stages = _plan(repo, out, monkeypatch)
    assert [stage.done() for stage in stages] == [True] * len(stages)
    roots = json.loads((out / "classifier" / demo.ROOTS_RECORD).read_text())
    assert roots == {"<repo>": str(repo.parent / "a"), "<output>": str(repo.parent / "a" / "results" / "demo")}


def test_moved_folder_still_sees_an_edited_recipe_yaml(moved, monkeypatch):
    repo, out = moved
    yaml_file = repo / SMOKE["stages"]["lmac"]["hparams"]
    yaml_file.write_text(yaml_file.read_text() + "\nlr_extra_key: 0.5\n")
    stages = {stage.name: stage for stage in _plan(repo, out, monkeypatch)}
    assert stages["classifier"].done()
    with pytest.raises(ValueError, match="which was edited since"):
        stages["lmac"].done()


def test_moved_folder_still_sees_a_rewritten_output(moved, monkeypatch):
    repo, out = moved
    (out / "piq" / "psi_model.ckpt").write_text("another command's psi")
    stages = {stage.name: stage for stage in _plan(repo, out, monkeypatch)}
    with pytest.raises(ValueError, match="changed since the demo's piq stage wrote it"):
        stages["piq"].done()
    with pytest.raises(ValueError, match="which changed since"):  # the evaluation read the old one
        stages["eval_piq"].done()


def test_moved_folder_with_other_settings_is_refused(moved, monkeypatch):
    repo, out = moved
    config = json.loads(json.dumps(SMOKE))
    config["common"]["seed"] += 1
    monkeypatch.setattr(demo, "REPO_ROOT", str(repo))
    stages, _ = demo.build_stages(config, str(out))
    with pytest.raises(ValueError, match="was made by the demo with other settings"):
        stages[0].done()
    with pytest.raises(ValueError, match="was made by the demo with other settings"):
        stages[1].done()


def test_folder_made_before_the_roots_record_is_read_where_it_is(tmp_path, monkeypatch):
    """No demo_roots.json (a folder of an older demo): the records hold today's absolute paths."""
    repo, out = tmp_path / "a", tmp_path / "a" / "results" / "demo"
    shutil.copytree(os.path.join(demo.REPO_ROOT, "hparams"), repo / "hparams")
    for stage in _plan(repo, out, monkeypatch):
        stage.run()
        os.remove(os.path.join(stage.folder, demo.ROOTS_RECORD))
    assert all(stage.done() for stage in _plan(repo, out, monkeypatch))
    (out / "lmac" / "psi_model.ckpt").write_text("another command's psi")
    with pytest.raises(ValueError, match="changed since the demo's lmac stage wrote it"):
        [stage for stage in _plan(repo, out, monkeypatch) if stage.name == "lmac"][0].done()


def test_a_stopped_stage_resumes_after_the_move(moved, monkeypatch):
    """A training stage stopped part-way (its started record, with the roots of then) resumes
    from the new place with the same settings, and is refused with others."""
    repo, out = moved
    stages = {stage.name: stage for stage in _plan(repo, out, monkeypatch)}
    lmac = stages["lmac"]
    old = {"<repo>": str(repo.parent / "a"), "<output>": str(repo.parent / "a" / "results" / "demo")}
    settings = [arg.replace(str(repo), old["<repo>"]) for arg in lmac.settings]
    started = {"settings": settings, "inputs": {}, "roots": old}
    (out / "lmac" / demo.STARTED_RECORD).write_text(json.dumps(started))
    assert lmac.done() is False  # runs again, and its recipe resumes
    started["settings"] = settings + ["--lr", "9"]
    (out / "lmac" / demo.STARTED_RECORD).write_text(json.dumps(started))
    with pytest.raises(ValueError, match="started with other settings"):
        lmac.done()
