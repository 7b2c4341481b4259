"""L-MAC (Listenable Maps for Audio Classifiers): the mask decoder of the Conv2d classifier.

L-MAC (Paissan et al., ICML 2024, arXiv 2403.13086) decodes the frozen
classifier's hidden representations into the logits of a mask over the
linear-frequency log1p |STFT|; the recipe (`recipes/train_lmac.py`) applies
the sigmoid and trains the decoder through the classifier's decision on the
masked-in and masked-out spectrograms.

- CNN14: the reference decoder, ``speechbrain.lobes.models.Cnn14.CNN14PSI_stft``
  (``hparams/lmac_cnn14.yaml`` builds it from SpeechBrain, so the published
  L-MAC checkpoints load). It is not ``models.L2I.CNN14PSI_stft``: that one
  (same name and docstring in the seed API) gives K NMF activations over time
  only, (B, K, frames), and no frequency axis.
- Conv2d (``Conv2dEncoder_v2``): :class:`Conv2dMaskDecoder` below, PIQ's
  decoder without its quantiser.
- ViT and FocalNet (``models.transformer_backbones``): :class:`GridMaskDecoder`,
  the same with the decoder of the seed's ``VectorQuantizedPSIViT_Audio``
  (a 14 x 14 grid -> 431 x 513).
- AST (``models.transformer_backbones.AudioAST``): :class:`ASTGridMaskDecoder`,
  with the decoder of ``models.PIQ.VectorQuantizedPSIAST_Audio`` (its time x mel
  grid, 8x on both axes, put onto the STFT's bins by the backbone).

Authors
 * audio-interpret contributors 2026
"""

import torch.nn as nn

from models.PIQ import (
    ResBlockAudio,
    VectorQuantizedPSI_Audio,
    VectorQuantizedPSIAST_Audio,
    VectorQuantizedPSIViT_Audio,
    _choose_decoder,
    _transposed_conv_decoder,
    weights_init,
)


class Conv2dMaskDecoder(nn.Module):
    """Mask logits over the log1p |STFT| from ``Conv2dEncoder_v2`` representations.

    PIQ's decoder (:class:`models.PIQ.VectorQuantizedPSI_Audio`) without the
    codebook: an optional residual adapter, then the same transposed
    convolutions, from the encoder's (T/16, F/16) map to one time-frequency
    map of 513 bins (n_fft 1024). The parameter names are PIQ's (`adapter.*`,
    `decoder.*`), so a PIQ checkpoint's decoder loads into it
    (``load_state_dict(..., strict=False)`` leaves the codebook out).

    Arguments
    ---------
    dim : int
        Channels of the classifier's representations (its emb_dim).
    use_adapter : bool
        If True, a learned :class:`models.PIQ.ResBlockAudio` adapts the
        representations before decoding.

    Example
    -------
    >>> import torch
    >>> decoder = Conv2dMaskDecoder(dim=16)
    >>> decoder(torch.randn(2, 16, 26, 32)).shape  # a 5 s clip: 431 frames -> 26 x 32
    torch.Size([2, 1, 417, 513])
    """

    #: the PIQ decoder whose up-sampling stages it shares
    piq_decoder = VectorQuantizedPSI_Audio
    decoder_stages = piq_decoder.decoder_stages
    decoder_out_kernel = piq_decoder.decoder_out_kernel

    def __init__(self, dim=256, use_adapter=True):
        super().__init__()
        self.dim = dim
        self.use_adapter = use_adapter
        if use_adapter:
            self.adapter = ResBlockAudio(dim)
        self.decoder = _transposed_conv_decoder(dim, self.decoder_stages, self.decoder_out_kernel)
        self.apply(weights_init)

    def forward(self, hs):
        """Decodes the mask logits.

        Arguments
        ---------
        hs : torch.Tensor
            Classifier representations, ``(B, dim, T', F')``.

        Returns
        -------
        torch.Tensor
            Mask logits ``(B, 1, frames', 16 F' + 1)`` (513 bins for F' = 32).
        """
        if hs.ndim != 4 or hs.shape[1] != self.dim:
            raise ValueError(
                f"{type(self).__name__}(dim={self.dim}) expects representations of shape "
                f"(B, {self.dim}, T', F'), got {tuple(hs.shape)}: set the yaml's emb_dim to "
                "the classifier's."
            )
        h = self.adapter(hs) if self.use_adapter else hs  # (B, dim, T', F')
        return self.decoder(h)  # (B, 1, frames', F)


class GridMaskDecoder(Conv2dMaskDecoder):
    """Mask logits over the log1p |STFT| from a transformer backbone's 14 x 14 grid.

    :class:`Conv2dMaskDecoder` with the up-sampling stages of the seed's
    ``VectorQuantizedPSIViT_Audio`` (shared with ``VectorQuantizedPSIFocalNet_Audio``):
    14 x 14 -> 431 x 513, resized by the recipe onto the clip's frames (the grid
    spans the clip). With ``decoder="grid"`` (not the seed's; PIQ's option of the
    same name, ``models.PIQ.GRID_DECODER``): 8x the grid on both axes (112 x 112),
    resized onto the clip's frames and bins.

    Arguments
    ---------
    dim : int
        Channels of the classifier's representations (its token width).
    use_adapter : bool
        If True, a learned residual block adapts the representations first.
    decoder : str
        "seed" (the seed's decoder) or "grid".

    Example
    -------
    >>> import torch
    >>> GridMaskDecoder(dim=16)(torch.randn(2, 16, 14, 14)).shape
    torch.Size([2, 1, 431, 513])
    >>> GridMaskDecoder(dim=16, decoder="grid")(torch.randn(2, 16, 14, 14)).shape
    torch.Size([2, 1, 112, 112])
    """

    piq_decoder = VectorQuantizedPSIViT_Audio
    decoder_stages = piq_decoder.decoder_stages
    decoder_out_kernel = piq_decoder.decoder_out_kernel

    def __init__(self, dim=256, use_adapter=True, decoder="seed"):
        _choose_decoder(self, decoder)
        super().__init__(dim=dim, use_adapter=use_adapter)


class ASTGridMaskDecoder(Conv2dMaskDecoder):
    """Mask logits from the Audio Spectrogram Transformer's time x mel token grid.

    :class:`Conv2dMaskDecoder` with the up-sampling stages of
    ``models.PIQ.VectorQuantizedPSIAST_Audio``: (T', F') -> (8 T', 8 F') over the
    grid's time span and the mel bands; the recipe puts the logits onto the
    clip's frames and linear bins (``AudioAST.grid_to_input``).

    Example
    -------
    >>> import torch
    >>> ASTGridMaskDecoder(dim=16)(torch.randn(2, 16, 25, 12)).shape
    torch.Size([2, 1, 200, 96])
    """

    piq_decoder = VectorQuantizedPSIAST_Audio
    decoder_stages = piq_decoder.decoder_stages
    decoder_out_kernel = piq_decoder.decoder_out_kernel
