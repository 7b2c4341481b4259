"""Tiny end-to-end runs of recipes/train_classifier.py (conv2d and cnn14 yamls)."""

import csv
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile
import torch
from conftest import HPARAMS, TINY, TINY_CLASSIFIER
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.checkpoints import Checkpointer

import recipes.train_classifier as train_classifier
from recipes.core import pipeline
from recipes.core.run_guard import saved_settings

REPO = Path(__file__).resolve().parents[2]
CONV2D_YAML = str(REPO / "hparams" / "classifier_conv2d.yaml")
CNN14_YAML = str(REPO / "hparams" / "classifier_cnn14.yaml")
TINY_CONV2D = [
    "--emb_dim",
    "8",
    "--lin_neurons",
    "8",
    "--batch_size",
    "4",
    "--signal_length_s",
    "1",
]
# every file of a complete end-of-epoch checkpoint of the conv2d recipe
CHECKPOINT_FILES = {
    "CKPT.yaml",
    "embedding_model.ckpt",
    "classifier.ckpt",
    "lr_annealing.ckpt",
    "counter.ckpt",
    "brain.ckpt",
    "optimizer.ckpt",
    "dataloader-TRAIN.ckpt",
}
EXPORTED = (
    "embedding_model.ckpt",
    "classifier.ckpt",
    "label_encoder.txt",
    "test_accuracy.json",
    "confusion_matrix.png",
)


def _epochs_logged(lines):
    return [int(line.split(",")[0].split(":")[1]) for line in lines if line.startswith("epoch:")]


def _complete_checkpoints(save_folder):
    if not save_folder.is_dir():
        return []
    return [
        ckpt
        for ckpt in save_folder.glob("CKPT+*")
        if CHECKPOINT_FILES <= _names_in(ckpt) and _tensors_load(ckpt)
    ]


def _names_in(ckpt):
    """The checkpoint's file names; none when the running training removed it since the glob."""
    try:
        return {path.name for path in ckpt.iterdir()}
    except FileNotFoundError:
        return set()


def _tensors_load(ckpt):
    """Whether the checkpoint's tensor files load: all there is not all written (a kill can cut one)."""
    try:
        for name in ("embedding_model.ckpt", "classifier.ckpt", "optimizer.ckpt"):
            torch.load(ckpt / name, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):
        return False
    return True


def _load_yaml(yaml_file, **overrides):
    with open(yaml_file, encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, overrides)


def _check_exports_load_strictly(output, yaml_file, n_classes, **sizes):
    """Exported state dicts = best checkpoint's, and load strictly into the yaml's modules."""
    for name in EXPORTED:
        assert (output / name).is_file(), f"{name} missing in {output}"
    hparams = _load_yaml(
        yaml_file, data_folder="unused", output_folder=str(output), out_n_neurons=n_classes, **sizes
    )
    best = Checkpointer(output / "save").find_checkpoint(max_key="acc")
    for name in ("embedding_model", "classifier"):
        exported = torch.load(output / f"{name}.ckpt", map_location="cpu", weights_only=True)
        hparams[name].load_state_dict(exported, strict=True)
        from_checkpoint = torch.load(best.paramfiles[name], map_location="cpu", weights_only=True)
        assert exported.keys() == from_checkpoint.keys()
        for key, value in exported.items():
            assert torch.equal(value, from_checkpoint[key]), f"{name}.{key} is not the best one"
    return hparams



def test_conv2d_resumes_after_kill_and_exports(tiny_synthetic, tmp_path):
    output = tmp_path / "conv2d"
    common = [CONV2D_YAML, "--data_folder", str(tiny_synthetic), "--output_folder", str(output)]
    common += TINY_CONV2D
    command = [sys.executable, str(REPO / "recipes" / "train_classifier.py"), *common]
    with open(tmp_path / "killed_run.log", "w") as log_file:
        process = subprocess.Popen(
            command + ["--number_of_epochs", "1000"],
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while not _complete_checkpoints(output / "save"):
                assert process.poll() is None, "the run ended before its first checkpoint"
                assert time.monotonic() < deadline, "no checkpoint after 120 s"
                time.sleep(0.05)
            process.send_signal(signal.SIGKILL)  # right after a checkpoint, mid next epoch
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    assert not (output / "classifier.ckpt").exists()  # killed before the end

    before = (output / "train_log.txt").read_text().splitlines()
    epochs_before = _epochs_logged(before)
    last_saved = max(
        int((ckpt / "counter.ckpt").read_text()) for ckpt in _complete_checkpoints(output / "save")
    )
    assert last_saved >= 1 and epochs_before[:last_saved] == list(range(1, last_saved + 1))

    summary = train_classifier.main(common + ["--number_of_epochs", str(last_saved + 1)])

    # The kill may land after an epoch's line and before its checkpoint is complete: the
    # resumed run drops that line (run_guard.trim_train_log) and logs the epoch again.
    kept = [line for line in before if all(epoch <= last_saved for epoch in _epochs_logged([line]))]
    after = (output / "train_log.txt").read_text().splitlines()
    assert after[: len(kept)] == kept
    assert _epochs_logged(after[len(kept) :]) == [last_saved + 1]  # resumed, not restarted
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["n_test_clips"] == 3
    encoder = CategoricalEncoder()
    encoder.load(output / "label_encoder.txt")
    assert summary["classes"] == [encoder.ind2lab[index] for index in range(3)]
    saved = json.loads((output / "test_accuracy.json").read_text())
    assert saved["test_accuracy"] == summary["test_accuracy"]
    assert sum(map(sum, saved["confusion_matrix"])) == 3
    _check_exports_load_strictly(output, CONV2D_YAML, 3, emb_dim=8, lin_neurons=8)

    # Was: a rerun with fewer epochs than the folder's run trained nothing, then tested and
    # exported that run's model again, its hyperparams.yaml now naming the fewer epochs.
    kept = {name: (output / name).read_bytes() for name in ("classifier.ckpt", "hyperparams.yaml")}
    done = last_saved + 1
    with pytest.raises(ValueError, match=rf"already trained for {done} epochs; --number_of_epochs {done - 1} would"):
        train_classifier.main(common + ["--number_of_epochs", str(done - 1)])
    assert {name: (output / name).read_bytes() for name in kept} == kept


def test_conv2d_loss_and_probabilities_follow_the_yaml():
    hparams = _load_yaml(
        CONV2D_YAML, data_folder="unused", emb_dim=8, lin_neurons=8, out_n_neurons=3
    )
    cosines = torch.tensor([[0.9, 0.1, -0.2], [0.0, 0.5, 0.4]])  # (B, N)
    targets = torch.tensor([[0], [1]])  # (B, 1)
    loss = hparams["compute_cost"](cosines.unsqueeze(1), targets)
    assert torch.isfinite(loss) and loss > 0
    probs = pipeline.class_probabilities(cosines, hparams["classifier_temp"])
    # AAM cosines lie in [-1, 1]: the yaml's temperature makes a clear winner a confident one
    assert probs[0].argmax() == 0 and probs[0, 0] > 0.99
    assert torch.allclose(probs.sum(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="classifier_temp"):
        pipeline.class_probabilities(cosines, 0.0)


def test_cnn14_recipe_tiny(tiny_synthetic, tmp_path):
    output = tmp_path / "cnn14"
    argv = [CNN14_YAML, "--data_folder", str(tiny_synthetic), "--output_folder", str(output)]
    argv += ["--signal_length_s", "0.5", "--emb_dim", "16", "--batch_size", "2"]
    argv += ["--number_of_epochs", "1", "--train_fold_nums", "[1]"]
    summary = train_classifier.main(argv)
    assert summary["n_test_clips"] == 3
    hparams = _check_exports_load_strictly(output, CNN14_YAML, 3, emb_dim=16)
    # CNN14 gives logits: its probabilities are their softmax, its loss the usual cross-entropy
    logits, targets = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[1]])
    probs = pipeline.class_probabilities(logits, hparams["classifier_temp"])
    assert torch.allclose(probs, torch.softmax(logits, dim=1))
    expected = torch.nn.functional.cross_entropy(logits, targets[:, 0])
    assert torch.allclose(hparams["compute_cost"](logits.unsqueeze(1), targets), expected)


def test_conv2d_with_wham_noise(tiny_synthetic, tmp_path):
    noise_folder = tmp_path / "noise"
    noise_folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for index in range(2):
        noise = 0.1 * torch.randn(12000, generator=g)
        soundfile.write(noise_folder / f"noise{index}.wav", noise.numpy(), 16000)
    output = tmp_path / "wham"
    argv = [CONV2D_YAML, "--data_folder", str(tiny_synthetic), "--output_folder", str(output)]
    argv += TINY_CONV2D + ["--number_of_epochs", "1", "--add_wham_noise", "True"]
    argv += ["--wham_folder", str(tmp_path), "--wham_audio_folder", str(noise_folder)]
    summary = train_classifier.main(argv)
    assert summary["n_test_clips"] == 3
    assert "epoch: 1" in (output / "train_log.txt").read_text()


def test_batch_larger_than_training_set_is_an_error(tiny_synthetic, tmp_path):
    argv = [CONV2D_YAML, "--data_folder", str(tiny_synthetic), "--output_folder", str(tmp_path)]
    argv += ["--signal_length_s", "1", "--emb_dim", "8", "--batch_size", "64"]
    with pytest.raises(ValueError, match="lower --batch_size"):
        train_classifier.main(argv)
    assert not os.path.exists(tmp_path / "classifier.ckpt")


def test_source_augmentation_doubles_the_batch_with_targets_and_backgrounds(
    tiny_synthetic, tmp_path
):
    """A real run with both augmentations: the backgrounds csv lists the training
    backgrounds, and a training batch holds the mixtures and the augmented targets."""
    out = tmp_path / "clf"
    argv = [str(CONV2D_YAML), "--data_folder", str(tiny_synthetic), "--output_folder", str(out)]
    argv += ["--emb_dim", "8", "--lin_neurons", "8", "--batch_size", "4", "--signal_length_s", "1"]
    argv += ["--number_of_epochs", "1", "--train_on_sources", "True"]
    argv += ["--spectrogram_augment", "True"]
    summary = train_classifier.main(argv)
    assert summary["n_test_clips"] == 3

    with open(out / "manifest" / train_classifier.BACKGROUNDS_CSV, encoding="utf-8") as fin:
        rows = list(csv.DictReader(fin))
    assert len(rows) == 9  # folds 1-3 of 3 classes x 5 clips
    assert all(row["wav"].endswith("_background.wav") and Path(row["wav"]).is_file() for row in rows)

    # One training batch through the Brain's own augmentation path.
    from speechbrain.dataio.dataloader import make_dataloader

    from recipes.core.startup import prepare_run

    hparams, run_opts, _, _, datasets, _ = prepare_run(argv)
    train_classifier.prepare_source_augmentation(hparams, datasets["train"])
    brain = train_classifier.ClassifierBrain(
        modules=hparams["modules"], hparams=hparams, run_opts=run_opts
    )
    batch = next(iter(make_dataloader(datasets["train"], batch_size=4)))
    wavs = brain.training_waveforms(batch)
    assert wavs.shape == (8, batch.sig[0].shape[1])
    assert torch.equal(wavs[:4], batch.sig[0])  # the mixtures stay as they are
    assert torch.isfinite(wavs).all()
    peaks = wavs[4:].abs().amax(dim=1)
    gain_range = (hparams["source_gain_low"] - 1e-6, hparams["source_gain_high"] + 1e-6)
    assert ((peaks >= gain_range[0]) & (peaks <= gain_range[1])).all()
    # outside the events, the augmented half holds a background, not the clip's own
    assert not torch.allclose(wavs[4:], wavs[:4], atol=1e-3)
    brain.on_stage_start(train_classifier.sb.Stage.TRAIN)
    scores = brain.compute_forward(batch, train_classifier.sb.Stage.TRAIN)
    assert scores.shape[0] == 8
    loss = brain.compute_objectives(scores, batch, train_classifier.sb.Stage.TRAIN)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_the_augmented_half_is_the_target_event_alone_at_the_drawn_gain(tiny_synthetic, tmp_path, gain):
    """With the background 200 dB down (its factor 1 / (10^10 + 1)) and a fixed gain, each
    augmented clip is the clip's target event alone, peak-normalised, times the gain: not the
    mixture, and the gain applied after the normalisation (peaks = the gain)."""
    from speechbrain.dataio.dataloader import make_dataloader

    from recipes.core.startup import prepare_run

    argv = [str(CONV2D_YAML), "--data_folder", str(tiny_synthetic), "--output_folder", str(tmp_path / "clf")]
    argv += ["--emb_dim", "8", "--lin_neurons", "8", "--batch_size", "4", "--signal_length_s", "1"]
    argv += ["--train_on_sources", "True", "--background_snr_low", "200", "--background_snr_high", "200"]
    argv += ["--source_gain_low", str(gain), "--source_gain_high", str(gain)]
    hparams, run_opts, _, _, datasets, _ = prepare_run(argv)
    train_classifier.prepare_source_augmentation(hparams, datasets["train"])
    brain = train_classifier.ClassifierBrain(modules=hparams["modules"], hparams=hparams, run_opts=run_opts)
    batch = next(iter(make_dataloader(datasets["train"], batch_size=4)))
    wavs = brain.training_waveforms(batch)
    target = batch.target_sig[0]
    expected = gain * target / target.abs().amax(dim=1, keepdim=True)
    assert torch.allclose(wavs[4:], expected, atol=1e-6)
    assert wavs[4:].abs().amax(dim=1).tolist() == pytest.approx([gain] * 4, abs=1e-6)


def test_a_resume_that_ignores_a_new_lr_keeps_the_runs_lr_in_hyperparams_yaml(tiny_pretrained, tiny_synthetic, tmp_path):
    """Guards `keep_applied_settings`: a rerun of a finished run with --lr 0.01 warns that the lr
    is not applied (the optimiser's state comes back from the checkpoint) and now also leaves
    hyperparams.yaml saying the lr the run has (the yaml's 0.0002), not 0.01 (found by a probe:
    the folder's record of how the model was trained was false)."""
    folder = tmp_path / "classifier"
    shutil.copytree(tiny_pretrained["classifier"], folder)
    argv = [str(HPARAMS / "classifier_conv2d.yaml"), "--data_folder", str(tiny_synthetic), "--output_folder", str(folder)]
    train_classifier.main(argv + TINY + TINY_CLASSIFIER + ["--lr", "0.01"])
    lines = [line for line in (folder / "hyperparams.yaml").read_text().splitlines() if line.startswith("lr:")]
    assert lines == ["lr: 0.0002  # the checkpoints' (this start gave 0.01, not applied: a resume keeps the optimiser's state)"]
    assert saved_settings(str(folder / "hyperparams.yaml"))["lr"] == 0.0002  # what the next start compares
