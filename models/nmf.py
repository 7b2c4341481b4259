"""Non-negative matrix factorisation X ~ W H: the maths of the NMF dictionary L2I uses.

Lee & Seung multiplicative updates for the Euclidean loss (with an optional L1
penalty on H), computed in chunks of columns so that a whole training set of
log1p |STFT| frames fits in memory. `recipes/train_nmf.py` learns W with
`nmf_multiplicative_update` (or amortized, with `models.L2I.NMFEncoder`) and
scores it with `fit_activations` + `relative_error`; the dictionary itself is
saved as a `models.L2I.NMFDecoderAudio`.

Reference: D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix
factorization", NeurIPS 2000.

Authors
 * audio-interpret contributors 2026
"""

import torch
from tqdm import tqdm

from data_prep.audio import EPS  # guards the divisions of the updates


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
