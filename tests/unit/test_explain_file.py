"""recipes/evaluation/explain_file.py on hand-made inputs whose answer is worked out by hand.

- `split_windows`: which samples go in which window, and the last window's zero padding;
- `single_sample_warnings` / `window_warnings`: the figures and the windows they name;
- `_PooledFrames`: the PNG of a --window run averages groups of consecutive frames, across
  batches, the last group possibly shorter;
- `explain_single_sample(window=True)` on a real 14-sample wav at 4 Hz (windows of 1 s = 4
  samples, the last one half padding) with a hand-made interpreter (`HandMadeInterpreter`)
  whose outputs say which window and frame they come from: what the classifier is given,
  where each window's interpretation lands in the wav, the cropping of the padding (samples
  and frames), the file's class as the mean over the heard windows, the per-window entries,
  and the PNG's columns, for one, two and three windows per batch alike.

No trained model, no mock of the module: the hand-made interpreter stands for the Brain,
and the figure is recorded instead of drawn (matplotlib is tested in test_figures.py).
"""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from recipes.evaluation import explain_file
from recipes.evaluation.explain_file import (
    _PooledFrames,
    explain_single_sample,
    single_sample_warnings,
    split_windows,
    window_warnings,
)

# ---------------------------------------------------------------- split_windows


def test_split_windows_keeps_every_sample_in_place_and_zero_pads_only_the_last_window():
    """7 samples in windows of 3: ceil(7 / 3) = 3 windows, [1 2 3], [4 5 6] and [7 0 0]: the
    samples in file order, row by row, the last window completed by two zeros. 6 samples give
    exactly 2 windows (no window of padding alone)."""
    windows = split_windows(torch.arange(1.0, 8.0), 3)
    assert windows.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 0.0, 0.0]]
    assert split_windows(torch.arange(1.0, 7.0), 3).tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


# ---------------------------------------------------------------- warnings

SILENCE_TAIL = "(every sample is 0): the prediction is the classifier's answer to silence, not to a sound."


def test_a_file_of_exactly_signal_length_s_has_no_warning_and_a_longer_one_says_its_seconds():
    """At 4 Hz with n_samples 4 (1 s): a 4-sample file is all explained, nothing to say; a
    12-sample file is 12 / 4 = 3 s long, of which the first 1 s is explained (the figures are
    seconds, not samples)."""
    assert single_sample_warnings("a.wav", torch.ones(4), 4, 4, 4) == []
    assert single_sample_warnings("a.wav", torch.ones(4), 12, 4, 4) == [
        "a.wav is 3 s long but the classifier takes signal_length_s = 1 s: only its first 1 s is "
        "explained. Pass --window to explain the whole file in consecutive windows of 1 s."
    ]


def test_a_signal_below_zero_everywhere_is_not_silent():
    """-0.5 on every sample is a sound (|x| = 0.5 > EPS), only a file of zeros is silence."""
    assert single_sample_warnings("a.wav", torch.full((4,), -0.5), 4, 4, 4) == []


def test_the_silence_warning_names_the_file_or_only_its_explained_start():
    """A silent file of exactly n_samples (4 samples, 1 s) is silent as a whole; a silent start
    of a 3 s file is "the first 1 s", after the sentence about its length."""
    assert single_sample_warnings("a.wav", torch.zeros(4), 4, 4, 4) == [f"a.wav is silent {SILENCE_TAIL}"]
    long_file = single_sample_warnings("a.wav", torch.zeros(4), 12, 4, 4)
    assert len(long_file) == 2 and long_file[0].startswith("a.wav is 3 s long")
    assert long_file[1] == f"the first 1 s of a.wav are silent {SILENCE_TAIL}"


def test_window_warnings_name_the_silent_windows_and_the_silent_file():
    """heard = [yes, no, yes, no]: windows 1 and 3 (counted from 0) are silent, 2 s each; all
    heard: nothing; none heard: the file itself is silent; one heard is enough not to say so."""
    heard = torch.tensor([True, False, True, False])
    assert window_warnings("a.wav", heard, 2.0) == [
        "window(s) [1, 3] of a.wav (from 0, 2 s each) are silent: their predictions are the "
        "classifier's answer to silence; the file's class is the mean of the other windows."
    ]
    assert window_warnings("a.wav", torch.tensor([True, True]), 2.0) == []
    assert window_warnings("a.wav", torch.tensor([False, False]), 2.0) == [f"a.wav is silent {SILENCE_TAIL}"]
    assert window_warnings("a.wav", torch.tensor([True, False]), 2.0)[0].startswith("window(s) [1] of a.wav")


# ---------------------------------------------------------------- the PNG's frame groups


def frame_rows(first, last):
    """(last - first, 2) frames numbered first..last-1: bin 0 holds the number g, bin 1 100 + g."""
    g = torch.arange(float(first), float(last))
    return torch.stack([g, 100 + g], dim=1)


def test_pooled_frames_average_consecutive_frames_across_batches():
    """Frames 0..9 added as 0..4 then 5..9, pooled by 3: the groups are (0 1 2), (3 4 5),
    (6 7 8) and the short last one (9), whose means are 1, 4, 7 and 9 (bin 1: 100 more).
    Frames 3 and 4 wait for frame 5 of the next batch; a group is consecutive frames, never
    every third one; the last group is the mean of what it holds, not its sum over 3."""
    pooled = _PooledFrames(3)
    pooled.add(frame_rows(0, 5))
    pooled.add(frame_rows(5, 10))
    assert pooled.result().tolist() == [[1.0, 101.0], [4.0, 104.0], [7.0, 107.0], [9.0, 109.0]]


def test_pooled_frames_of_one_are_the_frames():
    """pool 1 (a file short enough for the PNG): every frame is its own column."""
    pooled = _PooledFrames(1)
    pooled.add(frame_rows(0, 2))
    pooled.add(frame_rows(2, 3))
    assert pooled.result().tolist() == frame_rows(0, 3).tolist()


# ---------------------------------------------------------------- a whole --window run

RATE = 4  # Hz: signal_length_s 1 is a window of 4 samples
CLASSES = ["dog", "rain"]
# 14 samples (3.5 s): a sound (peak 0.5), 1 s of silence, a sound below zero everywhere
# (peak |-0.4|), then half a window (peak 0.1); float32, read back exactly
FILE = [0.5, 0.25, -0.25, 0.125, 0.0, 0.0, 0.0, 0.0, -0.2, -0.4, -0.1, -0.3, 0.1, 0.05]
# each window divided by its own peak; the last one zero-padded to 4 samples
NORMALISED = [
    [1.0, 0.5, -0.5, 0.25],
    [0.0, 0.0, 0.0, 0.0],
    [-0.5, -1.0, -0.25, -0.75],
    [1.0, 0.5, 0.0, 0.0],
]


class HandMadeInterpreter:
    """Stands for an InterpreterBrain in `explain_single_sample`: `explain` of a batch (w, 4).

    - "X" (w, 2 frames, 2 bins): frame t of the k-th window explained so far is numbered
      g = 2 k + t; bin 0 holds g, bin 1 holds 100 + g, so the PNG's columns say which
      frames they average. "mask" is all ones, "X_int" = X.
    - "audio": half the window given, so the wav says where each window's audio went.
    - "probs": [0.8, 0.2] (dog) for a window of positive sum, [0.1, 0.9] (rain) for a negative
      sum, [0, 1] (rain) for silence.
    """

    device = "cpu"

    def __init__(self):
        self.given = []  # the batches explain was called with
        self.windows_seen = 0

    def class_name(self, index):
        return CLASSES[int(index)]

    def explain(self, wavs):
        self.given.append(wavs.clone())
        k = self.windows_seen + torch.arange(wavs.shape[0])
        self.windows_seen += wavs.shape[0]
        g = (2 * k[:, None] + torch.arange(2)).float()  # (w, 2)
        X = torch.stack([g, 100 + g], dim=-1)  # (w, 2, 2)
        sums = wavs.sum(dim=1)
        probs = torch.tensor([[0.0, 1.0]]).repeat(wavs.shape[0], 1)
        probs[sums > 0] = torch.tensor([0.8, 0.2])
        probs[sums < 0] = torch.tensor([0.1, 0.9])
        outputs = {"X": X, "mask": torch.ones_like(X), "X_int": X, "audio": 0.5 * wavs, "probs": probs}
        return {**outputs, "classes": probs.argmax(dim=1)}


@pytest.fixture
def plotted(monkeypatch):
    """What the --window run plotted: [(X, mask, X_int, title)]; the PNG itself is not drawn."""
    calls = []
    monkeypatch.setattr(explain_file, "plot_interpretation", lambda *args: calls.append(args) or "figure")
    monkeypatch.setattr(explain_file, "save_figure", lambda figure, path, **kwargs: None)
    return calls


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_window_run_of_a_hand_made_file(tmp_path, monkeypatch, plotted, batch_size):
    """The 14-sample file at 4 Hz in windows of 1 s: ceil(14 / 4) = 4 windows, the same answer
    whatever the batch size (1, 2 or 3 windows per piece read).

    - The classifier is given the 4 windows in file order, each divided by its own peak (0.5,
      silence stays 0, 0.4, 0.1), the last one [0.1 0.05] padded with two zeros: NORMALISED.
      (Divided by the peak of a whole batch, window 2 would be [-0.4 -0.8 ...] with batches
      of 2 or 3.)
    - Heard: windows 0, 2, 3 (window 2 is below zero everywhere, but not silent); silent: 1.
      The file's probabilities are the mean over the heard windows:
      dog (0.8 + 0.1 + 0.8) / 3 = 1.7 / 3, rain (0.2 + 0.9 + 0.2) / 3 = 1.3 / 3: "dog".
      (Counting the silent window's [0, 1] would give dog 1.7 / 4 = 0.425: "rain".)
    - The windows: 0-1 s dog 0.8, 1-2 s rain 1.0 silent, 2-3 s rain 0.9, 3-3.5 s dog 0.8
      (the last one ends with the file, not at 4 s); one warning naming window [1].
    - The wavs: the normalised windows end to end, cropped to the file's 14 samples (the
      last window's 2 samples of padding dropped); the interpretation is half of it (peak
      0.5, written unscaled). 16-bit wav: 1e-4.
    - The PNG: 14 / 4 * 2 = 7 frames of the file (the last window's 2nd frame, numbered 7,
      is padding alone); with MAX_PLOT_FRAMES 3, ceil(7 / 3) = 3 frames per column:
      (0 1 2), (3 4 5), (6) -> 1, 4, 6, and the title says so, and that the mean is over the 3
      heard windows (the silent one left out).
    """
    path = tmp_path / "walk.wav"
    sf.write(str(path), np.asarray(FILE, dtype=np.float32), RATE, subtype="FLOAT")
    monkeypatch.setattr(explain_file, "MAX_PLOT_FRAMES", 3)
    brain = HandMadeInterpreter()
    hparams = {"sample_rate": RATE, "signal_length_s": 1.0, "batch_size": batch_size}
    result = explain_single_sample(brain, hparams, str(path), str(tmp_path / "out"), window=True)

    given = torch.cat(brain.given)
    assert [len(batch) for batch in brain.given] == {1: [1, 1, 1, 1], 2: [2, 2], 3: [3, 1]}[batch_size]
    assert given.tolist() == NORMALISED

    assert result["class"] == "dog" and result["probability"] == pytest.approx(1.7 / 3)
    assert [(top["class"], top["probability"]) for top in result["top_classes"]] == [
        ("dog", pytest.approx(1.7 / 3)),
        ("rain", pytest.approx(1.3 / 3)),
    ]
    windows = [(w["start_s"], w["end_s"], w["class"], w["probability"], w["silent"]) for w in result["windows"]]
    assert windows == [
        (0.0, 1.0, "dog", pytest.approx(0.8), False),
        (1.0, 2.0, "rain", pytest.approx(1.0), True),
        (2.0, 3.0, "rain", pytest.approx(0.9), False),
        (3.0, 3.5, "dog", pytest.approx(0.8), False),
    ]
    assert len(result["warnings"]) == 1 and result["warnings"][0].startswith(f"window(s) [1] of {path} (from 0, 1 s")
    saved = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert saved["windows"] == result["windows"] and saved["class"] == "dog"

    file_order = [sample for window in NORMALISED for sample in window][:14]
    original, rate = sf.read(result["files"]["original"])
    interpretation, _ = sf.read(result["files"]["interpretation"])
    assert rate == RATE and original.shape == interpretation.shape == (14,)
    np.testing.assert_allclose(original, file_order, atol=1e-4)
    np.testing.assert_allclose(interpretation, 0.5 * np.asarray(file_order), atol=1e-4)

    (X, mask, X_int, title), = plotted
    assert X.tolist() == [[1.0, 101.0], [4.0, 104.0], [6.0, 106.0]]
    assert X_int.tolist() == X.tolist() and mask.tolist() == [[1.0, 1.0]] * 3
    assert title == "walk: dog (p=0.57, mean of 3 windows of 1 s, 1 silent left out; 3 frames averaged per column)"


@pytest.mark.parametrize(
    "max_plot_frames, columns, averaged",
    [
        (2000, frame_rows(0, 7).tolist(), ""),
        (4, [[0.5, 100.5], [2.5, 102.5], [4.5, 104.5], [6.0, 106.0]], "; 2 frames averaged per column"),
    ],
    ids=["a column per frame", "2 frames per column"],
)
def test_window_run_plots_the_kept_frames_in_groups_the_title_names(
    tmp_path, monkeypatch, plotted, max_plot_frames, columns, averaged
):
    """The file's 7 frames (frame 7, padding alone, left out). With the default MAX_PLOT_FRAMES
    (2000) they are 7 columns, frames 0..6 in order, and the title mentions no averaging; with
    4 at most, ceil(7 / 4) = 2 frames per column: (0 1), (2 3), (4 5), (6) -> 0.5, 2.5, 4.5, 6,
    and the title says 2 frames are averaged per column."""
    path = tmp_path / "walk.wav"
    sf.write(str(path), np.asarray(FILE, dtype=np.float32), RATE, subtype="FLOAT")
    monkeypatch.setattr(explain_file, "MAX_PLOT_FRAMES", max_plot_frames)
    hparams = {"sample_rate": RATE, "signal_length_s": 1.0, "batch_size": 2}
    explain_single_sample(HandMadeInterpreter(), hparams, str(path), str(tmp_path / "out"), window=True)
    (X, _, _, title), = plotted
    assert X.tolist() == columns
    assert title == f"walk: dog (p=0.57, mean of 3 windows of 1 s, 1 silent left out{averaged})"


@pytest.mark.parametrize("samples", [[0.2, -0.4], [0.2, -0.4, 0.0, 0.0, 0.1, 0.1]], ids=["short", "long"])
def test_the_start_of_a_file_is_explained_peak_normalised_and_zero_padded(tmp_path, monkeypatch, samples):
    """Without --window, the first 4 samples (1 s at 4 Hz) are given to the classifier as a
    dataset clip: [0.2 -0.4] padded to [0.2 -0.4 0 0], divided by its peak 0.4: [0.5 -1 0 0],
    the same waveform saved as the original. Its sum is negative: rain, 0.9. The 2-sample file
    has nothing to warn of; the 6-sample one is 6 / 4 = 1.5 s long, of which 1 s is explained.
    (What is saved is recorded, not written: save_interpretation is tested in test_figures.py.)"""
    path = tmp_path / "bark.wav"
    sf.write(str(path), np.asarray(samples, dtype=np.float32), RATE, subtype="FLOAT")
    saved = []

    def record(folder, stem, **kwargs):
        saved.append(kwargs)
        return {}

    monkeypatch.setattr(explain_file, "save_interpretation", record)
    brain = HandMadeInterpreter()
    hparams = {"sample_rate": RATE, "signal_length_s": 1.0, "batch_size": 2}
    result = explain_single_sample(brain, hparams, str(path), str(tmp_path / "out"))
    assert torch.cat(brain.given).tolist() == [[0.5, -1.0, 0.0, 0.0]]
    assert saved[0]["original"].tolist() == [0.5, -1.0, 0.0, 0.0]
    assert result["class"] == "rain" and result["probability"] == pytest.approx(0.9)
    if len(samples) == 2:
        assert result["warnings"] == []
    else:
        assert len(result["warnings"]) == 1
        assert result["warnings"][0].startswith(f"{path} is 1.5 s long but the classifier takes signal_length_s = 1 s")


def test_window_run_of_a_truncated_file_explains_what_it_holds(tmp_path, plotted):
    """Found by a new-user probe: an mp3 cut to its first third (its header still says 6 s)
    crashed `eval.py --window` (an empty batch reached the STFT). Its windows are those of what
    it holds (ceil(held / 1 s)), the wav as long as that, the title counts them, and the
    warning of the reader is among the result's."""
    rate = 16000
    rng = np.random.default_rng(1)
    whole = tmp_path / "whole.mp3"
    sf.write(str(whole), (0.3 * rng.standard_normal(6 * rate)).astype(np.float32), rate, format="MP3")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    held = len(sf.read(str(cut))[0])
    hparams = {"sample_rate": rate, "signal_length_s": 1.0, "batch_size": 2}
    result = explain_single_sample(HandMadeInterpreter(), hparams, str(cut), str(tmp_path / "out"), window=True)
    n_windows = -(-held // rate)
    assert 1 <= n_windows < 6 and len(result["windows"]) == n_windows
    assert sf.info(result["files"]["original"]).frames == held
    assert any("ends at" in warning and "header says 6.00 s" in warning for warning in result["warnings"])
    assert f"mean of {n_windows} windows of 1 s" in plotted[0][3]


def test_a_nearly_silent_file_is_said_to_be_explained_as_its_noise():
    """A file peaking at 2 ** -15 (-90 dBFS, one 16-bit step) is scaled to full scale like every
    clip: said, with its level (found by a new-user probe); at -60 dBFS, nothing."""
    assert single_sample_warnings("a.wav", torch.full((4,), 2.0**-15), 4, 4, 4) == [
        "a.wav peaks at -90 dBFS, below -80 dBFS: it is scaled to full scale like every clip, so what "
        "is explained is its noise, not a sound."
    ]
    assert single_sample_warnings("a.wav", torch.full((4,), 1e-3), 4, 4, 4) == []
