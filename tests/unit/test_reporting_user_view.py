"""What a reader of the report sees: units on the spectrograms' axes, labelled colour bars,
the same method names in metrics.md as in the report, each metric's direction, which clips
and seed an evaluation scored, the bootstrap's settings as metrics.json gives them, and the
reference rows that differ between evaluations of the same clips.

Each expected value is worked out here by hand (an STFT bin's frequency, a frame's time), not
read back from the code under test.
"""

import pytest
import torch

from recipes.reporting import figures


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
