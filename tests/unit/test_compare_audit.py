"""Mutation audit of recipes/compare.py (`make compare`): the figures and files it writes.

Nothing is trained: `run_compare` is given a plan whose every stage output already exists
(placeholder files, as a reused stage's), with each eval folder's metrics.json written here in
the layout recipes/eval.py writes ("interpreter", "methods", "references", "by_class", the
fields of the evaluation's group; a value undefined on every clip is null). The expected
figures are worked out by hand from those per-seed values (written literally in the tests),
cross-checked with `statistics` / numpy (ddof 1); files are read back with the csv and json
modules. Each test names the mutations of the audit it catches.
"""

import csv
import json
import math
import os
import statistics

import numpy as np
import pytest

from recipes import compare, demo

SMOKE = demo.load_config(smoke=True)
COMMON = SMOKE["common"]["seed"]
SEEDS = [COMMON + 3, COMMON, COMMON + 1]  # not starting with the common seed

# Per seed (in SEEDS order): the interpreters' own rows and their classes' means.
PIQ = {"fid_in": [1, 1, 1], "si_sdri": [10.0, 20.0, 60.0]}  # ints, as json may hold them
LMAC = {
    "fid_in": [0.5, 0.75, 1.0],
    "SPS": [0.25, 0.75, None],  # undefined on every clip of the last seed
    "si_sdri": [2.0, 4.0, 9.0],
    "gt_precision": [0.5, 0.5, 0.5],
    "AD": [None, None, None],
}
LMAC_RANDOM = {"si_sdri": [-1.0, -2.0, -3.0]}
SALIENCY_LAST_SEED = {"fid_in": 0.25}  # a captum baseline scored on the last seed only
PIQ_CLASSES = {"dog": [4.0, 4.0, 4.0], "cat": [2.0, 3.0, None]}  # si_sdri
LMAC_CLASSES = {"dog": [5.0, 6.0, 7.0], "bird": [None, None, None], "cat": [1.0, 2.0, 6.0]}


def _at(values, index):
    return {key: series[index] for key, series in values.items()}


def _evaluation(name, index, seed):
    """metrics.json of one interpreter's evaluation at SEEDS[index]."""
    own = _at(PIQ if name == "PIQ" else LMAC, index)
    methods = {name: own}
    if name == "LMAC":
        methods["random"] = _at(LMAC_RANDOM, index)
        if index == 2:
            methods["saliency"] = dict(SALIENCY_LAST_SEED)
    classes = PIQ_CLASSES if name == "PIQ" else LMAC_CLASSES
    by_class = {}
    for label, series in classes.items():
        value = series[index]
        by_class[label] = {
            "n": 2,
            name: {} if value is None else {"si_sdri": value},
            "ground_truth": {"si_sdri": 99.0},
        }
        if label == "bird":
            by_class[label][name]["fid_in"] = 0.5
    if name == "PIQ" and index == 2:
        by_class["cat"] = {"n": 1, "ground_truth": {"si_sdri": 99.0}}  # no PIQ value: no row
    return {
        "interpreter": name,
        "data_folder": "/data",
        "overlap_type": "none",
        "wham_noise": False,
        "n_clips": 6,
        "seed": seed,
        "classifier": {"embedding_model": "e.ckpt", "classifier_model": "c.ckpt"},
        "methods": methods,
        "references": {"all_ones": {"fid_in": 1.0, "si_sdri": 0.0}, "ground_truth": {"gt_precision": 1.0}},
        "by_class": by_class,
    }


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fout:
        json.dump(data, fout)


def _reused_plan(config, out, seeds, interpreters, metrics, variant=None):
    """Every planned stage's outputs made beforehand (so each stage is reused, nothing trains);
    `metrics` {(seed, interpreter): metrics.json content}."""
    plan, eval_folders = compare.plan_stages(config, str(out), seeds, interpreters, variant)
    for seed, folders in eval_folders.items():
        for name, folder in folders.items():
            _write(os.path.join(folder, "metrics.json"), metrics[(seed, name)])
    for _, stage in plan:
        for path in stage.outputs:
            if not os.path.isfile(path):
                _write(path, {})
    return eval_folders


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare_audit") / "out"
    metrics = {
        (seed, interpreter): _evaluation(name, index, seed)
        for index, seed in enumerate(SEEDS)
        for interpreter, name in (("piq", "PIQ"), ("lmac", "LMAC"))
    }
    _reused_plan(SMOKE, out, SEEDS, ["piq", "lmac"], metrics)
    result = compare.run_compare(SMOKE, str(out), SEEDS, ["piq", "lmac"])
    return out, result


# --- the summary over the seeds -------------------------------------------------------------

#: The summary's rows, in order of first appearance, with their per-seed values (hand-copied).
EXPECTED_ROWS = {
    "PIQ": PIQ,
    "LMAC": {key: series for key, series in LMAC.items() if key != "AD"},  # AD: never a number
    "LMAC: random mask": LMAC_RANDOM,
    "all ones": {"fid_in": [1.0, 1.0, 1.0], "si_sdri": [0.0, 0.0, 0.0]},
    "ground truth": {"gt_precision": [1.0, 1.0, 1.0]},
    "saliency (captum)": {"fid_in": [None, None, 0.25]},
}


def _independent_cell(series):
    values = [float(v) for v in series if v is not None]
    std = statistics.stdev(values) if len(values) > 1 else None
    if len(values) > 1:
        assert std == pytest.approx(float(np.std(values, ddof=1)))
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def test_summary_json_is_mean_and_sample_std_over_the_seeds(three_seeds):
    """M52 (median for mean), M53 (pstdev), M55 (metrics of the last seed only), M56 (a row
    missing in a seed), M57 (rows in reverse seed order), M75 (non-numbers kept as metrics)."""
    out, result = three_seeds
    with open(out / "compare" / "summary.json", encoding="utf-8") as fin:
        summary = json.load(fin)
    assert list(summary) == ["PIQ", "LMAC", "LMAC: random mask", "all ones", "ground truth", "saliency (captum)"]
    for label, metrics in EXPECTED_ROWS.items():
        assert set(summary[label]) == set(metrics), label
        for metric, series in metrics.items():
            expected, cell = _independent_cell(series), summary[label][metric]
            assert cell["n"] == expected["n"], (label, metric)
            assert cell["mean"] == pytest.approx(expected["mean"], abs=1e-12), (label, metric)
            if expected["std"] is None:
                assert cell["std"] is None, (label, metric)
            else:
                assert cell["std"] == pytest.approx(expected["std"], abs=1e-12), (label, metric)
    # by hand: LMAC SI-SDRi 2, 4, 9 -> mean 5, std sqrt((9 + 1 + 16) / 2) = sqrt(13)
    assert summary["LMAC"]["si_sdri"]["mean"] == pytest.approx(5.0)
    assert summary["LMAC"]["si_sdri"]["std"] == pytest.approx(math.sqrt(13))
    assert result["summary"] == summary


def test_summary_md_cells_title_and_seeds(three_seeds):
    """M60 (std 0 not shown), M61 (std >= 10 with 3 decimals), M80 (the first seed named as the
    fixed seed), M81 (the interpreters counted as seeds); the cells by hand: PIQ SI-SDRi 10, 20,
    60 -> 30.0 ± sqrt(700) = 26.5; LMAC SPS 0.25, 0.75 (n=2) -> 0.500 ± 0.354."""
    out, _ = three_seeds
    lines = (out / "compare" / "summary.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# make compare: piq, lmac over 3 interpreter-training seeds"
    assert lines[2] == (
        f"Seeds: {COMMON + 3}, {COMMON}, {COMMON + 1} (interpreter training and evaluation; the data, "
        f"the classifier and the NMF dictionary are fixed, seed {COMMON})."
    )
    start = lines.index("| mean ± std over 3 seeds | Fid-In | SPS | SI-SDRi dB | GT precision |")
    assert lines[start + 1 : start + 8] == [
        "|---|---|---|---|---|",
        "| PIQ | 1.000 ± 0.000 | - | 30.0 ± 26.5 | - |",
        "| LMAC | 0.750 ± 0.250 | 0.500 ± 0.354 (n=2) | 5.000 ± 3.606 | 0.500 ± 0.000 |",
        "| LMAC: random mask | - | - | -2.000 ± 1.000 | - |",
        "| all ones | 1.000 ± 0.000 | - | 0.000 ± 0.000 | - |",
        "| ground truth | - | - | - | 1.000 ± 0.000 |",
        "| saliency (captum) | 0.250 (n=1) | - | - | - |",
    ]


def _section_rows(path, section, header):
    """The lines after `header` in the `section` of a summary.md."""
    lines = path.read_text(encoding="utf-8").split(section, 1)[1].splitlines()
    return lines[lines.index(header) + 1 :]


def test_by_class_table_worst_class_first_with_missing_values(three_seeds):
    """M70 (classes without the metric first), M76 (not worst-first), M82 (the by-class table
    told of 1 seed: no "(n=k)"); PIQ cat 2, 3 (n=2): 2.500 ± 0.707; LMAC cat 1, 2, 6: 3 ± sqrt(7)."""
    out, result = three_seeds
    assert list(result["by_class"]) == ["PIQ: cat", "PIQ: dog", "LMAC: cat", "LMAC: dog", "LMAC: bird"]
    cell = result["by_class"]["LMAC: cat"]["si_sdri"]
    assert (cell["mean"], cell["n"]) == (pytest.approx(3.0), 3)
    assert cell["std"] == pytest.approx(statistics.stdev([1.0, 2.0, 6.0]))
    rows = _section_rows(out / "compare" / "summary.md", "## By class", "| mean ± std over 3 seeds | Fid-In | SI-SDRi dB |")
    assert rows[:6] == [
        "|---|---|---|",
        "| PIQ: cat | - | 2.500 ± 0.707 (n=2) |",
        "| PIQ: dog | - | 4.000 ± 0.000 |",
        "| LMAC: cat | - | 3.000 ± 2.646 |",
        "| LMAC: dog | - | 6.000 ± 1.000 |",
        "| LMAC: bird | 0.500 ± 0.000 | - |",
    ]


def test_per_seed_csv_read_back(three_seeds):
    """M65 (columns of the first row only), M66 (an int written as "1", not "1.0"): every row of
    every seed's evaluations, each value the metrics.json one, an undefined one empty."""
    out, _ = three_seeds
    with open(out / "compare" / "per_seed.csv", encoding="utf-8", newline="") as fin:
        rows = list(csv.reader(fin))
    assert rows[0] == ["seed", "interpreter", "method", "fid_in", "SPS", "si_sdri", "gt_precision"]
    table = {(int(r[0]), r[1], r[2]): dict(zip(rows[0][3:], r[3:], strict=True)) for r in rows[1:]}
    assert len(table) == len(rows) - 1 == 3 + 4 + 3 + 4 + 3 + 5
    assert table[(COMMON + 3, "piq", "PIQ")] == {"fid_in": "1.0", "SPS": "", "si_sdri": "10.0", "gt_precision": ""}
    assert table[(COMMON + 1, "lmac", "LMAC")] == {"fid_in": "1.0", "SPS": "", "si_sdri": "9.0", "gt_precision": "0.5"}
    assert table[(COMMON, "lmac", "LMAC")]["SPS"] == "0.75"
    assert table[(COMMON + 1, "lmac", "LMAC: saliency (captum)")]["fid_in"] == "0.25"
    assert (COMMON, "lmac", "LMAC: saliency (captum)") not in table
    for index, seed in enumerate(SEEDS):
        for key, series in LMAC_RANDOM.items():
            assert float(table[(seed, "lmac", "LMAC: random mask")][key]) == series[index]
        for interpreter in ("piq", "lmac"):
            assert table[(seed, interpreter, "ground truth")]["gt_precision"] == "1.0"


def test_an_evaluation_without_by_class_has_no_by_class_section(tmp_path):
    """M68 (`by_class` required), M77 (an empty "By class" section); one seed: no std, no "(n=k)",
    "1 seed" (M63)."""
    evaluation = _evaluation("LMAC", 0, COMMON)
    del evaluation["by_class"]
    _reused_plan(SMOKE, tmp_path, [COMMON], ["lmac"], {(COMMON, "lmac"): evaluation})
    result = compare.run_compare(SMOKE, str(tmp_path), [COMMON], ["lmac"])
    assert result["by_class"] == {}
    text = (tmp_path / "compare" / "summary.md").read_text(encoding="utf-8")
    assert "By class" not in text
    assert "| mean ± std over 1 seed | Fid-In | SPS | SI-SDRi dB | GT precision |" in text
    assert "| LMAC | 0.500 | 0.250 | 2.000 | 0.500 |" in text


def test_a_variants_files_beside_the_demo_settings(tmp_path):
    """run_compare with --variant, nothing trained: the settings named (M87), the paired rows read
    from the two metrics.json, the seed without the demo's settings named (M79), the demo's
    folders not paired with the variant's own (M78)."""
    config = compare.apply_settings(SMOKE, ["lmac.average_checkpoints=3"])
    seeds = [COMMON, COMMON + 1]
    base = _evaluation("LMAC", 0, COMMON)  # SI-SDRi 2, GT precision 0.5, Fid-In 0.5
    _reused_plan(SMOKE, tmp_path, [COMMON], ["lmac"], {(COMMON, "lmac"): base})  # the demo's settings, seed COMMON only
    variant = {(seed, "lmac"): _evaluation("LMAC", 2, seed) for seed in seeds}  # 9, 0.5, 1.0
    _reused_plan(config, tmp_path, seeds, ["lmac"], variant, variant="avg3")
    result = compare.run_compare(config, str(tmp_path), seeds, ["lmac"], variant="avg3", baseline_config=SMOKE)
    text = (tmp_path / "variants" / "avg3" / "compare" / "summary.md").read_text(encoding="utf-8")
    assert "Variant `avg3`: lmac.average_checkpoints=3.\n" in text
    assert result["paired"].splitlines()[2:] == [
        f"| lmac | {COMMON} | +2.00 -> +9.00 | 0.500 -> 0.500 | 0.500 -> 1.000 |",
        "| lmac | mean of 1 | **+2.00 -> +9.00** (+7.000) | **0.500 -> 0.500** (+0.000) | **0.500 -> 1.000** (+0.500) |",
    ]
    assert result["paired"] in text
    assert f"Seeds {COMMON + 1} have no evaluation with the demo's settings" in text
    assert not (tmp_path / "compare").exists()  # the demo's own tables: untouched


# --- the pieces -----------------------------------------------------------------------------


def test_seeds_given_as_text_are_ints_and_none_is_refused():
    """M1 (seeds kept as given), M2 (an empty list accepted)."""
    assert compare.resolve_seeds(1, seeds=["7", "8"]) == [7, 8]
    with pytest.raises(ValueError, match="--seeds needs at least one seed"):
        compare.resolve_seeds(1, seeds=[])


def test_interpreters_in_the_demos_order_and_unknown_ones_sorted():
    """M12 (the names sorted, not in the demo's order), M9 (the unknown names unsorted: caught
    unless the set happens to iterate sorted)."""
    assert compare.resolve_interpreters(["lmac", "PIQ"]) == ["piq", "lmac"]
    with pytest.raises(ValueError, match="unknown interpreter 'a', 'b', 'c', 'd', 'e', 'f':"):
        compare.resolve_interpreters(["f", "e", "d", "c", "b", "a"])


LMAC_ONLY = {"stages": {"classifier": {}, "lmac": {"hparams": "hparams/lmac_conv2d.yaml", "overrides": {"lr": 0.5}}}}
ALL_THREE = {
    "stages": {
        "classifier": {},
        "l2i": {"hparams": "hparams/l2i_conv2d.yaml"},
        "piq": {"hparams": "hparams/piq.yaml"},
        "lmac": {"hparams": "hparams/lmac_conv2d.yaml"},
    }
}


def test_settings_are_applied_to_a_copy_and_keep_the_stages_overrides():
    """M16 (the caller's config changed), M22 (the stage's overrides replaced), M23 (a stage's
    earlier setting dropped from "variant_settings"), M17 (L2I, a stage with a digit, refused)."""
    settings = ["lmac.average_checkpoints=3", "lmac.number_of_epochs=2"]
    config = compare.apply_settings(LMAC_ONLY, settings)
    assert LMAC_ONLY["stages"]["lmac"]["overrides"] == {"lr": 0.5}
    assert "variant_settings" not in LMAC_ONLY
    assert config["stages"]["lmac"]["overrides"] == {"lr": 0.5, "average_checkpoints": 3, "number_of_epochs": 2}
    assert config["variant_settings"] == {"lmac": {"average_checkpoints": 3, "number_of_epochs": 2}}
    assert compare.apply_settings(ALL_THREE, ["l2i.K=30"])["stages"]["l2i"]["overrides"] == {"K": 30}


def test_settings_errors_name_the_configs_stages_and_the_bad_value():
    """M18 (a stage checked against all interpreters, not the config's), M21 (bad yaml a raw
    yaml error, which main does not turn into a usage error)."""
    with pytest.raises(ValueError, match=r"--set l2i.K=3: this config trains lmac; STAGE is one of them"):
        compare.apply_settings(LMAC_ONLY, ["l2i.K=3"])
    with pytest.raises(ValueError, match=r"--set lmac.lr=\[1: '\[1' is not a yaml value"):
        compare.apply_settings(LMAC_ONLY, ["lmac.lr=[1"])


def test_variant_name_dot_dot_is_refused(capsys, tmp_path):
    """M83: '..' would put the variant's folders in the output folder itself (the misspelt key
    stops a mutant before anything runs)."""
    argv = ["--smoke", "--output_folder", str(tmp_path / "o"), "--interpreters", "lmac"]
    with pytest.raises(SystemExit) as stop:
        compare.main(argv + ["--variant", "..", "--set", "lmac.no_such_key=1"])
    assert stop.value.code == 2
    assert "--variant '..': a folder name" in capsys.readouterr().err


def test_plan_has_the_shared_stages_once(tmp_path):
    """M41: the data and classifier stages planned again for every seed (a reused rerun's None
    would replace their wall time in summary.md)."""
    plan, _ = compare.plan_stages(SMOKE, str(tmp_path), [5, 6, 7], ["lmac"])
    labels = [label for label, _ in plan]
    assert labels == ["data", "classifier"] + [
        f"{stage} [seed {seed}]" for seed in (5, 6, 7) for stage in ("lmac", "eval_lmac")
    ]


def _paired_evaluation(folder, name, si_sdri, gt_precision, fid_in):
    stats = {"si_sdri": si_sdri, "gt_precision": gt_precision, "fid_in": fid_in}
    stats = {key: value for key, value in stats.items() if value != "absent"}
    _write(os.path.join(folder, "metrics.json"), {"interpreter": name, "methods": {name: stats}})
    return str(folder)


def test_paired_table_head_order_and_missing_seeds_once(tmp_path):
    """M34 (a rule column too many), M35 (head reversed), M36 (interpreters not in the demo's
    order), M32 / M33 (a seed missing for two interpreters named twice)."""
    base, var = {}, {}
    for seed in (1, 2):
        base[seed] = {name: str(tmp_path / f"b{seed}" / name) for name in ("piq", "lmac")}
        var[seed] = {
            name: _paired_evaluation(tmp_path / f"v{seed}" / name, name.upper(), 1.0, 0.5, 1.0)
            for name in ("lmac", "piq")
        }
    table, missing = compare.paired_table(var, base)
    assert (table, missing) == ("", [1, 2])
    for name in ("piq", "lmac"):  # seed 1 run with the demo's settings, seed 2 not
        _paired_evaluation(tmp_path / "b1" / name, name.upper(), 0.0, 0.25, 0.5)
    table, missing = compare.paired_table(var, base)
    assert missing == [2]
    assert table.splitlines() == [
        "| interpreter | seed | SI-SDRi dB: demo's -> variant | GT precision: demo's -> variant "
        "| Fid-In: demo's -> variant |",
        "|---|---|---|---|---|",
        "| piq | 1 | +0.00 -> +1.00 | 0.250 -> 0.500 | 0.500 -> 1.000 |",
        "| piq | mean of 1 | **+0.00 -> +1.00** (+1.000) | **0.250 -> 0.500** (+0.250) | **0.500 -> 1.000** (+0.500) |",
        "| lmac | 1 | +0.00 -> +1.00 | 0.250 -> 0.500 | 0.500 -> 1.000 |",
        "| lmac | mean of 1 | **+0.00 -> +1.00** (+1.000) | **0.250 -> 0.500** (+0.250) | **0.500 -> 1.000** (+0.500) |",
    ]


def test_paired_value_of_an_undefined_figure_is_a_dash():
    """M37: inf / NaN printed as "+inf" / "nan" rather than a dash."""
    assert compare.paired_value("si_sdri", math.inf) == "-"
    assert compare.paired_value("fid_in", math.nan) == "-"


def test_paired_values_undefined_are_dashes_and_left_out_of_the_mean(tmp_path):
    """The bug fixed: a figure null (undefined on every clip) or absent in one seed's
    metrics.json crashed the mean (statistics.mean of None, or a KeyError), after all the
    training and before any file was written. Now the mean is over the seeds with both values, "(n=k)"
    when fewer; by hand SI-SDRi seed 2 only: 3 -> 5 (+2.000); GT precision (absent from seed 1's
    variant) 0.4 -> 0.4; Fid-In both seeds: 0.6 -> 0.75 (+0.150); seed 1 alone: "-" where
    no seed has both."""
    base = {1: {"l2i": _paired_evaluation(tmp_path / "b1", "L2I", None, 0.2, 0.5)},
            2: {"l2i": _paired_evaluation(tmp_path / "b2", "L2I", 3.0, 0.4, 0.7)}}
    var = {1: {"l2i": _paired_evaluation(tmp_path / "v1", "L2I", 2.0, "absent", 0.7)},
           2: {"l2i": _paired_evaluation(tmp_path / "v2", "L2I", 5.0, 0.4, 0.8)}}
    lines = compare.paired_table(var, base)[0].splitlines()
    assert lines[2] == "| l2i | 1 | - -> +2.00 | 0.200 -> - | 0.500 -> 0.700 |"
    assert lines[4] == (
        "| l2i | mean of 2 | **+3.00 -> +5.00** (+2.000) (n=1) | **0.400 -> 0.400** (+0.000) (n=1) "
        "| **0.600 -> 0.750** (+0.150) |"
    )
    lines = compare.paired_table({1: var[1]}, {1: base[1]})[0].splitlines()  # seed 1 alone
    assert lines[3] == "| l2i | mean of 1 | - | - | **0.500 -> 0.700** (+0.200) |"


def test_mean_std_and_cells_by_hand():
    """M51 (NaN not skipped), M52 (median), M60 (std 0 hidden), M61 (std >= 10 not 1 decimal),
    M63 ("1 seeds")."""
    assert compare.mean_std([1.0, float("nan"), 2.0, 6.0]) == (3.0, pytest.approx(math.sqrt(7)), 3)
    assert compare.format_cell({"mean": 1.0, "std": 0.0, "n": 2}, 2) == "1.000 ± 0.000"
    assert compare.format_cell({"mean": 25.0, "std": 12.34, "n": 2}, 2) == "25.0 ± 12.3"
    table = compare.summary_table({"PIQ": {"fid_in": {"mean": 0.5, "std": None, "n": 1}}}, 1)
    assert table.splitlines()[0] == "| mean ± std over 1 seed | Fid-In |"


def test_aggregate_keeps_every_seeds_rows_and_metrics_in_first_order():
    """M55, M56, M57 on `aggregate` alone."""
    summary = compare.aggregate([{"A": {"x": 1.0, "y": 2.0}}, {"B": {"x": 4.0}, "A": {"x": 3.0}}])
    assert list(summary) == ["A", "B"] and list(summary["A"]) == ["x", "y"]
    assert summary["A"]["y"] == {"mean": 2.0, "std": None, "n": 1}
    assert summary["B"]["x"] == {"mean": 4.0, "std": None, "n": 1}
    assert summary["A"]["x"]["std"] == pytest.approx(statistics.stdev([1.0, 3.0]))


def test_per_seed_csv_columns_of_every_row():
    """M65, M66 on `per_seed_csv` alone, read back with csv."""
    text = compare.per_seed_csv([(1, "piq", "PIQ", {"fid_in": 1}), (1, "piq", "all ones", {"si_sdri": 0.5})])
    assert list(csv.reader(text.splitlines())) == [
        ["seed", "interpreter", "method", "fid_in", "si_sdri"],
        ["1", "piq", "PIQ", "1.0", ""],
        ["1", "piq", "all ones", "", "0.5"],
    ]


def test_worst_first_rows_without_the_metric_last():
    """M70."""
    rows = {"PIQ: a": {"fid_in": {"mean": 1.0}}, "PIQ: b": {"si_sdri": {"mean": 9.0}}}
    assert list(compare.worst_first(rows)) == ["PIQ: b", "PIQ: a"]


def test_by_background_is_each_recordings_mean_over_the_seeds(tmp_path):
    """On a collection set each evaluation has "by_background" (recipes/eval.py): summary.md's
    "By background recording" and the result's `by_background` give, per interpreter and
    recording, the mean and std over the seeds (rain 1, 3: 2 ± sqrt(2); speech 0.5, missing:
    0.5 (n=1)), the worst recording first; without it (the fixture above) there is none."""
    seeds = [COMMON, COMMON + 1]
    backgrounds = [
        {"rain.ogg": {"n": 2, "LMAC": {"si_sdri": 1.0}}, "speech.wav": {"n": 1, "LMAC": {"si_sdri": 0.5}}},
        {"rain.ogg": {"n": 2, "LMAC": {"si_sdri": 3.0}}, "speech.wav": {"n": 1, "LMAC": {}}},
    ]
    metrics = {}
    for index, seed in enumerate(seeds):
        metrics[(seed, "lmac")] = {**_evaluation("LMAC", index, seed), "by_background": backgrounds[index]}
    _reused_plan(SMOKE, tmp_path, seeds, ["lmac"], metrics)
    result = compare.run_compare(SMOKE, str(tmp_path), seeds, ["lmac"])
    assert list(result["by_background"]) == ["LMAC: speech.wav", "LMAC: rain.ogg"]
    rain = result["by_background"]["LMAC: rain.ogg"]["si_sdri"]
    assert (rain["mean"], rain["n"]) == (pytest.approx(2.0), 2)
    assert rain["std"] == pytest.approx(math.sqrt(2.0))
    rows = _section_rows(tmp_path / "compare" / "summary.md", "## By background recording", "| mean ± std over 2 seeds | SI-SDRi dB |")
    assert rows[1:3] == [
        "| LMAC: speech.wav | 0.500 (n=1) |",
        "| LMAC: rain.ogg | 2.000 ± 1.414 |",
    ]


def test_no_by_background_without_recordings(three_seeds):
    out, result = three_seeds
    assert result["by_background"] == {}
    assert "By background" not in (out / "compare" / "summary.md").read_text(encoding="utf-8")


def test_a_variant_scored_on_other_clips_is_not_paired(tmp_path):
    """A variant with `add_wham_noise` is evaluated on noisy clips (recipes/eval.py): its figures
    beside the demo's clean ones are not a pair. Seed 1 (the same clips): SI-SDRi 1 -> 2; seed 2
    (wham_noise False -> True): named, left out, so the mean is seed 1's alone (+1.00 -> +2.00)."""
    def evaluation(name, si_sdri, wham):
        path = tmp_path / name / "metrics.json"
        _write(str(path), {"interpreter": "L2I", "methods": {"L2I": {"si_sdri": si_sdri}}, "wham_noise": wham,
                           "n_clips": 80, "overlap_type": "none"})
        return str(path.parent)

    base = {1: {"l2i": evaluation("b1", 1.0, False)}, 2: {"l2i": evaluation("b2", 3.0, False)}}
    var = {1: {"l2i": evaluation("v1", 2.0, False)}, 2: {"l2i": evaluation("v2", 9.0, True)}}
    table, missing = compare.paired_table(var, base)
    lines = table.splitlines()
    assert missing == []
    assert "| l2i | 2 | not a pair: scored on other clips (wham_noise False -> True); left out of the mean | | |" in lines
    assert lines[-1].startswith("| l2i | mean of 1 | **+1.00 -> +2.00** (+1.000) |")
