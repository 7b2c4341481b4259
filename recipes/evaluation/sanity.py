"""Model-randomisation sanity check of the interpretation methods (Adebayo et al., 2018).

"Sanity Checks for Saliency Maps" (NeurIPS 2018): an explanation that is about
the classifier must change when the classifier's weights are destroyed. The
classifier's weights are randomised cumulatively from the top down (first the
classifier head, then the embedding model's blocks from the last to the first,
`randomisation_steps`), each step on top of the steps before; the interpreters
keep their trained weights. After every step each method's mask is recomputed
and compared with its mask for the trained classifier, per clip:

- `spearman`: Spearman rank correlation of the two masks (ties averaged);
- `ssim`: mean structural similarity (Wang et al. 2004) of the two masks as
  images (frames x frequency).

The means over the clips, per step, are the figures; `class_kept` is the share
of clips whose predicted class is still the trained classifier's.

Fail rule. A method fails (its mask did not change) when, with every step
randomised (the last step), both its mean Spearman and its mean SSIM are
>= `SANITY_MAX_SIMILARITY` (0.9). Both must be high, because each alone is
fooled: the SSIM of two sparse masks is high wherever both are zero, whatever
the few kept bins are; Spearman of a mask that is constant up to tiny noise
drops with any reordering of that noise while the mask, as an image, has not
changed. A mask that does not read the classifier (e.g. all ones, or a
function of X alone) keeps both at 1 and fails; a mask that follows the
classifier (e.g. gradient saliency) passes.

`model_randomisation_check` runs the check on a brain (it modifies the
classifier in place and always restores its trained weights);
`recipes.reporting.sanity` renders its result.

Authors
 * audio-interpret contributors 2026
"""

import copy
import math

import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.utils.logger import get_logger

from recipes.core.labels import CLASSIFIER_ONLY_BASELINES
from recipes.evaluation.baselines import attribution_mask

logger = get_logger(__name__)

#: A method fails when, with everything randomised, its mean Spearman AND mean SSIM
#: with its trained-classifier mask are both at least this.
SANITY_MAX_SIMILARITY = 0.9

SSIM_WINDOW = 11  # Gaussian window of Wang et al. 2004
SSIM_SIGMA = 1.5

_CONTAINERS = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)


# --------------------------------------------------------------- similarities
def _average_ranks(values):
    """Ranks (1..D) of each row of `values` (B, D), tied values get their mean rank, float64
    (`scipy.stats.rankdata`).

    Example
    -------
    >>> _average_ranks(torch.tensor([[0.0, 2.0, 0.0, 1.0]], dtype=torch.float64))
    tensor([[1.5000, 4.0000, 1.5000, 3.0000]], dtype=torch.float64)
    """
    return torch.from_numpy(rankdata(values.numpy(), method="average", axis=1))


def _per_clip(tensor):
    """(B, ...) -> (B, D) float64 on the CPU; masks must be finite."""
    flat = tensor.detach().reshape(tensor.shape[0], -1).to("cpu", torch.float64)
    if not torch.isfinite(flat).all():
        raise ValueError("sanity check: a mask holds NaN or inf values")
    return flat


def spearman(a, b):
    """Per-clip Spearman rank correlation of two mask batches, ties given their mean rank.

    Each clip's mask is flattened. Zero variance: when both masks of a clip are
    constant and equal the value is 1.0 (unchanged); when either is constant
    otherwise it is 0.0.

    Arguments
    ---------
    a, b : torch.Tensor
        Masks (B, ...) of the same shape (any device and float dtype).

    Returns
    -------
    torch.Tensor
        (B,) float32 in [-1, 1], on the CPU.

    Example
    -------
    >>> a = torch.tensor([[0.0, 0.0, 0.5, 1.0], [1.0, 1.0, 1.0, 1.0]])
    >>> b = torch.tensor([[0.0, 0.0, 0.2, 0.9], [0.0, 0.3, 0.6, 0.9]])
    >>> spearman(a, b)  # same order; a constant mask against a varying one
    tensor([1., 0.])
    >>> spearman(torch.ones(1, 3), torch.ones(1, 3))
    tensor([1.])
    """
    if a.shape != b.shape:
        raise ValueError(f"spearman: masks of different shapes {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = _per_clip(a), _per_clip(b)
    ra = _average_ranks(a)
    rb = _average_ranks(b)
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    denominator = (ra.square().sum(dim=1) * rb.square().sum(dim=1)).sqrt()
    rho = (ra * rb).sum(dim=1) / denominator.clamp(min=1e-300)
    constant_a = a.amax(dim=1) == a.amin(dim=1)
    constant_b = b.amax(dim=1) == b.amin(dim=1)
    both_equal = constant_a & constant_b & (a[:, 0] == b[:, 0])
    rho = torch.where(constant_a | constant_b, 0.0, rho.clamp(-1.0, 1.0))
    rho = torch.where(both_equal, 1.0, rho)
    return rho.float()


def _gaussian_window(size, sigma):
    """A normalised 1-D Gaussian window of `size` taps (float64)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    window = torch.exp(-(x**2) / (2 * sigma**2))
    return window / window.sum()


def ssim(a, b, data_range=1.0):
    """Per-clip mean SSIM (Wang et al. 2004) of two batches of 2-D maps.

    Gaussian window of 11 taps, sigma 1.5 (separable), C1 = (0.01 L)^2,
    C2 = (0.03 L)^2 with L = `data_range`. No padding: the local statistics are
    computed where the window fits ("valid", as Wang's reference code), and the
    SSIM map is averaged there. A map smaller than the window gets the largest
    odd window that fits (same sigma), down to 1 x 1 (then only the luminance
    term is left).

    Hand-written, not torchmetrics': its `structural_similarity_index_measure`
    (1.9) averages the SSIM map over the reflect-padded borders too, which is
    not Wang et al.'s definition and moves the value by up to 0.03 on
    mask-sized maps (tests/unit/test_sanity.py), and it needs maps larger
    than the window.

    Arguments
    ---------
    a, b : torch.Tensor
        Maps (B, H, W) of the same shape (any device and float dtype).
    data_range : float
        L, the range of the values (1 for masks in [0, 1]).

    Returns
    -------
    torch.Tensor
        (B,) float32, on the CPU; 1 where the maps are identical.

    Example
    -------
    >>> a = torch.rand(2, 20, 30, generator=torch.Generator().manual_seed(0))
    >>> ssim(a, a)
    tensor([1., 1.])
    >>> bool((ssim(a, 1 - a) < 0).all())
    True
    >>> ssim(torch.zeros(1, 3, 2), torch.zeros(1, 3, 2))
    tensor([1.])
    """
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"ssim: needs two (B, H, W) maps, got {tuple(a.shape)} and {tuple(b.shape)}")
    B, H, W = a.shape
    # float32 (10x faster than float64 on CPU): the local variances of values in
    # [0, L] lose ~1e-7 L^2 to cancellation, far below C2
    a = _per_clip(a).float().view(B, H, W)
    b = _per_clip(b).float().view(B, H, W)
    size = min(SSIM_WINDOW, H, W)
    size -= 1 - size % 2  # odd
    window = _gaussian_window(size, SSIM_SIGMA).float()
    rows = window.view(1, 1, size, 1).expand(5, 1, size, 1)
    cols = window.view(1, 1, 1, size).expand(5, 1, 1, size)
    moments = torch.stack((a, b, a * a, b * b, a * b), dim=1)  # (B, 5, H, W)
    local = F.conv2d(F.conv2d(moments, rows, groups=5), cols, groups=5)  # valid: (B, 5, H', W')
    mu_a, mu_b = local[:, 0], local[:, 1]
    var_a = local[:, 2] - mu_a.square()
    var_b = local[:, 3] - mu_b.square()
    cov = local[:, 4] - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2)
    )
    return ssim_map.flatten(start_dim=1).mean(dim=1, dtype=torch.float64).float()


# -------------------------------------------------------------- randomisation
def _has_parameters(module):
    return isinstance(module, torch.nn.Module) and next(module.parameters(), None) is not None


def randomisation_steps(embedding_model, classifier):
    """The cumulative randomisation steps, top down: [(name, [modules]), ...].

    First the classifier head ("classifier", as one block), then the embedding
    model's blocks from the last to the first. A block is a direct child of the
    embedding model that holds parameters (children without parameters, e.g. a
    ReLU, are skipped); when the embedding model's only parameterised child is a
    container (Sequential / ModuleList / ModuleDict), its children are the
    blocks instead ("embedding_model.layers.3"). An embedding model with
    parameters of its own (not in a child) is one block, "embedding_model".

    The order is the children's registration order, reversed: that is their
    forward order for the encoders of this project (`models.PIQ.Conv2dEncoder_v2`:
    conv1, bn1, ..., conv4, bn4, resblock; SpeechBrain's Cnn14: norm0,
    conv_block1, ..., conv_block6), so the steps go from the output to the input.
    A model whose forward uses its children in another order needs its own list.

    Arguments
    ---------
    embedding_model, classifier : torch.nn.Module
        The classifier's two parts (see `recipes.core.pipeline.classify`).

    Returns
    -------
    list of (str, list of torch.nn.Module)

    Example
    -------
    >>> from models.PIQ import Conv2dEncoder_v2
    >>> steps = randomisation_steps(Conv2dEncoder_v2(dim=4), torch.nn.Linear(4, 3))
    >>> [name for name, _ in steps][:4]
    ['classifier', 'embedding_model.resblock', 'embedding_model.bn4', 'embedding_model.conv4']
    >>> len(steps)
    10
    """
    steps = [("classifier", [classifier])] if _has_parameters(classifier) else []
    if not _has_parameters(embedding_model):
        return steps
    if next(embedding_model.parameters(recurse=False), None) is not None:
        return steps + [("embedding_model", [embedding_model])]
    prefix, parent = "embedding_model", embedding_model
    while True:
        blocks = [(name, child) for name, child in parent.named_children() if _has_parameters(child)]
        if len(blocks) == 1 and isinstance(blocks[0][1], _CONTAINERS) and not any(
            True for _ in blocks[0][1].parameters(recurse=False)
        ):
            prefix, parent = f"{prefix}.{blocks[0][0]}", blocks[0][1]
            continue
        break
    return steps + [(f"{prefix}.{name}", [child]) for name, child in reversed(blocks)]


def randomise_(modules, generator):
    """Replaces every parameter of `modules` in place with a Gaussian draw of its own scale.

    Each parameter tensor p is redrawn from N(mean(p), std(p)), its own mean
    and standard deviation (so the layer keeps its scale, only its trained
    structure is lost). A tensor without spread (std 0, e.g. a bias still at
    zeros or a BatchNorm weight of ones, or a single value) is drawn from
    N(mean(p), 1 / sqrt(fan_in)), fan_in = numel / size(0) for a tensor of 2 or
    more dims and numel for a 1-D one. The draws come from the CPU `generator`
    (reproducible whatever the device) and are copied into the existing tensor
    (`p.copy_`), so its device, dtype and memory format stay and every reference
    to the module sees the change. Buffers (BatchNorm running statistics) are
    left as they are. A parameter shared by several modules is drawn once.

    Arguments
    ---------
    modules : list of torch.nn.Module
    generator : torch.Generator
        A CPU generator.

    Example
    -------
    >>> layer = torch.nn.BatchNorm1d(4)
    >>> randomise_([layer], torch.Generator().manual_seed(0))
    >>> bool((layer.weight != 1).all()), bool((layer.running_mean == 0).all())
    (True, True)
    """
    seen = set()
    with torch.no_grad():
        for module in modules:
            for p in module.parameters():
                if id(p) in seen or p.numel() == 0:
                    continue
                seen.add(id(p))
                values = p.detach().to("cpu", torch.float64)
                mean = values.mean().item()
                std = values.std().item() if p.numel() > 1 else 0.0
                if not std > 0:
                    fan_in = p.numel() // p.shape[0] if p.dim() >= 2 else p.numel()
                    std = 1.0 / math.sqrt(max(fan_in, 1))
                draw = torch.randn(p.shape, generator=generator, dtype=torch.float64)
                p.copy_(draw * std + mean)


# ----------------------------------------------------------------- the check
def _as_maps(mask):
    """A mask (B, frames, F) (or (B, ..., F)) as (B, H, F) float32 on the CPU."""
    mask = mask.detach().to("cpu", torch.float32)
    return mask.reshape(mask.shape[0], -1, mask.shape[-1])


def _predicted(brain, X):
    with torch.no_grad():
        scores, _ = brain.classify(X)
    return scores.argmax(dim=1).cpu()


def model_randomisation_check(brain, wavs, mask_functions, seed=0):
    """Cascading model-randomisation check of every method's mask (see the module docstring).

    Step 0 is the trained classifier; step k randomises the modules of step k
    of `randomisation_steps` on top of steps 1..k-1. At each step every
    method's mask is recomputed and compared with its step-0 mask. The
    classifier's modules are set to eval mode for the check; their trained
    weights (and buffers) and their train/eval modes are always restored
    afterwards, also when a mask function raises.

    Arguments
    ---------
    brain : recipes.interpreters.base.InterpreterBrain or alike
        Needs `hparams.embedding_model`, `hparams.classifier` (modified in
        place, then restored), `preprocess(wavs)` -> (X, ...) and
        `classify(X)` -> (scores, representations).
    wavs : torch.Tensor
        A batch of clips (B, T), on the brain's device.
    mask_functions : dict
        {method: callable(wavs) -> mask (B, frames, F) in [0, 1]}; each must read
        the classifier through `brain.hparams` at call time.
    seed : int
        Seed of the CPU generator of the random weights.

    Returns
    -------
    dict
        {"clips", "steps", "class_kept", "methods": {method: {"spearman", "ssim"}},
        "max_similarity", "failed"}: one value per step in every list, step 0
        ("none") first; JSON-able (Python floats, ints, strings).
    """
    hparams = brain.hparams
    embedding_model, classifier = hparams.embedding_model, hparams.classifier
    steps = randomisation_steps(embedding_model, classifier)
    if not steps:
        raise ValueError("sanity check: the classifier has no parameters to randomise")
    parts = [m for m in (embedding_model, classifier) if isinstance(m, torch.nn.Module)]
    saved = [copy.deepcopy(part.state_dict()) for part in parts]
    modes = [[(m, m.training) for m in part.modules()] for part in parts]
    generator = torch.Generator().manual_seed(seed)
    methods = list(mask_functions)
    result = {
        "clips": int(wavs.shape[0]),
        "steps": ["none"],
        "class_kept": [1.0],
        "methods": {method: {"spearman": [1.0], "ssim": [1.0]} for method in methods},
        "max_similarity": SANITY_MAX_SIMILARITY,
        "failed": [],
    }
    try:
        for part in parts:
            part.eval()
        X = brain.preprocess(wavs)[0]
        classes = _predicted(brain, X)
        originals = {method: _as_maps(fn(wavs)) for method, fn in mask_functions.items()}
        for k, (name, modules) in enumerate(steps, start=1):
            randomise_(modules, generator)
            result["steps"].append(name)
            result["class_kept"].append(float((_predicted(brain, X) == classes).float().mean()))
            summary = []
            for method, fn in mask_functions.items():
                mask = _as_maps(fn(wavs))
                if mask.shape != originals[method].shape:
                    raise ValueError(
                        f"sanity check: {method}'s mask changed shape {tuple(originals[method].shape)}"
                        f" -> {tuple(mask.shape)}"
                    )
                rho = float(spearman(originals[method], mask).mean())
                structure = float(ssim(originals[method], mask).mean())
                result["methods"][method]["spearman"].append(rho)
                result["methods"][method]["ssim"].append(structure)
                summary.append(f"{method} rho {rho:.3f} SSIM {structure:.3f}")
            logger.info(
                "sanity check step %d/%d (%s randomised): class kept %.2f; %s",
                k, len(steps), name, result["class_kept"][-1], "; ".join(summary),
            )
    finally:
        for part, state in zip(parts, saved):
            part.load_state_dict(state, strict=True)
        for pairs in modes:
            for module, training in pairs:
                module.train(training)
    for method in methods:
        figures = result["methods"][method]
        if figures["spearman"][-1] >= SANITY_MAX_SIMILARITY and figures["ssim"][-1] >= SANITY_MAX_SIMILARITY:
            result["failed"].append(method)
            logger.warning(
                "sanity check FAILED for %s: with the whole classifier randomised its mask is "
                "unchanged (Spearman %.3f, SSIM %.3f >= %.2f): it does not depend on the classifier",
                method, figures["spearman"][-1], figures["ssim"][-1], SANITY_MAX_SIMILARITY,
            )
    return result


def sanity_check_of_evaluation(brain, dataset, interference, baselines, n_clips, seed):
    """`model_randomisation_check` of an evaluation (eval.py --sanity_check) on its first `n_clips` clips.

    The clips are taken as the evaluation sees them (`interference` applied).

    The masks recomputed at each step: the interpreter's (its weights kept)
    and the captum baselines among `baselines` (the random permutation only
    reshuffles the interpreter's mask, so it says nothing of its own).
    """

    n_clips = min(int(n_clips), len(dataset))
    if n_clips < 1:
        raise ValueError(f"--sanity_clips {n_clips} must be >= 1.")
    positions = list(range(n_clips))
    loader = make_dataloader(dataset, batch_size=n_clips, shuffle=False, sampler=positions)
    batch = next(iter(loader))
    wavs = interference(batch.sig[0].to(brain.device), 0)  # (n_clips, T)

    def interpreter_mask(clips):
        return brain.explain(clips)["mask"]

    X, _ = brain.preprocess(wavs)  # the clips do not change: one STFT for every step

    def baseline(name):
        def mask(clips):
            classes = brain.classify(X)[0].argmax(dim=1)  # the (randomised) classifier's class
            return attribution_mask(brain, name, X, classes, seed)

        return mask

    mask_functions = {type(brain).__name__: interpreter_mask}  # the tables' interpreter name
    mask_functions.update({name: baseline(name) for name in baselines if name in CLASSIFIER_ONLY_BASELINES})
    logger.info("Sanity check: randomising the classifier from the top down, %d clips", n_clips)
    return model_randomisation_check(brain, wavs, mask_functions, seed=seed)
