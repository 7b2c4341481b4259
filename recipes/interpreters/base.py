"""InterpreterBrain: the base of every interpreter (L2I, PIQ, L-MAC).

It owns, once, the named steps of the data flow (the "Data flow" of the
project's design card, repeated in the README):

    preprocess (STFT, log1p magnitude, phase)
    -> classify (frozen classifier: eval mode, no grad; log-mel when it wants it)
    -> interpret (abstract: the subclass's psi gives a mask in [0, 1] over X; with
       `mask_above_floor: True` times `floor_mask(X)`, what rises above the clip's floor;
       with `mask_completion: True`, at test and in `explain`, grown first over the
       above-floor regions it touches (`complete_mask`); with `keep_class: True`, at test
       and in `explain`, widened per clip along the interpreter's own ranking until the
       classifier keeps its class: `keep_class_mask`)
    -> apply_mask (X_int = mask * X, log1p(mask * |STFT|) with `mask_domain: magnitude`, or
       log1p(sqrt(mask) * |STFT|) with `power`)
    -> interpretation_audio (X_int with the input phase, ISTFT)
    -> score (score_mask: the metric suite of recipes/evaluation/metrics.py for any mask,
       batched; then the subclass's interpreter_metrics)

A subclass provides `interpret` and `interpretation_loss`, may add metrics of
its own in `interpreter_metrics` and its own ladder of wider masks for
`keep_class` (`widened_masks`, `widening_chosen`), and names the logged validation statistic
that selects its best checkpoint (`best_key`) and the keys its inference
folder needs (`inference_keys`). Baselines and reference masks are scored
through the same public `score_mask`.
Statistics of the valid and test stages come from one code path
(`on_stage_end`), and interpretations (PNG + wavs) are written for
`n_interpretations_to_save` clips every `interpret_period` epochs. The
training flow (`recipes.interpreters.training`) exports the tested weights
(`export_interpreter`) and the inference folder after the test stage.

Authors
 * audio-interpret contributors 2026
"""

import functools
import math
import os

import speechbrain as sb
import torch
from speechbrain.utils.logger import get_logger

from data_prep.files import write_atomic, write_json
from data_prep.wham_prepare import WhamMixer
from recipes.core.brains import (
    CPUFriendlyDDP,
    OneLinePerEpoch,
    freeze,
    load_pretrained,
    load_state_dict_strict,
)
from recipes.core.pipeline import (
    apply_mask,
    class_probabilities,
    classify,
    complete_mask,
    completion_region,
    floor_mask,
    invert_to_audio,
    match_frames,
    remove_interpretation,
    spectrogram,
)
from recipes.core.run_guard import saved_settings
from recipes.evaluation import metrics
from recipes.reporting.figures import clip_title, save_interpretation

logger = get_logger(__name__)

#: `keep_class`'s candidates for a soft mask m: m ** e, from m itself (e = 1) to all ones (e = 0).
KEEP_CLASS_EXPONENTS = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.0)


def interpreter_file(module_name):
    """File name of an exported interpreter module: psi -> psi_model.ckpt, theta -> theta.ckpt."""
    return "psi_model.ckpt" if module_name == "psi" else f"{module_name}.ckpt"


def interpreter_weights_folder(path):
    """The folder an exported interpreter is read from: `path`, or the folder of its `psi_model.ckpt`.

    The modules are read by their file names (`interpreter_file`), so a file of another name
    (`psi_model_epoch3.ckpt`) is refused rather than swapped for the `psi_model.ckpt` beside it.
    A path that does not exist is taken as a folder (whose files the caller then misses).

    >>> interpreter_weights_folder("runs/piq/psi_model.ckpt")
    'runs/piq'
    >>> interpreter_weights_folder(__file__)
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...base.py is not a psi_model.ckpt: ...
    """
    psi = interpreter_file("psi")
    if os.path.basename(path) == psi:
        return os.path.dirname(path) or "."
    if os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is not a {psi}: an exported interpreter is read by its files' names ({psi}, "
            f"and theta.ckpt for L2I). Give its {psi} or its folder (other weights: a folder of "
            "their own, under those names)."
        )
    return path


#: The keys of the signal a classifier reads (its STFT and features): an interpreter that
#: computes them otherwise hands the classifier a spectrogram it never learnt.
CLASSIFIER_SIGNAL_KEYS = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "use_melspectra")


def check_classifier_signal(hparams):
    """Refuses a run whose signal keys differ from those the classifier was trained with.

    Read from the classifier's run, the `hyperparams.yaml` beside its embedding model (a
    folder `train_classifier.py` wrote); a classifier without one (a hub id, a checkpoint
    of the user's) is not checked.

    Raises
    ------
    ValueError
        Naming each key, both values and the flags to give.

    Example
    -------
    >>> import tempfile
    >>> from data_prep.files import write_text
    >>> with tempfile.TemporaryDirectory() as run:
    ...     _ = write_text("n_fft: 1024\\nsample_rate: 16000\\n", os.path.join(run, "hyperparams.yaml"))
    ...     check_classifier_signal({"embedding_model_path": os.path.join(run, "e.ckpt"), "n_fft": 512, "sample_rate": 16000.0})
    Traceback (most recent call last):
    ...
    ValueError: The classifier .../e.ckpt was trained with n_fft 1024 (.../hyperparams.yaml), this run has n_fft 512: it would hand the classifier a spectrogram it never learnt. Run with --n_fft 1024, or train a classifier with these settings.
    """
    path = str(hparams.get("embedding_model_path") or "")
    trained = saved_settings(os.path.join(os.path.dirname(path), "hyperparams.yaml")) if path else {}
    differing = []
    for key in CLASSIFIER_SIGNAL_KEYS:
        if key not in trained or key not in hparams:
            continue
        before, now = trained[key], hparams[key]
        numbers = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (before, now))
        if not (math.isclose(before, now, rel_tol=1e-6) if numbers else before == now):
            differing.append((key, before, now))
    if differing:
        raise ValueError(
            f"The classifier {path} was trained with "
            f"{', '.join(f'{key} {before}' for key, before, _ in differing)} "
            f"({os.path.join(os.path.dirname(path), 'hyperparams.yaml')}), this run has "
            f"{', '.join(f'{key} {now}' for key, _, now in differing)}: it would hand the classifier a "
            "spectrogram it never learnt. Run with "
            f"{' '.join(f'--{key} {before}' for key, before, _ in differing)}, or train a classifier "
            "with these settings."
        )


class InterpreterBrain(OneLinePerEpoch, CPUFriendlyDDP, sb.core.Brain):
    """Base Brain of the interpreters. See the module docstring for the flow.

    Reads from hparams (every interpreter yaml defines them): compute_stft,
    compute_istft, compute_fbank, use_melspectra, embedding_model, classifier,
    use_pretrained, pretrainer, embedding_model_path, classifier_model_path,
    classifier_temp, train_logger, the WHAM! keys (add_wham_noise, ...),
    lr_annealing, n_interpretations_to_save, interpret_period, use_tensorboard.
    """

    #: Name of the logged valid statistic that selects the best checkpoint ...
    best_key = "fid_in"
    #: ... the highest one, or the lowest one when True (e.g. the valid loss).
    best_key_is_lower = False
    #: Statistics reported as a median over clips instead of a mean.
    median_stats = ()
    #: Valid statistic whose plateau halves the lr (maximised: the scheduler gets
    #: its negative); None: the valid loss.
    lr_plateau_key = None
    #: Whether `oracle_mask` gives the method's best mask from the ground truth (eval's
    #: "best components (oracle)" row); False: the method has no such ceiling.
    has_oracle = False
    #: What its inference folder needs besides the shared sizes (`recipes.interpreters.
    #: inference`): the yaml keys the Brain reads at inference ...
    inference_keys = ()
    #: ... values they must have there ...
    inference_fixed = {}
    #: ... and the frozen modules it loads itself, {module: path key}.
    inference_frozen = {}

    def __init__(self, *args, label_encoder=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.label_encoder = label_encoder
        # a wrong `average_checkpoints` fails here, not after an epoch
        if self.n_averaged > 1 and self.checkpointer is not None:
            logger.info("The test and the export take the mean of the %d best checkpoints", self.n_averaged)
            epochs = getattr(self.hparams, "number_of_epochs", None)
            if isinstance(epochs, int) and epochs < self.n_averaged:
                logger.warning(
                    "average_checkpoints %d with number_of_epochs %d: at most %d checkpoints exist, so "
                    "the mean is of those.", self.n_averaged, epochs, epochs,
                )
        self.classifier_modules = torch.nn.ModuleDict(
            {
                "embedding_model": self.hparams.embedding_model,
                "classifier": self.hparams.classifier,
            }
        )
        if self.hparams.use_pretrained:
            check_classifier_signal(vars(self.hparams))
            load_pretrained(
                self.hparams.pretrainer,
                {
                    "embedding_model": self.hparams.embedding_model_path,
                    "classifier": self.hparams.classifier_model_path,
                },
            )
        freeze(self.classifier_modules).to(self.device)
        self.load_frozen()
        if torch.device(self.device).type == "cpu":
            # oneDNN's convolutions run faster on channels-last weights (and so
            # activations); same Parameter objects, same results to float rounding
            self.classifier_modules.to(memory_format=torch.channels_last)
            self.modules.to(memory_format=torch.channels_last)
            logger.info("CPU: classifier and interpreter in channels-last memory format")
        self.wham_mixer = WhamMixer.from_hparams(self.hparams)  # None without WHAM! noise
        self.tensorboard = self._tensorboard_logger()

    # ------------------------------------------------------------------ set-up
    def load_frozen(self):
        """Hook for a subclass to load its other frozen parts (e.g. the NMF dictionary)."""

    def load_frozen_state(self, module, path, what):
        """Loads a frozen module's state dict strictly, with a clear error on mismatch."""
        return freeze(load_state_dict_strict(module, path, what)).to(self.device)

    def _tensorboard_logger(self):
        if not self.hparams.use_tensorboard:
            return None
        try:
            from speechbrain.utils.train_logger import TensorboardLogger

            return TensorboardLogger(self.hparams.tensorboard_logs_folder)
        except ImportError as error:
            raise ImportError(
                "use_tensorboard: True needs tensorboard, an optional install: "
                "`.venv/bin/pip install tensorboard`, or set --use_tensorboard False."
            ) from error

    def unwrapped(self, name):
        """The module `name` of self.modules, without its DDP/DP wrapper."""
        module = self.modules[name]
        return getattr(module, "module", module)

    # ---------------------------------------------------------------- data flow
    def preprocess(self, wavs):
        """wavs (B, T) -> X log1p magnitude (B, frames, F), X_stft (B, frames, F, 2)."""
        return spectrogram(wavs, self.hparams.compute_stft)

    @torch.no_grad()
    def classify(self, X):
        """The frozen classifier on X: scores (B, N) and its hidden representations."""
        return classify(
            self.hparams.embedding_model,
            self.hparams.classifier,
            X,
            compute_fbank=self.hparams.compute_fbank,
            use_melspectra=self.hparams.use_melspectra,
        )

    def class_probabilities(self, scores):
        """The classifier's softmax: softmax(scores / classifier_temp), (B, N)."""
        return class_probabilities(scores, self.hparams.classifier_temp)

    def interpret(self, X, representations, classes, stage):
        """The interpreter: returns a dict with at least "mask" (B, frames, F) in [0, 1].

        Must be implemented by the subclass; the dict may carry whatever its
        loss needs (e.g. L2I's activations). In the TRAIN stage the mask may be
        omitted when the loss does not need it.
        """
        raise NotImplementedError("An interpreter must implement interpret()")

    def interpretation_loss(self, outputs, batch, stage):
        """The subclass's loss terms, {name: scalar tensor}; their sum is minimised."""
        raise NotImplementedError("An interpreter must implement interpretation_loss()")

    @property
    def mask_domain(self):
        """Where the mask scales X (`recipes.core.pipeline.apply_mask`): "log" (the reference
        recipes: mask * X), "magnitude" (log1p(mask * |STFT|)) or "power" (the mask scales
        |STFT|^2: log1p(sqrt(mask) * |STFT|)); "log" when the yaml has no
        `mask_domain` (a run or inference folder from before the key)."""
        return getattr(self.hparams, "mask_domain", "log")

    @property
    def mask_above_floor(self):
        """Whether the interpreter's mask is multiplied by `floor_mask(X)` (the yaml's
        `mask_above_floor`): the mask then keeps nothing of a bin's level that the bin holds
        along most of the clip. False when the yaml has no such key (the reference recipes,
        a run or inference folder from before the key)."""
        return bool(getattr(self.hparams, "mask_above_floor", False))

    @property
    def mask_tail(self):
        """What a convolutional decoder's mask holds on the input's frames past its own last
        (`recipes.core.pipeline.match_frames`): "zeros" (the reference recipes: the tail is
        outside the interpretation) or "edge" (the last decoded frame's values); "zeros"
        when the yaml has no `mask_tail` (a run or inference folder from before the key)."""
        return getattr(self.hparams, "mask_tail", "zeros")

    def fit_mask_frames(self, mask, n_frames):
        """A decoder's mask (B, frames', F) on the input's `n_frames` frames, its tail as the
        yaml's `mask_tail` says; the first time a zero tail cuts frames out, a warning says
        how much (with `--window`, every window's end is then silent)."""
        missing = n_frames - mask.shape[1]
        if missing > 0 and self.mask_tail == "zeros" and not getattr(self, "_warned_mask_tail", False):
            self._warned_mask_tail = True
            hop_ms = getattr(self.hparams, "hop_length", None)
            span = f" ({missing * hop_ms:.0f} ms)" if isinstance(hop_ms, (int, float)) else ""
            logger.warning(
                "psi's mask covers %d of the input's %d frames: with mask_tail zeros (the "
                "reference) the last %d%s are outside every interpretation. --mask_tail edge "
                "gives them the last decoded frame's values (to train with it; on an interpreter "
                "trained with zeros, eval.py and audio-interpret take it with --override_trained "
                "mask_tail).",
                mask.shape[1], n_frames, missing, span,
            )
        return match_frames(mask, n_frames, tail=self.mask_tail)

    @property
    def keep_class(self):
        """Whether, at test and in `explain` (the evaluation, `AudioInterpreter`), the mask is
        widened per clip until the classifier keeps its class (the yaml's `keep_class`,
        `keep_class_mask`); training and validation, whose losses choose the checkpoint, see
        the interpreter's own mask. False when the yaml has no such
        key (the reference recipes, a run or inference folder from before the key)."""
        return bool(getattr(self.hparams, "keep_class", False))

    @property
    def mask_completion(self):
        """Whether, at test and in `explain`, the mask is grown over the above-floor regions
        it touches (the yaml's `mask_completion`; `recipes.core.pipeline.complete_mask`),
        before `mask_above_floor`'s product and `keep_class`'s check. False when the yaml
        has no such key (the reference recipes, a run or inference folder from before it)."""
        return bool(getattr(self.hparams, "mask_completion", False))

    def widened_masks(self, outputs):
        """`keep_class`'s candidates, wider and wider along the interpreter's own ranking of
        the bins: (S, B, frames, F), the first `outputs["mask"]` itself, the last all ones.

        Here, for a soft mask m: m ** e for e in `KEEP_CLASS_EXPONENTS` (a bin the mask
        ranks higher stays higher at every step; a binary mask goes from itself straight to
        all ones). L2I widens by its components instead.
        """
        mask = outputs["mask"]
        return torch.stack([mask.pow(e) if e > 0 else torch.ones_like(mask) for e in KEEP_CLASS_EXPONENTS])

    def widening_chosen(self, outputs, step):
        """Hook: `keep_class` chose candidate `step` (B,) of `widened_masks` (-1: none, the
        first kept) for each clip; a subclass updates what its outputs say of the mask
        (L2I: the selected components)."""

    @torch.no_grad()
    def keep_class_mask(self, X, candidates, classes, finish=None):
        """Per clip, the first candidate whose X_int the classifier gives the class of X.

        Arguments
        ---------
        X : torch.Tensor
            (B, frames, F).
        candidates : torch.Tensor
            (S, B, frames, F), narrowest first (`widened_masks`).
        classes : torch.Tensor
            The classifier's classes on X, (B,).
        finish : callable, optional
            finish(masks, rows) -> masks: what the interpretation makes of a candidate
            before it is checked (`finished_mask`), for the clips `rows` (B,) bool of the
            batch; called only for the clips still open at each step.

        Returns
        -------
        mask : torch.Tensor
            (B, frames, F): the chosen candidate (finished); the first (the interpreter's own
            mask) for a clip that no candidate keeps.
        step : torch.Tensor
            (B,) the chosen candidate's index; -1 where none keeps the class.
        """
        n_steps, batch = candidates.shape[:2]
        step = torch.full((batch,), -1, dtype=torch.long, device=X.device)
        chosen = None
        for s in range(n_steps):
            open_ = step < 0
            if not open_.any():
                break
            masks = candidates[s][open_]
            if finish is not None:
                masks = finish(masks, open_)
            if chosen is None:  # the first candidate: what a clip that no candidate keeps gets
                chosen = masks.clone()
            scores, _ = self.classify(self.apply_mask(X[open_], masks))
            kept = scores.argmax(dim=1) == classes[open_]
            step[open_] = torch.where(kept, s, -1)
            rows = open_.nonzero().squeeze(1)[kept]
            chosen[rows] = masks[kept]
        return chosen, step

    def finished_mask(self, X, stage):
        """What the interpreter's mask, or a wider candidate of it, becomes before it is
        scored: finish(masks, rows=None) -> masks, for the clips `rows` (B,) bool of X (None:
        all); None for nothing. `mask_completion` (at test) grows it over the above-floor
        regions it touches, `mask_above_floor` then multiplies it by `floor_mask(X)`; both
        read X once for the batch, whatever the number of calls."""
        region = completion_region(X) if self.mask_completion and stage == sb.Stage.TEST else None
        gate = floor_mask(X, self.mask_domain) if self.mask_above_floor else None
        if region is None and gate is None:
            return None

        def finish(masks, rows=None):
            if region is not None:
                masks = complete_mask(masks, None, region=region if rows is None else region[rows])
            if gate is not None:
                masks = masks * (gate if rows is None else gate[rows])
            return masks

        return finish

    def apply_mask(self, X, mask):
        """The interpretation spectrogram X_int of `mask` in the yaml's `mask_domain`, (B, frames, F)."""
        return apply_mask(X, mask, self.mask_domain)

    def invert(self, X, X_stft, length=None):
        """Waveform of a log1p magnitude X with the input phase (B, T)."""
        return invert_to_audio(X, X_stft, self.hparams.compute_istft, length)

    def interpretation_audio(self, X, X_stft, mask, length=None):
        """The interpretation's waveform: apply_mask, then invert with the input phase, (B, T)."""
        return self.invert(self.apply_mask(X, mask), X_stft, length)

    def input_waveforms(self, batch, stage):
        """The batch's waveforms, mixed with WHAM! noise in training when asked."""
        wavs = batch.sig[0].to(self.device)  # (B, T)
        if stage == sb.Stage.TRAIN and self.wham_mixer is not None:
            wavs = self.wham_mixer(wavs)
        return wavs

    def forward_waveforms(self, wavs, stage):
        """preprocess -> classify -> interpret, for a batch of waveforms (B, T)."""
        X, X_stft = self.preprocess(wavs)
        scores, representations = self.classify(X)
        classes = scores.argmax(dim=1)
        outputs = self.interpret(X, representations, classes, stage)
        finish = None  # what a mask becomes before it is scored (None: as it is)
        if "mask" in outputs:
            finish = self.finished_mask(X, stage)
            if self.keep_class and stage == sb.Stage.TEST:
                candidates = self.widened_masks(outputs)  # (S, B, frames, F)
                outputs["mask"], outputs["keep_class_step"] = self.keep_class_mask(X, candidates, classes, finish)
                self.widening_chosen(outputs, outputs["keep_class_step"])
            elif finish is not None:
                outputs["mask"] = finish(outputs["mask"])
        # finish, for other masks scored beside the interpreter's (L2I's random components)
        outputs.update(wavs=wavs, X=X, X_stft=X_stft, scores=scores, classes=classes, finish=finish)
        return outputs

    def compute_forward(self, batch, stage):
        return self.forward_waveforms(self.input_waveforms(batch, stage), stage)

    @torch.no_grad()
    def explain(self, wavs):
        """Interpretation of waveforms (B, T) for users: eval mode, no grad.

        Returns the forward outputs plus "X_int", "audio" (the interpretation
        waveform) and "probs" (the classifier's softmax on the input). Runs at
        `--eval_precision` (e.g. bf16 autocast on GPU) as valid/test do; the
        mask comes back as float32.
        """
        self.modules.eval()
        with self.evaluation_ctx:
            outputs = self.forward_waveforms(wavs.to(self.device), sb.Stage.TEST)
        outputs["mask"] = outputs["mask"].float()
        outputs["X_int"] = self.apply_mask(outputs["X"], outputs["mask"])
        outputs["audio"] = self.invert(outputs["X_int"], outputs["X_stft"], wavs.shape[-1])
        outputs["probs"] = self.class_probabilities(outputs["scores"])
        return outputs

    # ------------------------------------------------------------------ scoring
    def oracle_mask(self, outputs, region):
        """The best mask the method's own parts can make, given the target region
        (B, frames, F); only where `has_oracle` (L2I: its best components)."""
        raise NotImplementedError(f"{type(self).__name__} has no oracle mask (has_oracle is False).")

    def score_mask(self, outputs, mask):
        """The generic metric suite of any mask over a batch: the interpreter's,
        a baseline's or a reference mask.

        Arguments
        ---------
        outputs : dict
            Forward outputs of the batch: "X", "scores" (the classifier on X)
            and "classes".
        mask : torch.Tensor
            (B, frames, F) in [0, 1].

        Returns
        -------
        values : dict
            {metric: (B,) values} (`recipes.evaluation.metrics.mask_metrics`).
        scores : dict
            The classifier's scores on X_int ("int") and on X - X_int
            ("removed"), (B, N) each: one batched pass for both.
        """
        X = outputs["X"]
        X_int = self.apply_mask(X, mask)
        removed = remove_interpretation(X, X_int, self.mask_domain)  # X - X_int
        scores_pair, _ = self.classify(torch.cat([X_int, removed]))  # (2B, N)
        scores = dict(zip(("int", "removed"), scores_pair.chunk(2)))
        probs = self.class_probabilities(outputs["scores"])
        probs_int = self.class_probabilities(scores["int"])
        probs_removed = self.class_probabilities(scores["removed"])
        values = metrics.mask_metrics(probs, probs_int, probs_removed, outputs["classes"], mask)
        return values, scores

    def interpreter_metrics(self, outputs, scores, generator=None):
        """Hook: the subclass's own metrics, {name: (B,) values} (e.g. L2I's Theta fidelity).

        `scores` are `score_mask`'s classifier scores of the interpreter's mask,
        for reuse; `generator` draws what is random (a metric's random reference).
        """
        return {}

    def score(self, outputs, generator=None):
        """The interpreter's metrics for one batch: `score_mask` of its mask, then
        `interpreter_metrics`. Returns (values, scores) as `score_mask` does.

        `generator` (eval.py: one per batch, from its position alone) makes a metric's
        random draws the same however the clips are dealt out to torchrun's processes;
        without it they come from torch's global generator."""
        values, scores = self.score_mask(outputs, outputs["mask"])
        if "keep_class_step" in outputs:  # keep_class: the interpreter's own mask kept the class
            values["fid_in_unwidened"] = (outputs["keep_class_step"] == 0).float()
        values.update(self.interpreter_metrics(outputs, scores, generator))
        return values, scores

    def compute_objectives(self, outputs, batch, stage):
        terms = self.interpretation_loss(outputs, batch, stage)
        loss = sum(terms.values())
        batch_size = outputs["X"].shape[0]
        for name, value in terms.items():
            self.stage_stats.add_scalar(name, value.detach(), batch_size)
        if stage != sb.Stage.TRAIN:
            # a metric's random draws (L2I's random components) from the batch's position in
            # the stage: the same checkpoint tests to the same figures, whatever ran before
            generator = torch.Generator().manual_seed(getattr(self.hparams, "seed", 0) * 1_000_003 + self.stage_batches)
            self.stage_batches += 1
            with torch.no_grad():
                self.stage_stats.add_values(self.score(outputs, generator)[0])
                self.save_interpretations(outputs, batch, stage)
        return loss

    # ------------------------------------------------------------------ stages
    def on_stage_start(self, stage, epoch=None):
        # Under torchrun SpeechBrain (1.1.2) deals out the training batches but gives every
        # process the whole valid and test sets: their figures are this process's own, not
        # gathered (gathered, each clip counted once per process: n_undefined multiplied).
        self.stage_stats = metrics.StageStats(self.median_stats, gather=stage == sb.Stage.TRAIN)
        self.n_saved = 0
        self.stage_batches = 0  # the position of a valid / test batch (`compute_objectives`)

    def stage_extra_stats(self):
        """Hook: statistics a subclass gathers over the whole stage (e.g. codebook use)."""
        return {}

    def on_stage_end(self, stage, stage_loss, epoch=None):
        stats = {"loss": stage_loss, **self.stage_stats.summary(), **self.stage_extra_stats()}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"]  # the lr this epoch was trained with
            annealing = self.hparams.lr_annealing
            if annealing is not None:
                # ReduceLROnPlateau only computes (current, next): the next lr is set here
                plateau = stage_loss if self.lr_plateau_key is None else -stats[self.lr_plateau_key]
                lr, next_lr = annealing([self.optimizer], epoch, plateau)
                sb.nnet.schedulers.update_learning_rate(self.optimizer, next_lr)
            meta = {"epoch": epoch, "lr": lr}
            self.log_stats(meta, train_stats=getattr(self, "train_stats", None), valid_stats=stats)
            logger.info("Best checkpoint is selected by valid %s = %.4f", self.best_key, stats[self.best_key])
            self.checkpointer.save_and_keep_only(
                meta={self.best_key: stats[self.best_key], "epoch": epoch},
                num_to_keep=self.n_averaged,
                **{"min_keys" if self.best_key_is_lower else "max_keys": [self.best_key]},
            )
        else:
            meta = {"Epoch loaded": self.hparams.epoch_counter.current}
            if len(getattr(self, "averaged_epochs", ())) > 1:  # `average_checkpoints`: their mean
                meta["epochs averaged"] = " + ".join(map(str, self.averaged_epochs))
            self.log_stats(meta, test_stats=stats)
            self.test_stats = stats
            if sb.utils.distributed.if_main_process():
                undefined = {"n_undefined": self.stage_stats.n_undefined}  # {metric: clips}, out of the means
                write_json(metrics.finite_or_none({**stats, **undefined}), os.path.join(self.hparams.output_folder, "test_metrics.json"))

    def export_interpreter(self, folder):
        """Writes the trained modules (the checkpoint evaluated) as plain state dicts:
        `psi_model.ckpt` (and `theta.ckpt` for L2I), what eval.py --pretrained_interpreter takes."""
        for name in self.modules:
            state = self.unwrapped(name).state_dict()
            write_atomic(os.path.join(folder, interpreter_file(name)), lambda tmp, state=state: torch.save(state, tmp))
        logger.info("Exported the interpreter (%s) to %s", ", ".join(self.modules), folder)

    def load_interpreter(self, path):
        """Loads exported interpreter weights (strict, weights_only=True).

        `path` is a `psi_model.ckpt` file (its siblings, e.g. `theta.ckpt`, are
        read from the same folder) or the folder holding them.
        """
        folder = interpreter_weights_folder(path)
        for name in self.modules:
            file = os.path.join(folder, interpreter_file(name))
            load_state_dict_strict(self.unwrapped(name), file, f"interpreter {name}")
        logger.info("Loaded the interpreter (%s) from %s", ", ".join(self.modules), folder)

    def log_stats(self, meta, **stage_stats):
        """One logging path for valid and test: train log file and tensorboard."""
        self.hparams.train_logger.log_stats(stats_meta=meta, **stage_stats)
        if self.tensorboard is not None:
            self.tensorboard.log_stats(stats_meta=meta, **stage_stats)

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Loads the given key's best checkpoint, by default the one `best_key` selected."""
        if max_key is None and min_key is None:
            if self.best_key_is_lower:
                min_key = self.best_key
            else:
                max_key = self.best_key
        super().on_evaluate_start(max_key=max_key, min_key=min_key)
        if self.checkpointer is not None and self.n_averaged > 1:
            self.load_averaged_checkpoints(max_key=max_key, min_key=min_key)

    @property
    def n_averaged(self):
        """The yaml's `average_checkpoints`: how many of the best checkpoints (by `best_key`)
        are kept, and averaged weight by weight for the test; 1 (no key): the best one alone."""
        n = getattr(self.hparams, "average_checkpoints", 1)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"average_checkpoints {n!r}: a whole number >= 1 (1: the best checkpoint alone).")
        return n

    def load_averaged_checkpoints(self, max_key=None, min_key=None):
        """Loads into the interpreter's modules the mean of the `n_averaged` best checkpoints'
        weights (`sb.utils.checkpoints.average_checkpoints`, read with weights_only=True), as
        SpeechBrain's ASR recipes average theirs; the epoch counter stays the best one's.

        Returns
        -------
        list of int
            The epochs averaged, best first (fewer than asked when fewer were saved).
        """
        found = self.checkpointer.find_checkpoints(max_key=max_key, min_key=min_key, max_num_checkpoints=self.n_averaged)
        epochs = self.averaged_epochs = [ckpt.meta.get("epoch") for ckpt in found]
        if len(found) < 2:
            return epochs
        by_object = {id(obj): name for name, obj in self.checkpointer.recoverables.items()}
        for module_name in self.modules:
            module = self.unwrapped(module_name)
            recoverable = by_object.get(id(module))
            if recoverable is None:
                raise RuntimeError(f"interpreter module {module_name!r} is not among the checkpointer's recoverables")
            state = sb.utils.checkpoints.average_checkpoints(
                found, recoverable, parameter_loader=functools.partial(torch.load, weights_only=True)
            )
            module.load_state_dict(state, strict=True)
        logger.info("Testing the mean of %d checkpoints' weights (epochs %s, by valid %s)", len(found), epochs, self.best_key)
        return epochs

    # ---------------------------------------------------------- interpretations
    def _due_for_saving(self, stage):
        n_wanted = self.hparams.n_interpretations_to_save
        if self.n_saved >= n_wanted or not sb.utils.distributed.if_main_process():
            return False
        if stage == sb.Stage.TEST:
            return True
        period = max(1, self.hparams.interpret_period)
        return self.hparams.epoch_counter.current % period == 0

    def save_interpretations(self, outputs, batch, stage):
        """Writes PNG + original/interpretation wavs for the first clips of the stage."""
        if not self._due_for_saving(stage):
            return
        n_wanted = self.hparams.n_interpretations_to_save
        take = min(n_wanted - self.n_saved, outputs["X"].shape[0])
        if stage == sb.Stage.TEST:
            folder = os.path.join(self.hparams.output_folder, "interpretations", "test")
        else:
            epoch = self.hparams.epoch_counter.current
            folder = os.path.join(self.hparams.output_folder, "interpretations", f"epoch_{epoch}")
        X_int = self.apply_mask(outputs["X"][:take], outputs["mask"][:take])
        audio = self.invert(X_int, outputs["X_stft"][:take], outputs["wavs"].shape[-1])
        probs = self.class_probabilities(outputs["scores"][:take])
        labels = getattr(batch, "class_string_encoded", None)  # the true classes, when the batch has them
        for i in range(take):  # file writing, not tensor work: one file set per clip
            c = int(outputs["classes"][i])
            true_class = None if labels is None else self.class_name(int(labels.data.view(-1)[i]))
            save_interpretation(
                folder,
                batch.id[i],
                X=outputs["X"][i],
                mask=outputs["mask"][i],
                X_int=X_int[i],
                original=outputs["wavs"][i],
                interpretation=audio[i],
                sample_rate=self.hparams.sample_rate,
                title=clip_title(batch.id[i], self.class_name(c), probs[i, c].item(), true_class),
            )
        self.n_saved += take

    def class_name(self, index):
        if self.label_encoder is None:
            return str(index)
        return str(self.label_encoder.ind2lab.get(int(index), index))
