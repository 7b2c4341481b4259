#!/usr/bin/env python3
"""Learns the NMF dictionary W (513 x K, non-negative) that L2I interprets with.

X = log1p|STFT| of the training folds (16 kHz, the interpreters' STFT, see
`recipes.core.pipeline.spectrogram`) is factorised as X^T ~ W H with W, H >= 0.
Two methods, picked by `nmf_method` in the yaml:

- `mu`: Lee & Seung multiplicative updates (Euclidean loss, optional L1 on H)
  over all training frames, in chunks of frames;
- `amortized`: `models.L2I.NMFEncoder` predicts H from X, `NMFDecoderAudio`
  holds W; both trained by gradient descent on the reconstruction error.

Both are scored the same way: W fixed, H fitted on the valid folds by
multiplicative updates, relative error ||X - W H|| / ||X||.

To run:

    python recipes/train_nmf.py hparams/nmf.yaml --data_folder /path/to/ESC-50

Outputs in <output_folder>: `nmf_decoder.ckpt` (state dict of
`NMFDecoderAudio(n_comp=K, n_freq=513)`), `nmf_metrics.json`, `nmf_atoms.png`,
`nmf_reconstructions.png`, `train_log.txt`.

Authors
 * audio-interpret contributors 2026
"""

import os
import time

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.logger import get_logger

from data_prep.audio import EPS
from data_prep.files import write_atomic, write_json
from models.nmf import fit_activations, nmf_multiplicative_update, relative_error
from recipes.core.brains import OneLinePerEpoch, build_brain
from recipes.core.pipeline import spectrogram
from recipes.core.startup import prepare_run
from recipes.reporting.figures import plot_atoms, plot_reconstructions

logger = get_logger(__name__)

NMF_METHODS = ("mu", "amortized")


def collect_frames(dataset, hparams, device, max_frames=None, generator=None):
    """log1p |STFT| frames of a dataset as the columns of one matrix.

    Frames that are exactly zero are dropped: they are reconstructed exactly by
    any W with H = 0. Digital silence and zero padding are not exactly zero
    here (SpeechBrain's magnitude adds eps: log1p |STFT| = 1e-7) and are kept,
    as the published dictionaries were learned; data with no frame above that
    floor is refused.

    Arguments
    ---------
    dataset : DynamicItemDataset
        Items with a "sig" key.
    hparams : dict
        Needs `compute_stft`, `batch_size`.
    device : str
    max_frames : int, optional
        Keeps a random subset of about this many frames (memory bound).
    generator : torch.Generator, optional
        Seeded generator of the subset.

    Returns
    -------
    torch.Tensor
        (F, N) on `device`.
    """
    loader = make_dataloader(dataset, batch_size=hparams["batch_size"], shuffle=False)
    n_clips = len(dataset)
    frames = []
    keep_fraction = None
    with torch.no_grad():
        silence = torch.zeros(1, hparams["compute_stft"].n_fft, device=device)
        floor = spectrogram(silence, hparams["compute_stft"])[0].max()  # digital silence's X
        loudest = floor.clone()
        for batch in loader:
            wavs = batch.sig.data.to(device)  # (B, T)
            X, _ = spectrogram(wavs, hparams["compute_stft"])  # (B, frames, F)
            X = X.reshape(-1, X.shape[-1])  # (B * frames, F)
            loudest = torch.maximum(loudest, X.max())
            if max_frames and keep_fraction is None:
                total = n_clips * X.shape[0] / wavs.shape[0]
                keep_fraction = min(1.0, max_frames / total)
            if keep_fraction is not None and keep_fraction < 1.0:
                keep = torch.rand(X.shape[0], generator=generator) < keep_fraction
                X = X[keep.to(X.device)]
            frames.append(X[X.sum(dim=1) > 0])
    matrix = torch.cat(frames).T.contiguous()  # (F, N)
    if matrix.shape[1] == 0 or not loudest > floor:
        raise ValueError(
            "All frames of the data are silent: check the audio in "
            f"{hparams['audio_data_folder']} (NMF needs non-silent clips)."
        )
    return matrix


class AmortizedNMF(OneLinePerEpoch, sb.Brain):
    """NMFEncoder predicts H from X, NMFDecoderAudio holds W: X ~ relu(W) H."""

    def compute_forward(self, batch, stage):
        """Waveforms -> X^T (B, F, T) -> H (B, K, T) -> reconstruction (B, F, T)."""
        batch = batch.to(self.device)
        X, _ = spectrogram(batch.sig.data, self.hparams.compute_stft)  # (B, T, F)
        X = X.transpose(1, 2)  # (B, F, T)
        H = self.modules.nmf_encoder(X)  # (B, K, T)
        return self.modules.nmf_decoder(H), X, H

    def compute_objectives(self, predictions, batch, stage):
        """Mean squared reconstruction error (+ L1 on H); tracks the relative error."""
        reconstruction, X, H = predictions
        self.residual_power += (X - reconstruction).detach().pow(2).sum().item()
        self.signal_power += X.pow(2).sum().item()
        return F.mse_loss(reconstruction, X) + self.hparams.nmf_l1 * H.mean()

    def on_stage_start(self, stage, epoch=None):
        """Resets the relative-error sums."""
        self.residual_power = 0.0
        self.signal_power = 0.0

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs loss and relative error; keeps the checkpoint of lowest valid error."""
        stats = {
            "loss": stage_loss,
            "rel_err": (self.residual_power / max(self.signal_power, EPS)) ** 0.5,
        }
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
        elif stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(meta=stats, min_keys=["rel_err"])


def train_amortized(hparams, run_opts, datasets):
    """Trains encoder + decoder; returns the dictionary of the best checkpoint (F, K)."""
    brain = build_brain(AmortizedNMF, hparams, run_opts)
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["train_dataloader_opts"],
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    if hparams["checkpointer"].recover_if_possible(min_key="rel_err") is None:
        raise ValueError(
            f"No checkpoint in {hparams['save_folder']}: train at least one epoch "
            "(--number_of_epochs >= 1)."
        )
    return hparams["nmf_decoder"].return_W().detach()  # (F, K)


def check_dictionary(W, valid_error, method):
    """A ValueError for a dictionary with no positive entry; a warning for one that reconstructs
    almost nothing of the valid frames (relative error >= 0.95), before it is saved.

    Example
    -------
    >>> check_dictionary(torch.zeros(3, 2), 1.0, "amortized")
    Traceback (most recent call last):
    ...
    ValueError: The amortized dictionary has no positive entry (valid relative error 1.000): every atom is dead, and L2I would explain nothing with it. With --nmf_method amortized lower --lr (its ReLUs died) or train more epochs; or use --nmf_method mu.
    """
    if not bool((W > 0).any()):
        raise ValueError(
            f"The {method} dictionary has no positive entry (valid relative error "
            f"{valid_error:.3f}): every atom is dead, and L2I would explain nothing with it. With "
            "--nmf_method amortized lower --lr (its ReLUs died) or train more epochs; or use "
            "--nmf_method mu."
        )
    if valid_error >= 0.95:
        logger.warning(
            "The %s dictionary reconstructs almost nothing of the valid frames (relative error "
            "%.3f): check K and the data, or, with --nmf_method amortized, lower --lr.",
            method,
            valid_error,
        )


def save_decoder(W, decoder, path):
    """Writes `W` (F, K, non-negative) as the state dict of `decoder` (NMFDecoderAudio).

    The decoder applies relu to its W, a no-op on a non-negative W, so the
    saved module computes exactly W @ H.
    """
    if tuple(decoder.return_W().shape) != tuple(W.shape):
        raise ValueError(
            f"The dictionary is {tuple(W.shape)} but the yaml's nmf_decoder holds "
            f"{tuple(decoder.return_W().shape)}: K and n_fft must agree."
        )
    with torch.no_grad():
        decoder.W.copy_(W.clamp_min(0.0))
    state = {name: value.detach().cpu() for name, value in decoder.state_dict().items()}
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def main(argv=None):
    """Learns, scores and saves the dictionary; returns the metrics dict."""
    hparams, run_opts, _, _, datasets, _ = prepare_run(argv, recipe_file=__file__)
    method = hparams["nmf_method"]
    if method not in NMF_METHODS:
        raise ValueError(f"nmf_method {method!r} is unknown: use one of {NMF_METHODS}.")
    device = run_opts.get("device", "cpu")
    generator = torch.Generator().manual_seed(hparams["seed"])
    K = hparams["K"]

    start = time.perf_counter()
    if method == "mu":
        X_train = collect_frames(
            datasets["train"], hparams, device, hparams["nmf_max_frames"], generator
        )
        logger.info(
            "MU NMF: %d training frames x %d bins, K = %d.", X_train.shape[1], X_train.shape[0], K
        )
        W, _, errors = nmf_multiplicative_update(
            X_train,
            K,
            hparams["nmf_n_iter"],
            l1=hparams["nmf_l1"],
            generator=generator,
            tol=hparams["nmf_tol"],
            chunk_size=hparams["nmf_chunk_size"],
            progressbar=True,
        )
        train_error = errors[-1]
        for iteration in range(0, len(errors), max(1, len(errors) // 10)):
            hparams["train_logger"].log_stats(
                stats_meta={"method": "mu", "iteration": iteration + 1},
                train_stats={"rel_err": errors[iteration]},
                verbose=False,
            )
        hparams["train_logger"].log_stats(
            stats_meta={"method": "mu", "iteration": len(errors)},
            train_stats={"rel_err": train_error},
        )
        del X_train
    else:
        W = train_amortized(hparams, run_opts, datasets).to(device)
        train_error, errors = None, None
    train_time = time.perf_counter() - start

    X_valid = collect_frames(datasets["valid"], hparams, device)
    H_valid = fit_activations(
        X_valid,
        W,
        n_iter=hparams["nmf_valid_n_iter"],
        generator=generator,
        chunk_size=hparams["nmf_chunk_size"],
    )
    valid_error = relative_error(X_valid, W, H_valid, hparams["nmf_chunk_size"])
    total_time = time.perf_counter() - start
    hparams["train_logger"].log_stats(
        stats_meta={"method": method, "K": K},
        valid_stats={"rel_err": valid_error},
    )
    check_dictionary(W, valid_error, method)
    metrics = {
        "method": method,
        "K": K,
        "valid_relative_error": valid_error,
        "train_relative_error": train_error,
        "train_time_s": train_time,
        "total_time_s": total_time,
        "n_valid_frames": X_valid.shape[1],
        "valid_fit_iterations": hparams["nmf_valid_n_iter"],
        "mu_train_errors": errors,  # relative error after each MU iteration (mu only)
    }
    logger.info(
        "NMF (%s, K = %d): valid relative error %.4f (W fixed, H fitted), %.1f s.",
        method,
        K,
        valid_error,
        total_time,
    )
    if not if_main_process():
        return metrics

    output_folder = hparams["output_folder"]
    save_decoder(W, hparams["nmf_decoder"], os.path.join(output_folder, "nmf_decoder.ckpt"))

    write_json(metrics, os.path.join(output_folder, "nmf_metrics.json"))
    plot_atoms(W, os.path.join(output_folder, "nmf_atoms.png"), hparams["sample_rate"])
    with torch.no_grad():
        batch = next(iter(make_dataloader(datasets["valid"], batch_size=hparams["n_plot_clips"])))
        X_plot, _ = spectrogram(batch.sig.data.to(device), hparams["compute_stft"])
    plot_reconstructions(
        batch.id,
        X_plot,
        W,
        os.path.join(output_folder, "nmf_reconstructions.png"),
        hparams["nmf_valid_n_iter"],
        generator,
        hparams["sample_rate"],
        batch.sig.data.shape[1] / hparams["sample_rate"],
    )
    return metrics


if __name__ == "__main__":
    main()
