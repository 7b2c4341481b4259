"""The L-MAC (Listenable Maps for Audio Classifiers) interpreter Brain (`LMAC`) and its helpers.

Trained by `recipes/train_lmac.py`.

L-MAC (Paissan et al., ICML 2024, arXiv 2403.13086): psi decodes the frozen
classifier's hidden representations into a mask M = sigmoid(psi(h)) in [0, 1]
over X = log1p |STFT|, trained through the classifier's own decision, with y
the classifier's class on X and f its logits (scores / classifier_temp):

    L = l_in_w CE(f(M X), y) - l_out_w CE(f((1 - M) X), y) + reg_w_l1 mean|M|

The masked-in spectrogram must keep the class, the masked-out one must lose it,
and the mask is kept small: mean|M|, the reference's and every yaml's default
(`l1_weighting: bins`), or, not the reference's, the share of X it keeps,
mean(M X) / mean(X) (`l1_weighting: input`). The size term is averaged over the
clips of the batch (the public recipe sums the clips' means, so its weight grows
with the batch size). CNN14 reads the log-mel of the masked spectrograms,
computed from the same STFT. `out_loss:
not_class` replaces the out-term's -CE, unbounded below, by -log(1 - p_y) on
(1 - M) X, which is 0 once the class is gone (`out_loss`; the yamls say why).

`finetuning: True` (the paper's optional stage, from a trained L-MAC given by
`finetune_from`): clips whose masked-in spectrogram is close to a clean
reference X_c (cosine similarity >= crosscor_th) get

    g_w BCE(M, X_c >= bin_th max X_c)

and no L1 term. The clean reference (`finetuning_reference`) is the clip's
target event from `<data_folder>/sources` (the synthetic dataset, with or
without WHAM! noise in the input) or, as in the paper, the clip before its
WHAM! noise (`clip`, needs add_wham_noise: True).

Authors
 * audio-interpret contributors 2026
"""

import torch
import torch.nn.functional as F
from speechbrain.lobes.models.Cnn14 import CNN14PSI_stft
from speechbrain.utils.logger import get_logger

from data_prep.ground_truth import GroundTruth
from models.L2I import check_cnn14_reps
from recipes.core.pipeline import classify, fit_to_input, spans_input
from recipes.interpreters.base import InterpreterBrain

logger = get_logger(__name__)

FINETUNING_REFERENCES = ("sources", "clip")
OUT_LOSSES = ("neg_ce", "not_class")
#: What selects L-MAC's checkpoint (`checkpoint_key`): its valid loss, or (the reference) valid Fid-In.
CHECKPOINT_KEYS = ("loss", "fid_in")
#: How the size term weighs the bins (`l1_weighting`): mean |M| (the reference), or the share of X kept.
L1_WEIGHTINGS = ("bins", "input")


def out_loss(logits, classes, kind="neg_ce"):
    """The out-term's loss on the masked-out input's logits (B, N), () (a batch mean).

    - "neg_ce" (the reference): -CE(f, y) = log p_y, unbounded below: it keeps
      paying to push p_y further down, also by removing evidence of nothing in
      particular (loud background) once y is gone;
    - "not_class": the cross-entropy of "not y", -log(1 - p_y), which is 0 once
      y is gone.

    Example
    -------
    >>> sure, unsure = torch.tensor([[9.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    >>> y = torch.tensor([0])
    >>> round(float(out_loss(unsure, y)), 4), round(float(out_loss(unsure, y, "not_class")), 4)
    (-0.6931, 0.6931)
    >>> round(float(out_loss(-sure, y, "not_class")), 4)  # y gone: nothing more to gain
    0.0001
    """
    if kind == "neg_ce":
        return -F.cross_entropy(logits, classes)
    if kind != "not_class":
        raise ValueError(f"out_loss {kind!r}: choose one of {OUT_LOSSES} (lmac yaml).")
    log_total = logits.logsumexp(dim=1)  # (B,)
    others = logits.scatter(1, classes.view(-1, 1), float("-inf")).logsumexp(dim=1)
    return (log_total - others).mean()  # -log(1 - p_y)


def mask_l1(mask, weights=None):
    """mean |M| over a batch, (): the clips' means averaged, each clip weighted.

    Arguments
    ---------
    mask : torch.Tensor
        (B, frames, F).
    weights : torch.Tensor, optional
        (B,) weight of each clip's mean (fine-tuning: 0 for the guided clips).

    Example
    -------
    >>> mask = torch.tensor([[[0.0, 1.0]], [[1.0, 1.0]]])
    >>> mask_l1(mask), mask_l1(torch.cat([mask, mask]))  # the batch size does not scale it
    (tensor(0.7500), tensor(0.7500))
    >>> mask_l1(mask, torch.tensor([1.0, 0.0]))
    tensor(0.2500)
    """
    per_clip = mask.abs().flatten(1).mean(dim=1)  # (B,)
    if weights is not None:
        per_clip = per_clip * weights
    return per_clip.mean()


def mask_share(mask, X, weights=None):
    """The share of X the mask keeps, mean(M X) / mean(X) per clip, averaged over the batch, ().

    `l1_weighting: input`'s size term: each bin weighs as much as it holds of X = log1p |STFT|,
    as it does in the fidelity terms' gradients (d(M X)/dM = X), so a loud bin costs more
    than a quiet one (mean|M|, the reference, counts bins).

    Example
    -------
    >>> X = torch.tensor([[[9.0, 1.0]]])
    >>> mask_share(torch.tensor([[[1.0, 0.0]]]), X), mask_share(torch.tensor([[[0.0, 1.0]]]), X)
    (tensor(0.9000), tensor(0.1000))
    >>> mask_share(torch.ones(1, 1, 2), X), mask_l1(torch.ones(1, 1, 2))
    (tensor(1.), tensor(1.))
    """
    clip_mean = X.flatten(1).mean(dim=1).clamp_min(1e-8).view(-1, 1, 1)  # (B, 1, 1)
    return mask_l1(mask * X / clip_mean, weights)  # mean(M X / mean X) = mean(M X) / mean(X)


def spectrogram_similarity(a, b):
    """Cosine similarity of two spectrograms per clip, (B,) (the paper's "dotp" cross-correlation).

    Example
    -------
    >>> X = torch.rand(2, 4, 3)
    >>> bool(torch.allclose(spectrogram_similarity(X, 2 * X), torch.ones(2)))
    True
    >>> spectrogram_similarity(torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 1.0]]]))
    tensor([0.])
    """
    return F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


def binarised_reference(X_clean, bin_th):
    """1 where the clean spectrogram exceeds bin_th times its per-clip maximum, (B, frames, F).

    Example
    -------
    >>> binarised_reference(torch.tensor([[[0.1, 1.0], [0.5, 0.2]]]), 0.35)
    tensor([[[0., 1.],
             [1., 0.]]])
    """
    peak = X_clean.flatten(1).amax(dim=1).view(-1, 1, 1)
    return (X_clean >= bin_th * peak).float()


class LMAC(InterpreterBrain):
    """Listenable Maps for Audio Classifiers on the InterpreterBrain base."""

    #: The reference halves the lr on a plateau of valid Fid-In (not of the valid
    #: loss, whose out-term can keep falling while the mask keeps less of the class).
    lr_plateau_key = "fid_in"
    # it checks its loss weights when it is built; it never fine-tunes at inference
    inference_keys = ("l_in_w", "l_out_w", "reg_w_l1", "g_w")
    inference_fixed = {"finetuning": False}

    @property
    def best_key(self):
        """The valid statistic that selects the checkpoint: the yaml's `checkpoint_key`,
        "fid_in" (the reference: the highest valid Fid-In) when the yaml has none."""
        return getattr(self.hparams, "checkpoint_key", "fid_in")

    @property
    def l1_weighting(self):
        """The size term's weighting: the yaml's `l1_weighting`, "bins" (the reference) without one."""
        return getattr(self.hparams, "l1_weighting", "bins")

    @property
    def best_key_is_lower(self):
        """The valid loss is minimised, Fid-In maximised."""
        return self.best_key == "loss"

    def load_frozen(self):
        """Checks the loss settings; for fine-tuning, the clean reference and the starting psi.

        Only for training: evaluation and inference (a Brain without checkpointer)
        never compute the loss, and read none of its keys.
        """
        self.finetuning, self.ground_truth = False, None
        if self.checkpointer is None:
            return
        for key in ("l_in_w", "l_out_w", "reg_w_l1", "g_w"):
            if getattr(self.hparams, key) < 0:
                raise ValueError(f"{key} = {getattr(self.hparams, key)}: the loss weights are >= 0.")
        if self.hparams.out_loss not in OUT_LOSSES:
            raise ValueError(f"out_loss {self.hparams.out_loss!r}: choose one of {OUT_LOSSES}.")
        if self.best_key not in CHECKPOINT_KEYS:
            raise ValueError(
                f"checkpoint_key {self.best_key!r}: choose one of {CHECKPOINT_KEYS} (loss: the lowest "
                "valid loss; fid_in: the reference's highest valid Fid-In)."
            )
        if self.l1_weighting not in L1_WEIGHTINGS:
            raise ValueError(
                f"l1_weighting {self.l1_weighting!r}: choose one of {L1_WEIGHTINGS} (bins: the "
                "reference's mean |M|; input: the share of X the mask keeps)."
            )
        self.finetuning = bool(self.hparams.finetuning)
        if not self.finetuning:
            return
        crosscor_th, bin_th = getattr(self.hparams, "crosscor_th", 0.0), getattr(self.hparams, "bin_th", 0.0)
        if not -1 <= crosscor_th <= 1 or not 0 <= bin_th <= 1:
            raise ValueError(
                f"crosscor_th = {crosscor_th}, bin_th = {bin_th}: a cosine "
                "similarity lies in [-1, 1] (above 1 no clip is guided) and bin_th is a share of the "
                "reference's maximum, in [0, 1] (the reference: 0.6 and 0.35)."
            )
        reference = self.hparams.finetuning_reference
        if reference not in FINETUNING_REFERENCES:
            raise ValueError(
                f"finetuning_reference {reference!r}: choose one of {FINETUNING_REFERENCES}."
            )
        if reference == "sources":
            if not GroundTruth.available(self.hparams.data_folder):
                raise ValueError(
                    f"finetuning_reference: sources needs the clips' separate sources, but "
                    f"{self.hparams.data_folder} has no meta/ground_truth.csv: use the synthetic "
                    "dataset, or --finetuning_reference clip with --add_wham_noise True."
                )
            n_samples = int(round(self.hparams.sample_rate * self.hparams.signal_length_s))
            self.ground_truth = GroundTruth(self.hparams.data_folder, self.hparams.sample_rate, n_samples)
        elif not self.hparams.add_wham_noise:
            raise ValueError(
                "finetuning_reference: clip takes the clip before its WHAM! noise as the clean "
                "reference: it needs --add_wham_noise True (and --wham_folder), or use "
                "--finetuning_reference sources on the synthetic dataset."
            )
        if self.hparams.finetune_from is None:
            raise ValueError(
                "finetuning: True starts from a trained L-MAC: give --finetune_from "
                "results/lmac_conv2d/1234/psi_model.ckpt (and another --output_folder)."
            )
        self.load_interpreter(self.hparams.finetune_from)  # a rerun then resumes from its checkpoints

    def interpret(self, X, representations, classes, stage):
        psi = getattr(self.modules.psi, "module", self.modules.psi)  # DDP wraps it
        if isinstance(psi, CNN14PSI_stft) and isinstance(representations, (tuple, list)):
            check_cnn14_reps(representations, psi.convt1.in_channels, "CNN14PSI_stft")
        try:
            logits = self.modules.psi(representations).squeeze(1)  # (B, frames', F)
        except RuntimeError as error:
            if "must match the size" not in str(error):
                raise
            raise ValueError(
                f"psi cannot decode the classifier's representations of {X.shape[1]}-frame clips "
                f"({error}); CNN14PSI_stft takes 201 or 431 frames: --signal_length_s 2.325 or 5."
            ) from error
        embedding_model = self.hparams.embedding_model
        if spans_input(embedding_model):  # the grid spans the clip: the output is resized to X
            logits = fit_to_input(logits, X.shape[1], X.shape[2], embedding_model)  # (B, frames, F)
        if logits.shape[-1] != X.shape[-1]:
            rows = representations.shape[-1] if isinstance(representations, torch.Tensor) else None
            raise ValueError(
                f"psi decodes {logits.shape[-1]} frequency bins but the STFT has {X.shape[-1]}: the "
                "L-MAC decoders are built for n_fft 1024 (513 bins) and a classifier map 16x smaller "
                f"than X along frequency (513 bins -> 32 rows; this classifier's map has {rows} rows "
                f"for {X.shape[-1]} bins). Give the classifier that downsampling, or n_fft 1024."
            )
        # The decoder's frame count is fixed by the representation size: crop or
        # pad the mask to the input's frames (the yaml's mask_tail).
        mask = self.fit_mask_frames(torch.sigmoid(logits), X.shape[1])  # (B, frames, F)
        return {"logits": logits, "mask": mask}

    def classifier_logits(self, X):
        """The frozen classifier's logits f(X) (scores / classifier_temp), with the
        gradient to X (its weights are frozen), (B, N)."""
        scores, _ = classify(
            self.hparams.embedding_model,
            self.hparams.classifier,
            X,
            compute_fbank=self.hparams.compute_fbank,
            use_melspectra=self.hparams.use_melspectra,
        )
        return scores / self.hparams.classifier_temp

    def interpretation_loss(self, outputs, batch, stage):
        X, mask, classes = outputs["X"], outputs["mask"], outputs["classes"]
        # M X and (1 - M) X in one classifier pass, (2B, N)
        logits_in, logits_out = self.classifier_logits(
            torch.cat([self.apply_mask(X, mask), self.apply_mask(X, 1 - mask)])
        ).chunk(2)
        terms = {
            "loss_in": self.hparams.l_in_w * F.cross_entropy(logits_in, classes),
            "loss_out": self.hparams.l_out_w * out_loss(logits_out, classes, self.hparams.out_loss),
        }
        l1_weights = None
        if self.finetuning:
            guided, terms["loss_guide"] = self.guidance_loss(outputs, batch)
            outputs["guided"] = guided  # (B,), logged by interpreter_metrics
            l1_weights = 1.0 - guided  # guided clips drop the L1 term
        size = mask_share(mask, X, l1_weights) if self.l1_weighting == "input" else mask_l1(mask, l1_weights)
        terms["loss_l1"] = self.hparams.reg_w_l1 * size
        return terms

    def clean_spectrogram(self, batch):
        """The fine-tuning's clean reference X_c of the batch's clips, (B, frames, F)."""
        clips = batch.sig[0].to(self.device)  # (B, T), before any WHAM! noise
        if self.ground_truth is not None:  # the target events alone, scaled like the clips
            clips, _ = self.ground_truth.sources(batch.id, clips)
        return self.preprocess(clips)[0]

    def guidance_loss(self, outputs, batch):
        """Fine-tuning: which clips are guided (B,) in {0, 1}, and g_w BCE towards
        the binarised clean spectrogram over them (the batch's mean)."""
        logits, X = outputs["logits"], outputs["X"]
        X_clean = self.clean_spectrogram(batch)
        n = min(logits.shape[1], X.shape[1])  # frames the decoder and the input both cover
        with torch.no_grad():
            similarity = spectrogram_similarity(X_clean, self.apply_mask(X, outputs["mask"]))
            guided = (similarity >= self.hparams.crosscor_th).float()  # (B,)
        target = binarised_reference(X_clean[:, :n], self.hparams.bin_th)
        bce = F.binary_cross_entropy_with_logits(logits[:, :n], target, reduction="none")
        return guided, self.hparams.g_w * (bce.flatten(1).mean(dim=1) * guided).mean()

    def interpreter_metrics(self, outputs, scores, generator=None):
        """Fine-tuning: the share of clips guided towards the clean reference."""
        if "guided" not in outputs:
            return {}
        return {"guided_share": outputs["guided"]}
