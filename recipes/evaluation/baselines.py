"""Baseline masks, scored by the same metric suite as the interpreters.

`recipes/eval.py` scores every interpreter next to masks that need no
training, so its figures can be read against a reference:

- `random_mask`: the interpreter's own mask with its values shuffled over the
  (frame, bin) positions of each clip (a random permutation per clip). It has
  exactly the interpreter's value distribution, so the same mass and area
  (mean, share above any threshold) and the same sparseness (SPS) and
  complexity (COMP), which are permutation invariant: only *where* the mask
  puts its weight differs. A good interpreter must beat it on fidelity and
  faithfulness.
- Four attribution maps of the frozen classifier's score for its predicted
  class c with respect to its input spectrogram X, all from captum (no
  hand-written gradient), each divided by its per-clip maximum so it is a
  mask in [0, 1] (all zeros where the attribution is zero):

  - `saliency_mask`: |d score_c / d X| (`captum.attr.Saliency`);
  - `integrated_gradients_mask`: |IG| from the all-zero spectrogram (silence)
    to X in `IG_STEPS` Gauss-Legendre steps (`IntegratedGradients`);
  - `smoothgrad_mask`: SmoothGrad, the mean |gradient| over `SMOOTHGRAD_SAMPLES`
    copies of X with Gaussian noise of `SMOOTHGRAD_NOISE` x the clip's range
    (`NoiseTunnel` over `Saliency`; the noise is drawn from a seed, so a batch
    gets the same mask in every run and under torchrun);
  - `occlusion_mask`: the drop of score_c when a patch of about 1/8 of the
    frames x 1/8 of the bins is set to zero (silence), patches side by side
    (`Occlusion`); only drops count (an occlusion that raises the score is not
    evidence for c), so it is the positive part.

- `amt_mask`: AMT, the by-design baseline of the public recipe (activation map
  thresholding): the classifier's own representation grid, its mean over the
  channels, upsampled to X and scaled to [0, 1] per clip. Only for classifiers
  whose grid spans the input (the transformer backbones, `spans_input`): a
  convolutional encoder's grid follows the frames one to one, and its mean
  map is not a by-design explanation.

- `above_floor`: no classifier at all, what rises above each frequency's median
  over the clip's frames (`recipes.core.pipeline.floor_mask`, the Conv2d
  encoder's input floor, and what an interpreter with `mask_above_floor` keeps at
  most). On real recordings it is the bar the trivial answer "whatever is not
  the steady background" sets: an interpreter that does not beat it has learnt
  little from the classifier.

  These six depend on the classifier (or nothing) and the clip only, not on the
  interpreter (`CLASSIFIER_BASELINES`): the report shows them once per
  classifier and data, and `--baselines` can leave them out of an evaluation
  that another one already covers (the demo computes them once).

The classifier's weights stay frozen: only the input needs a gradient.

Authors
 * audio-interpret contributors 2026
"""

import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion, Saliency

from data_prep.audio import EPS
from recipes.core.labels import BASELINES, MAP_BASELINES
from recipes.core.pipeline import classify, fit_to_input, floor_mask, spans_input

#: Integrated Gradients: steps of the path integral (Gauss-Legendre).
IG_STEPS = 20
#: SmoothGrad: noisy copies per clip, and the noise std as a share of the clip's range.
SMOOTHGRAD_SAMPLES = 10
SMOOTHGRAD_NOISE = 0.15
#: Occlusion: the patches tile the spectrogram in about this many rows and columns.
OCCLUSION_GRID = 8


def random_mask(mask, generator=None):
    """The mask's values randomly permuted over the positions of each clip.

    Arguments
    ---------
    mask : torch.Tensor
        The interpreter's mask, (B, frames, F).
    generator : torch.Generator, optional
        A CPU generator that makes the permutations reproducible.

    Returns
    -------
    torch.Tensor
        (B, frames, F): per clip, the same multiset of values at random positions.

    Example
    -------
    >>> mask = torch.tensor([[[0.0, 0.25], [0.5, 1.0]]])
    >>> shuffled = random_mask(mask, torch.Generator().manual_seed(0))
    >>> shuffled.shape, sorted(shuffled.flatten().tolist())
    (torch.Size([1, 2, 2]), [0.0, 0.25, 0.5, 1.0])
    """
    flat = mask.flatten(start_dim=1)  # (B, D)
    draw = torch.rand(flat.shape, generator=generator).to(mask.device)  # (B, D)
    order = draw.argsort(dim=1)  # one random permutation per clip
    return flat.gather(1, order).view_as(mask)


def normalise_per_clip(attribution):
    """|attribution| divided by its per-clip maximum: a mask in [0, 1].

    Example
    -------
    >>> normalise_per_clip(torch.tensor([[[2.0, -4.0]], [[0.0, 0.0]]]))
    tensor([[[0.5000, 1.0000]],
    <BLANKLINE>
            [[0.0000, 0.0000]]])
    """
    magnitude = attribution.abs()
    peak = magnitude.flatten(start_dim=1).amax(dim=1).view(-1, *([1] * (magnitude.dim() - 1)))
    return magnitude / peak.clamp(min=EPS)


def _class_score_function(embedding_model, classifier, compute_fbank, use_melspectra):
    """X -> the classifier's scores (B, N), the function the captum attributions explain.

    An optional second argument `scale` (B, 1, 1) makes it take X / scale
    instead (see `smoothgrad_mask`).
    """

    def class_scores(inputs, scale=None):
        X = inputs if scale is None else inputs * scale
        scores, _ = classify(embedding_model, classifier, X, compute_fbank, use_melspectra)
        return scores  # (B, N)

    return class_scores


def _attribute(method, X, classes, **options):
    """Runs a captum attribution with a gradient-enabled copy of X; returns it detached."""
    with torch.enable_grad():
        attribution = method.attribute(
            X.detach().clone().requires_grad_(True), target=classes.detach(), **options
        )
    return attribution.detach()


def saliency_mask(
    embedding_model, classifier, X, classes, compute_fbank=None, use_melspectra=False
):
    """Gradient saliency of the classifier's predicted-class score, as a [0, 1] mask.

    Arguments
    ---------
    embedding_model, classifier : torch.nn.Module
        The frozen classifier (see `recipes.core.pipeline.classify`).
    X : torch.Tensor
        Its input, the log1p magnitude spectrogram (B, frames, F).
    classes : torch.Tensor
        The class whose score is explained, per clip (B,) (the predicted class).
    compute_fbank, use_melspectra :
        As for `recipes.core.pipeline.classify` (log-mel classifiers).

    Returns
    -------
    torch.Tensor
        (B, frames, F) in [0, 1].

    Example
    -------
    >>> net = torch.nn.Linear(3, 2)
    >>> emb = lambda X: X.mean(dim=1, keepdim=True)  # (B, 1, F)
    >>> saliency_mask(emb, net, torch.rand(2, 4, 3), torch.tensor([0, 1])).shape
    torch.Size([2, 4, 3])
    """
    scores = _class_score_function(embedding_model, classifier, compute_fbank, use_melspectra)
    return normalise_per_clip(_attribute(Saliency(scores), X, classes, abs=True))


def integrated_gradients_mask(
    embedding_model, classifier, X, classes, compute_fbank=None, use_melspectra=False, n_steps=IG_STEPS
):
    """|Integrated Gradients| of the predicted-class score from silence (X = 0), as a [0, 1] mask.

    Arguments as for `saliency_mask`; `n_steps` is the path integral's number of steps.

    Example
    -------
    >>> net = torch.nn.Linear(3, 2)
    >>> emb = lambda X: X.mean(dim=1, keepdim=True)  # (B, 1, F)
    >>> mask = integrated_gradients_mask(emb, net, torch.rand(2, 4, 3), torch.tensor([0, 1]))
    >>> mask.shape, bool(mask.min() >= 0), bool(mask.max() <= 1)
    (torch.Size([2, 4, 3]), True, True)
    """
    scores = _class_score_function(embedding_model, classifier, compute_fbank, use_melspectra)
    attribution = _attribute(
        IntegratedGradients(scores),
        X,
        classes,
        baselines=torch.zeros_like(X),
        n_steps=n_steps,
        internal_batch_size=min(X.shape[0] * n_steps, 64),
    )
    return normalise_per_clip(attribution)


def smoothgrad_mask(
    embedding_model,
    classifier,
    X,
    classes,
    compute_fbank=None,
    use_melspectra=False,
    seed=0,
    n_samples=SMOOTHGRAD_SAMPLES,
    noise=SMOOTHGRAD_NOISE,
):
    """SmoothGrad (captum `NoiseTunnel` over `Saliency`) of the predicted-class score, a [0, 1] mask.

    The noise std is `noise` x the clip's own range (max - min of X): captum
    takes one std for the whole batch, so the attribution is taken with
    respect to Z = X / range (per clip, std `noise`) through a function that
    multiplies Z back; the per-clip range only rescales the gradient, which the
    normalisation to [0, 1] removes. The noise comes from `seed` (the global
    random state is left as it was).

    Example
    -------
    >>> net = torch.nn.Linear(3, 2)
    >>> emb = lambda X: X.mean(dim=1, keepdim=True)  # (B, 1, F)
    >>> X, c = torch.rand(2, 4, 3), torch.tensor([0, 1])
    >>> torch.equal(smoothgrad_mask(emb, net, X, c, seed=3), smoothgrad_mask(emb, net, X, c, seed=3))
    True
    """
    flat = X.flatten(start_dim=1)
    scale = (flat.amax(dim=1) - flat.amin(dim=1)).clamp(min=EPS).view(-1, 1, 1)  # (B, 1, 1)
    scores = _class_score_function(embedding_model, classifier, compute_fbank, use_melspectra)
    devices = [X.device] if X.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        attribution = _attribute(
            NoiseTunnel(Saliency(scores)),
            X / scale,
            classes,
            nt_type="smoothgrad",
            nt_samples=n_samples,
            nt_samples_batch_size=max(1, min(n_samples, 64 // X.shape[0])),
            stdevs=noise,
            additional_forward_args=(scale,),  # repeated with the noisy copies by captum
            abs=True,
        )
    return normalise_per_clip(attribution)


def occlusion_window(frames, bins, grid=OCCLUSION_GRID):
    """The occlusion patch (frames, bins): the spectrogram cut into about `grid` x `grid` tiles.

    Example
    -------
    >>> occlusion_window(259, 513)
    (33, 65)
    """
    return (max(1, -(-frames // grid)), max(1, -(-bins // grid)))


def occlusion_mask(
    embedding_model, classifier, X, classes, compute_fbank=None, use_melspectra=False, grid=OCCLUSION_GRID
):
    """Occlusion (captum): the drop of the predicted-class score when a patch is silenced, a [0, 1] mask.

    Patches of `occlusion_window` tile X side by side (stride = patch); every
    bin of a patch gets the patch's score drop; rises are clipped to 0.

    Example
    -------
    >>> net = torch.nn.Linear(3, 2)
    >>> emb = lambda X: X.mean(dim=1, keepdim=True)  # (B, 1, F)
    >>> occlusion_mask(emb, net, torch.rand(2, 16, 3), torch.tensor([0, 1])).shape
    torch.Size([2, 16, 3])
    """
    scores = _class_score_function(embedding_model, classifier, compute_fbank, use_melspectra)
    window = occlusion_window(X.shape[1], X.shape[2], grid)
    attribution = _attribute(
        Occlusion(scores),
        X,
        classes,
        sliding_window_shapes=window,
        strides=window,
        baselines=0.0,
        perturbations_per_eval=max(1, 64 // X.shape[0]),
    )
    return normalise_per_clip(attribution.clamp(min=0))


def amt_mask(representations, n_frames, n_bins, embedding_model=None):
    """AMT: the representation grid's mean over channels, upsampled to X, scaled to [0, 1] per clip.

    Arguments
    ---------
    representations : torch.Tensor or tuple
        The classifier's grid (B, C, T', F') (`recipes.core.pipeline.split_classifier_output`);
        of a tuple of maps, the last (coarsest).
    n_frames, n_bins : int
        X's size.
    embedding_model : torch.nn.Module, optional
        The classifier's backbone: its grid is put onto X as its decoders' outputs are
        (`recipes.core.pipeline.fit_to_input`: AST's mel rows onto the linear bins);
        None: a bilinear resize.

    Returns
    -------
    torch.Tensor
        (B, n_frames, n_bins): min-max scaled per clip (all zeros for a constant map).

    Example
    -------
    >>> grid = torch.zeros(1, 4, 2, 2)
    >>> grid[0, :, 0, 1] = 3.0  # early frames, high bins
    >>> mask = amt_mask(grid, 4, 6)
    >>> mask.shape, float(mask[0, 0, 5]), float(mask[0, 3, 0])
    (torch.Size([1, 4, 6]), 1.0, 0.0)
    """
    grid = representations[-1] if isinstance(representations, (tuple, list)) else representations
    activation = grid.float().mean(dim=1, keepdim=True)  # (B, 1, T', F')
    if embedding_model is not None and spans_input(embedding_model):
        activation = fit_to_input(activation.squeeze(1), n_frames, n_bins, embedding_model)  # (B, frames, F)
    else:
        activation = F.interpolate(activation, size=(n_frames, n_bins), mode="bilinear", align_corners=False)
        activation = activation.squeeze(1)  # (B, frames, F)
    flat = activation.flatten(start_dim=1)
    low = flat.amin(dim=1).view(-1, 1, 1)
    spread = (flat.amax(dim=1).view(-1, 1, 1) - low).clamp(min=EPS)
    return (activation - low) / spread


#: The captum baselines by name (all take the classifier, X and the classes).
ATTRIBUTION_MASKS = {
    "saliency": saliency_mask,
    "integrated_gradients": integrated_gradients_mask,
    "smoothgrad": smoothgrad_mask,
    "occlusion": occlusion_mask,
}


def parse_baselines(text, activation_map=True):
    """`--baselines` (comma-separated names, or "all" / "none") as a tuple in `BASELINES` order.

    `activation_map`: whether the classifier's grid spans the input (`spans_input`);
    "all" then includes AMT, and without it asking for AMT is an error.

    Example
    -------
    >>> parse_baselines("occlusion,random")
    ('random', 'occlusion')
    >>> parse_baselines("all", activation_map=False) == BASELINES
    True
    >>> parse_baselines("all")[-1]
    'amt'
    """
    text = text.strip()
    known = BASELINES + MAP_BASELINES
    if text == "all":
        return known if activation_map else BASELINES
    if text == "none":
        return ()
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(
            f"--baselines: unknown baseline(s) {unknown}; choose from {', '.join(known)} "
            "(comma-separated), or all / none."
        )
    if not activation_map and set(names) & set(MAP_BASELINES):
        raise ValueError(
            "--baselines amt: AMT reads a classifier grid that spans the whole input (the "
            "transformer classifiers, e.g. hparams/piq_vit.yaml); this classifier has none: "
            "leave amt out."
        )
    return tuple(name for name in known if name in names)


def has_activation_map(brain):
    """Whether the brain's classifier has a grid that spans the input (AMT applies)."""
    return spans_input(brain.hparams.embedding_model)


def attribution_mask(brain, name, X, classes, seed=0):
    """One baseline of the brain's frozen classifier: a captum one (`ATTRIBUTION_MASKS[name]`),
    AMT (from the classifier's own grid), or the clip's floor (no classifier)."""
    hparams = brain.hparams
    if name == "above_floor":
        return floor_mask(X, brain.mask_domain)
    if name in MAP_BASELINES:
        _, representations = brain.classify(X)
        return amt_mask(representations, X.shape[1], X.shape[2], hparams.embedding_model)
    options = {"seed": seed} if name == "smoothgrad" else {}
    return ATTRIBUTION_MASKS[name](
        hparams.embedding_model,
        hparams.classifier,
        X,
        classes,
        compute_fbank=hparams.compute_fbank,
        use_melspectra=hparams.use_melspectra,
        **options,
    )


def baseline_masks(brain, outputs, generator=None, names=BASELINES):
    """The baselines `names` for one batch of an interpreter brain's `explain()` outputs.

    Arguments
    ---------
    brain : recipes.interpreters.base.InterpreterBrain
        Gives the frozen classifier and its input set-up.
    outputs : dict
        `brain.explain(wavs)`: needs "mask", "X" and "classes".
    generator : torch.Generator, optional
        For the random permutation, then SmoothGrad's noise seed.
    names : tuple of str
        Which baselines (`BASELINES` order kept, then `MAP_BASELINES`).

    Returns
    -------
    dict
        {name: (B, frames, F) in [0, 1]}, in `BASELINES` order.
    """
    masks = {}
    for name in BASELINES + MAP_BASELINES:
        if name not in names:
            continue
        if name == "random":
            masks[name] = random_mask(outputs["mask"], generator)
        else:
            seed = 0
            if name == "smoothgrad" and generator is not None:
                seed = int(torch.randint(2**62, (1,), generator=generator))
            masks[name] = attribution_mask(brain, name, outputs["X"], outputs["classes"], seed)
    return masks
