"""Posthoc Interpretation via Quantization (PIQ) for audio classifiers.

PIQ explains a classifier's decision by quantizing the classifier's hidden
representation with a vector-quantization (VQ) dictionary whose codes are
partitioned among the classes, then decoding the quantized representation to a
(mask over the) log-power spectrogram. This module holds the building blocks:

- :func:`partition_of_codes` and :func:`get_irrelevant_regions`: which code of
  the dictionary belongs to which class (the class-partitioned latent space);
- :class:`VectorQuantization` / :class:`VectorQuantizationStraightThrough`:
  the nearest-code search, without and with a straight-through gradient;
- :class:`VQEmbedding`: the learnable dictionary wrapping both;
- :class:`Conv2dEncoder_v2` and :class:`ResBlockAudio`: the convolutional
  classifier encoder and its residual block;
- :class:`VectorQuantizedPSI_Audio` and its FocalNet / ViT variants: the
  interpreter (adapter, VQ dictionary, transposed-convolution decoder).

Parameter names and shapes equal those of ``speechbrain.lobes.models.PIQ`` so
published checkpoints load with ``load_state_dict(strict=True)`` and give the
same outputs. Differences from that module (all on inputs it mishandled):

- labels outside ``[0, numclasses)``, non-integer labels, missing labels, or a
  dictionary too small to give every class a code raise a ``ValueError``
  (the reference silently quantized such examples with code 0, or failed
  with an ``AttributeError`` when labels were missing);
- :meth:`VQEmbedding.forward` uses the dictionary's own ``numclasses``,
  ``shared_keys``, ``activate_class_partitioning`` and train/eval mode (the
  reference always used 10 classes, 10 shared keys and training mode);
- ``VectorQuantizedPSI_Audio(use_adapter=False, adapter_reduce_dim=True)``
  builds the down/up-sampling layers it uses (the reference built them only
  with ``use_adapter=True`` and failed in ``forward``); every configuration
  the reference can run has the reference's exact parameter names;
- diagnostics go through ``logging``, never ``print``.

Authors
 * Cem Subakan 2023 (original PIQ)
 * Francesco Paissan 2023 (original PIQ)
"""

import torch
import torch.nn as nn
from speechbrain.utils.logger import get_logger
from torch.autograd import Function

from models.layers import SingleChannelConvTranspose2d, above_background_floor

# one call in a torch.fx graph (its selection branches on the tensor's device): the encoder
# stays traceable, so its BatchNorms fold into the convolutions (recipes.core.brains.fused_for_inference)
torch.fx.wrap("above_background_floor")

logger = get_logger(__name__)

# State-dict entry of a Conv2dEncoder_v2 that reads X above its median floor.
FLOOR_KEY = "subtract_floor"

# Index that partition_of_codes gives to the keys shared by all classes.
SHARED_CODE = -1


def _check_partition_layout(K, numclasses, shared_keys):
    """Raises a ValueError when a class-partitioned dictionary cannot be built.

    Arguments
    ---------
    K : int
        Number of codes in the dictionary.
    numclasses : int
        Number of classes the dictionary is partitioned among.
    shared_keys : int
        Number of codes (the last ones) shared by all classes.
    """
    if int(K) < 1:
        raise ValueError(f"The VQ dictionary needs at least one code; got K={K}.")
    if int(numclasses) < 1:
        raise ValueError(
            f"numclasses must be at least 1; got {numclasses}. Set it to the "
            "number of classes of the classifier being interpreted."
        )
    if not 0 <= int(shared_keys) <= int(K):
        raise ValueError(
            f"shared_keys must lie in [0, K={K}]; got {shared_keys}. Use a "
            "non-negative number of shared keys smaller than the dictionary size."
        )
    if K - shared_keys < numclasses:
        raise ValueError(
            f"The VQ dictionary is too small for class partitioning: K={K} codes "
            f"minus shared_keys={shared_keys} leaves {K - shared_keys} class codes "
            f"for numclasses={numclasses}, so some class would get no code. Use "
            f"K >= numclasses + shared_keys = {numclasses + shared_keys}, fewer "
            "shared keys, or activate_class_partitioning=False."
        )


def _class_indices(labels, numclasses, batch_size=None):
    """Validates predicted class labels and returns them as a LongTensor.

    Arguments
    ---------
    labels : torch.Tensor or None
        Class index per example, any shape with ``batch_size`` elements; integer
        or integral float values (``torch.Tensor([1, 0, 2])`` is accepted).
    numclasses : int
        Labels must lie in ``[0, numclasses)``.
    batch_size : int, optional
        Expected number of labels (the batch size of the quantized tensor).

    Returns
    -------
    labels : torch.Tensor
        LongTensor of shape ``(B,)``.
    """
    if labels is None:
        raise ValueError(
            "Class-partitioned quantization needs the predicted class of every "
            "example: pass labels (shape [B]) or set activate_class_partitioning=False."
        )
    labels = torch.as_tensor(labels).reshape(-1)  # (B,)
    if batch_size is not None and labels.numel() != batch_size:
        raise ValueError(
            f"Got {labels.numel()} labels for a batch of {batch_size} examples: "
            "pass one predicted class per example."
        )
    if labels.dtype == torch.bool or labels.is_complex():
        raise ValueError(f"labels must hold class indices (integers); got dtype {labels.dtype}.")
    if labels.is_floating_point():
        whole = torch.isfinite(labels) & (labels == torch.round(labels))
        if not bool(torch.all(whole)):
            raise ValueError(
                "labels must hold whole class indices; got non-integer values "
                f"{labels[~whole][:5].tolist()}. Pass the "
                "argmax of the classifier output, not probabilities."
            )
    if labels.numel() > 0:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= numclasses:
            raise ValueError(
                f"labels must lie in [0, numclasses={numclasses}); got values in "
                f"[{low}, {high}]. Pass class indices of the classifier (argmax of "
                f"its output), or build the model with numclasses >= {high + 1}."
            )
    return labels.long()


def partition_of_codes(K, numclasses, shared_keys=0):
    """Returns the class that owns each code of a class-partitioned dictionary.

    The first ``K - shared_keys`` codes are split into ``numclasses`` contiguous,
    nearly equal blocks (class 0 first); the last ``shared_keys`` codes are
    shared by all classes and marked ``SHARED_CODE`` (-1). This is the layout
    that :func:`get_irrelevant_regions` (and so the VQ) enforces: during
    training an example of class ``c`` may only select codes owned by ``c``;
    outside training it may select codes owned by ``c`` or shared codes.
    (This asymmetry comes from the reference implementation and is kept so that
    published models behave the same; note that it means shared codes are never
    selected, hence never updated by the codebook loss, during training.)

    Every class owns at least one code whenever ``K - shared_keys >= numclasses``;
    smaller dictionaries raise a ValueError.

    Arguments
    ---------
    K : int
        Number of codes in the dictionary.
    numclasses : int
        Number of classes.
    shared_keys : int
        Number of codes shared by all classes (the last ones).

    Returns
    -------
    owners : torch.Tensor
        LongTensor of shape ``(K,)``: class index of each code, -1 for shared codes.

    Example
    -------
    >>> partition_of_codes(8, 3, shared_keys=2)
    tensor([ 0,  0,  1,  1,  2,  2, -1, -1])
    >>> partition_of_codes(1024, 50).bincount().min() > 0
    tensor(True)
    """
    _check_partition_layout(K, numclasses, shared_keys)
    # Computed on CPU in float32 so that every device rounds the block
    # boundaries the same way (and as the published models were trained).
    positions = torch.linspace(-0.5, numclasses - 0.51, K - shared_keys)
    class_codes = torch.round(positions).long()  # (K - shared_keys,)
    shared = torch.full((shared_keys,), SHARED_CODE, dtype=torch.long)
    return torch.cat([class_codes, shared])  # (K,)


def get_irrelevant_regions(labels, K, num_classes, N_shared=5, stage="TRAIN"):
    """Returns, per example, which codes of the dictionary it may not select.

    Arguments
    ---------
    labels : torch.Tensor
        Predicted class of each example, shape ``(B,)``; integer or integral
        float values in ``[0, num_classes)``.
    K : int
        Number of codes in the dictionary.
    num_classes : int
        Number of classes.
    N_shared : int
        Number of codes shared by all classes (the last ones).
    stage : str
        ``"TRAIN"``: shared codes are irrelevant too (only the class's own codes
        may be selected); anything else: shared codes may be selected.

    Returns
    -------
    irrelevant_regions : torch.Tensor
        Boolean tensor of shape ``(B, K)``, True where the code is forbidden.

    Example
    -------
    >>> labels = torch.Tensor([1, 0, 2])
    >>> irrelevant_regions = get_irrelevant_regions(labels, 20, 3, 5)
    >>> print(irrelevant_regions.shape)
    torch.Size([3, 20])
    >>> get_irrelevant_regions(torch.tensor([1]), 8, 3, 2, stage="VALID").int()
    tensor([[1, 1, 0, 0, 1, 1, 0, 0]], dtype=torch.int32)
    """
    labels = _class_indices(labels, num_classes)  # (B,)
    return _irrelevant_codes(labels, K, num_classes, N_shared, stage == "TRAIN")


def _irrelevant_codes(labels, K, numclasses, shared_keys, training):
    """get_irrelevant_regions for labels already validated as class indices.

    Arguments
    ---------
    labels : torch.Tensor
        LongTensor of shape ``(B,)`` with values in ``[0, numclasses)``.
    K : int
        Number of codes in the dictionary.
    numclasses : int
        Number of classes.
    shared_keys : int
        Number of codes shared by all classes (the last ones).
    training : bool
        If True, shared codes are irrelevant too.

    Returns
    -------
    irrelevant : torch.Tensor
        Boolean tensor of shape ``(B, K)``.
    """
    owners = partition_of_codes(K, numclasses, shared_keys).to(labels.device)  # (K,)
    irrelevant = owners.unsqueeze(0) != labels.unsqueeze(1)  # (B, K)
    if not training:
        irrelevant &= (owners != SHARED_CODE).unsqueeze(0)
    return irrelevant


def weights_init(m):
    """Applies Xavier-uniform initialization to a convolution, zero to its bias.

    Meant for ``module.apply(weights_init)``: modules that are not
    (transposed) convolutions are left untouched.

    Arguments
    ---------
    m : torch.nn.Module
        Module to initialize.

    Example
    -------
    >>> conv = torch.nn.Conv2d(2, 4, 3)
    >>> weights_init(conv)
    >>> bool(torch.all(conv.bias == 0))
    True
    """
    if not isinstance(m, nn.modules.conv._ConvNd):
        return
    with torch.no_grad():
        nn.init.xavier_uniform_(m.weight)
        if m.bias is None:
            logger.debug("%s has no bias: only its weight was initialized", type(m).__name__)
        else:
            m.bias.zero_()


def _nearest_code_indices(
    inputs, codebook, labels, num_classes, activate_class_partitioning, shared_keys, training
):
    """Index of the nearest (allowed) code for every vector of ``inputs``.

    Arguments
    ---------
    inputs : torch.Tensor
        Vectors to quantize, shape ``(B, ..., C)``.
    codebook : torch.Tensor
        Dictionary, shape ``(K, C)``.
    labels : torch.Tensor or None
        Predicted class per example, ``(B,)`` (unused without partitioning).
    num_classes : int
        Number of classes the dictionary is partitioned among.
    activate_class_partitioning : bool
        Restrict each example to the codes of its class.
    shared_keys : int
        Number of codes shared by all classes.
    training : bool
        Training stage (shared codes are then forbidden, see get_irrelevant_regions).

    Returns
    -------
    indices : torch.Tensor
        LongTensor of shape ``inputs.shape[:-1]``.
    """
    with torch.no_grad():
        K, C = codebook.shape
        if inputs.shape[-1] != C:
            raise ValueError(
                f"Cannot quantize vectors of size {inputs.shape[-1]} with a dictionary "
                f"of {C}-dimensional codes: the last input dimension must be {C}."
            )
        batch_size = inputs.shape[0]
        flat = inputs.reshape(-1, C)  # (B*N, C)
        # Squared distances |x|^2 + |e|^2 - 2 x.e, for all pairs.
        distances = torch.addmm(
            codebook.pow(2).sum(dim=1) + flat.pow(2).sum(dim=1, keepdim=True),
            flat,
            codebook.t(),
            alpha=-2.0,
            beta=1.0,
        )  # (B*N, K)
        if activate_class_partitioning:
            labels = _class_indices(labels, num_classes, batch_size).to(inputs.device)
            irrelevant = _irrelevant_codes(labels, K, num_classes, shared_keys, training)  # (B, K)
            distances = distances.view(batch_size, -1, K)  # (B, N, K)
            distances = distances.masked_fill(irrelevant.unsqueeze(1), torch.inf)
            distances = distances.view(-1, K)  # (B*N, K)
        indices = torch.argmin(distances, dim=1)  # (B*N,)
        return indices.view(inputs.shape[:-1])


class VectorQuantization(Function):
    """Nearest-code vector quantization, not differentiable.

    ``VectorQuantization.apply(inputs, codebook, labels, ...)`` returns the index
    of the nearest code of every input vector; with class partitioning an
    example may only use the codes of its predicted class (see
    :func:`partition_of_codes`). The indices carry no gradient: asking for one
    raises a RuntimeError; use :class:`VectorQuantizationStraightThrough` for a
    straight-through gradient estimate.
    """

    @staticmethod
    def forward(
        ctx,
        inputs,
        codebook,
        labels=None,
        num_classes=10,
        activate_class_partitioning=True,
        shared_keys=10,
        training=True,
    ):
        """Returns the dictionary index of the nearest allowed code of each vector.

        Arguments
        ---------
        ctx : torch.autograd.function.FunctionCtx
            Autograd context.
        inputs : torch.Tensor
            Representations to quantize, shape ``(B, W, H, C)``.
        codebook : torch.Tensor
            VQ dictionary, shape ``(K, C)``.
        labels : torch.Tensor
            Predicted class per example, shape ``(B,)``, integer or integral float
            values in ``[0, num_classes)``. May be None without partitioning.
        num_classes : int
            Number of classes the dictionary is partitioned among.
        activate_class_partitioning : bool
            If True, each example may only select the codes of its class.
        shared_keys : int
            Number of codes (the last ones) shared by all classes.
        training : bool
            True in the training stage (shared codes are then not selectable).

        Returns
        -------
        indices : torch.Tensor
            LongTensor of shape ``(B, W, H)``.

        Example
        -------
        >>> inputs = torch.ones(3, 14, 25, 256)
        >>> codebook = torch.randn(1024, 256)
        >>> labels = torch.Tensor([1, 0, 2])
        >>> print(VectorQuantization.apply(inputs, codebook, labels).shape)
        torch.Size([3, 14, 25])
        """
        indices = _nearest_code_indices(
            inputs,
            codebook,
            labels,
            num_classes,
            activate_class_partitioning,
            shared_keys,
            training,
        )
        ctx.mark_non_differentiable(indices)
        return indices

    @staticmethod
    def backward(ctx, grad_output):
        """Refuses to differentiate the quantization.

        Arguments
        ---------
        ctx : torch.autograd.function.FunctionCtx
            Autograd context.
        grad_output : torch.Tensor
            Gradient with respect to the indices.
        """
        raise RuntimeError(
            "VectorQuantization is not differentiable, so gradients cannot flow "
            "through it. Use VectorQuantizationStraightThrough (or "
            "VQEmbedding.straight_through) for a straight-through gradient estimate."
        )


class VectorQuantizationStraightThrough(Function):
    """Vector quantization with the straight-through gradient estimator.

    The forward pass replaces every vector by its nearest allowed code (as
    :class:`VectorQuantization`); the backward pass treats the quantization as
    the identity for the inputs and accumulates the output gradient on the
    selected codes for the codebook (van den Oord et al., 2017,
    https://arxiv.org/abs/1711.00937).
    """

    @staticmethod
    def forward(
        ctx,
        inputs,
        codebook,
        labels=None,
        num_classes=10,
        activate_class_partitioning=True,
        shared_keys=10,
        training=True,
    ):
        """Quantizes ``inputs`` with ``codebook``.

        Arguments
        ---------
        ctx : torch.autograd.function.FunctionCtx
            Autograd context.
        inputs : torch.Tensor
            Representations to quantize, shape ``(B, W, H, C)``.
        codebook : torch.Tensor
            VQ dictionary, shape ``(K, C)``.
        labels : torch.Tensor
            Predicted class per example, shape ``(B,)``, integer or integral float
            values in ``[0, num_classes)``. May be None without partitioning.
        num_classes : int
            Number of classes the dictionary is partitioned among.
        activate_class_partitioning : bool
            If True, each example may only select the codes of its class.
        shared_keys : int
            Number of codes (the last ones) shared by all classes.
        training : bool
            True in the training stage (shared codes are then not selectable).

        Returns
        -------
        codes : torch.Tensor
            Quantized representation, same shape as ``inputs``.
        indices : torch.Tensor
            Flattened code indices, LongTensor of shape ``(B * W * H,)``.

        Example
        -------
        >>> inputs = torch.ones(3, 14, 25, 256)
        >>> codebook = torch.randn(1024, 256)
        >>> labels = torch.Tensor([1, 0, 2])
        >>> quant, quant_ind = VectorQuantizationStraightThrough.apply(inputs, codebook, labels)
        >>> print(quant.shape, quant_ind.shape)
        torch.Size([3, 14, 25, 256]) torch.Size([1050])
        """
        indices = _nearest_code_indices(
            inputs,
            codebook,
            labels,
            num_classes,
            activate_class_partitioning,
            shared_keys,
            training,
        ).reshape(-1)  # (B*W*H,)
        ctx.save_for_backward(indices, codebook)
        ctx.mark_non_differentiable(indices)
        codes = codebook.index_select(0, indices).view_as(inputs)  # (B, W, H, C)
        return codes, indices

    @staticmethod
    def backward(ctx, grad_output, grad_indices):
        """Straight-through gradients for the inputs and the codebook.

        Arguments
        ---------
        ctx : torch.autograd.function.FunctionCtx
            Autograd context holding the selected indices and the codebook.
        grad_output : torch.Tensor
            Gradient with respect to the quantized representation ``(B, W, H, C)``.
        grad_indices : torch.Tensor or None
            Gradient with respect to the indices (always ignored).

        Returns
        -------
        grads : tuple
            Gradients for ``inputs`` (``grad_output`` itself) and ``codebook``
            (``grad_output`` summed over the vectors that selected each code),
            then None for the non-tensor arguments.
        """
        grad_inputs = grad_codebook = None
        if ctx.needs_input_grad[0]:
            grad_inputs = grad_output.clone()
        if ctx.needs_input_grad[1]:
            indices, codebook = ctx.saved_tensors
            grad_flat = grad_output.reshape(-1, codebook.shape[1])  # (B*W*H, C)
            grad_codebook = torch.zeros_like(codebook).index_add_(0, indices, grad_flat)
        return grad_inputs, grad_codebook, None, None, None, None, None


class ResBlockAudio(nn.Module):
    """Residual block: ``x + BN(Conv1x1(ReLU(BN(Conv3x3(x)))))``.

    Arguments
    ---------
    dim : int
        Number of input channels, equal to the number of output channels.

    Example
    -------
    >>> res = ResBlockAudio(128)
    >>> x = torch.randn(2, 128, 16, 16)
    >>> print(x.shape)
    torch.Size([2, 128, 16, 16])
    >>> print(res(x).shape)
    torch.Size([2, 128, 16, 16])
    """

    def __init__(self, dim):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1),
            nn.BatchNorm2d(dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 1),
            nn.BatchNorm2d(dim),
        )

    def forward(self, x):
        """Applies the residual block.

        Arguments
        ---------
        x : torch.Tensor
            Input of shape ``(B, dim, H, W)``.

        Returns
        -------
        y : torch.Tensor
            Output of shape ``(B, dim, H, W)``.
        """
        return x + self.block(x)


class Conv2dEncoder_v2(nn.Module):
    """Convolutional encoder of log-power spectrograms for classification.

    Four stride-2 ``Conv2d(4x4) -> BatchNorm -> ReLU`` stages (each roughly
    halving time and frequency) followed by a :class:`ResBlockAudio`.

    With ``subtract_floor=True`` the encoder reads what rises above each
    frequency's median level in the clip, ``relu(x - median_t(x))``
    (:func:`models.layers.above_background_floor`), instead of x: a stationary
    background band (rain, hum, the low harmonics of music along the whole
    clip) then carries no evidence, and a classifier trained so decides from
    the events. The median is taken on whatever the encoder is given, so on a
    masked input ``M x`` too (a bin kept on fewer than half of the frames has a
    floor of 0 there). The setting travels with the trained weights: a
    ``subtract_floor`` entry in the state dict when it is on, none when it is
    off (the reference's layout, so that SpeechBrain's own encoder loads such a
    checkpoint strictly, and refuses one that reads another input). Loading a
    state dict sets it from that entry, whatever the encoder was built with: the
    interpreters' yamls build a default encoder and get the classifier's
    setting from its checkpoint.

    Arguments
    ---------
    dim : int
        Number of channels of every stage and of the output embeddings.
    subtract_floor : bool
        Read ``relu(x - median over frames of x)`` instead of x.

    Example
    -------
    >>> inputs = torch.ones(3, 431, 513)
    >>> model = Conv2dEncoder_v2()
    >>> print(model(inputs).shape)
    torch.Size([3, 256, 26, 32])
    >>> "subtract_floor" in Conv2dEncoder_v2(dim=4, subtract_floor=True).state_dict()
    True
    >>> encoder = Conv2dEncoder_v2(dim=4)
    >>> _ = encoder.load_state_dict(Conv2dEncoder_v2(dim=4, subtract_floor=True).state_dict())
    >>> encoder.subtract_floor
    True
    """

    def __init__(self, dim=256, subtract_floor=False):
        super().__init__()
        self.conv1 = nn.Conv2d(1, dim, 4, 2, 1)
        self.bn1 = nn.BatchNorm2d(dim)
        self.conv2 = nn.Conv2d(dim, dim, 4, 2, 1)
        self.bn2 = nn.BatchNorm2d(dim)
        self.conv3 = nn.Conv2d(dim, dim, 4, 2, 1)
        self.bn3 = nn.BatchNorm2d(dim)
        self.conv4 = nn.Conv2d(dim, dim, 4, 2, 1)
        self.bn4 = nn.BatchNorm2d(dim)
        self.resblock = ResBlockAudio(dim)
        self.nonl = nn.ReLU()
        self.subtract_floor = bool(subtract_floor)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.subtract_floor:
            destination[prefix + FLOOR_KEY] = torch.tensor(True)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + FLOOR_KEY
        subtract_floor = bool(state_dict[key]) if key in state_dict else False
        if subtract_floor != self.subtract_floor:
            logger.info("Conv2dEncoder_v2: subtract_floor=%s, from the loaded weights.", subtract_floor)
        self.subtract_floor = subtract_floor
        state_dict = {name: value for name, value in state_dict.items() if name != key}
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x):
        """Encodes log-power spectrograms.

        Arguments
        ---------
        x : torch.Tensor
            Log-power spectrograms, shape ``(B, T, F)``.

        Returns
        -------
        h : torch.Tensor
            Embeddings of shape ``(B, dim, T', F')`` with ``T' ~ T / 16``,
            ``F' ~ F / 16`` (431 x 513 gives 26 x 32).
        """
        if self.subtract_floor:
            x = above_background_floor(x)
        h = x.unsqueeze(1)  # (B, 1, T, F)
        stages = (
            (self.conv1, self.bn1),
            (self.conv2, self.bn2),
            (self.conv3, self.bn3),
            (self.conv4, self.bn4),
        )
        for conv, norm in stages:
            # in place on the norm's fresh output (same values as self.nonl; a quarter
            # of the encoder's time was the out-of-place ReLU's memory traffic)
            h = torch.relu_(norm(conv(h)))  # (B, dim, T / 2^i, F / 2^i)
        return self.resblock(h)


def _transposed_conv_decoder(dim, stages, out_kernel):
    """Builds ``[ConvTranspose2d -> ReLU -> BatchNorm] * len(stages) -> ConvTranspose2d``.

    The last layer is a ``SingleChannelConvTranspose2d`` (same parameters and
    result as ``nn.ConvTranspose2d``, faster on CPU).

    Arguments
    ---------
    dim : int
        Number of channels of the hidden layers.
    stages : sequence of (kernel_size, stride)
        One entry per upsampling stage (padding 1, ``dim -> dim`` channels).
    out_kernel : int or tuple
        Kernel size of the last layer (``dim -> 1`` channel, stride 1, padding 1).

    Returns
    -------
    decoder : torch.nn.Sequential
        The decoder; its layer indices match the published checkpoints.
    """
    layers = []
    for kernel_size, stride in stages:
        layers += [
            nn.ConvTranspose2d(dim, dim, kernel_size, stride, 1),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(dim),
        ]
    # one output channel: the layer that is fast on CPU (same parameters and result)
    layers.append(SingleChannelConvTranspose2d(dim, 1, out_kernel, 1, 1))
    return nn.Sequential(*layers)


class VQEmbedding(nn.Module):
    """Learnable, optionally class-partitioned, VQ dictionary.

    Wraps :class:`VectorQuantization` (indices, :meth:`forward`) and
    :class:`VectorQuantizationStraightThrough` (quantized vectors with
    gradients, :meth:`straight_through`). With class partitioning the first
    ``K - shared_keys`` codes are split among the classes and an example may
    only be quantized with the codes of its predicted class (plus the shared
    codes outside training); :meth:`partition_of_codes` tells which class owns
    which code.

    Arguments
    ---------
    K : int
        Number of codes in the dictionary.
    D : int
        Dimension of each code.
    numclasses : int
        Number of classes the dictionary is partitioned among.
    activate_class_partitioning : bool
        If True, quantize each example with the codes of its class only.
    shared_keys : int
        Number of codes (the last ones) shared by all classes.

    Example
    -------
    >>> vq = VQEmbedding(32, 8, numclasses=4, shared_keys=4).eval()
    >>> labels = torch.tensor([3, 1])
    >>> indices = vq(torch.randn(2, 8, 5, 6), labels)  # (B, H, W)
    >>> owners = vq.partition_of_codes()[indices]  # class owning each selected code
    >>> bool(torch.all((owners == labels.view(-1, 1, 1)) | (owners == -1)))
    True
    """

    def __init__(self, K, D, numclasses=50, activate_class_partitioning=True, shared_keys=0):
        super().__init__()
        if activate_class_partitioning:
            _check_partition_layout(K, numclasses, shared_keys)
        self.embedding = nn.Embedding(K, D)
        self.embedding.weight.data.uniform_(-1.0 / K, 1.0 / K)
        self.numclasses = numclasses
        self.activate_class_partitioning = activate_class_partitioning
        self.shared_keys = shared_keys

    def partition_of_codes(self):
        """Class owning each code of this dictionary (-1 for shared codes).

        See the module function :func:`partition_of_codes`; it only constrains
        the quantization when ``activate_class_partitioning`` is True.

        Returns
        -------
        owners : torch.Tensor
            LongTensor of shape ``(K,)``, on the dictionary's device.
        """
        owners = partition_of_codes(
            self.embedding.num_embeddings, self.numclasses, self.shared_keys
        )
        return owners.to(self.embedding.weight.device)

    def _quantization_settings(self):
        """Arguments shared by both quantization functions, after the labels."""
        return (
            self.numclasses,
            self.activate_class_partitioning,
            self.shared_keys,
            self.training,
        )

    def forward(self, z_e_x, labels=None):
        """Returns the index of the code quantizing each vector (no gradient).

        Unlike ``speechbrain.lobes.models.PIQ.VQEmbedding.forward``, which always
        quantized with 10 classes, 10 shared keys and training-stage rules, this
        uses the dictionary's own settings and mode, so its indices are exactly
        the codes that :meth:`straight_through` selects.

        Arguments
        ---------
        z_e_x : torch.Tensor
            Representations to quantize, shape ``(B, D, H, W)``.
        labels : torch.Tensor
            Predicted class per example, shape ``(B,)`` (None without partitioning).

        Returns
        -------
        indices : torch.Tensor
            LongTensor of shape ``(B, H, W)``.

        Example
        -------
        >>> inputs = torch.ones(3, 256, 14, 25)
        >>> codebook = VQEmbedding(1024, 256)
        >>> labels = torch.Tensor([1, 0, 2])
        >>> print(codebook(inputs, labels).shape)
        torch.Size([3, 14, 25])
        """
        z_e_x_ = z_e_x.permute(0, 2, 3, 1).contiguous()  # (B, H, W, D)
        return VectorQuantization.apply(
            z_e_x_, self.embedding.weight, labels, *self._quantization_settings()
        )

    def straight_through(self, z_e_x, labels=None, return_indices=False):
        """Quantizes ``z_e_x`` with straight-through gradients.

        Arguments
        ---------
        z_e_x : torch.Tensor
            Representations to quantize, shape ``(B, D, H, W)``.
        labels : torch.Tensor
            Predicted class per example, shape ``(B,)`` (None without partitioning).
        return_indices : bool
            Also return the selected code of every position, ``(B, H, W)``
            (for usage statistics without a second nearest-code search).

        Returns
        -------
        z_q_x : torch.Tensor
            Quantized representation ``(B, D, H, W)`` whose gradient flows back to
            ``z_e_x`` (straight-through), not to the dictionary.
        z_q_x_bar : torch.Tensor
            The same codes ``(B, D, H, W)`` with the gradient flowing to the
            dictionary (for the codebook loss).
        indices : torch.Tensor
            Only with ``return_indices=True``: the code indices ``(B, H, W)``.

        Example
        -------
        >>> inputs = torch.ones(3, 256, 14, 25)
        >>> codebook = VQEmbedding(1024, 256)
        >>> labels = torch.Tensor([1, 0, 2])
        >>> z_q_x_st, z_q_x_bar = codebook.straight_through(inputs, labels)  # both quantized vectors
        >>> print(z_q_x_st.shape, z_q_x_bar.shape)
        torch.Size([3, 256, 14, 25]) torch.Size([3, 256, 14, 25])
        """
        z_e_x_ = z_e_x.permute(0, 2, 3, 1).contiguous()  # (B, H, W, D)
        codes_st, indices = VectorQuantizationStraightThrough.apply(
            z_e_x_, self.embedding.weight.detach(), labels, *self._quantization_settings()
        )  # (B, H, W, D), (B*H*W,)
        z_q_x = codes_st.permute(0, 3, 1, 2).contiguous()  # (B, D, H, W)
        codes_bar = self.embedding.weight.index_select(0, indices).view_as(z_e_x_)
        z_q_x_bar = codes_bar.permute(0, 3, 1, 2).contiguous()  # (B, D, H, W)
        if return_indices:
            return z_q_x, z_q_x_bar, indices.view(z_e_x_.shape[:3])
        return z_q_x, z_q_x_bar


class VectorQuantizedPSI_Audio(nn.Module):
    """PIQ interpreter: reconstructs a log-power spectrogram from classifier representations.

    The representation goes through an optional residual adapter and an
    optional stride-2 down-sampling, is quantized with a class-partitioned
    :class:`VQEmbedding` (straight-through), up-sampled back and decoded by
    transposed convolutions to a one-channel time-frequency map.

    Arguments
    ---------
    dim : int
        Number of channels of the representations and dimension of the codes.
    K : int
        Number of codes in the VQ dictionary.
    numclasses : int
        Number of classes of the classifier being interpreted.
    activate_class_partitioning : bool
        If True, each example is quantized with the codes of its predicted class.
    shared_keys : int
        Number of codes shared by all classes.
    use_adapter : bool
        If True, pass the representations through a learned :class:`ResBlockAudio`.
    adapter_reduce_dim : bool
        If True, halve the spatial size before quantization (and restore it
        after), with learned ``down`` / ``up`` layers (also without adapter).

    Example
    -------
    >>> psi = VectorQuantizedPSI_Audio(dim=32, K=1024)  # dim: the classifier's channels (256 in the reference)
    >>> x = torch.randn(2, 32, 16, 16)
    >>> labels = torch.Tensor([0, 2])
    >>> logspectra, hcat, z_q_x = psi(x, labels)
    >>> print(logspectra.shape, hcat.shape, z_q_x.shape)
    torch.Size([2, 1, 257, 257]) torch.Size([2, 32, 8, 8]) torch.Size([2, 32, 8, 8])
    """

    # (kernel_size, stride) of each up-sampling stage, then the last kernel size.
    decoder_stages = ((3, 2), (4, 2), (4, 2), (4, 2))
    decoder_out_kernel = 12

    def __init__(
        self,
        dim=128,
        K=512,
        numclasses=50,
        activate_class_partitioning=True,
        shared_keys=0,
        use_adapter=True,
        adapter_reduce_dim=True,
    ):
        super().__init__()
        self.dim = dim
        self.codebook = VQEmbedding(
            K,
            dim,
            numclasses=numclasses,
            activate_class_partitioning=activate_class_partitioning,
            shared_keys=shared_keys,
        )
        self.use_adapter = use_adapter
        self.adapter_reduce_dim = adapter_reduce_dim
        if use_adapter:
            self.adapter = ResBlockAudio(dim)
        if adapter_reduce_dim:
            self.down = nn.Conv2d(dim, dim, 4, 2, 1)
            self.up = nn.ConvTranspose2d(dim, dim, 4, 2, 1)
        self.decoder = _transposed_conv_decoder(dim, self.decoder_stages, self.decoder_out_kernel)
        self.apply(weights_init)

    def forward(self, hs, labels, return_indices=False):
        """Reconstructs a log-power spectrogram from the codes of the predicted class.

        Arguments
        ---------
        hs : torch.Tensor
            Classifier representations, shape ``(B, dim, H, W)``.
        labels : torch.Tensor
            Predicted class per example, shape ``(B,)``.
        return_indices : bool
            Also return the code chosen at every position, ``(B, H', W')``.

        Returns
        -------
        x_tilde : torch.Tensor
            Decoded time-frequency map ``(B, 1, T, F)``.
        hcat : torch.Tensor
            Adapted (and reduced) representation that was quantized, ``(B, dim, H', W')``.
        z_q_x : torch.Tensor
            Its quantized version ``(B, dim, H', W')``, with gradient to the dictionary.
        indices : torch.Tensor
            Only with ``return_indices=True``: the codes, ``(B, H', W')``.
        """
        if hs.ndim != 4 or hs.shape[1] != self.dim:
            raise ValueError(
                f"Expected representations of shape (B, {self.dim}, H, W); got "
                f"{tuple(hs.shape)}. Build the interpreter with dim equal to the "
                "classifier's number of channels."
            )
        hcat = self.adapter(hs) if self.use_adapter else hs  # (B, dim, H, W)
        if self.adapter_reduce_dim:
            hcat = self.down(hcat)  # (B, dim, H/2, W/2)
        z_q_x_st, z_q_x, indices = self.codebook.straight_through(hcat, labels, return_indices=True)
        if self.adapter_reduce_dim:
            z_q_x_st = self.up(z_q_x_st)  # (B, dim, H, W)
        x_tilde = self.decoder(z_q_x_st)  # (B, 1, T, F)
        if return_indices:
            return x_tilde, hcat, z_q_x, indices
        return x_tilde, hcat, z_q_x

    def forward_without_vq(self, hs):
        """The decoder path of `forward` with the codebook left out (the no-VQ ablation).

        Arguments
        ---------
        hs : torch.Tensor
            Classifier representations, ``(B, dim, H, W)``.

        Returns
        -------
        torch.Tensor
            The decoded output ``(B, 1, T, F)``, as `forward`'s first output.
        """
        h = self.adapter(hs) if self.use_adapter else hs
        if self.adapter_reduce_dim:
            h = self.up(self.down(h))
        return self.decoder(h)


#: The transformer grids' small decoder: three stride-2 stages, 8x on both axes of the
#: token grid, a map the recipe puts onto the clip (``recipes.core.pipeline.fit_to_input``);
#: AST's decoder, and the ViT / FocalNet one with ``decoder="grid"``.
GRID_DECODER = {"stages": ((4, 2), (4, 2), (4, 2)), "out_kernel": 3}
#: The decoders the ViT and FocalNet PIQ classes take (``decoder``).
TRANSFORMER_DECODERS = ("seed", "grid")


def _choose_decoder(psi, decoder):
    """Sets `psi`'s up-sampling stages for `decoder` before its base class builds them."""
    if decoder == "grid":
        psi.decoder_stages, psi.decoder_out_kernel = GRID_DECODER["stages"], GRID_DECODER["out_kernel"]
    elif decoder != "seed":
        raise ValueError(
            f"decoder {decoder!r}: choose one of {TRANSFORMER_DECODERS} (seed: the seed's "
            "decoder; grid: 8x the token grid, resized onto the clip)."
        )


class VectorQuantizedPSIFocalNet_Audio(VectorQuantizedPSI_Audio):
    """PIQ interpreter for FocalNet classifier representations.

    Same as :class:`VectorQuantizedPSI_Audio` with a decoder that up-samples
    a 16 x 16 map to 495 x 593.

    Arguments
    ---------
    dim : int
        Number of channels of the representations and dimension of the codes.
    decoder : str
        "seed" (the seed's decoder above) or "grid" (:data:`GRID_DECODER`: 8x the
        grid on both axes, a small map the recipe resizes onto the clip; not the
        seed's).
    **kwargs : dict
        Other arguments of :class:`VectorQuantizedPSI_Audio`.

    Example
    -------
    >>> psi = VectorQuantizedPSIFocalNet_Audio(dim=32, K=1024)  # dim: the classifier's channels (256 in the reference)
    >>> x = torch.randn(2, 32, 16, 16)
    >>> labels = torch.Tensor([0, 2])
    >>> logspectra, hcat, z_q_x = psi(x, labels)
    >>> print(logspectra.shape, hcat.shape, z_q_x.shape)
    torch.Size([2, 1, 495, 593]) torch.Size([2, 32, 8, 8]) torch.Size([2, 32, 8, 8])
    >>> VectorQuantizedPSIFocalNet_Audio(dim=32, K=1024, decoder="grid")(x, labels)[0].shape
    torch.Size([2, 1, 128, 128])
    """

    decoder_stages = ((3, (4, 5)), ((4, 1), 2), ((4, 1), 2), ((4, 2), 2))
    decoder_out_kernel = (10, 8)

    def __init__(self, dim=1024, decoder="seed", **kwargs):
        _choose_decoder(self, decoder)
        super().__init__(dim=dim, **kwargs)


class VectorQuantizedPSIViT_Audio(VectorQuantizedPSI_Audio):
    """PIQ interpreter for ViT classifier representations.

    Same as :class:`VectorQuantizedPSI_Audio` with a decoder that up-samples
    a 16 x 16 map to 495 x 593.

    With ``decoder="grid"`` (not the seed's), the decoder of :data:`GRID_DECODER`
    instead: 8x the token grid on both axes (112 x 112 from 14 x 14 without the
    adapter's halving), which the recipe resizes onto the clip's frames and bins.
    The seed's decoder writes 495 x 593 from the grid and is then resized; on the
    transformer demo the small map gave PIQ +7.4 dB SI-SDRi where the seed's gave
    less (``hparams/demo_transformers.yaml``).

    Arguments
    ---------
    dim : int
        Number of channels of the representations and dimension of the codes.
    decoder : str
        "seed" (the seed's decoder) or "grid".
    **kwargs : dict
        Other arguments of :class:`VectorQuantizedPSI_Audio`.

    Example
    -------
    >>> psi = VectorQuantizedPSIViT_Audio(dim=32, K=1024)  # dim: the classifier's channels (256 in the reference)
    >>> x = torch.randn(2, 32, 16, 16)
    >>> labels = torch.Tensor([0, 2])
    >>> logspectra, hcat, z_q_x = psi(x, labels)
    >>> print(logspectra.shape, hcat.shape, z_q_x.shape)
    torch.Size([2, 1, 495, 593]) torch.Size([2, 32, 8, 8]) torch.Size([2, 32, 8, 8])
    >>> psi = VectorQuantizedPSIViT_Audio(dim=32, K=1024, decoder="grid", adapter_reduce_dim=False)
    >>> psi(torch.randn(2, 32, 14, 14), labels)[0].shape
    torch.Size([2, 1, 112, 112])
    """

    decoder_stages = VectorQuantizedPSIFocalNet_Audio.decoder_stages
    decoder_out_kernel = VectorQuantizedPSIFocalNet_Audio.decoder_out_kernel

    def __init__(self, dim=768, decoder="seed", **kwargs):
        _choose_decoder(self, decoder)
        super().__init__(dim=dim, **kwargs)


class VectorQuantizedPSIAST_Audio(VectorQuantizedPSI_Audio):
    """PIQ interpreter for Audio Spectrogram Transformer representations.

    Same as :class:`VectorQuantizedPSI_Audio` with a decoder for AST's token
    grid ``(B, dim, T', F')`` (time columns x mel rows: 101 x 12 for 1024 frames
    of 128 mel bins with strides 10): three stride-2 stages, 8x on both axes,
    to a map over the grid's time span and the mel bands (808 x 96 at the
    reference sizes). The recipe puts it onto the STFT's frames and linear
    bins (``models.transformer_backbones.AudioAST.grid_to_input``), so the
    decoder need not know the clip's length or the mel scale.

    Arguments
    ---------
    dim : int
        Number of channels of the representations and dimension of the codes.
    **kwargs : dict
        Other arguments of :class:`VectorQuantizedPSI_Audio`.

    Example
    -------
    >>> psi = VectorQuantizedPSIAST_Audio(dim=32, K=20, numclasses=2)
    >>> x = torch.randn(2, 32, 26, 12)
    >>> logspectra, hcat, z_q_x = psi(x, torch.Tensor([0, 1]))
    >>> print(logspectra.shape, hcat.shape, z_q_x.shape)
    torch.Size([2, 1, 208, 96]) torch.Size([2, 32, 13, 6]) torch.Size([2, 32, 13, 6])
    """

    decoder_stages = GRID_DECODER["stages"]
    decoder_out_kernel = GRID_DECODER["out_kernel"]

    def __init__(self, dim=768, **kwargs):
        super().__init__(dim=dim, **kwargs)
