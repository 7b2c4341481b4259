"""Explaining one audio file with a trained interpreter (`recipes/eval.py --single_sample`).

`explain_single_sample` writes, into one folder: the interpretation wav, the
original as the classifier heard it (resampled, padded / cropped), the
spectrogram PNG (input, mask, interpretation), for L2I one wav per selected
NMF component (Algorithm 2 of the paper), and `prediction.json` with the top
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
like a dataset clip, in one batch; it writes one interpretation wav (the
windows' interpretations end to end, cropped to the file's length), one PNG of
the whole file and, in prediction.json, each window's prediction under
"windows". The file's class is then the mean of the windows' probabilities
(silent windows left out, unless every window is silent); L2I's per-component
wavs are not written in this mode (each window selects its own components).

Authors
 * audio-interpret contributors 2026
"""

import math
import os
from pathlib import Path

import torch
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.logger import get_logger

from data_prep.audio import EPS, pad_or_crop, peak_normalise, read_user_file
from data_prep.esc50_prepare import LABEL_ENCODER_FILE
from data_prep.files import write_json
from recipes.core.startup import prepare_run
from recipes.evaluation.metrics import finite_or_none
from recipes.reporting.figures import save_interpretation, write_wav

logger = get_logger(__name__)


SINGLE_SAMPLE = "--single_sample "  # how eval's messages name the file



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


def single_sample_warnings(path, sig, n_samples, sample_rate, window):
    """What the prediction of `sig` (T,) does not say by itself, as sentences (empty: nothing).

    Example
    -------
    >>> single_sample_warnings("a.wav", torch.zeros(8), 4, 4, window=False)[0]
    'a.wav is 2 s long but the classifier takes signal_length_s = 1 s: only its first 1 s is explained. Pass --window to explain the whole file in consecutive windows of 1 s.'
    """
    length_s, window_s = sig.numel() / sample_rate, n_samples / sample_rate
    warnings = []
    if sig.numel() > n_samples and not window:
        warnings.append(
            f"{path} is {length_s:g} s long but the classifier takes signal_length_s = "
            f"{window_s:g} s: only its first {window_s:g} s is explained. Pass --window to "
            f"explain the whole file in consecutive windows of {window_s:g} s."
        )
    explained = sig if window else sig[:n_samples]
    if explained.abs().max() <= EPS:
        what = (
            f"{path} is silent"
            if explained.numel() == sig.numel()
            else f"the first {window_s:g} s of {path} are silent"
        )
        warnings.append(
            f"{what} (every sample is 0): the prediction is the classifier's answer to "
            "silence, not to a sound in the file."
        )
    elif window:
        silent = (
            (split_windows(sig, n_samples).abs().amax(dim=1) <= EPS).nonzero().flatten().tolist()
        )
        if silent:
            warnings.append(
                f"window(s) {silent} of {path} (from 0, {window_s:g} s each) are silent: their "
                "predictions are the classifier's answer to silence; the file's class is the "
                "mean of the other windows."
            )
    return warnings


def explain_single_sample(brain, hparams, path, folder, window=False):
    """Explains one audio file: interpretation wav, PNG and, for L2I, one wav per component.

    With `window`, the whole file in windows of `signal_length_s` (see the module
    docstring); else its first `signal_length_s` (with a warning when it is longer).

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
    sig = read_user_file(path, sample_rate, prefix=SINGLE_SAMPLE)  # (T,)
    warnings = single_sample_warnings(path, sig, n_samples, sample_rate, window)
    for warning in warnings:
        logger.warning(warning)
    if window:
        return _explain_windows(brain, sig, n_samples, sample_rate, path, folder, warnings)
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
    if components is not None:
        result["components"] = []
        for k, relevance, audio in components:
            component_path = os.path.join(folder, f"{stem}_component{k:03d}.wav")
            write_wav(component_path, audio, hparams["sample_rate"])
            result["components"].append(
                {"component": k, "relevance": relevance, "file": os.path.abspath(component_path)}
            )
    write_json(finite_or_none(result), os.path.join(folder, "prediction.json"))
    return result


def _top_classes(brain, probs, k=3):
    """[{"class", "probability"}] of the k most probable classes of probs (N,)."""
    top = probs.topk(min(k, probs.numel()))
    return [
        {"class": brain.class_name(int(c)), "probability": float(p)}
        for p, c in zip(top.values, top.indices)
    ]


def _explain_windows(brain, sig, n_samples, sample_rate, path, folder, warnings):
    """`explain_single_sample` of the whole file, in windows of n_samples (one batch)."""
    length = sig.numel()
    windows = peak_normalise(
        split_windows(sig, n_samples)
    )  # (W, n_samples), each as a dataset clip
    n_windows = windows.shape[0]
    outputs = brain.explain(windows.to(brain.device))
    probs = outputs["probs"]  # (W, N)
    heard = (windows.abs().amax(dim=1) > EPS).to(probs)  # (W,), 0 on silent windows
    weights = heard if heard.any() else torch.ones_like(heard)
    file_probs = (weights[:, None] * probs).sum(dim=0) / weights.sum()  # (N,)
    c = int(file_probs.argmax())
    # the windows end to end: frames and samples, cropped to the file's length
    frames = outputs["X"].shape[1]
    kept_frames = min(n_windows * frames, math.ceil(length / n_samples * frames))

    def whole(name):
        return outputs[name].reshape(n_windows * frames, -1)[:kept_frames]  # (frames, F)

    stem = Path(path).stem
    window_s = n_samples / sample_rate
    paths = save_interpretation(
        folder,
        stem,
        X=whole("X"),
        mask=whole("mask"),
        X_int=whole("X_int"),
        original=windows.reshape(-1)[:length],
        interpretation=outputs["audio"].reshape(-1)[:length],
        sample_rate=sample_rate,
        title=f"{stem}: {brain.class_name(c)} (p={file_probs[c].item():.2f}, "
        f"mean of {n_windows} windows of {window_s:g} s)",
    )
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
