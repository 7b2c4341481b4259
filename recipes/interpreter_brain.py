"""InterpreterBrain: the base of every interpreter recipe (L2I, PIQ).

It owns, once, the steps of the data flow (see DESIGN.md):

    preprocess (STFT, log1p magnitude, phase)
    -> classify (frozen classifier: eval mode, no grad; log-mel when it wants it)
    -> interpret (abstract: the subclass's psi gives a mask in [0, 1] over X)
    -> invert (mask * X with the input phase, ISTFT)
    -> score (the metric suite of recipes/metrics.py, batched)

A subclass provides `interpret` and `interpretation_loss`, and names the
logged validation statistic that selects its best checkpoint (`best_key`).
Statistics of the valid and test stages come from one code path
(`on_stage_end`), and interpretations (PNG + wavs) are written for
`n_interpretations_to_save` clips every `interpret_period` epochs.

Authors
 * audio-interpret contributors 2026
"""

import json
import os

import speechbrain as sb
import torch
from speechbrain.utils.distributed import run_on_main
from speechbrain.utils.logger import get_logger

from recipes import metrics
from recipes.common import CPUFriendlyDDP, load_state_dict_file, save_atomic
from recipes.pipeline import class_probabilities, classify, invert_to_audio, spectrogram

logger = get_logger(__name__)


class StageStats:
    """Accumulates per-clip values and per-batch scalars over one stage.

    `add_values` takes (B,) tensors (one value per clip); `add_scalar` takes a
    batch mean and its batch size. `summary()` averages everything, except the
    names in `median_names`, whose median over clips is reported.
    """

    def __init__(self, median_names=()):
        self.values = {}
        self.scalars = {}
        self.median_names = set(median_names)

    def add_values(self, values):
        for name, value in values.items():
            self.values.setdefault(name, []).append(value.detach().float().cpu().reshape(-1))

    def add_scalar(self, name, value, count):
        total, n = self.scalars.get(name, (0.0, 0))
        self.scalars[name] = (total + float(value) * count, n + count)

    def _gathered(self):
        """Values and scalars of every process (DDP splits a stage's clips)."""
        values = {name: torch.cat(chunks) for name, chunks in self.values.items()}
        scalars = dict(self.scalars)
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return values, scalars
        everyone = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(everyone, (values, scalars))
        values = {name: torch.cat([part[0][name] for part in everyone if name in part[0]]) for name in values}
        scalars = {
            name: (sum(part[1][name][0] for part in everyone), sum(part[1][name][1] for part in everyone))
            for name in scalars
        }
        return values, scalars

    def summary(self):
        all_values, scalars = self._gathered()
        stats = {name: total / max(n, 1) for name, (total, n) in scalars.items()}
        for name, values in all_values.items():
            values = values[torch.isfinite(values)]
            if values.numel() == 0:
                stats[name] = float("nan")
            elif name in self.median_names:
                stats[name] = values.median().item()
            else:
                stats[name] = values.mean().item()
        return stats


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

    def strict_hook(module, path):
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)

    pretrainer.add_custom_hooks({name: strict_hook for name in pretrainer.loadables})
    try:
        run_on_main(pretrainer.collect_files)
    except Exception as error:  # network or hub errors: name the files
        raise RuntimeError(
            f"Could not fetch the pretrained {what} ({dict(paths)}): {error}. Offline? Use local "
            "checkpoints trained by recipes/train_classifier.py."
        ) from error
    pretrainer.load_collected()


def _hub_id(path):
    """True for "owner/repo/file.ckpt" that is not a local file: fetched from the hub."""
    path = str(path)
    parts = path.split("/")
    return not os.path.exists(path) and len(parts) == 3 and not path.startswith((".", "/", "~"))


def interpreter_file(module_name):
    """File name of an exported interpreter module: psi -> psi_model.ckpt, theta -> theta.ckpt."""
    return "psi_model.ckpt" if module_name == "psi" else f"{module_name}.ckpt"


def freeze(module):
    """Eval mode and no gradients, for good."""
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


class InterpreterBrain(CPUFriendlyDDP, sb.core.Brain):
    """Base Brain of the interpreters. See the module docstring for the flow.

    Expects in hparams: compute_stft, compute_istft, compute_fbank,
    embedding_model, classifier, pretrainer (or use_pretrained: False),
    embedding_model_path, classifier_model_path, classifier_temp,
    use_melspectra, train_logger, and optionally add_wham_noise/wham_folder,
    n_interpretations_to_save, interpret_period, use_tensorboard.
    """

    #: Name of the logged valid statistic that selects the best checkpoint.
    best_key = "fid_in"
    #: Statistics reported as a median over clips instead of a mean.
    median_stats = ()

    def __init__(self, *args, label_encoder=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.label_encoder = label_encoder
        self.classifier_modules = torch.nn.ModuleDict(
            {
                "embedding_model": self.hparams.embedding_model,
                "classifier": self.hparams.classifier,
            }
        )
        if getattr(self.hparams, "use_pretrained", True):
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
        self.noise_source = self._prepare_noise()
        self.tensorboard = self._tensorboard_logger()

    # ------------------------------------------------------------------ set-up
    def load_frozen(self):
        """Hook for a subclass to load its other frozen parts (e.g. the NMF dictionary)."""

    def load_frozen_state(self, module, path, what):
        """Loads a frozen module's state dict strictly, with a clear error on mismatch."""
        state = load_state_dict_file(path, what)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(f"{what} at {path} does not fit the yaml's set-up: {error}") from error
        return freeze(module).to(self.device)

    def _prepare_noise(self):
        if not getattr(self.hparams, "add_wham_noise", False):
            return None
        from data_prep.wham_prepare import prepare_wham

        return prepare_wham(
            self.hparams.wham_folder,
            True,
            self.hparams.sample_rate,
            self.hparams.signal_length_s,
            getattr(self.hparams, "wham_audio_folder", None),
        )

    def _tensorboard_logger(self):
        if not getattr(self.hparams, "use_tensorboard", False):
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
            use_melspectra=getattr(self.hparams, "use_melspectra", False),
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

    def invert(self, X, X_stft, length=None):
        """Waveform of a log1p magnitude X with the input phase (B, T)."""
        return invert_to_audio(X, X_stft, self.hparams.compute_istft, length)

    def input_waveforms(self, batch, stage):
        """The batch's waveforms, mixed with WHAM! noise in training when asked."""
        wavs = batch.sig[0].to(self.device)  # (B, T)
        if stage == sb.Stage.TRAIN and self.noise_source is not None:
            from data_prep.wham_prepare import combine_batches

            wavs = combine_batches(wavs, self.noise_source, snr_db=getattr(self.hparams, "wham_snr_db", 0.0))
        return wavs

    def forward_waveforms(self, wavs, stage):
        """preprocess -> classify -> interpret, for a batch of waveforms (B, T)."""
        X, X_stft = self.preprocess(wavs)
        scores, representations = self.classify(X)
        classes = scores.argmax(dim=1)
        outputs = self.interpret(X, representations, classes, stage)
        outputs.update(wavs=wavs, X=X, X_stft=X_stft, scores=scores, classes=classes)
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
        outputs["X_int"] = outputs["mask"] * outputs["X"]
        outputs["audio"] = self.invert(outputs["X_int"], outputs["X_stft"], wavs.shape[-1])
        outputs["probs"] = self.class_probabilities(outputs["scores"])
        return outputs

    # ------------------------------------------------------------------ scoring
    def score(self, outputs, batch):
        """The metric suite for one batch, {name: (B,) values}.

        The extra classifier passes (on X_int and on X - X_int) are made here
        only, in one batched call; their scores are kept in `outputs`
        ("scores_int", "scores_removed") for a subclass's metrics to reuse.
        """
        X, mask = outputs["X"], outputs["mask"]
        X_int = mask * X
        scores_pair, _ = self.classify(torch.cat([X_int, X - X_int]))  # (2B, N)
        outputs["scores_int"], outputs["scores_removed"] = scores_pair.chunk(2)
        probs = self.class_probabilities(outputs["scores"])
        probs_int = self.class_probabilities(outputs["scores_int"])
        probs_removed = self.class_probabilities(outputs["scores_removed"])
        return metrics.mask_metrics(probs, probs_int, probs_removed, outputs["classes"], mask)

    def compute_objectives(self, outputs, batch, stage):
        terms = self.interpretation_loss(outputs, batch, stage)
        loss = sum(terms.values())
        batch_size = outputs["X"].shape[0]
        for name, value in terms.items():
            self.stage_stats.add_scalar(name, value.detach(), batch_size)
        if stage != sb.Stage.TRAIN:
            with torch.no_grad():
                self.stage_stats.add_values(self.score(outputs, batch))
                self.save_interpretations(outputs, batch, stage)
        return loss

    # ------------------------------------------------------------------ stages
    def on_stage_start(self, stage, epoch=None):
        self.stage_stats = StageStats(self.median_stats)
        self.n_saved = 0

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
            annealing = getattr(self.hparams, "lr_annealing", None)
            if annealing is not None:
                # ReduceLROnPlateau only computes (current, next): the next lr is set here
                lr, next_lr = annealing([self.optimizer], epoch, stage_loss)
                sb.nnet.schedulers.update_learning_rate(self.optimizer, next_lr)
            meta = {"epoch": epoch, "lr": lr}
            self.log_stats(meta, train_stats=getattr(self, "train_stats", None), valid_stats=stats)
            logger.info("Best checkpoint is selected by valid %s = %.4f", self.best_key, stats[self.best_key])
            self.checkpointer.save_and_keep_only(
                meta={self.best_key: stats[self.best_key], "epoch": epoch},
                max_keys=[self.best_key],
                num_to_keep=1,
            )
        else:
            self.log_stats({"Epoch loaded": self.hparams.epoch_counter.current}, test_stats=stats)
            self.test_stats = stats
            if sb.utils.distributed.if_main_process():
                path = os.path.join(self.hparams.output_folder, "test_metrics.json")

                def write_stats(tmp):
                    with open(tmp, "w", encoding="utf-8") as fout:
                        json.dump(stats, fout, indent=2)

                save_atomic(write_stats, path)
                self.export_interpreter(self.hparams.output_folder)

    def export_interpreter(self, folder):
        """Writes the trained modules (the checkpoint evaluated) as plain state dicts:
        `psi_model.ckpt` (and `theta.ckpt` for L2I), what eval.py --pretrained_interpreter takes."""
        for name in self.modules:
            state = self.unwrapped(name).state_dict()
            save_atomic(lambda tmp, state=state: torch.save(state, tmp), os.path.join(folder, interpreter_file(name)))
        logger.info("Exported the interpreter (%s) to %s", ", ".join(self.modules), folder)

    def load_interpreter(self, path):
        """Loads exported interpreter weights (strict, weights_only=True).

        `path` is a `psi_model.ckpt` file (its siblings, e.g. `theta.ckpt`, are
        read from the same folder) or the folder holding them.
        """
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        for name in self.modules:
            file = os.path.join(folder, interpreter_file(name))
            self.unwrapped(name).load_state_dict(load_state_dict_file(file, f"interpreter {name}"), strict=True)
        logger.info("Loaded the interpreter (%s) from %s", ", ".join(self.modules), folder)

    def log_stats(self, meta, **stage_stats):
        """One logging path for valid and test: train log file and tensorboard."""
        self.hparams.train_logger.log_stats(stats_meta=meta, **stage_stats)
        if self.tensorboard is not None:
            self.tensorboard.log_stats(stats_meta=meta, **stage_stats)

    def on_evaluate_start(self, max_key=None, min_key=None):
        super().on_evaluate_start(max_key=max_key or self.best_key, min_key=min_key)

    # ---------------------------------------------------------- interpretations
    def _due_for_saving(self, stage):
        n_wanted = getattr(self.hparams, "n_interpretations_to_save", 0)
        if self.n_saved >= n_wanted or not sb.utils.distributed.if_main_process():
            return False
        if stage == sb.Stage.TEST:
            return True
        period = max(1, getattr(self.hparams, "interpret_period", 1))
        return self.hparams.epoch_counter.current % period == 0

    def save_interpretations(self, outputs, batch, stage):
        """Writes PNG + original/interpretation wavs for the first clips of the stage."""
        if not self._due_for_saving(stage):
            return
        from recipes.reporting import save_interpretation

        n_wanted = self.hparams.n_interpretations_to_save
        take = min(n_wanted - self.n_saved, outputs["X"].shape[0])
        if stage == sb.Stage.TEST:
            folder = os.path.join(self.hparams.output_folder, "interpretations", "test")
        else:
            epoch = self.hparams.epoch_counter.current
            folder = os.path.join(self.hparams.output_folder, "interpretations", f"epoch_{epoch}")
        X_int = outputs["mask"][:take] * outputs["X"][:take]
        audio = self.invert(X_int, outputs["X_stft"][:take], outputs["wavs"].shape[-1])
        probs = self.class_probabilities(outputs["scores"][:take])
        for i in range(take):  # file writing, not tensor work: one file set per clip
            c = int(outputs["classes"][i])
            save_interpretation(
                folder,
                batch.id[i],
                X=outputs["X"][i],
                mask=outputs["mask"][i],
                X_int=X_int[i],
                original=outputs["wavs"][i],
                interpretation=audio[i],
                sample_rate=self.hparams.sample_rate,
                title=f"{self.class_name(c)} (p={probs[i, c].item():.2f})",
            )
        self.n_saved += take

    def class_name(self, index):
        if self.label_encoder is None:
            return str(index)
        return str(self.label_encoder.ind2lab.get(int(index), index))


def build_interpreter(brain_class, hparams, run_opts, label_encoder):
    """An interpreter Brain built from a loaded yaml (modules, optimiser, checkpointer)."""
    return brain_class(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
        label_encoder=label_encoder,
    )


def fit_interpreter(brain, hparams, datasets):
    """The recipes' training loop: train fold, valid fold, the yaml's loader options."""
    brain.fit(
        epoch_counter=hparams["epoch_counter"],
        train_set=datasets["train"],
        valid_set=datasets["valid"],
        train_loader_kwargs=hparams["dataloader_options"],
        valid_loader_kwargs=hparams["test_dataloader_options"],
    )


def train_interpreter(brain_class, argv=None, recipe_file=None):
    """The body of every interpreter recipe: data, Brain, fit, test, export.

    Arguments
    ---------
    brain_class : type
        An InterpreterBrain subclass (L2I, PIQ).
    argv : list of str, optional
        `[hparams.yaml, --key, value, ...]`.
    recipe_file : str, optional
        The recipe script, copied into the output folder.

    Returns
    -------
    The trained Brain (its best checkpoint loaded and tested).
    """
    from recipes.common import prepare_run

    hparams, run_opts, _, _, datasets, label_encoder = prepare_run(argv, recipe_file=recipe_file)
    brain = build_interpreter(brain_class, hparams, run_opts, label_encoder)
    fit_interpreter(brain, hparams, datasets)
    brain.evaluate(
        datasets["test"], max_key=brain_class.best_key, test_loader_kwargs=hparams["test_dataloader_options"]
    )
    return brain
