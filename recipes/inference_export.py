"""The inference folder every interpreter recipe exports, next to `psi_model.ckpt`.

`export_inference(brain, folder)` writes `<output_folder>/inference/`, which
`recipes.inference.AudioInterpreter.from_hparams` loads anywhere, without the
training yaml or any override:

    hyperparams.yaml      the modules of the training run (STFT, classifier,
                          interpreter) with its resolved sizes and thresholds
                          as literals, the label encoder and a pretrainer
    embedding_model.ckpt  classifier.ckpt  psi_model.ckpt  [theta.ckpt nmf_decoder.ckpt]
    label_encoder.txt

What a method needs at inference besides the shared sizes is listed in
`INFERENCE_SPECS`. Before the folder is moved into place it is loaded back and
must reproduce the trained interpreter on a test signal.

Authors
 * audio-interpret contributors 2026
"""

import io
import os
import shutil
import tempfile

import torch
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from speechbrain.utils.logger import get_logger

from data_prep.esc50_prepare import (
    LABEL_ENCODER_FILE,
    peak_normalise,
)
from data_prep.files import write_atomic, write_text

logger = get_logger(__name__)

INFERENCE_FOLDER = "inference"  # beside psi_model.ckpt in a training run's output folder
HPARAMS_FILE = "hyperparams.yaml"
CLASSIFIER_MODULES = ("embedding_model", "classifier")
SIGNAL_MODULES = ("compute_stft", "compute_istft", "compute_fbank")
#: Sizes and signal settings written as literals when the training run has them.
SIZE_KEYS = (
    "sample_rate",
    "signal_length_s",
    "n_fft",
    "hop_length",
    "win_length",
    "n_mels",
    "n_frames",
    "emb_dim",
    "lin_neurons",
    "out_n_neurons",
    "K",
    "classifier_temp",
    "use_melspectra",
)
#: What the interpreter Brain reads besides them, per Brain class: the yaml keys it
#: needs at inference ("keys"), values it must have there ("fixed"), and frozen
#: modules it loads itself from a path key ("frozen": {module: path key}).
INFERENCE_SPECS = {
    "L2I": {
        "keys": ("relevance_th", "relevance_centered", "theta_pooling"),
        "frozen": {"nmf_decoder": "nmf_decoder_path"},
    },
    "PIQ": {
        "keys": (
            "use_vq",
            "use_mask_output",
            "mask_th",
            "mask_target",
            "activate_class_partitioning",
            "shared_keys",
        )
    },
    # L-MAC checks its loss weights when it is built; it never fine-tunes here
    "LMAC": {"keys": ("l_in_w", "l_out_w", "reg_w_l1", "g_w"), "fixed": {"finetuning": False}},
}
#: Every interpreter Brain at inference: the pretrainer loads the classifier, no noise, no logs.
FIXED = {"use_pretrained": False, "add_wham_noise": False, "use_tensorboard": False}


def inference_spec(method):
    """INFERENCE_SPECS[method] with its defaults; an unknown method has no extra keys."""
    spec = INFERENCE_SPECS.get(method, {})
    return {"keys": spec.get("keys", ()), "fixed": spec.get("fixed", {}), "frozen": spec.get("frozen", {})}


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def checkpoint_file(name):
    """The file of loadable `name` in an inference folder: psi -> psi_model.ckpt, theta -> theta.ckpt."""
    from recipes.interpreter_brain import interpreter_file

    return interpreter_file(name)


def _plain(node, literals, memo):
    """A copy of a round-trip yaml node without its comments; `!apply:` nodes of
    top-level keys are replaced by their resolved values (`literals`, by node id)."""
    if id(node) in literals:
        return literals[id(node)]
    if id(node) in memo:  # a node used twice stays one object (an anchor and its alias)
        return memo[id(node)]
    if isinstance(node, (CommentedMap, CommentedSeq)):
        copy = type(node)()
        memo[id(node)] = copy
        if node.tag.value is not None:
            copy.yaml_set_ctag(node.tag)
        if isinstance(node, CommentedMap):
            for key, value in node.items():
                copy[key] = _plain(value, literals, memo)
        else:
            copy.extend(_plain(value, literals, memo) for value in node)
        return copy
    return node


def _interpreter_class(brain):
    """The Brain class the inference yaml names: the yaml's `interpreter_class`, else the Brain's."""
    return getattr(brain.hparams, "interpreter_class", type(brain))


def _method(brain):
    """"L2I", "PIQ", "LMAC": the key of INFERENCE_SPECS."""
    return _interpreter_class(brain).__name__


def _dump(mapping):
    yaml = YAML()
    yaml.indent(mapping=4, sequence=4, offset=2)  # as the project's yamls
    text = io.StringIO()
    yaml.dump(mapping, text)
    return text.getvalue()


def inference_yaml(brain, training_yaml):
    """The text of the inference hyperparams.yaml of a trained interpreter Brain.

    Arguments
    ---------
    brain : recipes.interpreter_brain.InterpreterBrain
        The trained Brain (its hparams give the resolved values).
    training_yaml : str or Path
        The run's resolved `hyperparams.yaml` (SpeechBrain writes it into the
        output folder): its module definitions are copied with their literals.

    Returns
    -------
    str
    """
    hparams = vars(brain.hparams)
    interpreter_class = _interpreter_class(brain)
    if interpreter_class.__module__ == "__main__":  # a recipe run as a script: not importable elsewhere
        raise ValueError(
            f"{training_yaml} has no `interpreter_class` (e.g. `interpreter_class: "
            f"!name:recipes.train_piq.PIQ`): the inference yaml names the Brain that explains."
        )
    method = interpreter_class.__name__
    spec = inference_spec(method)
    missing = [key for key in spec["keys"] if key not in hparams]
    if missing:
        raise ValueError(
            f"The {method} run has no {missing}, which its inference yaml needs: export it "
            "from a run of its own recipe, or update INFERENCE_SPECS in recipes/inference_export.py."
        )
    with open(training_yaml, encoding="utf-8") as fin:
        document = YAML().load(fin)
    literals = {
        id(document[key]): hparams[key]
        for key in document
        if key in hparams
        and getattr(getattr(document[key], "tag", None), "value", None) is not None
        and str(document[key].tag.value).startswith("!apply:")
        and isinstance(hparams[key], (bool, int, float, str))
    }
    memo = {}
    module_names = [*SIGNAL_MODULES, *CLASSIFIER_MODULES, *spec["frozen"], *brain.modules]
    modules = CommentedMap()
    for name in module_names:
        node = document["modules"][name] if name in brain.modules else document.get(name)
        if node is None:
            if name in SIGNAL_MODULES:
                continue  # e.g. no compute_fbank: the classifier reads X itself
            raise ValueError(f"{training_yaml} has no `{name}`, which the {method} interpreter needs.")
        modules[name] = _plain(node, literals, memo)

    scalars = CommentedMap()
    for key in (*SIZE_KEYS, *spec["keys"]):
        if key in hparams and key not in scalars:
            scalars[key] = hparams[key]
    fixed = {**FIXED, **spec["fixed"]}
    checkpoints = {name: checkpoint_file(name) for name in (*CLASSIFIER_MODULES, *spec["frozen"], *brain.modules)}
    recipe = f"recipes/{interpreter_class.__module__.rsplit('.', 1)[-1]}.py"
    lines = [
        "# ############################################################################",
        f"# {method} interpreter for inference, exported by {recipe} (the resolved values",
        "# of its training yaml: sizes and thresholds are literals; no override needed).",
        "#",
        "#   from recipes.inference import AudioInterpreter",
        "#   interpreter = AudioInterpreter.from_hparams(source=THIS_FOLDER)",
        "#   result = interpreter.interpret_file(FILE)",
        "#",
        "# or: audio-interpret FILE... --interpreter THIS_FOLDER --out DIR",
        "# ############################################################################",
        "",
        "# the folder or hub id the checkpoints are fetched from (from_hparams sets it)",
        "pretrained_path: !PLACEHOLDER",
        "",
        "# ---- sizes, signal and thresholds of the training run",
        _dump(scalars).rstrip(),
        "",
        "# ---- fixed for inference",
        _dump(CommentedMap(fixed)).rstrip(),
    ]
    for name, path_key in spec["frozen"].items():
        lines.append(f"{path_key}: !ref <pretrained_path>/{checkpoints[name]}  # the fetched copy at loading")
    lines += [
        "",
        "# ---- modules, as the training run built them",
        _dump(modules).rstrip(),
        "",
        "# the Brain that explains (the recipe's own data flow)",
        f"interpreter_class: !name:{interpreter_class.__module__}.{interpreter_class.__qualname__}",
        "label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder",
        "",
        "modules:",
        *(f"    {name}: !ref <{name}>" for name in brain.modules),
        "",
        "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer",
        "    loadables:",
        *(f"        {name}: !ref <{name}>" for name in (*checkpoints, "label_encoder")),
        "    paths:",
        *(f"        {name}: !ref <pretrained_path>/{file}" for name, file in checkpoints.items()),
        f"        label_encoder: !ref <pretrained_path>/{LABEL_ENCODER_FILE}",
        "    custom_hooks:  # strict loading: a checkpoint of other sizes is an error",
    ]
    for name in checkpoints:
        lines += [f"        {name}: !name:recipes.brains.load_state_dict_strict", f"            what: {method} {name}"]
    return "\n".join(lines) + "\n"


def _state_dict(module):
    """A module's state dict on the CPU, contiguous (channels-last weights written plainly)."""
    return {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}


def export_inference(brain, folder):
    """Writes the inference folder of a trained interpreter Brain and checks that it loads.

    The folder is built beside `folder`, loaded back with `AudioInterpreter`
    and compared with the Brain on a test signal, then moved into place (an
    earlier export is replaced): a failed export leaves none half-written.

    Arguments
    ---------
    brain : recipes.interpreter_brain.InterpreterBrain
        Trained, with its label encoder; its output folder holds the run's
        resolved hyperparams.yaml.
    folder : str or Path
        Where to write, e.g. `<output_folder>/inference`.

    Returns
    -------
    str or None
        `folder`; None (with a warning) when the output folder has no
        hyperparams.yaml, i.e. the Brain was not built by a recipe.
    """
    folder = os.path.abspath(folder)
    training_yaml = os.path.join(brain.hparams.output_folder, HPARAMS_FILE)
    if not os.path.isfile(training_yaml):  # a Brain built by hand, not by a recipe
        logger.warning(
            "No inference folder written to %s: it is made from the resolved yaml SpeechBrain writes "
            "into a recipe's output folder, and %s does not exist (run the recipe, e.g. "
            "recipes/train_piq.py, to get one).",
            folder,
            training_yaml,
        )
        return None
    if brain.label_encoder is None:
        raise ValueError("The Brain has no label encoder: build it with label_encoder= (the recipes do).")
    spec = inference_spec(_method(brain))
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}-", dir=os.path.dirname(folder))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; the folder is for sharing
    try:
        write_text(inference_yaml(brain, training_yaml), os.path.join(staging, HPARAMS_FILE))
        modules = {name: getattr(brain.hparams, name) for name in (*CLASSIFIER_MODULES, *spec["frozen"])}
        modules.update({name: brain.unwrapped(name) for name in brain.modules})
        for name, module in modules.items():
            state = _state_dict(module)
            write_atomic(os.path.join(staging, checkpoint_file(name)), lambda tmp, state=state: torch.save(state, tmp))
        write_atomic(os.path.join(staging, LABEL_ENCODER_FILE), brain.label_encoder.save)
        _check_export(brain, staging)
        previous = None
        if os.path.exists(folder):
            previous = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}-old-", dir=os.path.dirname(folder))
            os.replace(folder, os.path.join(previous, "old"))
        os.replace(staging, folder)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Exported the inference folder to %s (AudioInterpreter.from_hparams(source=...))", folder)
    return folder


def _check_export(brain, staging):
    """Loads the exported folder and compares its interpretation of a test signal with the Brain's."""
    from recipes.inference import AudioInterpreter  # it imports this module
    n_samples = int(round(brain.hparams.sample_rate * brain.hparams.signal_length_s))
    generator = torch.Generator().manual_seed(0)
    wav = peak_normalise(torch.randn(1, n_samples, generator=generator))  # (1, T)
    expected = brain.explain(wav)
    try:
        interpreter = AudioInterpreter.from_hparams(source=staging, run_opts={"device": str(brain.device)})
        exported = interpreter.interpret_batch(wav)
    except AttributeError as error:  # a key the Brain reads is not in the inference yaml
        raise ValueError(
            f"The exported {_method(brain)} interpreter does not run: {error}. Add the key "
            "to its INFERENCE_SPECS entry in recipes/inference_export.py."
        ) from error
    same_class = bool((expected["classes"] == exported["class_index"]).all())
    if not same_class or not torch.allclose(expected["mask"], exported["mask"], atol=1e-5):
        raise RuntimeError(
            f"The exported interpreter in {staging} does not reproduce the trained one (class "
            f"{exported['class_index'].tolist()} vs {expected['classes'].tolist()}, max mask "
            f"difference {(expected['mask'] - exported['mask']).abs().max().item():.3g})."
        )


