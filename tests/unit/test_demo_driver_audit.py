"""Mutation audit of recipes/demo.py (`make demo`'s driver): what a user reads and what it reuses.

Nothing is trained. The pure pieces (the progress line and its estimate, the stage plan and each
stage's arguments, the config and its errors, the end-of-run times) are called with explicit
inputs and compared with values worked out by hand (written literally here). Where a stage's
outputs are needed they are written as a finished stage leaves them: placeholder files, with the
stage's `demo_stage.json` / `demo_inputs.json` written as `Stage.run` writes them; the eval folders'
metrics.json in recipes/eval.py's layout, so `demo.main` reuses every stage and prints its tables
from those files. Each test names the mutations of the audit (D1, D2, ...) it catches.
"""

import copy
import hashlib
import json
import os
import re
import time

import numpy as np
import pytest
import soundfile as sf
import yaml

from data_prep.files import write_json
from recipes import demo

SMOKE = demo.load_config(smoke=True)
SEED = SMOKE["common"]["seed"]
ALL12 = [
    "data", "classifier", "nmf", "l2i", "piq", "lmac", "eval_l2i", "eval_piq", "eval_lmac",
    "eval_mixtures_l2i", "eval_mixtures_piq", "eval_mixtures_lmac",
]  # fmt: skip


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fout:
        json.dump(data, fout) if not isinstance(data, str) else fout.write(data)


def _finish(stage, content="placeholder"):
    """A stage's folder as `Stage.run` leaves it: its outputs, its arguments, what it read."""
    for path in stage.outputs:
        if not os.path.isfile(path):
            _write(path, content)
    write_json(stage.settings, os.path.join(stage.folder, demo.STAGE_RECORD))
    write_json({path: demo.input_digest(path) for path in stage.inputs}, os.path.join(stage.folder, demo.INPUTS_RECORD))


def _flags(argv):
    """{flag: value} of a recipe argv [hparams, --k, v, ...] (a bare flag: True)."""
    flags, index = {}, 1
    while index < len(argv):
        if index + 1 < len(argv) and not argv[index + 1].startswith("--"):
            flags[argv[index][2:]] = argv[index + 1]
            index += 2
        else:
            flags[argv[index][2:]] = True
            index += 1
    return flags


# --- the progress line: where it is, and the time left ------------------------------------------


def test_estimate_before_any_stage_is_the_sum_of_the_nominal_costs():
    """D1 (`stages[index + 1:]`: the stage about to run left out), D2 ("stage k/n" 0-based),
    D3 (n = the stages left), D4 (speed 0 before any stage). By hand, STAGE_COST_S over the 12
    stages (mixtures as their in-distribution evaluation): 4 + 123 + 12 + 175 + 101 + 39 + 79 +
    23 + 21 + 79 + 23 + 21 = 700 s = 11 min 40 s."""
    assert demo.progress_line(0, ALL12, set(), {}) == "demo: stage 1/12 data; about 11 min 40 s left (estimate)"
    assert demo.progress_line(11, ALL12, set(), {}) == (
        "demo: stage 12/12 eval_mixtures_lmac; about 21 s left (estimate)"
    )


def test_estimate_scales_the_stages_left_by_the_measured_speed_and_skips_reused_ones():
    """D5 (speed inverted: nominal / measured), D6 (reused stages, None, counted in the speed:
    TypeError), D7 (a stage reused later counted in the time left), D8 (the speed over every
    stage's nominal cost, run or reused). Data and NMF reused, the classifier took 246 s for its
    nominal 123 (speed 2): left from l2i = 2 x (175 + 101 + 39 + 79 + 23 + 21 + 79 + 23 + 21) =
    2 x 561 = 1122 s = 18 min 42 s; PIQ and eval_mixtures_l2i reused too: 2 x (561 - 101 - 79) = 762."""
    measured = {"data": None, "classifier": 246.0, "nmf": None}
    done = {"data", "nmf"}
    assert demo.progress_line(3, ALL12, done, measured) == "demo: stage 4/12 l2i; about 18 min 42 s left (estimate)"
    done = {"data", "nmf", "piq", "eval_mixtures_l2i"}
    assert demo.progress_line(3, ALL12, done, measured) == "demo: stage 4/12 l2i; about 12 min 42 s left (estimate)"


def test_a_configs_own_costs_weigh_the_estimate_and_its_out_of_distribution_evaluations():
    """D9 (the config's costs under STAGE_COST_S), D10 (an out-of-distribution evaluation
    weighed as eval_piq, not as its own interpreter's). Costs {classifier 300, lmac 60,
    eval_lmac 41}; data 8 s for 4 and classifier 600 s for 300: speed 2; left from piq =
    2 x (101 + 60 + 23 + 41 + 23 + 41) = 2 x 289 = 578 s = 9 min 38 s."""
    names = ["data", "classifier", "piq", "lmac", "eval_piq", "eval_lmac", "eval_mixtures_piq", "eval_mixtures_lmac"]
    costs = {"classifier": 300, "lmac": 60, "eval_lmac": 41}
    line = demo.progress_line(2, names, set(), {"data": 8.0, "classifier": 600.0}, costs)
    assert line == "demo: stage 3/8 piq; about 9 min 38 s left (estimate)"
    assert demo.nominal_cost("eval_mixtures_lmac", costs) == 41
    assert demo.nominal_cost("eval_mixtures_lmac") == 21
    # another config's stages: an evaluation as eval_piq, a training as piq
    assert (demo.nominal_cost("eval_ast"), demo.nominal_cost("ast")) == (23, 101)
    assert demo.nominal_cost("eval_mixtures_ast", {"eval_piq": 50}) == 50


def test_time_left_is_rounded_and_written_in_minutes_from_60_s():
    """D11 (truncated, not rounded: 59.96 s shown as 59 s), D12 (minutes from 100 s / "0 min"
    under a minute). Data 1.95 s for its nominal 4 (speed 0.4875): classifier 123 x 0.4875 =
    59.96 s -> 1 min 0 s; data 4.1 s (speed 1.025): NMF 12 x 1.025 = 12.3 -> 12 s."""
    assert demo.progress_line(1, ["data", "classifier"], set(), {"data": 1.95}).endswith("about 1 min 0 s left (estimate)")
    assert demo.progress_line(1, ["data", "nmf"], set(), {"data": 4.1}).endswith("; about 12 s left (estimate)")
    assert demo.progress_line(1, ["data", "classifier"], set(), {"data": 8.0}).endswith("about 4 min 6 s left (estimate)")


# --- the end-of-run times -------------------------------------------------------------------


def test_stage_times_line_wall_then_cpu_rounded_and_reused():
    """D13 (CPU seconds shown as wall), D14 (a reused stage shown with times / the order lost)."""
    line = demo.format_times(
        {"data": None, "classifier": 12.4, "nmf": 0.6}, {"data": None, "classifier": 20.6, "nmf": 1.4}
    )
    assert line == "data reused, classifier 12 s (CPU 21 s), nmf 1 s (CPU 1 s)"


def test_stage_run_returns_wall_and_cpu_and_records_what_it_read(tmp_path):
    """D15 (the records not written), D16 (the inputs' hashes not recorded), D17 (a reused stage
    run again / returns times), D18 (outputs missing after the run accepted), D72 (wall and CPU
    swapped: a run that sleeps 50 ms takes that long in wall time, far less in CPU time)."""
    source = tmp_path / "classifier.ckpt"
    source.write_bytes(b"weights")
    made = tmp_path / "psi" / "psi_model.ckpt"
    calls = []

    def run():
        calls.append(1)
        time.sleep(0.05)  # wall time, next to no CPU time
        made.parent.mkdir(exist_ok=True)
        made.write_text("psi")

    stage = demo.Stage("psi", str(made.parent), [str(made)], run, ["x.yaml", "--lr", "1"], [str(source)])
    assert stage.done() is False
    times = stage.run()
    assert len(times) == 2 and all(isinstance(t, float) and t >= 0 for t in times)
    assert times[0] >= 0.05 > times[1]
    assert json.loads((made.parent / demo.STAGE_RECORD).read_text()) == ["x.yaml", "--lr", "1"]
    recorded = json.loads((made.parent / demo.INPUTS_RECORD).read_text())
    assert recorded == {str(source): hashlib.sha256(b"weights").hexdigest()}
    assert stage.run() is None and calls == [1]  # reused
    silent = demo.Stage("mute", str(tmp_path / "mute"), [str(tmp_path / "mute" / "out.ckpt")], lambda: None, [])
    with pytest.raises(RuntimeError, match=r"stage mute finished without writing .*out\.ckpt"):
        silent.run()
    assert not (tmp_path / "mute" / demo.STAGE_RECORD).exists()


def test_done_needs_every_output_and_the_same_settings_and_inputs(tmp_path):
    """D19 (any one output enough), D20 (other settings reused), D21 (a changed input reused),
    D22 (an input gone reused), D23 (an input the record does not name refused: folders of
    older records)."""
    source = tmp_path / "nmf_decoder.ckpt"
    source.write_bytes(b"W")
    folder = tmp_path / "l2i"
    outputs = [str(folder / "psi_model.ckpt"), str(folder / "theta.ckpt")]
    stage = demo.Stage("l2i", str(folder), outputs, None, ["a", "--K", "12"], [str(source)])
    _write(outputs[0], "psi")
    assert stage.done() is False  # theta.ckpt missing
    _finish(stage)
    assert stage.done() is True
    other = demo.Stage("l2i", str(folder), outputs, None, ["a", "--K", "13"], [str(source)])
    with pytest.raises(ValueError, match=f"{folder} was made by the demo with other settings .*delete {folder}"):
        other.done()
    source.write_bytes(b"W trained again")
    with pytest.raises(ValueError, match=f"read {source}, which changed since"):
        stage.done()
    source.unlink()
    with pytest.raises(ValueError, match=f"read {source}, which is gone"):
        stage.done()
    later = tmp_path / "later.ckpt"
    later.write_bytes(b"read now, not recorded then")
    newer = demo.Stage("l2i", str(folder), outputs, None, ["a", "--K", "12"], [str(later)])
    assert newer.done() is True


def test_reusable_stages_names_every_refused_folder_at_once(tmp_path):
    """D24 (stops at the first refusal), D25 (a refused stage counted as done), D26 (one
    refusal wrapped in the count)."""
    stages = []
    for name in ("a", "b", "c", "d"):
        stage = demo.Stage(name, str(tmp_path / name), [str(tmp_path / name / "out")], None, [name])
        stages.append(stage)
    for stage in stages[:3]:
        _finish(stage)
    assert demo.reusable_stages(stages) == {"a", "b", "c"}
    for stage in stages[1:3]:
        stage.settings = [stage.name, "--new"]
    with pytest.raises(ValueError, match=r"^2 folders of the demo cannot be reused:\n- .*/b was made.*\n- .*/c was made"):
        demo.reusable_stages(stages)
    stages[2].settings = ["c"]
    with pytest.raises(ValueError, match=r"^/.*/b was made by the demo with other settings"):
        demo.reusable_stages(stages)


# --- the stage plan: names, folders, arguments, what each reads --------------------------------


def test_plan_order_folders_and_outputs(tmp_path):
    """D27 (the mixtures evaluations before the in-distribution ones), D28 (an evaluation's
    output in its interpreter's folder), D29 (theta.ckpt not an L2I output), D30 (the eval
    folders returned in another order)."""
    out = tmp_path / "out"
    stages, eval_folders = demo.build_stages(SMOKE, out)
    by_name = {stage.name: stage for stage in stages}
    assert list(by_name) == ALL12
    assert eval_folders == [str(out / name / "eval") for name in ("l2i", "piq", "lmac")]
    assert by_name["data"].outputs == [str(out / "data" / "meta" / "synthetic_params.json")]
    assert by_name["classifier"].outputs == [str(out / "classifier" / f) for f in ("embedding_model.ckpt", "classifier.ckpt")]
    assert by_name["nmf"].outputs == [str(out / "nmf" / "nmf_decoder.ckpt")]
    assert by_name["l2i"].outputs == [str(out / "l2i" / f) for f in ("psi_model.ckpt", "theta.ckpt")]
    assert by_name["lmac"].outputs == [str(out / "lmac" / "psi_model.ckpt")]
    assert by_name["eval_piq"].outputs == [str(out / "piq" / "eval" / "metrics.json")]
    assert by_name["eval_mixtures_lmac"].folder == str(out / "lmac" / "eval_mixtures")
    assert by_name["eval_mixtures_lmac"].outputs == [str(out / "lmac" / "eval_mixtures" / "metrics.json")]


def test_overrides_reach_their_own_stage(tmp_path):
    """D31 (common over a stage's own override), D32 (the nmf's K given to PIQ / PIQ's K to L2I),
    D33 (the dictionary's path not given to L2I), D34 (the smoke merge dropping a base key:
    train_on_sources), D35 (another stage's folder as output_folder)."""
    out = tmp_path / "out"
    config = copy.deepcopy(SMOKE)
    config["stages"]["lmac"]["overrides"]["seed"] = 99
    argv = {stage.name: stage.settings for stage in demo.build_stages(config, out)[0]}
    classifier = _flags(argv["classifier"])
    assert argv["classifier"][0] == os.path.join(demo.REPO_ROOT, "hparams", "classifier_conv2d.yaml")
    assert (classifier["emb_dim"], classifier["number_of_epochs"], classifier["train_on_sources"]) == ("8", "1", "True")
    assert (classifier["seed"], classifier["signal_length_s"]) == (str(SEED), "1.0")
    assert classifier["data_folder"] == str(out / "data")
    assert classifier["output_folder"] == str(out / "classifier")
    l2i, piq, lmac = (_flags(argv[name]) for name in ("l2i", "piq", "lmac"))
    assert (l2i["K"], piq["K"], _flags(argv["nmf"])["K"]) == ("12", "30", "12")
    assert l2i["nmf_decoder_path"] == str(out / "nmf" / "nmf_decoder.ckpt")
    assert "nmf_decoder_path" not in piq and "nmf_decoder_path" not in lmac
    assert l2i["classifier_folder"] == piq["classifier_folder"] == str(out / "classifier")
    assert (piq["output_folder"], lmac["output_folder"]) == (str(out / "piq"), str(out / "lmac"))
    assert (lmac["seed"], piq["seed"]) == ("99", str(SEED))  # a stage's own value over common's


def test_evaluations_get_their_interpreter_s_arguments_and_flags(tmp_path):
    """D36 (the PIQ evaluation given L-MAC's checkpoint), D37 (`<interpreter>_options` given to
    every evaluation), D38 (the out-of-distribution flag missing / on the in-distribution one),
    D39 (n_report_clips of the full config under --smoke)."""
    out = tmp_path / "out"
    argv = {stage.name: stage.settings for stage in demo.build_stages(SMOKE, out)[0]}
    piq_ckpt, piq_eval = str(out / "piq" / "psi_model.ckpt"), str(out / "piq" / "eval")
    assert argv["eval_piq"] == argv["piq"] + [
        "--pretrained_interpreter", piq_ckpt, "--eval_folder", piq_eval, "--n_report_clips", "1", "--baselines", "random",
    ]  # fmt: skip
    assert argv["eval_l2i"] == argv["l2i"] + [
        "--pretrained_interpreter", str(out / "l2i" / "psi_model.ckpt"), "--eval_folder", str(out / "l2i" / "eval"),
        "--n_report_clips", "1",
    ]  # fmt: skip
    assert argv["eval_mixtures_lmac"] == argv["lmac"] + [
        "--pretrained_interpreter", str(out / "lmac" / "psi_model.ckpt"),
        "--eval_folder", str(out / "lmac" / "eval_mixtures"), "--n_report_clips", "1", "--baselines", "random",
        "--overlap_type", "mixtures",
    ]  # fmt: skip
    assert demo.eval_flags({"options": {"a": True, "b": False, "c": None, "d": 2}, "piq_options": {"d": 3}}, "piq") == [
        "--n_report_clips", "4", "--a", "--d", "3",
    ]  # fmt: skip


def test_what_each_stage_reads_and_the_interpreter_seed(tmp_path):
    """D40 (PIQ recorded as reading the dictionary / L2I not), D41 (an evaluation not reading
    its own interpreter's checkpoints), D42 (the interpreter seed given to the classifier, or
    not to the evaluations), D43 (the interpreter folders not moved)."""
    out, seeds = tmp_path / "out", tmp_path / "seeds" / "7"
    stages = {stage.name: stage for stage in demo.build_stages(SMOKE, out, interpreter_folder=seeds, interpreter_seed=7)[0]}
    classifier = [str(out / "classifier" / f) for f in ("embedding_model.ckpt", "classifier.ckpt")]
    nmf = str(out / "nmf" / "nmf_decoder.ckpt")
    recipe = {name: os.path.join(demo.REPO_ROOT, SMOKE["stages"][name]["hparams"]) for name in ("l2i", "piq")}
    assert stages["l2i"].inputs[-4:] == classifier + [nmf, recipe["l2i"]]
    assert stages["piq"].inputs[-1] == recipe["piq"]
    assert nmf not in stages["piq"].inputs and set(classifier) <= set(stages["piq"].inputs)
    l2i_files = [str(seeds / "l2i" / f) for f in ("psi_model.ckpt", "theta.ckpt")]
    assert stages["eval_l2i"].inputs == stages["l2i"].inputs + l2i_files
    assert stages["eval_mixtures_piq"].inputs == stages["piq"].inputs + [str(seeds / "piq" / "psi_model.ckpt")]
    assert _flags(stages["classifier"].settings)["seed"] == str(SEED)
    assert _flags(stages["nmf"].settings)["seed"] == str(SEED)
    for name in ("l2i", "piq", "eval_piq", "eval_mixtures_lmac"):
        assert _flags(stages[name].settings)["seed"] == "7", name
    assert stages["eval_piq"].folder == str(seeds / "piq" / "eval")
    config = copy.deepcopy(SMOKE)
    config["dataset"]["snr_db_range"] = [0.0, 3.0]  # D78: the data stage's record holds the config's
    data = demo.build_stages(config, out)[0][0]
    assert data.settings == {"dataset": {**SMOKE["dataset"], "snr_db_range": [0.0, 3.0]}, "seed": SEED}


# --- the config -------------------------------------------------------------------------------


def test_smoke_sizes_merged_over_the_config_only_when_asked():
    """D44 (smoke applied without --smoke), D45 (the smoke section replacing a whole stage's
    overrides), D46 (`smoke:` left in the config)."""
    full = demo.load_config()
    assert "smoke" not in full and "smoke" not in SMOKE
    assert full["stages"]["classifier"]["overrides"]["emb_dim"] == 16
    assert full["dataset"]["per_class"] == 40 and SMOKE["dataset"]["per_class"] == 5
    assert SMOKE["stages"]["classifier"]["overrides"]["emb_dim"] == 8
    assert SMOKE["stages"]["classifier"]["overrides"]["subtract_background_floor"] is True  # the base's, kept
    assert SMOKE["dataset"]["snr_db_range"] == [-5.0, 5.0]
    assert SMOKE["output_folder"] == "results/demo_smoke"


def test_config_errors_name_the_problem(tmp_path):
    """D47..D53: each check of check_config (the classifier stage, l2i without nmf, a size that
    differs, K between the dictionary and L2I, an unknown overlap type, clips of another length,
    stage_costs_s that is no mapping / names no stage / holds a bool or a non-positive number)."""

    def refused(change, pattern):
        config = copy.deepcopy(SMOKE)
        change(config)
        with pytest.raises(ValueError, match=pattern):
            demo.check_config(config, "my.yaml")

    refused(lambda c: c["stages"].pop("classifier"), "my.yaml: `stages` has no `classifier`")
    refused(lambda c: c["stages"].pop("nmf"), "the l2i stage needs the nmf stage")
    refused(lambda c: c["stages"]["lmac"]["overrides"].update(lin_neurons=9), "`lin_neurons` differs between the stages")
    refused(lambda c: c["stages"]["nmf"]["overrides"].update(K=13), "`K` differs between the stages")
    refused(lambda c: c["eval"].update(out_of_distribution=["noise"]), "holds 'noise'; each entry is one of")
    refused(lambda c: c["dataset"].update(duration_s=2.0), "dataset duration_s 2.0 and common signal_length_s 1.0")
    refused(lambda c: c.update(stage_costs_s=[1]), r"stage_costs_s is a mapping \{stage: seconds\}, got \[1\]")
    refused(lambda c: c.update(stage_costs_s={"eval_mixtures_piq": 5}), "names 'eval_mixtures_piq', not a stage")
    refused(lambda c: c.update(stage_costs_s={"piq": True}), r"piq: True is not a number of seconds > 0")
    refused(lambda c: c.update(stage_costs_s={"piq": -1}), r"piq: -1 is not a number")
    refused(lambda c: c.update(stage_costs_s={"piq": "9"}), r"piq: '9' is not a number")
    ok = copy.deepcopy(SMOKE)
    ok["stage_costs_s"] = {"data": 1, "eval_piq": 2.5, "nmf": 3}
    demo.check_config(ok)
    with pytest.raises(FileNotFoundError, match="Demo config .*nowhere.yaml does not exist: pass --config FILE"):
        demo.main(["--config", str(tmp_path / "nowhere.yaml")])


def test_command_line_options(tmp_path, capsys, monkeypatch):
    """D54 (--output_folder relative to the repository instead of the working folder), D54b (it
    ignored for the config's), an unknown option a usage error (nothing run)."""
    monkeypatch.chdir(tmp_path)
    assert demo.resolve_output_folder(None, {"output_folder": "results/x"}) == os.path.join(os.getcwd(), "results/x")
    assert demo.resolve_output_folder("rel", {"output_folder": "results/x"}) == os.path.join(os.getcwd(), "rel")
    assert demo.resolve_output_folder(str(tmp_path), {"output_folder": "results/x"}) == str(tmp_path)
    with pytest.raises(SystemExit) as stop:
        demo.main(["--smoke", "--bogus"])
    assert stop.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


# --- a rerun of a finished chain: the printed lines and figures ----------------------------------

GROUP = {"data_folder": "/d", "overlap_type": "none", "wham_noise": False, "n_clips": 8, "seed": SEED, "classifier": {"c": 1}}
REFERENCES = {
    "all_ones": {"fid_in": 1.0, "si_sdri": 0.0, "gt_precision": 0.2},
    "ground_truth": {"fid_in": 0.875, "si_sdri": 21.25, "gt_precision": 1.0},
}
#: The interpreters' own rows and random masks (SI-SDRi, GT precision, Fid-In), all different.
OWN = {
    "L2I": ((6.5, 0.4, 0.75), (-3.0, 0.1, 0.25)),
    "PIQ": ((8.25, 0.6, 0.5), (3.0, 0.3, 0.125)),
    "LMAC": ((12.0, 0.8, 1.0), (-1.5, 0.15, 0.375)),
}


def _row(values):
    return dict(zip(("si_sdri", "gt_precision", "fid_in"), values, strict=True))


def _evaluation(name, overlap_type="none", shift=0.0):
    own, random = OWN[name]
    methods = {name: _row((own[0] - shift, *own[1:])), "random": _row(random)}
    if name == "L2I":  # the captum baseline: scored once, in L2I's evaluation (demo.yaml)
        methods["saliency"] = _row((2.0, 0.2, 0.5))
    return {
        "interpreter": name,
        **GROUP,
        "overlap_type": overlap_type,
        "methods": methods,
        "references": REFERENCES,
        "intervals": {name: {"si_sdri": {"low": own[0] - shift - 0.5, "high": own[0] - shift + 0.5}}},
        "ground_truth": True,
    }


@pytest.fixture(scope="module")
def finished_chain(tmp_path_factory):
    """A smoke output folder as a finished `make demo --smoke` leaves it (placeholders)."""
    out = tmp_path_factory.mktemp("demo_audit") / "out"
    stages, _ = demo.build_stages(SMOKE, out)
    for stage in stages:
        if stage.name.startswith("eval_"):
            name = {"l2i": "L2I", "piq": "PIQ", "lmac": "LMAC"}[stage.name.rsplit("_", 1)[-1]]
            mixtures = "_mixtures_" in stage.name
            _write(stage.outputs[0], _evaluation(name, "mixtures" if mixtures else "none", 1.0 if mixtures else 0.0))
        _finish(stage)
    _write(str(out / "classifier" / "test_accuracy.json"), {"test_accuracy": 0.875})
    return out


def test_rerun_prints_each_stage_reused_and_the_figures_of_the_right_method(finished_chain, capsys):
    """D55 (progress lines numbered from 0 / time left of reused stages), D56 (the accuracy line
    not x 100 / missing), D57 (eval folders in another order: rows not the interpreters'),
    D58 (the mixtures table from the in-distribution folders), D59 (the summary's intervals
    dropped), D60 (the margins table not printed). The rows and cells by hand from the
    metrics.json written above (3 decimals, 1 from 10 on, ± half the interval)."""
    result = demo.main(["--smoke", "--output_folder", str(finished_chain)])
    printed = capsys.readouterr().out.splitlines()
    assert [line for line in printed if line.startswith("demo: stage ")] == [
        f"demo: stage {i + 1}/12 {name}; about 0 s left (estimate)" for i, name in enumerate(ALL12)
    ]
    assert "Stages (wall time, CPU time of all threads): " + ", ".join(f"{n} reused" for n in ALL12) in printed
    assert "Classifier test accuracy: 87.5 %" in printed
    summary = [
        "| method | Fid-In | SI-SDRi dB | GT precision |",
        "|---|---|---|---|",
        "| L2I | 0.750 | 6.500 ± 0.500 | 0.400 |",
        "| L2I: random mask | 0.250 | -3.000 | 0.100 |",
        "| PIQ | 0.500 | 8.250 ± 0.500 | 0.600 |",
        "| PIQ: random mask | 0.125 | 3.000 | 0.300 |",
        "| LMAC | 1.000 | 12.0 ± 0.500 | 0.800 |",
        "| LMAC: random mask | 0.375 | -1.500 | 0.150 |",
        "| saliency (captum) | 0.500 | 2.000 | 0.200 |",
        "| all ones | 1.000 | 0.000 | 0.200 |",
        "| ground truth | 0.875 | 21.2 | 1.000 |",
    ]
    start = printed.index(summary[0])
    assert printed[start : start + len(summary)] == summary
    assert result["summary"] == "\n".join(summary)
    margins = [
        "| L2I | +6.50 | saliency (captum) | +2.00 | +4.50 | 0.400 | 2.00 | 0.750 |",
        "| PIQ | +8.25 | random mask | +3.00 | +5.25 | 0.600 | 3.00 | 0.500 |",
        "| LMAC | +12.00 | saliency (captum) | +2.00 | +10.00 | 0.800 | 4.00 | 1.000 |",
    ]
    start = printed.index(demo.MARGINS_TITLE)
    assert printed[start + 4 : start + 7] == margins
    mixtures = printed[printed.index(demo.out_of_distribution_title("mixtures")) + 2 :]
    assert mixtures[2:5] == [
        "| L2I [mixtures] | 0.750 | 5.500 ± 0.500 | 0.400 |",
        "| L2I [mixtures]: random mask | 0.250 | -3.000 | 0.100 |",
        "| PIQ [mixtures] | 0.500 | 7.250 ± 0.500 | 0.600 |",
    ]
    assert "| LMAC [mixtures] | 1.000 | 11.0 ± 0.500 | 0.800 |" in mixtures
    assert printed[-1] == f"Report: {finished_chain / 'report' / 'index.html'}  (total {result['total_s']:.0f} s)"
    assert result["total_s"] > 0  # D68
    text = (finished_chain / "summary.md").read_text(encoding="utf-8")
    assert text.startswith(f"# {demo.REPORT_TITLE}\n\n" + "\n".join(summary) + "\n")
    assert text.index("## Out of distribution: --overlap_type mixtures") > text.index(demo.MARGINS_TITLE)
    # D69: a config's own title (use_data_folder sets one) heads summary.md and the report
    demo.run_demo({**SMOKE, "title": "Mine & yours"}, str(finished_chain))
    assert (finished_chain / "summary.md").read_text(encoding="utf-8").startswith("# Mine & yours\n\n| method |")
    assert "<h1>Mine &amp; yours</h1>" in (finished_chain / "report" / "index.html").read_text(encoding="utf-8")


def _dataset(folder, seconds):
    """A dataset folder in collection_prepare's layout, one clip per length in `seconds`."""
    (folder / "meta").mkdir(parents=True)
    (folder / "audio").mkdir()
    (folder / "sources").mkdir()
    lines = ["filename,fold,target,category"]
    for index, duration in enumerate(seconds):
        name = f"{index + 1}-{index}-A-0.wav"
        sf.write(folder / "audio" / name, np.zeros(int(16000 * duration)), 16000)
        lines.append(f"{name},{index + 1},0,tone")
    (folder / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    (folder / "meta" / "ground_truth.csv").write_text("id\n")


def test_a_dataset_of_the_users_is_read_at_its_longest_clip(tmp_path, capsys):
    """D71 (a length 0.25 s off the config's taken as the config's: every clip cropped), no data
    stage, every stage on the user's folder, the caller's config unchanged, the missing parts
    named. Clips of 1.0 and 1.25 s, the smoke config's 1 s: the stages get 1.25."""
    _dataset(tmp_path / "mine", [1.0, 1.25])
    config = demo.use_data_folder(SMOKE, str(tmp_path / "mine"))
    assert (config["common"]["signal_length_s"], config["dataset"]["duration_s"]) == (1.25, 1.25)
    assert SMOKE["common"]["signal_length_s"] == 1.0 and "data_folder" not in SMOKE
    assert "last 1.25 s: every stage reads them whole (signal_length_s 1.25, not the config's 1)" in capsys.readouterr().out
    stages, _ = demo.build_stages(config, tmp_path / "out")
    assert [stage.name for stage in stages] == ALL12[1:]
    for stage in stages:
        flags = _flags(stage.settings)
        assert (flags["data_folder"], flags["signal_length_s"]) == (str(tmp_path / "mine"), "1.25"), stage.name
    _dataset(tmp_path / "same", [1.0, 0.5])
    assert demo.use_data_folder(SMOKE, str(tmp_path / "same"))["common"]["signal_length_s"] == 1.0
    (tmp_path / "bare" / "audio").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"--data_folder .*bare: no meta/esc50.csv, meta/ground_truth.csv, sources;"):
        demo.use_data_folder(SMOKE, str(tmp_path / "bare"))


# --- bugs found by the audit --------------------------------------------------------------------


def test_a_dataset_made_again_stops_every_stage_that_read_the_old_one(tmp_path):
    """Was: after data/ was deleted and made again with other settings (the demo's own advice
    when `dataset:` changed: "delete data"), the classifier, the dictionary, the interpreters
    and their evaluations, trained or scored on the old clips, were reused: none of them
    recorded the dataset it read. Now each records data/meta/synthetic_params.json (the same
    settings write the same bytes: a dataset made again unchanged is still reused)."""
    out = tmp_path / "out"
    stages, _ = demo.build_stages(SMOKE, out)
    params = {"classes": 3, "per_class": 5, "duration_s": 1.0}
    _write(stages[0].outputs[0], params)
    for stage in stages:
        _finish(stage)
    assert demo.reusable_stages(stages) == set(ALL12)
    _write(stages[0].outputs[0], params)  # made again with the same settings: the same bytes
    assert demo.reusable_stages(stages) == set(ALL12)
    other = copy.deepcopy(SMOKE)
    other["dataset"]["per_class"] = 10
    _write(stages[0].outputs[0], {**params, "per_class": 10})  # made again with other settings
    stages, _ = demo.build_stages(other, out)
    _finish(stages[0])  # by this demo: its record holds the new settings
    with pytest.raises(ValueError, match=r"^11 folders of the demo cannot be reused") as refused:
        demo.reusable_stages(stages)
    for stage in stages[1:]:
        assert f"- {stage.folder} read {stages[0].outputs[0]}, which changed since" in str(refused.value)


def test_an_empty_overrides_section_is_the_recipe_yaml_s_values(tmp_path):
    """Was: a stage whose `overrides:` is left empty (every line commented out: yaml null) crashed
    check_config with AttributeError: 'NoneType' object has no attribute 'get'. Now it means no
    override: the size check then names the stage without the classifier's size, and a config whose
    classifier and interpreter both leave their sizes to their yamls runs with the common keys."""
    with open(demo.DEFAULT_CONFIG, encoding="utf-8") as fin:
        config = yaml.safe_load(fin)
    config.pop("smoke")
    config["stages"]["lmac"]["overrides"] = None
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(ValueError, match=r"`emb_dim` differs between the stages .*'lmac': None"):
        demo.load_config(str(path))
    config["stages"] = {name: config["stages"][name] for name in ("classifier", "lmac")}
    config["stages"]["classifier"]["overrides"] = None
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    loaded = demo.load_config(str(path))
    argv = {stage.name: stage.settings for stage in demo.build_stages(loaded, tmp_path / "out")[0]}
    assert _flags(argv["lmac"])["seed"] == "1234" and "emb_dim" not in _flags(argv["classifier"])


def test_smoke_asked_of_a_config_without_smoke_sizes_is_refused(tmp_path):
    """Was: `--smoke` with a config that has no `smoke:` section ran the config's full sizes (the
    real demo: 10 minutes; a transformer config: GPU-sized) without a word. Now a clear error."""
    with open(demo.DEFAULT_CONFIG, encoding="utf-8") as fin:
        config = yaml.safe_load(fin)
    config.pop("smoke")
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert demo.load_config(str(path))["dataset"]["per_class"] == 40
    with pytest.raises(ValueError, match=r"--smoke: .*mine.yaml has no `smoke:` section"):
        demo.load_config(str(path), smoke=True)


def test_a_users_dataset_rebuilt_in_place_stops_the_stages_that_read_it(tmp_path):
    """Was: with `--data_folder`, no stage recorded the dataset it read, so a user's set made
    again in place (another seed: other onsets and SNRs in meta/ground_truth.csv) reused the
    classifier and everything after it, trained and scored on the old clips. Now every stage,
    the classifier included, records the folder's meta/ csv files and its writer's parameters
    file."""
    _dataset(tmp_path / "mine", [1.0, 1.0])
    meta = tmp_path / "mine" / "meta"
    (meta / "collection_params.json").write_text('{"seed": 1}\n')
    config = demo.use_data_folder(SMOKE, str(tmp_path / "mine"))
    stages, _ = demo.build_stages(config, tmp_path / "out")
    for stage in stages:
        assert [str(meta / name) for name in ("esc50.csv", "ground_truth.csv", "collection_params.json")] == [
            p for p in stage.inputs if p.startswith(str(meta))
        ], stage.name
        _finish(stage)
    assert demo.reusable_stages(stages) == set(ALL12[1:])
    (meta / "collection_params.json").write_text('{"seed": 2}\n')  # made again, another seed
    with pytest.raises(ValueError, match=r"^11 folders of the demo cannot be reused") as refused:
        demo.reusable_stages(stages)
    assert f"{stages[0].folder} read {meta / 'collection_params.json'}, which changed since" in str(refused.value)


def test_a_recipe_yaml_edited_since_its_stage_ran_is_named_not_reused(tmp_path):
    """Was: each stage recorded its arguments and the files of earlier stages, not its recipe's
    yaml, so a user who edited hparams/lmac.yaml (another loss weight) and ran the demo again got
    "lmac is done, reused" and the old interpreter's figures under the new file. Now each
    training stage and its evaluations record the digest of what the yaml says (its comments,
    where the yamls note measured figures, left out) and a rerun names it."""
    config = copy.deepcopy(SMOKE)
    mine = {}
    for name in ("classifier", "lmac"):  # copies of the repository's files, edited below
        mine[name] = tmp_path / f"my_{name}.yaml"
        mine[name].write_text(open(os.path.join(demo.REPO_ROOT, SMOKE["stages"][name]["hparams"])).read())
        config["stages"][name]["hparams"] = str(mine[name])
    stages, _ = demo.build_stages(config, tmp_path / "out")
    for stage in stages:
        _finish(stage)
    assert demo.reusable_stages(stages) == set(ALL12)
    mine["lmac"].write_text("# a figure measured since, noted\n" + mine["lmac"].read_text() + "\n# more notes\n")
    assert demo.reusable_stages(stages) == set(ALL12)  # comments: the same recipe
    text = mine["lmac"].read_text()
    assert "\nreg_w_l1: 6.4" in text
    mine["lmac"].write_text(text.replace("\nreg_w_l1: 6.4", "\nreg_w_l1: 12.8"))
    with pytest.raises(ValueError, match=r"^3 folders of the demo cannot be reused") as refused:
        demo.reusable_stages(stages)
    lmac = next(stage for stage in stages if stage.name == "lmac")
    assert f"{lmac.folder} read {mine['lmac']}, which was edited since (the stage ran with the file as it was; its comments do not count)" in str(
        refused.value
    )
    text = mine["classifier"].read_text()
    assert "\nnumber_of_epochs: " in text
    mine["classifier"].write_text(text.replace("\nnumber_of_epochs: ", "\nnumber_of_epochs: 1"))  # 200 -> 1200
    with pytest.raises(ValueError, match=r"^4 folders of the demo cannot be reused"):
        demo.reusable_stages(stages)


class _Stopped(Exception):
    """A run stopped part-way (a crash, ^C)."""


def test_a_stage_stopped_part_way_resumes_only_with_what_it_started_with(tmp_path):
    """D-resume: a training stage that crashed after a checkpoint, rerun with other settings or
    after its input changed, is refused (its recipe would resume the old run's checkpoints under
    the new settings and record the new ones); rerun with the same ones it resumes and finishes,
    and its started record goes. An evaluation (nothing to resume) reruns with other settings."""
    source = tmp_path / "classifier.ckpt"
    source.write_bytes(b"weights")
    folder = tmp_path / "lmac"
    made = folder / "psi_model.ckpt"
    crash = [True]

    def train():
        (folder / "save").mkdir(parents=True, exist_ok=True)
        (folder / "save" / "CKPT+epoch1").write_text("epoch 1")  # what SpeechBrain would resume
        if crash[0]:
            raise _Stopped("stopped at epoch 2")
        made.write_text("psi")

    def stage(settings, resumes=True):
        return demo.Stage("lmac", str(folder), [str(made)], train, settings, [str(source)], resumes=resumes)

    with pytest.raises(_Stopped):
        stage(["lmac.yaml", "--lr", "1"]).run()
    assert (folder / demo.STARTED_RECORD).is_file() and not (folder / demo.STAGE_RECORD).exists()
    with pytest.raises(ValueError, match=r"lmac stage that stopped part-way.*--lr', '1'.*--lr', '2'.*[Dd]elete"):
        stage(["lmac.yaml", "--lr", "2"]).run()
    with pytest.raises(ValueError, match=r"lmac stage that stopped part-way"):
        demo.reusable_stages([stage(["lmac.yaml", "--lr", "2"])])  # said before any stage runs
    source.write_bytes(b"weights trained again")
    with pytest.raises(ValueError, match=r"started from .*classifier\.ckpt, which changed"):
        stage(["lmac.yaml", "--lr", "1"]).run()
    source.write_bytes(b"weights")
    crash[0] = False
    assert stage(["lmac.yaml", "--lr", "1"]).run() is not None  # resumed and finished
    assert not (folder / demo.STARTED_RECORD).exists()
    assert json.loads((folder / demo.STAGE_RECORD).read_text()) == ["lmac.yaml", "--lr", "1"]
    # an evaluation stage records nothing before it runs, so other settings after a crash are fine
    made.unlink()
    (folder / demo.STAGE_RECORD).unlink()
    crash[0] = True
    with pytest.raises(_Stopped):
        stage(["eval", "--a"], resumes=False).run()
    assert not (folder / demo.STARTED_RECORD).exists()
    crash[0] = False
    assert stage(["eval", "--b"], resumes=False).run() is not None


def test_the_training_stages_resume_and_the_others_do_not(tmp_path):
    """D-resume: which stages write the started record (the ones whose recipes resume)."""
    stages, _ = demo.build_stages(SMOKE, str(tmp_path))
    assert {stage.name for stage in stages if stage.resumes} == {"classifier", "nmf", "l2i", "piq", "lmac"}


def test_a_dataset_at_another_sample_rate_is_refused_before_any_stage(tmp_path):
    """Found by a new-user probe: a collection built at 8 kHz passed the demo's checks, and its
    classifier stage then refused the sources, telling the user to "set --sample_rate", a flag
    the demo does not take. Refused up front, naming both rates and the command that fixes it;
    the same set at 16 kHz is taken."""
    from data_prep.synthetic_prepare import create_synthetic_dataset

    low = create_synthetic_dataset(tmp_path / "low", classes=3, per_class=5, seed=7, duration_s=1.0, sample_rate=8000)
    with pytest.raises(ValueError, match=r"its sources are at \[8000\] Hz, and the demo's recipes run at 16000 Hz.*--sample-rate 16000"):
        demo.use_data_folder(SMOKE, str(low))
    same = create_synthetic_dataset(tmp_path / "same", classes=3, per_class=5, seed=7, duration_s=1.0)
    assert demo.use_data_folder(SMOKE, str(same))["data_folder"] == str(same)


def test_a_stage_stopped_after_its_outputs_but_before_its_records_is_not_done(tmp_path):
    """Guards `Stage.done`'s started record: a training stage killed after psi_model.ckpt and
    before its records was reused forever, and a rerun with another lr took it for its own
    (found by a probe). Now it is not done; with other settings it is refused."""
    out = tmp_path / "lmac"
    made = out / "psi_model.ckpt"

    def killed_after_the_checkpoint():
        (out / "save" / "CKPT+1").mkdir(parents=True)
        made.write_text("trained at lr 0.002")
        raise KeyboardInterrupt

    stage = demo.Stage("lmac", str(out), [str(made)], killed_after_the_checkpoint, ["--lr", "0.002"], resumes=True)
    with pytest.raises(KeyboardInterrupt):
        stage.run()
    assert made.is_file() and (out / demo.STARTED_RECORD).is_file()
    assert stage.done() is False  # it runs again: its recipe resumes the checkpoints
    other = demo.Stage("lmac", str(out), [str(made)], lambda: None, ["--lr", "0.001"], resumes=True)
    with pytest.raises(ValueError, match="stopped part-way, started with other settings"):
        other.done()


def test_a_stage_refused_before_any_checkpoint_leaves_no_started_record(tmp_path):
    """Guards the clean-up in `Stage.run`: a stage whose recipe refused its arguments (a typo'd
    key) left demo_stage.started.json, and the corrected rerun was refused as a run that
    "stopped part-way" (found by a probe)."""
    out = tmp_path / "lmac"

    def refused():
        raise ValueError("hparams/lmac_conv2d.yaml has no key number_of_epoch")

    stage = demo.Stage("lmac", str(out), [str(out / "psi_model.ckpt")], refused, ["--number_of_epoch", "3"], resumes=True)
    with pytest.raises(ValueError, match="no key number_of_epoch"):
        stage.run()
    assert not (out / demo.STARTED_RECORD).exists()
    fixed = demo.Stage("lmac", str(out), [str(out / "psi_model.ckpt")], lambda: None, ["--number_of_epochs", "3"], resumes=True)
    assert fixed.done() is False  # and no refusal


@pytest.mark.parametrize(
    "change, said",
    [
        (lambda c: c["stages"].__setitem__("lmca", c["stages"].pop("lmac")), "`stages` has `lmca` (did you mean `lmac`?)"),
        (lambda c: c.__setitem__("evall", c.pop("eval")), "the config has `evall` (did you mean `eval`?)"),
        (lambda c: c["stages"]["lmac"]["overrides"].__setitem__("number_of_epochs", "two"), "number_of_epochs is a number"),
        (lambda c: c["eval"]["piq_options"].__setitem__("basline", "random"), "`eval: piq_options` (recipes/eval.py's flags, or yaml keys) has `basline`"),
        (lambda c: c["eval"].__setitem__("out_of_distribution", "mixtures"), "out_of_distribution is 'mixtures'; give a list"),
        (lambda c: c.pop("common"), "no `common:` section"),
        (lambda c: c["stages"]["piq"].pop("hparams"), "the piq stage's `hparams:` (None) is not a recipe yaml"),
    ],
)
def test_config_mistakes_are_refused_before_any_stage(change, said):
    """Guards `check_config_keys` (found by a probe: a typo'd stage or section was skipped with
    exit 0; a typo'd override or evaluation flag stopped the demo only when its stage came, after
    the stages before it trained; a missing section was a bare KeyError)."""
    config = copy.deepcopy(demo.load_config(smoke=True))
    change(config)
    with pytest.raises(ValueError, match=re.escape(said)):
        demo.check_config(config)
