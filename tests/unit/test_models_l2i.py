"""Tests for models/L2I.py against the SpeechBrain reference modules.

Checkpoint compatibility: every module has the reference's state_dict keys and
shapes, loads a reference state dict with strict=True and then gives the same
output. Plus the reference defects we fixed, and Theta's pooling options.
"""


import pytest
import torch
from speechbrain.lobes.models import L2I as ref
from speechbrain.lobes.models.Cnn14 import Cnn14

from models import L2I as ours

ATOL = 1e-5


def _randomize(module, seed=0):
    """Fills every float parameter and buffer with random values (BN variances positive)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                values = torch.rand(tensor.shape, generator=generator) + 0.5
            else:
                values = 0.2 * torch.randn(tensor.shape, generator=generator)
            tensor.copy_(values)
    return module


def _load_reference_into_ours(ref_module, our_module):
    """Checks identical state_dict keys/shapes and loads the reference weights strictly."""
    ref_state = _randomize(ref_module).state_dict()
    our_state = our_module.state_dict()
    assert list(ref_state) == list(our_state)
    assert {k: v.shape for k, v in ref_state.items()} == {k: v.shape for k, v in our_state.items()}
    our_module.load_state_dict(ref_state, strict=True)
    for name, value in our_module.state_dict().items():
        assert torch.equal(value, ref_state[name]), name


def _outputs(module, *inputs):
    module.eval()
    with torch.no_grad():
        out = module(*inputs)
    return out if isinstance(out, tuple) else (out,)


def _assert_equivalent(ref_module, our_module, *inputs):
    _load_reference_into_ours(ref_module, our_module)
    ref_out = _outputs(ref_module, *inputs)
    our_out = _outputs(our_module, *inputs)
    assert len(ref_out) == len(our_out)
    for r, o in zip(ref_out, our_out):
        assert r.shape == o.shape
        assert r.abs().max() > 0, "degenerate comparison: the reference output is all zeros"
        torch.testing.assert_close(o, r, atol=ATOL, rtol=1e-5)


@pytest.fixture(scope="module")
def cnn14_reps():
    """Real Cnn14 representations (72 frames, 80 mels) sliced to 64/32/16/8 channels."""
    torch.manual_seed(0)
    embedder = Cnn14(mel_bins=80, emb_dim=64, return_reps=True).eval()
    with torch.no_grad():
        _, hs = embedder(torch.randn(2, 72, 80))
    return [h[:, : 64 >> i].contiguous() for i, h in enumerate(hs)]


# --------------------------------------------------------------------------- compatibility


def test_psi_matches_reference(cnn14_reps):
    torch.manual_seed(1)
    kwargs = dict(n_comp=8, T=30, in_emb_dims=[64, 32, 16])
    _assert_equivalent(ref.Psi(**kwargs), ours.Psi(**kwargs), cnn14_reps[:3])


def test_nmf_decoder_matches_reference():
    torch.manual_seed(2)
    H = torch.randn(3, 6, 7)  # negative entries: the clipping of H is compared too
    _assert_equivalent(ref.NMFDecoderAudio(6, 10, device="cpu"), ours.NMFDecoderAudio(6, 10), H)
    assert list(ours.NMFDecoderAudio(6, 10).state_dict()) == ["W"]


def test_nmf_decoder_return_W_matches_reference():
    reference, decoder = ref.NMFDecoderAudio(6, 10, device="cpu"), ours.NMFDecoderAudio(6, 10)
    _load_reference_into_ours(reference, decoder)
    assert (reference.W < 0).any()
    torch.testing.assert_close(decoder.return_W(), reference.return_W())


def test_nmf_encoder_matches_reference():
    torch.manual_seed(3)
    _assert_equivalent(ref.NMFEncoder(20, 5), ours.NMFEncoder(20, 5), torch.rand(2, 20, 30))


def test_theta_linear_matches_reference():
    torch.manual_seed(4)
    _assert_equivalent(ref.Theta(8, 12, 5), ours.Theta(8, 12, 5), torch.rand(3, 8, 12))


@pytest.mark.parametrize("use_adapter,reduce_dim", [(False, False), (True, False), (True, True)])
def test_psi_optimized_matches_reference(use_adapter, reduce_dim):
    torch.manual_seed(5)
    kwargs = dict(
        dim=16, K=10, numclasses=3, use_adapter=use_adapter, adapter_reduce_dim=reduce_dim
    )
    _assert_equivalent(
        ref.PsiOptimized(**kwargs), ours.PsiOptimized(**kwargs), torch.randn(1, 16, 2, 32)
    )


def test_psi_optimized_default_flags_state_dict_matches_reference():
    # the reference can build (not run) use_adapter=False, adapter_reduce_dim=True: same keys
    _load_reference_into_ours(ref.PsiOptimized(dim=16, K=10), ours.PsiOptimized(dim=16, K=10))


@pytest.mark.parametrize("name", ["CNN14PSI_stft", "CNN14PSI_stft_2d"])
def test_cnn14_psi_matches_reference(name, cnn14_reps):
    torch.manual_seed(6)
    reference, model = getattr(ref, name)(64, 5), getattr(ours, name)(64, 5)
    _assert_equivalent(reference, model, cnn14_reps)
    assert _outputs(model, cnn14_reps)[0].shape == (2, 5, 79)


# --------------------------------------------------------------------------- fixed defects


def test_psi_optimized_runs_with_documented_defaults():
    # speechbrain's PsiOptimized() raises AttributeError here (no `down` without adapter)
    torch.manual_seed(7)
    psi = ours.PsiOptimized(dim=16, K=10).eval()
    plain = ours.PsiOptimized(dim=16, K=10, adapter_reduce_dim=False).eval()
    plain.load_state_dict(psi.state_dict(), strict=True)
    hs = torch.randn(2, 16, 4, 32)
    with torch.no_grad():
        out, adapted = psi(hs)
        out_plain, _ = plain(hs)
    assert out.shape == (2, 1, 65, 10)
    assert adapted is hs
    torch.testing.assert_close(out, out_plain)


def test_psi_optimized_rejects_wrong_width():
    with pytest.raises(ValueError, match="32"):
        ours.PsiOptimized(dim=16, K=10)(torch.randn(1, 16, 4, 30))


def test_nmf_decoder_needs_no_device_and_follows_to():
    decoder = ours.NMFDecoderAudio()
    assert dict(decoder.named_parameters())["W"].shape == (513, 100)
    assert decoder(torch.rand(1, 100, 4)).shape == (1, 513, 4)
    decoder = decoder.to(torch.float64)
    assert decoder.W.dtype == torch.float64
    assert decoder(torch.rand(1, 100, 4, dtype=torch.float64)).dtype == torch.float64
    assert decoder.to("meta").W.device.type == "meta"


def test_nmf_decoder_device_argument_is_accepted_and_ignored():
    with pytest.warns(DeprecationWarning, match="to\\(device\\)"):
        decoder = ours.NMFDecoderAudio(4, 6, device="cuda")
    assert decoder.W.device.type == "cpu"


def test_modules_follow_the_default_device(cnn14_reps):
    """No hard-coded device: built and run under a default device, everything stays there."""
    with torch.device("meta"):
        reps = [torch.rand(h.shape) for h in cnn14_reps[:3]]
        modules = {
            "psi": (ours.Psi(n_comp=8, T=30, in_emb_dims=[64, 32, 16]), reps),
            "theta": (ours.Theta(n_comp=8, T=30, num_classes=3), torch.rand(2, 8, 30)),
            "decoder": (ours.NMFDecoderAudio(8, 20), torch.rand(2, 8, 30)),
        }
        for name, (module, inputs) in modules.items():
            tensors = list(module.parameters()) + list(module.buffers())
            assert all(t.device.type == "meta" for t in tensors), name
            if inputs is not None:
                assert module(inputs).device.type == "meta", name


def test_psi_rejects_mismatched_inputs(cnn14_reps):
    psi = ours.Psi(n_comp=8, T=30, in_emb_dims=[64, 32, 16])
    with pytest.raises(ValueError, match="in_emb_dims"):
        psi([cnn14_reps[0], cnn14_reps[0], cnn14_reps[2]])
    with pytest.raises(ValueError, match="2f"):
        psi([cnn14_reps[0], cnn14_reps[1], cnn14_reps[2][..., :4]])


def test_cnn14_psi_rejects_incompatible_representations():
    with pytest.raises(ValueError, match="l2i=False"):
        ours.CNN14PSI_stft(64, 5)([torch.rand(1, 64, 2, 2)] * 3)
    with pytest.raises(ValueError, match="emb_dim"):
        ours.CNN14PSI_stft(128, 5)([torch.rand(1, 64 >> i, 2, 2) for i in range(4)])
    # 64 frames give Cnn14 sizes whose third stage does not line up
    hs = [
        torch.rand(1, 64, 2, 2),
        torch.rand(1, 32, 2, 2),
        torch.rand(1, 16, 4, 5),
        torch.rand(1, 8, 8, 10),
    ]
    with pytest.raises(ValueError, match="stage 3"):
        ours.CNN14PSI_stft_2d(64, 5)(hs)


def test_weights_init():
    torch.manual_seed(8)
    conv = torch.nn.ConvTranspose2d(4, 6, 3)
    no_bias = torch.nn.Conv1d(4, 6, 3, bias=False)
    linear = torch.nn.Linear(4, 6)
    before = linear.weight.clone()
    for module in (conv, no_bias, linear):
        ours.weights_init(module)
    assert torch.all(conv.bias == 0)
    bound = (6 / (conv.weight[0].numel() + conv.weight[:, 0].numel())) ** 0.5  # xavier
    assert conv.weight.abs().max() <= bound
    assert no_bias.bias is None
    assert torch.equal(linear.weight, before)


# --------------------------------------------------------------------------- Theta pooling

POOLINGS = ["linear", "attention", "max"]


def _theta(pooling):
    torch.manual_seed(9)
    return ours.Theta(n_comp=8, T=12, num_classes=5, pooling=pooling)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_theta_shapes_and_forward_decomposition(pooling):
    theta = _theta(pooling)
    H = torch.rand(3, 8, 12)
    z = theta.pool(H)
    W = theta.classifier_weight()
    probs = theta(H)
    assert z.shape == (3, 8)
    assert W.shape == (5, 8)
    assert W is theta.classifier[0].weight
    assert probs.shape == (3, 5)
    torch.testing.assert_close(theta.logits(H), z @ W.T)
    torch.testing.assert_close(probs, torch.softmax(z @ W.T, dim=1))


def test_theta_linear_pool_is_learnt_time_weighting():
    theta = _theta("linear")
    H = torch.rand(3, 8, 12)
    torch.testing.assert_close(theta.pool(H), H @ theta.hard_att.weight[0])
    torch.testing.assert_close(
        theta.pool(H), (H @ theta.attention_weights(H).unsqueeze(2)).squeeze(2)
    )


def test_theta_attention_weights_sum_to_one():
    theta = _theta("attention")
    H = torch.rand(3, 8, 12)
    a = theta.attention_weights(H)
    assert a.shape == (3, 12)
    assert torch.all(a > 0)
    torch.testing.assert_close(a.sum(dim=1), torch.ones(3))
    torch.testing.assert_close(theta.pool(H), torch.einsum("bkt,bt->bk", H, a))
    # weights depend on the content: a different clip gets different weights
    assert not torch.allclose(theta.attention_weights(torch.rand(3, 8, 12)), a)


def test_theta_attention_is_trainable_and_frame_count_free():
    theta = _theta("attention")
    assert "hard_att.weight" not in theta.state_dict()
    H = torch.rand(2, 8, 20)  # T differs from the constructor's 12: unused by attention
    theta.logits(H).sum().backward()
    assert theta.attention_V.weight.grad.abs().sum() > 0
    assert theta.classifier_weight().grad.abs().sum() > 0


def test_theta_max_pooling():
    theta = _theta("max")
    H = torch.rand(3, 8, 7)
    assert torch.equal(theta.pool(H), H.max(dim=2).values)
    assert set(theta.state_dict()) == {"classifier.0.weight"}
    with pytest.raises(ValueError, match="max"):
        theta.attention_weights(H)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_theta_relevance(pooling):
    theta = _theta(pooling)
    H = torch.rand(3, 8, 12)
    classes = torch.tensor([0, 4, 2])
    contribution = theta.pool(H) * theta.classifier_weight()[classes]  # (B, K)
    expected = contribution / contribution.abs().max(dim=1, keepdim=True).values
    r = theta.relevance(H, classes)
    torch.testing.assert_close(r, expected)
    assert r.shape == (3, 8)
    assert torch.all(r.abs() <= 1)
    torch.testing.assert_close(r.abs().max(dim=1).values, torch.ones(3))
    # silent activations: relevance 0, not NaN
    assert torch.equal(theta.relevance(torch.zeros(3, 8, 12), classes), torch.zeros(3, 8))


def test_centered_relevance_ignores_what_the_softmax_ignores():
    """A constant added to a component's weights over all classes changes neither Theta's
    output nor the centred relevance; the raw relevance moves with it."""
    theta = _theta("max")
    H = torch.rand(3, 8, 12)
    classes = torch.tensor([0, 4, 2])
    before = theta(H), theta.relevance(H, classes), theta.relevance(H, classes, centered=True)
    with torch.no_grad():
        theta.classifier_weight().add_(torch.linspace(-2.0, 2.0, 8))  # one offset per component
    after = theta(H), theta.relevance(H, classes), theta.relevance(H, classes, centered=True)
    torch.testing.assert_close(after[0], before[0])  # the same classifier
    torch.testing.assert_close(after[2], before[2])
    assert (after[1] - before[1]).abs().max() > 0.1
    weight = theta.classifier_weight() - theta.classifier_weight().mean(dim=0)
    contribution = theta.pool(H) * weight[classes]
    torch.testing.assert_close(after[2], contribution / contribution.abs().amax(dim=1, keepdim=True))


def test_theta_rejects_bad_configuration():
    with pytest.raises(ValueError, match="pooling"):
        ours.Theta(8, 12, 5, pooling="mean")
    with pytest.raises(ValueError, match="T=12"):
        ours.Theta(8, 12, 5)(torch.rand(1, 8, 13))
    with pytest.raises(ValueError, match="8"):
        ours.Theta(8, 12, 5, pooling="max")(torch.rand(1, 7, 12))
