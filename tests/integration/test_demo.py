"""`make demo` (recipes/demo.py): the whole chain with the smoke sizes of hparams/demo.yaml."""

import json
import shutil
import time
import urllib.parse
from html.parser import HTMLParser

import numpy as np
import pytest
import soundfile as sf

from recipes import demo

SMOKE_BUDGET_S = 240  # 3 classes x 5 clips of 1 s, 1 epoch: ~30 s on 2 cores; generous for CI


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for key, value in attrs if key in ("src", "href") and value]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run of the demo from scratch: (output folder, result, wall time)."""
    out = tmp_path_factory.mktemp("demo") / "smoke"
    start = time.perf_counter()
    result = demo.main(["--smoke", "--output_folder", str(out)])
    return out, result, time.perf_counter() - start


def test_smoke_demo_runs_every_stage_within_budget(smoke):
    out, result, elapsed = smoke
    assert elapsed < SMOKE_BUDGET_S
    assert list(result["timings"]) == [
        "data",
        "classifier",
        "nmf",
        "l2i",
        "piq",
        "lmac",
        "eval_l2i",
        "eval_piq",
        "eval_lmac",
        "eval_mixtures_l2i",  # out of distribution (demo.yaml's eval: out_of_distribution)
        "eval_mixtures_piq",
        "eval_mixtures_lmac",
    ]
    assert all(seconds is not None for seconds in result["timings"].values())  # nothing reused
    for path in (
        "data/meta/ground_truth.csv",
        "classifier/classifier.ckpt",
        "classifier/embedding_model.ckpt",
        "nmf/nmf_decoder.ckpt",
        "l2i/psi_model.ckpt",
        "l2i/theta.ckpt",
        "piq/psi_model.ckpt",
        "lmac/psi_model.ckpt",
        "l2i/eval/metrics.json",
        "piq/eval/metrics.json",
        "lmac/eval/metrics.json",
        "l2i/eval_mixtures/metrics.json",
        "piq/eval_mixtures/metrics.json",
        "lmac/eval_mixtures/metrics.json",
        "report/index.html",
        "summary.md",
    ):
        assert (out / path).is_file(), path
    params = json.loads((out / "data" / "meta" / "synthetic_params.json").read_text())
    assert (params["classes"], params["per_class"], params["duration_s"]) == (3, 5, 1.0)


def test_margins_against_the_best_baseline_of_the_same_classifier_and_clips(smoke):
    """Each interpreter's row: its SI-SDRi less the best of its own random mask and the
    classifier's baselines (scored once, in L2I's evaluation), from the metrics.json files;
    its GT precision over the all-ones mask's. In summary.md."""
    out, result, _ = smoke
    evaluations = {name: json.loads((out / name / "eval" / "metrics.json").read_text()) for name in ("l2i", "piq", "lmac")}
    shared = {m: v["si_sdri"] for m, v in evaluations["l2i"]["methods"].items() if m not in ("L2I", "random", "oracle")}
    assert "above_floor" in shared and "saliency" in shared
    lines = result["margins"].splitlines()[2:]
    assert [line.split("|")[1].strip() for line in lines] == ["L2I", "PIQ", "LMAC"]
    for line, evaluation in zip(lines, evaluations.values()):
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        own = evaluation["methods"][evaluation["interpreter"]]
        candidates = {**shared, "random": evaluation["methods"]["random"]["si_sdri"]}
        best = max(candidates.values())
        assert float(cells[1]) == pytest.approx(own["si_sdri"], abs=0.006)
        assert float(cells[3]) == pytest.approx(best, abs=0.006)
        assert float(cells[4]) == pytest.approx(own["si_sdri"] - best, abs=0.006)
        ratio = own["gt_precision"] / evaluation["references"]["all_ones"]["gt_precision"]
        assert float(cells[6]) == pytest.approx(ratio, abs=0.006)
    assert result["margins"] in (out / "summary.md").read_text()


def test_summary_has_every_interpreter_baselines_and_ground_truth(smoke):
    out, result, _ = smoke
    rows = [line.split("|")[1].strip() for line in result["summary"].splitlines()[2:]]
    assert rows == [
        "L2I",
        "L2I: random mask",
        "L2I: best components (oracle)",  # L2I's ceiling on the ground truth
        "PIQ",
        "PIQ: random mask",
        "LMAC",
        "LMAC: random mask",
        # the captum baselines and the references: the same for every interpreter, shown
        # once (the demo's L2I evaluation scores the captum baselines, see demo.yaml)
        "saliency (captum)",
        "Integrated Gradients (captum)",
        "SmoothGrad (captum)",
        "occlusion (captum)",
        "above the clip's floor (no classifier)",
        "all ones",
        "ground truth",
    ]
    for column in ("SI-SDRi dB", "GT precision", "Deletion AUC", "Insertion AUC"):
        assert column in result["summary"]
    for name in ("l2i", "piq", "lmac"):
        evaluation = json.loads((out / name / "eval" / "metrics.json").read_text())
        assert evaluation["ground_truth"] and evaluation["n_clips"] == 3
        assert list(evaluation["references"]) == ["all_ones", "ground_truth"]
        assert "classifier_check" in evaluation
        assert (out / name / "eval" / evaluation["curves"]["png"]).is_file()
        assert set(evaluation["intervals"]) == set(evaluation["methods"]) | set(evaluation["references"])


def test_mixtures_table_has_every_interpreter_and_the_ground_truth(smoke):
    """The out-of-distribution evaluation (mixtures): its own table, in the printed summary
    and summary.md, with the ground truth (the other clip joins the background)."""
    out, result, _ = smoke
    table = result["out_of_distribution"]["mixtures"]
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert rows == [
        "L2I [mixtures]",
        "L2I [mixtures]: random mask",
        "L2I [mixtures]: best components (oracle)",
        "PIQ [mixtures]",
        "PIQ [mixtures]: random mask",
        "LMAC [mixtures]",
        "LMAC [mixtures]: random mask",
        "saliency (captum) [mixtures]",  # the captum baselines once (the L2I evaluation's)
        "Integrated Gradients (captum) [mixtures]",
        "SmoothGrad (captum) [mixtures]",
        "occlusion (captum) [mixtures]",
        "above the clip's floor (no classifier) [mixtures]",
        "all ones [mixtures]",
        "ground truth [mixtures]",
    ]
    for column in ("SI-SDRi dB", "GT precision", "GT recall", "Fid-In"):
        assert column in table
    summary_md = (out / "summary.md").read_text()
    assert result["summary"] in summary_md and table in summary_md
    assert summary_md.index(result["summary"]) < summary_md.index("Out of distribution: --overlap_type mixtures")
    for name in ("l2i", "piq", "lmac"):
        evaluation = json.loads((out / name / "eval_mixtures" / "metrics.json").read_text())
        assert evaluation["overlap_type"] == "mixtures" and evaluation["ground_truth"]
        assert list(evaluation["references"]) == ["all_ones", "ground_truth"]
        assert evaluation["classifier_check"]["target_accuracy"] is not None
        in_distribution = json.loads((out / name / "eval" / "metrics.json").read_text())
        assert evaluation["baselines"] == in_distribution["baselines"]  # the same flags


def test_merged_report_links_existing_files_only(smoke):
    out, result, _ = smoke
    index = out / "report" / "index.html"
    assert result["report"] == str(index)
    parser = _Links()
    parser.feed(index.read_text(encoding="utf-8"))
    # 3 interpreters x 2 evaluations (in distribution, mixtures) x (n clips x (3 wavs + 1 PNG)
    # + the curves' PNG)
    n_clips = demo.load_config(smoke=True)["eval"]["n_report_clips"]
    assert n_clips >= 1 and len(parser.links) == 3 * 2 * (n_clips * 4 + 1)
    assert "Do the metrics agree?" in index.read_text(encoding="utf-8")
    for link in parser.links:
        assert "://" not in link and (index.parent / urllib.parse.unquote(link)).is_file(), link


def test_rerun_reuses_every_stage(smoke, capsys):
    out, first, _ = smoke
    before = (out / "l2i" / "psi_model.ckpt").stat().st_mtime_ns
    result = demo.main(["--smoke", "--output_folder", str(out)])
    assert all(seconds is None for seconds in result["timings"].values())
    assert (out / "l2i" / "psi_model.ckpt").stat().st_mtime_ns == before
    assert result["summary"] == first["summary"]
    printed = capsys.readouterr().out
    assert "Report: " in printed and "| PIQ: random mask |" in printed
    n = len(result["timings"])  # the progress line before each stage: nothing left to run
    assert [line for line in printed.splitlines() if line.startswith("demo: stage ")] == [
        f"demo: stage {i + 1}/{n} {name}; about 0 s left (estimate)" for i, name in enumerate(result["timings"])
    ]
    assert first["out_of_distribution"]["mixtures"] in printed  # the mixtures table too
    assert first["margins"] and first["margins"] in printed  # each interpreter against the best baseline


def test_changed_settings_stop_a_rerun(smoke):
    out, _, _ = smoke
    config = demo.load_config(smoke=True)
    config["stages"]["classifier"]["overrides"]["number_of_epochs"] = 2
    stages = {stage.name: stage for stage in demo.build_stages(config, out)[0]}
    assert stages["data"].done()
    with pytest.raises(ValueError, match="delete .*classifier"):
        stages["classifier"].done()


def test_a_classifier_trained_again_stops_the_stages_that_read_it(smoke):
    """Was: after the classifier's folder was deleted and trained again, the interpreters
    trained on the old classifier and their evaluations were reused (their arguments had
    not changed). The checkpoint is written over here, by another hand than the demo's: the
    classifier's stage refuses too (its `demo_outputs.json`)."""
    out, _, _ = smoke
    stages = {stage.name: stage for stage in demo.build_stages(demo.load_config(smoke=True), out)[0]}
    checkpoint = out / "classifier" / "classifier.ckpt"
    original = checkpoint.read_bytes()
    try:
        checkpoint.write_bytes(original + b"trained again")
        for name, stage in stages.items():
            if name in ("data", "nmf"):
                assert stage.done(), name
            elif name == "classifier":  # its own record of what it wrote
                with pytest.raises(ValueError, match=f"{checkpoint} changed since the demo's classifier stage wrote it"):
                    stage.done()
            else:
                with pytest.raises(ValueError, match=f"delete {stage.folder} .*classifier.ckpt|read {checkpoint}"):
                    stage.done()
        with pytest.raises(ValueError, match="^10 folders of the demo cannot be reused") as refused:
            demo.reusable_stages(list(stages.values()))  # what a rerun says, before it runs anything
        for name, stage in stages.items():
            assert (f"- {stage.folder} read" in str(refused.value)) == (name not in ("data", "classifier", "nmf"))
        (out / "nmf" / "nmf_decoder.ckpt").touch()  # the same bytes: still done
        checkpoint.write_bytes(original)
        assert all(stage.done() for stage in stages.values())
    finally:
        checkpoint.write_bytes(original)
    moved = checkpoint.with_name("moved.ckpt")  # the classifier's folder deleted: its stage will run again
    checkpoint.rename(moved)
    try:
        with pytest.raises(ValueError, match=f"read {checkpoint}, which is gone"):
            stages["piq"].done()
    finally:
        moved.rename(checkpoint)
    psi = out / "lmac" / "psi_model.ckpt"  # L-MAC trained again: its evaluations only
    trained = psi.read_bytes()
    try:
        psi.write_bytes(trained + b"trained again")
        stopped = set()
        for name, stage in stages.items():
            try:
                stage.done()
            except ValueError as error:
                assert f"read {psi}" in str(error) or f"{psi} changed since the demo's lmac stage" in str(error)
                stopped.add(name)
        assert stopped == {"lmac", "eval_lmac", "eval_mixtures_lmac"}
    finally:
        psi.write_bytes(trained)


def test_inconsistent_sizes_are_a_clear_error():
    config = demo.load_config(smoke=True)
    config["stages"]["piq"]["overrides"]["emb_dim"] = 16
    with pytest.raises(ValueError, match="emb_dim"):
        demo.check_config(config)
    config = demo.load_config(smoke=True)
    config["common"]["signal_length_s"] = 2.0
    with pytest.raises(ValueError, match="duration_s"):
        demo.check_config(config)
    config = demo.load_config(smoke=True)
    config["eval"]["out_of_distribution"] = ["mixture"]
    with pytest.raises(ValueError, match="out_of_distribution.*'mixture'.*mixtures"):
        demo.check_config(config)
    config = demo.load_config(smoke=True)
    config["stage_costs_s"] = {"eval_lmca": 40}
    with pytest.raises(ValueError, match="stage_costs_s names 'eval_lmca', not a stage"):
        demo.check_config(config)
    config["stage_costs_s"] = {"eval_lmac": 0}
    with pytest.raises(ValueError, match="eval_lmac: 0 is not a number of seconds > 0"):
        demo.check_config(config)


@pytest.mark.parametrize("name", ["demo_transformers", "demo_ast", "demo_focalnet"])
def test_a_config_s_own_stage_costs_weigh_its_progress_estimate(repo_root, name):
    """The transformer demos' stages cost several times the Conv2d demo's (`STAGE_COST_S`):
    their `stage_costs_s` weigh the estimate; before any stage, the time left is their sum."""
    config = demo.load_config(repo_root / "hparams" / f"{name}.yaml")
    costs = config["stage_costs_s"]
    names = ["data", "classifier", "piq", "lmac", "eval_piq", "eval_lmac"]
    assert sorted(costs) == sorted(names)
    minutes, seconds = divmod(sum(costs.values()), 60)
    line = demo.progress_line(0, names, set(), {}, costs)
    assert line == f"demo: stage 1/6 data; about {minutes} min {seconds} s left (estimate)"
    # the classifier took twice its cost here: the rest is estimated at twice theirs
    left = 2 * sum(costs[n] for n in names[2:])
    line = demo.progress_line(2, names, set(), {"data": 2 * costs["data"], "classifier": 2 * costs["classifier"]}, costs)
    assert line.endswith(f"about {left // 60} min {left % 60} s left (estimate)")


def check_stages_load(config, folder, extra=()):
    """Each stage's arguments (+ `extra`) build its yaml (an unknown key is a KeyError) and
    eval's arguments parse; returns the stages' names."""
    import speechbrain as sb
    from hyperpyyaml import load_hyperpyyaml

    from recipes import eval as eval_recipe

    stages, _ = demo.build_stages(config, folder)
    for stage in stages[1:]:
        argv = stage.settings
        if stage.name.startswith("eval_"):
            args, argv = eval_recipe.parse_eval_arguments(argv)
            assert args.pretrained_interpreter.endswith("psi_model.ckpt")
            assert args.overlap_type == ("mixtures" if "mixtures" in stage.name else "none")
            argv += ["--data_folder", args.data_folder, "--output_folder", args.eval_folder]
        hparams_file, _, overrides = sb.parse_arguments([*argv, *extra])
        with open(hparams_file, encoding="utf-8") as fin:
            hparams = load_hyperpyyaml(fin, overrides)
        assert hparams["output_folder"].startswith(str(folder)), stage.name
    return [stage.name for stage in stages]


def test_demo_config_loads_into_every_recipe_and_make_runs_it(repo_root, tmp_path):
    """The real demo (checked, not run): each stage's arguments build its yaml, eval's
    arguments parse, and `make demo` runs recipes/demo.py."""
    import subprocess

    assert check_stages_load(demo.load_config(), tmp_path / "demo") == [
        "data", "classifier", "nmf", "l2i", "piq", "lmac", "eval_l2i", "eval_piq", "eval_lmac",
        "eval_mixtures_l2i", "eval_mixtures_piq", "eval_mixtures_lmac",
    ]  # fmt: skip
    dry_run = subprocess.run(
        ["make", "-n", "demo"], cwd=repo_root, capture_output=True, text=True, check=True
    )
    assert "recipes/demo.py" in dry_run.stdout


#: a size each image-transformer demo's interpreters must share with its classifier
SHARED_SIZE = {"demo_transformers": ("hidden_size", 48), "demo_focalnet": ("depths", [1, 1, 1])}


@pytest.mark.parametrize("at_smoke_sizes", [False, True])
@pytest.mark.parametrize("name", ["demo_transformers", "demo_focalnet"])
def test_transformer_demo_config_loads_into_every_recipe(repo_root, tmp_path, name, at_smoke_sizes):
    """hparams/demo_transformers.yaml and demo_focalnet.yaml, at their sizes and their smoke sizes
    (checked, not run: their smoke runs are the slow tests of tests/integration/
    test_train_transformers.py; demo_ast.yaml's smoke run, the same chain, is not slow)."""
    config = demo.load_config(repo_root / "hparams" / f"{name}.yaml", smoke=at_smoke_sizes)
    # the class count the recipes take from the data at start-up (the yamls' 50 is ESC-50's)
    classes = ["--out_n_neurons", str(config["dataset"]["classes"])]
    assert check_stages_load(config, tmp_path / "demo", classes) == [
        "data", "classifier", "piq", "lmac", "eval_piq", "eval_lmac",
    ]  # fmt: skip
    key, other = SHARED_SIZE[name]
    config["stages"]["piq"]["overrides"][key] = other  # not the classifier's
    with pytest.raises(ValueError, match=f"`{key}` differs between the stages"):
        demo.check_config(config)


def test_a_dataset_of_the_users_replaces_the_synthetic_set(smoke, tmp_path):
    """`--data_folder` (a collection_prepare dataset, e.g. real recordings): no data stage,
    every stage reads that folder, compare's plan too; a folder without exact sources is
    refused with the command that makes one."""
    from recipes import compare

    out, _, _ = smoke
    data = out / "data"  # the smoke set has the layout collection_prepare writes
    config = demo.use_data_folder(demo.load_config(smoke=True), str(data))
    stages, _ = demo.build_stages(config, tmp_path / "run")
    assert "data" not in [stage.name for stage in stages]
    for stage in stages:
        argv = stage.settings
        assert argv[argv.index("--data_folder") + 1] == str(data), stage.name
        assert not str(stage.folder).startswith(str(data))
    plan, _ = compare.plan_stages(config, str(tmp_path / "run"), [1, 2], ("piq",))
    assert [label for label, _ in plan][:2] == ["classifier", "piq [seed 1]"]

    assert config["common"]["signal_length_s"] == 1.0  # the smoke set's clips: the smoke's length

    (tmp_path / "bare" / "meta").mkdir(parents=True)
    (tmp_path / "bare" / "meta" / "esc50.csv").write_text((data / "meta" / "esc50.csv").read_text())
    with pytest.raises(FileNotFoundError, match="ground_truth.csv.*collection_prepare.py"):
        demo.use_data_folder(config, str(tmp_path / "bare"))


def test_a_dataset_of_longer_clips_is_read_whole(smoke, tmp_path, capsys):
    """The recipes read a clip's first signal_length_s seconds: on a dataset of the user's
    whose clips are longer (ESC-50's 5 s, collection_prepare --duration-s), the demo's
    stages get the clips' own length, and say so; an unreadable clip is named."""
    out, _, _ = smoke
    data = tmp_path / "long"
    shutil.copytree(out / "data", data)
    first = sorted((data / "audio").iterdir())[0]
    audio, rate = sf.read(first)
    sf.write(first, np.concatenate([audio, audio[: rate // 2]]), rate)  # 1 s -> 1.5 s
    config = demo.use_data_folder(demo.load_config(smoke=True), str(data))
    assert config["common"]["signal_length_s"] == 1.5
    assert "last 1.5 s: every stage reads them whole" in capsys.readouterr().out
    stages, _ = demo.build_stages(config, tmp_path / "run")
    for stage in stages:
        argv = stage.settings
        assert argv[argv.index("--signal_length_s") + 1] == "1.5", stage.name
    ast = demo.load_config(demo.DEFAULT_CONFIG.replace("demo.yaml", "demo_ast.yaml"), smoke=True)
    with pytest.raises(ValueError, match=r"sizes its AST to them \(max_length \{'classifier': 87"):
        demo.use_data_folder(ast, str(data))  # its position embeddings: the user's choice
    first.write_bytes(b"not audio")
    with pytest.raises(ValueError, match=f"{first.name} is unreadable"):
        demo.use_data_folder(demo.load_config(smoke=True), str(data))
