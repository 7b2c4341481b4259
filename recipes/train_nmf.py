#!/usr/bin/env python3
"""Learns the NMF dictionary W (513 x K, non-negative) that L2I interprets with.

X = log1p|STFT| of the training folds (16 kHz, the interpreters' STFT, see
`recipes.pipeline.spectrogram`) is factorised as X^T ~ W H with W, H >= 0.
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

import json
import os
import time

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.logger import get_logger
from tqdm import tqdm

from recipes.common import prepare_run, save_atomic
from recipes.pipeline import EPS, spectrogram

logger = get_logger(__name__)

NMF_METHODS = ("mu", "amortized")


def _check_nonnegative_matrix(X, name="X"):
    if X.dim() != 2:
        raise ValueError(f"{name} must be a (F, N) matrix, got shape {tuple(X.shape)}.")
    if X.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(X.shape)}): no frames to factorise.")
    if not torch.isfinite(X).all() or (X < 0).any():
        raise ValueError(f"{name} must be finite and non-negative (NMF factorises X >= 0).")


def _random_factor(shape, scale, generator, like):
    """Uniform(0.1, 1) * scale: strictly positive (multiplicative updates keep zeros at zero)."""
    draw = torch.rand(shape, generator=generator, dtype=like.dtype)
    return ((0.1 + 0.9 * draw) * scale).to(like.device)


def _column_chunks(n_columns, chunk_size):
    return [
        slice(start, min(start + chunk_size, n_columns))
        for start in range(0, n_columns, chunk_size)
    ]


def update_activations(X, W, H, n_iter, l1=0.0, chunk_size=65536):
    """Multiplicative updates of H alone (W fixed), in place; returns H.

    H <- H * (W^T X) / (W^T W H + l1 + eps), column chunk by column chunk: the
    columns of H are independent once W is fixed, and W^T X is computed once.

    Arguments
    ---------
    X : torch.Tensor
        (F, N), non-negative.
    W : torch.Tensor
        (F, K), non-negative, fixed.
    H : torch.Tensor
        (K, N), positive initial activations (updated in place).
    n_iter : int
    l1 : float
        L1 weight on H.
    chunk_size : int
        Columns processed at once (bounds the memory of the temporaries).

    Returns
    -------
    torch.Tensor
        H, (K, N).
    """
    gram = W.T @ W  # (K, K)
    for columns in _column_chunks(X.shape[1], chunk_size):
        H_c = H[:, columns]  # (K, n) view
        numerator = W.T @ X[:, columns]  # (K, n)
        for _ in range(n_iter):
            H_c.mul_(numerator / (gram @ H_c + l1 + EPS))
    return H


def fit_activations(X, W, n_iter=200, l1=0.0, generator=None, chunk_size=65536):
    """Fits non-negative activations H for a fixed dictionary: X ~ W H.

    Arguments
    ---------
    X : torch.Tensor
        (F, N), non-negative data (e.g. log1p magnitude frames as columns).
    W : torch.Tensor
        (F, K), non-negative dictionary (not changed).
    n_iter : int
        Multiplicative updates of H.
    l1 : float
        L1 weight on H.
    generator : torch.Generator, optional
        Makes the initialisation deterministic.
    chunk_size : int
        Columns processed at once.

    Returns
    -------
    torch.Tensor
        H, (K, N), non-negative.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> W = torch.rand(20, 3, generator=g)
    >>> H_true = torch.rand(3, 50, generator=g)
    >>> H = fit_activations(W @ H_true, W, n_iter=300, generator=g)
    >>> relative_error(W @ H_true, W, H) < 1e-2
    True
    """
    _check_nonnegative_matrix(X)
    _check_nonnegative_matrix(W, "W")
    if W.shape[0] != X.shape[0]:
        raise ValueError(f"W has {W.shape[0]} rows but X has {X.shape[0]} (frequency bins).")
    W = W.to(X)
    scale = (X.mean() / W.mean().clamp_min(EPS) / W.shape[1]).clamp_min(EPS)
    H = _random_factor((W.shape[1], X.shape[1]), scale, generator, X)  # (K, N)
    return update_activations(X, W, H, n_iter, l1=l1, chunk_size=chunk_size)


def relative_error(X, W, H, chunk_size=65536):
    """||X - W H||_F / ||X||_F, computed chunk by chunk (float).

    Example
    -------
    >>> W, H = torch.ones(4, 1), torch.ones(1, 6)
    >>> relative_error(W @ H, W, H)
    0.0
    """
    residual, total = 0.0, 0.0
    for columns in _column_chunks(X.shape[1], chunk_size):
        X_c = X[:, columns].double()
        residual += (X_c - W.double() @ H[:, columns].double()).pow(2).sum().item()
        total += X_c.pow(2).sum().item()
    return (residual / max(total, EPS)) ** 0.5


def nmf_multiplicative_update(
    X, K, n_iter, l1=0.0, W=None, generator=None, tol=0.0, chunk_size=65536, progressbar=False
):
    """Euclidean NMF X ~ W H by Lee & Seung multiplicative updates.

    One iteration updates H (with an optional L1 penalty), then W, then
    rescales the atoms (columns of W) to unit norm and H accordingly, which
    leaves W H unchanged. Without L1 the error never increases. The frames
    are processed in chunks of `chunk_size` columns: only W, H and K x K /
    F x K statistics are held besides X.

    Arguments
    ---------
    X : torch.Tensor
        (F, N), non-negative.
    K : int
        Number of atoms.
    n_iter : int
        Maximum number of iterations.
    l1 : float
        L1 weight on H (sparse activations); 0 for plain NMF.
    W : torch.Tensor, optional
        (F, K) initial dictionary (warm start); random when None.
    generator : torch.Generator, optional
        Seeded generator for the random initialisation (deterministic runs).
    tol : float
        Stops early when an iteration lowers the relative error by less than
        `tol` times its value; 0 runs all `n_iter` iterations.
    chunk_size : int
        Columns processed at once.
    progressbar : bool
        Shows a tqdm bar over the iterations.

    Returns
    -------
    W : torch.Tensor
        (F, K), non-negative, unit-norm columns.
    H : torch.Tensor
        (K, N), non-negative.
    errors : list of float
        ||X - W H|| / ||X|| after each iteration.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.rand(30, 4, generator=g) @ torch.rand(4, 60, generator=g)
    >>> W, H, errors = nmf_multiplicative_update(X, K=4, n_iter=100, generator=g)
    >>> W.shape, H.shape, errors[-1] < errors[0]
    (torch.Size([30, 4]), torch.Size([4, 60]), True)
    >>> abs(errors[-1] - relative_error(X, W, H)) < 1e-4
    True
    """
    _check_nonnegative_matrix(X)
    n_freq, n_frames = X.shape
    if int(K) != K or K < 1:
        raise ValueError(f"K must be a positive integer, got {K!r}.")
    if int(n_iter) != n_iter or n_iter < 1:
        raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}.")
    if l1 < 0:
        raise ValueError(f"l1 must be >= 0, got {l1}.")
    scale = (X.mean() / K).sqrt().clamp_min(EPS)
    if W is None:
        W = _random_factor((n_freq, K), scale, generator, X)  # (F, K)
    else:
        if tuple(W.shape) != (n_freq, K):
            raise ValueError(f"W must be ({n_freq}, {K}), got {tuple(W.shape)}.")
        _check_nonnegative_matrix(W, "W")
        W = W.to(X).clone().clamp_min(EPS)
    H = _random_factor((K, n_frames), scale, generator, X)  # (K, N)
    chunks = _column_chunks(n_frames, chunk_size)
    x_norm2 = sum(X[:, c].double().pow(2).sum().item() for c in chunks)
    errors = []
    for _ in tqdm(range(int(n_iter)), disable=not progressbar, desc="MU NMF"):
        gram = W.T @ W  # (K, K)
        XHt = torch.zeros_like(W)  # (F, K) = X H^T
        HHt = torch.zeros_like(gram)  # (K, K) = H H^T
        for columns in chunks:
            X_c, H_c = X[:, columns], H[:, columns]  # (F, n), (K, n)
            H_c.mul_((W.T @ X_c) / (gram @ H_c + l1 + EPS))
            XHt += X_c @ H_c.T
            HHt += H_c @ H_c.T
        W = W * XHt / (W @ HHt + EPS)  # (F, K)
        # ||X - WH||^2 = ||X||^2 - 2 <W, X H^T> + <W^T W, H H^T>, no extra pass over X
        err2 = x_norm2 - 2 * (W * XHt).double().sum().item()
        err2 += ((W.T @ W) * HHt).double().sum().item()
        errors.append(max(err2, 0.0) ** 0.5 / max(x_norm2, EPS) ** 0.5)
        norms = W.norm(dim=0).clamp_min(EPS)  # (K,)
        W = W / norms
        H.mul_(norms[:, None])
        if tol > 0 and len(errors) > 1 and errors[-2] - errors[-1] < tol * errors[-2]:
            break
    return W, H, errors


def collect_frames(dataset, hparams, device, max_frames=None, generator=None):
    """log1p |STFT| frames of a dataset as the columns of one matrix.

    Frames that are exactly zero (digital silence, zero padding) are dropped:
    they are reconstructed exactly by any W with H = 0.

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
        for batch in loader:
            wavs = batch.sig.data.to(device)  # (B, T)
            X, _ = spectrogram(wavs, hparams["compute_stft"])  # (B, frames, F)
            X = X.reshape(-1, X.shape[-1])  # (B * frames, F)
            if max_frames and keep_fraction is None:
                total = n_clips * X.shape[0] / wavs.shape[0]
                keep_fraction = min(1.0, max_frames / total)
            if keep_fraction is not None and keep_fraction < 1.0:
                keep = torch.rand(X.shape[0], generator=generator) < keep_fraction
                X = X[keep.to(X.device)]
            frames.append(X[X.sum(dim=1) > 0])
    matrix = torch.cat(frames).T.contiguous()  # (F, N)
    if matrix.shape[1] == 0:
        raise ValueError(
            "All frames of the data are silent: check the audio in "
            f"{hparams['audio_data_folder']} (NMF needs non-silent clips)."
        )
    return matrix


class AmortizedNMF(sb.Brain):
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
    brain = AmortizedNMF(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    loader_opts = {"batch_size": hparams["batch_size"], "shuffle": True, "num_workers": 0}
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=loader_opts,
        valid_loader_kwargs={**loader_opts, "shuffle": False},
    )
    if hparams["checkpointer"].recover_if_possible(min_key="rel_err") is None:
        raise ValueError(
            f"No checkpoint in {hparams['save_folder']}: train at least one epoch "
            "(--number_of_epochs >= 1)."
        )
    return hparams["nmf_decoder"].return_W().detach()  # (F, K)


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
    save_atomic(lambda tmp: torch.save(state, tmp), path)


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_atoms(W, path, sample_rate):
    """Writes the atoms (columns of W) sorted by spectral centroid, as an image."""
    plt = _figure()
    W = W.detach().cpu()
    bins = torch.arange(W.shape[0], dtype=W.dtype)[:, None]  # (F, 1)
    centroid = (W * bins).sum(0) / W.sum(0).clamp_min(EPS)  # (K,)
    atoms = W[:, centroid.argsort()]
    atoms = atoms / atoms.amax(dim=0, keepdim=True).clamp_min(EPS)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.imshow(
        atoms.numpy(),
        origin="lower",
        aspect="auto",
        cmap="magma",
        interpolation="nearest",
        extent=(0, W.shape[1], 0, sample_rate / 2000),
    )
    ax.set_xlabel("atom (sorted by spectral centroid)")
    ax.set_ylabel("frequency (kHz)")
    ax.set_title(f"NMF dictionary W ({W.shape[0]} bins x {W.shape[1]} atoms), max-normalised")
    fig.tight_layout()
    save_atomic(lambda tmp: fig.savefig(tmp, format="png", dpi=100), path)
    plt.close(fig)


def plot_reconstructions(clip_ids, X, W, path, n_iter, generator):
    """Writes a few clips' X next to their reconstruction W H (H fitted, W fixed).

    Arguments
    ---------
    clip_ids : list of str
    X : torch.Tensor
        log1p magnitude spectrograms of the clips, (n, frames, F).
    W : torch.Tensor
        (F, K) dictionary.
    path : str
    n_iter : int
        Multiplicative updates of H.
    generator : torch.Generator
    """
    plt = _figure()
    n_clips, n_frames, n_freq = X.shape
    H = fit_activations(X.reshape(-1, n_freq).T, W, n_iter=n_iter, generator=generator)
    reconstruction = (W @ H).T.reshape(n_clips, n_frames, n_freq)  # (n, frames, F)
    errors = (X - reconstruction).pow(2).sum(dim=(1, 2)).sqrt()  # (n,)
    errors = errors / X.pow(2).sum(dim=(1, 2)).sqrt().clamp_min(EPS)
    fig, axes = plt.subplots(n_clips, 2, figsize=(10, 2.4 * n_clips), squeeze=False)
    for row in range(n_clips):  # figure panels
        vmax = float(X[row].max())
        panels = (
            (X[row], f"{clip_ids[row]}: X"),
            (reconstruction[row], f"W H (rel. error {float(errors[row]):.3f})"),
        )
        for col, (image, title) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(
                image.T.cpu().numpy(),
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=0,
                vmax=vmax,
            )
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("frame")
            ax.set_ylabel("frequency bin")
    fig.tight_layout()
    save_atomic(lambda tmp: fig.savefig(tmp, format="png", dpi=90), path)
    plt.close(fig)


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

    def write_json(tmp):
        with open(tmp, "w", encoding="utf-8") as fout:
            json.dump(metrics, fout, indent=2)

    save_atomic(write_json, os.path.join(output_folder, "nmf_metrics.json"))
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
    )
    return metrics


if __name__ == "__main__":
    main()
