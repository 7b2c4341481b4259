"""What a reader of the report sees: units on the spectrograms' axes, labelled colour bars,
the same method names in metrics.md as in the report, each metric's direction, which clips
and seed an evaluation scored, the bootstrap's settings as metrics.json gives them, and the
reference rows that differ between evaluations of the same clips.

Each expected value is worked out here by hand (an STFT bin's frequency, a frame's time), not
read back from the code under test.
"""

import json
import os
import subprocess

import pytest
import torch

from recipes.core import process
from recipes.reporting import figures, html_report, tables


@pytest.fixture
def captured(monkeypatch):
    """The figures the reporting functions save, kept open instead of written."""
    kept = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path, **kwargs: kept.append(fig))
    return kept


def _colour_bar_labels(fig):
    """The labels of the figure's colour bars (one per mappable that has one)."""
    return [
        image.colorbar.ax.get_ylabel()
        for ax in fig.axes
        for image in ax.images
        if getattr(image, "colorbar", None) is not None
    ]


# ------------------------------------------------------------------ the clip PNG
def test_a_clips_png_has_time_in_seconds_and_frequency_in_khz(tmp_path, captured):
    """A 2 s clip at 8 kHz, STFT n_fft 256 (129 bins), hop 80 samples, centred: 1 + 16000 / 80
    = 201 frames. The time axis runs 0 to 2 s, the frequency axis 0 to 4 kHz (Nyquist).
    A tone in bin 64 is at 64 * 8000 / 256 = 2000 Hz: the pixel row of bin 64 is centred at
    2.0 kHz; frame 100 is at 100 * 80 / 8000 = 1.0 s."""
    sample_rate, n_samples, n_frames, n_bins = 8000, 16000, 201, 129
    X = torch.zeros(n_frames, n_bins)
    X[:, 64] = 2.0
    mask = torch.ones(n_frames, n_bins)
    figures.save_interpretation(
        str(tmp_path), "clip", X, mask, X, torch.zeros(n_samples), torch.zeros(n_samples), sample_rate, "t"
    )
    (fig,) = captured
    panel = fig.axes[0]
    assert panel.get_xlabel() == "time (s)"
    assert panel.get_ylabel() == "frequency (kHz)"
    assert panel.get_xlim() == pytest.approx((0.0, 2.0))
    assert panel.get_ylim() == pytest.approx((0.0, 4.0))
    left, right, bottom, top = panel.images[0].get_extent()
    row_height = (top - bottom) / n_bins
    assert bottom + (64 + 0.5) * row_height == pytest.approx(2.0)  # bin 64: 2 kHz
    column_width = (right - left) / n_frames
    assert left + (100 + 0.5) * column_width == pytest.approx(1.0)  # frame 100: 1 s


def test_a_clips_png_labels_both_colour_scales():
    """The mask panel's colour bar reads 'mask value' (0 to 1); the spectrogram panels, drawn
    on one scale (0 to the input's max), have one bar labelled with what they show."""
    X = torch.rand(6, 4) * 3.0
    mask = torch.rand(6, 4)
    fig = figures.plot_interpretation(X, mask, mask * X, "clip", X_target=X * 0.5)
    labels = _colour_bar_labels(fig)
    assert sorted(labels) == ["log1p |STFT|", "mask value"]
    spectrograms = [fig.axes[k].images[0] for k in (0, 2, 3)]
    assert {image.get_clim() for image in spectrograms} == {(0.0, float(X.max()))}


def test_the_confusion_matrix_colour_bar_says_it_counts_clips(tmp_path, captured):
    """The colour of a cell is a number of clips: the bar says so."""
    counts = torch.tensor([[3, 1], [0, 4]])
    figures.plot_confusion_matrix(counts, ["cat", "dog"], str(tmp_path / "cm.png"))
    (fig,) = captured
    assert _colour_bar_labels(fig) == ["clips"]


def test_the_nmf_atoms_colour_bar_is_labelled(tmp_path, captured):
    """Each atom is divided by its maximum: the bar says what its 0 to 1 means."""
    figures.plot_atoms(torch.rand(9, 3), str(tmp_path / "atoms.png"), 16000)
    (fig,) = captured
    (label,) = _colour_bar_labels(fig)
    assert "maximum" in label


def test_the_nmf_reconstructions_are_in_seconds_and_khz_with_a_bar(tmp_path, captured):
    """Was: frames and bins, no colour bar (train_nmf passed no sample rate). A 1 s clip at
    16 kHz with 51 frames and 9 bins: x from 0 to 1 s, y from 0 to 8 kHz (Nyquist), bin 4 at
    4 * 16000 / 16 = 4 kHz, frame 25 at 25 / 50 = 0.5 s; one bar per clip (X and W H share it)."""
    X = torch.rand(2, 51, 9)
    figures.plot_reconstructions(
        ["a", "b"], X, torch.rand(9, 3), str(tmp_path / "r.png"), 5, torch.Generator().manual_seed(0), 16000, 1.0
    )
    (fig,) = captured
    panels = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert len(panels) == 4
    for panel in panels:
        assert (panel.get_xlabel(), panel.get_ylabel()) == ("time (s)", "frequency (kHz)")
        assert panel.get_xlim() == pytest.approx((0.0, 1.0))
        assert panel.get_ylim() == pytest.approx((0.0, 8.0))
        left, right, bottom, top = panel.images[0].get_extent()
        assert bottom + 4.5 * (top - bottom) / 9 == pytest.approx(4.0)
        assert left + 25.5 * (right - left) / 51 == pytest.approx(0.5)
    assert _colour_bar_labels(fig) == ["log1p |STFT|", "log1p |STFT|"]


# ------------------------------------------------------------------ metrics.md and the report
def test_metrics_md_names_the_methods_as_the_report_does():
    """metrics.md's rows are named as in the HTML report and the demo's summary ('random
    mask', 'Integrated Gradients (captum)', ...), not by metrics.json's keys ('random',
    'integrated_gradients'); a row's interval stays with it."""
    result = {
        "interpreter": "L2I",
        "n_clips": 4,
        "overlap_type": "none",
        "classifier_accuracy": 1.0,
        "methods": {
            "L2I": {"fid_in": 0.9},
            "random": {"fid_in": 0.5},
            "integrated_gradients": {"fid_in": 0.6},
            "above_floor": {"fid_in": 1.0},
            "oracle": {"fid_in": 0.8},
        },
        "references": {"all_ones": {"fid_in": 1.0}},
        "intervals": {"random": {"fid_in": {"low": 0.4, "high": 0.6}}},
    }
    rows = [line.split(" | ")[0].removeprefix("| ") for line in tables.metrics_markdown(result).splitlines()
            if line.startswith("| ") and "---" not in line]
    assert rows[:7] == [
        "method",
        "L2I",
        "random mask",
        "Integrated Gradients (captum)",
        "above the clip's floor (no classifier)",
        "best components (oracle)",
        "all ones",
    ]
    assert "| random mask | 0.500 ± 0.100 |" in tables.metrics_markdown(result).splitlines()


@pytest.mark.parametrize(
    "key, direction",
    [
        ("fid_in", "higher is better"),
        ("faithfulness", "higher is better"),
        ("AI", "higher is better"),
        ("AD", "lower is better"),
        ("AG", "higher is better"),
        ("si_sdr", "higher is better"),
        ("si_sdri", "higher is better"),
        ("gt_precision", "higher is better"),
        ("gt_recall", "higher is better"),
        ("deletion_auc", "lower is better"),
        ("insertion_auc", "higher is better"),
        ("theta_top1", "higher is better"),
        ("theta_top3", "higher is better"),
        ("theta_top5", "higher is better"),
        ("ff_components", "higher is better"),
        ("nmf_rel_error", "lower is better"),
    ],
)
def test_each_scored_metric_says_which_way_is_better(key, direction):
    """The report's metric definitions say, for every metric that ranks methods, whether a
    higher or a lower value is the better one."""
    assert direction in tables.METRICS[key][1]


@pytest.mark.parametrize("key", ["si_sdr", "si_sdri"])
def test_the_db_metrics_say_their_unit(key):
    assert "dB" in tables.METRICS[key][1]


def _write_evaluation(folder, interpreter, references, seed=7, bootstrap=None, folds="[5]"):
    os.makedirs(folder, exist_ok=True)
    evaluation = {
        "interpreter": interpreter,
        "overlap_type": "none",
        "wham_noise": False,
        "data_folder": "/data/esc50",
        "n_clips": 4,
        "seed": seed,
        "classifier": {"embedding_model": "/cls/emb.ckpt"},
        "classifier_accuracy": 0.5,
        "methods": {interpreter: {"fid_in": 0.9}},
        "references": references,
        "intervals": {},
        "clips": [],
    }
    if bootstrap is not None:
        evaluation["bootstrap"] = bootstrap
    with open(os.path.join(folder, "metrics.json"), "w", encoding="utf-8") as fout:
        json.dump(evaluation, fout)
    if folds is not None:
        with open(os.path.join(folder, "hyperparams.yaml"), "w", encoding="utf-8") as fout:
            fout.write(f"seed: {seed}\ntrain_fold_nums: [1, 2, 3]\ntest_fold_nums: {folds}\n")
    return folder


def _page(tmp_path, folders):
    path = html_report.write_report(folders, str(tmp_path / "report"))
    with open(path, encoding="utf-8") as fin:
        return fin.read()


def test_the_report_says_which_clips_and_seed_each_evaluation_scored(tmp_path):
    """An evaluation of fold 5 of /data/esc50 with seed 7: its section says so (the test set,
    the fold from its hyperparams.yaml, the seed, the classifier's files)."""
    folder = _write_evaluation(str(tmp_path / "piq"), "PIQ", {}, seed=7)
    page = _page(tmp_path, [folder])
    assert "test set (fold 5) of /data/esc50" in page
    assert "seed 7" in page
    assert "/cls/emb.ckpt" in page
    # metrics.json's own "test_folds" (written since): read first, no yaml needed
    other = _write_evaluation(str(tmp_path / "lmac"), "LMAC", {}, folds=None)
    evaluation = json.loads(open(os.path.join(other, "metrics.json")).read())
    with open(os.path.join(other, "metrics.json"), "w", encoding="utf-8") as fout:
        json.dump({**evaluation, "test_folds": [4, 5]}, fout)
    assert "test set (folds 4, 5) of /data/esc50" in _page(tmp_path / "two", [other])


def _git(folder, *args):
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True).stdout


def test_metrics_code_is_the_commit_checked_out_and_whether_tracked_files_changed(tmp_path):
    """A repository of one commit: code_version gives the commit that .git/HEAD's branch file
    holds (read here from the file, not from git), without local changes; a tracked file edited
    makes local_changes True; an untracked file does not; a folder inside another repository,
    or outside any, has no version. The report shows the commit's first 10 characters."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = (repo / ".git" / "refs" / "heads" / "main").read_text().strip()
    assert process.code_version(str(repo)) == {"commit": head, "local_changes": False}
    (repo / "new.txt").write_text("untracked")
    assert process.code_version(str(repo))["local_changes"] is False
    (repo / "a.py").write_text("x = 2\n")
    assert process.code_version(str(repo)) == {"commit": head, "local_changes": True}
    (repo / "sub").mkdir()
    assert process.code_version(str(repo / "sub")) is None  # another project's repository
    assert process.code_version(str(tmp_path)) is None
    folder = _write_evaluation(str(tmp_path / "piq"), "PIQ", {})
    evaluation = json.loads(open(os.path.join(folder, "metrics.json")).read())
    evaluation["code"] = {"commit": head, "local_changes": True}
    with open(os.path.join(folder, "metrics.json"), "w", encoding="utf-8") as fout:
        json.dump(evaluation, fout)
    assert f"code {head[:10]} with local changes" in _page(tmp_path, [folder])


def test_the_report_gives_the_bootstrap_settings_of_metrics_json(tmp_path):
    """Intervals from 200 resamples at 90 %: the page says 90 % and 200, not a fixed 95 % of
    1,000 resamples."""
    folder = _write_evaluation(str(tmp_path / "piq"), "PIQ", {}, bootstrap={"level": 0.9, "resamples": 200})
    page = _page(tmp_path, [folder])
    assert "90 % bootstrap confidence interval (200 resamples" in page
    assert "1,000" not in page and "95 %" not in page


def test_the_report_names_reference_values_that_differ_between_evaluations(tmp_path):
    """L2I and PIQ on the same classifier and clips, their ground-truth deletion AUCs 0.2557
    and 0.2577 (0.256 and 0.258 in the table): the summary shows one ground-truth row (L2I's)
    and says PIQ's own differs; equal references need no such note."""
    l2i = _write_evaluation(str(tmp_path / "l2i"), "L2I", {"ground_truth": {"deletion_auc": 0.2557}})
    piq = _write_evaluation(str(tmp_path / "piq"), "PIQ", {"ground_truth": {"deletion_auc": 0.2577}})
    page = _page(tmp_path, [l2i, piq])
    assert "ground truth Deletion AUC: 0.256 (L2I), 0.258 (PIQ)" in page
    same = _write_evaluation(str(tmp_path / "same"), "LMAC", {"ground_truth": {"deletion_auc": 0.2557}})
    assert "Deletion AUC: 0.256 (L2I)" not in _page(tmp_path / "other", [l2i, same])
