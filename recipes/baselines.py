"""Baseline masks, scored by the same metric suite as the interpreters.

`recipes/eval.py` scores every interpreter next to two masks that need no
training, so its figures can be read against a reference:

- `random_mask`: the interpreter's own mask with its values shuffled over the
  (frame, bin) positions of each clip (a random permutation per clip). It has
  exactly the interpreter's value distribution, so the same mass and area
  (mean, share above any threshold) and the same sparseness (SPS) and
  complexity (COMP), which are permutation invariant: only *where* the mask
  puts its weight differs. A good interpreter must beat it on fidelity and
  faithfulness.
- `saliency_mask`: gradient saliency from captum (`captum.attr.Saliency`):
  |d score_c / d X| of the frozen classifier's score for its predicted class c
  with respect to its input spectrogram X, divided by its per-clip maximum, so
  it is a mask in [0, 1] (all zeros where the gradient is zero). The
  classifier's weights stay frozen: only the input needs a gradient.

Authors
 * audio-interpret contributors 2026
"""

import torch
from captum.attr import Saliency

from recipes.pipeline import EPS, classify

#: The baselines eval.py scores, in report order.
BASELINES = ("random", "saliency")


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


def saliency_mask(
    embedding_model, classifier, X, classes, compute_fbank=None, use_melspectra=False
):
    """Gradient saliency of the classifier's predicted-class score, as a [0, 1] mask.

    Arguments
    ---------
    embedding_model, classifier : torch.nn.Module
        The frozen classifier (see `recipes.pipeline.classify`).
    X : torch.Tensor
        Its input, the log1p magnitude spectrogram (B, frames, F).
    classes : torch.Tensor
        The class whose score is explained, per clip (B,) (the predicted class).
    compute_fbank, use_melspectra :
        As for `recipes.pipeline.classify` (log-mel classifiers).

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

    def class_scores(inputs):
        scores, _ = classify(embedding_model, classifier, inputs, compute_fbank, use_melspectra)
        return scores  # (B, N)

    with torch.enable_grad():
        attribution = Saliency(class_scores).attribute(
            X.detach().clone().requires_grad_(True), target=classes.detach(), abs=True
        )
    return normalise_per_clip(attribution.detach())  # (B, frames, F)


def baseline_masks(brain, outputs, generator=None):
    """Both baselines for one batch of an interpreter brain's `explain()` outputs.

    Arguments
    ---------
    brain : recipes.interpreter_brain.InterpreterBrain
        Gives the frozen classifier and its input set-up.
    outputs : dict
        `brain.explain(wavs)`: needs "mask", "X" and "classes".
    generator : torch.Generator, optional
        For the random permutation.

    Returns
    -------
    dict
        {"random": (B, frames, F), "saliency": (B, frames, F)}, keys in `BASELINES` order.
    """
    hparams = brain.hparams
    return {
        "random": random_mask(outputs["mask"], generator),
        "saliency": saliency_mask(
            hparams.embedding_model,
            hparams.classifier,
            outputs["X"],
            outputs["classes"],
            compute_fbank=hparams.compute_fbank,
            use_melspectra=hparams.use_melspectra,
        ),
    }
