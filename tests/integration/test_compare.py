"""`make compare` (recipes/compare.py): the demo's interpreters over training seeds, mean ± std."""

import copy
import csv
import json
import os
import statistics
import subprocess

import pytest
import torch
import yaml

from recipes import compare, demo

SMOKE_COMMON_SEED = demo.load_config(smoke=True)["common"]["seed"]
OTHER_SEED = SMOKE_COMMON_SEED + 7
FOCALNET_CONFIG = os.path.join(demo.REPO_ROOT, "hparams", "demo_focalnet.yaml")  # no L2I stage
LIGHT_EVAL = {"baselines": "random", "n_bootstrap": 20}  # recipes/eval.py flags


def light_smoke_config(folder):
    """hparams/demo.yaml with a lighter smoke evaluation (the random-mask baseline only, few
    bootstrap resamples): the evaluation is tested in tests/test_eval.py, and its captum
    baselines take most of its time."""
    with open(demo.DEFAULT_CONFIG, encoding="utf-8") as fin:
        config = yaml.safe_load(fin)
    config["smoke"].setdefault("eval", {})["options"] = dict(LIGHT_EVAL)
    path = folder / "demo_light.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Smoke L-MAC at the common seed, then again with a second seed added (reusing the first).

    Returns (output folder, first result, second result, mtimes after the first run).
    """
    root = tmp_path_factory.mktemp("compare")
    out = root / "smoke"
    config = light_smoke_config(root)
    argv = [
        "--config",
        str(config),
        "--smoke",
        "--output_folder",
        str(out),
        "--interpreters",
        "lmac",
    ]
    first = compare.main(argv + ["--seeds", str(SMOKE_COMMON_SEED)])
    mtimes = {
        path: (out / path).stat().st_mtime_ns
        for path in (
            "classifier/classifier.ckpt",
            "data/meta/ground_truth.csv",
            "lmac/psi_model.ckpt",
        )
    }
    second = compare.main(argv + ["--seeds", str(SMOKE_COMMON_SEED), str(OTHER_SEED)])
    return out, first, second, mtimes


def _metrics(folder):
    return json.loads((folder / "eval" / "metrics.json").read_text())


def test_second_seed_trains_only_its_interpreter(two_runs):
    out, first, second, mtimes = two_runs
    assert list(first["timings"]) == [
        "data",
        "classifier",
        f"lmac [seed {SMOKE_COMMON_SEED}]",
        f"eval_lmac [seed {SMOKE_COMMON_SEED}]",
    ]  # no NMF stage without L2I
    assert all(seconds is not None for seconds in first["timings"].values())
    ran = {name for name, seconds in second["timings"].items() if seconds is not None}
    assert ran == {f"lmac [seed {OTHER_SEED}]", f"eval_lmac [seed {OTHER_SEED}]"}
    for path, mtime in mtimes.items():  # shared stages and the common seed's L-MAC: not rewritten
        assert (out / path).stat().st_mtime_ns == mtime, path


def test_data_and_classifier_are_shared_interpreters_are_per_seed(two_runs):
    out, _, second, _ = two_runs
    records = {
        path.parent.relative_to(out).as_posix(): json.loads(path.read_text())
        for path in out.rglob(demo.STAGE_RECORD)
        if compare.VARIANTS_FOLDER not in path.relative_to(out).parts  # a variant's: below
    }
    assert set(records) == {
        "data",
        "classifier",
        "lmac",
        "lmac/eval",
        f"seeds/{OTHER_SEED}/lmac",
        f"seeds/{OTHER_SEED}/lmac/eval",
    }
    assert not (out / "seeds" / str(SMOKE_COMMON_SEED)).exists()  # the demo's own folders
    assert not (out / "nmf").exists()

    def flag(argv, name):
        return argv[argv.index(name) + 1]

    assert flag(records["classifier"], "--seed") == str(SMOKE_COMMON_SEED)
    assert records["data"]["seed"] == SMOKE_COMMON_SEED
    for folder, seed in (("lmac", SMOKE_COMMON_SEED), (f"seeds/{OTHER_SEED}/lmac", OTHER_SEED)):
        for argv in (records[folder], records[f"{folder}/eval"]):
            assert flag(argv, "--seed") == str(seed)
            assert flag(argv, "--classifier_folder") == str(out / "classifier")
            assert flag(argv, "--data_folder") == str(out / "data")
        assert _metrics(out / folder)["seed"] == seed
    assert second["eval_folders"] == {
        SMOKE_COMMON_SEED: {"lmac": str(out / "lmac" / "eval")},
        OTHER_SEED: {"lmac": str(out / "seeds" / str(OTHER_SEED) / "lmac" / "eval")},
    }


def test_the_seed_changes_the_trained_interpreter(two_runs):
    out, _, _, _ = two_runs
    first = torch.load(out / "lmac" / "psi_model.ckpt", map_location="cpu")
    other = torch.load(
        out / "seeds" / str(OTHER_SEED) / "lmac" / "psi_model.ckpt", map_location="cpu"
    )
    assert first.keys() == other.keys()
    assert any(not torch.equal(first[key], other[key]) for key in first)


def test_per_seed_csv_has_every_seed_and_row(two_runs):
    out, _, second, _ = two_runs
    path = out / "compare" / "per_seed.csv"
    assert second["per_seed_csv"] == str(path)
    with open(path, encoding="utf-8", newline="") as fin:
        rows = list(csv.DictReader(fin))
    assert list(rows[0])[:3] == ["seed", "interpreter", "method"]
    for seed, folder in (
        (SMOKE_COMMON_SEED, out / "lmac"),
        (OTHER_SEED, out / "seeds" / str(OTHER_SEED) / "lmac"),
    ):
        mine = {row["method"]: row for row in rows if row["seed"] == str(seed)}
        assert {row["interpreter"] for row in mine.values()} == {"lmac"}
        assert {"LMAC", "LMAC: random mask", "all ones", "ground truth"} <= set(mine)
        evaluation = _metrics(folder)
        assert float(mine["LMAC"]["SPS"]) == pytest.approx(evaluation["methods"]["LMAC"]["SPS"])
        assert float(mine["ground truth"]["gt_precision"]) == pytest.approx(1.0)


def test_summary_is_the_mean_and_std_over_the_seeds(two_runs):
    out, first, second, _ = two_runs
    summary = json.loads((out / "compare" / "summary.json").read_text())
    assert summary == second["summary"]
    assert list(summary)[0] == "LMAC" and "all ones" in summary
    evaluations = [_metrics(out / "lmac"), _metrics(out / "seeds" / str(OTHER_SEED) / "lmac")]
    checked = 0
    for metric in evaluations[0]["methods"]["LMAC"]:
        values = [evaluation["methods"]["LMAC"].get(metric) for evaluation in evaluations]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        cell = summary["LMAC"][metric]
        assert cell["n"] == 2
        assert cell["mean"] == pytest.approx(statistics.fmean(values), abs=1e-12), metric
        assert cell["std"] == pytest.approx(statistics.stdev(values), abs=1e-12), metric
        checked += 1
    assert checked >= 5
    assert summary["LMAC"]["SPS"]["std"] > 0  # the seeds' masks differ
    one_seed = first["summary"]["LMAC"]["SPS"]
    assert one_seed["n"] == 1 and one_seed["std"] is None  # one seed: no std
    assert one_seed["mean"] == pytest.approx(evaluations[0]["methods"]["LMAC"]["SPS"])
    text = (out / "compare" / "summary.md").read_text()
    assert "| mean ± std over 2 seeds | Fid-In |" in text
    assert f"Seeds: {SMOKE_COMMON_SEED}, {OTHER_SEED}" in text and "Wall time: " in text
    sps = compare.format_value(summary["LMAC"]["SPS"]["mean"])
    assert "| LMAC | " in text and f" {sps} ± " in text


def test_by_class_is_the_mean_over_the_seeds_of_each_seeds_class_means(two_runs):
    """From each seed's metrics.json "by_class": per class, the mean and std over the seeds
    of L-MAC's class means; in summary.md's "By class"."""
    out, _, second, _ = two_runs
    evaluations = [_metrics(out / "lmac"), _metrics(out / "seeds" / str(OTHER_SEED) / "lmac")]
    classes = list(evaluations[0]["by_class"])
    assert len(classes) == 3
    assert sorted(second["by_class"]) == sorted(f"LMAC: {c}" for c in classes)
    for label in classes:
        values = [evaluation["by_class"][label]["LMAC"]["si_sdri"] for evaluation in evaluations]
        cell = second["by_class"][f"LMAC: {label}"]["si_sdri"]
        assert cell["n"] == 2 and cell["mean"] == pytest.approx(statistics.fmean(values), abs=1e-12)
        assert cell["std"] == pytest.approx(statistics.stdev(values), abs=1e-12)
    means = [cells["si_sdri"]["mean"] for cells in second["by_class"].values()]
    assert means == sorted(means)  # the worst class first
    text = (out / "compare" / "summary.md").read_text()
    assert "## By class" in text and f"| LMAC: {classes[0]} | " in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n_seeds", "0"], "--n_seeds must be at least 1"),
        (["--seeds", "5", "6", "5"], "lists 5 more than once"),
        (["--interpreters", "lmac", "gradcam"], "unknown interpreter 'gradcam'"),
        (["--n_seeds", "2", "--seeds", "1", "2"], "not allowed with argument"),
        (["--set", "lmac.lr=0.1"], "--set needs --variant NAME"),
        (["--variant", "v", "--set", "lmac"], "--set lmac: write STAGE.KEY=VALUE"),
        (["--variant", "v", "--set", "nmf.K=3"], "this config trains l2i, piq, lmac; STAGE is one of them"),
        (["--variant", "v", "--set", "lmac.averag_checkpoints=3"], "has no key 'averag_checkpoints'"),
        (["--variant", "../v"], "--variant '../v': a folder name"),
    ],
)
def test_bad_arguments_are_clear_errors(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        compare.main(argv + ["--smoke", "--output_folder", str(tmp_path / "out")])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_common_seed_reuses_the_demo_stages_and_make_runs_it(repo_root, tmp_path):
    """With the real demo config (planned, not run): the common seed's stages are the demo's
    (same folders and settings, so `make compare` after `make demo` reuses them); the demo's
    out-of-distribution evaluations are the demo's own."""
    config = demo.load_config()
    common = config["common"]["seed"]
    assert compare.resolve_seeds(common) == [common, common + 1, common + 2]
    plan, eval_folders = compare.plan_stages(
        config, str(tmp_path), compare.resolve_seeds(common), list(demo.INTERPRETERS)
    )
    demo_stages = {stage.name: stage for stage in demo.build_stages(config, str(tmp_path))[0]}
    planned = dict(plan)
    assert len(planned) == 3 + 3 * 6
    ood = tuple(f"eval_{overlap}_" for overlap in demo.out_of_distribution(config))
    assert ood and any(name.startswith(ood) for name in demo_stages)
    for name, stage in demo_stages.items():
        if name.startswith(ood):  # the demo's out-of-distribution evaluations: not compared
            continue
        label = name if name in compare.SHARED_STAGES else f"{name} [seed {common}]"
        assert (planned[label].folder, planned[label].settings) == (stage.folder, stage.settings)
    other = planned[f"piq [seed {common + 2}]"]
    assert other.folder == str(tmp_path / "seeds" / str(common + 2) / "piq")
    assert other.settings[other.settings.index("--seed") + 1] == str(common + 2)
    assert eval_folders[common + 1]["l2i"] == str(
        tmp_path / "seeds" / str(common + 1) / "l2i" / "eval"
    )
    dry_run = subprocess.run(
        ["make", "-n", "compare"], cwd=repo_root, capture_output=True, text=True, check=True
    )
    assert "recipes/compare.py" in dry_run.stdout


@pytest.mark.parametrize("name", ["piq", "lmac"])
def test_a_config_without_l2i_reads_each_interpreters_own_evaluation(name, tmp_path):
    """The transformer demos train PIQ and L-MAC only: each asked interpreter's evaluation is
    its own folder (planned, not run), the default is the config's two, and L2I is refused."""
    config = demo.load_config(FOCALNET_CONFIG, smoke=True)
    assert list(demo.config_interpreters(config)) == ["piq", "lmac"]
    plan, eval_folders = compare.plan_stages(config, str(tmp_path), [5, 6], [name])
    assert eval_folders[5] == {name: str(tmp_path / "seeds" / "5" / name / "eval")}
    assert dict(plan)[f"eval_{name} [seed 6]"].folder == eval_folders[6][name]
    assert compare.resolve_interpreters(None, demo.config_interpreters(config)) == ["piq", "lmac"]


def test_an_interpreter_the_config_does_not_train_is_a_clear_error(capsys, tmp_path):
    argv = ["--config", FOCALNET_CONFIG, "--smoke", "--output_folder", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as stop:
        compare.main(argv + ["--interpreters", "l2i", "lmac"])
    assert stop.value.code == 2
    assert "--interpreters l2i: this config trains piq, lmac" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_variant_trains_its_own_folders_beside_the_demo_settings(two_runs):
    """--variant with --set: the interpreters of every seed trained again with the settings, in
    variants/<name>; the shared stages and the demo's own folders reused, untouched; the table
    against the demo's settings holds the two metrics.json files' figures, read here."""
    out, _, _, mtimes = two_runs
    seeds = (SMOKE_COMMON_SEED, OTHER_SEED + 1)  # the second has no run with the demo's settings
    result = compare.main(
        ["--config", str(out.parent / "demo_light.yaml"), "--smoke", "--output_folder", str(out)]
        + ["--interpreters", "lmac", "--seeds", *map(str, seeds), "--variant", "two_epochs"]
        + ["--set", "lmac.number_of_epochs=2", "--set", "lmac.average_checkpoints=2"]
    )
    variant = out / "variants" / "two_epochs"
    ran = {name for name, seconds in result["timings"].items() if seconds is not None}
    assert ran == {f"{stage} [seed {seed}]" for seed in seeds for stage in ("lmac", "eval_lmac")}
    for path, mtime in mtimes.items():
        assert (out / path).stat().st_mtime_ns == mtime, path
    for seed in seeds:
        folder = variant / "seeds" / str(seed) / "lmac"
        record = json.loads((folder / demo.STAGE_RECORD).read_text())
        assert record[record.index("--number_of_epochs") + 1] == "2"
        assert record[record.index("--average_checkpoints") + 1] == "2"
        assert record[record.index("--classifier_folder") + 1] == str(out / "classifier")
        assert (folder / "train_log.txt").read_text().count("epoch: ") == 2
    before = _metrics(out / "lmac")["methods"]["LMAC"]
    after = _metrics(variant / "seeds" / str(SMOKE_COMMON_SEED) / "lmac")["methods"]["LMAC"]
    row = (
        f"| lmac | {SMOKE_COMMON_SEED} | {before['si_sdri']:+.2f} -> {after['si_sdri']:+.2f} | "
        f"{before['gt_precision']:.3f} -> {after['gt_precision']:.3f} | "
        f"{before['fid_in']:.3f} -> {after['fid_in']:.3f} |"
    )
    assert row in result["paired"].splitlines()
    mean = f"**{before['si_sdri']:+.2f} -> {after['si_sdri']:+.2f}** ({after['si_sdri'] - before['si_sdri']:+.3f})"
    assert f"| lmac | mean of 1 | {mean} |" in result["paired"]
    text = (variant / "compare" / "summary.md").read_text()
    assert "lmac.number_of_epochs=2" in text and result["paired"] in text
    assert f"Seeds {OTHER_SEED + 1} have no evaluation with the demo's settings" in text
    assert not (out / "seeds" / str(OTHER_SEED + 1)).exists()  # nothing written for the demo's


def test_a_variant_is_not_paired_with_evaluations_another_config_made(two_runs):
    """Guards `run_compare`'s baseline check: the demo's evaluations made with 1 L-MAC epoch were
    paired with a variant under a config of 2, the difference credited to the variant's --set
    (found by a probe). Here the config the variant is compared against trains L-MAC for 3
    epochs: the demo's folders are not its, so no pair, and the summary says so."""
    out, _, _, _ = two_runs
    base = demo.load_config(str(out.parent / "demo_light.yaml"), smoke=True)
    variant = compare.apply_settings(base, ["lmac.number_of_epochs=2", "lmac.average_checkpoints=2"])
    other = copy.deepcopy(base)
    other["stages"]["lmac"]["overrides"]["number_of_epochs"] = 3
    result = compare.run_compare(
        variant, str(out), [SMOKE_COMMON_SEED], ["lmac"], variant="two_epochs", baseline_config=other
    )
    assert result["paired"] == ""
    assert all(seconds is None for seconds in result["timings"].values())  # the variant's reused
    text = (out / "variants" / "two_epochs" / "compare" / "summary.md").read_text()
    assert f"Seeds {SMOKE_COMMON_SEED} have no evaluation with the demo's settings (none, or one made with another config)" in text


def test_paired_table_means_each_metric_over_the_seeds_by_hand(tmp_path):
    """Two seeds, the demo's settings then the variant: SI-SDRi (1, 3) -> (2, 6), means 2 -> 4
    (+2); GT precision (0.2, 0.4) -> (0.3, 0.4), 0.3 -> 0.35; Fid-In (0.5, 0.7) -> (0.7, 0.8),
    0.6 -> 0.75; each seed's row too."""
    def evaluation(folder, si_sdri, gt_precision, fid_in):
        folder.mkdir(parents=True)
        stats = {"si_sdri": si_sdri, "gt_precision": gt_precision, "fid_in": fid_in}
        (folder / "metrics.json").write_text(json.dumps({"interpreter": "L2I", "methods": {"L2I": stats}}))
        return str(folder)

    base = {1: {"l2i": evaluation(tmp_path / "b1", 1.0, 0.2, 0.5)}, 2: {"l2i": evaluation(tmp_path / "b2", 3.0, 0.4, 0.7)}}
    var = {1: {"l2i": evaluation(tmp_path / "v1", 2.0, 0.3, 0.7)}, 2: {"l2i": evaluation(tmp_path / "v2", 6.0, 0.4, 0.8)}}
    table, missing = compare.paired_table(var, base)
    lines = table.splitlines()
    assert missing == []
    assert "| l2i | 1 | +1.00 -> +2.00 | 0.200 -> 0.300 | 0.500 -> 0.700 |" in lines
    assert "| l2i | mean of 2 | **+2.00 -> +4.00** (+2.000) | **0.300 -> 0.350** (+0.050) | **0.600 -> 0.750** (+0.150) |" in lines


def test_a_users_summary_in_the_compare_folder_is_refused_before_any_stage(two_runs, tmp_path):
    """Guards `check_own_files`: compare wrote over a summary.md / per_seed.csv of the user's in
    <out>/compare (found by a probe; the demo refused its own already)."""
    out, _, _, _ = two_runs
    config = demo.load_config(str(out.parent / "demo_light.yaml"), smoke=True)
    mine = tmp_path / "compare"
    mine.mkdir()
    (mine / "per_seed.csv").write_text("my,own,table\n")
    with pytest.raises(ValueError, match="per_seed.csv is already there and is not a summary of recipes/compare.py"):
        compare.run_compare(config, str(tmp_path), [SMOKE_COMMON_SEED], ["lmac"])
    assert (mine / "per_seed.csv").read_text() == "my,own,table\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["compare"]  # no stage ran
