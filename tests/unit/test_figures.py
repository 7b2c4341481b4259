"""Tests of recipes/reporting/figures.py: what a clip's PNG shows."""

import numpy as np
import pytest
import torch

from recipes.reporting.figures import plot_interpretation


def test_a_clips_png_shows_the_target_event_beside_the_interpretation_when_known():
    """With the target event's spectrogram (a dataset with exact sources) the figure has a
    fourth panel drawing exactly it, on the input's colour scale; without, three panels."""
    X = torch.rand(6, 4) * 3.0
    mask = torch.rand(6, 4)
    X_target = X * (torch.arange(4) < 2)  # the event: the two lowest bins
    fig = plot_interpretation(X, mask, mask * X, "clip", X_target=X_target)
    titles = [ax.get_title() for ax in fig.axes]
    # and the colour bars: the mask's, the spectrograms'
    assert len(titles) == 6 and titles[3].startswith("target event alone")
    assert fig.axes[4].get_ylim() == (0.0, 1.0)  # the mask's values can be read off
    image = fig.axes[3].images[0]
    np.testing.assert_array_equal(np.asarray(image.get_array()), X_target.numpy().T)  # frequency up
    assert image.get_clim() == fig.axes[0].images[0].get_clim() == (0.0, float(X.max()))
    assert len(plot_interpretation(X, mask, mask * X, "clip").axes) == 5  # 3 panels and the colour bars


def _text_boxes(fig):
    """(text, its window extent in pixels, the axes it belongs to or None) of every text `fig`
    draws: the title, each axes' title and axis labels, and the tick labels of the ticks inside
    each axis's view."""
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    texts = [(fig._suptitle, None)] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [(ax.title, ax), (ax.xaxis.label, ax), (ax.yaxis.label, ax)]
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks():
                if low - 1e-9 <= tick.get_loc() <= high + 1e-9:
                    texts += [(label, ax) for label in (tick.label1, tick.label2) if label.get_visible()]
    return [
        (text.get_text(), text.get_window_extent(renderer), owner)
        for text, owner in texts
        if text.get_visible() and text.get_text()
    ]


@pytest.mark.parametrize(
    "shape, units, target, title",
    [
        ((259, 513), True, True, "5-100004-A-0: predicted cat (p=1.00), the true class"),
        ((259, 513), True, False, "x" * 40 + " " + "very_long_file_name_" * 12 + ".wav: predicted cat (p=0.52)"),
        ((1500, 513), False, False, "long.wav: dog (p=0.93, mean of 40 windows of 5 s; 6 frames averaged per column)"),
        ((20, 9), False, True, ""),
    ],
)
def test_a_clips_png_keeps_every_label_inside_and_apart(shape, units, target, title):
    """The clip PNG's fixed layout (saved without a tight bounding box): every text drawn lies
    inside the figure, no two texts overlap (the last time tick of a panel and the first of
    the next, a colour bar's labels and the next panel, the title and the panels' titles), and
    no text overlaps a panel it does not belong to. Colour bar values up to 4 characters
    ("17.5"), frequency bins up to 3 ("500"), a title of 3 lines."""
    X = torch.rand(*shape) * 17.5
    mask = torch.rand(*shape)
    kwargs = {"sample_rate": 16000, "duration": 3.0} if units else {}  # ticks at both ends: 0 and 3 s
    fig = plot_interpretation(X, mask, mask * X, title, X_target=X * 0.5 if target else None, **kwargs)
    boxes = _text_boxes(fig)
    whole = fig.bbox
    for text, box, _ in boxes:
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 and box.y1 <= whole.y1, text
    for at, (text, box, _) in enumerate(boxes):
        for other, other_box, _ in boxes[at + 1:]:
            assert not box.overlaps(other_box), (text, other)
    panels = [(ax, ax.get_window_extent()) for ax in fig.axes]  # the panels and the colour bars
    for at, (_, panel) in enumerate(panels):  # side by side, each apart from the next
        assert all(not panel.overlaps(other) for _, other in panels[at + 1:])
    for text, box, owner in boxes:  # a colour bar's labels stop before the next panel
        assert all(not box.overlaps(panel) for ax, panel in panels if ax is not owner), text
    if title:
        lines = fig.get_suptitle().split("\n")
        assert " ".join(lines).replace(" ", "") == title.replace(" ", "")  # every character, wrapped
        assert len(lines) == (3 if len(title) > 250 else 1)
