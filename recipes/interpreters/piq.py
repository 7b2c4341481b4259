"""The PIQ (Posthoc Interpretation via Quantization) interpreter Brain (`PIQ`) and its helpers.

Trained by `recipes/train_piq.py`.

psi (`models.PIQ.VectorQuantizedPSI_Audio`) reads the frozen Conv2d
classifier's representations, quantizes them with a codebook partitioned by
the classifier's predicted class (straight-through gradients), and decodes a
mask over the spectrogram:

- use_mask_output: True  -> mask = sigmoid(decoder); loss = rec_loss_coef * BCE
  against the target mask (X above mask_th x its per-clip maximum, or with
  `mask_target: above_floor` the same on X minus each frequency's median
  level in the clip: see `target_mask`);
- use_mask_output: False -> softplus(decoder) is a spectrogram fitted to X by
  MSE; the mask is where it exceeds mask_th x its per-clip maximum;
- use_vq: False          -> the codebook is bypassed;

plus the VQ loss ||sg(h) - z_q||^2 and the commitment loss ||h - sg(z_q)||^2.

Authors
 * audio-interpret contributors 2026
"""

import torch
import torch.nn.functional as F
from speechbrain.utils.logger import get_logger

from models.layers import above_background_floor
from recipes.core.pipeline import fit_to_input, spans_input
from recipes.interpreters.base import InterpreterBrain

logger = get_logger(__name__)


MASK_TARGETS = ("peak", "above_floor")


def target_mask(X, mask_th, mask_target="peak"):
    """PIQ's binarised reconstruction target, (B, frames, F) in {0, 1}.

    - "peak" (the reference recipe): 1 where X exceeds mask_th times its
      per-clip maximum;
    - "above_floor": the same rule on D = relu(X - median over frames of X), what
      rises above each frequency's usual level in the clip.

    In log1p magnitude the loudest bins of most recordings are the low
    frequencies (pink/brown noise, hum), whatever the class: with "peak" PIQ
    learns to keep those on every clip. "above_floor" keeps the events instead.

    Example
    -------
    >>> X = torch.tensor([[[0.0, 1.0], [0.5, 2.0]]])
    >>> target_mask(X, 0.35)
    tensor([[[0., 1.],
             [0., 1.]]])
    >>> X = torch.tensor([[[3.0, 0.1], [3.0, 0.1], [3.2, 1.0]]])  # a steady bin, an event
    >>> target_mask(X, 0.35, "above_floor")
    tensor([[[0., 0.],
             [0., 0.],
             [0., 1.]]])
    """
    if mask_target == "above_floor":
        X = above_background_floor(X)
    elif mask_target != "peak":
        raise ValueError(f"mask_target {mask_target!r}: choose one of {MASK_TARGETS} (piq.yaml).")
    peak = X.flatten(1).amax(dim=1).view(-1, 1, 1)
    return (X > mask_th * peak).float()


class PIQ(InterpreterBrain):
    """Posthoc Interpretation via Quantization on the InterpreterBrain base.

    The best checkpoint is the one of the lowest valid loss (the mask-target
    reconstruction and the VQ terms), not of the highest Fid-In: a mask that
    keeps nearly everything has the highest Fid-In, and PIQ's first epoch can
    give one (at seed 1236 of `make compare`: valid Fid-In 0.73 at epoch 1,
    mask sparseness 0.04, SI-SDRi -3.7 dB on the test fold).
    """

    best_key = "loss"
    best_key_is_lower = True
    inference_keys = (
        "use_vq",
        "use_mask_output",
        "mask_th",
        "mask_target",
        "activate_class_partitioning",
        "shared_keys",
    )

    def load_frozen(self):
        """Checks up front the mask target and that the codebook can be split over the classes."""
        if self.hparams.mask_target not in MASK_TARGETS:
            raise ValueError(
                f"mask_target {self.hparams.mask_target!r}: choose one of {MASK_TARGETS}."
            )
        if not 0 <= self.hparams.mask_th <= 1:
            raise ValueError(
                f"mask_th = {self.hparams.mask_th}: the share of each clip's maximum above which a bin "
                "is in the mask target, between 0 and 1 (the reference: 0.35)."
            )
        if getattr(self, "checkpointer", None) is not None:  # training reads the loss's settings
            for key in ("rec_loss_coef", "commitment_coef"):
                if getattr(self.hparams, key) < 0:
                    raise ValueError(f"{key} = {getattr(self.hparams, key)}: the loss weights are >= 0.")
            if not self.hparams.use_mask_output and self.hparams.mask_target != MASK_TARGETS[0]:
                logger.warning(
                    "mask_target %s is not read with use_mask_output False (the decoder then "
                    "reconstructs X, and its mask follows the peak rule).",
                    self.hparams.mask_target,
                )
        K, n_classes = self.hparams.K, self.hparams.out_n_neurons
        shared = self.hparams.shared_keys
        if self.hparams.use_vq and self.hparams.activate_class_partitioning and K - shared < n_classes:
            raise ValueError(
                f"K={K} codebook entries (with shared_keys={shared}) cannot be split over "
                f"{n_classes} classes: give --K at least {n_classes + shared}."
            )
        self.codes_used = torch.zeros(K, dtype=torch.bool)

    def on_stage_start(self, stage, epoch=None):
        super().on_stage_start(stage, epoch)
        self.codes_used = torch.zeros(self.hparams.K, dtype=torch.bool)

    def decode(self, representations, classes):
        """psi's decoder output (B, frames', F), its pre-VQ h and quantized z_q."""
        if self.hparams.use_vq:
            decoded, h, z_q, codes = self.modules.psi(representations, classes, return_indices=True)
            self.codes_used |= torch.bincount(codes.flatten().cpu(), minlength=self.hparams.K) > 0
        else:  # the same path without the codebook
            decoded, h, z_q = self.unwrapped("psi").forward_without_vq(representations), None, None
        return decoded.squeeze(1), h, z_q

    def interpret(self, X, representations, classes, stage):
        decoded, h, z_q = self.decode(representations, classes)  # (B, frames', F')
        embedding_model = self.hparams.embedding_model
        if decoded.shape[-1] != X.shape[-1] and not spans_input(embedding_model):
            raise ValueError(
                f"psi decodes {decoded.shape[-1]} frequency bins but the STFT has {X.shape[-1]}: "
                "PIQ's decoder is built for n_fft 1024 (513 bins)."
            )
        if spans_input(embedding_model):  # the grid spans the clip: the output is resized to X
            decoded = fit_to_input(decoded, X.shape[1], X.shape[2], embedding_model)  # (B, frames, F)
        if self.hparams.use_mask_output:
            mask = torch.sigmoid(decoded)
        else:
            decoded = F.softplus(decoded)
            mask = target_mask(decoded, self.hparams.mask_th)  # psi's own spectrogram
        # The convolutional decoders' frame count is fixed by the representation size:
        # crop or pad the mask to the input's frames (the yaml's mask_tail).
        return {"decoded": decoded, "h": h, "z_q": z_q, "mask": self.fit_mask_frames(mask, X.shape[1])}

    def interpretation_loss(self, outputs, batch, stage):
        X, decoded = outputs["X"], outputs["decoded"]
        n = min(X.shape[1], decoded.shape[1])  # frames both cover
        X, decoded = X[:, :n], decoded[:, :n]
        if self.hparams.use_mask_output:
            target = target_mask(X, self.hparams.mask_th, self.hparams.mask_target)
            rec = F.binary_cross_entropy_with_logits(decoded, target)
        else:
            rec = F.mse_loss(decoded, X)
        terms = {"loss_rec": self.hparams.rec_loss_coef * rec}
        if self.hparams.use_vq:
            h, z_q = outputs["h"], outputs["z_q"]
            terms["loss_vq"] = F.mse_loss(z_q, h.detach())
            terms["loss_commit"] = self.hparams.commitment_coef * F.mse_loss(h, z_q.detach())
        return terms

    def stage_extra_stats(self):
        if not self.hparams.use_vq:
            return {}
        used = self.codes_used.to(torch.int32)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(used, op=torch.distributed.ReduceOp.MAX)  # any process used it
        return {"codebook_usage": used.float().mean().item()}
