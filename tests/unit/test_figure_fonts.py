"""File and class names in scripts the figures' fonts lack (`recipes.reporting.figures.drawable`):
written as their code points, not drawn as empty boxes with a warning per PNG; where a fallback
font that has the characters is installed, drawn with it."""

import warnings

import matplotlib
import pytest
import torch

from recipes.reporting import figures


def _png_without_warnings(draw, path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "Glyph ... missing from font(s)" included
        draw(path)
    assert path.stat().st_size > 0


def test_characters_no_font_draws_are_written_as_code_points():
    # U+72D7 and U+53EB (a dog's bark) are in no font installed here (DejaVu only)
    assert figures.drawable("\u72d7\u53eb-3.wav: predicted \u732b") == "\\u72d7\\u53eb-3.wav: predicted \\u732b"
    assert figures.drawable("\U0001f415 dog") == "\\U0001f415 dog"


def test_a_clip_png_and_a_confusion_matrix_with_cjk_names_draw_without_missing_glyphs(tmp_path):
    X = torch.rand(20, 9)
    fig = figures.plot_interpretation(X, torch.rand(20, 9), X, title="\u72d7\u53eb.wav: predicted dog (p=0.90)")
    _png_without_warnings(lambda path: figures.save_figure(fig, str(path)), tmp_path / "clip.png")
    counts = torch.tensor([[3, 1], [0, 4]])
    _png_without_warnings(
        lambda path: figures.plot_confusion_matrix(counts, ["\u72d7", "\u732b"], str(path)), tmp_path / "cm.png"
    )


def test_an_installed_fallback_font_draws_what_the_default_lacks(tmp_path, monkeypatch):
    """U+1D49C (script capital A) is not in DejaVu Sans but is in DejaVu Math TeX Gyre."""
    family = matplotlib.rcParams["font.family"]
    monkeypatch.setattr(figures, "FALLBACK_FONTS", ("DejaVu Math TeX Gyre",))
    try:
        assert figures.drawable("\U0001d49c \u72d7") == "\U0001d49c \\u72d7"
        X = torch.rand(20, 9)
        fig = figures.plot_interpretation(X, torch.rand(20, 9), X, title="\U0001d49c.wav")
        assert matplotlib.rcParams["font.family"] == ["sans-serif", "DejaVu Math TeX Gyre"]
        _png_without_warnings(lambda path: figures.save_figure(fig, str(path)), tmp_path / "clip.png")
    finally:
        matplotlib.rcParams["font.family"] = family


@pytest.mark.parametrize("name", ["chien-07.wav", "caf\u00e9 \u03b1\u03b2.wav", "b$q$.wav"])
def test_names_the_default_font_draws_are_unchanged(name):
    assert figures.drawable(name) == name
