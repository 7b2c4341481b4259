"""Mutation audit of recipes/demo.py, second pass: what test_demo_driver_audit.py let through.

Each test names the mutation it kills (E<n>, the audit's numbering). Nothing is trained: stages run
stand-ins (a dataset writer recorded, a stage that sleeps) on hand-written files, and every
expected value is worked out by hand in the test.
"""

import copy
import os
import time

import numpy as np
import pytest
import soundfile as sf
from test_demo_driver_audit import _dataset, _write
from test_demo_driver_audit import _finish as _finish_inputs

from data_prep.files import write_json
from recipes import demo

SMOKE = demo.load_config(smoke=True)


def _finish(stage, content="placeholder"):
    """A stage's folder as `Stage.run` leaves it: `test_demo_driver_audit`'s (outputs,
    arguments, inputs' digests), and the outputs' digests."""
    _finish_inputs(stage, content)
    write_json({path: demo.file_sha256(path) for path in stage.outputs}, os.path.join(stage.folder, demo.OUTPUTS_RECORD))


def _flags(argv):
    return {argv[i][2:]: argv[i + 1] for i in range(1, len(argv) - 1, 2)}


# --- reuse and invalidation ----------------------------------------------------------------------


def test_every_output_of_a_stage_is_checked_against_what_it_wrote(tmp_path):
    """E6 (only the first output's digest compared): L2I's theta.ckpt written over by another
    command, psi_model.ckpt untouched, is refused."""
    folder = tmp_path / "l2i"
    outputs = [str(folder / "psi_model.ckpt"), str(folder / "theta.ckpt")]
    stage = demo.Stage("l2i", str(folder), outputs, None, ["l2i.yaml"])
    _finish(stage)
    assert stage.done() is True
    _write(outputs[1], "another command's theta")
    with pytest.raises(ValueError, match=f"{outputs[1]} changed since the demo's l2i stage wrote it"):
        stage.done()


def test_a_stopped_run_whose_input_is_gone_is_not_resumed(tmp_path):
    """E8 (a started record's input that is gone taken as unchanged): the classifier
    checkpoint the stopped run trained on was deleted, so its checkpoints are not resumed."""
    source = tmp_path / "classifier.ckpt"
    source.write_text("weights")
    folder = tmp_path / "piq"
    write_json(
        {"settings": ["piq.yaml"], "inputs": {str(source): demo.input_digest(str(source))}},
        str(folder / demo.STARTED_RECORD),
    )
    stage = demo.Stage("piq", str(folder), [str(folder / "psi_model.ckpt")], None, ["piq.yaml"], [str(source)], resumes=True)
    assert stage.done() is False  # same settings, same file: resumed
    source.unlink()
    with pytest.raises(ValueError, match=f"started from {source}, which changed or is gone since"):
        stage.done()


def test_the_dictionary_stage_reads_its_recipe_yaml(tmp_path):
    """E16 (the nmf stage not recording its yaml): an edited hparams/nmf.yaml copy (another
    value of a key) stops the nmf stage, L2I and L2I's two evaluations: 4 folders, the
    classifier and the other interpreters untouched."""
    config = copy.deepcopy(SMOKE)
    mine = tmp_path / "my_nmf.yaml"
    text = open(os.path.join(demo.REPO_ROOT, SMOKE["stages"]["nmf"]["hparams"]), encoding="utf-8").read()
    mine.write_text(text)
    config["stages"]["nmf"]["hparams"] = str(mine)
    stages, _ = demo.build_stages(config, tmp_path / "out")
    for stage in stages:
        _finish(stage)
    nmf = next(stage for stage in stages if stage.name == "nmf")
    assert nmf.inputs[-1] == str(mine)
    mine.write_text(text + "\nextra_key_edited: 1\n")
    with pytest.raises(ValueError, match=r"^1 folders|^/") as refused:
        demo.reusable_stages([nmf])
    assert f"{nmf.folder} read {mine}, which was edited since" in str(refused.value)


def test_the_data_stage_makes_the_configured_dataset(tmp_path, monkeypatch):
    """E12 (per_class given the classes), E13 (another seed), E14 (the SNR range dropped): the
    data stage's call, by hand from the smoke config's dataset section and common seed."""
    calls = []

    def fake(folder, **kwargs):
        calls.append((folder, kwargs))
        _write(os.path.join(folder, "meta", "synthetic_params.json"), kwargs)

    monkeypatch.setattr(demo, "create_synthetic_dataset", fake)
    config = copy.deepcopy(SMOKE)
    config["dataset"].update(classes=["dog", "rain"], per_class=7, snr_db_range=[-2.5, 4.0])
    config["common"]["seed"] = 31
    stage = demo.build_stages(config, tmp_path / "out")[0][0]
    assert stage.name == "data"
    stage.run()
    assert calls == [
        (
            str(tmp_path / "out" / "data"),
            {"classes": ["dog", "rain"], "per_class": 7, "seed": 31, "snr_db_range": (-2.5, 4.0),
             "duration_s": SMOKE["dataset"]["duration_s"]},
        )
    ]  # fmt: skip


# --- the arguments of each stage ----------------------------------------------------------------


def test_a_stage_override_of_data_folder_does_not_replace_the_demos_dataset(tmp_path):
    """E22 (the demo's data folder put under the stage's overrides): a classifier override
    data_folder /elsewhere would train on a dataset the stage does not record; the demo's own
    <out>/data is what every stage reads."""
    config = copy.deepcopy(SMOKE)
    config["stages"]["classifier"]["overrides"]["data_folder"] = "/elsewhere"
    stages = {stage.name: stage for stage in demo.build_stages(config, tmp_path / "out")[0]}
    assert _flags(stages["classifier"].settings)["data_folder"] == str(tmp_path / "out" / "data")


def test_interpreter_seed_zero_is_a_seed(tmp_path):
    """E37 (`if interpreter_seed:`: seed 0 ignored, the config's seed used)."""
    stages = {stage.name: stage for stage in demo.build_stages(SMOKE, tmp_path / "out", interpreter_seed=0)[0]}
    assert _flags(stages["piq"].settings)["seed"] == "0"
    assert _flags(stages["eval_lmac"].settings)["seed"] == "0"


def test_an_evaluation_flag_of_zero_is_passed():
    """E34 (a falsy value dropped like False): n_report_clips 0 is `--n_report_clips 0`, not
    left to recipes/eval.py's default."""
    assert demo.eval_flags({"n_report_clips": 0, "options": {"top_k": 0}}, "piq") == [
        "--n_report_clips", "0", "--top_k", "0",
    ]  # fmt: skip


# --- config checks and --data_folder --------------------------------------------------------------


def test_a_stage_cost_of_zero_seconds_is_refused():
    """E24 (`seconds < 0`: 0 accepted, and the estimate would drop the stage)."""
    with pytest.raises(ValueError, match=r"stage_costs_s: lmac: 0 is not a number of seconds > 0"):
        demo.check_stage_costs({"lmac": 0}, ["data", "lmac"])


def test_stage_costs_may_name_only_the_configs_own_evaluations():
    """E43 (the evaluation names taken from INTERPRETERS, not the config's): a config without
    L2I has no eval_l2i stage to weigh."""
    config = copy.deepcopy(SMOKE)
    del config["stages"]["l2i"]
    config["stage_costs_s"] = {"eval_l2i": 10}
    with pytest.raises(ValueError, match=r"stage_costs_s names 'eval_l2i', not a stage of this config"):
        demo.check_config(config)


def test_clips_shorter_than_the_configs_are_read_at_their_length(tmp_path):
    """E30 (only longer clips handled: `length - configured > 1e-3`): clips of 0.5 and 0.75 s
    under the smoke config's 1 s are read at 0.75 s, not padded to 1 s."""
    _dataset(tmp_path / "short", [0.5, 0.75])
    config = demo.use_data_folder(SMOKE, str(tmp_path / "short"))
    assert (config["common"]["signal_length_s"], config["dataset"]["duration_s"]) == (0.75, 0.75)


def test_a_relative_data_folder_is_made_absolute(tmp_path, monkeypatch):
    """E47 (the folder kept as given): the config (and its title) name the absolute folder."""
    _dataset(tmp_path / "mine", [1.0])
    monkeypatch.chdir(tmp_path)
    config = demo.use_data_folder(SMOKE, "mine")
    assert config["data_folder"] == str(tmp_path / "mine")
    assert config["title"].startswith(f"The demo's chain on {tmp_path / 'mine'}:")


# --- run_demo: the progress line's costs, the timings, the report and summary -------------------


def _evaluation(name, overlap_type):
    row = {"si_sdri": 5.0, "gt_precision": 0.5, "fid_in": 0.5}
    other = {"si_sdri": 1.0, "gt_precision": 0.2, "fid_in": 0.25}
    return {
        "interpreter": name, "data_folder": "/d", "overlap_type": overlap_type, "wham_noise": False, "n_clips": 8,
        "seed": 1, "classifier": {"c": 1}, "methods": {name: row, "random": other},
        "references": {"all_ones": {"fid_in": 1.0, "si_sdri": 0.0, "gt_precision": 0.2}}, "ground_truth": True,
    }  # fmt: skip


def test_run_demo_uses_the_configs_costs_and_records_wall_then_cpu(tmp_path, monkeypatch, capsys):
    """E26 (the config's stage_costs_s not passed to the progress line), E41 (wall and CPU
    swapped in the timings), E27 (the report without the out-of-distribution folders), E28
    (the agreement sections without them). Every stage done but data (its started record left), whose stand-in sleeps
    50 ms and writes the same bytes: with stage_costs_s {data: 100} the first line's estimate is
    100 s (speed 1, nothing measured yet) = 1 min 40 s; the 11 others are reused: 0 s left."""
    out = tmp_path / "out"
    config = {**copy.deepcopy(SMOKE), "stage_costs_s": {"data": 100}}
    stages, eval_folders = demo.build_stages(config, out)
    names = {"l2i": "L2I", "piq": "PIQ", "lmac": "LMAC"}
    _write(stages[0].outputs[0], {"params": 1})
    for stage in stages:
        if stage.name.startswith("eval_"):
            name = names[stage.name.rsplit("_", 1)[-1]]
            _write(stage.outputs[0], _evaluation(name, "mixtures" if "_mixtures_" in stage.name else "none"))
        _finish(stage)
    write_json({}, os.path.join(stages[0].folder, demo.STARTED_RECORD))  # stopped part-way: runs again

    def slow_data():
        time.sleep(0.05)
        _write(stages[0].outputs[0], {"params": 1})

    stages[0]._run = slow_data
    monkeypatch.setattr(demo, "build_stages", lambda config, output_folder: (stages, eval_folders))
    result = demo.run_demo(config, str(out))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("demo: stage ")]
    assert lines[0] == "demo: stage 1/12 data; about 1 min 40 s left (estimate)"
    assert lines[1] == "demo: stage 2/12 classifier; about 0 s left (estimate)"
    wall, cpu = result["timings"]["data"], result["cpu_times"]["data"]
    assert wall >= 0.05 > cpu
    assert result["timings"]["classifier"] is None
    page = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert "eval_mixtures" in page or "[mixtures]" in page
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert summary.count("## Do the metrics agree?") == 2


def test_the_classifiers_sample_rate_override_sets_the_rate_the_sources_must_have(tmp_path):
    """E31 (the override ignored: the yaml's 16 kHz always): sources at 8 kHz are taken when the
    classifier stage overrides sample_rate to 8000, and refused under the yaml's 16000."""
    folder = tmp_path / "mine"
    (folder / "meta").mkdir(parents=True)
    for name in ("t.wav", "b.wav"):
        sf.write(folder / name, np.zeros(800), 8000)
    (folder / "meta" / "ground_truth.csv").write_text("id,target_path,background_path\nc1,t.wav,b.wav\n")
    config = copy.deepcopy(SMOKE)
    config["stages"]["classifier"]["overrides"]["sample_rate"] = 8000
    demo.refuse_another_sample_rate(config, str(folder), "mine")
    with pytest.raises(ValueError, match=r"its sources are at \[8000\] Hz, and the demo's recipes run at 16000 Hz"):
        demo.refuse_another_sample_rate(SMOKE, str(folder), "mine")
