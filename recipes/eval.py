#!/usr/bin/env python3
"""Evaluates a trained interpreter (L2I or PIQ) with baselines, ground truth and a report.

Run from the repository root, with the yaml the interpreter was trained with
(and the same size overrides, e.g. --emb_dim 32 --K 256):

    python recipes/eval.py hparams/l2i_conv2d.yaml --data_folder DIR \\
        --pretrained_interpreter results/l2i_conv2d/1234/psi_model.ckpt
    python recipes/eval.py hparams/piq.yaml --data_folder DIR \\
        --pretrained_interpreter results/piq/1234 --overlap_type mixtures
    python recipes/eval.py hparams/piq.yaml --data_folder DIR --pretrained_interpreter ... \\
        --overlap_type speech --speech_folder LJSpeech-1.1/wavs
    python recipes/eval.py hparams/l2i_conv2d.yaml --pretrained_interpreter ... --single_sample clip.wav

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

Scores, per method (the interpreter and the baselines of recipes/baselines.py:
a random permutation of the interpreter's mask, and captum gradient
saliency), the metric suite of recipes/metrics.py, with the brain's own
extras (L2I: Theta top-k fidelity, component-removal faithfulness as a median).
The same suite scores two reference masks ("references" in metrics.json):
`all ones` (keep everything: Fid-In = 1, AI = AD = AG = 0, SI-SDRi = 0) and,
with ground truth, `ground truth` (the target-dominant region R below as the
mask: gt_precision = gt_recall = 1).

The classifier check ("classifier_check"): the classifier's accuracy on the
evaluated clips and, with ground truth, on the clean target events alone and
the ground-truth mask's Fid-In; and the most frequent class of its predictions
on X_int = mask * X, pooled over the clips and the masks that keep the clip's
evidence in place (the interpreter's, saliency, ground truth; not the random
permutation, which scatters it on purpose). When one
class takes more than half of those, or the ground-truth mask's Fid-In is
below 0.5, Fid-In / AI / AD / AG cannot judge the interpreter: metrics.md and
the report say so (`recipes.report.classifier_warning`).

Ground truth (when `<data_folder>/meta/ground_truth.csv` exists, i.e. the
synthetic dataset, and the clips are evaluated as they are): the target
event and the background are read with the clip's resampling and padding and
scaled by the mixture's peak-normalisation gain (so they still sum to the
clip), then

- `si_sdr`: SI-SDR of the interpretation audio against the target event (dB);
- `si_sdri`: its improvement over the clip, si_sdr - SI-SDR(clip, target);
- `gt_precision`: share of the kept log-magnitude (mask * X) that lies in the
  target-dominant region R (|STFT(target)| > |STFT(background)|, same STFT):
  sum(mask X R) / sum(mask X) (0 for an all-zero mask);
- `gt_recall`: share of the clip's log-magnitude in R that the mask keeps:
  sum(mask X R) / sum(X R).

Writes into the eval folder (default `<output_folder>/eval[_<overlap>]`, with
`output_folder` the interpreter's folder unless given): `metrics.json`,
`metrics.md`, `clips/` (PNG and wavs of the first `--n_report_clips` clips) and
`report/index.html`. `--single_sample FILE.wav` instead explains one file and
writes into `<eval_folder>/<file stem>/` (default eval folder
`<output_folder>/single_sample`); without `--data_folder` the class names come
from the `save/label_encoder.txt` of the interpreter's training run.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

import soundfile as sf
import speechbrain as sb
import torch
import torchaudio
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.processing.features import spectral_magnitude
from speechbrain.utils.logger import get_logger

from data_prep.esc50_prepare import LABEL_ENCODER_FILE, load_clip, pad_or_crop
from data_prep.synthetic_prepare import GROUND_TRUTH_CSV, read_source_paths
from recipes import metrics
from recipes.baselines import BASELINES, baseline_masks
from recipes.common import prepare_run
from recipes.interpreter_brain import InterpreterBrain, StageStats, interpreter_file
from recipes.pipeline import EPS
from recipes.report import (
    classifier_check_lines,
    classifier_warning,
    markdown_table,
    reference_rows,
    write_report,
)
from recipes.reporting import save_interpretation, write_wav

logger = get_logger(__name__)

OVERLAP_TYPES = ("none", "mixtures", "white_noise", "speech")
CLIP_WEIGHT = 0.8  # out-of-distribution mixtures: 0.8 clip + 0.2 interference (unit norms)
SOURCE_CHECK_ATOL = 1e-3  # target + background must give the clip within this (16-bit files)


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
        pretrained_interpreter, overlap_type, speech_folder, single_sample,
        eval_folder, n_report_clips, output_folder, data_folder.
    recipe_argv : list of str
        `[hparams.yaml, --key, value, ...]` for `recipes.common.prepare_run`
        (without --output_folder / --data_folder, which main() adds back).

    Example
    -------
    >>> args, rest = parse_eval_arguments(
    ...     ["hparams/piq.yaml", "--pretrained_interpreter", "p.ckpt", "--K", "30"])
    >>> args.overlap_type, rest
    ('none', ['hparams/piq.yaml', '--K', '30'])
    """
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
    parser.add_argument("--eval_folder", help="where to write (default: see the docstring)")
    parser.add_argument(
        "--n_report_clips", type=int, default=4, help="clips shown in the report (PNG + audio)"
    )
    parser.add_argument("--output_folder", help="base of the default eval folder")
    parser.add_argument("--data_folder", help="dataset root (ESC-50 layout)")
    return parser.parse_known_args(sys.argv[1:] if argv is None else argv)


def interpreter_folder(path):
    """The folder of an exported interpreter (`psi_model.ckpt` and siblings).

    Raises FileNotFoundError when `path` is neither such a file nor a folder holding one.
    """
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    if not os.path.isfile(os.path.join(folder, interpreter_file("psi"))):
        raise FileNotFoundError(
            f"--pretrained_interpreter {path}: no {interpreter_file('psi')} there. Give the "
            "psi_model.ckpt that recipes/train_l2i.py or recipes/train_piq.py exported into "
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


def build_brain(hparams, run_opts, label_encoder):
    """The yaml's `interpreter_class` Brain with its frozen classifier, for evaluation."""
    if "interpreter_class" not in hparams:
        raise ValueError(
            "The yaml has no `interpreter_class` (the Brain to build, e.g. "
            "`interpreter_class: !name:recipes.train_piq.PIQ`): evaluate with an interpreter "
            "yaml (hparams/l2i_conv2d.yaml, hparams/l2i_cnn14.yaml, hparams/piq.yaml)."
        )
    return hparams["interpreter_class"](
        modules=hparams["modules"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=None,  # the weights come from --pretrained_interpreter
        label_encoder=label_encoder,
    )


# ---------------------------------------------------------------------------
# What is mixed into the clips
# ---------------------------------------------------------------------------


def overlap_mix(clips, interference, clip_weight=CLIP_WEIGHT):
    """clip_weight x + (1 - clip_weight) n with unit-norm x and n, then peak-normalised.

    Arguments
    ---------
    clips, interference : torch.Tensor
        (B, T) each.
    clip_weight : float

    Returns
    -------
    torch.Tensor
        (B, T), max |.| = 1 per clip (zeros stay zeros).

    Example
    -------
    >>> x = torch.tensor([[3.0, 0.0, 0.0, 0.0]])
    >>> overlap_mix(x, torch.tensor([[0.0, 2.0, 0.0, 0.0]]))
    tensor([[1.0000, 0.2500, 0.0000, 0.0000]])
    """
    clips = clips / clips.norm(dim=1, keepdim=True).clamp(min=EPS)
    interference = interference / interference.norm(dim=1, keepdim=True).clamp(min=EPS)
    mixed = clip_weight * clips + (1.0 - clip_weight) * interference  # (B, T)
    return mixed / mixed.abs().amax(dim=1, keepdim=True).clamp(min=EPS)


def pair_different_classes(labels, generator=None):
    """For each clip, a random other clip of a different class.

    Arguments
    ---------
    labels : torch.Tensor
        Class index per clip, (N,).
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor
        (N,) partner indices with labels[partner] != labels.

    Example
    -------
    >>> labels = torch.tensor([0, 0, 1, 2])
    >>> partner = pair_different_classes(labels, torch.Generator().manual_seed(0))
    >>> bool((labels[partner] != labels).all())
    True
    """
    different = (labels.view(-1, 1) != labels.view(1, -1)).float()  # (N, N)
    if labels.numel() == 0 or (different.sum(dim=1) == 0).any():
        raise ValueError(
            "--overlap_type mixtures pairs every clip with a clip of another class, but the "
            "evaluated set has a single class: evaluate on folds with two classes or more, or "
            "use --overlap_type white_noise / speech."
        )
    return torch.multinomial(different, 1, generator=generator).squeeze(1)


def speech_files(folder):
    """The wav files under `folder` (recursively, sorted), or a FileNotFoundError saying what to do."""
    hint = (
        "--overlap_type speech needs --speech_folder, a folder of speech recordings (.wav), "
        "e.g. LJSpeech's LJSpeech-1.1/wavs (https://keithito.com/LJ-Speech-Dataset/)"
    )
    if not folder:
        raise FileNotFoundError(hint + ".")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--speech_folder {folder} does not exist: {hint}.")
    files = sorted(Path(folder).rglob("*.wav"))
    if not files:
        raise FileNotFoundError(f"--speech_folder {folder} holds no .wav file: {hint}.")
    return files


def dataset_labels(dataset):
    """Class index of every clip of a dataset, (N,) (reads no audio)."""
    with dataset.output_keys_as(["class_string_encoded"]):
        return torch.cat([item["class_string_encoded"].view(-1) for item in dataset])


def report_clip_positions(labels, count):
    """Positions of `count` clips to show, the classes taken in turn (first clip of each, ...).

    Example
    -------
    >>> report_clip_positions(torch.tensor([0, 0, 0, 1, 1, 2]), 4)
    [0, 3, 5, 1]
    """
    if count <= 0 or labels.numel() == 0:
        return []
    one_hot = torch.nn.functional.one_hot(labels)  # (N, C)
    rank_in_class = one_hot.cumsum(dim=0).gather(1, labels.view(-1, 1)).squeeze(1) - 1  # (N,)
    position = torch.arange(labels.numel())
    order = torch.argsort(rank_in_class * labels.numel() + position)
    return order[:count].tolist()


class Interference:
    """The signal path of one evaluation set-up: what is added to each test batch.

    Arguments
    ---------
    overlap_type : str
        One of OVERLAP_TYPES.
    dataset : DynamicItemDataset
        The evaluated set (mixtures take their partners from it).
    seed : int
        Makes pairings, speech choices, noise and WHAM! crops reproducible.
    sample_rate : int
    n_samples : int
        Clip length.
    speech_folder : str, optional
        For overlap_type speech.
    noise_source : optional
        WHAM! noise (the brain's `noise_source`) for overlap_type none.
    wham_snr_db : float
    """

    def __init__(
        self,
        overlap_type,
        dataset,
        seed,
        sample_rate,
        n_samples,
        speech_folder=None,
        noise_source=None,
        wham_snr_db=0.0,
    ):
        if overlap_type not in OVERLAP_TYPES:
            raise ValueError(f"overlap_type {overlap_type!r}: choose one of {OVERLAP_TYPES}.")
        self.overlap_type = overlap_type
        self.dataset = dataset
        self.sample_rate, self.n_samples = sample_rate, n_samples
        self.noise_source = noise_source if overlap_type == "none" else None
        self.wham_snr_db = wham_snr_db
        self.generator = torch.Generator().manual_seed(int(seed))
        if overlap_type == "mixtures":
            self.partner = pair_different_classes(dataset_labels(dataset), self.generator)  # (N,)
        elif overlap_type == "speech":
            self.speech = speech_files(speech_folder)
            self.choice = torch.randint(len(self.speech), (len(dataset),), generator=self.generator)

    @property
    def keeps_ground_truth(self):
        """True when the evaluated clips are the dataset's mixtures themselves."""
        return self.overlap_type == "none" and self.noise_source is None

    def interference(self, start, count):
        """The (count, T) signals mixed into the clips start .. start + count - 1."""
        if self.overlap_type == "white_noise":
            return torch.randn(count, self.n_samples, generator=self.generator)
        if self.overlap_type == "mixtures":
            with self.dataset.output_keys_as(["sig"]):  # file reads, one per clip
                return torch.stack(
                    [self.dataset[int(j)]["sig"] for j in self.partner[start : start + count]]
                )
        files = [self.speech[int(j)] for j in self.choice[start : start + count]]
        return torch.stack([load_clip(path, self.sample_rate, self.n_samples) for path in files])

    def __call__(self, wavs, start):
        """The evaluated waveforms (B, T) for clips start .. start + B - 1."""
        if self.overlap_type == "none":
            if self.noise_source is None:
                return wavs
            from data_prep.wham_prepare import combine_batches

            return combine_batches(wavs, self.noise_source, self.wham_snr_db, self.generator)
        interference = self.interference(start, wavs.shape[0]).to(wavs)
        return overlap_mix(wavs, interference)


# ---------------------------------------------------------------------------
# Ground truth (synthetic dataset)
# ---------------------------------------------------------------------------


class GroundTruth:
    """The separate sources of a synthetic dataset, aligned with its clips.

    Arguments
    ---------
    data_folder : str
        The dataset root, holding `meta/ground_truth.csv` and `sources/`.
    sample_rate, n_samples : int
        The clips' rate and length (the recipe's).
    """

    def __init__(self, data_folder, sample_rate, n_samples):
        self.data_folder = Path(data_folder)
        self.sample_rate, self.n_samples = sample_rate, n_samples
        self.paths = read_source_paths(self.data_folder)

    @staticmethod
    def available(data_folder):
        """True when `data_folder` has the synthetic dataset's ground truth."""
        return data_folder is not None and os.path.isfile(
            os.path.join(data_folder, GROUND_TRUTH_CSV)
        )

    def _read(self, path):
        """A source as the clip was read (mono, resampled, padded / cropped), not normalised."""
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        sig = torch.from_numpy(data).mean(dim=1)  # (T,)
        if rate != self.sample_rate:
            sig = torchaudio.functional.resample(sig, rate, self.sample_rate)
        return pad_or_crop(sig, self.n_samples)

    def sources(self, ids, clips):
        """Target and background of each clip, scaled like the clip: (B, T) each.

        The clip was peak-normalised when loaded (`load_clip`); both sources get
        the same gain, 1 / max |target + background|, so they sum to the clip.
        A mismatch (sources of other audio) is a ValueError, never a wrong score.
        """
        missing = [clip_id for clip_id in ids if clip_id not in self.paths]
        if missing:
            raise ValueError(
                f"{self.data_folder / GROUND_TRUTH_CSV} has no row for clip(s) {missing}: the "
                "audio and the ground truth come from different datasets; regenerate the "
                "synthetic dataset (data_prep/synthetic_prepare.py)."
            )
        target = torch.stack([self._read(self.paths[clip_id][0]) for clip_id in ids])  # (B, T)
        background = torch.stack([self._read(self.paths[clip_id][1]) for clip_id in ids])
        gain = 1.0 / (target + background).abs().amax(dim=1, keepdim=True).clamp(min=EPS)
        target, background = gain * target, gain * background
        error = ((target + background) - clips.cpu()).abs().amax(dim=1)  # (B,)
        if (error > SOURCE_CHECK_ATOL).any():
            bad = [clip_id for clip_id, e in zip(ids, error.tolist()) if e > SOURCE_CHECK_ATOL]
            raise ValueError(
                f"The sources of clip(s) {bad} do not sum to the clip (max error "
                f"{error.max().item():.3g}): the audio/ and sources/ folders of "
                f"{self.data_folder} do not match; regenerate the synthetic dataset."
            )
        return target.to(clips.device), background.to(clips.device)


def target_region(target, background, compute_stft):
    """1 where the target's |STFT| exceeds the background's, (B, frames, F).

    Example
    -------
    >>> from speechbrain.processing.features import STFT
    >>> stft = STFT(sample_rate=16000, n_fft=1024, hop_length=11.6099, win_length=23.2199)
    >>> tone = torch.sin(torch.arange(16000) * 0.3).unsqueeze(0)
    >>> region = target_region(tone, 0.01 * torch.randn(1, 16000), stft)
    >>> region.shape, bool(region[0, 40, 49] == 1)
    (torch.Size([1, 87, 513]), True)
    """
    target_mag = spectral_magnitude(compute_stft(target), power=0.5)  # (B, frames, F)
    background_mag = spectral_magnitude(compute_stft(background), power=0.5)
    return (target_mag > background_mag).float()


def ground_truth_metrics(mask, X, audio, clips, target, region):
    """SI-SDR, SI-SDRi and mask energy precision / recall per clip (see the module docstring).

    Arguments
    ---------
    mask : torch.Tensor
        (B, frames, F) in [0, 1].
    X : torch.Tensor
        The clips' log1p magnitude (B, frames, F).
    audio : torch.Tensor
        The interpretation audio (B, T).
    clips : torch.Tensor
        The evaluated clips (B, T).
    target : torch.Tensor
        The target events, scaled like the clips (B, T).
    region : torch.Tensor
        `target_region(...)`, (B, frames, F).

    Returns
    -------
    dict
        "si_sdr", "si_sdri", "gt_precision", "gt_recall": (B,) each.

    Example
    -------
    >>> X, region = torch.ones(1, 2, 2), torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    >>> clip = torch.randn(1, 100)
    >>> gt = ground_truth_metrics(region, X, clip, clip, clip, region)
    >>> gt["gt_precision"], gt["gt_recall"], gt["si_sdri"]
    (tensor([1.]), tensor([1.]), tensor([0.]))
    """
    kept = mask * X  # (B, frames, F)
    kept_in_region = (kept * region).flatten(1).sum(dim=1)  # (B,)
    precision = kept_in_region / kept.flatten(1).sum(dim=1).clamp(min=EPS)
    recall = kept_in_region / (X * region).flatten(1).sum(dim=1).clamp(min=EPS)
    si_sdr = metrics.si_sdr(audio, target)
    return {
        "si_sdr": si_sdr,
        "si_sdri": si_sdr - metrics.si_sdr(clips, target),
        "gt_precision": precision,
        "gt_recall": recall,
    }


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def interpreter_name(brain):
    """The name the tables use for the interpreter: its Brain class (L2I, PIQ)."""
    return type(brain).__name__


def all_ones_metrics(brain, outputs):
    """The metric suite of the all-ones mask (keep everything), {name: (B,) values}.

    X_int = X exactly, so the classifier's scores on X are reused for X_int:
    Fid-In = 1 and AI = AD = AG = 0 by construction, not up to float rounding of
    another classifier pass. X - X_int is all zeros (one pass, broadcast).
    """
    X, classes = outputs["X"], outputs["classes"]
    scores_zero, _ = brain.classify(torch.zeros_like(X[:1]))  # (1, N)
    probs = brain.class_probabilities(outputs["scores"])  # (B, N)
    probs_removed = brain.class_probabilities(scores_zero).expand_as(probs)
    return metrics.mask_metrics(probs, probs, probs_removed, classes, torch.ones_like(X))


def classifier_check(
    accuracy, masked_predictions, class_name=str, target_accuracy=None, ground_truth_fid_in=None
):
    """Can this classifier judge masks? The "classifier_check" block of metrics.json.

    Arguments
    ---------
    accuracy : float
        The classifier's accuracy on the evaluated clips.
    masked_predictions : torch.Tensor
        Its predicted class on X_int = mask * X, pooled over the clips and the
        interpreter's, saliency and ground-truth masks, (M,).
    class_name : callable
        Class index -> name.
    target_accuracy : float, optional
        Its accuracy on the clean target events alone (data with sources).
    ground_truth_fid_in : float, optional
        Fid-In of the ground-truth mask (data with sources).

    Returns
    -------
    dict
        The figures above, the most frequent masked-input class and its share,
        and "warning" (`recipes.report.classifier_warning`, None when none).

    Example
    -------
    >>> check = classifier_check(0.9, torch.tensor([2, 2, 2, 1]))
    >>> check["masked_top_class"], check["masked_top_class_share"]
    ('2', 0.75)
    >>> check["warning"].startswith("masked-input metrics")
    True
    """
    counts = torch.bincount(masked_predictions.reshape(-1).long().cpu())
    top = int(counts.argmax()) if counts.numel() else None
    check = {
        "accuracy": accuracy,
        "target_accuracy": target_accuracy,
        "ground_truth_fid_in": ground_truth_fid_in,
        "masked_predictions": int(counts.sum()),
        "masked_top_class": None if top is None else class_name(top),
        "masked_top_class_share": None if top is None else counts[top].item() / counts.sum().item(),
    }
    check["warning"] = classifier_warning(check)
    return check


def evaluate(brain, dataset, loader_options, interference, ground_truth, clips_folder, n_clips):
    """Scores the interpreter, the baselines and the reference masks over `dataset`, batch by batch.

    Arguments
    ---------
    brain : InterpreterBrain
        With its interpreter loaded.
    dataset : DynamicItemDataset
    loader_options : dict
        DataLoader options (not shuffled: the interference is indexed by position).
    interference : Interference
    ground_truth : GroundTruth or None
    clips_folder : str
        Where the PNG and wavs of the shown clips go.
    n_clips : int
        Clips shown in the report: the first clip of each class, then the second, ...

    Returns
    -------
    stats : dict
        {method: {metric: value}}, interpreter first, then BASELINES.
    references : dict
        {reference: {metric: value}}: "all_ones", and "ground_truth" (the
        target-dominant region as the mask) with ground truth.
    check : dict
        `classifier_check(...)` of the evaluated clips.
    clips : list of dict
        The clips written for the report (paths relative to clips_folder's parent).
    """
    name = interpreter_name(brain)
    stats = {name: StageStats(brain.median_stats), **{b: StageStats() for b in BASELINES}}
    references = {"all_ones": StageStats()}
    if ground_truth is not None:
        references["ground_truth"] = StageStats()
    generator = torch.Generator().manual_seed(int(brain.hparams.seed))
    loader = make_dataloader(dataset, **{**loader_options, "shuffle": False})
    shown_positions = set(report_clip_positions(dataset_labels(dataset), n_clips))
    correct, target_correct, start, shown, masked_predictions = 0, 0, 0, [], []
    for batch in loader:
        wavs = interference(batch.sig[0].to(brain.device), start)  # (B, T)
        outputs = brain.explain(wavs)
        labels = batch.class_string_encoded.data.view(-1).to(brain.device)  # (B,)
        correct += int((outputs["classes"] == labels).sum())
        with torch.no_grad():
            masks = {name: outputs["mask"], **baseline_masks(brain, outputs, generator)}
            method_outputs = {
                name: outputs,
                **{b: {**outputs, "mask": masks[b]} for b in BASELINES},
            }
            values = {name: brain.score(outputs, batch)}
            for baseline in BASELINES:  # the generic suite for masks without an interpreter
                values[baseline] = InterpreterBrain.score(brain, method_outputs[baseline], batch)
            # score() left each method's scores on X_int in its outputs. The random
            # permutation is left out: it scatters the clip's evidence on purpose, and a
            # classifier may rightly call scattered bins one noise-like class.
            masked_predictions += [
                out["scores_int"].argmax(dim=1).cpu()
                for method, out in method_outputs.items()
                if method != "random"
            ]
            values["all_ones"] = all_ones_metrics(brain, outputs)
            target = None
            if ground_truth is not None:
                target, background = ground_truth.sources(batch.id, wavs)
                region = target_region(target, background, brain.hparams.compute_stft)
                ground_truth_outputs = {**outputs, "mask": region}
                values["ground_truth"] = InterpreterBrain.score(brain, ground_truth_outputs, batch)
                masked_predictions.append(ground_truth_outputs["scores_int"].argmax(dim=1).cpu())
                masks.update(all_ones=torch.ones_like(region), ground_truth=region)
                # the interpreter's audio is already inverted, and keeping everything is the clip
                audio_of = {name: outputs["audio"], "all_ones": wavs}
                for method, mask in masks.items():
                    audio = audio_of.get(method)
                    if audio is None:
                        audio = brain.invert(mask * outputs["X"], outputs["X_stft"], wavs.shape[-1])
                    values[method].update(
                        ground_truth_metrics(mask, outputs["X"], audio, wavs, target, region)
                    )
                X_target, _ = brain.preprocess(target)  # the clean target events alone
                target_scores, _ = brain.classify(X_target)  # (B, N)
                target_correct += int((target_scores.argmax(dim=1) == labels).sum())
        for method, method_values in values.items():
            (references if method in references else stats)[method].add_values(method_values)
        in_batch = [i for i in range(wavs.shape[0]) if start + i in shown_positions]
        shown += save_report_clips(brain, batch, outputs, labels, target, clips_folder, in_batch)
        start += wavs.shape[0]
    references = {reference: s.summary() for reference, s in references.items()}
    n_evaluated = max(start, 1)
    with_sources = ground_truth is not None
    check = classifier_check(
        correct / n_evaluated,
        torch.cat(masked_predictions) if masked_predictions else torch.zeros(0, dtype=torch.long),
        class_name=brain.class_name,
        target_accuracy=target_correct / n_evaluated if with_sources else None,
        ground_truth_fid_in=references["ground_truth"]["fid_in"] if with_sources else None,
    )
    return {method: s.summary() for method, s in stats.items()}, references, check, shown


def save_report_clips(brain, batch, outputs, labels, target, folder, indices):
    """Writes PNG + original / interpretation (/ target) wavs for the clips `indices` of a batch."""
    sample_rate = brain.hparams.sample_rate
    written = []
    for i in indices:  # file writing, not tensor work: one file set per clip
        clip_id, c = batch.id[i], int(outputs["classes"][i])
        probability = float(outputs["probs"][i, c])
        title = f"{clip_id}: {brain.class_name(c)} (p={probability:.2f})"
        paths = save_interpretation(
            folder,
            clip_id,
            X=outputs["X"][i],
            mask=outputs["mask"][i],
            X_int=outputs["X_int"][i],
            original=outputs["wavs"][i],
            interpretation=outputs["audio"][i],
            sample_rate=sample_rate,
            title=title,
        )
        if target is not None:
            paths["target"] = os.path.join(folder, f"{clip_id}_target.wav")
            write_wav(paths["target"], target[i], sample_rate)
        base = os.path.dirname(os.path.abspath(folder))
        written.append(
            {
                "id": clip_id,
                "class": brain.class_name(c),
                "true_class": brain.class_name(int(labels[i])),
                "probability": probability,
                **{key: os.path.relpath(os.path.abspath(p), base) for key, p in paths.items()},
            }
        )
    return written


def _finite_or_none(data):
    """`data` with every non-finite float replaced by None (JSON has no NaN).

    Example
    -------
    >>> _finite_or_none({"a": [1.0, float("nan")]})
    {'a': [1.0, None]}
    """
    if isinstance(data, dict):
        return {key: _finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite_or_none(value) for value in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def write_json_atomic(data, path):
    """JSON (non-finite numbers as null) to a temporary file, then renamed into place."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".part", "w", encoding="utf-8") as fout:
        json.dump(_finite_or_none(data), fout, indent=2, allow_nan=False)
    os.replace(path + ".part", path)


def write_text_atomic(text, path):
    """Text to a temporary file, then renamed into place."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".part", "w", encoding="utf-8") as fout:
        fout.write(text)
    os.replace(path + ".part", path)


def metrics_markdown(result):
    """One evaluation as markdown: the classifier-check warning (if any), the table
    (methods and reference masks x metrics) and the classifier check."""
    header = (
        f"# {result['interpreter']} on {result['n_clips']} clips "
        f"(overlap_type: {result['overlap_type']}, classifier accuracy "
        f"{100 * result['classifier_accuracy']:.1f} %)\n\n"
    )
    check = result.get("classifier_check")
    warning = classifier_warning(check)
    if warning:
        header += f"**Warning: {warning}**\n\n"
    rows = {**result["methods"], **reference_rows(result.get("references", {}))}
    lines = classifier_check_lines(check)
    check_text = (
        "\n## Classifier check\n\n" + "".join(f"- {line}\n" for line in lines) if lines else ""
    )
    return header + markdown_table(rows) + "\n" + check_text


def _local_or_hub(path):
    """A local file's absolute path; anything else (a hub id) as it is."""
    path = str(path)
    return os.path.abspath(path) if os.path.exists(path) else path


def run_evaluation(brain, hparams, datasets, args, eval_folder):
    """The test-fold evaluation: metrics.json, metrics.md, clips and the HTML report."""
    n_samples = int(round(hparams["sample_rate"] * hparams["signal_length_s"]))
    dataset = datasets["test"]
    interference = Interference(
        args.overlap_type,
        dataset,
        hparams["seed"],
        hparams["sample_rate"],
        n_samples,
        speech_folder=args.speech_folder,
        noise_source=brain.noise_source,
        wham_snr_db=hparams.get("wham_snr_db", 0.0),
    )
    ground_truth = None
    if GroundTruth.available(hparams["data_folder"]):
        if interference.keeps_ground_truth:
            ground_truth = GroundTruth(hparams["data_folder"], hparams["sample_rate"], n_samples)
        else:
            logger.info(
                "Ground truth is defined for the dataset's clips as they are; with "
                "overlap_type=%s%s it is skipped.",
                args.overlap_type,
                " and WHAM! noise" if brain.noise_source is not None else "",
            )
    stats, references, check, clips = evaluate(
        brain,
        dataset,
        hparams["test_dataloader_options"],
        interference,
        ground_truth,
        os.path.join(eval_folder, "clips"),
        args.n_report_clips,
    )
    result = {
        "interpreter": interpreter_name(brain),
        "hparams_file": os.path.abspath(args.hparams_file),
        "pretrained_interpreter": os.path.abspath(args.pretrained_interpreter),
        "data_folder": os.path.abspath(hparams["data_folder"]),
        "overlap_type": args.overlap_type,
        "wham_noise": brain.noise_source is not None,
        "n_clips": len(dataset),
        "seed": hparams["seed"],
        "classifier": {
            name: _local_or_hub(hparams[f"{name}_path"])
            for name in ("embedding_model", "classifier_model")
        },
        "classifier_accuracy": check["accuracy"],
        "ground_truth": ground_truth is not None,
        "methods": stats,
        "references": references,
        "classifier_check": check,
        "clips": clips,
    }
    write_text_atomic(metrics_markdown(result), os.path.join(eval_folder, "metrics.md"))
    # metrics.json last: its presence marks a finished evaluation (make demo reuses it)
    write_json_atomic(result, os.path.join(eval_folder, "metrics.json"))
    report = write_report([eval_folder], os.path.join(eval_folder, "report"))
    logger.info("Evaluation written to %s (report: %s)", eval_folder, report)
    return result


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
        "interpreter": interpreter_name(brain),
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
    write_json_atomic(result, os.path.join(folder, "prediction.json"))
    return result


def _single_sample_setup(args, recipe_argv, folder):
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


def main(argv=None):
    """Evaluates (or explains one file with) a trained interpreter; returns the result dict."""
    args, recipe_argv = parse_eval_arguments(argv)
    if not recipe_argv or recipe_argv[0].startswith("--"):
        raise ValueError(
            "recipes/eval.py needs the interpreter's yaml first: "
            "python recipes/eval.py hparams/piq.yaml --pretrained_interpreter PATH [...]"
        )
    args.hparams_file = recipe_argv[0]
    if args.n_report_clips < 0:
        raise ValueError(f"--n_report_clips {args.n_report_clips} must be >= 0.")
    folder = interpreter_folder(args.pretrained_interpreter)
    if args.overlap_type == "speech":
        speech_files(args.speech_folder)  # fail before any set-up when the speech is missing
    single = args.single_sample is not None
    if single and not os.path.isfile(args.single_sample):
        raise FileNotFoundError(
            f"--single_sample {args.single_sample} does not exist: give an audio file."
        )
    if single and args.overlap_type != "none":
        raise ValueError(
            "--single_sample explains the file as it is: drop --overlap_type (or mix the "
            "file yourself)."
        )
    eval_folder = args.eval_folder or default_eval_folder(
        args.output_folder or folder, args.overlap_type, single
    )
    # The eval folder is the run's experiment folder (log, hyperparams, manifests): the
    # interpreter's training folder is left as it was.
    recipe_argv = recipe_argv + ["--output_folder", eval_folder]
    if single and args.data_folder is None:
        hparams, run_opts, label_encoder = _single_sample_setup(args, recipe_argv, folder)
        datasets = None
    else:
        if args.data_folder is not None:
            recipe_argv += ["--data_folder", args.data_folder]
        hparams, run_opts, _, _, datasets, label_encoder = prepare_run(recipe_argv)
    brain = build_brain(hparams, run_opts, label_encoder)
    brain.load_interpreter(args.pretrained_interpreter)

    if single:
        result = explain_single_sample(
            brain,
            hparams,
            args.single_sample,
            os.path.join(eval_folder, Path(args.single_sample).stem),
        )
        print(
            f"{args.single_sample}: {result['class']} (p={result['probability']:.3f}); "
            f"interpretation written to {result['files']['interpretation']}"
        )
        return result

    if sb.utils.distributed.if_main_process():
        result = run_evaluation(brain, hparams, datasets, args, eval_folder)
        print(metrics_markdown(result))
        print(f"Report: {os.path.join(eval_folder, 'report', 'index.html')}")
        return result
    return None


if __name__ == "__main__":
    main()
