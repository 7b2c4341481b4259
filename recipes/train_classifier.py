#!/usr/bin/env python3
"""Trains the audio classifier that the interpreters (L2I, PIQ) explain.

Four set-ups, one code path (`recipes.core.pipeline.spectrogram` + `classify`):

- `hparams/classifier_conv2d.yaml`: `Conv2dEncoder_v2` on the log1p magnitude
  STFT, ECAPA cosine head, AAM-softmax loss;
- `hparams/classifier_cnn14.yaml`: `Cnn14` on the log1p mel spectrogram, a
  linear head, cross-entropy;
- `hparams/classifier_vit.yaml`, `hparams/classifier_focalnet.yaml`: the
  `transformers` ViT and FocalNet backbones (`models.transformer_backbones`) on
  the log1p magnitude STFT as an image, ECAPA cosine head, AAM-softmax loss;
  `--pretrained_backbone FOLDER_OR_HUB_ID` starts from `from_pretrained` weights.

To run:

    python recipes/train_classifier.py hparams/classifier_conv2d.yaml --data_folder /path/to/ESC-50

The run resumes from its last checkpoint when started again. At the end the
best checkpoint (by valid accuracy) is evaluated on the test folds and
exported next to the logs: `embedding_model.ckpt`, `classifier.ckpt`,
`label_encoder.txt`, `test_accuracy.json`, `confusion_matrix.png`.

Augmentation (off unless the yaml asks; `hparams/demo.yaml` switches it on).
An interpreter's mask keeps part of the spectrogram and zeroes the rest, so a
classifier that has only seen full mixtures cannot judge a masked input: it
maps most of them to one class and Fid-In / AI / AD / AG say nothing. Two
augmentations, built from `speechbrain.augment`, teach it the masked inputs:

- `train_on_sources: True` (datasets with separate sources, i.e. the synthetic
  set's `sources/`): every training batch is doubled with the clips' target
  events alone plus a background of the training folds mixed in by
  `AddNoise` at a random SNR from `background_snr_low` (as hard as the
  mixtures) to `background_snr_high` (the background attenuated down to
  nothing), peak-normalised, then scaled by a random gain (`RandAmp`, from
  `source_gain_low` to `source_gain_high`: a masked-in event keeps the level
  it had in the mixture); the mixtures themselves stay in the batch;
- `spectrogram_augment: True`: random time and frequency bands of the
  spectrogram are zeroed (`SpectrogramDrop` through an `Augmenter`).

`precise_bn_batches: N` (0, off, except in `hparams/classifier_focalnet.yaml`):
before each validation the BatchNorm layers' running statistics are recomputed
over N training batches with the weights fixed (`recalibrate_batchnorm`; the
checkpoint keeps them). Without it a FocalNet trained from scratch validates at
chance; on the Conv2d classifier it changes nothing measurable (`make
demo-real`'s classifier: 75.0 % test accuracy without, 73.8 % with N = 30).

Authors
 * audio-interpret contributors 2026
"""

import os

import soundfile as sf
import speechbrain as sb
import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks
from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.logger import get_logger

from data_prep import synthetic_prepare
from data_prep.audio import load_clip, peak_normalise
from data_prep.files import write_atomic, write_json, write_text
from data_prep.wham_prepare import WhamMixer
from recipes.core.brains import (
    OneLinePerEpoch,
    RandomState,
    build_brain,
    load_pretrained_backbone,
)
from recipes.core.pipeline import class_probabilities, classify, spectrogram
from recipes.core.startup import prepare_run
from recipes.reporting.figures import plot_confusion_matrix

logger = get_logger(__name__)


def confusion_matrix(predictions, targets, n_classes):
    """Counts of (true class, predicted class) pairs.

    Arguments
    ---------
    predictions, targets : torch.Tensor
        Class indices, (B,).
    n_classes : int

    Returns
    -------
    torch.Tensor
        (n_classes, n_classes), rows = true class, columns = predicted class.

    Example
    -------
    >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2)
    tensor([[1, 1],
            [0, 1]])
    """
    counts = torch.zeros(n_classes * n_classes, dtype=torch.long)
    counts.index_add_(0, targets * n_classes + predictions, torch.ones_like(targets))
    return counts.view(n_classes, n_classes)


BACKGROUNDS_CSV = "train_backgrounds.csv"  # written into the manifest folder for AddNoise
# Clips a training batch needs: BatchNorm normalises each channel over the batch, and PyTorch
# refuses a batch of one in training ("Expected more than 1 value per channel").
MIN_TRAIN_BATCH = 2


def training_loader_opts(loader_opts, n_clips):
    """The training dataloader's options, checked against the training set's `n_clips`.

    A batch_size under `MIN_TRAIN_BATCH`, or a training set smaller than one
    batch, is a ValueError naming --batch_size. A last batch of a single clip
    (`n_clips` % batch_size == 1) would stop the run mid-epoch: unless the yaml
    drops incomplete batches already (``drop_last: True``, as the recipe yamls
    do), it is dropped, and the log says so.

    Arguments
    ---------
    loader_opts : dict
        The yaml's `train_dataloader_opts`.
    n_clips : int
        Clips in the training set.

    Returns
    -------
    dict
        `loader_opts`, with ``drop_last: True`` where a batch of one would be left.

    Example
    -------
    >>> training_loader_opts({"batch_size": 4}, 9)  # 2 batches of 4, then 1 clip
    {'batch_size': 4, 'drop_last': True}
    >>> training_loader_opts({"batch_size": 4}, 10)  # the last batch holds 2
    {'batch_size': 4}
    """
    batch_size = loader_opts["batch_size"]
    if batch_size < MIN_TRAIN_BATCH:
        raise ValueError(
            f"--batch_size {batch_size} is too small to train on: the classifier's BatchNorm "
            f"layers normalise each channel over the batch and need at least {MIN_TRAIN_BATCH} "
            f"clips per training batch (PyTorch stops mid-epoch with 'Expected more than 1 value "
            f"per channel'). Use --batch_size {MIN_TRAIN_BATCH} or more."
        )
    if n_clips < batch_size:
        raise ValueError(
            f"The training set has {n_clips} clips, fewer than one batch "
            f"(batch_size {batch_size}, incomplete batches are dropped): lower --batch_size."
        )
    if n_clips % batch_size == 1 and not loader_opts.get("drop_last", False):
        logger.info(
            "The last training batch would hold 1 of the %d clips (batch_size %d), which "
            "BatchNorm cannot train on: it is dropped each epoch (drop_last).",
            n_clips,
            batch_size,
        )
        return {**loader_opts, "drop_last": True}
    return loader_opts


def read_source_paths(data_folder):
    """{clip id: (target path, background path)}, or a ValueError naming the fix
    when the dataset has no separate sources (ESC-50 has none)."""
    try:
        return synthetic_prepare.read_source_paths(data_folder)
    except FileNotFoundError as error:
        raise ValueError(
            f"train_on_sources: True needs the clips' separate sources ({error}): use the "
            "synthetic dataset (data_prep/synthetic_prepare.py), or set --train_on_sources "
            "False (add_wham_noise mixes WHAM! noise into real clips)."
        ) from error


def prepare_source_augmentation(hparams, train_set):
    """Adds "target_sig" (the target event alone) to the training clips and writes
    the csv of their backgrounds that the yaml's `add_background` (AddNoise) reads.

    Arguments
    ---------
    hparams : dict
        Reads data_folder, manifest_folder, sample_rate, signal_length_s.
    train_set : DynamicItemDataset
        The training clips; gets the "target_sig" output key.

    Returns
    -------
    str
        The csv path (ID, duration, wav, wav_format, wav_opts), one row per clip.
    """
    sources = read_source_paths(hparams["data_folder"])
    with train_set.output_keys_as(["id"]):
        ids = [item["id"] for item in train_set]
    missing = [clip_id for clip_id in ids if clip_id not in sources]
    if missing:
        raise ValueError(
            f"{hparams['data_folder']}/{synthetic_prepare.GROUND_TRUTH_CSV} has no sources for training clips "
            f"{missing[:5]}: the audio and the sources come from different datasets; "
            "regenerate the synthetic dataset."
        )
    sample_rate = int(hparams["sample_rate"])
    n_samples = int(round(sample_rate * hparams["signal_length_s"]))
    rates = {sf.info(sources[clip_id][1]).samplerate for clip_id in ids}
    if rates != {sample_rate}:
        raise ValueError(
            f"The backgrounds in {hparams['data_folder']}/sources are at {sorted(rates)} Hz but "
            f"the recipe runs at sample_rate {sample_rate}: generate the dataset at "
            f"{sample_rate} Hz (synthetic_prepare.py or collection_prepare.py --sample-rate "
            f"{sample_rate}) or set --sample_rate."
        )

    @sb.utils.data_pipeline.takes("id")
    @sb.utils.data_pipeline.provides("target_sig")
    def target_pipeline(clip_id):
        return load_clip(sources[clip_id][0], sample_rate, n_samples)

    train_set.add_dynamic_item(target_pipeline)
    train_set.set_output_keys(["id", "sig", "target_sig", "class_string", "class_string_encoded"])

    path = os.path.join(hparams["manifest_folder"], BACKGROUNDS_CSV)
    rows = ["ID,duration,wav,wav_format,wav_opts"]
    for clip_id in ids:
        background = os.path.abspath(sources[clip_id][1])
        if "," in background:
            raise ValueError(f"Cannot list {background} in a csv (it has a comma): move the data.")
        rows.append(f"{clip_id},{sf.info(background).duration:.4f},{background},wav,")

    if sb.utils.distributed.if_main_process():
        write_text("\n".join(rows) + "\n", path)
    sb.utils.distributed.ddp_barrier()
    logger.info(
        "Source augmentation: %d target events, backgrounds listed in %s", len(ids), path
    )
    return path


@register_checkpoint_hooks
class NoisePosition:
    """Where `add_background` (SpeechBrain's AddNoise) is in its list of backgrounds, as a
    checkpoint recoverable.

    AddNoise draws its backgrounds from a loader it makes at its first call and walks
    across the epochs (the same order each pass, from a fixed seed): a run resumed from a
    checkpoint started that walk again from the first background, while the uninterrupted
    run went on where it was. Saved: the loader's batch size and the batches drawn in its
    current pass; loaded, `restore` makes the loader and draws as many before the first
    training batch. (The random draws, SNRs and gains, come back with
    `recipes.core.brains.RandomState`.)
    """

    def __init__(self, add_noise):
        self.add_noise = add_noise
        self.pending = None  # (batch_size, drawn) read from a checkpoint, not yet restored

    @mark_as_saver
    def save(self, path):
        loader, drawn = getattr(self.add_noise, "data_loader", None), getattr(self.add_noise, "noise_data", None)
        position = [] if loader is None or drawn is None else [loader.batch_size, drawn._num_yielded]
        torch.save(position, path)

    @mark_as_loader
    def load(self, path, end_of_epoch=True):
        position = torch.load(path, map_location="cpu", weights_only=True)
        self.pending = tuple(position) if position else None

    def restore(self, waveforms):
        """Before AddNoise's first call in this process: its loader, `pending`'s batches
        drawn. `waveforms` (B, T) gives the device and length of the call that makes it."""
        if self.pending is None or hasattr(self.add_noise, "data_loader"):
            self.pending = None
            return
        batch_size, drawn = self.pending
        self.pending = None
        # AddNoise's call draws an SNR and a crop, and every new pass over its loader a seed
        # (torch's DataLoader): the generators are given back as the checkpoint left them
        generators = RandomState.current()
        silence = waveforms.new_zeros(batch_size, waveforms.shape[1])
        self.add_noise(silence, torch.ones(batch_size, device=waveforms.device))  # makes the loader
        self.add_noise.noise_data = iter(self.add_noise.data_loader)
        for _ in range(drawn):
            next(self.add_noise.noise_data)
        RandomState.restore(generators)
        logger.info("Resumed the background noise list after its %d first batches", drawn)


class ClassifierBrain(OneLinePerEpoch, sb.Brain):
    """Trains embedding model + head on the classes of the data."""

    #: `NoisePosition` of `add_background` when training with a checkpointer on sources.
    noise_position = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.wham_mixer = WhamMixer.from_hparams(self.hparams)  # None without WHAM! noise
        self.calibration_loader = None  # training batches for `recalibrate_batchnorm`
        if getattr(self.hparams, "train_on_sources", False) and self.checkpointer is not None:
            self.noise_position = NoisePosition(self.hparams.add_background)
            # optional: a checkpoint from before it still resumes
            self.checkpointer.add_recoverable("noise_position", self.noise_position, optional_load=True)

    def training_waveforms(self, batch):
        """The training batch's waveforms (B', T), augmented as the yaml asks.

        With `train_on_sources`, B' = 2 B: the mixtures, then the target events
        with a random training background at a random SNR (AddNoise),
        peak-normalised and scaled by a random gain (RandAmp).
        """
        wavs, _ = batch.sig  # (B, T)
        if self.wham_mixer is not None:
            wavs = self.wham_mixer(wavs)
        if self.hparams.train_on_sources:
            targets, target_lens = batch.target_sig  # (B, T)
            if self.noise_position is not None:
                self.noise_position.restore(targets)  # a resumed run: where AddNoise was
            with_background = self.hparams.add_background(targets, target_lens)  # (B, T)
            # RandAmp divides by the peak itself: 0 / 0 on a silent pair, hence nan_to_num
            with_background = self.hparams.source_gain(peak_normalise(with_background)).nan_to_num(0.0)
            wavs = torch.cat([wavs, with_background])  # (2B, T)
        return wavs

    def compute_forward(self, batch, stage):
        """Waveforms -> (optional augmentation) -> log1p STFT -> class scores (B', N)."""
        batch = batch.to(self.device)
        if stage == sb.Stage.TRAIN:
            wavs = self.training_waveforms(batch)
        else:
            wavs, _ = batch.sig  # (B, T)
        X, _ = spectrogram(wavs, self.hparams.compute_stft)  # (B', frames, 513)
        if stage == sb.Stage.TRAIN and self.hparams.spectrogram_augment:
            lengths = torch.ones(X.shape[0], device=X.device)
            X, _ = self.hparams.spectrogram_augmenter(X, lengths)  # zeroed time / frequency bands
        scores, _ = classify(
            self.modules.embedding_model,
            self.modules.classifier,
            X,
            compute_fbank=self.hparams.compute_fbank,
            use_melspectra=self.hparams.use_melspectra,
        )
        return scores  # (B, N)

    def compute_objectives(self, predictions, batch, stage):
        """Loss of the yaml (AAM softmax or cross-entropy); tracks the predictions."""
        targets = batch.class_string_encoded.data.to(self.device)  # (B, 1)
        if predictions.shape[0] != targets.shape[0]:  # augmented copies follow the batch
            targets = targets.repeat(predictions.shape[0] // targets.shape[0], 1)
        loss = self.hparams.compute_cost(predictions.unsqueeze(1), targets)
        probs = class_probabilities(predictions.detach(), self.hparams.classifier_temp)
        self.stage_predictions.append(probs.argmax(dim=1).cpu())
        self.stage_targets.append(targets.view(-1).cpu())
        return loss

    def on_stage_start(self, stage, epoch=None):
        """Empties the prediction buffers of the stage; before validation, recalibrates the
        BatchNorm statistics when `precise_bn_batches` asks for it."""
        self.stage_predictions = []
        self.stage_targets = []
        if stage == sb.Stage.VALID and self.hparams.precise_bn_batches > 0:
            self.recalibrate_batchnorm(self.hparams.precise_bn_batches)

    def recalibrate_batchnorm(self, n_batches):
        """Replaces every BatchNorm layer's running statistics by their mean over the first
        `n_batches` training batches, built as in training, with the weights as they are now.

        The running statistics are an exponential average taken while the weights move: where
        a layer's input drifts faster than the average follows (a FocalNet's pooled map, whose
        input-independent part is many times its spread over clips), the statistics at the
        end of an epoch are several standard deviations off and the model in eval mode maps
        nearly every clip to one class, though its training batches are right. Recomputed
        with the weights fixed ("precise BatchNorm"), they are the ones the model was
        trained with. Nothing else changes: no gradient, no weight update, each module's
        train / eval mode as it was.
        """
        norms = [m for m in self.modules.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        if self.calibration_loader is None:
            raise ValueError(
                "precise_bn_batches > 0 needs the training set: give it to the Brain as "
                "brain.calibration_loader (recipes/train_classifier.py's main does)."
            )
        momenta = [m.momentum for m in norms]
        modes = {m: m.training for m in self.modules.modules()}
        self.modules.eval()
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative mean over the batches, not an exponential one
            norm.train()
        n_done = 0
        with torch.no_grad():
            for batch in self.calibration_loader:
                if n_done == n_batches:
                    break
                self.compute_forward(batch, sb.Stage.TRAIN)
                n_done += 1
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        for module, training in modes.items():
            module.train(training)
        logger.info("BatchNorm statistics recomputed over %d training batches (precise_bn_batches)", n_done)

    def stage_accuracy(self):
        """Share of correct predictions over the stage (the stages are never empty)."""
        predictions = torch.cat(self.stage_predictions)
        targets = torch.cat(self.stage_targets)
        return (predictions == targets).float().mean().item()

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs loss and accuracy; steps the LR scheduler; keeps the best checkpoint."""
        stats = {"loss": stage_loss, "acc": self.stage_accuracy()}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
        elif stage == sb.Stage.VALID:
            old_lr, new_lr = self.hparams.lr_annealing([self.optimizer], epoch, stage_loss)
            sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": old_lr},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(meta=stats, max_keys=["acc"])
        else:
            self.test_stats = stats
            self.test_predictions = torch.cat(self.stage_predictions)
            self.test_targets = torch.cat(self.stage_targets)
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )


def export_results(brain, hparams, label_encoder):
    """Writes the best checkpoint's weights, the label encoder and the test figures."""
    output_folder = hparams["output_folder"]
    for name in ("embedding_model", "classifier"):
        state = brain.modules[name].state_dict()
        write_atomic(os.path.join(output_folder, f"{name}.ckpt"), lambda tmp, state=state: torch.save(state, tmp))
    write_atomic(os.path.join(output_folder, "label_encoder.txt"), label_encoder.save)

    n_classes = len(label_encoder)
    class_names = [str(label_encoder.ind2lab[index]) for index in range(n_classes)]
    counts = confusion_matrix(brain.test_predictions, brain.test_targets, n_classes)
    summary = {
        "test_accuracy": brain.test_stats["acc"],
        "test_loss": brain.test_stats["loss"],
        "n_test_clips": int(counts.sum()),
        "epoch_loaded": brain.hparams.epoch_counter.current,
        "classes": class_names,
        "confusion_matrix": counts.tolist(),
    }

    write_json(summary, os.path.join(output_folder, "test_accuracy.json"))
    plot_confusion_matrix(counts, class_names, os.path.join(output_folder, "confusion_matrix.png"))
    logger.info(
        "Test accuracy %.2f %% (%d clips); classifier exported to %s",
        100 * summary["test_accuracy"],
        summary["n_test_clips"],
        output_folder,
    )
    return summary


def main(argv=None):
    """Trains, tests and exports the classifier; returns the test summary dict."""
    hparams, run_opts, _, _, datasets, label_encoder = prepare_run(argv, recipe_file=__file__)
    if hparams["train_on_sources"]:
        prepare_source_augmentation(hparams, datasets["train"])
    train_loader_opts = training_loader_opts(hparams["train_dataloader_opts"], len(datasets["train"]))
    for split in ("valid", "test"):
        if len(datasets[split]) == 0:
            raise ValueError(
                f"The {split} set is empty: check --{split}_fold_nums against the folds "
                f"present in {hparams['data_folder']}/meta/esc50.csv."
            )

    if hparams.get("pretrained_backbone"):  # before build_brain: a resumed run's checkpoint wins
        load_pretrained_backbone(hparams["embedding_model"], hparams["pretrained_backbone"])
    brain = build_brain(ClassifierBrain, hparams, run_opts)
    if hparams["precise_bn_batches"] > 0:
        brain.calibration_loader = brain.make_dataloader(
            datasets["train"], sb.Stage.TRAIN, ckpt_prefix=None, **train_loader_opts
        )
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_opts,
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    if hparams["checkpointer"].find_checkpoint(max_key="acc") is None:
        raise ValueError(
            f"No checkpoint in {hparams['save_folder']}: train at least one epoch "
            "(--number_of_epochs >= 1) before exporting the classifier."
        )
    brain.evaluate(
        datasets["test"],
        max_key="acc",
        test_loader_kwargs=hparams["test_dataloader_opts"],
    )
    if not if_main_process():
        return None
    return export_results(brain, hparams, label_encoder)


if __name__ == "__main__":
    main()
