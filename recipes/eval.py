#!/usr/bin/env python3
"""Evaluates a trained interpreter (L2I, PIQ or L-MAC) with baselines, ground truth and a report.

Run from the repository root, with the yaml the interpreter was trained with.
The settings it was trained with (sample rate, signal length, STFT, sizes such
as --emb_dim and --K, thresholds) are read from its run (`<run>/inference/
hyperparams.yaml`, else `<run>/hyperparams.yaml`): an omitted one is taken from
there, not from the yaml's default, and one given with another value is refused,
naming both (`--override_trained relevance_th` lets that key differ on purpose,
e.g. to keep every L2I component):

    python recipes/eval.py hparams/l2i_conv2d.yaml --data_folder DIR \\
        --pretrained_interpreter results/l2i_conv2d/1234/psi_model.ckpt
    python recipes/eval.py hparams/piq.yaml --data_folder DIR \\
        --pretrained_interpreter results/piq/1234 --overlap_type mixtures
    python recipes/eval.py hparams/piq.yaml --data_folder DIR --pretrained_interpreter ... \\
        --overlap_type speech --speech_folder LJSpeech-1.1/wavs
    python recipes/eval.py hparams/l2i_conv2d.yaml --pretrained_interpreter ... --single_sample clip.wav
    python recipes/eval.py hparams/piq.yaml --pretrained_interpreter ... --single_sample long.flac --window

The yaml's `interpreter_class` is the Brain that is built; the interpreter's
weights come from `--pretrained_interpreter` (a `psi_model.ckpt` file or the
folder holding it, with `theta.ckpt` for L2I). Any other `--key value` is a
yaml override, as for the training recipes.

What is evaluated (the test folds, batch by batch):

- `--overlap_type none` (default): the clips as they are, mixed with WHAM!
  noise when the yaml says `add_wham_noise: True` (in distribution);
- `--overlap_type mixtures | white_noise | speech` (out of distribution): each
  clip x and an interfering signal n are scaled to unit L2 norm, mixed as
  0.8 x + 0.2 n and peak-normalised like every clip. n is another test clip of
  a different class (pairing drawn once from the yaml's seed), white noise, or
  a speech recording of `--speech_folder` (any folder of wavs, e.g. LJSpeech's
  wavs/; chosen per clip from the seed).

Scores, per method (the interpreter and the baselines of recipes/evaluation/baselines.py:
a random permutation of the interpreter's mask, four captum attributions
of the classifier: saliency, Integrated Gradients, SmoothGrad and occlusion, and
`above_floor`, what rises above each frequency's median in the clip, no classifier;
`--baselines` picks a subset), the metric suite of recipes/evaluation/metrics.py, with
the brain's own extras (L2I: Theta top-k fidelity, component-removal
faithfulness as a median), and the deletion and insertion curves of
recipes/evaluation/curves.py (p_c as the mask's top 0, 5, ..., 100 % of the bins are
removed / revealed; a removed bin is `--deletion_value zero` or the clip's
`noise_floor`): `deletion_auc` (lower is better) and `insertion_auc` (higher
is better) per clip, the mean curves in metrics.json ("curves") and in
`curves.png`. Every mean gets a 95 % bootstrap confidence interval
(`--n_bootstrap` resamples of the clips, 1000 by default, seeded by the yaml's
seed): "intervals" in metrics.json ({method: {metric: {low, high}}}), ± half
its width in metrics.md and the report.

`--sanity_check` adds the model-randomisation check of recipes/evaluation/sanity.py on
the first `--sanity_clips` clips (16): the classifier's layers are randomised
cumulatively from the top down, each method's mask is recomputed (the
interpreter keeps its trained weights), and the Spearman rank correlation and
the SSIM with the original mask are reported per step ("sanity_check" in
metrics.json, a table in metrics.md and the report, `sanity_check.png`); a
method whose mask does not change fails.
The same suite scores two reference masks ("references" in metrics.json):
`all ones` (keep everything: Fid-In = 1, AI = AD = AG = 0, SI-SDRi = 0) and,
with ground truth, `ground truth` (the target-dominant region R below as the
mask: gt_precision = gt_recall = 1). With ground truth, an L2I evaluation also
scores its ceiling, `oracle` in "methods" (row "L2I: best components
(oracle)"): the L2I mask of the components that the ground truth picks, the
prefix of psi's components ranked by their share of X (log1p magnitude) inside
R that maximises the F1 of precision and recall in log1p magnitude, not yet in
energy as gt_precision and gt_recall are (recipes.interpreters.l2i.
oracle_selection; no relevance, no classifier). It tells what the
decomposition allows and what the selection loses; it is a reference, left out
of the metrics' agreement.

The classifier check ("classifier_check"): the classifier's accuracy on the
evaluated clips and, with ground truth, on the clean target events alone and
the ground-truth mask's Fid-In; and the most frequent class of its predictions
on X_int (the mask applied), pooled over the clips and the masks that keep the clip's
evidence in place (the interpreter's, saliency, ground truth; not the random
permutation, which scatters it on purpose). When one
class takes more than half of those, or the ground-truth mask's Fid-In is
below 0.5, Fid-In / AI / AD / AG cannot judge the interpreter: metrics.md and
the report say so (`recipes.reporting.tables.classifier_warning`).

Ground truth (when `<data_folder>/meta/ground_truth.csv` exists, i.e. the
synthetic dataset): the target event and the background are read with the
clip's resampling and padding and scaled by the mixture's peak-normalisation
gain (so they still sum to the clip). Out of distribution (`--overlap_type
mixtures | white_noise | speech`) and with WHAM! noise the target stays the
target and the interference joins the background, both scaled exactly as they
are mixed (target' = g target, background' = g background + the interference
as mixed in), so they sum to the evaluated clip. Then, with E = |STFT|^2 =
expm1(X)^2 the energy of a bin,

- `si_sdr`: SI-SDR of the interpretation audio against the target event (dB);
- `si_sdri`: its improvement over the clip, si_sdr - SI-SDR(clip, target);
- `gt_precision`: share of the interpretation's energy E(X_int) that lies
  in the target-dominant region R (|STFT(target)| > |STFT(background)|, same
  STFT): sum(E(mask X) R) / sum(E(mask X)) (0 for an all-zero mask);
- `gt_recall`: share of R's energy that the interpretation keeps:
  sum(E(mask X) R) / sum(E(X) R).

A value undefined on a clip (SI-SDR against a silent target, recall of an empty
region, SPS / COMP of an all-zero mask, L2I's NMF error of a silent clip, ...;
the rule is in recipes/evaluation/metrics.py) is left out of the means and counted in
metrics.json's "n_undefined" ({method: {metric: clips}}) and in metrics.md.

Writes into the eval folder (default `<output_folder>/eval[_<overlap>]`, with
`output_folder` the interpreter's folder unless given): `metrics.json`,
`metrics.md` (with a per-class table), `per_clip.csv` (every clip's values of every
method and reference), `curves.png`, `clips/` (PNG and wavs of the first
`--n_report_clips` clips), `sanity_check.png` (with --sanity_check) and
`report/index.html`. `--single_sample FILE.wav` instead explains one file and
writes into `<eval_folder>/<file stem>/` (`<file stem>-2/` ... when that folder holds the
explanation of another file of the same stem; default eval folder
`<output_folder>/single_sample`; for L2I also the wavs of its `--max_components`
most relevant NMF components, 10 by default); without `--data_folder` the class names come
from the `save/label_encoder.txt` of the interpreter's training run. A file
soundfile cannot read, or without a sample, is refused before any set-up; a
silent file, or one longer than `signal_length_s` (only its first
`signal_length_s` is explained), gets a warning (logged and in
prediction.json). `--window` explains the whole file in consecutive windows of
`signal_length_s` instead, `batch_size` windows at a time, the file read in
pieces (recipes/evaluation/explain_file.py): memory is bounded by a batch, not by
the file. An eval folder that cannot be written (`--eval_folder`, or the default
under `--output_folder` or the interpreter's folder), or that holds files an
evaluation does not write, is refused before any work: one line naming the flag
to change, exit status 2. An earlier evaluation's results in the folder are
removed before the new ones are written (`check_eval_folder`). A flag given twice is refused,
naming it; `--speech_folder` files soundfile cannot read are refused up front.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import speechbrain as sb
from speechbrain.utils.logger import get_logger

from data_prep.audio import check_audio_file
from data_prep.interference import OVERLAP_TYPES, speech_files
from recipes.core.brains import build_brain
from recipes.core.run_guard import (
    UnwritableFolderError,
    changed_input,
    changed_input_message,
    check_writable_folder,
    exit_status,
    saved_settings,
)
from recipes.core.startup import given_flags, prepare_run, recipe_keys, top_level_scalars
from recipes.evaluation.baselines import parse_baselines
from recipes.evaluation.curves import DELETION_VALUES
from recipes.evaluation.explain_file import (
    SINGLE_SAMPLE,
    explain_single_sample,
    single_sample_setup,
)
from recipes.evaluation.metrics import BOOTSTRAP_RESAMPLES
from recipes.evaluation.scoring import run_evaluation
from recipes.interpreters.base import interpreter_file, interpreter_weights_folder
from recipes.interpreters.inference import (
    interpreter_class_name,
    refuse_contradictions,
    same_setting,
    trained_settings,
)
from recipes.reporting.figures import MAX_COMPONENTS
from recipes.reporting.html_report import is_own_report
from recipes.reporting.tables import metrics_markdown

logger = get_logger(__name__)

# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse_eval_arguments(argv=None):
    """Splits eval's own flags from the recipe arguments (yaml + overrides).

    Arguments
    ---------
    argv : list of str, optional
        The command line without the program name; defaults to sys.argv[1:].

    Returns
    -------
    args : argparse.Namespace
        pretrained_interpreter, overlap_type, speech_folder, single_sample, window,
        eval_folder, n_report_clips, baselines, deletion_value, n_bootstrap,
        sanity_check, sanity_clips, override_trained, output_folder, data_folder.
    recipe_argv : list of str
        `[hparams.yaml, --key, value, ...]` for `recipes.core.startup.prepare_run`
        (without --output_folder / --data_folder, which main() adds back).

    Example
    -------
    >>> args, rest = parse_eval_arguments(
    ...     ["hparams/piq.yaml", "--pretrained_interpreter", "p.ckpt", "--K", "30"])
    >>> args.overlap_type, rest
    ('none', ['hparams/piq.yaml', '--K', '30'])
    """
    parser = eval_argument_parser()
    args, recipe_argv = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return args, recipe_argv


def eval_flags():
    """The names of eval.py's own flags (without `--`): the rest of a command line goes to the yaml.

    Example
    -------
    >>> "baselines" in eval_flags(), "K" in eval_flags()
    (True, False)
    """
    return {action.dest for action in eval_argument_parser()._actions if action.option_strings} - {"help"}


def eval_argument_parser():
    """The parser of eval.py's own flags (`parse_eval_arguments`)."""
    parser = argparse.ArgumentParser(
        description="Evaluate a trained interpreter (see the module docstring).",
        allow_abbrev=False,  # never swallow a yaml override that starts like an eval flag
    )
    parser.add_argument(
        "--pretrained_interpreter",
        required=True,
        help="psi_model.ckpt of a trained interpreter, or its folder",
    )
    parser.add_argument("--overlap_type", choices=OVERLAP_TYPES, default="none")
    parser.add_argument("--speech_folder", help="folder of speech wavs (--overlap_type speech)")
    parser.add_argument("--single_sample", help="explain this one audio file instead")
    parser.add_argument(
        "--window",
        action="store_true",
        help="with --single_sample: explain the whole file in consecutive windows of signal_length_s",
    )
    parser.add_argument(
        "--max_components",
        type=int,
        help=f"with --single_sample and L2I: write the wavs of at most this many of the NMF components "
        f"it kept, the most relevant first (default {MAX_COMPONENTS}; 0: none)",
    )
    parser.add_argument("--eval_folder", help="where to write (default: see the docstring)")
    parser.add_argument(
        "--n_report_clips", type=int, default=4, help="clips shown in the report (PNG + audio)"
    )
    parser.add_argument(
        "--baselines",
        default="all",
        help="baselines to score, comma-separated (random, saliency, integrated_gradients, "
        "smoothgrad, occlusion, above_floor, and amt for a transformer classifier), or all / none (all: "
        "amt included where the classifier has one)",
    )
    parser.add_argument(
        "--deletion_value",
        choices=DELETION_VALUES,
        default="zero",
        help="what a bin removed by the deletion / insertion curves becomes",
    )
    parser.add_argument(
        "--n_bootstrap", type=int, default=BOOTSTRAP_RESAMPLES, help="bootstrap resamples per interval"
    )
    parser.add_argument(
        "--sanity_check",
        action="store_true",
        help="also run the model-randomisation sanity check (recipes/evaluation/sanity.py)",
    )
    parser.add_argument(
        "--sanity_clips", type=int, default=16, help="clips of the sanity check (the first ones)"
    )
    parser.add_argument(
        "--override_trained",
        default="",
        help="trained settings (comma-separated keys, e.g. relevance_th) that may be given another "
        "value than the interpreter's run has, on purpose; any other is refused",
    )
    parser.add_argument("--output_folder", help="base of the default eval folder")
    parser.add_argument("--data_folder", help="dataset root (ESC-50 layout)")
    return parser


def interpreter_folder(path):
    """The folder of an exported interpreter (`psi_model.ckpt` and siblings).

    Raises FileNotFoundError when `path` is neither such a file nor a folder holding one.
    """
    try:
        folder = interpreter_weights_folder(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"--pretrained_interpreter {error}") from None
    if not os.path.isfile(os.path.join(folder, interpreter_file("psi"))):
        raise FileNotFoundError(
            f"--pretrained_interpreter {path}: no {interpreter_file('psi')} there. Give the "
            "psi_model.ckpt that recipes/train_l2i.py, train_piq.py or train_lmac.py exported into "
            "its output folder (or that folder)."
        )
    return folder


def default_eval_folder(base, overlap_type, single_sample=False):
    """`<base>/eval`, `<base>/eval_<overlap_type>` or `<base>/single_sample`.

    Example
    -------
    >>> default_eval_folder("runs/piq", "mixtures")
    'runs/piq/eval_mixtures'
    """
    if single_sample:
        return os.path.join(base, "single_sample")
    return os.path.join(base, "eval" if overlap_type == "none" else f"eval_{overlap_type}")


#: What an evaluation writes into its folder: its results, which a new evaluation there replaces ...
EVAL_RESULTS = ("metrics.json", "metrics.md", "per_clip.csv", "curves.png", "sanity_check.png", "clips", "report")
#: ... and the run's records: SpeechBrain's experiment files, the run lock, the demo's stage records
#: (left, so that `make demo` sees its evaluation changed), and the copy of the recipe (*.py).
EVAL_RECORDS = (
    "hyperparams.yaml",
    "log.txt",
    "env.log",
    "manifest",
    "save",
    "resume_inputs.json",
    ".run.lock",
    "demo_stage.json",
    "demo_inputs.json",
    "demo_outputs.json",
    "demo_roots.json",
    "demo_stage.started.json",
    "tb_logs",
)


class EvalFolderError(UnwritableFolderError):
    """An eval folder that holds files an evaluation does not write (a folder of the user's)."""


def check_eval_folder(folder, flag, single=False):
    """The earlier evaluation's results in `folder` (to replace); refuses a folder of the user's.

    Before any work: a folder that holds files an evaluation does not write (`EVAL_RESULTS`,
    `EVAL_RECORDS`, the recipe's copy), or results whose `hyperparams.yaml` is not an
    evaluation's (no `interpreter_class`), or a report page that is not this project's, is
    refused, naming `flag`: nothing of it is written over. With `single` (one file explained
    into `<folder>/<stem>/`, e.g. beside the user's audio) other files may be there; only the
    run's records that SpeechBrain would write over (hyperparams.yaml, log.txt, env.log)
    must be an evaluation's.

    Returns
    -------
    list of str
        The names of the earlier evaluation's results (empty with `single`: explaining a file
        replaces none of them).

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = Path(folder, "hyperparams.yaml").write_text("interpreter_class: !name:recipes.interpreters.piq.PIQ\\n")
    ...     _ = Path(folder, "metrics.json").write_text("{}")
    ...     earlier = check_eval_folder(folder, "--eval_folder")
    ...     _ = Path(folder, "notes.txt").write_text("mine")
    ...     check_eval_folder(folder, "--eval_folder")
    Traceback (most recent call last):
    ...
    recipes.eval.EvalFolderError: --eval_folder ... holds files an evaluation does not write (notes.txt): nothing was written. Give a new or empty folder, or the folder of an earlier evaluation.
    >>> earlier
    ['metrics.json']
    """
    if not os.path.isdir(folder):
        return []
    entries = sorted(os.listdir(folder))
    yaml_path = os.path.join(folder, "hyperparams.yaml")
    if single:
        records = [name for name in ("hyperparams.yaml", "log.txt", "env.log") if name in entries]
        if records and "interpreter_class" not in saved_text(yaml_path):
            raise EvalFolderError(
                f"{flag} {folder} holds {', '.join(records)}, not an evaluation's: the explanation's "
                "run would write over them, and nothing was written. Give another folder."
            )
        return []
    foreign = [name for name in entries if name not in EVAL_RESULTS + EVAL_RECORDS and not name.endswith(".py")]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise EvalFolderError(
            f"{flag} {folder} holds files an evaluation does not write ({shown}): nothing was "
            "written. Give a new or empty folder, or the folder of an earlier evaluation."
        )
    results = [name for name in entries if name in EVAL_RESULTS]
    page = os.path.join(folder, "report", "index.html")
    if os.path.isfile(page) and not is_own_report(page):
        raise EvalFolderError(
            f"{flag} {folder}: {page} is not a report of this project: nothing was written. Give "
            "a new or empty folder."
        )
    if results and "interpreter_class" not in saved_text(yaml_path):
        raise EvalFolderError(
            f"{flag} {folder} holds {', '.join(results)} but no hyperparams.yaml of an evaluation "
            "(with its interpreter_class): they are not an earlier evaluation's, and nothing was "
            "written. Give a new or empty folder."
        )
    return results


def saved_text(path):
    """The text of a file, or "" when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as fin:
            return fin.read()
    except (OSError, UnicodeDecodeError):
        return ""


def remove_earlier_results(folder, names):
    """Removes an earlier evaluation's results from `folder` (`check_eval_folder`), so that none
    is left beside the new ones (its clips, its sanity check), and logs it."""
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
    if names:
        logger.info("%s held an earlier evaluation: its %s are replaced.", folder, ", ".join(names))


def check_interpreter_kind(hparams_file, folder):
    """Refuses an interpreter yaml of another method than the run's (L2I's yaml for a PIQ run):
    its modules would not load the run's weights, or need a dictionary the run never had.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     _ = Path(run, "hyperparams.yaml").write_text("interpreter_class: !name:recipes.interpreters.piq.PIQ\\n")
    ...     check_interpreter_kind("hparams/l2i_conv2d.yaml", run)
    Traceback (most recent call last):
    ...
    ValueError: The interpreter in ... is a PIQ (its hyperparams.yaml: recipes.interpreters.piq.PIQ), and hparams/l2i_conv2d.yaml builds an L2I: evaluate it with a PIQ yaml (e.g. the one it was trained with: hparams/piq.yaml, piq_vit.yaml, ...).
    """
    _, where = trained_settings(folder)
    trained = interpreter_class_name(saved_text(where)) if where else None
    given = interpreter_class_name(saved_text(hparams_file))
    if trained and given and trained != given:
        method = trained.rpartition(".")[2]
        article = "an" if method[0] in "AEFHILMNORSX" else "a"
        given_method = given.rpartition(".")[2]
        given_article = "an" if given_method[0] in "AEFHILMNORSX" else "a"
        yamls = {"L2I": "hparams/l2i_conv2d.yaml, l2i_cnn14.yaml", "PIQ": "hparams/piq.yaml, piq_vit.yaml, ..."}
        raise ValueError(
            f"The interpreter in {folder} is {article} {method} (its {os.path.basename(where)}: {trained}), "
            f"and {hparams_file} builds {given_article} {given_method}: evaluate it with {article} {method} yaml "
            f"(e.g. the one it was trained with: {yamls.get(method, 'hparams/lmac_conv2d.yaml, lmac_vit.yaml, ...')})."
        )


def take_trained_settings(recipe_argv, folder, override=()):
    """recipe_argv with the settings the interpreter was trained with, read from its run.

    A value given on the command line that contradicts the run's is refused,
    naming both, unless its key is in `override` (`--override_trained`: another
    threshold on purpose); an omitted one is added from the run (not left to the
    yaml's default). The settings are those of
    `recipes.interpreters.inference.trained_settings` (signal, STFT, sizes,
    thresholds) that the yaml holds as literals.

    Raises
    ------
    ValueError
        A given value is not the trained one.
    """
    trained, where = trained_settings(folder)
    if not trained:
        logger.warning(
            "%s holds no hyperparams.yaml of its training run: the yaml and the command line give "
            "the signal, STFT and sizes, unchecked.",
            folder,
        )
        return recipe_argv
    given = given_flags(recipe_argv[1:])
    unknown = [key for key in override if key not in trained]
    if unknown:
        raise ValueError(
            f"--override_trained {','.join(unknown)}: not a setting the interpreter was trained with "
            f"({where} holds {', '.join(sorted(trained))}); a key given to the yaml needs no override."
        )
    refuse_contradictions({key: value for key, value in given.items() if key not in override}, trained, where)
    for key in override:
        if key in given and key in trained and not same_setting(given[key], trained[key]):
            logger.warning(
                "--%s %s (--override_trained): the interpreter was trained with %s.", key, given[key], trained[key]
            )
    defaults = top_level_scalars(recipe_argv[0])
    added = [key for key in trained if key not in given and key in defaults]
    other = [
        f"{key} {trained[key]} (yaml: {defaults[key]})"
        for key in added
        if not same_setting(defaults[key], trained[key])
    ]
    if other:
        logger.info("Trained settings taken from %s: %s.", where, ", ".join(other))
    return recipe_argv + [f"--{key}={trained[key]}" for key in added]


#: The files an interpreter was trained on, by the keys that name them (the classifier's come in
#: a group: a folder and its two files): taken from its run when the command line gives none of
#: a group, not left to the yaml's default (another run's, e.g. results/classifier_conv2d/1234).
TRAINED_INPUT_GROUPS = (("classifier_folder", "embedding_model_path", "classifier_model_path"), ("nmf_decoder_path",))


def take_trained_inputs(recipe_argv, folder):
    """recipe_argv with the classifier (and L2I's dictionary) the interpreter was trained on.

    Read from the run's `hyperparams.yaml` (as SpeechBrain resolved it), for each group of
    `TRAINED_INPUT_GROUPS` the command line leaves out entirely and the recipe yaml has; a
    given one is kept (a classifier moved since: `eval.py` still checks its bytes).

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     _ = Path(run, "hyperparams.yaml").write_text(
    ...         "classifier_folder: /c\\nembedding_model_path: /c/e.ckpt\\nclassifier_model_path: /c/k.ckpt\\n")
    ...     take_trained_inputs(["hparams/piq.yaml", "--K", "30"], run)[3:]
    ['--classifier_folder=/c', '--embedding_model_path=/c/e.ckpt', '--classifier_model_path=/c/k.ckpt']
    """
    saved = saved_settings(os.path.join(folder, "hyperparams.yaml"))
    given = given_flags(recipe_argv[1:])
    yaml_keys = recipe_keys(recipe_argv[0])
    added = []
    for group in TRAINED_INPUT_GROUPS:
        if not any(key in given for key in group):
            added += [key for key in group if key in yaml_keys and isinstance(saved.get(key), str) and saved[key]]
    if added:
        logger.info(
            "Taken from the interpreter's run (%s): %s.", folder, ", ".join(f"{key} = {saved[key]}" for key in added)
        )
    return recipe_argv + [f"--{key}={saved[key]}" for key in added]


def single_sample_folder(eval_folder, path):
    """`<eval_folder>/<stem>` for `--single_sample path`, or `<stem>-2`, `-3` ... when that folder
    holds the explanation of another file of the same stem (its prediction.json names it):
    an earlier explanation of another file is not replaced (as `audio-interpret` renames).

    Example
    -------
    >>> import json, tempfile
    >>> with tempfile.TemporaryDirectory() as out:
    ...     os.makedirs(os.path.join(out, "dog"))
    ...     _ = Path(out, "dog", "prediction.json").write_text(json.dumps({"file": "/a/dog.wav"}))
    ...     [os.path.basename(single_sample_folder(out, p)) for p in ("/a/dog.wav", "/b/dog.flac")]
    ...     os.makedirs(os.path.join(out, "cat"))
    ...     _ = Path(out, "cat", "notes.txt").write_text("a folder of mine")
    ...     os.path.basename(single_sample_folder(out, "/a/cat.wav"))
    ['dog', 'dog-2']
    'cat-2'
    """
    stem, n = Path(path).stem, 1
    while True:
        folder = os.path.join(eval_folder, stem if n == 1 else f"{stem}-{n}")
        if not os.path.lexists(folder) or (os.path.isdir(folder) and not os.listdir(folder)):
            return folder  # new
        try:
            with open(os.path.join(folder, "prediction.json"), encoding="utf-8") as fin:
                explained = json.load(fin).get("file")
        except FileNotFoundError:
            explained = f"no file of this project (files of yours: {folder} has no prediction.json)"
        except (OSError, ValueError, AttributeError):
            return folder  # nothing readable of an earlier explanation
        if explained is None or explained == os.path.abspath(path):
            return folder
        if n == 1:
            logger.warning("%s holds the explanation of %s: %s is explained beside it.", folder, explained, path)
        n += 1


def check_speech_files(folder):
    """The files of --speech_folder (`speech_files`), each checked before any set-up (header only).

    Raises
    ------
    FileNotFoundError
        No such folder, or no audio file in it.
    ValueError
        A file soundfile cannot read, or without a sample, naming it.
    """
    files = speech_files(folder)
    fix = "remove it from the folder, or pass another --speech_folder"
    for path in files:
        check_audio_file(path, prefix="--speech_folder: ", fix=fix)
    return files


def interpreter_class(hparams):
    """The yaml's `interpreter_class`: the Brain that eval builds."""
    if "interpreter_class" not in hparams:
        raise ValueError(
            "The yaml has no `interpreter_class` (the Brain to build, e.g. "
            "`interpreter_class: !name:recipes.interpreters.piq.PIQ`): evaluate with an interpreter "
            "yaml (hparams/l2i_conv2d.yaml, l2i_cnn14.yaml, piq.yaml, lmac_conv2d.yaml, lmac_cnn14.yaml)."
        )
    return hparams["interpreter_class"]


def main(argv=None):
    """Evaluates (or explains one file with) a trained interpreter; returns the result dict."""
    argv = sys.argv[1:] if argv is None else argv
    given_flags(argv)  # a flag given twice is refused, named
    args, recipe_argv = parse_eval_arguments(argv)
    if not recipe_argv or recipe_argv[0].startswith("--"):
        raise ValueError(
            "recipes/eval.py needs the interpreter's yaml first: "
            "python recipes/eval.py hparams/piq.yaml --pretrained_interpreter PATH [...]"
        )
    args.hparams_file = recipe_argv[0]
    if args.n_report_clips < 0:
        raise ValueError(f"--n_report_clips {args.n_report_clips} must be >= 0.")
    parse_baselines(args.baselines)  # an unknown name is refused before any set-up
    if args.n_bootstrap < 1:
        raise ValueError(f"--n_bootstrap {args.n_bootstrap} must be >= 1 (1000 is the default).")
    if args.sanity_check and args.sanity_clips < 1:
        raise ValueError(f"--sanity_clips {args.sanity_clips} must be >= 1.")
    folder = interpreter_folder(args.pretrained_interpreter)
    check_interpreter_kind(args.hparams_file, folder)  # before any folder is made
    override = [key.strip() for key in args.override_trained.split(",") if key.strip()]
    recipe_argv = take_trained_settings(recipe_argv, folder, override)
    recipe_argv = take_trained_inputs(recipe_argv, folder)
    if args.overlap_type == "speech":
        check_speech_files(args.speech_folder)  # fail before any set-up when the speech is missing
    elif args.speech_folder:
        raise ValueError(
            f"--speech_folder is read only with --overlap_type speech (here: {args.overlap_type}): "
            "add --overlap_type speech, or drop --speech_folder."
        )
    single = args.single_sample is not None
    if single and not os.path.isfile(args.single_sample):
        raise FileNotFoundError(
            f"--single_sample {args.single_sample} does not exist: give an audio file."
        )
    if args.window and not single:
        raise ValueError("--window explains one long file: it needs --single_sample FILE.")
    if args.max_components is not None and not single:
        raise ValueError(
            "--max_components caps the component wavs of one explained file: it needs "
            "--single_sample FILE (an evaluation writes no component wavs)."
        )
    if args.max_components is not None and args.window:
        raise ValueError(
            "--max_components caps the component wavs of one clip; with --window no component "
            "wavs are written (each window selects its own components): drop one of the two."
        )
    method = (interpreter_class_name(saved_text(args.hparams_file)) or "").rpartition(".")[2]
    if args.max_components is not None and method and method != "L2I":
        raise ValueError(
            f"--max_components caps L2I's component wavs; {method} has no NMF components: drop it."
        )
    if args.max_components is not None and args.max_components < 0:
        raise ValueError(f"--max_components {args.max_components} must be >= 0 (0: no component wavs).")
    if single:
        check_audio_file(args.single_sample, prefix=SINGLE_SAMPLE)  # not audio, or no sample: refused before any set-up
    if single and args.overlap_type != "none":
        raise ValueError(
            "--single_sample explains the file as it is: drop --overlap_type (or mix the "
            "file yourself)."
        )
    eval_folder = args.eval_folder or default_eval_folder(
        args.output_folder or folder, args.overlap_type, single
    )
    # before any work: an eval folder that cannot be written is refused, naming the flag to change
    flag = "--output_folder" if args.output_folder and not args.eval_folder else "--eval_folder"
    check_writable_folder(eval_folder, flag)
    earlier = check_eval_folder(eval_folder, flag, single)  # a folder of the user's: refused here
    # The eval folder is the run's experiment folder (log, hyperparams, manifests): the
    # interpreter's training folder is left as it was.
    recipe_argv = recipe_argv + ["--output_folder", eval_folder]
    if single and args.data_folder is None:
        hparams, run_opts, label_encoder = single_sample_setup(args, recipe_argv, folder)
        datasets = None
    else:
        if args.data_folder is not None:
            recipe_argv += ["--data_folder", args.data_folder]
        hparams, run_opts, _, _, datasets, label_encoder = prepare_run(recipe_argv)
        if sb.utils.distributed.if_main_process():  # the folder is this run's now (its lock)
            remove_earlier_results(eval_folder, earlier)
    changed = changed_input(hparams, folder)  # the classifier and dictionary its training read
    if changed:
        raise ValueError(changed_input_message(hparams, folder, *changed))
    # the weights come from --pretrained_interpreter: no optimiser, no checkpointer
    brain = build_brain(interpreter_class(hparams), hparams, run_opts, train=False, label_encoder=label_encoder)
    brain.load_interpreter(args.pretrained_interpreter)

    if single:
        result = explain_single_sample(
            brain,
            hparams,
            args.single_sample,
            single_sample_folder(eval_folder, args.single_sample),
            window=args.window,
            max_components=MAX_COMPONENTS if args.max_components is None else args.max_components,
        )
        windows = f", mean of {len(result['windows'])} windows" if args.window else ""
        print(
            f"{args.single_sample}: {result['class']} (p={result['probability']:.3f}{windows}); "
            f"interpretation written to {result['files']['interpretation']}"
        )
        return result

    # every torchrun process scores its share of the clips; the main one writes the files
    result = run_evaluation(brain, hparams, datasets, args, eval_folder)
    if sb.utils.distributed.if_main_process():
        print(metrics_markdown(result))
        print(f"Report: {os.path.join(eval_folder, 'report', 'index.html')}")
        return result
    return None


def cli(argv=None):
    """The command: `main`, with exit status 2 and one line for an output folder it cannot write."""
    return exit_status(main, argv, "recipes/eval.py")


if __name__ == "__main__":
    sys.exit(cli())
