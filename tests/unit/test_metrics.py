"""The metric suite on hand-made cases whose answer is known."""

import numpy as np
import pytest
import torch

from recipes.evaluation import metrics


def probs_of(logits):
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float32), dim=1)


def test_quantus_reference_values():
    """SPS and COMP equal quantus' Sparseness and Complexity on the issue's 4x3 map."""
    m = torch.tensor([[[0, 1, 2], [3, -4, 0.5], [0, 0, 0], [1, 1, 1]]])
    assert abs(metrics.sparseness(m).item() - 0.5648147) < 1e-5
    assert abs(metrics.complexity(m).item() - 1.8707834) < 1e-5


def test_sparseness_and_complexity_extremes():
    one_hot = torch.zeros(1, 10, 10)
    one_hot[0, 3, 4] = 1.0
    flat = torch.ones(1, 10, 10)
    assert metrics.sparseness(one_hot).item() > 0.98
    assert metrics.sparseness(flat).item() < 1e-3
    assert metrics.complexity(one_hot).item() < 1e-6
    assert abs(metrics.complexity(flat).item() - torch.log(torch.tensor(100.0)).item()) < 1e-5
    zeros = torch.zeros(2, 4, 5)  # no distribution: undefined, not scored as flat
    assert torch.isnan(metrics.complexity(zeros)).all()
    assert torch.isnan(metrics.sparseness(zeros)).all()


def test_all_ones_mask_is_the_input():
    """mask = 1: X_int = X, so Fid-In = 1 and AI = AD = AG = 0."""
    probs = probs_of([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2]])
    classes = probs.argmax(dim=1)
    uniform = torch.full_like(probs, 1.0 / 3)  # p(X - X_int) = p(silence), whatever it is
    values = metrics.mask_metrics(probs, probs, uniform, classes, torch.ones(2, 4, 5))
    assert torch.equal(values["fid_in"], torch.ones(2))
    for name in ("AI", "AD", "AG"):
        assert torch.equal(values[name], torch.zeros(2)), name


def test_all_zeros_mask_has_no_faithfulness():
    """mask = 0: X - X_int = X, so FF = 0."""
    probs = probs_of([[2.0, 0.5], [0.1, 0.3]])
    classes = probs.argmax(dim=1)
    values = metrics.mask_metrics(probs, probs_of([[0.0, 0.0]] * 2), probs, classes, torch.zeros(2, 3, 3))
    assert torch.equal(values["faithfulness"], torch.zeros(2))


def test_drop_gain_increase_on_known_numbers():
    probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]])
    probs_int = torch.tensor([[0.3, 0.7], [0.8, 0.2]])
    classes = torch.tensor([0, 0])
    assert torch.allclose(metrics.average_drop(probs, probs_int, classes), torch.tensor([50.0, 0.0]))
    assert torch.allclose(metrics.average_gain(probs, probs_int, classes), torch.tensor([0.0, 50.0]))
    assert torch.equal(metrics.average_increase(probs, probs_int, classes), torch.tensor([0.0, 100.0]))
    assert torch.equal(metrics.fid_in(probs_int, classes), torch.tensor([0.0, 1.0]))


def test_topk_fidelity():
    logits = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    classes = torch.tensor([0, 0])
    assert torch.equal(metrics.topk_fidelity(logits, classes, 1), torch.tensor([0.0, 1.0]))
    assert torch.equal(metrics.topk_fidelity(logits, classes, 3), torch.tensor([0.0, 1.0]))
    assert torch.equal(metrics.topk_fidelity(logits, classes, 5), torch.tensor([1.0, 1.0]))


def test_si_sdr_known_signals():
    gen = torch.Generator().manual_seed(0)
    reference = torch.randn(3, 8000, generator=gen)
    # identical -> the +inf is clipped; a scaled copy scores the same
    assert torch.equal(metrics.si_sdr(reference, reference), torch.full((3,), metrics.SI_SDR_CLIP_DB))
    assert torch.equal(metrics.si_sdr(0.3 * reference, reference), torch.full((3,), metrics.SI_SDR_CLIP_DB))
    # orthogonal noise of the same energy: 0 dB
    noise = torch.randn(3, 8000, generator=gen)
    ref0 = reference - reference.mean(dim=1, keepdim=True)
    noise = noise - noise.mean(dim=1, keepdim=True)
    noise = noise - (noise * ref0).sum(1, keepdim=True) / (ref0**2).sum(1, keepdim=True) * ref0
    noise = noise * ref0.norm(dim=1, keepdim=True) / noise.norm(dim=1, keepdim=True)
    assert torch.allclose(metrics.si_sdr(ref0 + noise, ref0), torch.zeros(3), atol=1e-3)
    # a silent reference has no SI-SDR (NaN); a silent estimate of a real one is the floor
    assert torch.isnan(metrics.si_sdr(torch.zeros(1, 100), torch.zeros(1, 100))).all()
    assert torch.equal(metrics.si_sdr(torch.zeros(3, 8000), reference), torch.full((3,), -metrics.SI_SDR_CLIP_DB))


@pytest.mark.parametrize("scale, offset, seed", [(0.7, 0.25, 0), (-1.5, -0.3, 1)])
def test_si_sdr_from_torchmetrics_agrees_with_the_hand_written_definition(scale, offset, seed):
    """The library's SI-SDR equals the definition the project used before it (zero-mean,
    optimal scale, 10 log10 of the energies; numpy, float64) on an offset, scaled, noisy
    estimate: 10 log10(|a s|^2 / |e - a s|^2) with a = <e, s> / |s|^2 after removing means."""
    rng = np.random.default_rng(seed)
    reference = rng.standard_normal((4, 8000))
    estimate = scale * reference + 0.4 * rng.standard_normal((4, 8000)) + offset  # offset and scale
    s = reference - reference.mean(axis=1, keepdims=True)
    e = estimate - estimate.mean(axis=1, keepdims=True)
    a = (e * s).sum(axis=1, keepdims=True) / (s**2).sum(axis=1, keepdims=True)
    expected = 10 * np.log10(((a * s) ** 2).sum(axis=1) / ((e - a * s) ** 2).sum(axis=1))
    got = metrics.si_sdr(torch.from_numpy(estimate).float(), torch.from_numpy(reference).float())
    assert np.allclose(got.numpy(), expected, atol=1e-4)
    assert 4.0 < expected.mean() - 20 * np.log10(abs(scale) / 0.7) < 6.0  # 0.7^2 / 0.4^2: about 4.9 dB


def test_a_process_given_no_batch_still_summarises_every_process_values(monkeypatch):
    """Found by a new-user read: `torchrun --nproc_per_node=2 recipes/eval.py` on a test set of
    one batch gave process 1 no batch; its StageStats knew no metric name, its summary was {}
    and the evaluation crashed (KeyError 'fid_in'). The gather is torch.distributed's
    all_gather_object with 2 processes, stood in for by a function that hands back this
    process's part and the other one's: values 1, 2, 3 (mean 2) and a batch scalar 0.5 over 3
    clips, seen from the process that has none, and from the one that has them."""
    other = ({"fid_in": torch.tensor([1.0, 2.0, 3.0])}, {"loss": (1.5, 3)})

    def gather_as_rank(rank):
        def all_gather_object(everyone, mine):
            everyone[rank], everyone[1 - rank] = mine, other
        return all_gather_object

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    for rank in (0, 1):
        monkeypatch.setattr(torch.distributed, "all_gather_object", gather_as_rank(rank))
        empty = metrics.StageStats()
        assert empty.summary() == {"loss": 0.5, "fid_in": 2.0}
    # a process with values of its own: both parts, one metric each process lacks
    monkeypatch.setattr(torch.distributed, "all_gather_object", gather_as_rank(0))
    stats = metrics.StageStats()
    stats.add_values({"fid_in": torch.tensor([5.0]), "ff": torch.tensor([1.0])})
    stats.add_scalar("loss", 2.5, 1)
    assert stats.summary() == {"loss": (1.5 + 2.5) / 4, "fid_in": 11.0 / 4, "ff": 1.0}


def test_a_stage_every_process_runs_whole_is_not_gathered(monkeypatch):
    """Found by a torchrun probe: SpeechBrain gives every process the whole valid and test sets,
    and gathering their values counted each clip once per process (n_undefined doubled under 2
    processes). With gather=False a process's summary is its own: here 3 values of which one is
    NaN, whatever the other process holds (the same clips)."""
    mine = {"sps": torch.tensor([1.0, float("nan"), 3.0])}

    def all_gather_object(everyone, part):
        everyone[0], everyone[1] = part, part  # the other process: the same clips

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "all_gather_object", all_gather_object)
    whole = metrics.StageStats(gather=False)
    whole.add_values(mine)
    assert whole.summary() == {"sps": 2.0} and whole.n_undefined == {"sps": 1}
    sharded = metrics.StageStats()
    sharded.add_values(mine)
    assert sharded.summary() == {"sps": 2.0} and sharded.n_undefined == {"sps": 2}  # what gathering counts
