"""Tests for models/PIQ.py.

speechbrain.lobes.models.PIQ (installed) is the reference: published PIQ
checkpoints were saved from it, so every class must have the same state_dict
layout and, with the same weights, give the same outputs. Beyond that, the
tests cover what the reference gets wrong: class-partitioning errors, the
settings VQEmbedding.forward uses, and the partition helper.
"""

import pytest
import torch
from speechbrain.lobes.models import PIQ as ref

from models import PIQ as piq

PSI_CLASSES = [
    "VectorQuantizedPSI_Audio",
    "VectorQuantizedPSIFocalNet_Audio",
    "VectorQuantizedPSIViT_Audio",
]


def _randomize_state(module, seed=0):
    """Fills every float tensor of module's state with random values (in place)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            values = torch.randn(tensor.shape, generator=generator) * 0.2
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            tensor.copy_(values)
    return module


def _assert_same_layout(ours, theirs):
    """Same state_dict keys and shapes, and strict loading in both directions."""
    our_state, their_state = ours.state_dict(), theirs.state_dict()
    assert list(our_state) == list(their_state)
    for key, value in their_state.items():
        assert our_state[key].shape == value.shape, key
    ours.load_state_dict(their_state, strict=True)
    theirs.load_state_dict(our_state, strict=True)


def _paired(name, *args, **kwargs):
    """Our and the reference's module `name`, with the same random weights."""
    theirs = _randomize_state(getattr(ref, name)(*args, **kwargs))
    ours = getattr(piq, name)(*args, **kwargs)
    _assert_same_layout(ours, theirs)
    return ours, theirs


def _assert_close(ours, theirs):
    # rtol: the decoders' last layer sums in another order on CPU (models/layers.py)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- #
# Checkpoint compatibility
# --------------------------------------------------------------------------- #


def test_resblock_compat():
    ours, theirs = _paired("ResBlockAudio", 8)
    x = torch.randn(2, 8, 5, 6)
    for train in (True, False):
        ours.train(train)
        theirs.train(train)
        _assert_close(ours(x), theirs(x))


def test_conv2d_encoder_shape_and_compat():
    ours, theirs = _paired("Conv2dEncoder_v2", dim=8)
    x = torch.rand(2, 431, 513)
    ours.eval()
    theirs.eval()
    out = ours(x)
    assert out.shape == (2, 8, 26, 32)
    _assert_close(out, theirs(x))


def _lower_median_floor(x):
    """relu(x - lower median over the frames), by sorting: independent of torch.median."""
    frames = x.shape[1]
    floor = x.sort(dim=1).values[:, (frames - 1) // 2 : (frames - 1) // 2 + 1]
    return torch.where(x > floor, x - floor, torch.zeros_like(x))


def test_conv2d_encoder_with_floor_reads_x_above_its_median():
    torch.manual_seed(0)
    plain = _randomize_state(piq.Conv2dEncoder_v2(dim=8)).eval()
    floored = piq.Conv2dEncoder_v2(dim=8, subtract_floor=True).eval()
    floored.load_state_dict(plain.state_dict() | {piq.FLOOR_KEY: torch.tensor(True)})
    x = torch.rand(2, 64, 40) * 3  # an even number of frames: the lower of the middle two
    x[:, :, 5] = 2.0  # a steady bin: nothing rises above its floor
    expected = plain(_lower_median_floor(x))
    _assert_close(floored(x), expected)
    assert not torch.allclose(plain(x), expected, atol=1e-3)
    assert torch.equal(_lower_median_floor(x)[:, :, 5], torch.zeros(2, 64))


@pytest.mark.parametrize("frames", [9, 10])
def test_background_floor_is_torch_median_with_its_gradient(frames):
    from models.layers import background_floor

    x = torch.rand(3, frames, 7, generator=torch.Generator().manual_seed(frames), dtype=torch.float64)
    expected = x.median(dim=1, keepdim=True).values
    assert torch.equal(background_floor(x), expected)  # no gradient asked: the values alone
    ours, theirs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    weights = torch.rand(3, 1, 7, dtype=torch.float64)
    (background_floor(ours) * weights).sum().backward()
    (theirs.median(dim=1, keepdim=True).values * weights).sum().backward()
    assert torch.equal(ours.grad, theirs.grad)
    assert torch.count_nonzero(ours.grad) == 3 * 7  # one frame per (clip, frequency)


def test_conv2d_encoder_floor_travels_with_its_weights():
    # on: an entry in the state dict, which sets a default encoder when it loads
    state = piq.Conv2dEncoder_v2(dim=4, subtract_floor=True).state_dict()
    assert state[piq.FLOOR_KEY].item() is True
    loaded = piq.Conv2dEncoder_v2(dim=4)
    loaded.load_state_dict(state, strict=True)
    assert loaded.subtract_floor is True
    # SpeechBrain's encoder reads X: it refuses such weights rather than compute another function
    with pytest.raises(RuntimeError, match=piq.FLOOR_KEY):
        ref.Conv2dEncoder_v2(dim=4).load_state_dict(state, strict=True)
    # off: the reference's layout, and loading it switches the floor off
    plain = piq.Conv2dEncoder_v2(dim=4).state_dict()
    assert piq.FLOOR_KEY not in plain
    loaded.load_state_dict(plain, strict=True)
    assert loaded.subtract_floor is False
    # nested in a Sequential (the prefix of a sub-module)
    outer = torch.nn.Sequential(piq.Conv2dEncoder_v2(dim=4))
    outer.load_state_dict({f"0.{key}": value for key, value in state.items()}, strict=True)
    assert outer[0].subtract_floor is True


@pytest.mark.parametrize("training", [True, False])
def test_vq_embedding_straight_through_compat(training):
    ours, theirs = _paired("VQEmbedding", 40, 8, numclasses=5, shared_keys=5)
    ours.train(training)
    theirs.train(training)
    z = torch.randn(3, 8, 4, 5)
    labels = torch.tensor([4, 0, 2])
    for our_out, their_out in zip(
        ours.straight_through(z, labels), theirs.straight_through(z, labels)
    ):
        assert torch.equal(our_out, their_out)


def test_vq_embedding_forward_equals_reference_where_reference_is_right():
    # The reference forward always quantizes with 10 classes, 10 shared keys and
    # training rules: with exactly those settings, in training mode, ours agrees.
    ours, theirs = _paired("VQEmbedding", 64, 8, numclasses=10, shared_keys=10)
    z = torch.randn(3, 8, 4, 5)
    labels = torch.Tensor([9, 0, 3])
    assert torch.equal(ours(z, labels), theirs(z, labels))


@pytest.mark.parametrize("name", PSI_CLASSES)
@pytest.mark.parametrize(
    "use_adapter, adapter_reduce_dim", [(True, True), (False, False), (True, False)]
)
def test_psi_compat(name, use_adapter, adapter_reduce_dim):
    kwargs = dict(
        dim=16,
        K=32,
        numclasses=4,
        shared_keys=4,
        use_adapter=use_adapter,
        adapter_reduce_dim=adapter_reduce_dim,
    )
    ours, theirs = _paired(name, **kwargs)
    hs = torch.randn(2, 16, 4, 4)
    labels = torch.tensor([3, 1])
    for training in (False, True):
        ours.train(training)
        theirs.train(training)
        for our_out, their_out in zip(ours(hs, labels), theirs(hs, labels)):
            assert our_out.shape == their_out.shape
            _assert_close(our_out, their_out)


@pytest.mark.parametrize("name", PSI_CLASSES)
def test_psi_reduce_without_adapter_works(name):
    """The reference builds down/up only with use_adapter=True, then calls them anyway."""
    kwargs = dict(dim=16, K=32, numclasses=4, use_adapter=False, adapter_reduce_dim=True)
    theirs = getattr(ref, name)(**kwargs)
    ours = getattr(piq, name)(**kwargs)
    hs, labels = torch.randn(2, 16, 4, 4), torch.tensor([0, 1])
    with pytest.raises(AttributeError, match="down"):
        theirs(hs, labels)
    x_tilde, hcat, z_q_x = ours(hs, labels)
    assert hcat.shape == z_q_x.shape == (2, 16, 2, 2)
    assert x_tilde.shape == ours.eval()(hs, labels)[0].shape
    extra = set(ours.state_dict()) - set(theirs.state_dict())
    assert extra == {"down.weight", "down.bias", "up.weight", "up.bias"}
    assert not any(key.startswith("adapter.") for key in ours.state_dict())


def test_psi_checkpoint_file_roundtrip(tmp_path):
    """A state dict saved from the reference loads from disk into ours."""
    theirs = _randomize_state(ref.VectorQuantizedPSI_Audio(dim=16, K=32, numclasses=4)).eval()
    path = tmp_path / "psi_model.ckpt"
    torch.save(theirs.state_dict(), path)
    ours = piq.VectorQuantizedPSI_Audio(dim=16, K=32, numclasses=4).eval()
    ours.load_state_dict(torch.load(path, weights_only=True), strict=True)
    hs, labels = torch.randn(2, 16, 8, 8), torch.tensor([0, 3])
    _assert_close(ours(hs, labels)[0], theirs(hs, labels)[0])


@pytest.mark.parametrize(
    "name, args",
    [
        ("ResBlockAudio", (8,)),
        ("Conv2dEncoder_v2", (8,)),
        ("VQEmbedding", (64, 8)),
        ("VectorQuantizedPSI_Audio", (16, 32, 4)),
    ],
)
def test_same_seed_same_initial_weights(name, args):
    """Training runs seeded like the reference's start from the same weights."""
    torch.manual_seed(3)
    theirs = getattr(ref, name)(*args).state_dict()
    torch.manual_seed(3)
    ours = getattr(piq, name)(*args).state_dict()
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key


@pytest.mark.parametrize("partition", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_vq_functions_compat(partition, training):
    inputs = torch.randn(2, 3, 4, 8)
    codebook = torch.randn(48, 8)
    labels = torch.Tensor([2, 5])
    args = (inputs, codebook, labels, 6, partition, 6, training)
    assert torch.equal(piq.VectorQuantization.apply(*args), ref.VectorQuantization.apply(*args))
    ours = piq.VectorQuantizationStraightThrough.apply(*args)
    theirs = ref.VectorQuantizationStraightThrough.apply(*args)
    for our_out, their_out in zip(ours, theirs):
        assert torch.equal(our_out, their_out)


def test_get_irrelevant_regions_matches_reference():
    for numclasses in range(1, 9):
        for shared in (0, 3):
            for K in range(numclasses + shared, numclasses + shared + 25):
                labels = torch.arange(numclasses)
                for stage in ("TRAIN", "VALID"):
                    ours = piq.get_irrelevant_regions(labels, K, numclasses, shared, stage)
                    theirs = ref.get_irrelevant_regions(labels, K, numclasses, shared, stage)
                    assert torch.equal(ours, theirs), (numclasses, shared, K, stage)


# --------------------------------------------------------------------------- #
# Class partitioning
# --------------------------------------------------------------------------- #


def test_partition_of_codes_layout():
    assert piq.partition_of_codes(8, 3, shared_keys=2).tolist() == [0, 0, 1, 1, 2, 2, -1, -1]
    assert piq.partition_of_codes(5, 5).tolist() == [0, 1, 2, 3, 4]
    owners = piq.partition_of_codes(1024, 50, shared_keys=10)
    assert owners.dtype == torch.long and owners.shape == (1024,)
    assert torch.all(owners[-10:] == -1)
    # contiguous, non-decreasing blocks, class 0 first
    assert torch.all(owners[:-10].diff() >= 0) and owners[0] == 0 and owners[-11] == 49


def test_every_class_gets_a_code_when_codebook_is_large_enough():
    for numclasses in range(1, 61, 3):
        for class_codes in range(numclasses, numclasses + 200, 7):
            owners = piq.partition_of_codes(class_codes + 2, numclasses, shared_keys=2)
            counts = owners[:-2].bincount(minlength=numclasses)
            assert counts.numel() == numclasses and counts.min() >= 1, (numclasses, class_codes)


def test_partition_of_codes_is_what_get_irrelevant_regions_enforces():
    K, numclasses, shared = 23, 4, 3
    owners = piq.partition_of_codes(K, numclasses, shared)
    labels = torch.arange(numclasses)
    train = piq.get_irrelevant_regions(labels, K, numclasses, shared, "TRAIN")
    valid = piq.get_irrelevant_regions(labels, K, numclasses, shared, "VALID")
    own = owners.unsqueeze(0) == labels.unsqueeze(1)  # (classes, K)
    assert torch.equal(~train, own)
    assert torch.equal(~valid, own | (owners == -1).unsqueeze(0))


@pytest.mark.parametrize("training", [True, False])
def test_selected_codes_lie_in_predicted_class_partition(training):
    torch.manual_seed(0)
    psi = piq.VectorQuantizedPSI_Audio(dim=16, K=40, numclasses=5, shared_keys=5).train(training)
    labels = torch.tensor([4, 0, 2, 2])
    _, hcat, z_q_x = psi(torch.randn(4, 16, 8, 8), labels)
    indices = psi.codebook(hcat, labels)  # (B, H, W)
    assert indices.shape == (4, 4, 4)
    owners = psi.codebook.partition_of_codes()[indices]
    allowed = owners == labels.view(-1, 1, 1)
    if not training:
        allowed |= owners == -1
    assert torch.all(allowed)
    # forward's indices are the codes straight_through (and so psi) used
    codes = psi.codebook.embedding.weight[indices].permute(0, 3, 1, 2)
    assert torch.equal(codes, z_q_x)


def test_shared_keys_selectable_outside_training_only():
    vq = piq.VQEmbedding(12, 4, numclasses=3, shared_keys=3)
    shared_code = vq.embedding.weight[10].detach()
    z = shared_code.view(1, 4, 1, 1).repeat(2, 1, 2, 2)  # exactly a shared code
    labels = torch.tensor([0, 2])
    assert torch.all(vq.eval()(z, labels) == 10)
    train_indices = vq.train()(z, labels)
    owners = vq.partition_of_codes()[train_indices]
    assert torch.all(owners == labels.view(-1, 1, 1))


def test_vq_embedding_forward_uses_its_own_settings():
    # numclasses=4, no shared keys: the reference forward would partition the
    # dictionary into 10 classes and forbid its last 10 codes instead.
    vq = piq.VQEmbedding(32, 8, numclasses=4, shared_keys=0)
    labels = torch.tensor([3, 3])
    indices = vq(torch.randn(2, 8, 6, 6), labels)
    owners = vq.partition_of_codes()[indices]
    assert torch.all(owners == 3)
    # codes 24..31 belong to class 3; the reference forward makes 22..31 unreachable
    assert indices.min() >= 24
    no_partition = piq.VQEmbedding(32, 8, numclasses=4, activate_class_partitioning=False)
    z = no_partition.embedding.weight.detach()[:4].view(1, 2, 2, 8).permute(0, 3, 1, 2)
    assert no_partition(z).flatten().tolist() == [0, 1, 2, 3]


def test_float_and_long_labels_agree():
    vq = piq.VQEmbedding(30, 6, numclasses=3)
    z = torch.randn(3, 6, 4, 4)
    assert torch.equal(vq(z, torch.Tensor([1, 0, 2])), vq(z, torch.tensor([1, 0, 2])))


# --------------------------------------------------------------------------- #
# Errors a user can act on
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("bad", [[0, 5], [-1, 1], [0.0, 5.0]])
def test_labels_out_of_range(bad):
    vq = piq.VQEmbedding(20, 4, numclasses=5)
    z = torch.randn(2, 4, 3, 3)
    labels = torch.tensor(bad)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, numclasses=5\).*numclasses >="):
        vq.straight_through(z, labels)
    with pytest.raises(ValueError, match="labels must lie in"):
        vq(z, labels)
    with pytest.raises(ValueError, match="labels must lie in"):
        piq.get_irrelevant_regions(labels, 20, 5, 0)
    with pytest.raises(ValueError, match="labels must lie in"):
        piq.VectorQuantization.apply(torch.randn(2, 3, 3, 4), torch.randn(40, 4), labels, 5)


def test_psi_rejects_bad_labels():
    psi = piq.VectorQuantizedPSI_Audio(dim=8, K=16, numclasses=4)
    hs = torch.randn(2, 8, 4, 4)
    with pytest.raises(ValueError, match="labels must lie in"):
        psi(hs, torch.tensor([0, 4]))
    for not_whole in ([0.5, 1.0], [float("inf"), 1.0], [float("nan"), 0.0]):
        with pytest.raises(ValueError, match="non-integer"):
            psi(hs, torch.tensor(not_whole))
    with pytest.raises(ValueError, match="one predicted class per example"):
        psi(hs, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="pass labels"):
        psi(hs, None)
    with pytest.raises(ValueError, match=r"shape \(B, 8, H, W\)"):
        psi(torch.randn(2, 6, 4, 4), torch.tensor([0, 1]))


def test_codebook_too_small_for_classes():
    with pytest.raises(ValueError, match="too small.*K >= numclasses \\+ shared_keys = 10"):
        piq.VQEmbedding(8, 4, numclasses=10)
    with pytest.raises(ValueError, match="too small"):
        piq.VectorQuantizedPSI_Audio(dim=8, K=12, numclasses=10, shared_keys=4)
    with pytest.raises(ValueError, match="too small"):
        piq.partition_of_codes(12, 10, shared_keys=4)
    # the Function defaults are 10 classes and 10 shared keys
    with pytest.raises(ValueError, match="too small"):
        piq.VectorQuantization.apply(torch.randn(1, 2, 2, 4), torch.randn(15, 4), torch.tensor([0]))
    with pytest.raises(ValueError, match="shared_keys must lie"):
        piq.VQEmbedding(8, 4, numclasses=2, shared_keys=-1)
    # without partitioning any size is fine, and labels are optional
    vq = piq.VQEmbedding(8, 4, numclasses=10, activate_class_partitioning=False)
    assert vq(torch.randn(1, 4, 2, 2)).shape == (1, 2, 2)


def test_vector_quantization_is_not_differentiable():
    with pytest.raises(RuntimeError, match="not differentiable.*VectorQuantizationStraightThrough"):
        piq.VectorQuantization.backward(None, torch.zeros(3))
    inputs = torch.randn(1, 2, 2, 4, requires_grad=True)
    indices = piq.VectorQuantization.apply(inputs, torch.randn(20, 4), torch.tensor([1]))
    assert not indices.requires_grad
    with pytest.raises(RuntimeError):
        torch.autograd.grad(indices.float().sum(), inputs)


# --------------------------------------------------------------------------- #
# Gradients
# --------------------------------------------------------------------------- #


def test_straight_through_gradients():
    inputs = torch.randn(2, 3, 4, 5, requires_grad=True)
    codebook = torch.randn(30, 5, requires_grad=True)
    weights = torch.randn(2, 3, 4, 5)
    codes, indices = piq.VectorQuantizationStraightThrough.apply(
        inputs, codebook, torch.tensor([1, 2]), 3, True, 0, True
    )
    grad_inputs, grad_codebook = torch.autograd.grad((codes * weights).sum(), (inputs, codebook))
    assert torch.equal(grad_inputs, weights)  # identity for the inputs
    expected = torch.zeros(30, 5).index_add_(0, indices, weights.reshape(-1, 5))
    torch.testing.assert_close(grad_codebook, expected)


@pytest.mark.parametrize("adapter_reduce_dim", [True, False])
def test_gradient_reaches_encoder_side(adapter_reduce_dim):
    ours, theirs = _paired(
        "VectorQuantizedPSI_Audio",
        dim=16,
        K=32,
        numclasses=4,
        adapter_reduce_dim=adapter_reduce_dim,
    )
    # double precision: the gradient of a sum over the whole map accumulates float32
    # rounding of the two last-layer implementations past any tight tolerance
    ours.double()
    theirs.double()
    hs = torch.randn(2, 16, 4, 4, dtype=torch.float64)
    labels = torch.tensor([1, 2])
    grads = []
    for model in (ours, theirs):
        hs_ = hs.clone().requires_grad_(True)
        x_tilde = model(hs_, labels)[0]
        x_tilde.sum().backward()
        grads.append(hs_.grad)
    assert grads[0].abs().sum() > 0 and torch.isfinite(grads[0]).all()
    _assert_close(grads[0], grads[1])
    # the dictionary is trained through z_q_x only (codebook loss), not through x_tilde
    assert ours.codebook.embedding.weight.grad is None
    ours(hs, labels)[2].sum().backward()
    assert ours.codebook.embedding.weight.grad.abs().sum() > 0


def test_weights_init_logs_instead_of_printing(capsys):
    conv = torch.nn.Conv2d(2, 3, 3, bias=False)
    before = conv.weight.detach().clone()
    piq.weights_init(conv)
    piq.weights_init(piq.Conv2dEncoder_v2(4))  # not a convolution: untouched
    piq.VectorQuantizedPSI_Audio(dim=8, K=16, numclasses=4)
    assert not torch.equal(conv.weight, before)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("training", [True, False])
def test_return_indices_are_the_codes_used(training):
    psi = piq.VectorQuantizedPSI_Audio(dim=16, K=32, numclasses=4, shared_keys=4).train(training)
    hs = torch.randn(3, 16, 4, 4)
    labels = torch.tensor([3, 0, 1])
    x_tilde, hcat, z_q_x, indices = psi(hs, labels, return_indices=True)
    assert indices.shape == hcat.shape[:1] + hcat.shape[2:]
    # the same codes as a separate nearest-code search, and the vectors that were decoded
    assert torch.equal(indices, psi.codebook(hcat.detach(), labels))
    codes = psi.codebook.embedding.weight[indices].permute(0, 3, 1, 2)
    torch.testing.assert_close(z_q_x, codes)
    # without the flag: the reference's three outputs, the same values
    plain = psi(hs, labels)
    assert len(plain) == 3
    torch.testing.assert_close(plain[0], x_tilde)
