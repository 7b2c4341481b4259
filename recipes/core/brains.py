"""Building the recipes' Brains: one builder, DDP that works on CPU, frozen modules.

- `build_brain`: the one place a recipe's Brain is made from its loaded yaml
  (modules, optimiser and checkpointer for training; none of those for
  evaluation). For training it refuses fewer than 1 epoch and moves aside the
  checkpoints a killed run left incomplete (`recipes.core.run_guard`), and
  checkpoints the random generators (`RandomState`) so that a resumed run draws
  what the uninterrupted one would have drawn.
- `OneLinePerEpoch`: a Brain mixin that keeps a resumed run's train log to one
  line per epoch.
- `CPUFriendlyDDP`: a Brain mixin for multi-process training on CPU.
- `check_device`: a `--device` torch does not know, or a GPU this machine
  does not have, refused before any set-up.
- `load_pretrained_backbone`: `--pretrained_backbone` (from_pretrained weights).
- `load_state_dict_file`, `load_pretrained`, `freeze`: checkpoints in, with
  `weights_only=True`, strict key checks and errors that say what to do.

Authors
 * audio-interpret contributors 2026
"""

import os
import pickle
import random
import zipfile

import numpy as np
import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain.utils.fetching import FetchConfig
from speechbrain.utils.logger import get_logger

from recipes.core.run_guard import (
    TRAINING_RECOVERABLES,
    quarantine_incomplete_checkpoints,
    trim_train_log,
)

logger = get_logger(__name__)

#: The checkpoint file (`random_state.ckpt`) of the random generators' states (`RandomState`).
RANDOM_STATE_RECOVERABLE = "random_state"


def build_brain(brain_class, hparams, run_opts, train=True, **kwargs):
    """The Brain `brain_class` made from a loaded yaml.

    Arguments
    ---------
    brain_class : type
        A `speechbrain.core.Brain` subclass.
    hparams : dict
        The loaded yaml: `modules`, and for training `opt_class` and `checkpointer`.
    run_opts : dict
        From `recipes.core.startup.prepare_run`.
    train : bool
        False builds it for evaluation only: no optimiser, no checkpointer (the
        weights come from exported files).
    **kwargs
        Passed on (e.g. `label_encoder` for the interpreters).
    """
    if train:
        limit = hparams["epoch_counter"].limit
        if limit < 1:
            raise ValueError(
                f"--number_of_epochs {limit}: a training run needs at least 1 epoch. To score "
                "an interpreter checkpoint without training it, use recipes/eval.py "
                "--pretrained_interpreter PATH."
            )
        # a run killed while writing a checkpoint must not be resumed from it
        run_on_main(
            quarantine_incomplete_checkpoints,
            args=[hparams["checkpointer"], TRAINING_RECOVERABLES],
        )
        # registered after the check, and optional: a checkpoint written before it existed
        # still resumes (SpeechBrain warns that it lacks random_state.ckpt)
        checkpointer = hparams["checkpointer"]
        if checkpointer is not None and RANDOM_STATE_RECOVERABLE not in checkpointer.recoverables:
            checkpointer.add_recoverable(RANDOM_STATE_RECOVERABLE, RandomState(), optional_load=True)
    return brain_class(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"] if train else None,
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"] if train else None,
        **kwargs,
    )


class OneLinePerEpoch:
    """Brain mixin: once `fit` has recovered the newest checkpoint (SpeechBrain's
    `on_fit_start`), the yaml's `train_logger` file keeps each epoch once
    (`recipes.core.run_guard.trim_train_log`; main process only)."""

    def on_fit_start(self):
        super().on_fit_start()
        save_file = getattr(getattr(self.hparams, "train_logger", None), "save_file", None)
        if save_file is not None and if_main_process():
            trim_train_log(save_file, self.hparams.epoch_counter.current)


@register_checkpoint_hooks
class RandomState:
    """The global random generators (torch CPU and CUDA, numpy, Python's `random`) as a
    checkpoint recoverable.

    SpeechBrain checkpoints the epoch counter, the optimiser and the sampler's epoch, not the
    generators: a run resumed from epoch n drew its augmentation (AddNoise's SNRs, RandAmp's
    gains, SpectrogramDrop's bands, WHAM! crops) from the generators as seeded at start-up,
    not as the uninterrupted run had left them after epoch n. Loaded with the checkpoint, they
    are. Under torchrun every process starts from the same seed (`seed_everything`) and the
    main process's states are the ones saved.

    Example
    -------
    >>> import tempfile
    >>> state = RandomState()
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "random_state.ckpt")
    ...     state.save(path)
    ...     drawn = (torch.rand(2), np.random.rand(), random.random())
    ...     state.load(path)
    ...     again = (torch.rand(2), np.random.rand(), random.random())
    >>> torch.equal(drawn[0], again[0]), drawn[1:] == again[1:]
    (True, True)
    """

    @staticmethod
    def current():
        """The generators' states now: a dict of tensors, numbers and lists (weights_only loads it)."""
        version, mt_state, gauss = random.getstate()
        name, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": [version, list(mt_state), gauss],
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        }

    @staticmethod
    def restore(state):
        """Sets the generators to `state` (from `current`)."""
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        version, mt_state, gauss = state["python"]
        random.setstate((version, tuple(mt_state), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))

    @mark_as_saver
    def save(self, path):
        torch.save(self.current(), path)

    @mark_as_loader
    def load(self, path, end_of_epoch=True):
        self.restore(torch.load(path, map_location="cpu", weights_only=True))


def check_device(device, flag="--device"):
    """The device string, checked: a ValueError naming `flag` when torch cannot run there.

    Example
    -------
    >>> check_device("cpu")
    'cpu'
    >>> check_device("bogus")
    Traceback (most recent call last):
    ...
    ValueError: --device bogus is not a device torch knows: give cpu, cuda or cuda:N (a GPU's index).
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"{flag} {device} is not a device torch knows: give cpu, cuda or cuda:N (a GPU's index)."
        ) from error
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{flag} {device}: torch sees no GPU on this machine; give {flag} cpu (or leave it out).")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"{flag} {device}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}.")
    return device


class CPUFriendlyDDP:
    """Brain mixin: multi-process training that also works on CPU.

    SpeechBrain 1.1.2 converts every BatchNorm to SyncBatchNorm before wrapping a
    module in DDP, and SyncBatchNorm refuses CPU modules ("SyncBatchNorm layers
    only work with GPU modules"). On CPU (gloo) the modules are wrapped in DDP
    as they are, each process keeping its own BatchNorm statistics; on GPU the
    SpeechBrain behaviour, SyncBatchNorm included, is unchanged.
    """

    def _wrap_distributed(self):
        if self.distributed_launch and self.opt_class is None:
            return  # evaluation only (build_brain(train=False)): nothing to synchronise
        if not self.distributed_launch or torch.device(self.device).type != "cpu":
            return super()._wrap_distributed()
        from torch.nn.parallel import DistributedDataParallel

        for name, module in self.modules.items():
            if any(p.requires_grad for p in module.parameters()):
                self.modules[name] = DistributedDataParallel(
                    module, device_ids=None, find_unused_parameters=self.find_unused_parameters
                )


def load_state_dict_file(path, what):
    """Loads a plain state dict with `weights_only=True` and a clear error.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = open(os.path.join(folder, "nmf_decoder.ckpt"), "wb").close()
    ...     load_state_dict_file(folder, "NMF dictionary")
    Traceback (most recent call last):
    ...
    IsADirectoryError: NMF dictionary checkpoint ... is a folder: give the checkpoint file in it (nmf_decoder.ckpt).
    """
    if os.path.isdir(path):
        inside = sorted(name for name in os.listdir(path) if name.endswith(".ckpt"))
        raise IsADirectoryError(
            f"{what} checkpoint {path} is a folder: give the checkpoint file in it "
            f"({', '.join(inside) if inside else 'it holds no .ckpt file'})."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{what} checkpoint not found: {path}. Train it first (see README) or pass "
            "the right path on the command line."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # weights_only refuses pickled objects
        raise ValueError(
            f"{what} checkpoint {path} holds more than tensors, which weights_only=True refuses "
            f"({error}); export a plain state dict (torch.save(module.state_dict(), path))."
        ) from error
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{what} checkpoint {path} cannot be read: it is truncated or not a torch checkpoint "
            f"({type(error).__name__}: {error}). Copy it again, or train / export it anew."
        ) from error
    if not isinstance(state, dict):
        raise ValueError(
            f"{what} checkpoint {path} is not a state dict (it holds a {type(state).__name__}); "
            "export one with torch.save(module.state_dict(), path)."
        )
    return state


def load_state_dict_strict(module, path, what):
    """`load_state_dict_file` into `module` (strict), with an error naming the file on mismatch."""
    state = load_state_dict_file(path, what)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"{what} at {path} does not fit the module the yaml builds (other sizes or another "
            f"model; give the yaml the sizes it was trained with): {error}"
        ) from error
    return module


def load_pretrained(pretrainer, paths, what="classifier"):
    """Collects and loads pretrained modules, strictly and with weights_only=True.

    Local paths are used as they are; anything that is not a local file is
    fetched through SpeechBrain's hub machinery (real download when online), and
    a failure says which file is missing and how to produce it.
    """
    missing_local = {
        name: path for name, path in paths.items() if not _hub_id(path) and not os.path.exists(str(path))
    }
    if missing_local:
        names = ", ".join(f"{name}: {path}" for name, path in missing_local.items())
        raise FileNotFoundError(
            f"Pretrained {what} file(s) not found ({names}). Train them first "
            "(python recipes/train_classifier.py hparams/classifier_conv2d.yaml --data_folder DIR, "
            "see README) or point --embedding_model_path/--classifier_model_path at them."
        )

    def strict_hook(name):
        def load(module, path):  # `path` is the collected copy: name the file the user gave
            load_state_dict_strict(module, path, f"{what} {name} (from {paths.get(name, path)})")

        return load

    pretrainer.add_custom_hooks({name: strict_hook(name) for name in pretrainer.loadables})
    try:
        # overwrite: SpeechBrain's fetch otherwise returns the file `collect_in` already holds
        # under the loadable's name, whatever it links to: a run given another classifier in
        # an earlier run's folder loaded the old one, its metrics naming the new one
        run_on_main(pretrainer.collect_files, kwargs={"fetch_config": FetchConfig(overwrite=True)})
    except Exception as error:  # network or hub errors: name the files
        raise RuntimeError(
            f"Could not fetch the pretrained {what} ({dict(paths)}): {error}. Offline? Use local "
            "checkpoints trained by recipes/train_classifier.py."
        ) from error
    pretrainer.load_collected()


def _hub_id(path):
    """True for "owner/repo/file.ckpt" that is not a local file: fetched from the hub.

    A path whose first folder exists here (`results/clf/model.ckpt`, not trained yet) is a
    missing local file, not a hub id.
    """
    path = str(path)
    parts = path.split("/")
    return (
        not os.path.exists(path)
        and len(parts) == 3
        and not path.startswith((".", "/", "~"))
        and not os.path.isdir(parts[0])
    )


def load_pretrained_backbone(embedding_model, source):
    """`--pretrained_backbone SOURCE`: the embedding model starts from `from_pretrained` weights.

    Only the transformer backbones (`models.transformer_backbones`) have them; a
    local folder is read offline, a hub id is fetched (an offline hub id gives an
    error that says to pass a local folder).
    """
    if not hasattr(embedding_model, "load_pretrained_backbone"):
        raise ValueError(
            f"--pretrained_backbone {source}: the yaml's embedding model ({type(embedding_model).__name__}) "
            "has no from_pretrained weights; use a transformer classifier yaml "
            "(hparams/classifier_vit.yaml, classifier_focalnet.yaml, classifier_ast.yaml) or leave the key null."
        )
    embedding_model.load_pretrained_backbone(str(source))
    logger.info("Embedding model initialised from the pretrained backbone %s", source)
    return embedding_model


def freeze(module):
    """Eval mode and no gradients, for good."""
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def fused_for_inference(module):
    """A frozen copy of `module` with every BatchNorm folded into the convolution before it.

    In eval mode BN(conv(x)) is one convolution with rescaled weights and a
    new bias (the same function up to float rounding, ~1e-6), so the copy
    skips the BatchNorm passes: about a quarter of the Conv2d encoder's time
    on CPU. Used where the frozen classifier runs many times without learning
    anything (the deletion / insertion curves). The copy does not follow later
    changes of `module` (e.g. the sanity check's randomisation). A module that
    torch.fx cannot trace (e.g. one whose forward branches on its input's
    shape) is returned as it is.

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)).eval()
    >>> fused = fused_for_inference(net)
    >>> x = torch.rand(1, 1, 5, 5)
    >>> torch.allclose(net(x), fused(x), atol=1e-5), sum(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    (True, 0)
    """
    import copy

    from torch.fx.experimental.optimization import fuse

    try:
        fused = fuse(copy.deepcopy(module).eval())
    except Exception as error:  # torch.fx raises several kinds on untraceable code
        logger.info("%s is not traceable (%s): used without BatchNorm folding", type(module).__name__, error)
        return module
    fused = freeze(fused)
    first = next(fused.parameters(), None)  # None: a module without weights
    if first is None or first.device.type == "cpu":
        fused.to(memory_format=torch.channels_last)
    return fused
