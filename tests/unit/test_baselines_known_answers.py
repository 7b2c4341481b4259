"""The captum baselines against their known answers on hand-made classifiers (issue 25).

A linear classifier, scores = W X (+ b), has constant gradients: saliency = |W_c|,
Integrated Gradients from silence = X W_c, and silencing a patch lowers score_c by
the patch's sum of X W_c. A thresholded one, scores = W relu(X - t), has gradient
W_c 1[X > t], so SmoothGrad with Gaussian noise of std s averages it to
|W_c| P(X + noise > t) = |W_c| Phi((X - t) / s). Expected masks are computed here
with numpy and math, then divided by their per-clip maximum, as the baselines are.
"""

import math

import numpy as np
import pytest
import torch

from recipes.evaluation import baselines

FRAMES, BINS, N_CLASSES = 6, 5, 3


def linear_classifier(seed=0):
    """Flatten + Linear: scores (B, N) = X.flatten() W^T + b, weights of both signs."""
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(FRAMES * BINS, N_CLASSES)
    with torch.no_grad():
        head.weight.copy_(torch.randn(N_CLASSES, FRAMES * BINS, generator=generator))
        head.bias.copy_(torch.randn(N_CLASSES, generator=generator))
    return torch.nn.Flatten(), head


def clips(seed=1):
    X = torch.rand(2, FRAMES, BINS, generator=torch.Generator().manual_seed(seed))
    return X, torch.tensor([0, 2])  # the explained class of each clip


def per_clip_max(values):
    """numpy: each clip's values divided by its maximum."""
    return values / values.reshape(len(values), -1).max(axis=1).reshape(-1, 1, 1)


def weights_of(head, classes):
    return head.weight.detach().numpy()[classes.numpy()].reshape(-1, FRAMES, BINS)  # (B, frames, F)


def test_saliency_is_the_absolute_weight():
    embedding, head = linear_classifier()
    X, classes = clips()
    expected = per_clip_max(np.abs(weights_of(head, classes)))
    mask = baselines.saliency_mask(embedding, head, X, classes)
    assert np.allclose(mask.numpy(), expected, atol=1e-6)


def test_integrated_gradients_from_silence_is_the_input_times_the_weight():
    embedding, head = linear_classifier()
    X, classes = clips()
    expected = per_clip_max(np.abs(X.numpy() * weights_of(head, classes)))
    mask = baselines.integrated_gradients_mask(embedding, head, X, classes)
    assert np.allclose(mask.numpy(), expected, atol=1e-5)


def test_occlusion_keeps_only_the_drops_of_each_silenced_patch():
    """A 4 x 4 grid on 6 frames x 5 bins: patches of 2 frames x 2 bins (the last bin column
    alone); each bin gets its patch's drop sum(X W_c) when it is positive, else 0."""
    embedding, head = linear_classifier()
    X, classes = clips()
    contribution = X.numpy() * weights_of(head, classes)  # (B, frames, F)
    window = baselines.occlusion_window(FRAMES, BINS, grid=4)
    assert window == (2, 2)
    drops = np.zeros_like(contribution)
    for t in range(0, FRAMES, window[0]):
        for f in range(0, BINS, window[1]):
            patch = (slice(None), slice(t, t + window[0]), slice(f, f + window[1]))
            drops[patch] = contribution[patch].sum(axis=(1, 2)).reshape(-1, 1, 1)
    assert (drops < 0).any() and (drops > 0).any()  # rises to leave out, drops to keep
    expected = per_clip_max(np.maximum(drops, 0.0))
    mask = baselines.occlusion_mask(embedding, head, X, classes, grid=4)
    assert np.allclose(mask.numpy(), expected, atol=1e-5)


class Thresholded(torch.nn.Module):
    """The embedding relu(X - t), flattened: its gradient is 1[X > t]."""

    def __init__(self, threshold):
        super().__init__()
        self.threshold = threshold

    def forward(self, X):
        return torch.relu(X - self.threshold).flatten(start_dim=1)


SMOOTHGRAD_SAMPLES = 4000  # the mean's error: under 0.008 |W| per bin


def smoothgrad_setting():
    """(head, X, classes, threshold, std): the linear head, clips of range about 3, the
    embedding's threshold 1.5 and SmoothGrad's noise std (SMOOTHGRAD_NOISE x each clip's
    range), (B, 1, 1)."""
    _, head = linear_classifier()
    X, classes = clips()
    X = 3 * X
    std = baselines.SMOOTHGRAD_NOISE * (X.flatten(1).amax(1) - X.flatten(1).amin(1)).numpy().reshape(-1, 1, 1)
    return head, X, classes, 1.5, std


def test_smoothgrad_is_the_mean_gradient_under_the_noise():
    """Noise std = SMOOTHGRAD_NOISE x the clip's range (here about 3: not the noise of a
    range of 1); mean |gradient| = |W_c| Phi((X - t) / std)."""
    head, X, classes, threshold, std = smoothgrad_setting()
    phi = np.vectorize(lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2))))
    expected = per_clip_max(np.abs(weights_of(head, classes)) * phi((X.numpy() - threshold) / std))
    mask = baselines.smoothgrad_mask(
        Thresholded(threshold), head, X, classes, seed=0, n_samples=SMOOTHGRAD_SAMPLES
    )
    assert np.abs(mask.numpy() - expected).max() < 0.05
    # not the plain saliency of the thresholded classifier: the noise matters
    saliency = baselines.saliency_mask(Thresholded(threshold), head, X, classes)
    assert np.abs(saliency.numpy() - expected).max() > 0.2


@pytest.mark.parametrize("name", ["saliency", "integrated_gradients", "smoothgrad", "occlusion"])
def test_each_baseline_explains_the_class_it_is_given(name):
    """Another class's weights give another mask (the target reaches captum)."""
    embedding, head = linear_classifier()
    X, classes = clips()
    method = baselines.ATTRIBUTION_MASKS[name]
    assert not torch.allclose(
        method(embedding, head, X, classes), method(embedding, head, X, (classes + 1) % 3)
    )


class HalfSquare(torch.nn.Module):
    """The embedding (X - t)^2 / 2, flattened: its gradient X - t changes sign at t."""

    def __init__(self, threshold):
        super().__init__()
        self.threshold = threshold

    def forward(self, X):
        return (0.5 * (X - self.threshold) ** 2).flatten(start_dim=1)


def test_smoothgrad_averages_the_absolute_gradient():
    """SmoothGrad is the mean of |gradient| over the noisy copies, not |mean gradient|: with
    gradient W_c (X + noise - t), it is |W_c| E|Y|, Y ~ N(X - t, std^2), the folded normal's
    mean std sqrt(2 / pi) exp(-mu^2 / 2 std^2) + mu (1 - 2 Phi(-mu / std))."""
    head, X, classes, threshold, std = smoothgrad_setting()
    mu = X.numpy() - threshold
    phi = np.vectorize(lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2))))
    folded = std * math.sqrt(2 / math.pi) * np.exp(-(mu**2) / (2 * std**2)) + mu * (
        1 - 2 * phi(-mu / std)
    )
    weights = np.abs(weights_of(head, classes))
    expected = per_clip_max(weights * folded)
    mask = baselines.smoothgrad_mask(
        HalfSquare(threshold), head, X, classes, seed=0, n_samples=SMOOTHGRAD_SAMPLES
    )
    assert np.abs(mask.numpy() - expected).max() < 0.05
    # |mean gradient| = |W_c| |X - t| is another answer: the test can tell them apart
    assert np.abs(per_clip_max(weights * np.abs(mu)) - expected).max() > 0.1


def test_random_mask_moves_the_values_of_each_clip():
    """The same values per clip (the interpreter's distribution), at other places."""
    mask = torch.arange(2 * FRAMES * BINS, dtype=torch.float32).view(2, FRAMES, BINS)
    shuffled = baselines.random_mask(mask, torch.Generator().manual_seed(0))
    for clip in range(2):
        assert shuffled[clip].flatten().sort().values.tolist() == mask[clip].flatten().tolist()
    assert (shuffled != mask).float().mean() > 0.5  # 30 distinct values: nearly all moved
    # one permutation per clip: two identical clips are shuffled differently (the same order
    # has probability 1 / 30!)
    same = baselines.random_mask(mask[:1].repeat(2, 1, 1), torch.Generator().manual_seed(0))
    assert not torch.equal(same[0], same[1])
