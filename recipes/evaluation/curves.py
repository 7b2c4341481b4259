"""Deletion and insertion curves: faithfulness without a threshold.

A mask ranks the time-frequency bins of its clip, the highest value first
(ties in a random order, drawn from a generator). Along that ranking:

- **deletion**: the top 0 %, 5 %, ..., 100 % of the bins (`CURVE_FRACTIONS`)
  are removed from X, i.e. set to the deletion value; a mask that found the
  evidence makes the classifier's p_c fall fast (a low AUC is better);
- **insertion**: the same bins are revealed, in the same order, on a
  spectrogram that holds the deletion value everywhere else; p_c rises fast
  for a good mask (a high AUC is better).

c is the classifier's predicted class on the whole clip and p_c its softmax
probability (with `classifier_temp`), so every curve starts (deletion) or ends
(insertion) at p_c(X) and the other end is p_c of the deletion value alone.
The AUC is the trapezoid area under the curve over the removed share of bins
in [0, 1]: as p_c lies in [0, 1], so does every AUC.

The deletion value (`--deletion_value`):

- `zero` (default): a removed bin is silent (log1p magnitude 0);
- `noise_floor`: a removed bin takes the clip's noise floor in its frequency
  band, the `NOISE_FLOOR_QUANTILE` quantile of the bin's log1p magnitude
  over the clip's frames (a minimum-statistics estimate of the stationary
  background), so the removal leaves a clip that still sounds like its room
  rather than digital silence, which is off the training distribution.

The curves run batched: the spectrograms of many (clip, step) pairs go to the
classifier in one call (`max_batch` inputs), not a loop over clips or steps.

Authors
 * audio-interpret contributors 2026
"""

import zlib

import torch

#: The shares of the bins removed (deletion) or revealed (insertion): steps of 5 %.
CURVE_FRACTIONS = tuple(round(0.05 * step, 2) for step in range(21))
#: `--deletion_value` choices.
DELETION_VALUES = ("zero", "noise_floor")
#: The noise floor of a frequency bin: this quantile of its values over the frames.
NOISE_FLOOR_QUANTILE = 0.1
#: The curves' metric names in the tables.
CURVE_METRICS = ("deletion_auc", "insertion_auc")


def deletion_reference(X, deletion_value="zero"):
    """What a removed bin becomes, broadcastable to X (B, frames, F).

    Example
    -------
    >>> X = torch.tensor([[[1.0, 4.0], [3.0, 2.0], [2.0, 6.0]]])
    >>> deletion_reference(X, "noise_floor")  # per frequency bin, over the 3 frames
    tensor([[[1.2000, 2.4000]]])
    """
    if deletion_value == "zero":
        return torch.zeros_like(X[:, :1, :])  # (B, 1, F)
    if deletion_value == "noise_floor":
        return torch.quantile(X.float(), NOISE_FLOOR_QUANTILE, dim=1, keepdim=True).to(X.dtype)
    raise ValueError(
        f"--deletion_value {deletion_value!r}: choose one of {', '.join(DELETION_VALUES)}."
    )


def tie_generator(seed, clip, method):
    """The generator of one mask's tie order on one clip: from the seed, the clip's index in
    the test set and the method's name alone, so the same mask on the same clip gets the same
    curves in every evaluation (the reference rows of L2I's, PIQ's and L-MAC's agree) whatever
    the batch size and whatever the other masks drew before it.

    Example
    -------
    >>> a = tie_generator(1234, 16, "ground_truth").initial_seed()
    >>> a == tie_generator(1234, 16, "ground_truth").initial_seed() != tie_generator(1234, 16, "lmac").initial_seed()
    True
    """
    return torch.Generator().manual_seed(((seed * 1_000_003 + clip) * 4_294_967_311 + zlib.crc32(method.encode())) % 2**63)


def bin_ranks(mask, generator=None):
    """Each bin's place in the mask's ranking, 0 for the highest value, (B, frames, F).

    Equal values (e.g. the zeros of a sparse mask) are ranked in a random
    order from `generator`, not by position, which would delete the clip's
    start first. One sort of a 64-bit key per clip: the float32 value's bits
    made order-preserving in the high half, a random 32-bit tie-breaker in
    the low half.

    Example
    -------
    >>> bin_ranks(torch.tensor([[[0.2, 0.9], [0.5, 0.1]]]))
    tensor([[[2, 0],
             [1, 3]]])
    """
    flat = mask.detach().flatten(start_dim=1).float().cpu() + 0.0  # (B, D); -0.0 -> 0.0
    bits = flat.view(torch.int32).long()
    # IEEE-754 order: positive floats sort as their bits, negative ones reversed
    ordered = torch.where(bits < 0, -(bits & 0x7FFFFFFF), bits)  # (B, D), monotonic in the value
    if isinstance(generator, (list, tuple)):  # one generator per clip
        ties = torch.stack([torch.randint(0, 2**31, flat.shape[1:], generator=g, dtype=torch.long) for g in generator])
    else:
        ties = torch.randint(0, 2**31, flat.shape, generator=generator, dtype=torch.long)
    key = ordered * 2**31 + ties
    order = torch.argsort(key, dim=1, descending=True)  # (B, D) bin indices, best first
    ranks = torch.empty_like(order)
    positions = torch.arange(flat.shape[1]).expand_as(order)
    ranks.scatter_(1, order, positions)
    return ranks.view(mask.shape).to(mask.device)


def step_counts(n_bins, fractions=CURVE_FRACTIONS):
    """The number of bins removed at each step, (S,).

    Example
    -------
    >>> step_counts(10, (0.0, 0.25, 0.5, 1.0)).tolist()
    [0, 2, 5, 10]
    """
    return torch.tensor([int(round(f * n_bins)) for f in fractions])


def endpoint_probabilities(probability_fn, X, classes, deletion_value="zero", probs=None):
    """p_c of the whole clips and of the deletion value alone: the curves' two ends, (B,) each.

    Shared by every mask of a batch (`probability_curves`' `ends`). `probs`,
    the classifier's probabilities on X (B, N) when the caller has them, saves
    the pass on X.
    """
    reference = deletion_reference(X, deletion_value).expand_as(X)
    inputs = reference if probs is not None else torch.cat([X, reference])
    computed = probability_fn(inputs)  # (B or 2B, N)
    probs = computed if probs is None else torch.cat([probs, computed])
    full, empty = probs.gather(1, classes.repeat(2).view(-1, 1)).squeeze(1).float().chunk(2)
    return full, empty


def probability_curves(
    probability_fn,
    X,
    mask,
    classes,
    deletion_value="zero",
    generator=None,
    fractions=CURVE_FRACTIONS,
    max_batch=16,
    ends=None,
):
    """p_c along the deletion and insertion of the mask's ranked bins, per clip.

    Arguments
    ---------
    probability_fn : callable
        X (n, frames, F) -> class probabilities (n, N): the frozen classifier.
    X : torch.Tensor
        The clips' spectrograms (B, frames, F).
    mask : torch.Tensor
        The method's mask (B, frames, F); only its ranking matters.
    classes : torch.Tensor
        The explained class per clip (B,): the prediction on X.
    deletion_value : str
        "zero" or "noise_floor" (`deletion_reference`).
    generator : torch.Generator or list of torch.Generator, optional
        Breaks ties of the ranking (a list: one per clip).
    fractions : tuple of float
        The removed shares, from 0 to 1.
    max_batch : int
        Spectrograms per classifier call. 16, not more: on CPU the Conv2d classifier's
        activations of a larger call no longer stay in the cache (the demo's curves: 1.15
        against 1.4 ms per input at 64; the same values to the bit).
    ends : tuple of torch.Tensor, optional
        `endpoint_probabilities(...)` of the batch, computed here when not given.
        Nothing is removed at fraction 0 and everything at 1, so these steps
        need no classifier call of their own.

    Returns
    -------
    dict
        {"deletion": (B, S), "insertion": (B, S)} p_c at each fraction.

    Example
    -------
    >>> reads_bin_0 = lambda X: torch.stack([X[:, 0, 0], 1 - X[:, 0, 0]], dim=1)
    >>> X = torch.ones(1, 2, 2)
    >>> curves = probability_curves(reads_bin_0, X, torch.tensor([[[1.0, 0], [0, 0]]]),
    ...                             torch.tensor([0]), fractions=(0.0, 0.25, 1.0))
    >>> curves["deletion"], curves["insertion"]
    (tensor([[1., 0., 0.]]), tensor([[0., 1., 1.]]))
    """
    B = X.shape[0]
    full, empty = ends if ends is not None else endpoint_probabilities(probability_fn, X, classes, deletion_value)
    reference = deletion_reference(X, deletion_value)  # broadcastable to (n, frames, F) per clip
    ranks = bin_ranks(mask, generator).to(X.device, torch.int32)  # (B, frames, F)
    n_bins = ranks[0].numel()
    counts = step_counts(n_bins, fractions).tolist()
    deletion = torch.empty(B, len(counts), device=X.device)
    insertion = torch.empty(B, len(counts), device=X.device)
    for step, count in enumerate(counts):  # the ends: nothing / everything removed
        if count == 0:
            deletion[:, step], insertion[:, step] = full, empty
        elif count == n_bins:
            deletion[:, step], insertion[:, step] = empty, full
    # the other (clip, step, kind) jobs, kind False deletion / True insertion, batched
    inner = [(step, count) for step, count in enumerate(counts) if 0 < count < n_bins]
    if not inner:
        return {"deletion": deletion, "insertion": insertion}
    jobs = [(clip, step, count, kind) for clip in range(B) for step, count in inner for kind in (False, True)]
    reference = reference.expand_as(X)
    for start in range(0, len(jobs), max_batch):
        part = jobs[start : start + max_batch]
        inputs = torch.empty((len(part), *X.shape[1:]), dtype=X.dtype, device=X.device)
        first = 0
        while first < len(part):  # the chunk's rows of one clip at a time, by broadcasting
            clip = part[first][0]
            last = first
            while last < len(part) and part[last][0] == clip:
                last += 1
            count = torch.tensor([job[2] for job in part[first:last]], device=X.device, dtype=torch.int32)
            inserting = torch.tensor([job[3] for job in part[first:last]], device=X.device)
            chosen = ranks[clip] < count.view(-1, 1, 1)  # (n, frames, F): the top bins
            # deletion: the chosen bins take the reference; insertion: only the chosen keep X
            torch.where(chosen != inserting.view(-1, 1, 1), reference[clip], X[clip], out=inputs[first:last])
            first = last
        probs = probability_fn(inputs)  # (n, N): one classifier call for the chunk
        clips = torch.tensor([job[0] for job in part], device=X.device)
        p_c = probs.gather(1, classes[clips].view(-1, 1)).squeeze(1).float()
        for (clip, step, _, kind), value in zip(part, p_c.tolist()):
            (insertion if kind else deletion)[clip, step] = value
    return {"deletion": deletion, "insertion": insertion}


def masks_curves(probability_fn, X, masks, classes, seed, start, deletion_value="zero", ends=None):
    """`probability_curves` of each of a batch's masks, {method: curves}, the ties of each mask
    on each clip broken by its own `tie_generator(seed, start + i, method)` (`start`: the
    batch's first clip in the test set): a mask's curves on a clip do not depend on the batch
    size, nor on which other masks the evaluation scores, or in which order.

    Example
    -------
    >>> reads_first_bins = lambda X: torch.stack([X[:, 0, :2].mean(1), 1 - X[:, 0, :2].mean(1)], dim=1)
    >>> X, flat = torch.ones(1, 2, 2), torch.ones(1, 2, 2)  # a mask of ties only
    >>> alone = masks_curves(reads_first_bins, X, {"ground_truth": flat}, torch.tensor([0]), 7, 0)
    >>> after = masks_curves(reads_first_bins, X, {"lmac": torch.rand(1, 2, 2), "ground_truth": flat},
    ...                      torch.tensor([0]), 7, 0)
    >>> bool(torch.equal(alone["ground_truth"]["deletion"], after["ground_truth"]["deletion"]))
    True
    """
    if ends is None:
        ends = endpoint_probabilities(probability_fn, X, classes, deletion_value)
    return {
        method: probability_curves(
            probability_fn, X, mask, classes, deletion_value,
            [tie_generator(seed, start + i, method) for i in range(X.shape[0])], ends=ends,
        )  # fmt: skip
        for method, mask in masks.items()
    }


def curve_auc(curve, fractions=CURVE_FRACTIONS):
    """Trapezoid area under p_c over the removed share of bins, (B,) in [0, 1].

    Example
    -------
    >>> curve_auc(torch.tensor([[1.0, 0.5, 0.0]]), (0.0, 0.5, 1.0))
    tensor([0.5000])
    """
    x = torch.tensor(fractions, dtype=curve.dtype, device=curve.device)
    return torch.trapezoid(curve, x, dim=1)


def curve_metrics(curves, fractions=CURVE_FRACTIONS):
    """The per-clip AUCs of `probability_curves`' output: {"deletion_auc", "insertion_auc"} (B,)."""
    return {f"{kind}_auc": curve_auc(curves[kind], fractions) for kind in ("deletion", "insertion")}


def curve_step_values(curves):
    """The curves as per-clip values per step, {"deletion_00": (B,), ...}, for `StageStats`."""
    return {
        f"{kind}_{step:02d}": curves[kind][:, step]
        for kind in ("deletion", "insertion")
        for step in range(curves[kind].shape[1])
    }


def mean_curves(step_means, fractions=CURVE_FRACTIONS):
    """`StageStats.summary()` of `curve_step_values` back to {"deletion": [S], "insertion": [S]}.

    Example
    -------
    >>> mean_curves({"deletion_00": 1.0, "deletion_01": 0.2, "insertion_00": 0.1,
    ...              "insertion_01": 0.9}, (0.0, 1.0))
    {'deletion': [1.0, 0.2], 'insertion': [0.1, 0.9]}
    """
    return {
        kind: [step_means[f"{kind}_{step:02d}"] for step in range(len(fractions))]
        for kind in ("deletion", "insertion")
    }
