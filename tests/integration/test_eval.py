"""recipes/eval.py, recipes/evaluation/baselines.py and recipes/report.py on tiny trained runs.

The interpreters are the session fixtures of conftest.py (`tiny_l2i`,
`tiny_piq`: one epoch on the 3-class, 1 s `tiny_synthetic` set).
"""

import json
import os
import re
import urllib.parse
from html.parser import HTMLParser

import matplotlib.image as plt_image
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import with_flag
from speechbrain.processing.features import ISTFT, STFT

from data_prep import interference
from data_prep.esc50_prepare import dataio_prep, load_clip, prepare_esc50
from data_prep.ground_truth import GroundTruth
from recipes import eval as eval_recipe
from recipes import report
from recipes.core import labels
from recipes.core.pipeline import invert_to_audio, spectrogram
from recipes.evaluation import baselines, curves, metrics, scoring
from recipes.reporting import html_report, tables

STFT_ARGS = {"sample_rate": 16000, "n_fft": 1024, "hop_length": 11.6099, "win_length": 23.2199}
GROUND_TRUTH_KEYS = ("si_sdr", "si_sdri", "gt_precision", "gt_recall")
SUITE_KEYS = ("fid_in", "faithfulness", "AI", "AD", "AG", "SPS", "COMP")


def eval_argv(trained, eval_folder, *extra):
    """The eval command line for a tiny trained interpreter (its training overrides)."""
    return (
        list(trained["argv"])
        + ["--pretrained_interpreter", str(trained["folder"] / "psi_model.ckpt")]
        + ["--eval_folder", str(eval_folder), "--n_report_clips", "2", *extra]
    )


class _Links(HTMLParser):
    """Collects src/href attributes and the tag names of a page."""

    def __init__(self):
        super().__init__()
        self.links, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.links += [value for key, value in attrs if key in ("src", "href") and value]


def check_report(index_html):
    """The page parses, loads nothing from outside, and every file it links exists."""
    parser = _Links()
    parser.feed(index_html.read_text(encoding="utf-8"))
    parser.close()
    assert parser.links, "the report links no file"
    assert not [tag for tag, _ in parser.tags if tag == "script"]
    assert not [attrs for tag, attrs in parser.tags if tag == "link"]
    for link in parser.links:
        assert "://" not in link and not link.startswith("/"), f"not a relative link: {link}"
        target = index_html.parent / urllib.parse.unquote(link)
        assert target.is_file(), f"{index_html} links {link}, which does not exist"
    return parser


@pytest.fixture(scope="module")
def evaluations(tiny_l2i, tiny_piq, tmp_path_factory):
    """In-distribution evaluations of both tiny interpreters (with ground truth)."""
    out = tmp_path_factory.mktemp("evaluations")
    sanity = ["--sanity_check", "--sanity_clips", "2"]  # PIQ's also runs the sanity check
    return {
        "L2I": (out / "l2i", eval_recipe.main(eval_argv(tiny_l2i, out / "l2i"))),
        "PIQ": (out / "piq", eval_recipe.main(eval_argv(tiny_piq, out / "piq", *sanity))),
    }



@pytest.mark.parametrize("name", ["L2I", "PIQ"])
def test_in_distribution_scores_interpreter_baselines_and_ground_truth(evaluations, name):
    folder, result = evaluations[name]
    oracle = ["oracle"] if name == "L2I" else []  # L2I's best components from the ground truth
    assert list(result["methods"]) == [name, *labels.BASELINES, *oracle]
    assert result["n_clips"] == 3 and result["ground_truth"] and result["overlap_type"] == "none"
    for method, stats in result["methods"].items():
        for key in SUITE_KEYS + GROUND_TRUTH_KEYS + curves.CURVE_METRICS:
            assert np.isfinite(stats[key]), (method, key)
        assert 0.0 <= stats["gt_precision"] <= 1.0 and 0.0 <= stats["gt_recall"] <= 1.0
        assert 0.0 <= stats["deletion_auc"] <= 1.0 and 0.0 <= stats["insertion_auc"] <= 1.0
    interpreter, random = result["methods"][name], result["methods"]["random"]
    # the random baseline is a permutation of the interpreter's mask: same sparsity
    assert random["SPS"] == pytest.approx(interpreter["SPS"], abs=1e-4)
    assert random["COMP"] == pytest.approx(interpreter["COMP"], abs=1e-4)
    if name == "L2I":
        assert {"theta_top1", "ff_components", "ff_random"} <= set(interpreter)
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["methods"] == result["methods"]
    assert saved["references"] == result["references"]
    table = (folder / "metrics.md").read_text()
    # named as in the report ("random mask", not metrics.json's "random")
    assert "| random mask |" in table and "| saliency (captum) |" in table and "SI-SDRi" in table
    assert "| all ones |" in table and "| ground truth |" in table
    assert "| occlusion (captum) |" in table and "Deletion AUC" in table and " ± " in table
    assert len(saved["clips"]) == 2
    for clip in saved["clips"]:
        for key in ("png", "original", "interpretation", "target"):
            assert (folder / clip[key]).is_file()
        height, width = plt_image.imread(folder / clip["png"]).shape[:2]
        assert width > 4.3 * height  # four panels (the target event's too: 4.9), not three (3.7)


@pytest.mark.parametrize("name", ["L2I", "PIQ"])
def test_intervals_and_mean_curves_in_metrics_json(evaluations, name):
    folder, result = evaluations[name]
    saved = json.loads((folder / "metrics.json").read_text())
    rows = {**saved["methods"], **saved["references"]}
    assert set(saved["intervals"]) == set(rows)
    assert saved["bootstrap"]["resamples"] == metrics.BOOTSTRAP_RESAMPLES
    for method, stats in rows.items():
        for metric, interval in saved["intervals"][method].items():
            if stats.get(metric) is not None:  # low <= mean <= high (up to rounding)
                assert interval["low"] - 1e-9 <= stats[metric] <= interval["high"] + 1e-9, (method, metric)
    drawn = saved["curves"]
    assert drawn["fractions"] == list(curves.CURVE_FRACTIONS) and drawn["deletion_value"] == "zero"
    # every method and the ground truth; "all ones" ranks nothing (all ties)
    oracle = ["oracle"] if name == "L2I" else []
    assert list(drawn["methods"]) == [name, *labels.BASELINES, *oracle, "ground_truth"]
    for method, method_curves in drawn["methods"].items():
        for kind in ("deletion", "insertion"):
            values = np.asarray(method_curves[kind])
            assert values.shape == (21,) and ((0 <= values) & (values <= 1)).all()
            # the AUC of the mean curve is the mean of the clips' AUCs (both linear)
            assert np.trapezoid(values, drawn["fractions"]) == pytest.approx(
                rows[method][f"{kind}_auc"], abs=1e-5
            )
        # nothing removed: p_c of the clip; nothing revealed: p_c of silence (the same for all)
        assert method_curves["deletion"][0] == pytest.approx(drawn["methods"][name]["deletion"][0])
        assert method_curves["insertion"][0] == pytest.approx(drawn["methods"][name]["insertion"][0])
    assert (folder / drawn["png"]).is_file()


def test_sanity_check_in_metrics_json_markdown_and_report(evaluations):
    folder, result = evaluations["PIQ"]
    sanity = json.loads((folder / "metrics.json").read_text())["sanity_check"]
    assert sanity["clips"] == 2 and sanity["steps"][0] == "none" and len(sanity["steps"]) > 2
    # the interpreter and the captum baselines (not the random permutation)
    assert list(sanity["methods"]) == ["PIQ", *labels.CLASSIFIER_BASELINES]
    for figures in sanity["methods"].values():
        assert len(figures["spearman"]) == len(figures["ssim"]) == len(sanity["steps"])
    assert (folder / sanity["png"]).is_file()
    assert "Sanity check" in (folder / "metrics.md").read_text()
    assert "Sanity check" in (folder / "report" / "index.html").read_text()
    assert "sanity_check" not in json.loads((evaluations["L2I"][0] / "metrics.json").read_text())


@pytest.mark.parametrize("name", ["L2I", "PIQ"])
def test_reference_rows_all_ones_and_ground_truth(evaluations, name):
    """Keep-everything and target-region masks, scored by the same suite."""
    _, result = evaluations[name]
    references = result["references"]
    assert list(references) == ["all_ones", "ground_truth"]
    for stats in references.values():
        for key in SUITE_KEYS + GROUND_TRUTH_KEYS:
            assert np.isfinite(stats[key]), key
    ones = references["all_ones"]
    assert ones["fid_in"] == 1.0
    assert ones["AI"] == ones["AD"] == ones["AG"] == 0.0
    assert abs(ones["si_sdri"]) < 1e-2 and ones["gt_recall"] == pytest.approx(1.0)
    truth = references["ground_truth"]
    assert truth["gt_precision"] == pytest.approx(1.0) and truth["gt_recall"] == pytest.approx(1.0)
    assert truth["si_sdri"] > ones["si_sdri"]  # the ceiling is above the floor


@pytest.mark.parametrize("name", ["L2I", "PIQ"])
def test_classifier_check_in_metrics_json_markdown_and_report(evaluations, name):
    folder, result = evaluations[name]
    check = json.loads((folder / "metrics.json").read_text())["classifier_check"]
    assert check == result["classifier_check"]
    assert check["accuracy"] == result["classifier_accuracy"]
    assert 0.0 <= check["target_accuracy"] <= 1.0
    assert check["ground_truth_fid_in"] == result["references"]["ground_truth"]["fid_in"]
    assert check["masked_predictions"] == 3 * 3  # (interpreter, saliency, ground truth) x 3 clips
    assert check["masked_top_class"] in ("steady_tone", "harmonic_stack", "up_chirp")
    assert 1 / 3 <= check["masked_top_class_share"] <= 1.0
    assert check["warning"] == tables.classifier_warning(check)
    expected_warning = check["masked_top_class_share"] > 0.5 or check["ground_truth_fid_in"] < 0.5
    assert (check["warning"] is not None) == expected_warning
    markdown = (folder / "metrics.md").read_text()
    page = (folder / "report" / "index.html").read_text()
    assert "## Classifier check" in markdown and "Classifier check" in page
    assert "clean target events alone" in markdown and "clean target events alone" in page
    if expected_warning:
        assert "not informative for this classifier" in markdown
        assert page.index("not informative for this classifier") < page.index("<h2>Summary")


def test_all_ones_metrics_of_a_brain(tiny_piq, tiny_test_clips):
    brain = tiny_piq["brain"]
    outputs = brain.explain(tiny_test_clips[2])
    values = scoring.all_ones_metrics(brain, outputs)
    assert (values["fid_in"] == 1).all()
    for key in ("AI", "AD", "AG"):
        assert (values[key] == 0).all(), key
    expected = brain.class_probabilities(brain.classify(torch.zeros_like(outputs["X"]))[0])
    p_c = outputs["probs"].gather(1, outputs["classes"].view(-1, 1)).squeeze(1)
    removed_c = expected.gather(1, outputs["classes"].view(-1, 1)).squeeze(1)
    assert values["faithfulness"].allclose(p_c - removed_c, atol=1e-5)


def test_classifier_check_warns_when_masked_inputs_go_to_one_class():
    names = ["dog", "rain", "siren"].__getitem__
    one_class = scoring.classifier_check(0.9, torch.tensor([1] * 7 + [0, 2]), names)
    assert (one_class["masked_top_class"], one_class["masked_predictions"]) == ("rain", 9)
    assert one_class["masked_top_class_share"] == pytest.approx(7 / 9)
    assert "not informative for this classifier" in one_class["warning"]
    assert "'rain'" in one_class["warning"] and "78 %" in one_class["warning"]
    balanced = scoring.classifier_check(
        0.9, torch.tensor([0, 1, 2, 0, 1, 2]), names, target_accuracy=1.0, ground_truth_fid_in=0.8
    )
    assert balanced["warning"] is None and balanced["masked_top_class_share"] == pytest.approx(
        1 / 3
    )
    half = scoring.classifier_check(0.9, torch.tensor([0, 0, 1, 2]), names)
    assert half["warning"] is None  # exactly half is not "more than half"
    blind = scoring.classifier_check(
        0.9, torch.tensor([0, 1, 2]), names, ground_truth_fid_in=0.25
    )
    assert "ground-truth mask" in blind["warning"] and "0.25" in blind["warning"]
    assert "more than half" not in blind["warning"]


def _fake_evaluation(folder, interpreter, check, overlap_type="none"):
    """A metrics.json with references and a classifier check, no clips."""
    folder.mkdir(parents=True)
    stats = {"fid_in": 0.5, "AD": 10.0}
    evaluation = {
        "interpreter": interpreter,
        "overlap_type": overlap_type,
        "wham_noise": False,
        "data_folder": "/data",
        "n_clips": 3,
        "seed": 1,
        "classifier": {"embedding_model": "e.ckpt", "classifier_model": "c.ckpt"},
        "classifier_accuracy": 1.0,
        "methods": {interpreter: stats, "random": stats},
        "references": {"all_ones": {"fid_in": 1.0}, "ground_truth": {"fid_in": 0.9}},
        "classifier_check": check,
        "clips": [],
    }
    (folder / "metrics.json").write_text(json.dumps(evaluation))
    return str(folder)


def test_merged_report_shows_references_once_and_warnings_on_top(tmp_path):
    good = {"accuracy": 1.0, "masked_top_class": "a", "masked_top_class_share": 0.4}
    bad = {"masked_top_class": "b", "masked_top_class_share": 0.9, "masked_predictions": 10}
    folders = [
        _fake_evaluation(tmp_path / "l2i", "L2I", good),
        _fake_evaluation(tmp_path / "piq", "PIQ", bad),
        _fake_evaluation(tmp_path / "piq_mix", "PIQ", good, overlap_type="mixtures"),
    ]
    evaluations = [html_report.load_evaluation(folder) for folder in folders]
    assert list(tables.summary_rows(evaluations)) == [
        "L2I",
        "L2I: random mask",
        "PIQ",
        "PIQ: random mask",
        "PIQ [mixtures]",
        "PIQ [mixtures]: random mask",
        "all ones",
        "ground truth",
        "all ones [mixtures]",
        "ground truth [mixtures]",
    ]
    page = open(html_report.write_report(folders, str(tmp_path / "report"))).read()
    assert page.count(">all ones</td>") == 1 and page.count('class="reference"') == 4
    top = page[: page.index("<h2>Summary")]
    assert top.count('class="warning"') == 1 and "Warning (PIQ)" in top
    assert "90 % of its predictions on masked inputs (9 of 10)" in top and "'b'" in top
    assert "img { max-width: 100%; height: auto; }" in page  # the spectrograms fit the page


@pytest.mark.parametrize("name", ["L2I", "PIQ"])
def test_report_of_one_evaluation_opens_offline(evaluations, name):
    folder, _ = evaluations[name]
    parser = check_report(folder / "report" / "index.html")
    n_audio = sum(tag == "audio" for tag, _ in parser.tags)
    assert n_audio == 2 * 3  # 2 clips x (original, interpretation, target)
    # 2 clips, the curves (and PIQ's sanity check)
    assert sum(tag == "img" for tag, _ in parser.tags) == 2 + 1 + (name == "PIQ")


def test_report_merges_evaluations(evaluations, tmp_path, capsys):
    folders = [str(evaluations[name][0]) for name in ("L2I", "PIQ")]
    index = report.main(folders + ["--out", str(tmp_path / "merged"), "--title", "tiny"])
    page = check_report(tmp_path / "merged" / "index.html")
    assert index == str(tmp_path / "merged" / "index.html")
    text = (tmp_path / "merged" / "index.html").read_text()
    for row in ("L2I", "L2I: random mask", "saliency (captum)", "occlusion (captum)", "all ones", "ground truth"):
        assert f">{row}</td>" in text
    # what does not depend on the interpreter is shown once in the summary table
    summary = text.split("<h2>Summary</h2>")[1].split("</table>")[0]
    for row in ("all ones", "ground truth", "saliency (captum)", "SmoothGrad (captum)"):
        assert summary.count(f">{row}</td>") == 1, row
    assert sum(tag == "img" for tag, _ in page.tags) == 2 * (2 + 1) + 1  # clips, curves, sanity
    assert "Do the metrics agree?" in text and "Kendall" in text
    printed = capsys.readouterr().out
    assert "| PIQ: random mask |" in printed and printed.count("| ground truth |") == 1
    report.main(folders + ["--out", str(tmp_path / "merged")])  # its own page: written again


def test_report_never_replaces_a_page_of_the_user(evaluations, tmp_path):
    """Was: `report.py --out site` wrote over the user's site/index.html."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html><title>my lab</title></html>")
    with pytest.raises(ValueError, match=r"index.html is already there and is not a report of this project"):
        report.main([str(evaluations["PIQ"][0]), "--out", str(site)])
    assert (site / "index.html").read_text() == "<html><title>my lab</title></html>"


def test_report_of_a_missing_evaluation_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipes/eval.py"):
        html_report.write_report([str(tmp_path)], str(tmp_path / "report"))


@pytest.fixture
def speech_folder(tmp_path):
    """Two 'speech' files at 22.05 kHz (resampled when read), in a subfolder."""
    folder = tmp_path / "LJSpeech-1.1" / "wavs"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        t = np.arange(22050) / 22050
        voice = np.sin(2 * np.pi * 180 * (1 + i) * t) * (1 + np.sin(2 * np.pi * 4 * t))
        sf.write(
            folder / f"LJ001-000{i}.wav", 0.3 * voice + 0.01 * rng.standard_normal(22050), 22050
        )
    return tmp_path / "LJSpeech-1.1"


@pytest.mark.parametrize("overlap_type", ["mixtures", "white_noise", "speech"])
def test_out_of_distribution_overlaps(
    tiny_piq, tiny_synthetic, tiny_test_clips, tmp_path, speech_folder, overlap_type
):
    folder = tmp_path / "piq"  # an exported interpreter alone: eval writes beside it
    folder.mkdir()
    (folder / "psi_model.ckpt").write_bytes((tiny_piq["folder"] / "psi_model.ckpt").read_bytes())
    argv = list(tiny_piq["argv"]) + [
        "--pretrained_interpreter",
        str(folder),
        "--n_report_clips",
        "1",
    ]
    argv += ["--overlap_type", overlap_type]
    if overlap_type == "speech":
        argv += ["--speech_folder", str(speech_folder)]
    result = eval_recipe.main(argv)
    eval_folder = folder / f"eval_{overlap_type}"  # the default eval folder
    assert json.loads((eval_folder / "metrics.json").read_text())["overlap_type"] == overlap_type
    assert not (folder / "hyperparams.yaml").exists()  # the interpreter's folder is left alone
    # the target stays the target, the interference joins the background: ground truth too
    assert result["ground_truth"]
    assert list(result["references"]) == ["all_ones", "ground_truth"]
    check = result["classifier_check"]
    assert 0.0 <= check["target_accuracy"] <= 1.0
    assert check["ground_truth_fid_in"] == result["references"]["ground_truth"]["fid_in"]
    assert check["masked_predictions"] == 3 * 3  # (interpreter, saliency, ground truth) x 3 clips
    for stats in [*result["methods"].values(), *result["references"].values()]:
        assert all(np.isfinite(stats[key]) for key in SUITE_KEYS + GROUND_TRUTH_KEYS)
    ones, truth = result["references"]["all_ones"], result["references"]["ground_truth"]
    assert abs(ones["si_sdri"]) < 1e-2 and ones["gt_recall"] == pytest.approx(1.0)
    assert truth["gt_precision"] == pytest.approx(1.0) and truth["gt_recall"] == pytest.approx(1.0)
    assert ones["gt_precision"] < 1.0  # the interference lies outside the target region
    # the all-ones row's precision, recomputed from the evaluated clips' sources: the target
    # region is where the target beats the background *with* the interference in it
    datasets, ids, clips = tiny_test_clips
    again = interference.Interference(
        overlap_type, datasets["test"], result["seed"], 16000, 16000, speech_folder=str(speech_folder)
    )
    mixture = again.mix(clips, 0)
    target, background = GroundTruth(tiny_synthetic, 16000, 16000).sources(ids, clips, mixture)
    region = metrics.target_region(target, background, STFT(**STFT_ARGS))
    X, _ = spectrogram(mixture.wavs, STFT(**STFT_ARGS))
    expected = metrics.gt_precision(X, X, region).mean().item()
    assert ones["gt_precision"] == pytest.approx(expected, abs=1e-5)
    check_report(eval_folder / "report" / "index.html")
    assert f"[{overlap_type}]" in (eval_folder / "report" / "index.html").read_text()


def test_wham_noise_keeps_the_ground_truth(tiny_piq, tmp_path):
    """With WHAM! noise the target stays the target and the noise joins the background."""
    noise_folder = tmp_path / "noise"
    noise_folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        sf.write(noise_folder / f"noise{i}.wav", 0.3 * rng.standard_normal(8000), 16000)
    wham = ["--add_wham_noise", "True", "--wham_folder", str(tmp_path), "--wham_audio_folder", str(noise_folder)]
    argv = eval_argv(tiny_piq, tmp_path / "eval", "--baselines", "random") + wham
    result = eval_recipe.main(argv)
    assert result["wham_noise"] and result["ground_truth"]
    assert list(result["references"]) == ["all_ones", "ground_truth"]
    ones, truth = result["references"]["all_ones"], result["references"]["ground_truth"]
    assert abs(ones["si_sdri"]) < 1e-2 and ones["gt_recall"] == pytest.approx(1.0)
    assert truth["gt_precision"] == pytest.approx(1.0) and truth["gt_recall"] == pytest.approx(1.0)
    for stats in [*result["methods"].values(), *result["references"].values()]:
        assert all(np.isfinite(stats[key]) for key in SUITE_KEYS + GROUND_TRUTH_KEYS)
    assert result["classifier_check"]["target_accuracy"] is not None
    assert "[WHAM! noise]" in (tmp_path / "eval" / "report" / "index.html").read_text()


@pytest.mark.parametrize("problem", ["missing", "empty", "unset"])
def test_speech_overlap_without_speech_is_a_clear_error(tiny_piq, tmp_path, problem):
    extra = ["--overlap_type", "speech"]
    if problem != "unset":
        folder = tmp_path / "speech"
        if problem == "empty":
            folder.mkdir()
        extra += ["--speech_folder", str(folder)]
    with pytest.raises(FileNotFoundError, match="speech_folder.*LJSpeech"):
        eval_recipe.main(eval_argv(tiny_piq, tmp_path / "eval", *extra))
    assert not (tmp_path / "eval").exists()  # nothing set up before the check


def test_missing_interpreter_is_a_clear_error(tiny_piq, tmp_path):
    argv = list(tiny_piq["argv"]) + ["--pretrained_interpreter", str(tmp_path / "psi_model.ckpt")]
    with pytest.raises(FileNotFoundError, match="train_piq.py"):
        eval_recipe.main(argv)


def test_single_sample_l2i_without_data_folder(tiny_l2i, tiny_synthetic, tmp_path, capsys):
    clip = tiny_synthetic / "audio" / "5-100004-A-0.wav"
    argv = list(tiny_l2i["argv"])
    at = argv.index("--data_folder")
    del argv[at : at + 2]  # the class names come from the training run's label encoder
    argv = with_flag(argv, "--relevance_th", -2)  # every component is relevant: one wav each
    result = eval_recipe.main(
        eval_argv(
            {**tiny_l2i, "argv": argv}, tmp_path, "--single_sample", str(clip),
            "--override_trained", "relevance_th",  # trained with 0.2: another value on purpose
            "--max_components", "3",
        )
    )
    out = capsys.readouterr().out
    assert f"{result['class']} (p={result['probability']:.3f})" in out
    assert result["class"] in ("steady_tone", "harmonic_stack", "up_chirp")
    folder = tmp_path / "5-100004-A-0"
    for name in ("5-100004-A-0.png", "5-100004-A-0_interpretation.wav", "prediction.json"):
        assert (folder / name).is_file()
    assert result["components_kept"] == 12  # K of the tiny dictionary
    # the wavs of the 3 most relevant only, the most relevant first, and no other on disk
    brain = tiny_l2i["brain"]
    wav = load_clip(clip, 16000, 16000)
    relevance = brain.explain(wav.unsqueeze(0))["relevance"][0].tolist()  # r_k of all 12
    by_hand = sorted(range(12), key=lambda k: (-relevance[k], k))[:3]
    assert [c["component"] for c in result["components"]] == by_hand
    assert [c["relevance"] for c in result["components"]] == pytest.approx([relevance[k] for k in by_hand])
    assert sorted(p.name for p in folder.glob("*_component*.wav")) == sorted(
        f"5-100004-A-0_component{k:03d}.wav" for k in by_hand
    )
    for component in result["components"]:
        audio, rate = sf.read(component["file"])
        assert rate == 16000 and audio.shape == (16000,)
    assert json.loads((folder / "prediction.json").read_text())["components_kept"] == 12
    # the interpretation is the explained clip, preprocessed like the dataset's clips
    expected = brain.explain(wav.unsqueeze(0))
    assert result["probability"] == pytest.approx(expected["probs"].max().item(), abs=1e-5)


def test_single_sample_piq_with_data_folder(tiny_piq, tiny_synthetic, tmp_path, capsys):
    clip = tiny_synthetic / "audio" / "4-100008-A-1.wav"
    result = eval_recipe.main(eval_argv(tiny_piq, tmp_path, "--single_sample", str(clip)))
    assert "components" not in result
    assert (tmp_path / "4-100008-A-1" / "4-100008-A-1_interpretation.wav").is_file()
    assert "interpretation written to" in capsys.readouterr().out


def test_missing_single_sample_is_a_clear_error(tiny_piq, tmp_path):
    missing = tmp_path / "nothing.wav"
    with pytest.raises(FileNotFoundError, match="nothing.wav does not exist"):
        eval_recipe.main(eval_argv(tiny_piq, tmp_path / "eval", "--single_sample", str(missing)))
    assert not (tmp_path / "eval").exists()


def test_eval_flags_are_not_yaml_overrides():
    args, rest = eval_recipe.parse_eval_arguments(
        ["hparams/piq.yaml", "--pretrained_interpreter=x", "--overlap_type", "speech", "--K", "3"]
    )
    assert (args.pretrained_interpreter, args.overlap_type, rest) == (
        "x",
        "speech",
        ["hparams/piq.yaml", "--K", "3"],
    )


# ------------------------------------------------------------------ ground truth


@pytest.fixture(scope="module")
def tiny_test_clips(tiny_synthetic, tmp_path_factory):
    """The test fold of the tiny set as dataio_prep gives it: ids and clips (B, T)."""
    out = tmp_path_factory.mktemp("gt")
    hparams = {
        "data_folder": str(tiny_synthetic),
        "save_folder": str(out / "save"),
        "sample_rate": 16000,
        "signal_length_s": 1,
        **{f"{s}_annotation": str(out / f"{s}.json") for s in ("train", "valid", "test")},
    }
    prepare_esc50(
        str(tiny_synthetic), None, *(hparams[f"{s}_annotation"] for s in ("train", "valid", "test"))
    )
    datasets, _ = dataio_prep(hparams)
    items = list(datasets["test"])
    return datasets, [item["id"] for item in items], torch.stack([item["sig"] for item in items])


def test_ground_truth_sources_sum_to_the_peak_normalised_clip(tiny_synthetic, tiny_test_clips):
    _, ids, clips = tiny_test_clips
    target, background = GroundTruth(tiny_synthetic, 16000, 16000).sources(ids, clips)
    assert torch.allclose(target + background, clips, atol=1e-5)
    assert clips.abs().amax(dim=1).allclose(torch.ones(len(ids)))
    assert (target.abs().amax(dim=1) > 0.05).all()  # the target event is there, not a scale of 0


def test_all_ones_mask_gives_zero_si_sdri_and_full_recall(tiny_synthetic, tiny_test_clips):
    _, ids, clips = tiny_test_clips
    stft, istft = STFT(**STFT_ARGS), ISTFT(**STFT_ARGS)
    target, background = GroundTruth(tiny_synthetic, 16000, 16000).sources(ids, clips)
    region = metrics.target_region(target, background, stft)
    X, X_stft = spectrogram(clips, stft)
    ones = torch.ones_like(X)
    audio = invert_to_audio(ones * X, X_stft, istft, clips.shape[1])
    gt = metrics.ground_truth_metrics(ones * X, X, audio, clips, target, region)
    assert gt["si_sdr"].allclose(metrics.si_sdr(clips, target), atol=1e-2)
    assert gt["si_sdri"].abs().max() < 1e-2
    assert gt["gt_recall"].allclose(torch.ones(len(ids)))
    energy = torch.expm1(X.double()) ** 2  # |STFT|^2
    share = ((energy * region).flatten(1).sum(1) / energy.flatten(1).sum(1)).float()  # the region's share
    assert gt["gt_precision"].allclose(share) and (share > 0).all() and (share < 1).all()

    oracle = metrics.ground_truth_metrics(region * X, X, audio, clips, target, region)
    assert oracle["gt_precision"].allclose(torch.ones(len(ids)))  # all kept energy is target's
    silent = metrics.ground_truth_metrics(
        torch.zeros_like(X), X, 0 * audio, clips, target, region
    )
    assert (silent["gt_precision"] == 0).all() and (silent["gt_recall"] == 0).all()
    assert (silent["si_sdr"] == -metrics.SI_SDR_CLIP_DB).all()


def test_ground_truth_of_other_audio_is_an_error(tiny_synthetic, tiny_test_clips):
    _, ids, clips = tiny_test_clips
    truth = GroundTruth(tiny_synthetic, 16000, 16000)
    with pytest.raises(ValueError, match="do not sum to the clip"):
        truth.sources(ids, clips.flip(0))
    with pytest.raises(ValueError, match="no row for clip"):
        truth.sources(["1-999-A-0"], clips[:1])


# ------------------------------------------------------------------ interference


def test_interference_is_deterministic_and_mixes_other_classes(tiny_test_clips):
    datasets, _, clips = tiny_test_clips
    dataset = datasets["test"]
    first = interference.Interference(
        "mixtures", dataset, seed=3, sample_rate=16000, n_samples=16000
    )
    second = interference.Interference(
        "mixtures", dataset, seed=3, sample_rate=16000, n_samples=16000
    )
    labels = torch.tensor([int(item["class_string_encoded"]) for item in dataset])
    assert torch.equal(first.partner, second.partner)
    assert (labels[first.partner] != labels).all()
    mixed = first(clips, 0)
    assert torch.equal(mixed, second(clips, 0))
    expected = interference.overlap_mix(clips, clips[first.partner])
    assert torch.allclose(mixed, expected) and mixed.abs().amax(dim=1).allclose(torch.ones(3))
    noisy = interference.Interference("white_noise", dataset, 3, 16000, 16000)(clips, 0)
    assert not torch.allclose(noisy, clips, atol=1e-2)
    assert interference.Interference("none", dataset, 3, 16000, 16000)(clips, 0) is clips


def test_mixtures_need_two_classes():
    with pytest.raises(ValueError, match="single class"):
        interference.pair_different_classes(torch.zeros(4, dtype=torch.long))


# ------------------------------------------------------------------ baselines


def test_random_mask_is_a_permutation_per_clip():
    mask = torch.rand(3, 7, 5) * (torch.rand(3, 7, 5) > 0.7)
    shuffled = baselines.random_mask(mask, torch.Generator().manual_seed(1))
    assert torch.equal(shuffled.flatten(1).sort(dim=1).values, mask.flatten(1).sort(dim=1).values)
    assert not torch.equal(shuffled, mask)
    assert metrics.sparseness(shuffled).allclose(metrics.sparseness(mask))
    assert metrics.complexity(shuffled).allclose(metrics.complexity(mask))


def test_saliency_mask_of_the_frozen_classifier(tiny_piq, tiny_test_clips):
    brain = tiny_piq["brain"]
    _, _, clips = tiny_test_clips
    outputs = brain.explain(clips)
    before = {k: v.clone() for k, v in brain.classifier_modules.state_dict().items()}
    mask = baselines.saliency_mask(
        brain.hparams.embedding_model, brain.hparams.classifier, outputs["X"], outputs["classes"]
    )
    assert mask.shape == outputs["X"].shape and not mask.requires_grad
    assert mask.min() >= 0 and mask.flatten(1).amax(dim=1).allclose(torch.ones(3))
    assert all(not p.requires_grad for p in brain.classifier_modules.parameters())
    after = brain.classifier_modules.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the explained class matters: another class's saliency is another mask
    other = baselines.saliency_mask(
        brain.hparams.embedding_model,
        brain.hparams.classifier,
        outputs["X"],
        (outputs["classes"] + 1) % 3,
    )
    assert not torch.allclose(mask, other)


def test_baseline_masks_for_a_brain(tiny_l2i, tiny_test_clips):
    brain = tiny_l2i["brain"]
    outputs = brain.explain(tiny_test_clips[2])
    masks = baselines.baseline_masks(brain, outputs, torch.Generator().manual_seed(0))
    assert list(masks) == list(labels.BASELINES)
    for mask in masks.values():
        assert mask.shape == outputs["mask"].shape and mask.min() >= 0 and mask.max() <= 1
    assert os.path.basename(eval_recipe.default_eval_folder("x", "none")) == "eval"


def test_the_l2i_oracle_is_a_reference_row_left_out_of_the_agreement(evaluations):
    folder, result = evaluations["L2I"]
    oracle, interpreter = result["methods"]["oracle"], result["methods"]["L2I"]
    for key in ("gt_precision", "gt_recall", "si_sdri", "deletion_auc", "insertion_auc"):
        assert np.isfinite(oracle[key]), key
    # the oracle maximises the F1 of precision and recall clip by clip; means of 3 clips
    # need not keep that order, so the check is on the F1 of the means with a margin
    def f1(stats):
        return 2 * stats["gt_precision"] * stats["gt_recall"] / (stats["gt_precision"] + stats["gt_recall"])

    assert f1(oracle) >= f1(interpreter) - 0.05
    assert "| best components (oracle) |" in (folder / "metrics.md").read_text()
    evaluation = html_report.load_evaluation(str(folder))
    entries = {entry.label: entry for entry in tables._summary_entries([evaluation])}
    assert entries["L2I: best components (oracle)"].kind == "reference"
    ((_, agreement),) = tables.agreement_groups([evaluation])
    assert agreement["methods"] == len([m for m in result["methods"] if m != "oracle"])


def test_captum_baselines_on_a_tiny_classifier_have_the_input_shape_and_lie_in_0_1(tiny_piq):
    brain = tiny_piq["brain"]
    outputs = brain.explain(0.1 * torch.randn(3, 16000, generator=torch.Generator().manual_seed(0)))
    masks = baselines.baseline_masks(brain, outputs, torch.Generator().manual_seed(0))
    assert list(masks) == list(labels.BASELINES)
    for name, mask in masks.items():
        assert mask.shape == outputs["X"].shape, name
        assert mask.min() >= 0 and mask.max() <= 1, name
        assert torch.isfinite(mask).all(), name
        if name in baselines.ATTRIBUTION_MASKS:  # an attribution divided by its per-clip peak
            assert mask.max() == pytest.approx(1.0), name
    # the captum baselines differ from each other: each is its own attribution
    names = labels.CLASSIFIER_BASELINES
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert not torch.allclose(masks[first], masks[second]), (first, second)
    # SmoothGrad's noise comes from its seed, the global random state is left alone
    state = torch.random.get_rng_state()
    again = baselines.attribution_mask(brain, "smoothgrad", outputs["X"], outputs["classes"], seed=11)
    assert torch.equal(again, baselines.attribution_mask(brain, "smoothgrad", outputs["X"], outputs["classes"], seed=11))
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("name", ["L2I", "PIQ"])
def test_per_clip_csv_and_by_class_agree_with_the_means(evaluations, name):
    """per_clip.csv holds each clip's value of every method and reference: their means over
    the clips are metrics.json's (computed apart, by StageStats), and their means over each
    true class are metrics.json's "by_class" and metrics.md's per-class rows."""
    import csv

    folder, _ = evaluations[name]
    saved = json.loads((folder / "metrics.json").read_text())
    with open(folder / "per_clip.csv", newline="") as fin:
        rows = list(csv.DictReader(fin))
    rows_of = {**saved["methods"], **saved["references"]}
    assert sorted(row["method"] for row in rows[: len(rows_of)]) == sorted(rows_of)  # a row per method per clip
    assert len(rows) == saved["n_clips"] * len(rows_of)
    assert len({row["id"] for row in rows}) == saved["n_clips"]
    for method, stats in rows_of.items():
        for metric in ("fid_in", "si_sdri", "gt_precision", "deletion_auc"):
            if metric not in stats or stats[metric] is None:
                continue
            values = [float(row[metric]) for row in rows if row["method"] == method and row[metric] != ""]
            assert sum(values) / len(values) == pytest.approx(stats[metric], abs=1e-5), (method, metric)
    classes = {row["true_class"] for row in rows}
    assert set(saved["by_class"]) == classes
    for label, entry in saved["by_class"].items():
        of_class = [row for row in rows if row["true_class"] == label and row["method"] == name]
        assert entry["n"] == len(of_class)
        expected = sum(float(row["si_sdri"]) for row in of_class) / len(of_class)
        assert entry[name]["si_sdri"] == pytest.approx(expected, abs=1e-5)
    table = (folder / "metrics.md").read_text()
    assert "## By class" in table
    page = (folder / "report" / "index.html").read_text(encoding="utf-8")
    for label in classes:
        assert f"| {label} | {saved['by_class'][label]['n']} |" in table
        assert f"<tr><td>{label}</td><td>{saved['by_class'][label]['n']}</td>" in page


def test_a_collection_set_gets_a_table_per_background_recording(tiny_piq, tiny_synthetic, tmp_path):
    """On a set with `background_recording` in meta/ground_truth.csv (collection_prepare's
    column), metrics.json's "by_background", metrics.md and the report give the means over
    each recording's clips of the interpreter, the floor mask and the ground truth (here
    recomputed from per_clip.csv and the csv)."""
    import csv
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_synthetic, data)
    path = data / "meta" / "ground_truth.csv"
    with open(path, newline="") as fin:
        rows = list(csv.DictReader(fin))
    recording = {row["id"]: f"bg/{'rain' if i % 2 else 'music'}.wav" for i, row in enumerate(rows)}
    with open(path, "w", newline="") as fout:
        writer = csv.DictWriter(fout, [*rows[0], "background_recording"])
        writer.writeheader()
        writer.writerows({**row, "background_recording": recording[row["id"]]} for row in rows)
    argv = with_flag(eval_argv(tiny_piq, tmp_path / "eval", "--baselines", "above_floor"), "--data_folder", str(data))
    result = eval_recipe.main(argv)
    folder = tmp_path / "eval"
    with open(folder / "per_clip.csv", newline="") as fin:
        clips = list(csv.DictReader(fin))
    tested = {recording[row["id"]] for row in clips}
    assert set(result["by_background"]) == tested == {"bg/rain.wav", "bg/music.wav"}  # 3 test clips
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["by_background"] == result["by_background"]
    table = (folder / "metrics.md").read_text()
    page = (folder / "report" / "index.html").read_text(encoding="utf-8")
    assert "## By background recording" in table and "above the clip's floor (no classifier) SI-SDRi dB" in table
    for label, entry in result["by_background"].items():
        ids = {row["id"] for row in clips if recording[row["id"]] == label}
        assert entry["n"] == len(ids)
        for method in ("PIQ", "above_floor", "ground_truth"):
            values = [float(row["si_sdri"]) for row in clips if row["id"] in ids and row["method"] == method]
            assert entry[method]["si_sdri"] == pytest.approx(sum(values) / len(values), abs=1e-5)
        assert f"| {label} | {entry['n']} | " in table
        assert f"<tr><td>{label}</td><td>{entry['n']}</td>" in page


def test_the_psi_architecture_comes_from_the_trained_run(tiny_pretrained, tmp_path):
    """Found by a new-user read: the demo trains PIQ with `--adapter_reduce_dim False` (piq.yaml:
    True), and `eval.py hparams/piq.yaml` without that flag built the other psi and refused the
    weights ("Missing key(s) ... down.weight"). Like the sizes, psi's adapter settings are taken
    from the run; a contradicting value is still refused."""
    from conftest import piq_argv

    from recipes import train_piq

    argv = piq_argv(tiny_pretrained)
    run = tmp_path / "piq"
    train_piq.main(argv + ["--adapter_reduce_dim", "False", "--output_folder", str(run)])
    trained = {"folder": run, "argv": argv}  # the command line without the flag
    result = eval_recipe.main(eval_argv(trained, tmp_path / "eval", "--baselines", "none", "--n_bootstrap", "10"))
    assert "PIQ" in result["methods"] and result["n_clips"] == 3
    assert "adapter_reduce_dim: false" in (tmp_path / "eval" / "hyperparams.yaml").read_text().lower()
    with pytest.raises(ValueError, match="adapter_reduce_dim"):
        eval_recipe.main(eval_argv(trained, tmp_path / "eval2", "--adapter_reduce_dim", "True"))


def test_the_classifier_and_dictionary_come_from_the_trained_run(tiny_l2i, tmp_path, caplog):
    """Found by a new-user read: `eval.py hparams/l2i_conv2d.yaml --pretrained_interpreter RUN`
    without --classifier_folder and --nmf_decoder_path read the yaml's defaults
    (results/classifier_conv2d/1234, results/nmf/1234: another run's, or nothing). They are
    taken from the run the interpreter was trained in; the figures are those of the command
    that gives them."""
    argv = list(tiny_l2i["argv"])
    for flag in ("--classifier_folder", "--nmf_decoder_path"):
        at = argv.index(flag)
        del argv[at : at + 2]
    with caplog.at_level("INFO", logger="recipes.eval"):
        result = eval_recipe.main(eval_argv({**tiny_l2i, "argv": argv}, tmp_path / "bare", "--baselines", "none"))
    assert any("Taken from the interpreter's run" in r.getMessage() for r in caplog.records)
    given = eval_recipe.main(eval_argv(tiny_l2i, tmp_path / "given", "--baselines", "none"))
    assert result["methods"] == given["methods"]
    saved = (tmp_path / "bare" / "hyperparams.yaml").read_text()
    trained_folder = str(tiny_l2i["argv"][tiny_l2i["argv"].index("--classifier_folder") + 1])
    # the yaml writer folds a long value onto the next line (a long tmp path, as under pytest-xdist)
    assert re.search(rf"^classifier_folder:\s+{re.escape(trained_folder)}\s*$", saved, re.M)


def test_a_single_sample_of_another_file_with_the_same_stem_goes_beside_the_first(tiny_piq, tiny_synthetic, tmp_path):
    """Found by a new-user probe: `--single_sample a/clip.wav`, then `--single_sample b/clip.flac`,
    both wrote <eval>/clip/, the second replacing the first's explanation without a word. The
    second goes to clip-2/; the first file explained again goes back to clip/."""
    source = tiny_synthetic / "audio" / "4-100008-A-1.wav"
    first, second = tmp_path / "a" / "clip.wav", tmp_path / "b" / "clip.flac"
    first.parent.mkdir()
    second.parent.mkdir()
    audio, rate = sf.read(str(source))
    sf.write(str(first), audio, rate)
    sf.write(str(second), audio[::-1].copy(), rate)
    out = tmp_path / "eval"
    eval_recipe.main(eval_argv(tiny_piq, out, "--single_sample", str(first)))
    eval_recipe.main(eval_argv(tiny_piq, out, "--single_sample", str(second)))
    assert json.loads((out / "clip" / "prediction.json").read_text())["file"] == str(first)
    assert json.loads((out / "clip-2" / "prediction.json").read_text())["file"] == str(second)
    eval_recipe.main(eval_argv(tiny_piq, out, "--single_sample", str(first)))
    assert sorted(p.name for p in out.iterdir() if p.is_dir() and p.name.startswith("clip")) == ["clip", "clip-2"]
