"""The model-randomisation sanity check (recipes/evaluation/sanity.py) on tiny hand-made cases."""

import json
import math
import types

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from models.PIQ import Conv2dEncoder_v2
from recipes.core.pipeline import classify
from recipes.evaluation import sanity
from recipes.evaluation.baselines import saliency_mask
from recipes.reporting import figures, tables

FRAMES, BINS = 32, 33


# ------------------------------------------------------------------ spearman
def test_spearman_matches_scipy_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (3, 7, 9), generator=g).float()  # many ties
    b = torch.randint(0, 5, (3, 7, 9), generator=g).float()
    b[0] = a[0] * 2 + (torch.rand(7, 9, generator=g) > 0.8)  # strongly related clip
    # masks with many exact zeros, as a thresholded interpreter gives
    c = (torch.rand(3, 7, 9, generator=g) - 0.6).clamp(min=0)
    d = (c + 0.3 * torch.rand(3, 7, 9, generator=g) - 0.2).clamp(min=0)
    for x, y in ((a, b), (c, d), (a, c)):
        rho = sanity.spearman(x, y)
        assert rho.shape == (3,)
        for i in range(3):
            expected = spearmanr(x[i].flatten().numpy(), y[i].flatten().numpy()).statistic
            assert abs(rho[i].item() - expected) < 1e-5, (i, rho[i].item(), expected)


def test_spearman_zero_variance_rules():
    varying = torch.rand(1, 4, 5, generator=torch.Generator().manual_seed(1))
    ones, zeros = torch.ones(1, 4, 5), torch.zeros(1, 4, 5)
    a = torch.cat([ones, zeros, ones, varying, zeros])
    b = torch.cat([ones, zeros, zeros, ones, varying])
    assert sanity.spearman(a, b).tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        sanity.spearman(torch.full((1, 3), math.nan), torch.ones(1, 3))


def test_spearman_on_a_large_mask_is_exact_for_identical_and_reversed():
    a = (torch.rand(2, 400, 513, generator=torch.Generator().manual_seed(2)) - 0.5).clamp(min=0)
    assert torch.allclose(sanity.spearman(a, a), torch.ones(2))
    assert torch.allclose(sanity.spearman(a, -a), -torch.ones(2))


# ---------------------------------------------------------------------- ssim
def reference_ssim(a, b, size, sigma=1.5, L=1.0):
    """Mean SSIM over every window position (explicit loops, numpy): an independent reference."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    x = np.arange(size) - (size - 1) / 2
    w1 = np.exp(-(x**2) / (2 * sigma**2))
    w = np.outer(w1, w1)
    w /= w.sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    values = []
    for i in range(a.shape[0] - size + 1):
        for j in range(a.shape[1] - size + 1):
            pa, pb = a[i : i + size, j : j + size], b[i : i + size, j : j + size]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va = (w * (pa - ma) ** 2).sum()
            vb = (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            values.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_identical_unrelated_and_reference():
    g = torch.Generator().manual_seed(3)
    a = torch.rand(2, 16, 14, generator=g)
    noise = torch.rand(2, 16, 14, generator=g)
    assert torch.allclose(sanity.ssim(a, a), torch.ones(2))
    unrelated = sanity.ssim(a, noise)
    assert (unrelated < 0.3).all(), unrelated
    slightly = sanity.ssim(a, (a + 0.02 * noise).clamp(0, 1))
    assert (slightly > 0.9).all() and (slightly > unrelated).all()
    for i in range(2):
        assert abs(unrelated[i].item() - reference_ssim(a[i], noise[i], 11)) < 1e-5


def test_ssim_shrinks_its_window_on_small_maps():
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(3, 10, 12, generator=g), torch.rand(3, 10, 12, generator=g)
    values = sanity.ssim(a, b)
    assert values.shape == (3,) and torch.isfinite(values).all()
    for i in range(3):  # the largest odd window that fits a 10 x 12 map: 9
        assert abs(values[i].item() - reference_ssim(a[i], b[i], 9)) < 1e-5
    thin = sanity.ssim(torch.rand(2, 1, 5, generator=g), torch.rand(2, 1, 5, generator=g))
    assert torch.isfinite(thin).all()
    assert torch.allclose(sanity.ssim(a, a), torch.ones(3))


# ------------------------------------------------------------- randomisation
def test_randomisation_steps_go_top_down():
    encoder, head = Conv2dEncoder_v2(dim=8), torch.nn.Linear(8, 3)
    steps = sanity.randomisation_steps(encoder, head)
    names = [name for name, _ in steps]
    blocks = ["resblock", "bn4", "conv4", "bn3", "conv3", "bn2", "conv2", "bn1", "conv1"]
    assert names == ["classifier"] + [f"embedding_model.{b}" for b in blocks]  # no "nonl" (ReLU)
    assert steps[0][1] == [head]
    for name, modules in steps[1:]:
        assert modules == [getattr(encoder, name.split(".")[1])]


def test_randomisation_steps_on_cnn14_and_containers():
    from speechbrain.lobes.models.Cnn14 import Cnn14

    with torch.device("meta"):  # only the structure is needed
        cnn14 = Cnn14(mel_bins=8, emb_dim=16, return_reps=True)
    names = [name for name, _ in sanity.randomisation_steps(cnn14, torch.nn.Linear(16, 3))]
    expected = [f"embedding_model.conv_block{i}" for i in range(6, 0, -1)] + ["embedding_model.norm0"]
    assert names == ["classifier"] + expected

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2))

    names = [name for name, _ in sanity.randomisation_steps(Wrapped(), torch.nn.Linear(2, 2))]
    assert names == ["classifier", "embedding_model.layers.2", "embedding_model.layers.0"]


def test_randomise_changes_every_parameter_and_keeps_buffers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(5, 400))
    model[2].bias.data.zero_()  # no spread: drawn at the 1 / sqrt(fan_in) scale
    model(torch.randn(3, 2, 7, 7))  # train mode: gives the BatchNorm running statistics values
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pointers = {name: p.data_ptr() for name, p in model.named_parameters()}
    sanity.randomise_([model], torch.Generator().manual_seed(5))
    for name, p in model.named_parameters():
        assert not torch.equal(p, before[name]), name
        assert (p != before[name]).float().mean() > 0.99, name
        assert p.data_ptr() == pointers[name], name  # in place
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, before[name]), name
    bias = model[2].bias.detach()
    assert 0.5 / math.sqrt(400) < bias.std().item() < 2 / math.sqrt(400)
    weight = model[0].weight.detach()  # its own scale kept
    assert 0.7 < weight.std().item() / before["0.weight"].std().item() < 1.4
    # reproducible from the generator's seed
    again = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(5, 400))
    again.load_state_dict(before)
    sanity.randomise_([again], torch.Generator().manual_seed(5))
    for (name, p), q in zip(model.named_parameters(), again.parameters()):
        assert torch.equal(p, q), name


# ------------------------------------------------------------------ the check
class TinyBrain:
    """The parts of an InterpreterBrain the check reads; X is a reshaped |wav|."""

    def __init__(self):
        torch.manual_seed(0)
        self.hparams = types.SimpleNamespace(
            embedding_model=Conv2dEncoder_v2(dim=8), classifier=torch.nn.Linear(8, 3)
        )

    def preprocess(self, wavs):
        return wavs.abs().log1p().view(wavs.shape[0], FRAMES, BINS), None

    def classify(self, X):
        return classify(self.hparams.embedding_model, self.hparams.classifier, X)


def mask_functions(brain):
    def gradient_saliency(wavs):
        X = brain.preprocess(wavs)[0]
        with torch.no_grad():
            classes = brain.classify(X)[0].argmax(dim=1)
        return saliency_mask(brain.hparams.embedding_model, brain.hparams.classifier, X, classes)

    def input_only(wavs):  # ignores the classifier
        X = brain.preprocess(wavs)[0]
        return X / X.amax(dim=(1, 2), keepdim=True)

    return {
        "ones": lambda wavs: torch.ones(wavs.shape[0], FRAMES, BINS),
        "input_only": input_only,
        "saliency": gradient_saliency,
    }


def classifier_state(brain):
    return {
        f"{part}.{k}": v.clone()
        for part in ("embedding_model", "classifier")
        for k, v in getattr(brain.hparams, part).state_dict().items()
    }


@pytest.fixture(scope="module")
def checked():
    brain = TinyBrain()
    brain.hparams.embedding_model.train()  # the mode must come back too
    wavs = torch.randn(4, FRAMES * BINS, generator=torch.Generator().manual_seed(6))
    before = classifier_state(brain)
    result = sanity.model_randomisation_check(brain, wavs, mask_functions(brain), seed=0)
    return brain, before, result


def test_check_fails_masks_that_ignore_the_classifier(checked):
    _, _, result = checked
    assert "ones" in result["failed"] and "input_only" in result["failed"]
    assert "saliency" not in result["failed"]
    saliency = result["methods"]["saliency"]
    assert saliency["spearman"][-1] < sanity.SANITY_MAX_SIMILARITY
    assert saliency["ssim"][-1] < sanity.SANITY_MAX_SIMILARITY


def test_check_restores_the_classifier(checked):
    brain, before, _ = checked
    after = classifier_state(brain)
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    assert brain.hparams.embedding_model.training and brain.hparams.embedding_model.bn1.training
    assert brain.hparams.classifier.training  # nn.Linear starts in train mode


def test_check_schema(checked):
    brain, _, result = checked
    assert set(result) == {"clips", "steps", "class_kept", "methods", "max_similarity", "failed"}
    assert result["clips"] == 4
    names = [name for name, _ in sanity.randomisation_steps(brain.hparams.embedding_model, brain.hparams.classifier)]
    assert result["steps"] == ["none"] + names
    n = len(result["steps"])
    assert len(result["class_kept"]) == n and result["class_kept"][0] == 1.0
    assert all(0.0 <= v <= 1.0 for v in result["class_kept"])
    assert set(result["methods"]) == {"ones", "input_only", "saliency"}
    for method_figures in result["methods"].values():
        assert set(method_figures) == {"spearman", "ssim"}
        assert len(method_figures["spearman"]) == len(method_figures["ssim"]) == n
        assert method_figures["spearman"][0] == method_figures["ssim"][0] == 1.0
    assert result["max_similarity"] == sanity.SANITY_MAX_SIMILARITY
    assert json.loads(json.dumps(result)) == result  # JSON-able


def test_check_restores_the_classifier_when_a_mask_function_raises():
    brain = TinyBrain()
    before = classifier_state(brain)
    calls = []

    def breaks_after_a_while(wavs):
        calls.append(brain.hparams.embedding_model.training)
        if len(calls) == 3:  # after two randomised steps
            raise RuntimeError("boom")
        return torch.rand(wavs.shape[0], FRAMES, BINS)

    with pytest.raises(RuntimeError, match="boom"):
        sanity.model_randomisation_check(brain, torch.randn(2, FRAMES * BINS), {"m": breaks_after_a_while})
    assert calls == [False] * 3  # the classifier runs in eval mode during the check
    assert brain.hparams.embedding_model.training  # and gets its mode back
    after = classifier_state(brain)
    for name, value in before.items():
        assert torch.equal(after[name], value), name


# ------------------------------------------------------------------ rendering
def test_plot_and_markdown(checked, tmp_path):
    import matplotlib.image

    _, _, result = checked
    path = figures.plot_sanity(result, tmp_path / "sanity.png")
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 600
    assert not list(tmp_path.glob("*.partial"))
    text = tables.sanity_markdown(result)
    failed_line = [line for line in text.splitlines() if "FAILED" in line and not line.startswith("|")]
    assert failed_line and "ones" in failed_line[-1] and "input_only" in failed_line[-1]
    assert "saliency" not in failed_line[-1]
    assert len([line for line in text.splitlines() if line.startswith("| ")]) == 1 + len(result["steps"])
    passed = dict(result, failed=[])
    assert "passed: every mask changed" in tables.sanity_markdown(passed)


def test_check_fails_only_a_mask_similar_on_both_figures():
    """A mask that keeps its ranking but halves its values once the classifier is randomised:
    its Spearman correlation stays 1 (the same order), its SSIM falls below 0.9 (other
    values); failing asks for both to stay high, so it passes."""
    brain = TinyBrain()
    wavs = torch.randn(4, FRAMES * BINS, generator=torch.Generator().manual_seed(6))
    input_only = mask_functions(brain)["input_only"]
    calls = []

    def halved(wavs):
        calls.append(1)
        return input_only(wavs) * (1.0 if len(calls) == 1 else 0.5)

    result = sanity.model_randomisation_check(brain, wavs, {"halved": halved}, seed=0)
    figures_of = result["methods"]["halved"]
    assert figures_of["spearman"][-1] == pytest.approx(1.0)
    assert figures_of["ssim"][-1] < sanity.SANITY_MAX_SIMILARITY
    assert "halved" not in result["failed"]
