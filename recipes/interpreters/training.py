"""The training flow every interpreter recipe shares: data, Brain, fit, test, export.

`train_interpreter(L2I, argv)` is the body of `recipes/train_l2i.py` (and of
the PIQ and L-MAC scripts): it prepares the data, builds the Brain, fits it,
tests the checkpoint its `best_key` selected, then exports the tested weights
(`psi_model.ckpt`, and `theta.ckpt` for L2I) and the inference folder
(`export_trained`), as Asteroid's recipes end with `model.serialize()`.

Authors
 * audio-interpret contributors 2026
"""

import os

import speechbrain as sb

from recipes.core.brains import build_brain
from recipes.core.startup import prepare_run
from recipes.interpreters.inference import INFERENCE_FOLDER, export_inference


def fit_interpreter(brain, hparams, datasets):
    """The recipes' training loop: train fold, valid fold, the yaml's loader options."""
    brain.fit(
        epoch_counter=hparams["epoch_counter"],
        train_set=datasets["train"],
        valid_set=datasets["valid"],
        train_loader_kwargs=hparams["train_dataloader_opts"],
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )


def train_interpreter(brain_class, argv=None, recipe_file=None):
    """The body of every interpreter recipe: data, Brain, fit, test, export.

    Arguments
    ---------
    brain_class : type
        An InterpreterBrain subclass (L2I, PIQ, LMAC).
    argv : list of str, optional
        `[hparams.yaml, --key, value, ...]`.
    recipe_file : str, optional
        The recipe script, copied into the output folder.

    Returns
    -------
    The trained Brain (its best checkpoint loaded, tested and exported).
    """
    hparams, run_opts, _, _, datasets, label_encoder = prepare_run(argv, recipe_file=recipe_file)
    brain = build_brain(brain_class, hparams, run_opts, label_encoder=label_encoder)
    fit_interpreter(brain, hparams, datasets)
    # the checkpoint `best_key` selected (on_evaluate_start)
    brain.evaluate(datasets["test"], test_loader_kwargs=hparams["test_dataloader_opts"])
    export_trained(brain)
    return brain


def export_trained(brain, folder=None):
    """Exports a trained, tested interpreter: its weights and its inference folder.

    Writes `psi_model.ckpt` (and `theta.ckpt` for L2I), what `eval.py
    --pretrained_interpreter` takes, and `<folder>/inference/`, what
    `AudioInterpreter.from_hparams` takes. Only the main process writes.

    Arguments
    ---------
    brain : recipes.interpreters.base.InterpreterBrain
        Trained and tested (the checkpoint its `best_key` selected is loaded).
    folder : str, optional
        Where to write; the run's output folder by default.

    Returns
    -------
    str or None
        The inference folder (None when not written, see `export_inference`).
    """
    if not sb.utils.distributed.if_main_process():
        return None
    folder = brain.hparams.output_folder if folder is None else folder
    brain.export_interpreter(folder)
    return export_inference(brain, os.path.join(folder, INFERENCE_FOLDER))
