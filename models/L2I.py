"""Listen-to-Interpret (L2I) building blocks.

L2I (Parekh et al., "Listen to Interpret: Post-hoc Interpretability for Audio
Networks with NMF", https://arxiv.org/abs/2202.11479v2) explains an audio
classifier with a small interpreter: ``Psi`` maps the classifier's hidden
representations to non-negative time activations ``H`` (B, K, T) of a fixed NMF
dictionary ``W`` (``NMFDecoderAudio``), and ``Theta`` maps ``H`` back to the
classifier's decision. The relevance of component ``k`` for class ``c`` is
``z_k * theta_{c,k}``, with ``z`` the time-pooled activations (``Theta.pool``)
and ``theta`` the weight of Theta's last linear layer (``Theta.classifier_weight``).

Parameter names and shapes follow ``speechbrain.lobes.models.L2I``, so
checkpoints saved from those modules load here with ``strict=True`` and give
the same outputs.

Authors
* Cem Subakan 2022 (original SpeechBrain modules)
* Francesco Paissan 2022 (original SpeechBrain modules)
"""

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from speechbrain.utils.logger import get_logger

from models.layers import SingleChannelConvTranspose2d

logger = get_logger(__name__)

# Frequency bins of the 1024-point STFT that PsiOptimized's decoder produces.
N_FREQ_STFT = 513

POOLINGS = ("linear", "attention", "max")


def _check_same_shape(a, b, where):
    """Raises a ValueError when two branches that get summed disagree in shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{where}: branch shapes {tuple(a.shape)} and {tuple(b.shape)} differ. "
            "The classifier representations do not have the relative sizes this "
            "interpreter expects (those of speechbrain's Cnn14 with mel_bins=80 and "
            "return_reps=True); pass Cnn14 representations, or an input whose "
            "number of frames gives compatible sizes (e.g. 201 or 431 frames: --signal_length_s "
            "2.325 or 5 at 16 kHz)."
        )


def check_cnn14_reps(hs, dim, name):
    """Validates the four Cnn14 representations a CNN14PSI module consumes."""
    if len(hs) < 4:
        raise ValueError(
            f"{name} needs the 4 representations of Cnn14(return_reps=True, l2i=False), "
            f"got {len(hs)}; build the classifier with l2i=False."
        )
    expected = (dim, dim // 2, dim // 4, dim // 8)
    got = tuple(h.shape[1] for h in hs[:4])
    if got != expected:
        raise ValueError(
            f"{name}(dim={dim}) expects representations with {expected} channels, got {got}: "
            "the CNN14 interpreters need speechbrain's Cnn14 at emb_dim 2048 (its blocks give "
            "(emb_dim, 1024, 512, 256) channels whatever emb_dim is). Train the classifier with "
            "--emb_dim 2048 and give the interpreter --emb_dim 2048."
        )


class Psi(nn.Module):
    """Convolutional layers that estimate NMF activations from classifier representations.

    Three hidden representations are brought to a common resolution and number
    of channels, concatenated, resampled to ``T`` frames (collapsing frequency)
    and mixed into ``n_comp`` non-negative activations per frame.

    Arguments
    ---------
    n_comp : int
        Number of NMF components (output channels per time step).
    T : int
        Number of frames of the output activations.
    in_emb_dims : sequence of int
        Channels of the three input representations. The first two have the
        same (time, frequency) size; the third has twice their time size and
        twice their frequency size plus one. The last entry should be the
        smallest.

    Example
    -------
    >>> inp = [torch.ones(2, 150, 6, 2), torch.ones(2, 100, 6, 2), torch.ones(2, 50, 12, 5)]
    >>> psi = Psi(n_comp=100, T=120, in_emb_dims=[150, 100, 50])
    >>> h = psi(inp)
    >>> print(h.shape)
    torch.Size([2, 100, 120])
    """

    def __init__(self, n_comp=100, T=431, in_emb_dims=(2048, 1024, 512)):
        super().__init__()
        if len(in_emb_dims) != 3:
            raise ValueError(
                f"Psi needs exactly 3 entries in in_emb_dims (one per representation), "
                f"got {list(in_emb_dims)}."
            )
        self.in_emb_dims = list(in_emb_dims)
        self.T = T
        width = min(in_emb_dims)

        # channel compression of the two coarse representations
        self.c1 = nn.Conv2d(in_emb_dims[0], width, kernel_size=3, padding="same")
        self.c2 = nn.Conv2d(in_emb_dims[1], width, kernel_size=3, padding="same")
        # projection to components (registered before `conv`, as in the SpeechBrain state_dict)
        self.out_conv = nn.Conv2d(width, n_comp, kernel_size=3, padding="same")
        # mixing of the three concatenated representations
        self.conv = nn.Sequential(
            nn.Conv2d(3 * width, width, kernel_size=3, padding="same"),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )

    def _check_inputs(self, inp):
        """Raises a ValueError naming the mismatch when ``inp`` does not fit."""
        if len(inp) != 3:
            raise ValueError(f"Psi takes a list of 3 representations, got {len(inp)}.")
        channels = [x.shape[1] for x in inp]
        if channels != self.in_emb_dims:
            raise ValueError(
                f"Psi was built for representations with {self.in_emb_dims} channels but "
                f"got {channels}; set in_emb_dims to the classifier's channel counts."
            )
        t0, f0 = inp[0].shape[2:]
        if tuple(inp[1].shape[2:]) != (t0, f0) or tuple(inp[2].shape[2:]) != (2 * t0, 2 * f0 + 1):
            raise ValueError(
                "Psi expects (time, freq) sizes (t, f), (t, f), (2t, 2f + 1) for its three "
                f"inputs (as Cnn14 produces), got {[tuple(x.shape[2:]) for x in inp]}."
            )

    def forward(self, inp):
        """Returns the NMF time activations for the given classifier representations.

        Arguments
        ---------
        inp : list of torch.Tensor
            Three representations of shapes (B, C1, t, f), (B, C2, t, f) and
            (B, C3, 2t, 2f + 1), with ``[C1, C2, C3] == in_emb_dims``.

        Returns
        -------
        torch.Tensor
            Non-negative NMF time activations of shape (B, n_comp, T).
        """
        self._check_inputs(inp)
        coarse = []
        for x, compress in ((inp[0], self.c1), (inp[1], self.c2)):
            x = F.interpolate(x, scale_factor=(2, 2), mode="bilinear", align_corners=True)
            x = F.relu(compress(x))  # (B, C3, 2t, 2f)
            coarse.append(F.pad(x, (0, 1)))  # (B, C3, 2t, 2f + 1), matches Cnn14's odd freq size
        x = torch.cat([*coarse, inp[2]], dim=1)  # (B, 3 C3, 2t, 2f + 1)
        x = F.interpolate(
            x, size=(self.T, 1), mode="bilinear", align_corners=True
        )  # (B, 3 C3, T, 1)
        x = self.conv(x)
        return F.relu(self.out_conv(x)).squeeze(3)  # (B, n_comp, T)


class NMFDecoderAudio(nn.Module):
    """NMF decoder: reconstructs a spectrogram as ``relu(W) @ relu(H)``.

    The dictionary ``W`` is a registered parameter, so the module follows
    ``.to(...)`` like any other module.

    Arguments
    ---------
    n_comp : int
        Number of NMF components.
    n_freq : int
        Number of frequency bins of the dictionary.
    device : str, optional
        Accepted for compatibility with the SpeechBrain signature and ignored:
        move the module with ``.to(device)`` instead.

    Example
    -------
    >>> NMF_dec = NMFDecoderAudio(20, 210, device='cpu')
    >>> H = torch.rand(1, 20, 150)
    >>> Xhat = NMF_dec.forward(H)
    >>> print(Xhat.shape)
    torch.Size([1, 210, 150])
    """

    def __init__(self, n_comp=100, n_freq=513, device=None):
        super().__init__()
        if device is not None:
            warnings.warn(
                "NMFDecoderAudio ignores its `device` argument; use `.to(device)` instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        self.W = nn.Parameter(0.1 * torch.rand(n_freq, n_comp))  # (F, K)

    def forward(self, H):
        """Decodes activations into a (non-negative) spectrogram.

        Arguments
        ---------
        H : torch.Tensor
            Activations of shape (B, n_comp, T); negative entries are clipped to 0.

        Returns
        -------
        torch.Tensor
            Reconstruction of shape (B, n_freq, T).
        """
        return torch.matmul(self.return_W(), F.relu(H))  # (F, K) @ (B, K, T) -> (B, F, T)

    def return_W(self):
        """Returns the non-negative NMF dictionary ``relu(W)`` of shape (n_freq, n_comp)."""
        return F.relu(self.W)


def weights_init(m):
    """Applies Xavier-uniform initialisation to convolution weights and zeroes their bias.

    Meant for ``module.apply(weights_init)``: modules whose class name contains
    ``"Conv"`` and that own a ``weight`` tensor are initialised, all others are
    left unchanged.

    Arguments
    ---------
    m : nn.Module
        Module to initialise.

    Example
    -------
    >>> conv = torch.nn.Conv1d(2, 3, 1)
    >>> weights_init(conv)
    >>> float(conv.bias.abs().sum())
    0.0
    """
    classname = type(m).__name__
    if "Conv" not in classname:
        return
    weight = getattr(m, "weight", None)
    if not isinstance(weight, torch.Tensor):
        logger.debug("weights_init: skipping %s (no weight tensor)", classname)
        return
    nn.init.xavier_uniform_(weight.data)
    bias = getattr(m, "bias", None)
    if isinstance(bias, torch.Tensor):
        bias.data.fill_(0)


class _ResidualAdapter(nn.Module):
    """Residual block ``x + block(x)`` keeping channels and size (PsiOptimized's adapter).

    Arguments
    ---------
    dim : int
        Number of channels.
    """

    def __init__(self, dim):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1),
            nn.BatchNorm2d(dim),
            nn.ReLU(),
            nn.Conv2d(dim, dim, 1),
            nn.BatchNorm2d(dim),
        )

    def forward(self, x):
        """Returns ``x + block(x)`` for ``x`` of shape (B, dim, H, W)."""
        return x + self.block(x)


class PsiOptimized(nn.Module):
    """Convolutional layers that estimate NMF activations from classifier
    representations, optimized for log-spectra.

    A stack of transposed convolutions upsamples a (B, dim, H, 32) representation
    to a (B, 1, 16 H + 1, 513) spectrogram-sized map, whose 513 frequency bins are
    projected linearly onto ``K`` non-negative components.

    Arguments
    ---------
    dim : int
        Channels of the hidden representations (input to the classifier).
    K : int
        Number of NMF components (output neurons per time step).
    numclasses : int
        Number of classes (kept for compatibility; not used by the layers).
    use_adapter : bool
        If True, a residual adapter is learnt on the representations first.
    adapter_reduce_dim : bool
        If True (and ``use_adapter`` is True), the adapted representations are
        compressed by a strided convolution and expanded back before decoding.
        Without an adapter this flag has no effect (the SpeechBrain module
        failed in that case, the default one).

    Example
    -------
    >>> inp = torch.randn(1, 32, 26, 32)  # the classifier's channels: 256 in the reference
    >>> psi = PsiOptimized(dim=32, K=100, use_adapter=False, adapter_reduce_dim=False)
    >>> h, inp_ad= psi(inp)
    >>> print(h.shape, inp_ad.shape)
    torch.Size([1, 1, 417, 100]) torch.Size([1, 32, 26, 32])
    """

    def __init__(self, dim=128, K=100, numclasses=50, use_adapter=False, adapter_reduce_dim=True):
        super().__init__()
        self.dim = dim
        self.numclasses = numclasses
        self.use_adapter = use_adapter
        self.adapter_reduce_dim = adapter_reduce_dim
        # compression only exists on top of an adapter
        self.reduces_dim = use_adapter and adapter_reduce_dim
        if use_adapter:
            self.adapter = _ResidualAdapter(dim)
            if adapter_reduce_dim:
                self.down = nn.Conv2d(dim, dim, 4, (2, 2), 1)
                self.up = nn.ConvTranspose2d(dim, dim, 4, (2, 2), 1)

        # four x2 upsampling stages, then a 1-channel map of 513 bins -> K components;
        # layer order (and so the state_dict indices) as in SpeechBrain's decoder
        layers = []
        for kernel in (3, 4, 4, 4):
            layers += [
                nn.ConvTranspose2d(dim, dim, kernel, (2, 2), 1),
                nn.ReLU(),
                nn.BatchNorm2d(dim),
            ]
        layers += [
            SingleChannelConvTranspose2d(dim, 1, 12, 1, 1),
            nn.ReLU(),
            nn.Linear(N_FREQ_STFT, K),
            nn.ReLU(),
        ]
        self.decoder = nn.Sequential(*layers)
        self.apply(weights_init)

    def forward(self, hs):
        """Computes NMF activations from latent representations.

        Arguments
        ---------
        hs : torch.Tensor
            Latent representations of shape (B, dim, H, 32).

        Returns
        -------
        activations : torch.Tensor
            NMF activations of shape (B, 1, 16 H + 1, K).
        adapted : torch.Tensor
            The representations after the adapter (compressed to (B, dim, H/2, 16)
            when the adapter reduces them); ``hs`` itself without adapter.
        """
        if hs.dim() != 4 or hs.shape[1] != self.dim or hs.shape[-1] != 32:
            raise ValueError(
                f"PsiOptimized(dim={self.dim}) expects representations of shape "
                f"(B, {self.dim}, H, 32) so that its decoder yields {N_FREQ_STFT} bins; "
                f"got {tuple(hs.shape)}."
            )
        adapted = self.adapter(hs) if self.use_adapter else hs
        if self.reduces_dim:
            adapted = self.down(adapted)  # (B, dim, H/2, 16)
            decoded = self.decoder(self.up(adapted))
        else:
            decoded = self.decoder(adapted)
        return decoded, adapted  # (B, 1, 16 H + 1, K)


class Theta(nn.Module):
    """Linear classifier on time-pooled NMF activations.

    ``forward(H) = softmax(classifier_weight() @ pool(H))``: the activations
    H (B, K, T) are pooled over time into z (B, K) by :meth:`pool`, then a linear
    layer without bias gives class logits (:meth:`logits`) and a softmax gives
    class probabilities. The relevance of component k for class c is
    ``z_k * classifier_weight()[c, k]`` (see :meth:`relevance`): it is computed
    on the logits' linear layer, before the softmax.

    Arguments
    ---------
    n_comp : int
        Number of NMF components K.
    T : int
        Number of time frames of the activations (used by ``"linear"`` pooling only).
    num_classes : int
        Number of classes.
    pooling : str
        How time is collapsed:
        ``"linear"`` (default, SpeechBrain's module) a learnt linear map over the
        T frames, ``z = H w`` with w of shape (T,);
        ``"attention"`` gated attention (Ilse et al., 2018), ``z = H a`` with
        ``a = softmax_t(w^T (tanh(V h_t) * sigmoid(U h_t)))``;
        ``"max"`` the maximum of each component over time.
    attention_dim : int
        Hidden size of the gated attention (``"attention"`` pooling only).

    Example
    -------
    >>> theta = Theta(30, 120, 50)
    >>> H = torch.rand(1, 30, 120)
    >>> c_hat = theta.forward(H)
    >>> print(c_hat.shape)
    torch.Size([1, 50])
    >>> theta_att = Theta(30, 120, 50, pooling="attention")
    >>> theta_att.pool(H).shape, theta_att.classifier_weight().shape
    (torch.Size([1, 30]), torch.Size([50, 30]))
    """

    def __init__(self, n_comp=100, T=431, num_classes=50, pooling="linear", attention_dim=128):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"Theta pooling must be one of {POOLINGS}, got {pooling!r}.")
        self.n_comp = n_comp
        self.T = T
        self.pooling = pooling

        if pooling == "linear":
            # one learnt weight per frame; parameter name as in SpeechBrain
            self.hard_att = nn.Linear(T, 1, bias=False)
        elif pooling == "attention":
            self.attention_V = nn.Linear(n_comp, attention_dim)
            self.attention_U = nn.Linear(n_comp, attention_dim)
            self.attention_w = nn.Linear(attention_dim, 1)

        self.classifier = nn.Sequential(
            nn.Linear(n_comp, num_classes, bias=False),
            nn.Softmax(dim=1),
        )

    def _check_activations(self, H):
        """Raises a ValueError when ``H`` is not (B, n_comp, T) as the pooling needs."""
        if H.dim() != 3 or H.shape[1] != self.n_comp:
            raise ValueError(
                f"Theta expects activations of shape (B, {self.n_comp}, T), got {tuple(H.shape)}."
            )
        if self.pooling == "linear" and H.shape[2] != self.T:
            raise ValueError(
                f"Theta(pooling='linear') was built for T={self.T} frames but got "
                f"{H.shape[2]}; build it with T={H.shape[2]} or use pooling='attention'/'max'."
            )

    def attention_weights(self, H):
        """Returns the time weights ``a`` (B, T) with ``pool(H) == H @ a``.

        Arguments
        ---------
        H : torch.Tensor
            Activations of shape (B, n_comp, T).

        Returns
        -------
        torch.Tensor
            For ``"attention"`` the softmax weights (each row sums to 1); for
            ``"linear"`` the learnt frame weights, repeated over the batch.

        Raises
        ------
        ValueError
            For ``"max"`` pooling, which picks a different frame per component.
        """
        self._check_activations(H)
        if self.pooling == "linear":
            return self.hard_att.weight.expand(H.shape[0], -1)  # (B, T)
        if self.pooling == "max":
            raise ValueError(
                "Theta(pooling='max') has no shared time weights: each component takes "
                "its own maximum frame. Use pool(H) for the pooled activations."
            )
        frames = H.transpose(1, 2)  # (B, T, K)
        gate = torch.tanh(self.attention_V(frames)) * torch.sigmoid(self.attention_U(frames))
        scores = self.attention_w(gate).squeeze(2)  # (B, T)
        return torch.softmax(scores, dim=1)

    def pool(self, H):
        """Collapses the time axis of the activations.

        Arguments
        ---------
        H : torch.Tensor
            Activations of shape (B, n_comp, T).

        Returns
        -------
        torch.Tensor
            Pooled activations z of shape (B, n_comp).
        """
        self._check_activations(H)
        if self.pooling == "linear":
            return self.hard_att(H).squeeze(2)  # (B, K)
        if self.pooling == "max":
            return H.amax(dim=2)  # (B, K)
        a = self.attention_weights(H)  # (B, T)
        return torch.bmm(H, a.unsqueeze(2)).squeeze(2)  # (B, K)

    def classifier_weight(self):
        """Returns the weight of the final linear layer, shape (num_classes, n_comp).

        This is the parameter itself (not a copy), ``theta`` in
        ``logits = z @ theta.T``.
        """
        return self.classifier[0].weight

    def logits(self, H):
        """Returns the class logits ``pool(H) @ classifier_weight().T`` of shape (B, num_classes).

        Arguments
        ---------
        H : torch.Tensor
            Activations of shape (B, n_comp, T).
        """
        return self.classifier[0](self.pool(H))

    def relevance(self, H, classes, centered=False):
        """Relevance of each component for the given classes (L2I step 1).

        ``r_k = z_k theta_{c,k} / max_l |z_l theta_{c,l}|``, in [-1, 1]; a sample
        whose contributions are all zero gets r = 0.

        With ``centered``, theta_{c,k} is replaced by theta_{c,k} - mean_c'
        theta_{c',k}. The softmax does not change when a constant is added to a
        component's weights over all classes, so that part of theta is not
        learnt: the cross-entropy's gradient, z_k (p_c - y_c), sums to zero over
        the classes, and each component's mean weight stays near its random
        initialisation. Raw, it adds a random share of z_k to every class's
        relevance; centered, r_k is the component's contribution to the log-odds
        of c against the average class.

        Arguments
        ---------
        H : torch.Tensor
            Activations of shape (B, n_comp, T).
        classes : torch.Tensor
            Class index per sample, LongTensor of shape (B,).
        centered : bool
            Relevance from the class-centred weights (see above).

        Returns
        -------
        torch.Tensor
            Relevance of shape (B, n_comp).
        """
        weight = self.classifier_weight()  # (N, K)
        if centered:
            weight = weight - weight.mean(dim=0, keepdim=True)
        contribution = self.pool(H) * weight[classes]  # (B, K)
        scale = contribution.abs().amax(dim=1, keepdim=True)  # (B, 1)
        return contribution / scale.clamp_min(torch.finfo(contribution.dtype).tiny)

    def forward(self, H):
        """Pools the activations over time and classifies them.

        Arguments
        ---------
        H : torch.Tensor
            Activations of shape (B, n_comp, T).

        Returns
        -------
        torch.Tensor
            Class probabilities (softmax of :meth:`logits`) of shape (B, num_classes).
        """
        return self.classifier(self.pool(H))


class NMFEncoder(nn.Module):
    """Convolutional encoder from a spectrogram to non-negative NMF activations.

    Arguments
    ---------
    n_freq : int
        Number of frequency bins of the input spectrogram.
    n_comp : int
        Number of NMF components.

    Example
    -------
    >>> nmfencoder = NMFEncoder(513, 100)
    >>> X = torch.rand(1, 513, 240)
    >>> Hhat = nmfencoder(X)
    >>> print(Hhat.shape)
    torch.Size([1, 100, 240])
    """

    def __init__(self, n_freq, n_comp):
        super().__init__()
        layers = []
        for c_in, c_out in ((n_freq, 256), (256, 128), (128, n_comp)):
            layers += [nn.Conv1d(c_in, c_out, kernel_size=8, padding="same"), nn.ReLU()]
        self.convenc = nn.Sequential(*layers)

    def forward(self, X):
        """Encodes a spectrogram.

        Arguments
        ---------
        X : torch.Tensor
            Spectrogram of shape (B, n_freq, T).

        Returns
        -------
        torch.Tensor
            NMF activations of shape (B, n_comp, T).
        """
        return self.convenc(X)


class CNN14PSI_stft(nn.Module):
    """Estimates NMF activations on the STFT time axis from Cnn14 representations.

    The four representations of ``Cnn14(return_reps=True)`` are averaged over
    frequency and merged from the coarsest to the finest by 1-D transposed
    convolutions that double the time resolution at each stage.

    Arguments
    ---------
    dim : int
        Channels of the coarsest representation (Cnn14's emb_dim); the others
        have dim/2, dim/4 and dim/8 channels.
    K : int
        Number of output channels (NMF components).

    Example
    -------
    >>> from speechbrain.lobes.models.Cnn14 import Cnn14
    >>> classifier_embedder = Cnn14(mel_bins=80, emb_dim=2048, return_reps=True)
    >>> x = torch.randn(2, 201, 80)
    >>> _, hs = classifier_embedder(x)
    >>> psimodel = CNN14PSI_stft(2048, 20)
    >>> xhat = psimodel.forward(hs)
    >>> print(xhat.shape)
    torch.Size([2, 20, 207])
    """

    def __init__(self, dim=128, K=100):
        super().__init__()
        self.dim = dim
        # ConvTranspose1d(in, out, kernel, stride, padding); convt2/4/6 read Cnn14 skips
        self.convt1 = nn.ConvTranspose1d(dim, dim, 3, 2, 1)
        self.convt2 = nn.ConvTranspose1d(dim // 2, dim, 3, 2, 1)
        self.convt3 = nn.ConvTranspose1d(dim, dim, 7, 2, 1)
        self.convt4 = nn.ConvTranspose1d(dim // 4, dim, 5, 2, 1)
        self.convt5 = nn.ConvTranspose1d(dim, dim // 2, 3, 2, 1)
        self.convt6 = nn.ConvTranspose1d(dim // 8, dim // 2, 3, 2, 1)
        self.convt7 = nn.ConvTranspose1d(dim // 2, dim // 4, 4, 2, 0)
        self.convt8 = nn.ConvTranspose1d(dim // 4, dim // 8, 3, 2, 0)
        self.convt9 = nn.ConvTranspose1d(dim // 8, K, 7, 1, 0)

    def forward(self, hs, labels=None):
        """Estimates the NMF activations used to build the saliency mask.

        Arguments
        ---------
        hs : sequence of torch.Tensor
            Cnn14 representations (coarsest first), shapes (B, dim, t, f),
            (B, dim/2, t, f), (B, dim/4, 2t, ~2f), (B, dim/8, 4t + 1, ~4f).
        labels : torch.Tensor, optional
            Predicted labels; unused, kept for interface compatibility.

        Returns
        -------
        xhat : torch.Tensor
            Non-negative activations of shape (B, K, frames).
        """
        check_cnn14_reps(hs, self.dim, "CNN14PSI_stft")
        h1, h2, h3, h4 = (h.mean(-1) for h in hs[:4])  # (B, C_i, t_i), frequency averaged
        stages = (
            (self.convt1, self.convt2, h2),
            (self.convt3, self.convt4, h3),
            (self.convt5, self.convt6, h4),
        )
        h = h1
        for i, (main, skip, h_skip) in enumerate(stages, start=1):
            up, side = F.relu(main(h)), F.relu(skip(h_skip))
            _check_same_shape(up, side, f"CNN14PSI_stft stage {i}")
            h = up + side
        h = F.relu(self.convt7(h))
        h = F.relu(self.convt8(h))
        return F.relu(self.convt9(h))  # (B, K, frames)


class CNN14PSI_stft_2d(nn.Module):
    """Estimates NMF activations from Cnn14 representations with 2-D transposed convolutions.

    Like :class:`CNN14PSI_stft`, but the representations are merged in the
    (time, frequency) plane and frequency is averaged only at the end.

    Arguments
    ---------
    dim : int
        Channels of the coarsest representation (Cnn14's emb_dim); the others
        have dim/2, dim/4 and dim/8 channels.
    K : int
        Number of output channels (NMF components).

    Example
    -------
    With ``Cnn14(mel_bins=80, emb_dim=2048, return_reps=True)`` on 201 frames, ``hs`` has
    2048, 1024, 512 and 256 channels on grids of 6 x 2, 6 x 2, 12 x 5 and 25 x 10
    (``CNN14PSI_stft_2d(2048, 20)`` then gives (2, 20, 207); tests/unit/test_models_l2i.py
    runs it on a real Cnn14's representations). The same grids at 1/8 of the channels:

    >>> hs = [torch.randn(2, c, t, f) for c, t, f in ((256, 6, 2), (128, 6, 2), (64, 12, 5), (32, 25, 10))]
    >>> psimodel = CNN14PSI_stft_2d(256, 20)
    >>> xhat = psimodel.forward(hs)
    >>> print(xhat.shape)
    torch.Size([2, 20, 207])
    """

    def __init__(self, dim=128, K=100):
        super().__init__()
        self.dim = dim
        # ConvTranspose2d(in, out, kernel, stride, padding); convt2/4/6 read Cnn14 skips
        self.convt1 = nn.ConvTranspose2d(dim, dim, 3, (2, 4), 1)
        self.convt2 = nn.ConvTranspose2d(dim // 2, dim, 3, (2, 4), 1)
        self.convt3 = nn.ConvTranspose2d(dim, dim, (7, 4), (2, 4), 1)
        self.convt4 = nn.ConvTranspose2d(dim // 4, dim, (5, 4), (2, 4), 1)
        self.convt5 = nn.ConvTranspose2d(dim, dim // 2, (3, 5), (2, 2), 1)
        self.convt6 = nn.ConvTranspose2d(dim // 8, dim // 2, (3, 3), (2, 4), 1)
        self.convt7 = nn.ConvTranspose2d(dim // 2, dim // 4, (4, 3), (2, 2), (0, 5))
        self.convt8 = nn.ConvTranspose2d(dim // 4, dim // 8, (3, 4), (2, 2), (0, 2))
        self.convt9 = nn.ConvTranspose2d(dim // 8, K, (7, 5), (1, 4), 0)

    def forward(self, hs, labels=None):
        """Estimates the NMF activations used to build the saliency mask.

        Arguments
        ---------
        hs : sequence of torch.Tensor
            Cnn14 representations (coarsest first) from
            ``Cnn14(mel_bins=80, return_reps=True)``.
        labels : torch.Tensor, optional
            Predicted labels; unused, kept for interface compatibility.

        Returns
        -------
        xhat : torch.Tensor
            Non-negative activations of shape (B, K, frames).
        """
        check_cnn14_reps(hs, self.dim, "CNN14PSI_stft_2d")
        h1, h2, h3, h4 = hs[:4]  # (B, C_i, t_i, f_i)
        stages = (
            (self.convt1, self.convt2, h2),
            (self.convt3, self.convt4, h3),
            (self.convt5, self.convt6, h4),
        )
        h = h1
        for i, (main, skip, h_skip) in enumerate(stages, start=1):
            up, side = F.relu(main(h)), F.relu(skip(h_skip))
            _check_same_shape(up, side, f"CNN14PSI_stft_2d stage {i}")
            h = up + side
        h = F.relu(self.convt7(h))
        h = F.relu(self.convt8(h))
        return F.relu(self.convt9(h)).mean(-1)  # (B, K, frames), frequency averaged
