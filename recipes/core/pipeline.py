"""The signal path every recipe shares: features, classifier call, inversion.

One definition of each step of the data flow, so the classifier recipe, the
NMF recipe, the interpreters and the evaluation all see the same numbers:

    wav [B, T] --STFT--> X_stft [B, frames, F, 2] --|.|, log1p--> X [B, frames, F]
    X --(log-mel for CNN14)--> classifier --> logits [B, N], representations
    mask * X --expm1, input phase, ISTFT--> interpretation audio [B, T]

Authors
 * audio-interpret contributors 2026
"""

import torch
import torch.nn.functional as F
from speechbrain.processing.features import spectral_magnitude

from models.layers import above_background_floor

#: The frozen classifier's sizes in the yamls: its checkpoints hold them, and every recipe that
#: reads the classifier must build it with the same values.
CLASSIFIER_SIZE_KEYS = (
    "emb_dim",
    "lin_neurons",
    # the transformer backbones' (hparams/classifier_vit.yaml, classifier_focalnet.yaml,
    # classifier_ast.yaml)
    "image_size",
    "patch_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "embed_dim",
    "depths",
    "focal_levels",
    "focal_windows",
    "num_mel_bins",
    "max_length",
    "frequency_stride",
    "time_stride",
)

def spectrogram(wavs, compute_stft):
    """Returns the log1p magnitude spectrogram and the complex STFT of `wavs`.

    Arguments
    ---------
    wavs : torch.Tensor
        Waveforms, shape (B, T).
    compute_stft : speechbrain.processing.features.STFT
        The STFT of the recipe's yaml.

    Returns
    -------
    X : torch.Tensor
        log1p(|STFT|), shape (B, frames, F).
    X_stft : torch.Tensor
        The STFT as (real, imag) pairs, shape (B, frames, F, 2); carries the phase.

    Example
    -------
    >>> from speechbrain.processing.features import STFT
    >>> stft = STFT(sample_rate=16000, n_fft=1024, hop_length=11.6099, win_length=23.2199)
    >>> X, X_stft = spectrogram(torch.randn(2, 16000), stft)
    >>> X.shape, X_stft.shape
    (torch.Size([2, 87, 513]), torch.Size([2, 87, 513, 2]))
    """
    X_stft = compute_stft(wavs)  # (B, frames, F, 2)
    X = torch.log1p(spectral_magnitude(X_stft, power=0.5))  # (B, frames, F)
    return X, X_stft


def log_mel(X, compute_fbank):
    """Log1p mel spectrogram computed from a log1p magnitude spectrogram.

    Applied to an interpretation too (`X_int = mask * X`), so CNN14 sees what
    the mask kept. `compute_fbank` must be built with `log_mel: False`.

    Arguments
    ---------
    X : torch.Tensor
        log1p magnitude spectrogram, (B, frames, F).
    compute_fbank : speechbrain.processing.features.Filterbank

    Returns
    -------
    torch.Tensor
        log1p mel energies, (B, frames, n_mels).
    """
    return torch.log1p(compute_fbank(torch.expm1(X)))


def invert_to_audio(X, X_stft, compute_istft, sig_length=None):
    """Waveform of a log1p magnitude spectrogram with the phase of `X_stft`.

    Arguments
    ---------
    X : torch.Tensor
        log1p magnitude to invert, (B, frames, F) (e.g. an interpretation).
    X_stft : torch.Tensor
        The input's STFT (B, frames, F, 2), whose phase is used.
    compute_istft : speechbrain.processing.features.ISTFT
    sig_length : int, optional
        Length in samples of the returned waveforms.

    Returns
    -------
    torch.Tensor
        Waveforms, (B, T).

    Example
    -------
    >>> from speechbrain.processing.features import STFT, ISTFT
    >>> stft = STFT(sample_rate=16000, n_fft=1024, hop_length=11.6099, win_length=23.2199)
    >>> istft = ISTFT(sample_rate=16000, n_fft=1024, hop_length=11.6099, win_length=23.2199)
    >>> wav = torch.randn(1, 16000)
    >>> X, X_stft = spectrogram(wav, stft)
    >>> back = invert_to_audio(X, X_stft, istft, wav.shape[1])
    >>> bool(torch.allclose(back, wav, atol=1e-3))
    True
    """
    magnitude = torch.expm1(X).clamp(min=0.0)  # (B, frames, F)
    # X_stft rescaled to the new magnitude keeps its phase (no atan2/cos/sin);
    # bins whose |X_stft| is 0 or too small for the ratio (silence) get phase 0
    scale = magnitude / torch.hypot(X_stft[..., 0], X_stft[..., 1])
    spec = X_stft * scale.unsqueeze(-1)
    no_phase = ~torch.isfinite(scale)
    if no_phase.any():
        spec[no_phase] = torch.stack((magnitude[no_phase], torch.zeros_like(magnitude[no_phase])), dim=-1)
    return compute_istft(spec, sig_length=sig_length)


MASK_DOMAINS = ("log", "magnitude", "power")


def _power_gain(mask):
    """sqrt(mask) as the magnitude gain of a power-domain mask, 0 where mask <= 0 (finite gradient)."""
    tiny = torch.finfo(mask.dtype).tiny
    return torch.where(mask > 0, mask.clamp(min=tiny).sqrt(), torch.zeros_like(mask))


def apply_mask(X, mask, domain="log"):
    """The interpretation spectrogram X_int of a mask in [0, 1] over X = log1p |STFT|, (B, frames, F).

    - "log" (the reference recipes): X_int = mask * X, the mask scales the
      log-magnitude, so a bin kept at m keeps expm1(m log1p |S|) <= m |S|, a
      smaller share the louder the bin (m = 0.5 keeps 33 % of |S| = 3 and 25 %
      of |S| = 8, 10 % of |S| = 100): a soft mask drops most of the loud target
      event it points at, and its audio is quieter than its mask says;
    - "magnitude": X_int = log1p(mask * |STFT|), the mask scales the magnitude,
      as a time-frequency mask of source separation does (a bin kept at 0.5 is
      6 dB down, whatever its level);
    - "power": X_int = log1p(sqrt(mask) * |STFT|), the mask scales the bin's
      energy |STFT|^2 (a bin kept at 0.5 is 3 dB down): the mask is read as the
      share of the bin's energy that the interpretation holds, as a Wiener gain
      on the power spectrum is. The same mask is the magnitude domain's
      sqrt(mask), so a soft mask keeps more of the bins it ranks in between.

    Binary masks give the same X_int in every domain.

    Example
    -------
    >>> X = torch.log1p(torch.tensor([[[3.0, 8.0]]]))
    >>> torch.expm1(apply_mask(X, torch.tensor([[[0.5, 0.5]]]), "magnitude"))
    tensor([[[1.5000, 4.0000]]])
    >>> torch.expm1(apply_mask(X, torch.tensor([[[0.25, 0.0]]]), "power"))  # sqrt(0.25) * 3
    tensor([[[1.5000, 0.0000]]])
    >>> torch.expm1(apply_mask(X, torch.tensor([[[0.5, 0.5]]]), "log")).round(decimals=4)  # sqrt(1 + |S|) - 1
    tensor([[[1., 2.]]])
    """
    if domain == "log":
        return mask * X
    if domain not in MASK_DOMAINS:
        raise ValueError(f"mask_domain {domain!r}: choose one of {MASK_DOMAINS} (the interpreter yaml).")
    gain = _power_gain(mask) if domain == "power" else mask
    return torch.log1p(gain * torch.expm1(X).clamp(min=0.0))


@torch.no_grad()
def floor_mask(X, domain="log"):
    """The mask that keeps of X what rises above each frequency's median over the clip's frames.

    X_int = relu(X - median over frames of X), the Conv2d encoder's input floor
    (`models.layers.above_background_floor`), as a mask in [0, 1] of `domain`
    (`apply_mask` gives that X_int back in each): kept / X in "log",
    expm1(kept) / expm1(X) in "magnitude", its square in "power"; 0 where X is 0. It needs no classifier:
    the evaluation scores it as a baseline ("above_floor"), and an interpreter with
    `mask_above_floor: True` multiplies its own mask by it, so that a band the
    background holds along the whole clip never enters an interpretation.

    Example
    -------
    >>> X = torch.log1p(torch.tensor([[[3.0, 0.0], [3.0, 0.0], [15.0, 0.0]]]))  # (1, 3 frames, 2)
    >>> floor_mask(X, "log")[0, :, 0]  # (log 16 - log 4) / log 16 in the loud frame
    tensor([0.0000, 0.0000, 0.5000])
    >>> floor_mask(X, "magnitude")[0, :, 0]  # expm1(log 4) / 15
    tensor([0.0000, 0.0000, 0.2000])
    >>> torch.expm1(apply_mask(X, floor_mask(X, "magnitude"), "magnitude"))[0, 2, 0]
    tensor(3.)
    >>> floor_mask(X, "power")[0, 2, 0]  # (3 / 15) ** 2
    tensor(0.0400)
    """
    if domain not in MASK_DOMAINS:
        raise ValueError(f"mask_domain {domain!r}: choose one of {MASK_DOMAINS} (the interpreter yaml).")
    whole = X.float()
    kept = above_background_floor(whole)
    if domain in ("magnitude", "power"):
        kept, whole = torch.expm1(kept), torch.expm1(whole)
    mask = torch.where(whole > 0, kept / whole.clamp(min=torch.finfo(whole.dtype).tiny), torch.zeros_like(kept))
    mask = mask.clamp_(0.0, 1.0)
    if domain == "power":
        mask = mask.square_()
    return mask.to(X.dtype)


#: `complete_mask`'s region: the bins where X (log1p |STFT|) is at least twice its frequency's
#: median over the clip's frames, i.e. `floor_mask(X, "log") >= 0.5`.
COMPLETION_REGION = 0.5


def completion_region(X, region_th=COMPLETION_REGION):
    """`complete_mask`'s region R of X (B, frames, F): 1.0 where `floor_mask(X, "log") >= region_th`."""
    return (floor_mask(X, "log") >= region_th).float()


def complete_mask(mask, X, region_th=COMPLETION_REGION, region=None):
    """The mask grown over the above-floor regions it touches, (B, frames, F).

    A morphological reconstruction (grey-level, by dilation) of `mask` under the region
    R = `floor_mask(X, "log") >= region_th`: each bin of R takes the highest value of a bin
    from which a path of 8-connected bins of R reaches it, its own value if higher. The
    path's first bin may lie outside R: a mask that touches a region, also from a bin next
    to its border, grows into it (a coarse mask's cell often ends a bin short of the event).
    Bins outside R, and regions of R the mask does not touch, keep their values. A mask decoded
    from a coarse grid of tokens (a transformer's, 0.2 s by 570 Hz cells on a 3 s clip)
    marks part of an event, a piece of a chirp, some clicks of a train: the reconstruction
    carries it along the event's time-frequency trace as far as the trace stays above the
    clip's floor, and not into a separate event. `mask_completion: True` in an interpreter
    yaml applies it at test and in `explain` (`InterpreterBrain`); the README
    ("Transformer classifiers") gives the figures, also where it does not help. `region`:
    R already computed (`completion_region(X, region_th)`, e.g. once for a batch whose
    clips are completed in several calls); X is then not read.

    Example
    -------
    >>> X = torch.full((1, 4, 5), 1.0)  # a floor of 1 ...
    >>> X[0, 1, :3] = 4.0  # ... an event along three bins of frame 1 ...
    >>> X[0, 3, 3:] = 4.0  # ... and another, not touching it, in frame 3
    >>> mask = torch.zeros(1, 4, 5)
    >>> mask[0, 1, 0] = 0.8  # the mask holds one bin of the first event
    >>> complete_mask(mask, X)[0]
    tensor([[0.0000, 0.0000, 0.0000, 0.0000, 0.0000],
            [0.8000, 0.8000, 0.8000, 0.0000, 0.0000],
            [0.0000, 0.0000, 0.0000, 0.0000, 0.0000],
            [0.0000, 0.0000, 0.0000, 0.0000, 0.0000]])
    >>> mask = torch.zeros(1, 4, 5)
    >>> mask[0, 0, 0] = 0.8  # a bin outside R, next to the first event's border
    >>> complete_mask(mask, X)[0, :2]
    tensor([[0.8000, 0.0000, 0.0000, 0.0000, 0.0000],
            [0.8000, 0.8000, 0.8000, 0.0000, 0.0000]])
    """
    if not torch.isfinite(mask).all():
        raise ValueError(
            "complete_mask: the mask holds NaN or inf values; an interpreter's mask lies in "
            "[0, 1] (check the interpreter's checkpoint and input)."
        )
    if region is None:
        region = completion_region(X, region_th)
    region = region.to(mask.dtype)
    grown = mask
    # values only rise, each to one of the mask's, and a path through R is at most every bin
    for _ in range(mask.shape[-2] * mask.shape[-1]):
        neighbours = F.max_pool2d(grown.unsqueeze(1), 3, stride=1, padding=1).squeeze(1)
        step = torch.maximum(grown, neighbours * region)
        if torch.equal(step, grown):
            break
        grown = step
    return grown


def remove_interpretation(X, X_int, domain="log"):
    """The input without its interpretation, "X - X_int" in the mask's domain, (B, frames, F).

    "log": X - X_int; "magnitude": log1p(|STFT| - |X_int|), i.e. the mask 1 - m
    applied in the magnitude domain; "power": log1p(sqrt(|STFT|^2 - |X_int|^2)),
    the mask 1 - m applied to the energy (the two parts' energies add up to the bin's).

    Example
    -------
    >>> X = torch.log1p(torch.tensor([[[3.0, 8.0]]]))
    >>> X_int = apply_mask(X, torch.tensor([[[0.5, 0.25]]]), "magnitude")
    >>> torch.expm1(remove_interpretation(X, X_int, "magnitude"))
    tensor([[[1.5000, 6.0000]]])
    >>> X = torch.log1p(torch.tensor([[[5.0]]]))
    >>> X_int = apply_mask(X, torch.tensor([[[0.36]]]), "power")  # |X_int| = 0.6 * 5 = 3
    >>> torch.expm1(remove_interpretation(X, X_int, "power"))  # sqrt(25 - 9)
    tensor([[[4.]]])
    """
    if domain == "log":
        return X - X_int
    if domain not in MASK_DOMAINS:
        raise ValueError(f"mask_domain {domain!r}: choose one of {MASK_DOMAINS} (the interpreter yaml).")
    whole, kept = torch.expm1(X).clamp(min=0.0), torch.expm1(X_int).clamp(min=0.0)
    if domain == "power":
        return torch.log1p(_power_gain(whole.square() - kept.square()))
    return torch.log1p((whole - kept).clamp(min=0.0))


MASK_TAILS = ("zeros", "edge")


def match_frames(tensor, n_frames, dim=1, tail="zeros"):
    """Crops or pads `tensor` along `dim` to `n_frames` frames.

    Interpreter decoders produce a fixed number of frames; the input's count
    depends on the clip length. This brings one to the other. The frames past
    the decoder's last are zeros with `tail="zeros"` (the reference recipes
    crop the input to the decoder's frames: the tail is outside the
    interpretation), or a copy of the last decoded frame with `tail="edge"`
    (the decoder's last column of the representation covers them).

    Example
    -------
    >>> match_frames(torch.ones(2, 417, 3), 431).shape
    torch.Size([2, 431, 3])
    >>> match_frames(torch.ones(2, 450, 3), 431).shape
    torch.Size([2, 431, 3])
    >>> match_frames(torch.tensor([[0.5, 0.25]]), 4, tail="edge").tolist()
    [[0.5, 0.25, 0.25, 0.25]]
    >>> match_frames(torch.ones(1, 2), 3, dim=-1).tolist()  # a dim counted from the end
    [[1.0, 1.0, 0.0]]
    """
    if tail not in MASK_TAILS:
        raise ValueError(f"mask_tail {tail!r}: choose one of {MASK_TAILS} (the interpreter yaml).")
    dim = dim % tensor.dim()
    current = tensor.shape[dim]
    if current == n_frames:
        return tensor
    if current > n_frames:
        return tensor.narrow(dim, 0, n_frames)
    if tail == "edge":
        last = tensor.narrow(dim, current - 1, 1)
        repeats = [1] * tensor.dim()
        repeats[dim] = n_frames - current
        return torch.cat([tensor, last.repeat(*repeats)], dim=dim)
    pad = [0, 0] * (tensor.dim() - dim - 1) + [0, n_frames - current]
    return F.pad(tensor, pad)


def split_classifier_output(output):
    """The classifier adapter contract: what every embedding model gives, in one place.

    An embedding model reads the classifier input (X, or its log-mel for CNN14)
    and returns either

    - a map (B, C, T', F') (time, then frequency): the embedding is its mean
      over T' and F', and the map is the representation (Conv2d); or
    - a pair `(embedding, representations)`: the embedding (B, D) or (B, 1, D),
      and the representations, one map (B, C, T', F') or a tuple of maps
      (CNN14 with `return_reps=True`: its blocks', finest first).

    The head (ECAPA `Classifier` or a `torch.nn.Linear`) maps the (B, 1, D)
    embedding to the class scores. What each supported classifier gives:

    ==========================  ========================  =============================================
    embedding model              embedding                 representations (what psi reads)
    ==========================  ========================  =============================================
    `Conv2dEncoder_v2`           map mean (B, 1, C)        (B, C, T/16, F/16)
    Cnn14 (return_reps)          (B, 1, 2048)              (h1, h2, h3, h4) maps, (B, C_i, T_i, F_i)
    `AudioViT`                   token mean (B, 1, D)      patch tokens on their grid (B, D, 14, 14)
    `AudioFocalNet`              map mean (B, 1, D)        last map upsampled 2x (B, D, 14, 14)
    `AudioAST`                   CLS + distillation mean   patch tokens (B, D, T', 12): time x mel
    ==========================  ========================  =============================================

    (the transformer backbones of `models.transformer_backbones` at their
    reference sizes; their grids span the whole clip: `spans_input`). A model of
    one's own joins by returning the pair.

    Returns
    -------
    embedding : torch.Tensor
        (B, 1, D), the input of the classifier head.
    representations : torch.Tensor or tuple
        What an interpreter's psi reads.
    """
    if isinstance(output, (tuple, list)):
        if len(output) != 2 or not isinstance(output[0], torch.Tensor) or output[0].dim() not in (2, 3):
            shapes = [tuple(item.shape) if isinstance(item, torch.Tensor) else type(item).__name__ for item in output]
            raise ValueError(_contract_message(f"a {type(output).__name__} of {len(output)}: {shapes}"))
        embedding, representations = output
        if embedding.dim() == 2:
            embedding = embedding.unsqueeze(1)
        return embedding, representations
    if not isinstance(output, torch.Tensor):
        what = f"a dict with keys {sorted(output)}" if isinstance(output, dict) else f"a {type(output).__name__}"
        raise ValueError(_contract_message(what))
    if output.dim() == 4:  # (B, D, T', F') -> average over time and frequency
        return output.mean(dim=(2, 3)).unsqueeze(1), output
    if output.dim() == 2:
        return output.unsqueeze(1), output
    if output.dim() == 3 and output.shape[1] == 1:  # (B, 1, D): an embedding alone
        return output, output
    raise ValueError(_contract_message(f"one tensor of shape {tuple(output.shape)}"))


def _contract_message(what):
    """The error for an embedding model's output outside the contract (`split_classifier_output`)."""
    return (
        f"The embedding model returned {what}: it must return a map (B, C, T', F') (time, then "
        "frequency), or the pair (embedding (B, D), map (B, C, T', F')), in that order; see "
        "README, \"Your own classifier\", and recipes/core/pipeline.py's split_classifier_output."
    )


def spans_input(embedding_model):
    """True when the model's representation grid covers the whole clip, whatever its length
    (the transformer backbones resize X to their image): decoders' outputs are then resized to
    X (`fit_to_input`) and its grid is an activation map (the AMT baseline)."""
    return bool(getattr(embedding_model, "spans_input", False))


def fit_to_input(decoded, n_frames, n_bins, embedding_model):
    """A decoder's time-frequency output (B, frames', F') on the input's (B, n_frames, n_bins).

    When the representation spans the input (`spans_input`): the backbone's
    `grid_to_input` (AST's maps a mel axis onto the linear bins), else a bilinear resize;
    otherwise its frames are cropped or zero-padded (`match_frames`): a
    convolutional encoder's grid follows the frames one to one.

    Example
    -------
    >>> vit = type("Backbone", (), {"spans_input": True})()
    >>> fit_to_input(torch.rand(2, 431, 513), 259, 513, vit).shape
    torch.Size([2, 259, 513])
    >>> fit_to_input(torch.rand(2, 431, 513), 259, 513, torch.nn.Identity()).shape
    torch.Size([2, 259, 513])
    """
    if spans_input(embedding_model):
        to_input = getattr(embedding_model, "grid_to_input", None)
        if to_input is not None:  # the backbone's own view of X (AST: a mel axis)
            return to_input(decoded, n_frames, n_bins)
        if decoded.shape[1:] == (n_frames, n_bins):
            return decoded
        return F.interpolate(decoded.unsqueeze(1), size=(n_frames, n_bins), mode="bilinear", align_corners=False).squeeze(1)
    return match_frames(decoded, n_frames)


def classifier_input(X, compute_fbank=None, use_melspectra=False):
    """What the classifier reads: X itself (Conv2d) or its log-mel (CNN14)."""
    if use_melspectra:
        if compute_fbank is None:
            raise ValueError("use_melspectra is True but no compute_fbank is defined in the yaml")
        return log_mel(X, compute_fbank)
    return X


def classify(embedding_model, classifier, X, compute_fbank=None, use_melspectra=False):
    """Runs embedding model and head on a log1p magnitude spectrogram.

    Arguments
    ---------
    embedding_model : torch.nn.Module
        Conv2dEncoder_v2 or Cnn14(return_reps=True).
    classifier : torch.nn.Module
        The head: ECAPA `Classifier` or `torch.nn.Linear`; maps (B, 1, D) -> (B, 1, N).
    X : torch.Tensor
        log1p magnitude spectrogram (B, frames, F).
    compute_fbank, use_melspectra :
        see `classifier_input`.

    Returns
    -------
    scores : torch.Tensor
        The head's raw output (B, N) (cosine scores for the ECAPA head, logits
        for a linear head).
    representations : torch.Tensor or tuple
        Hidden representations for the interpreter.
    """
    embedding, representations = split_classifier_output(
        embedding_model(classifier_input(X, compute_fbank, use_melspectra))
    )
    scores = classifier(embedding).reshape(embedding.shape[0], -1)  # (B, N)
    return scores, representations


def n_stft_frames(sample_rate, signal_length_s, hop_length_ms):
    """Frames of SpeechBrain's centred STFT for a clip: 1 + n_samples // hop.

    Used by the yamls (`!apply:`) to size modules that depend on the clip length.

    Example
    -------
    >>> n_stft_frames(16000, 5, 11.6099)
    431
    """
    n_samples = int(round(sample_rate * signal_length_s))
    hop = int(round(sample_rate / 1000.0 * hop_length_ms))
    return 1 + n_samples // hop


def class_probabilities(scores, classifier_temp):
    """Class probabilities of the classifier: softmax(scores / classifier_temp).

    The ECAPA head returns cosines in [-1, 1], trained with an AAM softmax of
    scale s: its probabilities are softmax(s * cos), i.e. `classifier_temp = 1/s`.
    A linear head returns logits: `classifier_temp = 1`.

    Arguments
    ---------
    scores : torch.Tensor
        The head's output, (B, N).
    classifier_temp : float
        The temperature of the yaml.

    Returns
    -------
    torch.Tensor
        (B, N), rows sum to 1.

    Example
    -------
    >>> p = class_probabilities(torch.tensor([[1.0, 0.0]]), 1 / 30)
    >>> bool(p[0, 0] > 0.99), float(p.sum())
    (True, 1.0)
    """
    if not classifier_temp > 0:
        raise ValueError(f"classifier_temp must be > 0, got {classifier_temp}; fix the yaml.")
    return torch.softmax(scores / classifier_temp, dim=-1)
