"""The inference folder of a trained interpreter: its writer and its reader, in one place.

Writer. `export_inference(brain, folder)` writes `<output_folder>/inference/`
after a training run's test stage (`recipes.interpreters.training` calls it):

    hyperparams.yaml      the modules of the training run (STFT, classifier,
                          interpreter) with its resolved sizes and thresholds
                          as literals, the label encoder and a pretrainer
    embedding_model.ckpt  classifier.ckpt  psi_model.ckpt  [theta.ckpt nmf_decoder.ckpt]
    label_encoder.txt

What a method needs at inference besides the shared sizes, each interpreter
class declares (`inference_keys`, `inference_fixed`, `inference_frozen` of
`recipes.interpreters.base.InterpreterBrain`). Before the folder is moved into
place it is loaded back and must reproduce the trained interpreter on a test
signal.

Reader. `AudioInterpreter` (a `speechbrain.inference.interfaces.Pretrained`)
loads such a folder, or a hub id of the same layout, and explains audio with
the recipe's own Brain (the `interpreter_class` of the yaml, built as eval.py
builds it), so the numbers are eval's:

    >>> from recipes.interpreters.inference import AudioInterpreter  # doctest: +SKIP
    >>> interpreter = AudioInterpreter.from_hparams(source="results/piq/1234/inference")  # doctest: +SKIP
    >>> result = interpreter.interpret_file("dog.flac")  # doctest: +SKIP
    >>> result["class"], result["probability"], result["interpretation"].shape  # doctest: +SKIP

A file is read as the training clips are (`data_prep.audio`: any format
soundfile reads, any channel count downmixed, any sample rate resampled), then
zero-padded or cropped to `signal_length_s` (with a warning when cropped) and
peak-normalised. The command that explains many files is
`recipes/interpret_files.py` (`audio-interpret`).

Authors
 * audio-interpret contributors 2026
"""

import difflib
import glob
import importlib
import inspect
import io
import math
import os
import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
import torchaudio
import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.fetching import FetchConfig, LocalStrategy, fetch
from speechbrain.utils.logger import get_logger
from speechbrain.utils.run_opts import RunOptions

from data_prep.audio import (
    EPS,
    audio_length,
    check_finite,
    pad_or_crop,
    peak_normalise,
    quiet_warning,
    read_user_file,
    silent_warning,
)
from data_prep.esc50_prepare import LABEL_ENCODER_FILE
from data_prep.files import write_atomic, write_text
from recipes.core.brains import build_brain, load_state_dict_strict
from recipes.core.pipeline import CLASSIFIER_SIZE_KEYS
from recipes.core.startup import load_yaml, top_level_scalars
from recipes.interpreters.base import InterpreterBrain, interpreter_file

logger = get_logger(__name__)

INFERENCE_FOLDER = "inference"  # beside psi_model.ckpt in a training run's output folder
HPARAMS_FILE = "hyperparams.yaml"
#: The file of a `savedir` that names the inference folder or hub id its files are from.
SAVEDIR_SOURCE_FILE = "interpreter_source.txt"
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
    "out_n_neurons",
    "K",
    *CLASSIFIER_SIZE_KEYS,  # emb_dim, lin_neurons and the transformer backbones' sizes
    "classifier_temp",
    "use_melspectra",
    "mask_domain",  # where the mask scales X (recipes.core.pipeline.apply_mask)
    "mask_above_floor",  # the mask times recipes.core.pipeline.floor_mask
    "keep_class",  # widened per clip until the classifier keeps its class
    "mask_completion",  # grown over the above-floor regions it touches (pipeline.complete_mask)
    "mask_tail",  # a decoder's mask past its last frame (pipeline.match_frames)
    "psi_decoder",  # the ViT / FocalNet PIQ decoder (models.PIQ.TRANSFORMER_DECODERS)
    "use_adapter",  # PIQ's and L-MAC's psi: a residual adapter first (its weights in psi)
    "adapter_reduce_dim",  # PIQ's adapter: quantize at half the grid (its down / up layers)
)
#: The most channels a recording is taken to have: a (B, T) batch of at most this many samples
#: per clip, and more clips than samples, is soundfile's (frames, channels) of one recording.
MAX_CHANNELS = 8
#: The largest text file (the yaml, the label encoder) an inference folder may hand over: what an
#: export writes is a few kB; a link to a huge file is not read into memory.
MAX_TEXT_BYTES = 16 * 2**20
#: Every interpreter Brain at inference: the pretrainer loads the classifier, no noise, no logs.
FIXED = {"use_pretrained": False, "add_wham_noise": False, "use_tensorboard": False}


def inference_spec(brain_class):
    """What `brain_class` reads at inference besides the shared sizes, as it declares it.

    Returns
    -------
    dict
        "keys": the yaml keys it needs; "fixed": values they must have there;
        "frozen": {module: path key} of the frozen modules it loads itself.
    """
    return {
        "keys": tuple(brain_class.inference_keys),
        "fixed": dict(brain_class.inference_fixed),
        "frozen": dict(brain_class.inference_frozen),
    }


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


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
    """"L2I", "PIQ", "LMAC": the name of the Brain class."""
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
    brain : recipes.interpreters.base.InterpreterBrain
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
            f"!name:recipes.interpreters.piq.PIQ`): the inference yaml names the Brain that explains."
        )
    method = interpreter_class.__name__
    spec = inference_spec(interpreter_class)
    missing = [key for key in spec["keys"] if key not in hparams]
    if missing:
        raise ValueError(
            f"The {method} run has no {missing}, which its inference yaml needs: export it "
            "from a run of its own recipe, or add it to the class's `inference_keys`."
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
    checkpoints = {name: interpreter_file(name) for name in (*CLASSIFIER_MODULES, *spec["frozen"], *brain.modules)}
    recipe = f"recipes/{interpreter_class.__module__.rsplit('.', 1)[-1]}.py"
    lines = [
        "# ############################################################################",
        f"# {method} interpreter for inference, exported by {recipe} (the resolved values",
        "# of its training yaml: sizes and thresholds are literals; no override needed).",
        "#",
        "#   from recipes.interpreters.inference import AudioInterpreter",
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
        lines += [f"        {name}: !name:recipes.core.brains.load_state_dict_strict", f"            what: {method} {name}"]
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
    brain : recipes.interpreters.base.InterpreterBrain
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
    spec = inference_spec(_interpreter_class(brain))
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
            write_atomic(os.path.join(staging, interpreter_file(name)), lambda tmp, state=state: torch.save(state, tmp))
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
    n_samples = int(round(brain.hparams.sample_rate * brain.hparams.signal_length_s))
    generator = torch.Generator().manual_seed(0)
    wav = peak_normalise(torch.randn(1, n_samples, generator=generator))  # (1, T)
    expected = brain.explain(wav)
    yaml_path = os.path.join(staging, HPARAMS_FILE)
    with open(yaml_path, encoding="utf-8") as fin:
        try:
            check_inference_yaml(fin.read(), yaml_path)
        except UntrustedYamlError:  # a classifier of the user's own (README, "Your own classifier")
            logger.warning(
                "The inference folder builds code outside %s (the training yaml's own classes): "
                "loading it needs trust_code=True (audio-interpret --trust_code).",
                ", ".join(TRUSTED_MODULES),
            )
    try:
        # this run's own yaml, whose classes this process has already built: trusted here
        interpreter = AudioInterpreter.from_hparams(
            source=staging, run_opts={"device": str(brain.device)}, trust_code=True
        )
        exported = interpreter.interpret_batch(wav)
    except AttributeError as error:  # a key the Brain reads is not in the inference yaml
        raise ValueError(
            f"The exported {_method(brain)} interpreter does not run: {error}. Add the key "
            f"to `{_method(brain)}.inference_keys` ({_interpreter_class(brain).__module__})."
        ) from error
    same_class = bool((expected["classes"] == exported["class_index"]).all())
    if not same_class or not torch.allclose(expected["mask"], exported["mask"], atol=1e-5):
        raise RuntimeError(
            f"The exported interpreter in {staging} does not reproduce the trained one (class "
            f"{exported['class_index'].tolist()} vs {expected['classes'].tolist()}, max mask "
            f"difference {(expected['mask'] - exported['mask']).abs().max().item():.3g})."
        )


# ---------------------------------------------------------------------------
# Reader: the pretrained interface
# ---------------------------------------------------------------------------


def _is_hub_id(source):
    """True for "owner/name" that is not a local path: a path has other forms, or exists, or
    starts with a folder that exists here (`results/piqq` is a mistyped path, not a hub id)."""
    parts = source.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not source.startswith((".", "~"))
        and not os.path.exists(source)
        and not os.path.isdir(parts[0])
    )


def _missing_path_error(source):
    """The FileNotFoundError of a local path that does not exist, with the near names beside it."""
    parent = os.path.dirname(os.path.normpath(source)) or "."
    near = []
    if os.path.isdir(parent):
        names = difflib.get_close_matches(os.path.basename(os.path.normpath(source)), os.listdir(parent), n=3)
        near = [os.path.join(parent, name) if parent != "." else name for name in names]
    hint = f" Did you mean {' or '.join(near)}?" if near else ""
    hub = (
        f" It is not taken for a hub id because {source.split('/')[0]}/ is a folder here."
        if len(source.split("/")) == 2 and os.path.isdir(source.split("/")[0])
        else ""
    )
    return FileNotFoundError(
        f"The interpreter {source} does not exist.{hint}{hub} Give the inference folder a "
        f"training run exported (<output_folder>/{INFERENCE_FOLDER}, or the run's output "
        "folder) or a hub id (owner/name)."
    )


def local_inference_folders(root="results"):
    """Inference folders exported under `root` (results/<experiment>/<seed>/inference), sorted."""
    pattern = os.path.join(root, "*", "*", INFERENCE_FOLDER, HPARAMS_FILE)
    return sorted(os.path.dirname(path) for path in glob.glob(pattern))


def check_readable_file(path, name, source, max_bytes=None):
    """Refuses a file of an inference folder that is not a plain file (a link to a device such
    as /dev/zero, a pipe, a folder) or, for a text file (`max_bytes`), one larger than what an
    export writes: reading it would block or fill the memory.

    Raises
    ------
    ValueError
        Naming the file, what it is, and what to do.

    Example
    -------
    >>> check_readable_file("/dev/zero", "label_encoder", "some/folder", MAX_TEXT_BYTES)
    Traceback (most recent call last):
    ...
    ValueError: some/folder: its label_encoder (/dev/zero) is not a plain file (a link to a device, a pipe or a folder?): an exported inference folder holds only plain files. Export the training run again, or copy the folder without links.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):  # follows links: true only for a regular file
        raise ValueError(
            f"{source}: its {name} ({os.path.realpath(path)}) is not a plain file (a link to a device, "
            "a pipe or a folder?): an exported inference folder holds only plain files. Export the "
            "training run again, or copy the folder without links."
        )
    size = os.path.getsize(path)
    if max_bytes is not None and size > max_bytes:
        raise ValueError(
            f"{source}: its {name} ({os.path.realpath(path)}) holds {size} bytes, more than the "
            f"{max_bytes} bytes of any text file an export writes: not read. Export the training run again."
        )


def resolve_source(source, hparams_file=HPARAMS_FILE):
    """The folder to load for a local `source`, or `source` itself for a hub id.

    A training run's output folder stands for its `inference/` folder.

    Raises
    ------
    FileNotFoundError
        `source` is neither an inference folder nor a hub id.
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        nested = os.path.join(source, INFERENCE_FOLDER)
        if os.path.isfile(os.path.join(nested, hparams_file)):
            logger.info("%s is a training run: loading its %s/ folder.", source, INFERENCE_FOLDER)
            return nested
        yaml_path = os.path.join(source, hparams_file)
        if not os.path.lexists(yaml_path):
            raise FileNotFoundError(
                f"{source} has no {hparams_file}: give the inference folder a training run "
                f"exported (<output_folder>/{INFERENCE_FOLDER}, e.g. results/piq/1234/{INFERENCE_FOLDER})."
            )
        check_readable_file(yaml_path, hparams_file, source, MAX_TEXT_BYTES)
        with open(yaml_path, encoding="utf-8") as fin:
            if "pretrained_path:" not in fin.read():
                raise ValueError(
                    f"{yaml_path} is not an exported inference yaml (it has no pretrained_path; "
                    "a training yaml?): give the <output_folder>/inference folder of the run."
                )
        return source
    if _is_hub_id(source):
        return source
    raise _missing_path_error(source)


def _hub_error(source, error):
    """The error for a hub id that cannot be fetched: it names the local folders to use."""
    found = local_inference_folders()
    example = found[0] if found else f"results/piq/1234/{INFERENCE_FOLDER}"
    here = f" Exported here: {', '.join(found)}." if found else ""
    return FileNotFoundError(
        f"Could not fetch the interpreter {source!r} from the Hugging Face hub "
        f"({type(error).__name__}: {error}). Offline, or no such model? Give a local folder "
        f"instead: the inference folder a training run exports, "
        f"<output_folder>/{INFERENCE_FOLDER} (source={example!r}), or a copy of the hub "
        f"model downloaded where there is a network.{here}"
    )


#: This project's packages: an inference yaml may name (`!new:`, `!name:`) the classes they define.
TRUSTED_MODULES = ("recipes", "models", "data_prep")
#: The library modules whose classes an inference yaml may name too: layers, features, the label
#: encoder, the Pretrainer and the classifiers an export writes. Not the rest of torch and
#: SpeechBrain: some of their classes run code from where they load (SpeechBrain's Hugging
#: Face interfaces take `trust_remote_code`, `torch.hub` a repository's hubconf.py).
TRUSTED_LIBRARY_MODULES = (
    "torch.nn.modules",
    "speechbrain.nnet",
    "speechbrain.processing.features",
    "speechbrain.dataio.encoder",
    "speechbrain.utils.parameter_transfer",
    "speechbrain.lobes.models.Cnn14",
    "speechbrain.lobes.models.ECAPA_TDNN",
    "speechbrain.lobes.models.Xvector",
)
#: The functions an inference yaml may name (`!name:`): what the export writes. The Pretrainer
#: calls a checkpoint's hook as hook(module, path), so another function (`torch.save`, a writer
#: of this project) could write over the file a path links to.
TRUSTED_FUNCTIONS = ("recipes.core.brains.load_state_dict_strict",)
#: The classes of those modules an inference yaml may build that are no torch Module (layers,
#: features, models): the label encoder and the Pretrainer. Any other class there may do what
#: loading a folder must not (a writer of files, a Brain that downloads WHAM! noise into a
#: folder of the yaml's), and the interpreter Brain is only named, without arguments.
TRUSTED_CLASSES = ("speechbrain.dataio.encoder.CategoricalEncoder", "speechbrain.utils.parameter_transfer.Pretrainer")
#: A reference `<key.attribute>`: hyperpyyaml reads it as `!apply:getattr` of what `key` builds.
_ATTRIBUTE_REFERENCE = re.compile(r"<[\w\[\]]+\.\w[\w.]*>")
#: A reference hyperpyyaml resolves (`<key>`, `<key[0]>`): its text is the key's.
_REFERENCE = re.compile(r"<([^<>]*)>")
#: A value hyperpyyaml reads as a tuple (its items with PyYAML's Loader, yaml tags and all).
_TUPLE_VALUE = re.compile(r"^\(.*\)$")
#: hyperpyyaml's tags that build nothing by themselves.
PLAIN_TAGS = ("!ref", "!copy", "!tuple", "!PLACEHOLDER")
#: The yaml types a node may have without a `!` tag; `!!python/object/apply:...` and the like
#: (yaml's own tags, `tag:yaml.org,2002:python/...`) build code and are refused.
CORE_TAGS = tuple(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary", "merge")
)
#: Where an older version of this project wrote a name that has moved since.
MOVED_NAMES = {
    "recipes.brains.": "recipes.core.brains.",
    "recipes.pipeline.": "recipes.core.pipeline.",
    "recipes.train_l2i.L2I": "recipes.interpreters.l2i.L2I",
    "recipes.train_piq.PIQ": "recipes.interpreters.piq.PIQ",
    "recipes.train_lmac.LMAC": "recipes.interpreters.lmac.LMAC",
}


# ---------------------------------------------------------------------------
# The settings an interpreter was trained with
# ---------------------------------------------------------------------------

_INTERPRETER_CLASS_LINE = re.compile(r"^interpreter_class:\s*!name:([\w.]+)", re.M)


def interpreter_class_name(text):
    """The dotted name of a yaml text's `interpreter_class` (moved names at their new homes), or
    None; read from the text, nothing imported.

    Example
    -------
    >>> interpreter_class_name("lr: 1\\ninterpreter_class: !name:recipes.train_piq.PIQ\\n")
    'recipes.interpreters.piq.PIQ'
    """
    match = _INTERPRETER_CLASS_LINE.search(text)
    if not match:
        return None
    name = match.group(1)
    for old, new in MOVED_NAMES.items():
        if name.startswith(old):
            name = new + name[len(old) :]
    return name


def _settings_of(text):
    """{key: value} of the trained settings a run's yaml text holds as literals: SIZE_KEYS (but
    the class count, which the data or the label encoder gives) and its interpreter class's
    `inference_keys`."""
    keys = [key for key in SIZE_KEYS if key != "out_n_neurons"]
    name = interpreter_class_name(text)
    if name:
        module_name, _, attribute = name.rpartition(".")
        brain_class = None
        if module_name.split(".")[0] == "recipes":  # only this project's classes are imported
            try:
                brain_class = getattr(importlib.import_module(module_name), attribute)
            except (ImportError, AttributeError):
                brain_class = None
        keys += [key for key in getattr(brain_class, "inference_keys", ()) if key not in keys]
    scalars = top_level_scalars(io.StringIO(text))
    settings = {key: scalars[key] for key in keys if key in scalars}
    for key, value in settings.items():  # eval.py passes them on as --key=value overrides
        if isinstance(value, str) and re.search(r"<[^<>]*>", value):
            raise UntrustedYamlError(
                f"The trained setting {key}: {value} holds a reference (<...>), which the recipe's "
                "yaml would resolve among its own objects (<key.attribute> reads an attribute of "
                "one): a trained setting is a plain value. Export the training run again."
            )
    return settings


def trained_settings(path):
    """The settings (signal, STFT, sizes, thresholds) an interpreter was trained with, from its run.

    Arguments
    ---------
    path : str or Path
        A training run's output folder (read: its `inference/hyperparams.yaml`,
        and for a key that yaml lacks, the resolved `hyperparams.yaml` SpeechBrain
        wrote there: an inference folder exported before the key joined
        SIZE_KEYS), an inference folder, or a file in one of them (`psi_model.ckpt`).

    Returns
    -------
    settings : dict
        {key: value}; empty when the folder holds no such yaml.
    where : str or None
        The first yaml read.

    Raises
    ------
    ValueError
        A yaml larger than any an export or SpeechBrain writes (`MAX_TEXT_BYTES`): not read.
    """
    path = os.fspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    settings, where = {}, None
    for candidate in (os.path.join(folder, INFERENCE_FOLDER, HPARAMS_FILE), os.path.join(folder, HPARAMS_FILE)):
        if os.path.isfile(candidate):
            check_readable_file(candidate, HPARAMS_FILE, folder, MAX_TEXT_BYTES)  # a run folder may come from elsewhere
            with open(candidate, encoding="utf-8") as fin:
                for key, value in _settings_of(fin.read()).items():
                    settings.setdefault(key, value)
            where = where or candidate
    return settings, where


def same_setting(given, trained):
    """Whether a given value is the trained one (numbers as numbers: 3 is 3.0).

    Example
    -------
    >>> same_setting(3, 3.0), same_setting(5, 3.0), same_setting("peak", "peak"), same_setting(True, 1)
    (True, False, True, False)
    """
    if any(isinstance(value, bool) or not isinstance(value, (int, float)) for value in (given, trained)):
        return type(given) is type(trained) and given == trained
    return math.isclose(given, trained, rel_tol=1e-9, abs_tol=1e-12)


def refuse_contradictions(given, trained, where, command_line=True):
    """A ValueError naming both values when a given setting is not the one the interpreter was trained with.

    Arguments
    ---------
    given : dict
        {key: value} the user gave (command-line overrides, or `from_hparams` overrides).
    trained : dict
        `trained_settings`.
    where : str
        The yaml the trained values come from.
    command_line : bool
        How the message names the given value: `--key value`, else `overrides`.
    """
    for key, value in given.items():
        if key in trained and not same_setting(value, trained[key]):
            if command_line:
                named = f"--{key} {value}"
                fix = (
                    f"Drop --{key} (the trained value is used), give an interpreter trained with "
                    f"{key} = {value}, or (recipes/eval.py) pass --override_trained {key} to "
                    "evaluate another value on purpose."
                )
            else:
                named = f"overrides {{{key!r}: {value!r}}}"
                fix = (
                    f"Drop {key!r} from the overrides (the trained value is used), or give an "
                    f"interpreter trained with {key} = {value}."
                )
            raise ValueError(f"{named}: the interpreter was trained with {key} = {trained[key]} ({where}). {fix}")


class UntrustedYamlError(ValueError):
    """An inference yaml names code this project does not load without `trust_code`."""


def _within(module_name, packages):
    """Whether `module_name` is one of `packages` or inside one (not merely named alike)."""
    return any(module_name == package or module_name.startswith(package + ".") for package in packages)


def _trusted_object(target):
    """The class or function `target` names in TRUSTED_MODULES and TRUSTED_LIBRARY_MODULES or
    in a package above one of them (`torch.nn.Linear`: `torch.nn` is imported), or None; any
    other module is not imported at all (a module runs code when imported)."""
    module_name, _, attribute = target.rpartition(".")
    trusted = TRUSTED_MODULES + TRUSTED_LIBRARY_MODULES
    if not module_name or not (
        _within(module_name, trusted) or any(_within(name, (module_name,)) for name in trusted)
    ):
        return None  # only a trusted module, or a package above one (torch.nn), is imported
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return None


def _trusted_target(target, kind, has_args=False):
    """Whether `!<kind>:target` builds only a class defined in TRUSTED_MODULES or
    TRUSTED_LIBRARY_MODULES or, for `!name:`, names one of TRUSTED_FUNCTIONS. The class's own
    module counts, not the path: a class a trusted module imports from elsewhere
    (`recipes.core.run_guard.<something imported>`) is not trusted by being reachable there.
    The class is a torch Module (not a `Pretrained` interface, which builds a Brain of its
    arguments), one of TRUSTED_CLASSES, or an interpreter Brain named (`!name:`) with nothing
    after it (`has_args`: the node holds a value, even `{}` or `[]`)."""
    found = _trusted_object(target)
    if found is None:
        return False
    if inspect.isfunction(found) and kind == "name":
        return f"{found.__module__}.{found.__qualname__}" in TRUSTED_FUNCTIONS
    if not inspect.isclass(found) or not _within(found.__module__, TRUSTED_MODULES + TRUSTED_LIBRARY_MODULES):
        return False
    if issubclass(found, torch.nn.Module):
        return not issubclass(found, Pretrained)
    if issubclass(found, InterpreterBrain):  # only named (`!name:`), nothing given to it
        return kind == "name" and not has_args
    return f"{found.__module__}.{found.__qualname__}" in TRUSTED_CLASSES


def _tuple_tag(text):
    """The first yaml tag (not a plain type) in the items of a `(a, b)` value, or None."""
    try:
        nodes = [pyyaml.compose("[" + text[1:-1] + "]", Loader=pyyaml.SafeLoader)]
    except pyyaml.YAMLError:
        return None  # no list: hyperpyyaml cannot read it as a tuple either
    while nodes:
        node = nodes.pop()
        if node is None:
            continue
        if node.tag not in CORE_TAGS:
            return node.tag
        if isinstance(node.value, list):
            nodes.extend(item for pair in node.value for item in (pair if isinstance(pair, tuple) else (pair,)))
    return None


def _resolved_sizes(root):
    r"""{top-level key: an upper bound of the characters its value holds once hyperpyyaml has
    resolved its references}: each `<key>` in a value counts that key's own bound again, so a
    chain of keys that each repeat the one before (`b: !ref <a><a>`, `c: !ref <b><b>`, ...)
    grows as it would when loaded, without being loaded. A key that refers back to itself
    counts once (hyperpyyaml refuses the cycle).

    Example
    -------
    >>> sizes = _resolved_sizes(YAML().compose("a: abc\nb: !ref <a><a>\nc: !ref <b>/x\n"))
    >>> sizes == {"a": 3, "b": 6 + 3 + 3, "c": 5 + 12}  # len("<b>/x") + b's
    True
    """
    top = {key.value: value for key, value in root.value} if isinstance(root.value, list) else {}
    sizes, active = {}, set()

    def size(name):
        if name in sizes:
            return sizes[name]
        if name in active or name not in top:
            return 0
        active.add(name)
        total, stack = 0, [top[name]]
        while stack:
            node = stack.pop()
            if isinstance(node.value, str):
                total += len(node.value)
                for match in _REFERENCE.finditer(node.value):
                    total += size(re.split(r"[.\[]", match.group(1), maxsplit=1)[0].strip())
            elif isinstance(node.value, list):
                for item in node.value:
                    stack.extend(item if isinstance(item, tuple) else (item,))
        active.discard(name)
        sizes[name] = total
        return total

    return {str(name): size(name) for name in top}


def check_inference_yaml(text, where, trust_code=False):
    """The text of an inference yaml, checked before anything in it is built.

    Reads the yaml's node graph without constructing it. Every tag must be a
    plain yaml type (`CORE_TAGS`), one of hyperpyyaml's `PLAIN_TAGS`, or `!new:` /
    `!name:` of a class defined in `TRUSTED_MODULES` or `TRUSTED_LIBRARY_MODULES`, or `!name:` of one of `TRUSTED_FUNCTIONS`:
    what `export_inference` writes. `!apply:`, `!include:`, yaml's `!!python/...`
    tags and anything else are refused with the line that has them, unless `trust_code`. Names of
    `MOVED_NAMES` are rewritten to their new homes first.

    Arguments
    ---------
    text : str
    where : str
        How the messages name the file.
    trust_code : bool
        Skip the check (the user trusts the folder).

    Returns
    -------
    str
        The text, with moved names rewritten.

    Raises
    ------
    UntrustedYamlError
        Naming the line and the tag.

    Example
    -------
    >>> check_inference_yaml("a: !new:torch.nn.Linear [2, 3]", "x.yaml")
    'a: !new:torch.nn.Linear [2, 3]'
    >>> check_inference_yaml("a: !apply:os.system [ls]", "x.yaml")
    Traceback (most recent call last):
    ...
    recipes.interpreters.inference.UntrustedYamlError: x.yaml line 1 has `!apply:os.system`: ...
    >>> check_inference_yaml("a: !!python/object/apply:os.system [ls]", "x.yaml")
    Traceback (most recent call last):
    ...
    recipes.interpreters.inference.UntrustedYamlError: x.yaml line 1 has the yaml tag `tag:yaml.org,2002:python/object/apply:os.system`: ...
    """
    for old, new in MOVED_NAMES.items():
        text = re.sub(r"(!(?:new|name):)" + re.escape(old), lambda m, new=new: m.group(1) + new, text)
    if trust_code:
        return text
    try:
        root = YAML().compose(text)
    except YAMLError as error:
        raise ValueError(f"{where} is not valid yaml ({error}): export the training run again.") from error
    stack, seen = ([root] if root is not None else []), set()
    while stack:
        node = stack.pop()
        if id(node) in seen:  # an alias (*name): its anchor's node again
            raise UntrustedYamlError(
                f"{where}: a yaml alias (*{node.anchor}) repeats the value anchored on line "
                f"{node.start_mark.line + 1}. An export writes none, and a few nested aliases make a small yaml "
                "expand without bound, so nothing of it was run. If you trust where the folder comes "
                "from, pass trust_code=True (audio-interpret --trust_code)."
            )
        seen.add(id(node))
        tag = node.tag if isinstance(node.tag, str) else node.tag.value
        if isinstance(node.value, str) and _ATTRIBUTE_REFERENCE.search(node.value):
            raise UntrustedYamlError(
                f"{where} line {node.start_mark.line + 1} has "
                f"`{_ATTRIBUTE_REFERENCE.search(node.value).group(0)}`: a reference to an attribute "
                "of a built object (hyperpyyaml reads it as !apply:getattr), which can reach code "
                "(a method that deletes or writes a file), so nothing of it was run. An inference "
                "folder refers to keys only. If you trust where the folder comes from, pass "
                "trust_code=True (audio-interpret --trust_code)."
            )
        # a `(a, b)` value, or any text tagged `!tuple` (read as a list of text[1:-1] all the same)
        is_tuple = isinstance(node.value, str) and (tag == "!tuple" or _TUPLE_VALUE.match(node.value))
        if is_tuple and _tuple_tag(node.value):
            raise UntrustedYamlError(
                f"{where} line {node.start_mark.line + 1} has a tuple holding the yaml tag "
                f"`{_tuple_tag(node.value)}` (hyperpyyaml reads a tuple's items with PyYAML's Loader, "
                "which builds code), so nothing of it was run: a tuple holds plain values. If you "
                "trust where the folder comes from, pass trust_code=True (audio-interpret --trust_code)."
            )
        if tag and not tag.startswith("!") and tag not in CORE_TAGS:
            raise UntrustedYamlError(
                f"{where} line {node.start_mark.line + 1} has the yaml tag `{tag}`: an inference "
                "folder may only hold plain yaml values and the classes its export writes, so "
                "nothing of it was run. If you trust where the folder comes from, pass "
                "trust_code=True (audio-interpret --trust_code)."
            )
        if tag and tag.startswith("!") and tag not in PLAIN_TAGS:
            kind, _, target = tag[1:].partition(":")
            if kind in ("new", "name") and target.split(".")[0] in TRUSTED_MODULES and _trusted_object(target) is None:
                raise ValueError(
                    f"{where} line {node.start_mark.line + 1} has `{tag}`, which names nothing in "
                    f"{target.split('.')[0]}: the yaml is truncated or was edited. Export the training "
                    "run again (recipes/train_*.py), or copy its whole inference folder again."
                )
            has_args = not (isinstance(node.value, str) and node.value == "")  # `{}` / `[]` count too
            if kind not in ("new", "name") or not _trusted_target(target, kind, has_args):
                raise UntrustedYamlError(
                    f"{where} line {node.start_mark.line + 1} has `{tag}`: an inference folder "
                    f"may only build classes of {', '.join(TRUSTED_MODULES)} and of torch's and "
                    "SpeechBrain's layers and features (what the export writes: torch Modules, the label "
                    "encoder, the Pretrainer, the interpreter class without arguments), so nothing of it "
                    "was run. If you trust where the folder comes "
                    "from, pass trust_code=True (audio-interpret --trust_code)."
                )
        if isinstance(node.value, list):
            for item in node.value:
                stack.extend(item if isinstance(item, tuple) else (item,))
    if root is not None:
        name, size = max(_resolved_sizes(root).items(), key=lambda item: item[1], default=(None, 0))
        if size > MAX_TEXT_BYTES:
            raise UntrustedYamlError(
                f"{where}: its key {name} holds about {size} characters once its references (<key>) "
                f"are resolved, more than the {MAX_TEXT_BYTES} of any yaml an export writes (references "
                "that repeat each other grow a small yaml without bound), so nothing of it was run. "
                "If you trust where the folder comes from, pass trust_code=True (audio-interpret --trust_code)."
            )
    return text


def claim_savedir(savedir, source):
    """Make `savedir` the collection folder of `source` (an inference folder or hub id) only.

    SpeechBrain's `fetch` returns a file that a savedir already holds under the
    same name (`hyperparams.yaml`, `psi_model.ckpt`, ...), a link or a copy,
    without looking where it came from: a savedir that collected one
    interpreter would silently load it again when given another one. The
    first call writes `SAVEDIR_SOURCE_FILE` in the savedir; a later call for
    another source, or a savedir that already holds files without that
    record, is refused.

    Arguments
    ---------
    savedir : str or Path
    source : str
        The absolute inference folder, or the hub id.

    Raises
    ------
    ValueError
        The savedir holds another source's files, or files of unknown origin.

    Example
    -------
    >>> folder = tempfile.mkdtemp()
    >>> claim_savedir(folder, "/runs/piq/inference"); claim_savedir(folder, "/runs/piq/inference")
    >>> claim_savedir(folder, "/runs/l2i/inference")
    Traceback (most recent call last):
    ...
    ValueError: savedir ... holds the files of /runs/piq/inference, not of /runs/l2i/inference: ...
    >>> shutil.rmtree(folder)
    >>> folder = tempfile.mkdtemp()  # another process of the run writing the record now
    >>> open(os.path.join(folder, f".{SAVEDIR_SOURCE_FILE}.partial"), "w").close()
    >>> claim_savedir(folder, "/runs/piq/inference"); shutil.rmtree(folder)
    """
    folder = Path(savedir)
    record = folder / SAVEDIR_SOURCE_FILE
    if record.is_file():
        previous = record.read_text(encoding="utf-8").strip()
        if previous == str(source):
            return
        raise ValueError(
            f"savedir {folder} holds the files of {previous}, not of {source}: SpeechBrain's fetch "
            "would load them instead. Give each interpreter its own savedir, or delete this one."
        )
    # another process of the same run (torchrun) may be writing the record right now
    # (`write_text` writes `.interpreter_source.txt.partial`, then renames it)
    if folder.is_dir() and any(
        not entry.name.lstrip(".").startswith(SAVEDIR_SOURCE_FILE) for entry in folder.iterdir()
    ):
        raise ValueError(
            f"savedir {folder} already holds files and no {SAVEDIR_SOURCE_FILE} naming the "
            f"interpreter they belong to: SpeechBrain's fetch would load any file of the same name "
            f"from there instead of {source}'s. Give an empty or new folder."
        )
    folder.mkdir(parents=True, exist_ok=True)
    write_text(f"{source}\n", record)


class AudioInterpreter(Pretrained):
    """A trained interpreter (L2I, PIQ or L-MAC) and its frozen classifier, for inference.

    Load it with `from_hparams` on an exported inference folder (or a hub id);
    the yaml's `interpreter_class` is the recipe's Brain, which does the work
    (preprocess -> classify -> interpret -> apply_mask -> interpretation_audio),
    so the results are eval.py's. Runs where `run_opts={"device": ...}` says;
    tensors come back on that device.

    Arguments
    ---------
    modules, hparams, run_opts, freeze_params
        As `Pretrained`; `from_hparams` gives them.

    Example
    -------
    >>> interpreter = AudioInterpreter.from_hparams(source="results/piq/1234/inference")  # doctest: +SKIP
    >>> interpreter.interpret_file("clip.ogg")["class"]  # doctest: +SKIP
    'dog'
    """

    HPARAMS_NEEDED = ["interpreter_class", "label_encoder", "pretrainer", "sample_rate", "signal_length_s"]

    def __init__(self, modules=None, hparams=None, run_opts=None, freeze_params=True):
        # frozen below, once the Brain is built (it reports the parameters it is given)
        super().__init__(modules=modules, hparams=hparams, run_opts=run_opts, freeze_params=False)
        self.method = hparams["interpreter_class"].__name__
        self.label_encoder = hparams["label_encoder"]
        n_classes = hparams.get("out_n_neurons", len(self.label_encoder))
        if len(self.label_encoder) != n_classes:
            raise ValueError(
                f"The label encoder has {len(self.label_encoder)} classes but the classifier "
                f"{n_classes}: the folder's {LABEL_ENCODER_FILE} is missing or from another run."
            )
        missing = [key for key in inference_spec(hparams["interpreter_class"])["keys"] if key not in hparams]
        if missing:  # a folder exported before the key existed
            added = {"relevance_centered": "False keeps the reference relevance it was made with"}
            hints = "; ".join(f"{key}: {added[key]}" for key in missing if key in added)
            raise ValueError(
                f"The {self.method} inference yaml has no {', '.join(missing)}: it was exported by an "
                "older version of recipes/interpreters/inference.py. Add the key(s) to its "
                f"{HPARAMS_FILE}{f' ({hints})' if hints else ''}, or export the training run again."
            )
        brain_hparams = dict(hparams)
        for name, path_key in inference_spec(hparams["interpreter_class"])["frozen"].items():
            brain_hparams[path_key] = str(hparams["pretrainer"].paths[name])  # the fetched copy
        self.brain = build_brain(
            hparams["interpreter_class"],
            brain_hparams,
            {**_overridden(run_opts), "device": self.device},
            train=False,
            label_encoder=self.label_encoder,
        )
        if freeze_params:
            self.mods.eval()
            for parameter in self.mods.parameters():
                parameter.requires_grad_(False)
        self.sample_rate = int(hparams["sample_rate"])
        self.n_samples = int(round(self.sample_rate * hparams["signal_length_s"]))

    @classmethod
    def from_hparams(
        cls,
        source,
        hparams_file=HPARAMS_FILE,
        savedir=None,
        overrides=None,
        trust_code=False,
        fetch_config=None,
        local_strategy=LocalStrategy.SYMLINK,
        **kwargs,
    ):
        """Loads an exported inference folder, or a hub model of the same layout.

        The folder is data: before anything in its yaml is built, every tag
        is checked (`check_inference_yaml`): it may build classes of this
        project, SpeechBrain and torch, and nothing else, unless `trust_code`.
        Names an older version of this project wrote (e.g.
        `recipes.train_piq.PIQ`, `recipes.brains.load_state_dict_strict`) are
        read as their new homes.

        Arguments
        ---------
        source : str or Path
            The inference folder (`<output_folder>/inference`; the training
            output folder itself also works) or a hub id "owner/name".
        hparams_file : str
        savedir : str or Path, optional
            Where to collect the files (links for a folder, copies from the
            hub); by default a folder is read in place and the hub cache is used.
            One savedir per interpreter (`claim_savedir`): a savedir that holds
            another interpreter's files is refused, as SpeechBrain's fetch would
            load those; a folder's files are collected again on every load.
        overrides : dict, optional
            Yaml overrides; one that contradicts a trained setting of the
            yaml (sizes, signal, STFT, thresholds) is refused.
        trust_code : bool
            Build whatever the yaml names (as SpeechBrain's `from_hparams`
            does): only for a folder from a source you trust.
        fetch_config : speechbrain.utils.fetching.FetchConfig, optional
        local_strategy : speechbrain.utils.fetching.LocalStrategy
        **kwargs
            For the constructor (`run_opts={"device": "cuda:0"}`, `freeze_params`).

        Raises
        ------
        FileNotFoundError
            No such folder, or the hub id cannot be fetched (offline): the
            message names the local folder to give instead.
        UntrustedYamlError
            The yaml names something else than what an export writes.
        ValueError
            `savedir` holds another interpreter's files (`claim_savedir`), or the
            yaml is not a complete inference yaml.
        """
        source = resolve_source(source, hparams_file)
        hub = _is_hub_id(source)
        if not hub:
            source = os.path.abspath(source)
        fetch_config = fetch_config or FetchConfig()
        in_place = savedir is not None and not hub and Path(savedir).resolve() == Path(source).resolve()
        if savedir is not None and not in_place:
            claim_savedir(savedir, source)
            if not hub:  # the savedir is this folder's: link (or copy) its files again, not a stale copy
                fetch_config = replace(fetch_config, overwrite=True)
        try:  # the yaml first: without a network this is where a hub id fails
            yaml_path = fetch(
                hparams_file, source=source, savedir=savedir, local_strategy=local_strategy, fetch_config=fetch_config
            )
        except Exception as error:  # huggingface_hub and requests raise many kinds
            if hub:
                raise _hub_error(source, error) from error
            raise
        check_readable_file(yaml_path, hparams_file, source, MAX_TEXT_BYTES)
        with open(yaml_path, encoding="utf-8") as fin:
            text = check_inference_yaml(fin.read(), str(yaml_path), trust_code=trust_code)
        given = {}
        if overrides:  # a size or threshold the interpreter was trained with cannot be changed
            given = overrides if isinstance(overrides, dict) else YAML(typ="safe", pure=True).load(overrides) or {}
            if not isinstance(given, dict):
                raise ValueError(f"overrides {overrides!r}: give a dict, or yaml text of key: value lines.")
            refuse_contradictions(given, _settings_of(text), str(yaml_path), command_line=False)
            keys = set(YAML(typ="rt", pure=True).load(text) or {})  # the yaml's top-level keys
            unknown = sorted(key for key in given if key not in keys)
            if unknown:
                hint = ' ("device" goes in run_opts={"device": ...})' if "device" in unknown else ""
                near = {key: difflib.get_close_matches(key, sorted(keys), n=1) for key in unknown}
                said = ", ".join(f"{key}" + (f" (did you mean {near[key][0]}?)" if near[key] else "") for key in unknown)
                raise ValueError(f"overrides {said}: {yaml_path} has no such key{hint}.")
        try:
            hparams = load_yaml(text, {"pretrained_path": source, **given}, data=not trust_code)
        except (KeyError, AttributeError, ImportError, TypeError, ValueError, YAMLError) as error:
            raise ValueError(
                f"{yaml_path} is not a complete inference yaml ({type(error).__name__}: {error}): "
                "export the training run again (recipes/train_*.py), or give the run's "
                f"<output_folder>/{INFERENCE_FOLDER} folder."
            ) from error
        missing = [key for key in cls.HPARAMS_NEEDED if key not in hparams]
        if missing:
            raise ValueError(
                f"{yaml_path} has no {', '.join(missing)}: it is not a complete inference yaml; "
                "export the training run again."
            )
        hparams["savedir"] = savedir
        if not trust_code:  # a folder trusted builds whatever it names, reads what it says
            _check_loaded(hparams, given, source, str(yaml_path))
        pretrainer = hparams["pretrainer"]
        unchecked = [name for name in pretrainer.paths if name != "label_encoder" and name not in pretrainer.custom_hooks]
        if unchecked:  # the export loads every checkpoint strictly: a yaml cut short does not
            raise ValueError(
                f"{yaml_path} loads {', '.join(unchecked)} without the strict check the export "
                "writes (custom_hooks): the yaml is truncated or was edited; export the training run again."
            )
        pretrainer.set_collect_in(savedir)
        try:
            collected = pretrainer.collect_files(
                default_source=source, local_strategy=local_strategy, fetch_config=fetch_config
            )
            for name, path in collected.items():  # data: plain files, the text ones small
                check_readable_file(path, name, source, MAX_TEXT_BYTES if name == "label_encoder" else None)
            pretrainer.load_collected()
        except FileNotFoundError as error:
            if hub:
                raise _hub_error(source, error) from error
            raise FileNotFoundError(
                f"{source} lacks a file its {hparams_file} names ({error}): copy the whole inference "
                "folder, or export the training run again if its yaml was cut short."
            ) from error
        return cls(modules=hparams["modules"], hparams=hparams, **kwargs)

    # ------------------------------------------------------------------ input
    def load_audio(self, path, n_samples=None, warnings=None):
        """A file as the classifier hears it before cropping: mono at its sample rate, (T,).

        Any format soundfile reads (wav, flac, ogg, mp3, ...); channels are
        averaged and the sample rate converted as for the training clips. Only
        its first `n_samples` are read when given; `warnings` receives the
        sentence about NaN / infinite samples (`data_prep.audio.read_audio`).

        Raises
        ------
        FileNotFoundError
            `path` is not a file.
        ValueError
            soundfile cannot read it, or it holds no sample.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist (or is not a file): give an audio file.")
        return read_user_file(path, self.sample_rate, n_samples=n_samples, warnings=warnings)  # eval's reader

    @staticmethod
    def _finite_samples(wavs, names, wav_lens=None):
        """`wavs` (B, T) with NaN / infinite samples as 0, and the warnings (logged) of the clips
        that had some, as a file's are read (`data_prep.audio.check_finite`); a clip with no
        finite sample in its length is refused (NaN would otherwise peak-normalise it to
        silence, or an infinite sample make its probabilities and interpretation NaN)."""
        finite = torch.isfinite(wavs)
        if bool(finite.all()):
            return wavs, []
        valid = torch.ones_like(finite)
        if wav_lens is not None:
            n_valid = (torch.as_tensor(wav_lens, device=wavs.device).float() * wavs.shape[1]).round().long()
            valid = torch.arange(wavs.shape[1], device=wavs.device) < n_valid[:, None]
        warnings = []
        for i in (~finite & valid).any(dim=1).nonzero().flatten().tolist():
            check_finite(names[i], int((~finite[i] & valid[i]).sum()), int(valid[i].sum()), warnings)
        return torch.nan_to_num(wavs, nan=0.0, posinf=0.0, neginf=0.0), warnings

    def prepare_batch(self, wavs, wav_lens=None, sample_rate=None, names=None, longer=None):
        """Clips as the classifier was trained on: (B, n_samples), and warnings.

        Arguments
        ---------
        wavs : torch.Tensor
            (T,), (B, T) or (B, T, C) (channels averaged). A (B, T) of more rows than
            samples, at most MAX_CHANNELS samples each, is refused: it reads as
            soundfile's (frames, channels) layout of one recording.
        wav_lens : torch.Tensor, optional
            (B,) relative lengths in [0, 1] (SpeechBrain's convention); the rest
            of each row is padding.
        sample_rate : int, optional
            The rate of `wavs` when it is not the interpreter's.
        names : list of str, optional
            How the warnings name the clips (default "clip <i>").
        longer : list of bool, optional
            Whether each clip is the start of a longer recording (a silent one is then
            "the first ... s of" it, not the recording).

        Returns
        -------
        clips : torch.Tensor
            (B, n_samples), each clip zero-padded or cropped (its start kept) and
            peak-normalised, on the interpreter's device.
        warnings : list of str
            A sentence per cropped or silent clip (also logged).
        """
        wavs = torch.as_tensor(wavs, dtype=torch.float32)
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        elif wavs.dim() == 3:
            wavs = wavs.mean(dim=-1)  # (B, T, C) -> (B, T)
        elif wavs.dim() != 2:
            raise ValueError(f"wavs of shape {tuple(wavs.shape)}: give (T,), (B, T) or (B, T, C).")
        elif wavs.shape[0] > wavs.shape[1] and wavs.shape[1] <= MAX_CHANNELS:
            raise ValueError(
                f"wavs of shape {tuple(wavs.shape)}: {wavs.shape[0]} clips of {wavs.shape[1]} samples each, "
                "which reads as soundfile's (frames, channels) layout of one recording. Give it as "
                "(1, T, C) (x[None]) or downmixed to (T,) (x.mean(axis=1))."
            )
        names = names or [f"clip {i}" for i in range(wavs.shape[0])]
        wavs, finite_warnings = self._finite_samples(wavs.to(self.device), names, wav_lens)
        if sample_rate is not None and sample_rate != self.sample_rate:
            wavs = torchaudio.functional.resample(wavs, sample_rate, self.sample_rate)
        batch, length = wavs.shape
        if wav_lens is None:
            lengths = torch.full((batch,), length, device=wavs.device)
        else:
            lengths = (torch.as_tensor(wav_lens, device=wavs.device).float() * length).round().long()
            wavs = wavs * (torch.arange(length, device=wavs.device) < lengths[:, None])  # padding to 0
        kept = pad_or_crop(wavs, self.n_samples)
        peaks = kept.abs().amax(dim=1).tolist()
        clips = peak_normalise(kept)  # (B, n_samples), as load_clip
        warnings = [
            self._crop_warning(names[i], lengths[i].item())
            for i in (lengths > self.n_samples).nonzero().flatten().tolist()
        ]
        warnings += [warning for name, peak in zip(names, peaks) if (warning := quiet_warning(name, peak))]
        clip_s = self.n_samples / self.sample_rate
        warnings += [
            silent_warning(names[i], first_s=clip_s if longer and longer[i] else None)
            for i in (clips.abs().amax(dim=1) <= EPS).nonzero().flatten().tolist()
        ]
        for warning in warnings:
            logger.warning(warning)
        return clips, finite_warnings + warnings  # those of non-finite samples logged already

    def _crop_warning(self, name, length):
        """The sentence about a clip of `length` samples cropped to the clip length of training."""
        clip_s = self.n_samples / self.sample_rate
        return (
            f"{name} is {length / self.sample_rate:g} s long but the interpreter takes clips of "
            f"signal_length_s = {clip_s:g} s: only its first {clip_s:g} s is explained (cropped "
            "as in training)."
        )

    # ------------------------------------------------------------------ interpretation
    def _outputs(self, outputs, clips, warnings):
        classes = outputs["classes"]
        probs = outputs["probs"]
        result = {
            "class": [self.brain.class_name(c) for c in classes.tolist()],
            "class_index": classes,
            "probability": probs.gather(1, classes[:, None]).squeeze(1),
            "probs": probs,
            "mask": outputs["mask"],
            "interpretation": outputs["audio"],
            "input": clips,
            "X": outputs["X"],
            "X_int": outputs["X_int"],
            "sample_rate": self.sample_rate,
            "warnings": warnings,
        }
        if "relevance" in outputs:  # L2I: each NMF component's relevance and whether it is kept
            result.update(relevance=outputs["relevance"], selected=outputs["selected"])
        if "keep_class_step" in outputs:  # keep_class: 0 its own mask, k the k-th wider, -1 none kept
            result["keep_class_step"] = outputs["keep_class_step"]
        return result

    def interpret_batch(self, wavs, wav_lens=None, sample_rate=None):
        """Classifies and explains a batch of waveforms.

        Arguments
        ---------
        wavs, wav_lens, sample_rate
            See `prepare_batch` (the interpreter's sample rate by default).

        Returns
        -------
        dict
            "class" (B names), "class_index" (B,), "probability" (B,), "probs"
            (B, N), "mask" (B, frames, F), "interpretation" (B, n_samples) the
            interpretation waveform, "input" (B, n_samples) the clips as
            classified, "X" / "X_int" (B, frames, F), "sample_rate", "warnings";
            for L2I also "relevance" and "selected" (B, K); with `keep_class` also
            "keep_class_step" (B,): 0 where the interpreter's own mask keeps the class,
            k > 0 where the k-th wider mask was the first that did, -1 where none did.
        """
        clips, warnings = self.prepare_batch(wavs, wav_lens, sample_rate)
        return self._outputs(self.brain.explain(clips), clips, warnings)

    def interpret_file(self, path):
        """Classifies and explains one audio file (as `eval.py --single_sample` does).

        Returns
        -------
        dict
            As `interpret_batch` for the one clip, without the batch dimension
            ("class" a name, "probability" a float, "mask" (frames, F),
            "interpretation" (n_samples,) ...), plus "file" and, for L2I,
            "components": [{"component": k, "relevance": r_k, "waveform": (n_samples,)}]
            for each relevant NMF component.

        Raises
        ------
        FileNotFoundError, ValueError
            As `load_audio`.
        """
        path = os.fspath(path)
        warnings = []  # NaN / infinite samples, then a crop, then silence
        sig = self.load_audio(path, n_samples=self.n_samples, warnings=warnings)  # only what is explained
        length = audio_length(path, self.sample_rate)
        if length > self.n_samples:
            warnings.append(self._crop_warning(path, length))
            logger.warning(warnings[-1])
        clips, clip_warnings = self.prepare_batch(sig, names=[path], longer=[length > self.n_samples])
        warnings += clip_warnings
        components = None
        if hasattr(self.brain, "component_audio"):  # L2I: the audio of each relevant component
            components, outputs = self.brain.component_audio(clips[0])
        else:
            outputs = self.brain.explain(clips)
        batch = self._outputs(outputs, clips, warnings)
        result = {key: value[0] if key not in ("sample_rate", "warnings") else value for key, value in batch.items()}
        result["probability"] = float(result["probability"])
        result["class_index"] = int(result["class_index"])
        if "keep_class_step" in result:
            result["keep_class_step"] = int(result["keep_class_step"])
        result["file"] = path
        if components is not None:
            result["components"] = [
                {"component": k, "relevance": relevance, "waveform": audio} for k, relevance, audio in components
            ]
        return result

    def forward(self, wavs, wav_lens=None):
        """`interpret_batch(wavs, wav_lens)`."""
        return self.interpret_batch(wavs, wav_lens)


def _check_loaded(hparams, given, source, where):
    """What the loaded yaml would do besides loading its folder, refused before it is done: a
    setting of FIXED (or the class's `inference_fixed`) the yaml changes (`add_wham_noise`
    downloads WHAM! noise into the yaml's `wham_folder`, `use_tensorboard` writes logs, ...), a
    file read from outside the folder (`<pretrained_path>/../x`, an absolute path), a
    checkpoint loaded without `load_state_dict_strict` (SpeechBrain's default hook: torch.load
    without weights_only) or a Pretrainer `conditions` (a checkpoint left unloaded)."""
    brain_class = hparams.get("interpreter_class")
    fixed = {**FIXED, **(inference_spec(brain_class)["fixed"] if inspect.isclass(brain_class) else {})}
    for key, value in fixed.items():
        if key in hparams and key not in given and not same_setting(hparams[key], value):
            raise UntrustedYamlError(
                f"{where} sets {key}: {hparams[key]!r}, which an inference folder loads as {value} "
                "(it would make the Brain read or write files the yaml names): nothing of it was run. "
                "Export the training run again, or set it in `overrides` if you mean it."
            )
    pretrainer = hparams["pretrainer"]
    if getattr(pretrainer, "conditions", None):
        raise UntrustedYamlError(
            f"{where}: its Pretrainer has conditions ({', '.join(pretrainer.conditions)}), which would "
            "leave checkpoints unloaded (or call what the yaml gives): an export writes none. Export the "
            "training run again."
        )
    for name, path in pretrainer.paths.items():
        if os.path.dirname(str(path)) != str(source) or os.path.basename(str(path)) in ("", ".", ".."):
            raise UntrustedYamlError(
                f"{where} reads {name} from {path}, outside the folder it is loaded from ({source}): "
                "an inference folder's files are its own (<pretrained_path>/FILE), so nothing was read."
            )
    for name, loadable in pretrainer.loadables.items():
        hook = pretrainer.custom_hooks.get(name)
        if name == "label_encoder" and hook is None:
            ok = loadable is hparams["label_encoder"]
        else:
            ok = getattr(hook, "func", hook) is load_state_dict_strict
        if not ok:
            raise UntrustedYamlError(
                f"{where} loads {name} otherwise than an export does (each checkpoint with "
                "recipes.core.brains.load_state_dict_strict, the label_encoder into the yaml's "
                "label_encoder): SpeechBrain's default hooks read a checkpoint without "
                "weights_only=True. Export the training run again."
            )


def _overridden(run_opts):
    """The options a user gave (dict or RunOptions), for the Brain."""
    if run_opts is None:
        return {}
    if isinstance(run_opts, RunOptions):
        return {key: run_opts[key] for key in run_opts.overridden_args}
    return dict(run_opts)
