"""Mutation audit of recipes/reporting/figures.py and of html_report.py's links and layout:
what a person looks at and listens to.

Each test names the mutants of the audit (F1, F2, ...) it kills. Expected values are worked
out by hand: a wav is read back with soundfile and compared with the samples divided by their
peak; a figure is inspected before it is saved (its images' arrays, extents, colour limits,
titles, tick labels and lines), a pixel's value read the way matplotlib's cursor reads it (a
mouse event at a time in s and a frequency in kHz); the page is read with html.parser.

Two mutants of the audit are equivalent: F7 (WavStream scales a peak of exactly 1.0 too:
dividing by 1 changes nothing) and F54 (`_link` without os.path.abspath: os.path.relpath
makes both paths absolute itself).
"""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from matplotlib import cbook
from matplotlib.backend_bases import MouseEvent
from test_html_report_audit import _Page, _parse, _piq_evaluation, _target, _write_json
from test_reporting_user_view import captured  # noqa: F401 (a fixture)

from recipes.reporting import figures, html_report

ONE_LSB = 1 / 32768  # a 16-bit sample's step


def _read(path):
    audio, rate = sf.read(path, dtype="float64")
    return audio, rate


def _value_at(fig, ax, x, y):
    """The value of the image under a mouse at data point (x, y) of `ax`: what the figure shows
    there (at 2000 dpi: a mouse event's position is a whole pixel)."""
    fig.set_dpi(2000)
    px, py = ax.transData.transform((x, y))
    return ax.images[0].get_cursor_data(MouseEvent("motion_notify_event", fig.canvas, px, py))


# --------------------------------------------------------------------------------- wavs


def test_write_wav_scales_a_loud_waveform_by_its_largest_magnitude(tmp_path):
    """F1 (peak limiting that clips instead of scales), F2 (the peak of the signed values, not
    of their magnitudes: a waveform whose loudest sample is negative was written clipped), F4
    (NaN not zeroed: written as a full-scale click, -1). Samples (0.5, -2, 1, -0.25, NaN) have
    peak 2: written as (0.25, -1, 0.5, -0.125, 0); a waveform within [-1, 1] is left as it is."""
    path = str(tmp_path / "a.wav")
    figures.write_wav(path, np.array([0.5, -2.0, 1.0, -0.25, np.nan]), 8000)
    audio, rate = _read(path)
    assert rate == 8000
    np.testing.assert_allclose(audio, [0.25, -1.0, 0.5, -0.125, 0.0], atol=ONE_LSB)
    figures.write_wav(path, torch.tensor([0.5, -0.75, 0.25]), 8000)
    np.testing.assert_allclose(_read(path)[0], [0.5, -0.75, 0.25], atol=ONE_LSB)


def test_wav_stream_scales_by_the_peak_of_every_piece_across_conversion_pieces(tmp_path, monkeypatch):
    """F5 (the peak of the last piece appended only), F6 (clipped instead of scaled), F8 (only
    the first conversion piece written), F11 (each piece's first sample dropped). 7 samples
    appended in pieces of 3, 1 and 3, the loudest (-4) in the first, converted 3 at a time
    (2, 2 and 1 pieces of the conversion, none on an append's boundary): the file is the 7
    samples divided by 4."""
    monkeypatch.setattr(figures.WavStream, "CONVERT_SAMPLES", 3)
    samples = [1.0, -4.0, 2.0, 0.5, -1.0, 3.0, 0.25]
    path = tmp_path / "s.wav"
    with figures.WavStream(path, 8000) as wav:
        wav.append(torch.tensor(samples[:3]))
        wav.append(np.array(samples[3:4]))
        wav.append(torch.tensor(samples[4:]))
    audio, rate = _read(str(path))
    assert rate == 8000
    np.testing.assert_allclose(audio, np.array(samples) / 4, atol=ONE_LSB)
    assert os.listdir(tmp_path) == ["s.wav"]


def test_wav_stream_interrupted_leaves_nothing(tmp_path):
    """F9 (abort keeps the raw float file), F10 (an error inside the block still writes the
    wav, of half the pieces): an exception on the way leaves the folder empty."""
    with pytest.raises(RuntimeError, match="boom"):
        with figures.WavStream(tmp_path / "s.wav", 8000) as wav:
            wav.append(torch.ones(4))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------- a clip's PNG


def test_a_clips_png_draws_each_bin_at_its_time_and_frequency(tmp_path, captured):  # noqa: F811
    """F14 (origin "upper": frequency down), F15 (the extent of a (bins, frames) image: right
    in the middle, off by up to half a bin at the edges), F22 (the interpretation panel draws
    the input), F24 (save_interpretation drops the target event's panel). A 2 s clip at 8 kHz,
    n_fft 256 (129 bins of 31.25 Hz), hop 80 samples (frames 10 ms apart, 201 of them): frame
    k's column spans k * 10 ms +- 5 ms, bin f's row f * 31.25 Hz +- 15.625 Hz, so the image
    spans -0.005 to 2.005 s and -0.015625 to 4.015625 kHz. X is 2 in bin 32 (1 kHz) from frame
    50 (0.5 s) on and 3 in frame 0 and bin 0; the mask is 0.5, the target event X / 4."""
    n_frames, n_bins = 201, 129
    X = torch.zeros(n_frames, n_bins)
    X[50:, 32] = 2.0
    X[0, 0] = 3.0
    mask = torch.full_like(X, 0.5)
    waveform = torch.zeros(16000)
    figures.save_interpretation(
        str(tmp_path), "clip", X, mask, mask * X, waveform, waveform, 8000, "t", X_target=X / 4
    )
    (fig,) = captured
    panels = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in panels] == [
        "input log1p |STFT|", "mask", "interpretation log1p |STFT| (mask applied)",
        "target event alone log1p |STFT| (ground truth)",
    ]  # fmt: skip
    for ax in panels:
        assert ax.images[0].get_extent() == pytest.approx([-0.005, 2.005, -0.015625, 4.015625])
    input_, _, interpretation, target = panels
    for ax, tone in ((input_, 2.0), (interpretation, 1.0), (target, 0.5)):
        assert _value_at(fig, ax, 1.0, 1.0) == tone  # 1 s, 1 kHz
        assert _value_at(fig, ax, 0.5, 1.01) == tone  # frame 50, within bin 32
        assert _value_at(fig, ax, 0.49, 1.0) == 0.0  # frame 49: before the tone
        assert _value_at(fig, ax, 1.0, 1.02) == 0.0  # bin 33 (1.03125 kHz +- 15.625 Hz)
        assert _value_at(fig, ax, 1.0, 3.0) == 0.0  # bin 96, where origin "upper" puts bin 32
    assert _value_at(fig, input_, 0.004, 0.015) == 3.0  # frame 0, bin 0: the lower left corner
    assert _value_at(fig, input_, 0.006, 0.015) == 0.0  # frame 1
    assert _value_at(fig, input_, 0.004, 0.017) == 0.0  # bin 1


def test_a_dollar_in_a_clip_title_is_drawn_as_a_dollar():
    """F20 (the "$" of a file name not escaped: "b$q$.wav" drawn as mathtext, "bq.wav" with an
    italic q)."""
    X = torch.rand(5, 4)
    title = "b$q$.wav: predicted dog (p=0.90)"
    fig = figures.plot_interpretation(X, torch.rand(5, 4), X, title)
    shown = fig.get_suptitle()
    assert not cbook.is_math_text(shown)
    assert shown.replace(r"\$", "$") == title


def test_no_component_wav_is_chosen_for_a_limit_of_0():
    """F26 (`limit` tested for truth, not None: `--max_components 0`, "0: none", wrote every
    component's wav)."""
    kept = [{"component": 4, "relevance": 0.5}, {"component": 1, "relevance": 0.9}]
    assert figures.most_relevant(kept, 0) == []
    assert [c["component"] for c in figures.most_relevant(kept)] == [1, 4]


# --------------------------------------------------------------------------------- NMF plots


def test_nmf_atoms_are_drawn_by_rising_centroid_each_divided_by_its_maximum(tmp_path, captured):  # noqa: F811
    """F28 (sorted by falling centroid), F29 (each frequency bin divided by its maximum, not
    each atom), F30 (x extent of F bins, not K atoms), F31 (origin "upper": frequency down),
    F32 (bins and atoms swapped in the title). W, 4 bins x 3 atoms: atom 0 = (0, 0, 1, 2)
    (centroid (2 + 6) / 3 = 2.67), atom 1 = (4, 0, 0, 0) (centroid 0), atom 2 = (0, 2, 0, 0)
    (centroid 1): drawn atom 1, 2, 0, each over its maximum; at 8 kHz bin f spans f to f + 1 kHz."""
    W = torch.tensor([[0.0, 4.0, 0.0], [0.0, 0.0, 2.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    figures.plot_atoms(W, str(tmp_path / "atoms.png"), 8000)
    (fig,) = captured
    ax = fig.axes[0]
    expected = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5], [0.0, 0.0, 1.0]]  # (bins, atoms)
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), expected)
    assert ax.images[0].get_extent() == pytest.approx([0.0, 3.0, 0.0, 4.0])
    assert _value_at(fig, ax, 2.5, 3.5) == 1.0  # the third atom drawn, the top bin
    assert _value_at(fig, ax, 2.5, 2.5) == 0.5
    assert _value_at(fig, ax, 0.5, 0.5) == 1.0  # the first atom drawn, the lowest bin
    assert ax.get_title() == "NMF dictionary W (4 bins x 3 atoms), max-normalised"


def _reconstruction_panels(fig):
    panels = [ax for ax in fig.axes if ax.images and ax.get_title()]
    return [panels[k : k + 2] for k in range(0, len(panels), 2)]


def test_nmf_reconstructions_draw_each_clip_and_its_reconstruction_frequency_up(tmp_path, captured):  # noqa: F811
    """F35 (the (frames, F) image reshaped, not transposed), F36 (W H, (F, frames), reshaped to
    (frames, F) without its transpose), F38 (every row titled with the first clip's id). With
    W the identity, one multiplicative update gives H = X exactly (H * X / H): each row's
    panels both draw the clip's X transposed (frequency up)."""
    X = torch.arange(1.0, 25.0).reshape(2, 4, 3)  # 2 clips, 4 frames, 3 bins
    figures.plot_reconstructions(["dog", "cat"], X, torch.eye(3), str(tmp_path / "r.png"), 3,
                                 torch.Generator().manual_seed(0))  # fmt: skip
    (fig,) = captured
    rows = _reconstruction_panels(fig)
    assert [[ax.get_title() for ax in row] for row in rows] == [
        ["dog: X", "W H (rel. error 0.000)"], ["cat: X", "W H (rel. error 0.000)"],
    ]  # fmt: skip
    for clip, row in enumerate(rows):
        for ax in row:
            np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), X[clip].T.numpy(), rtol=1e-5)


def test_nmf_reconstructions_share_the_clips_colour_scale_and_say_the_drawn_error(tmp_path, captured):  # noqa: F811
    """F33 (each row's colour scale the reconstruction's maximum, not the clip's), F34 (one
    scale for all the clips: the loudest's), F37 (the squared error in the title). Clip 0
    peaks at 1, clip 1 at 6; W one atom (1, 1, 0) cannot draw the third bin: each row's
    panels are on (0, the clip's maximum), and the title's relative error is
    ||X - W H|| / ||X|| of the two panels' images."""
    X = torch.tensor([[[1.0, 0.5, 0.25], [0.5, 0.5, 1.0]], [[6.0, 1.0, 2.0], [3.0, 2.0, 0.0]]])
    figures.plot_reconstructions(["a", "b"], X, torch.tensor([[1.0], [1.0], [0.0]]), str(tmp_path / "r.png"), 50,
                                 torch.Generator().manual_seed(0))  # fmt: skip
    (fig,) = captured
    for peak, (clip, rebuilt) in zip((1.0, 6.0), _reconstruction_panels(fig)):
        assert clip.images[0].get_clim() == rebuilt.images[0].get_clim() == (0.0, peak)
        drawn, wh = (np.asarray(ax.images[0].get_array(), dtype=float) for ax in (clip, rebuilt))
        error = np.sqrt(((drawn - wh) ** 2).sum() / (drawn**2).sum())
        assert rebuilt.get_title() == f"W H (rel. error {error:.3f})"
        assert 0.1 < error < 1  # the third bin is left out


# --------------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_rows_are_true_classes_columns_predictions(tmp_path, captured):  # noqa: F811
    """F39 (the matrix transposed), F40 (the axes' names swapped), F41 (accuracy over the
    classes, not the clips), F42 (the true classes' names reversed). 16 clips, 3 + 4 + 5 = 12
    right: 75.0 %; row i (true class i) is drawn at y = i from the top, column j at x = j."""
    counts = torch.tensor([[3, 1, 0], [0, 4, 2], [1, 0, 5]])
    figures.plot_confusion_matrix(counts, ["ant", "bee", "cow"], str(tmp_path / "cm.png"))
    (fig,) = captured
    ax = fig.axes[0]
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), counts.numpy())
    assert _value_at(fig, ax, 2, 1) == 2  # true bee, predicted cow
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # row 0 at the top
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ant", "bee", "cow"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["ant", "bee", "cow"]
    assert list(ax.get_yticks()) == [0, 1, 2]
    assert ax.get_title() == "test confusion matrix (accuracy 75.0 %)"


# --------------------------------------------------------------------------------- curves and sanity check

CURVES = {
    "fractions": [0.0, 0.5, 1.0],
    "deletion_value": "zero",
    "methods": {
        "L2I": {"deletion": [1.0, 0.2, 0.0], "insertion": [0.0, 0.6, 1.0]},
        "random": {"deletion": [1.0, 0.8, 0.4], "insertion": [0.2, 0.4, 1.0]},
    },
}


def test_curves_each_on_its_panel_in_percent_with_its_area(tmp_path, captured):  # noqa: F811
    """F43 (the AUC over percent, 100 times too large), F44 (deletion drawn on the insertion
    panel), F45 (metrics.json's key "random" in the legend, not "random mask"), F46 (the
    thick line on every method but the interpreter), F47 (x in fractions on a 0 to 100 %
    axis). Trapezoids of width 0.5: L2I deletion (1 + 0.2) / 4 + 0.2 / 4 = 0.35, insertion
    0.6 / 4 + 1.6 / 4 = 0.55; random 1.8 / 4 + 1.2 / 4 = 0.75 and 0.6 / 4 + 1.4 / 4 = 0.5."""
    figures.plot_curves(CURVES, str(tmp_path / "curves.png"), interpreter="L2I")
    (fig,) = captured
    deletion, insertion = fig.axes[:2]
    assert deletion.get_title() == "deletion: top bins set to zero (lower is better)"
    assert insertion.get_title() == "insertion: top bins revealed on zero (higher is better)"
    for ax, kind, areas in ((deletion, "deletion", (0.35, 0.75)), (insertion, "insertion", (0.55, 0.5))):
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == [f"L2I (AUC {areas[0]:.3f})", f"random mask (AUC {areas[1]:.3f})"]
        for line, method in zip(lines, ("L2I", "random")):
            np.testing.assert_allclose(line.get_xdata(), [0.0, 50.0, 100.0])
            np.testing.assert_allclose(line.get_ydata(), CURVES["methods"][method][kind])
        assert [line.get_linewidth() for line in lines] == [2.8, 1.4]
        assert lines[1].get_linestyle() == ":"


@pytest.fixture
def closed(monkeypatch):
    """The figures pyplot closes (plot_sanity saves its own PNG), kept for reading."""
    plt = figures._pyplot()
    close, kept = plt.close, []
    monkeypatch.setattr(plt, "close", kept.append)
    yield kept
    for fig in kept:
        close(fig)


def test_sanity_plot_names_steps_failures_and_keeps_every_value_in_view(tmp_path, closed):
    """F48 (the steps' "embedding_model." prefix kept on the x axis), F49 ("(FAILED)" on the
    methods that passed), F50 (the y axis fixed at -0.05: a Spearman rho of -0.3 out of view),
    F51 (the panels' titles swapped). The y axis runs from -0.3 - 0.05 to 1.05."""
    result = {
        "clips": 2,
        "steps": ["none", "classifier", "embedding_model.block2"],
        "methods": {"a": {"spearman": [1.0, 0.5, -0.3], "ssim": [1.0, 0.8, 0.6]},
                    "b": {"spearman": [1.0, 0.99, 0.98], "ssim": [1.0, 1.0, 0.97]}},
        "failed": ["b"],
        "max_similarity": 0.9,
    }  # fmt: skip
    figures.plot_sanity(result, tmp_path / "sanity.png")
    (fig,) = closed
    spearman, ssim = fig.axes[:2]
    assert spearman.get_title() == "Spearman rank correlation ρ with the trained-classifier mask"
    assert ssim.get_title() == "SSIM with the trained-classifier mask"
    for ax, key in ((spearman, "spearman"), (ssim, "ssim")):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["none", "classifier", "block2"]
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == ["a", "b (FAILED)", "fail threshold 0.9"]
        for line, method in zip(lines, ("a", "b")):
            np.testing.assert_allclose(line.get_ydata(), result["methods"][method][key])
        assert ax.get_ylim() == pytest.approx((-0.35, 1.05))
    assert os.path.isfile(tmp_path / "sanity.png")


def test_a_character_no_font_draws_is_written_as_its_code_point_up_to_u_ffff():
    """F52 (`< 0xFFFF`: U+FFFF, which no font draws, written with 8 hex digits)."""
    assert figures.drawable("\uffff") == "\\uffff"
    assert figures.drawable("\U00010000") == "\\U00010000"


# --------------------------------------------------------------------------------- the HTML report


def test_names_from_folders_and_metrics_json_are_text_not_markup(tmp_path):
    """F55 (a summary row's label not escaped), F56 (an evaluation's heading not escaped), F57
    (the label of a warning on top not escaped), F60 (the per-class table's header not
    escaped). Two evaluations of an interpreter named `P<i>Q&` (a hand-edited metrics.json),
    in folders `r&d <1>` and `r&d <2>`: labelled by their folders, every name reads as
    written."""
    root, name = tmp_path / "root", "P<i>Q&"
    folders = [root / "r&d <1>", root / "r&d <2>"]
    for folder in folders:
        evaluation = _piq_evaluation(str(folder))
        renamed = json.loads(json.dumps(evaluation).replace('"PIQ"', json.dumps(name)))  # a copy, PIQ renamed
        _write_json(renamed, str(folder / "metrics.json"))
    path = html_report.write_report([str(f) for f in folders], str(root / "report"))
    parsed = _parse(path)
    labels = ["P<i>Q& (r&d <1>)", "P<i>Q& (r&d <2>)"]
    assert parsed.texts("h2")[-2:] == labels
    summary = parsed.table("summary")["rows"]
    assert [row[0]["text"] for row in summary[1:3]] == [labels[0], f"{labels[0]}: random mask"]
    assert [text.split(":")[0] for text in parsed.texts("p", "warning")[:2]] == [f"Warning ({label})" for label in labels]
    by_class = [table for table in parsed.tables if table["attrs"].get("class") == "by-class"]
    assert [[cell["text"] for cell in table["rows"][0]] for table in by_class] == [
        ["true class", "clips", "P<i>Q& SI-SDRi dB"]
    ] * 2
    assert {tag for tag, _ in parsed.tags}.isdisjoint({"i", "d"})
    # the links still reach the files, through the folders' specials
    img = next(attrs for tag, attrs in parsed.tags if tag == "img" and attrs["alt"].endswith("1-200-A-3"))
    assert _target(os.path.dirname(path), img["src"]) == os.path.join(folders[0], "clips", "1-200-A-3.png")


def test_the_page_declares_its_encoding_in_its_first_1024_bytes(tmp_path):
    """F58 (no `<meta charset="utf-8">`: a browser guesses the encoding of a page whose names
    hold "é", and may show mojibake). The HTML standard asks for the declaration within the
    first 1024 bytes."""
    page = html_report.render_html([], str(tmp_path))
    parsed = _Page()
    parsed.feed(page.encode("utf-8")[:1024].decode("utf-8", errors="ignore"))
    assert [attrs for tag, attrs in parsed.tags if tag == "meta" and "charset" in attrs] == [{"charset": "utf-8"}]
