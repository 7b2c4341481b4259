"""The interpretation metric suite: one pure, batched function per metric.

Every function takes whole batches and returns one value per clip (B,), so a
stage's figure is the mean (or median) of the values of all its clips. With
`c` the classifier's predicted class on the input and `p` its softmax:

- `fid_in`: 1 where argmax p(X_int) == c.
- `faithfulness` (FF): p_c(X) - p_c(X - X_int).
- `average_increase` (AI): 100 where p_c(X_int) > p_c(X).
- `average_drop` (AD): 100 * max(0, p_c(X) - p_c(X_int)) / p_c(X).
- `average_gain` (AG): 100 * max(0, p_c(X_int) - p_c(X)) / (1 - p_c(X)).
- `sparseness` (SPS): Gini index of |mask| (quantus' Sparseness).
- `complexity` (COMP): entropy of |mask| normalised to sum 1 (quantus' Complexity).
- `topk_fidelity`: 1 where c is among the top-k classes of a surrogate (L2I's Theta).
- `si_sdr`: scale-invariant SDR of an estimate against a reference, in dB.
- `gt_precision` / `gt_recall`: shares of energy against a target region (below).

With ground truth (the synthetic dataset's separate sources,
`data_prep.ground_truth`; out of distribution the interference joins the
background), `ground_truth_metrics` scores a mask against the target-dominant
region R (`target_region`): SI-SDR and SI-SDRi of the interpretation audio
against the target event, and, in energy |STFT|^2 (`spectrogram_energy`:
expm1(X)^2, as X = log1p |STFT|), the share of the interpretation's energy that
lies in R (precision) and of R's energy that the interpretation keeps (recall).

Undefined values. A per-clip value whose definition divides by a quantity of
the clip (its reference) that is zero has no value: it is NaN, never a huge
number from a clamped denominator. `StageStats` leaves NaN out of the means and
medians and counts it (`StageStats.n_undefined`, "n_undefined" in metrics.json
and test_metrics.json). The cases:

- `si_sdr` / `si_sdri` against a silent target (no target energy);
- `si_sdri` of a clip that already is its target up to scale (a silent
  background, or one proportional to the target: the clip's own SI-SDR reaches the
  clip at SI_SDR_CLIP_DB, so there is nothing to improve, and "improvement" would be
  SI-SDR - 100 dB; a background nearly silent but not digitally so, dither at -90 dB,
  still gives a defined and very negative SI-SDRi: read `per_clip.csv` for such clips);
- `gt_recall` where the target-dominant region holds no energy of X (an empty
  region, or a silent clip), and `gt_precision` where neither the mask nor the
  region keeps any energy (a bin of X at the floor of silence, `SILENT_X`,
  holds none: `silent_spectrogram`);
- `SPS` and `COMP` of an all-zero mask (no distribution to be sparse or
  complex; scoring it as flat would rank "keeps nothing" with "keeps everything");
- `AD` where p_c(X) = 0 and `AG` where p_c(X) = 1 (no confidence to lose / gain);
- L2I's `nmf_rel_error` of a silent clip (||X|| = 0, `recipes/train_l2i.py`).

An empty *estimate* against a non-empty reference is defined and gets the
metric's floor: a silent interpretation against a non-silent target scores
-SI_SDR_CLIP_DB dB, and a mask that keeps nothing of a clip whose region holds
energy has gt_precision = gt_recall = 0.

`StageStats` gathers the per-clip values of a whole stage (across processes
under DDP) into one figure per metric and, when asked, its 95 % bootstrap
confidence interval (`bootstrap_interval`: `BOOTSTRAP_RESAMPLES` resamples of
the clips with replacement, from a seed, the 2.5 and 97.5 percentiles of the
resampled means, or medians for a median statistic).

Authors
 * audio-interpret contributors 2026
"""

import math

import numpy as np
import torch
from speechbrain.processing.features import spectral_magnitude

from data_prep.audio import EPS

SI_SDR_CLIP_DB = 100.0  # an exact match is reported as this, not +inf
# log1p |STFT| of an all-zero clip is not 0 but log1p(sqrt(1e-14)) ~ 1e-7 in every bin
# (spectral_magnitude's eps); a bin of X at most this holds no energy. One 16-bit step of
# noise gives ~1e-3.
SILENT_X = 1e-6
#: Resamples of the clips behind each confidence interval.
BOOTSTRAP_RESAMPLES = 1000
#: The confidence level of the intervals.
CONFIDENCE_LEVEL = 0.95


def _ratio(numerator, denominator):
    """numerator / denominator, NaN where the denominator is not positive (undefined, not huge).

    Example
    -------
    >>> _ratio(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0]))
    tensor([0.5000,    nan])
    """
    defined = denominator > 0
    return torch.where(defined, numerator / torch.where(defined, denominator, 1.0), math.nan)


def silent_spectrogram(X):
    """True per clip where every bin of X (log1p |STFT|) is at the floor of silence, (B,).

    Example
    -------
    >>> from speechbrain.processing.features import STFT
    >>> from recipes.core.pipeline import spectrogram
    >>> stft = STFT(sample_rate=16000, n_fft=1024, hop_length=11.6099, win_length=23.2199)
    >>> X, _ = spectrogram(torch.stack([torch.zeros(16000), 1e-4 * torch.randn(16000)]), stft)
    >>> silent_spectrogram(X)
    tensor([ True, False])
    """
    return X.flatten(start_dim=1).amax(dim=1) <= SILENT_X


def _class_prob(probs, classes):
    """p_c per clip: probs (B, N), classes (B,) -> (B,)."""
    return probs.gather(1, classes.view(-1, 1)).squeeze(1)


def fid_in(probs_int, classes):
    """1.0 where the classifier's class on the interpretation is `classes`.

    Example
    -------
    >>> fid_in(torch.tensor([[0.9, 0.1], [0.3, 0.7]]), torch.tensor([0, 0]))
    tensor([1., 0.])
    """
    return (probs_int.argmax(dim=1) == classes).float()


def faithfulness(probs, probs_removed, classes):
    """p_c(X) - p_c(X - X_int): how much removing the interpretation costs class c.

    Example
    -------
    >>> faithfulness(torch.tensor([[0.8, 0.2]]), torch.tensor([[0.5, 0.5]]), torch.tensor([0]))
    tensor([0.3000])
    """
    return _class_prob(probs, classes) - _class_prob(probs_removed, classes)


def average_increase(probs, probs_int, classes):
    """100 where the interpretation alone is more confident in c than the input.

    Example
    -------
    >>> average_increase(torch.tensor([[0.6, 0.4]]), torch.tensor([[0.7, 0.3]]), torch.tensor([0]))
    tensor([100.])
    """
    return 100.0 * (_class_prob(probs_int, classes) > _class_prob(probs, classes)).float()


def average_drop(probs, probs_int, classes):
    """100 * max(0, p_c(X) - p_c(X_int)) / p_c(X): confidence lost on the interpretation.

    Undefined (NaN) where p_c(X) = 0.

    Example
    -------
    >>> average_drop(torch.tensor([[0.8, 0.2]]), torch.tensor([[0.4, 0.6]]), torch.tensor([0]))
    tensor([50.])
    """
    p, p_int = _class_prob(probs, classes), _class_prob(probs_int, classes)
    return _ratio(100.0 * (p - p_int).clamp(min=0.0), p)


def average_gain(probs, probs_int, classes):
    """100 * max(0, p_c(X_int) - p_c(X)) / (1 - p_c(X)): confidence gained.

    Undefined (NaN) where p_c(X) = 1: there is no confidence left to gain.

    Example
    -------
    >>> average_gain(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.75, 0.25]]), torch.tensor([0]))
    tensor([50.])
    """
    p, p_int = _class_prob(probs, classes), _class_prob(probs_int, classes)
    return _ratio(100.0 * (p_int - p).clamp(min=0.0), 1.0 - p)


def sorted_rows(values):
    """`values` (B, D) sorted along its rows: the same tensor as ``torch.sort(values, dim=1).values``.

    On the CPU by numpy's sort (SIMD: a quarter of torch's time on the demo's masks, 16 x 132 867
    float64 values, `bench/README.md`); elsewhere, and for dtypes other than float32 and float64,
    by torch.

    Example
    -------
    >>> sorted_rows(torch.tensor([[3.0, float("nan"), -1.0, 2.0]]))
    tensor([[-1.,  2.,  3., nan]])
    """
    if values.device.type != "cpu" or values.dtype not in (torch.float32, torch.float64):
        return torch.sort(values, dim=1).values
    return torch.from_numpy(np.sort(values.detach().numpy(), axis=1))


def sparseness(mask):
    """Gini index of |mask| per clip, as quantus' Sparseness (1: one bin, 0: flat).

    An all-zero mask has no distribution: NaN (undefined).

    Example
    -------
    >>> m = torch.tensor([[[0, 1, 2], [3, -4, 0.5], [0, 0, 0], [1, 1, 1]]])
    >>> round(sparseness(m).item(), 6)
    0.564815
    """
    values = sorted_rows(mask.detach().abs().flatten(start_dim=1).double() + 1e-7)  # (B, D), quantus' offset
    n = values.shape[1]
    ranks = torch.arange(1, n + 1, device=values.device, dtype=values.dtype)
    weights = 2.0 * ranks - n - 1.0
    gini = (values * weights).sum(dim=1) / (n * values.sum(dim=1))
    empty = mask.flatten(start_dim=1).abs().sum(dim=1) == 0  # (B,)
    return torch.where(empty, math.nan, gini).to(mask.dtype)


def complexity(mask):
    """Entropy (nats) of |mask| normalised to sum 1 per clip, as quantus' Complexity.

    An all-zero mask has no distribution: NaN (undefined).

    Example
    -------
    >>> m = torch.tensor([[[0, 1, 2], [3, -4, 0.5], [0, 0, 0], [1, 1, 1]]])
    >>> round(complexity(m).item(), 6)
    1.870783
    """
    values = mask.abs().flatten(start_dim=1).double()  # (B, D)
    total = values.sum(dim=1, keepdim=True)  # (B, 1)
    p = values / torch.where(total > 0, total, 1.0)
    entropy = -(torch.special.xlogy(p, p)).sum(dim=1)
    return torch.where(total.squeeze(1) > 0, entropy, math.nan).to(mask.dtype)


def topk_fidelity(surrogate_logits, classes, k):
    """1.0 where `classes` is among the top-k classes of the surrogate's output.

    Example
    -------
    >>> topk_fidelity(torch.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]]), torch.tensor([2, 2]), 2)
    tensor([1., 0.])
    """
    k = min(k, surrogate_logits.shape[1])
    top = surrogate_logits.topk(k, dim=1).indices  # (B, k)
    return (top == classes.view(-1, 1)).any(dim=1).float()


def si_sdr(estimate, reference):
    """Scale-invariant SDR (dB) per clip (torchmetrics), with the cases it leaves open.

    `torchmetrics.functional.audio.scale_invariant_signal_distortion_ratio`
    (zero-mean, in float64), then: an exact match is clipped to SI_SDR_CLIP_DB (not +inf),
    a silent estimate against a non-silent reference is the floor,
    -SI_SDR_CLIP_DB, and a silent reference has no SI-SDR: NaN (undefined).

    Example
    -------
    >>> ref = torch.sin(torch.linspace(0, 100, 16000)).unsqueeze(0)
    >>> si_sdr(0.5 * ref, ref)
    tensor([100.])
    """
    # imported here: `import torchmetrics` loads every metric family it has (text ones
    # import transformers), about 40 % of a recipe's start-up, for the one metric we use
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

    # float64: the library's epsilon then sits far below float32 rounding, so a
    # scaled copy of the reference reaches the clip, as an exact match should
    ratio = scale_invariant_signal_distortion_ratio(estimate.double(), reference.double(), zero_mean=True)
    ratio = ratio.nan_to_num(posinf=SI_SDR_CLIP_DB).clamp(min=-SI_SDR_CLIP_DB, max=SI_SDR_CLIP_DB).to(estimate.dtype)
    centred_energy = (reference - reference.mean(dim=-1, keepdim=True)).square().sum(dim=-1)
    estimate_energy = (estimate - estimate.mean(dim=-1, keepdim=True)).square().sum(dim=-1)
    ratio = torch.where(estimate_energy <= EPS, -SI_SDR_CLIP_DB, ratio)
    return torch.where(centred_energy <= EPS, math.nan, ratio)


def mask_metrics(probs, probs_int, probs_removed, classes, mask):
    """The whole suite for one batch: {name: (B,) values}.

    Arguments
    ---------
    probs, probs_int, probs_removed : torch.Tensor
        Classifier softmax (B, N) on X, on X_int (the mask applied) and on X without it.
    classes : torch.Tensor
        Predicted class on X, (B,).
    mask : torch.Tensor
        The interpretation mask (B, frames, F).
    """
    return {
        "fid_in": fid_in(probs_int, classes),
        "faithfulness": faithfulness(probs, probs_removed, classes),
        "AI": average_increase(probs, probs_int, classes),
        "AD": average_drop(probs, probs_int, classes),
        "AG": average_gain(probs, probs_int, classes),
        "SPS": sparseness(mask),
        "COMP": complexity(mask),
    }


def spectrogram_energy(X):
    """|STFT|^2 of a log1p magnitude spectrogram (X = log1p |STFT|): expm1(X)^2, float64.

    Example
    -------
    >>> spectrogram_energy(torch.log1p(torch.tensor([[[0.0, 2.0, 3.0]]]))).float()
    tensor([[[0., 4., 9.]]])
    """
    return torch.expm1(X.double()).clamp(min=0.0).square()


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


def _energy_in_region(X, region):
    """sum(E(X) R) and sum(E(X)) per clip, (B,) each (float64); 0 for a silent spectrogram
    (a bin at the floor of silence holds no energy, not its ~1e-14)."""
    energy = spectrogram_energy(X)  # (B, frames, F)
    in_region = torch.where(silent_spectrogram(X * region), 0.0, (energy * region).flatten(1).sum(dim=1))
    return in_region, torch.where(silent_spectrogram(X), 0.0, energy.flatten(1).sum(dim=1))


def gt_precision(X_int, X, region):
    """Share of the interpretation's energy |STFT|^2 in the target region: sum(E(X_int) R) / sum(E(X_int)).

    E = `spectrogram_energy`. 0 where the interpretation keeps nothing of a clip
    whose region holds energy; NaN where neither holds any (undefined).

    Example
    -------
    >>> X = torch.log1p(torch.tensor([[[3.0, 1.0]]]))  # energies 9 and 1
    >>> gt_precision(X, X, torch.tensor([[[1.0, 0.0]]]))
    tensor([0.9000])
    """
    return _gt_shares(X_int, X, region)[0]


def gt_recall(X_int, X, region):
    """Share of the target region's energy |STFT|^2 that the interpretation keeps:
    sum(E(X_int) R) / sum(E(X) R); NaN where the region holds no energy (undefined).

    Example
    -------
    >>> X = torch.log1p(torch.tensor([[[3.0, 1.0]]]))  # energies 9 and 1
    >>> gt_recall(torch.log1p(torch.tensor([[[1.0, 1.0]]])), X, torch.tensor([[[1.0, 1.0]]]))
    tensor([0.2000])
    """
    return _gt_shares(X_int, X, region)[1]


def _gt_shares(X_int, X, region):
    """`gt_precision` and `gt_recall`, (B,) each, from one pass over the energies of X_int and X."""
    kept_in_region, kept = _energy_in_region(X_int, region)
    region_energy, _ = _energy_in_region(X, region)
    precision = _ratio(kept_in_region, kept)
    precision = torch.where(precision.isnan() & (region_energy > 0), 0.0, precision).to(X_int.dtype)
    return precision, _ratio(kept_in_region, region_energy).to(X_int.dtype)


def ground_truth_metrics(X_int, X, audio, clips, target, region):
    """SI-SDR, SI-SDRi and the energy precision / recall of an interpretation, per clip.

    With E(.) = `spectrogram_energy` (|STFT|^2 = expm1(X)^2) and R the
    target-dominant region:

    - `si_sdr`: SI-SDR of the interpretation audio against the target event (dB);
    - `si_sdri`: its improvement over the clip, si_sdr - SI-SDR(clip, target);
    - `gt_precision`: share of the interpretation's energy that lies in R:
      sum(E(X_int) R) / sum(E(X_int)) (0 for an all-zero mask when R holds
      energy of X, NaN when it holds none either);
    - `gt_recall`: share of R's energy that the interpretation keeps:
      sum(E(X_int) R) / sum(E(X) R) (NaN when R holds no energy of X).

    E(X_int) is the energy of the interpretation spectrogram, what its audio
    holds: a mask value m keeps (m expm1(X))^2 of the bin's expm1(X)^2 with
    `mask_domain: magnitude`, m expm1(X)^2 with `power`, and expm1(m X)^2, less, in the log domain (the
    reference's X_int = m X). For a binary mask it is the energy of the kept bins. A silent target (SI-SDR, SI-SDRi) or
    an empty region is undefined: NaN (see the module docstring).

    Arguments
    ---------
    X_int : torch.Tensor
        The interpretation spectrogram (`recipes.core.pipeline.apply_mask`), (B, frames, F).
    X : torch.Tensor
        The clips' log1p magnitude (B, frames, F).
    audio : torch.Tensor
        The interpretation audio (B, T).
    clips : torch.Tensor
        The evaluated clips (B, T).
    target : torch.Tensor
        The target events, scaled as they are in the clips (B, T).
    region : torch.Tensor
        `target_region(...)`, (B, frames, F).

    Returns
    -------
    dict
        "si_sdr", "si_sdri", "gt_precision", "gt_recall": (B,) each.

    Example
    -------
    >>> X = torch.log1p(torch.tensor([[[3.0, 1.0], [0.0, 0.0]]]))  # |STFT| 3 and 1: energies 9 and 1
    >>> region = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    >>> target = torch.randn(1, 100, generator=torch.Generator().manual_seed(0))
    >>> clip = target + torch.randn(1, 100, generator=torch.Generator().manual_seed(1))
    >>> gt = ground_truth_metrics(X, X, clip, clip, target, region)  # the all-ones mask
    >>> gt["gt_precision"], gt["gt_recall"], gt["si_sdri"]
    (tensor([0.9000]), tensor([1.]), tensor([0.]))
    >>> ground_truth_metrics(X, X, clip, target, target, region)["si_sdri"]  # the clip is its target
    tensor([nan])
    """
    sdr = si_sdr(audio, target)
    before = si_sdr(clips, target)  # the clip's own; at the clip: the clip is the target
    precision, recall = _gt_shares(X_int, X, region)
    return {
        "si_sdr": sdr,
        "si_sdri": torch.where(before >= SI_SDR_CLIP_DB, math.nan, sdr - before),
        "gt_precision": precision,
        "gt_recall": recall,
    }


def bootstrap_interval(values, n_resamples=BOOTSTRAP_RESAMPLES, seed=0, median=False, level=CONFIDENCE_LEVEL):
    """Percentile bootstrap confidence interval of the mean (or median) of per-clip values.

    The clips are resampled with replacement `n_resamples` times from a
    generator seeded with `seed` (the same seed and values, in any order, give
    the same interval); the interval is the central `level` share of the
    resampled statistics, computed in float64.

    Arguments
    ---------
    values : torch.Tensor
        The finite per-clip values (n,).
    n_resamples : int
    seed : int
    median : bool
        The statistic is the median instead of the mean.
    level : float

    Returns
    -------
    tuple of float
        (low, high); (nan, nan) for no value.

    Example
    -------
    >>> bootstrap_interval(torch.full((50,), 0.25))
    (0.25, 0.25)
    >>> low, high = bootstrap_interval(torch.arange(100.0))
    >>> bool(low < 49.5 < high)
    True
    """
    # sorted: the interval depends on the values, not on their order (e.g. how torchrun
    # processes gathered them)
    values = values.detach().reshape(-1).double().cpu().sort().values
    if values.numel() == 0:
        return float("nan"), float("nan")
    generator = torch.Generator().manual_seed(int(seed))
    draws = torch.randint(values.numel(), (n_resamples, values.numel()), generator=generator)
    resampled = values[draws]  # (n_resamples, n)
    statistics = resampled.median(dim=1).values if median else resampled.mean(dim=1)
    tail = (1.0 - level) / 2.0
    low, high = torch.quantile(statistics, torch.tensor([tail, 1.0 - tail], dtype=torch.float64))
    # a constant's interval is that constant, not the constant up to summation rounding
    low, high = max(low.item(), values.min().item()), min(high.item(), values.max().item())
    return low, high


def finite_or_none(data):
    """`data` with every non-finite float replaced by None (JSON has no NaN).

    Example
    -------
    >>> finite_or_none({"a": [1.0, float("nan")]})
    {'a': [1.0, None]}
    """
    if isinstance(data, dict):
        return {key: finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(value) for value in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


class StageStats:
    """Accumulates per-clip values and per-batch scalars over one stage.

    `add_values` takes (B,) tensors (one value per clip); `add_scalar` takes a
    batch mean and its batch size. `summary()` averages everything, except the
    names in `median_names`, whose median over clips is reported. Undefined
    (non-finite) values are left out and counted: after `summary()`,
    `n_undefined` is {name: count} of the names with at least one (over every
    process, so it can be read on the main process alone; `gather=False` for a
    stage every process runs whole: its own values only). With
    `summary(bootstrap_seed=seed)`, `intervals` is {name: (low, high)}, the
    95 % bootstrap interval of each per-clip statistic (`bootstrap_interval`;
    none for the per-batch scalars).

    Example
    -------
    >>> stats = StageStats()
    >>> stats.add_values({"nmf_rel_error": torch.tensor([0.5, float("nan"), 1.5])})
    >>> stats.summary(), stats.n_undefined
    ({'nmf_rel_error': 1.0}, {'nmf_rel_error': 1})
    """

    def __init__(self, median_names=(), gather=True):
        self.gather = gather  # False: every process saw the whole stage (nothing to gather)
        self.values = {}
        self.scalars = {}
        self.median_names = set(median_names)
        self.n_undefined = {}
        self.intervals = {}

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
        if not (self.gather and torch.distributed.is_available() and torch.distributed.is_initialized()):
            return values, scalars
        everyone = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(everyone, (values, scalars))
        # the names of every process: one given no batch (fewer batches than processes) has none
        names = dict.fromkeys(name for part in everyone for name in part[0])
        values = {name: torch.cat([part[0][name] for part in everyone if name in part[0]]) for name in names}
        scalar_names = dict.fromkeys(name for part in everyone for name in part[1])
        scalars = {
            name: (
                sum(part[1].get(name, (0.0, 0))[0] for part in everyone),
                sum(part[1].get(name, (0.0, 0))[1] for part in everyone),
            )
            for name in scalar_names
        }
        return values, scalars

    def summary(self, bootstrap_seed=None, n_resamples=BOOTSTRAP_RESAMPLES):
        all_values, scalars = self._gathered()
        stats = {name: total / max(n, 1) for name, (total, n) in scalars.items()}
        self.n_undefined, self.intervals = {}, {}
        for name, values in all_values.items():
            finite = torch.isfinite(values)
            if not finite.all():
                self.n_undefined[name] = int((~finite).sum())
            values = values[finite]
            if bootstrap_seed is not None:
                self.intervals[name] = bootstrap_interval(
                    values, n_resamples, bootstrap_seed, median=name in self.median_names
                )
            if values.numel() == 0:
                stats[name] = float("nan")
            elif name in self.median_names:
                stats[name] = values.median().item()
            else:
                stats[name] = values.mean().item()
        return stats
