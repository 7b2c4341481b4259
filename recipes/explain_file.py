"""Explaining one audio file with a trained interpreter (`recipes/eval.py --single_sample`).

`explain_single_sample` writes, into one folder: the interpretation wav, the
original as the classifier heard it (resampled, padded / cropped), the
spectrogram PNG (input, mask, interpretation), for L2I one wav per selected
NMF component (Algorithm 2 of the paper), and `prediction.json` with the top
classes and the files. `single_sample_setup` builds the run without a dataset:
the class names come from the label encoder of the interpreter's training run.

Authors
 * audio-interpret contributors 2026
"""

import os
from pathlib import Path

from speechbrain.dataio.encoder import CategoricalEncoder

from data_prep.esc50_prepare import LABEL_ENCODER_FILE, load_clip
from data_prep.files import write_json
from recipes.figures import save_interpretation, write_wav
from recipes.metrics import finite_or_none
from recipes.startup import prepare_run


def explain_single_sample(brain, hparams, path, folder):
    """Explains one audio file: interpretation wav, PNG and, for L2I, one wav per component.

    Returns
    -------
    dict
        The prediction and the files written (also saved as `prediction.json`).
    """
    n_samples = int(round(hparams["sample_rate"] * hparams["signal_length_s"]))
    wav = load_clip(path, hparams["sample_rate"], n_samples).to(brain.device)  # (T,)
    stem = Path(path).stem
    components = None
    if hasattr(brain, "component_audio"):  # L2I: Algorithm 2, the audio of each component
        components, outputs = brain.component_audio(wav)
    else:
        outputs = brain.explain(wav.unsqueeze(0))
    c = int(outputs["classes"][0])
    probs = outputs["probs"][0]
    top = probs.topk(min(3, probs.numel()))
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
        "top_classes": [
            {"class": brain.class_name(int(k)), "probability": float(p)}
            for p, k in zip(top.values, top.indices)
        ],
        "files": {key: os.path.abspath(p) for key, p in paths.items()},
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
