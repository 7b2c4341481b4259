"""Explaining one audio file with a trained interpreter (`recipes/eval.py --single_sample`).

`explain_single_sample` writes, into one folder: the interpretation wav, the
original as the classifier heard it (resampled, padded / cropped), the
spectrogram PNG (input, mask, interpretation), for L2I one wav per selected
NMF component (Algorithm 2 of the paper; the most relevant ones, at most
`eval.py --max_components`), and `prediction.json` with the top
classes, the files and "warnings". `single_sample_setup` builds the run without
a dataset: the class names come from the label encoder of the interpreter's
training run.

What the file holds is checked, never guessed (`check_audio_file`,
`single_sample_warnings`): a file soundfile cannot read, or one without a
sample, is a ValueError naming it; a silent file, and a file longer than
`signal_length_s` (of which only the first `signal_length_s` is explained), are
explained with a warning (logged, and in prediction.json's "warnings").
`window=True` (`eval.py --window`) explains the whole file instead: consecutive
windows of `signal_length_s` (the last one zero-padded), each peak-normalised
like a dataset clip, in batches of the yaml's `batch_size` windows, the file
read and resampled one batch at a time (`data_prep.audio.read_audio_pieces`),
so memory is bounded by a batch, not by the file. It writes one interpretation
wav (the windows' interpretations end to end, cropped to the file's length,
written batch by batch: `WavStream`), one PNG of the whole file (at most
`MAX_PLOT_FRAMES` columns: a longer file's frames are averaged in groups of
consecutive frames, which the title says) and, in prediction.json, each
window's prediction under "windows". The file's class is then the mean of the
windows' probabilities (silent windows left out, unless every window is
silent); L2I's per-component wavs are not written in this mode (each window
selects its own components).

Authors
 * audio-interpret contributors 2026
"""

import math
import os
from pathlib import Path

import torch
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.logger import get_logger

from data_prep.audio import (
    EPS,
    audio_length,
    check_audio_file,
    pad_or_crop,
    peak_normalise,
    quiet_warning,
    read_audio_pieces,
    read_user_file,
    silent_warning,
)
from data_prep.esc50_prepare import LABEL_ENCODER_FILE
from data_prep.files import write_json
from recipes.core.process import release_freed_memory
from recipes.core.startup import prepare_run
from recipes.evaluation.metrics import finite_or_none
from recipes.reporting.figures import (
    WavStream,
    interpretation_paths,
    most_relevant,
    plot_interpretation,
    save_figure,
    save_interpretation,
    write_wav,
)

logger = get_logger(__name__)


SINGLE_SAMPLE = "--single_sample "  # how eval's messages name the file
#: Columns of the PNG of a --window run at most: a longer file's frames are averaged in groups.
MAX_PLOT_FRAMES = 2000



def split_windows(sig, n_samples):
    """sig (T,) as consecutive windows of n_samples, the last one zero-padded: (W, n_samples).

    Example
    -------
    >>> split_windows(torch.arange(1.0, 6.0), 2)
    tensor([[1., 2.],
            [3., 4.],
            [5., 0.]])
    """
    n_windows = math.ceil(sig.numel() / n_samples)
    return pad_or_crop(sig, n_windows * n_samples).view(n_windows, n_samples)


def single_sample_warnings(path, explained, length, n_samples, sample_rate):
    """What the prediction of a file's start does not say by itself, as sentences (empty: nothing).

    Arguments
    ---------
    path : str
    explained : torch.Tensor
        (T,) the samples explained (the file's first n_samples at most).
    length : int
        The file's length in samples.
    n_samples, sample_rate : int

    Example
    -------
    >>> single_sample_warnings("a.wav", torch.zeros(4), 8, 4, 4)[0]
    'a.wav is 2 s long but the classifier takes signal_length_s = 1 s: only its first 1 s is explained. Pass --window to explain the whole file in consecutive windows of 1 s.'
    """
    length_s, window_s = length / sample_rate, n_samples / sample_rate
    warnings = []
    if length > n_samples:
        warnings.append(
            f"{path} is {length_s:g} s long but the classifier takes signal_length_s = "
            f"{window_s:g} s: only its first {window_s:g} s is explained. Pass --window to "
            f"explain the whole file in consecutive windows of {window_s:g} s."
        )
    if explained.abs().max() <= EPS:
        warnings.append(silent_warning(path, first_s=window_s if length > n_samples else None))
    quiet = quiet_warning(path, float(explained.abs().max()))  # dither alone, scaled to full scale
    if quiet:
        warnings.append(quiet)
    return warnings


def window_warnings(path, heard, window_s):
    """The sentences about silent windows of a --window run; `heard` (W,) is False on them.

    Example
    -------
    >>> window_warnings("a.wav", torch.tensor([True, False]), 1.0)[0][:25]
    'window(s) [1] of a.wav (f'
    """
    if not heard.any():
        return [silent_warning(path)]
    silent = (~heard).nonzero().flatten().tolist()
    if not silent:
        return []
    return [
        f"window(s) {silent} of {path} (from 0, {window_s:g} s each) are silent: their "
        "predictions are the classifier's answer to silence; the file's class is the "
        "mean of the other windows."
    ]


def explain_single_sample(brain, hparams, path, folder, window=False, max_components=None):
    """Explains one audio file: interpretation wav, PNG and, for L2I, one wav per component.

    With `window`, the whole file in windows of `signal_length_s`, `batch_size`
    windows at a time (see the module docstring); else its first
    `signal_length_s`, the only part read (with a warning when it is longer).
    L2I writes the wavs of its `max_components` most relevant components (all
    of them when None); "components_kept" counts the components it kept.

    Returns
    -------
    dict
        The prediction, the files written and "warnings" (also saved as `prediction.json`).

    Raises
    ------
    ValueError
        `path` is not audio soundfile can read, or has no sample.
    """
    sample_rate = hparams["sample_rate"]
    n_samples = int(round(sample_rate * hparams["signal_length_s"]))
    if window:
        check_audio_file(path, prefix=SINGLE_SAMPLE)  # not audio, or no sample: a ValueError naming it
        return _explain_windows(brain, path, n_samples, sample_rate, folder, hparams["batch_size"])
    warnings = []  # NaN / infinite samples, logged by the reader
    sig = read_user_file(path, sample_rate, prefix=SINGLE_SAMPLE, n_samples=n_samples, warnings=warnings)
    new_warnings = single_sample_warnings(path, sig, audio_length(path, sample_rate), n_samples, sample_rate)
    for warning in new_warnings:
        logger.warning(warning)
    warnings += new_warnings
    wav = peak_normalise(pad_or_crop(sig, n_samples)).to(brain.device)  # (n_samples,), as load_clip
    stem = Path(path).stem
    components = None
    if hasattr(brain, "component_audio"):  # L2I: Algorithm 2, the audio of each component
        components, outputs = brain.component_audio(wav)
    else:
        outputs = brain.explain(wav.unsqueeze(0))
    c = int(outputs["classes"][0])
    probs = outputs["probs"][0]
    paths = save_interpretation(
        folder,
        stem,
        X=outputs["X"][0],
        mask=outputs["mask"][0],
        X_int=outputs["X_int"][0],
        original=wav,
        interpretation=outputs["audio"][0],
        sample_rate=hparams["sample_rate"],
        title=f"{stem}: {brain.class_name(c)} (p={probs[c].item():.2f})",
    )
    result = {
        "file": os.path.abspath(path),
        "interpreter": type(brain).__name__,
        "class": brain.class_name(c),
        "probability": probs[c].item(),
        "top_classes": _top_classes(brain, probs),
        "files": {key: os.path.abspath(p) for key, p in paths.items()},
        "warnings": warnings,
    }
    if "keep_class_step" in outputs:  # keep_class: 0 its own mask, k the k-th wider, -1 none kept
        result["keep_class_step"] = int(outputs["keep_class_step"][0])
    if components is not None:
        result["components_kept"] = len(components)
        kept = [{"component": k, "relevance": relevance, "audio": audio} for k, relevance, audio in components]
        result["components"] = most_relevant(kept, max_components)
        for component in result["components"]:
            component_path = os.path.join(folder, f"{stem}_component{component['component']:03d}.wav")
            write_wav(component_path, component.pop("audio"), hparams["sample_rate"])
            component["file"] = os.path.abspath(component_path)
    write_json(finite_or_none(result), os.path.join(folder, "prediction.json"))
    return result


def _top_classes(brain, probs, k=3):
    """[{"class", "probability"}] of the k most probable classes of probs (N,)."""
    top = probs.topk(min(k, probs.numel()))
    return [
        {"class": brain.class_name(int(c)), "probability": float(p)}
        for p, c in zip(top.values, top.indices)
    ]


class _PooledFrames:
    """(frames, F) spectrograms added batch by batch, averaged over `pool` consecutive frames."""

    def __init__(self, pool):
        self.pool = pool
        self.columns = []  # (columns, F) pieces
        self.rest = None  # (< pool, F): frames waiting for their group

    def add(self, frames):
        if self.rest is not None:
            frames = torch.cat([self.rest, frames])
        whole = frames.shape[0] // self.pool * self.pool
        if whole:
            self.columns.append(frames[:whole].reshape(-1, self.pool, frames.shape[1]).mean(dim=1))
        self.rest = frames[whole:].clone()  # not a view: the batch's frames are freed

    def result(self):
        """(ceil(frames / pool), F)."""
        rest = [self.rest.mean(dim=0, keepdim=True)] if self.rest is not None and len(self.rest) else []
        return torch.cat(self.columns + rest)


def _explain_windows(brain, path, n_samples, sample_rate, folder, batch_size):
    """`explain_single_sample` of the whole file, in windows of n_samples, batch_size at a time."""
    length = audio_length(path, sample_rate)
    n_windows = math.ceil(length / n_samples)
    stem = Path(path).stem
    paths = interpretation_paths(folder, stem)
    warnings = []  # NaN / infinite samples (the reader's), then silent windows
    probs, heard, plotted = [], [], {}
    done_frames = kept_frames = 0
    with (
        WavStream(paths["original"], sample_rate) as original,
        WavStream(paths["interpretation"], sample_rate) as interpretation,
    ):
        for piece in read_audio_pieces(path, sample_rate, batch_size * n_samples, warnings):
            windows = peak_normalise(split_windows(piece, n_samples))  # (w, n_samples), each as a dataset clip
            outputs = brain.explain(windows.to(brain.device))
            probs.append(outputs["probs"].cpu())  # (w, N)
            heard.append(windows.abs().amax(dim=1) > EPS)  # (w,), False on silent windows
            # the windows end to end, cropped to the file's length: samples and frames
            original.append(windows.reshape(-1)[: piece.numel()])
            interpretation.append(pad_or_crop(outputs["audio"], n_samples).reshape(-1)[: piece.numel()])
            frames = outputs["X"].shape[1]
            if not plotted:
                kept_frames = min(n_windows * frames, math.ceil(length / n_samples * frames))
                pool = math.ceil(kept_frames / MAX_PLOT_FRAMES)
                plotted = {name: _PooledFrames(pool) for name in ("X", "mask", "X_int")}
            take = min(windows.shape[0] * frames, kept_frames - done_frames)
            for name, pooled in plotted.items():
                pooled.add(outputs[name].reshape(-1, outputs[name].shape[-1])[:take].cpu())
            done_frames += take
            del windows, outputs
            release_freed_memory()  # what this batch freed: the process stays at one batch's size
        if not probs:  # a header and nothing after it
            raise ValueError(f"{SINGLE_SAMPLE}{path} holds no sample past its header: give an audio file.")
        probs, heard = torch.cat(probs), torch.cat(heard)  # (W, N), (W,)
        n_windows = len(heard)  # what the file holds: fewer than its header says when it is truncated
        weights = heard.to(probs) if heard.any() else torch.ones(len(heard))
        file_probs = (weights[:, None] * probs).sum(dim=0) / weights.sum()  # (N,), silent windows left out
        c = int(file_probs.argmax())
        window_s = n_samples / sample_rate
        pool = plotted["X"].pool
        pooled = f"; {pool} frames averaged per column" if pool > 1 else ""
        n_heard = int(heard.sum()) if heard.any() else n_windows  # the windows the mean is over
        silent = f", {n_windows - n_heard} silent left out" if n_heard < n_windows else ""
        title = (
            f"{stem}: {brain.class_name(c)} (p={file_probs[c].item():.2f}, "
            f"mean of {n_heard} windows of {window_s:g} s{silent}{pooled})"
        )
        figure = plot_interpretation(*(pooled_frames.result() for pooled_frames in plotted.values()), title)
        save_figure(figure, paths["png"], tight=False)  # the fixed layout of plot_interpretation
    silence = window_warnings(path, heard, window_s)
    for warning in silence:
        logger.warning(warning)
    warnings += silence
    result = {
        "file": os.path.abspath(path),
        "interpreter": type(brain).__name__,
        "class": brain.class_name(c),
        "probability": file_probs[c].item(),
        "top_classes": _top_classes(brain, file_probs),
        "window_s": window_s,
        "windows": [
            {
                "window": i,
                "start_s": i * window_s,
                "end_s": min((i + 1) * n_samples, length) / sample_rate,
                "class": brain.class_name(int(window_probs.argmax())),
                "probability": window_probs.max().item(),
                "top_classes": _top_classes(brain, window_probs),
                "silent": not bool(heard[i]),
            }
            for i, window_probs in enumerate(probs)
        ],
        "files": {key: os.path.abspath(p) for key, p in paths.items()},
        "warnings": warnings,
    }
    write_json(finite_or_none(result), os.path.join(folder, "prediction.json"))
    return result


def single_sample_setup(args, recipe_argv, folder):
    """hparams, run_opts and label encoder for --single_sample without --data_folder.

    The class names (and count, which sizes the models) come from the label
    encoder the interpreter's training run saved.
    """
    candidates = [
        os.path.join(folder, "save", LABEL_ENCODER_FILE),
        os.path.join(folder, LABEL_ENCODER_FILE),
    ]
    found = next((path for path in candidates if os.path.isfile(path)), None)
    if found is None:
        raise FileNotFoundError(
            f"--single_sample without --data_folder reads the class names from the interpreter's "
            f"training run, but none of {candidates} exists: pass --data_folder (the dataset the "
            "classifier was trained on)."
        )
    label_encoder = CategoricalEncoder()
    label_encoder.load(found)
    argv = recipe_argv + [
        "--data_folder",
        os.path.dirname(os.path.abspath(args.single_sample)),  # unused: no data is read
        "--out_n_neurons",
        str(len(label_encoder)),
    ]
    hparams, run_opts, *_ = prepare_run(argv, prepare=False)
    return hparams, run_opts, label_encoder
