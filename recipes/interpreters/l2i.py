"""The L2I (Listen to Interpret) interpreter Brain (`L2I`) and its helpers.

Trained by `recipes/train_l2i.py`.

psi maps the classifier's hidden representations to NMF time activations H
(B, K, frames) for a pretrained, frozen dictionary W (F, K); Theta pools H over
time and mimics the classifier. The loss is

    L = L_FID + alpha * ||X - W H||^2 + beta * ||H||_1

(means over elements), with L_FID the cross-entropy of Theta's output against
the classifier's softmax at temperature `classifier_temp`. The interpretation
keeps the relevant components: r_k = z_k theta_{c,k} / max_l |z_l theta_{c,l}|
(z = Theta's pooled activations, c = the classifier's class; with
`relevance_centered`, theta's weights centred over the classes), L = {k: r_k >
relevance_th}, mask = W_L H_L / (W H + eps), X_int = mask * X, inverted with
the input phase. For the first `fidelity_warmup_epochs` epochs L_FID trains
Theta only (psi's activations detached in it); the yamls explain why.

Authors
 * audio-interpret contributors 2026
"""

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.utils.logger import get_logger

from data_prep.audio import EPS
from recipes.core.brains import load_state_dict_file
from recipes.core.pipeline import floor_mask
from recipes.evaluation import metrics
from recipes.interpreters.base import KEEP_CLASS_EXPONENTS, InterpreterBrain

logger = get_logger(__name__)


def activations_from_psi(psi_output, n_frames):
    """NMF activations (B, K, n_frames) from any L2I psi's output.

    PsiOptimized returns ((B, 1, T, K), adapted); the CNN14 psis return
    (B, K, T). The time axis is resampled (linearly, which keeps H >= 0) to the
    input's frame count so that W H lines up with X.
    """
    if isinstance(psi_output, (tuple, list)):
        psi_output = psi_output[0]
    if psi_output.dim() == 4:  # (B, 1, T, K) -> (B, K, T)
        psi_output = psi_output.squeeze(1).transpose(1, 2)
    if psi_output.shape[-1] != n_frames:
        psi_output = F.interpolate(psi_output, size=n_frames, mode="linear", align_corners=False)
    return psi_output


def soft_mask(W, H, selected, full=None):
    """mask = W_L H_L / (W H + eps), (B, frames, F), with `selected` (B, K) in {0, 1}.

    `full`, when given, is W H (B, frames, F) already computed.

    Example
    -------
    >>> W, H = torch.rand(5, 3), torch.rand(1, 3, 4)
    >>> m = soft_mask(W, H, torch.ones(1, 3))
    >>> bool(torch.allclose(m, torch.ones(1, 4, 5), atol=1e-5))
    True
    """
    if full is None:
        full = torch.einsum("fk,bkt->btf", W, H)  # (B, frames, F)
    kept = torch.einsum("fk,bkt->btf", W, H * selected.unsqueeze(-1))
    return kept / (full + EPS)


def random_selection(selected, generator=None):
    """As many components as `selected` picks per clip, drawn among the others.

    Arguments
    ---------
    selected : torch.Tensor
        (B, K) in {0, 1}.

    Returns
    -------
    torch.Tensor
        (B, K) in {0, 1}, disjoint from `selected`, with the same row sums
        (fewer when there are not enough other components).
    """
    noise = torch.rand(selected.shape, generator=generator, device="cpu").to(selected.device)
    noise = noise.masked_fill(selected.bool(), 2.0)  # selected ones rank last
    ranks = noise.argsort(dim=1).argsort(dim=1)  # rank of each component, (B, K)
    n_selected = selected.sum(dim=1, keepdim=True)
    n_others = selected.shape[1] - n_selected
    return (ranks < torch.minimum(n_selected, n_others)).float()


def oracle_selection(W, H, X, region, full=None):
    """The components whose soft mask best finds the target: L2I's ceiling, (B, K) in {0, 1}.

    The L2I mask of a selection S keeps X_int = sum_{k in S} (W_k H_k / W H) X,
    so the energy that S keeps, inside the target region R and in all, is a sum
    over its components: in_k = sum(W_k H_k / WH * X * R), all_k = the same
    without R. The selection that maximises the F1 of the energy precision
    (sum in / sum all) and recall (sum in / sum(X R)), F1 = 2 sum in / (sum all +
    sum(X R)), is a prefix of the components ranked by their share in_k / all_k
    (a ratio of sums with a positive constant: a component belongs to the best
    set exactly when its share beats the set's value). No relevance and no
    classifier: what the decomposition H allows at best, given the ground truth.
    Components with no energy are never chosen; a clip whose region holds no
    energy gets none.

    Arguments
    ---------
    W : torch.Tensor
        The dictionary (F, K).
    H : torch.Tensor
        The activations (B, K, frames).
    X : torch.Tensor
        The clips' log1p magnitude (B, frames, F).
    region : torch.Tensor
        The target region (B, frames, F) in {0, 1} (`metrics.target_region`).
    full : torch.Tensor, optional
        W H (B, frames, F) when already computed.

    Example
    -------
    >>> W = torch.eye(2)  # component 0 is bin 0, component 1 bin 1
    >>> H = torch.ones(1, 2, 3)
    >>> region = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]])  # the target: bin 0, 2 frames
    >>> oracle_selection(W, H, torch.ones(1, 3, 2), region)
    tensor([[1., 0.]])
    """
    if full is None:
        full = torch.einsum("fk,bkt->btf", W, H)
    ratio = X / (full + EPS)  # (B, frames, F): X per unit of W H
    # sum_{t,f} W_fk H_kt ratio_tf as two matmuls, not one (B, K, frames, F) product
    energy_all = (H * (ratio @ W).transpose(1, 2)).sum(dim=2)  # (B, K)
    energy_in = (H * ((ratio * region) @ W).transpose(1, 2)).sum(dim=2)
    share = energy_in / energy_all.clamp(min=EPS)
    order = share.argsort(dim=1, descending=True)  # (B, K)
    kept_in = energy_in.gather(1, order).cumsum(dim=1)  # each prefix's energies
    kept_all = energy_all.gather(1, order).cumsum(dim=1)
    region_energy = (X * region).flatten(1).sum(dim=1, keepdim=True)  # (B, 1)
    f1 = 2 * kept_in / (kept_all + region_energy).clamp(min=EPS)  # (B, K)
    best = f1.argmax(dim=1, keepdim=True)  # the best prefix's last position
    in_prefix = torch.arange(share.shape[1], device=share.device).expand_as(order) <= best
    useful = (f1.gather(1, best) > 0) & (energy_all.gather(1, order) > 0)
    return torch.zeros_like(share).scatter_(1, order, (in_prefix & useful).float())


class L2I(InterpreterBrain):
    """Listen to Interpret on the InterpreterBrain base: psi + Theta over a frozen NMF W."""

    best_key = "theta_top1"
    median_stats = ("ff_components", "ff_random")
    has_oracle = True
    inference_keys = ("relevance_th", "relevance_centered", "theta_pooling")
    inference_frozen = {"nmf_decoder": "nmf_decoder_path"}

    def load_frozen(self):
        """Checks the threshold (and, for training, the loss settings), then loads the NMF
        dictionary, checking it against K and the STFT bins."""
        th = self.hparams.relevance_th
        if not -1 < th < 1:  # r_k lies in [-1, 1]
            logger.warning(
                "relevance_th = %s: a component's relevance lies in [-1, 1] (its vote over the largest "
                "one's), so %s (the reference: 0.2).", th,
                "no component passes: every interpretation is silence" if th >= 1
                else "every component passes: the interpretation is the whole NMF reconstruction",
            )
        if getattr(self, "checkpointer", None) is not None:  # training reads the loss's settings
            for key in ("alpha", "beta", "fidelity_warmup_epochs"):
                if getattr(self.hparams, key) < 0:
                    raise ValueError(f"{key} = {getattr(self.hparams, key)}: it must be >= 0.")
        decoder = self.hparams.nmf_decoder
        path, what = self.hparams.nmf_decoder_path, "NMF dictionary (nmf_decoder_path)"
        n_freq = self.hparams.n_fft // 2 + 1
        def wrong_size(shape):  # named with the flag to give, not as a state-dict mismatch
            return ValueError(
                f"The NMF dictionary {path} is {tuple(shape)} (n_fft {2 * (shape[0] - 1)}, K {shape[1]}) "
                f"but the recipe needs ({n_freq} bins, K={self.hparams.K}): give --K {shape[1]}, or "
                "learn a dictionary with recipes/train_nmf.py at the same n_fft and K."
            )

        try:
            self.load_frozen_state(decoder, path, what)
        except ValueError:  # the yaml built another size: read the file's
            saved = load_state_dict_file(path, what).get("W")
            if isinstance(saved, torch.Tensor) and saved.dim() == 2 and saved.shape != (n_freq, self.hparams.K):
                raise wrong_size(saved.shape) from None
            raise
        if decoder.return_W().shape != (n_freq, self.hparams.K):  # a decoder built of another size
            raise wrong_size(decoder.return_W().shape)
        W = decoder.return_W()
        self.W = W.detach().to(self.device)  # (F, K), fixed

    def interpret(self, X, representations, classes, stage):
        H = activations_from_psi(self.modules.psi(representations), X.shape[1])  # (B, K, frames)
        if H.shape[1] != self.W.shape[1]:
            raise ValueError(
                f"psi produces {H.shape[1]} components but the NMF dictionary has {self.W.shape[1]}: "
                "psi's K and the dictionary's K must be the same yaml key K."
            )
        if stage == sb.Stage.TRAIN and self.in_fidelity_warmup():
            # L_FID trains Theta only: psi learns the NMF decomposition first
            theta_out = self.modules.theta(H.detach())  # (B, N) probabilities
        else:
            theta_out = self.modules.theta(H)  # (B, N) probabilities
        # W H once: the NMF loss, the mask's denominator, the metrics
        outputs = {"H": H, "theta_out": theta_out, "WH": self.reconstruction(H)}
        if stage != sb.Stage.TRAIN:
            theta = self.unwrapped("theta")
            r = theta.relevance(H, classes, centered=self.hparams.relevance_centered)  # (B, K), in [-1, 1]
            selected = (r > self.hparams.relevance_th).float()  # (B, K)
            mask = soft_mask(self.W, H, selected, full=outputs["WH"])
            outputs.update(relevance=r, selected=selected, mask=mask)
        return outputs

    def widened_masks(self, outputs):
        """`keep_class`'s candidates for L2I: the soft masks of the components with relevance
        above thresholds going down from relevance_th towards -1 in equal steps, then all
        components: (S, B, frames, F), the first the interpretation itself."""
        th, r, H = self.hparams.relevance_th, outputs["relevance"], outputs["H"]
        n_steps = len(KEEP_CLASS_EXPONENTS) - 1
        top = max(th, -1.0)  # below -1 every component passes already: the ladder only widens
        selections = [(r > th).float()]  # the interpretation itself
        selections += [(r > top - j * (top + 1) / n_steps).float() for j in range(1, n_steps)]
        selections.append(torch.ones_like(r))
        outputs["ladder_selected"] = torch.stack(selections)  # (S, B, K), for widening_chosen
        return torch.stack([soft_mask(self.W, H, sel, full=outputs["WH"]) for sel in selections])

    def widening_chosen(self, outputs, step):
        """The selected components are those of the chosen rung (the metrics, component_audio)."""
        ladder = outputs.pop("ladder_selected")
        outputs["selected"] = ladder[step.clamp(min=0), torch.arange(ladder.shape[1], device=ladder.device)]

    def oracle_mask(self, outputs, region):
        """L2I's mask with the components `oracle_selection` picks from the ground truth."""
        H, full = outputs["H"].float(), outputs["WH"].float()  # float32 also after bf16 autocast
        return soft_mask(self.W, H, oracle_selection(self.W, H, outputs["X"], region, full=full), full=full)

    def in_fidelity_warmup(self):
        """True during the first `fidelity_warmup_epochs` epochs (see the yaml)."""
        return self.hparams.epoch_counter.current <= self.hparams.fidelity_warmup_epochs

    def reconstruction(self, H):
        """W H as (B, frames, F)."""
        return torch.einsum("fk,bkt->btf", self.W, H)

    def interpretation_loss(self, outputs, batch, stage):
        target = self.class_probabilities(outputs["scores"])  # (B, N)
        fidelity = -(target * torch.log(outputs["theta_out"] + EPS)).sum(dim=1).mean()
        nmf = ((outputs["X"] - outputs["WH"]) ** 2).mean()
        return {
            "loss_fid": fidelity,
            "loss_nmf": self.hparams.alpha * nmf,
            "loss_l1": self.hparams.beta * outputs["H"].abs().mean(),
        }

    def interpreter_metrics(self, outputs, scores, generator=None):
        """Theta's top-k fidelity, the NMF error, and the paper's faithfulness (its random
        components drawn from `generator`)."""
        values = {}
        classes, X = outputs["classes"], outputs["X"]
        for k in (1, 3, 5):
            values[f"theta_top{k}"] = metrics.topk_fidelity(outputs["theta_out"], classes, k)
        residual = X - outputs["WH"]
        relative = residual.flatten(1).norm(dim=1) / X.flatten(1).norm(dim=1).clamp(min=EPS)  # (B,)
        # ||X|| ~ 0 on a silent clip: the relative error is undefined (NaN), not huge
        values["nmf_rel_error"] = torch.where(metrics.silent_spectrogram(X), torch.nan, relative)
        values["n_selected"] = outputs["selected"].sum(dim=1)
        # The paper's faithfulness: logit drop when the relevant components are
        # removed (X - X_int, already classified by the base), next to removing
        # as many random ones (medians over clips).
        random_mask = soft_mask(
            self.W, outputs["H"], random_selection(outputs["selected"], generator), full=outputs["WH"]
        )
        if outputs.get("finish") is not None:  # removed as the interpretation is (e.g. above the floor only)
            random_mask = outputs["finish"](random_mask)
        scores_random, _ = self.classify(self.apply_mask(X, 1 - random_mask))

        def logit_c(scores):
            return (scores / self.hparams.classifier_temp).gather(1, classes.view(-1, 1)).squeeze(1)

        values["ff_components"] = logit_c(outputs["scores"]) - logit_c(scores["removed"])
        values["ff_random"] = logit_c(outputs["scores"]) - logit_c(scores_random)
        return values

    @torch.no_grad()
    def component_audio(self, wav):
        """Algorithm 2 for one clip: the audio of each selected component.

        Arguments
        ---------
        wav : torch.Tensor
            One waveform (T,) or (1, T).

        Returns
        -------
        components : list of (int, float, torch.Tensor)
            (component index k, relevance r_k, waveform x_k (T,)) for k in L.
        outputs : dict
            `explain()`'s outputs for the clip.
        """
        wav = wav.reshape(1, -1)
        outputs = self.explain(wav)
        chosen = outputs["selected"][0].nonzero().flatten()  # (L,)
        if chosen.numel() == 0:
            return [], outputs
        H = outputs["H"][0, chosen]  # (L, frames)
        X = outputs["X"][0]  # (frames, F)
        full = outputs["WH"][0]  # (frames, F)
        masks = torch.einsum("fl,lt->ltf", self.W[:, chosen], H) / (full + EPS)  # (L, frames, F)
        if self.mask_above_floor:  # as the interpretation's mask: each share above the floor
            masks = masks * floor_mask(outputs["X"], self.mask_domain)
        X_stft = outputs["X_stft"].expand(len(chosen), *outputs["X_stft"].shape[1:])
        audio = self.interpretation_audio(X, X_stft, masks, wav.shape[-1])  # (L, T)
        r = outputs["relevance"][0, chosen]
        return [(int(k), float(rk), a) for k, rk, a in zip(chosen, r, audio)], outputs
