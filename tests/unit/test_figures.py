"""Tests of recipes/reporting/figures.py: what a clip's PNG shows."""

import numpy as np
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
