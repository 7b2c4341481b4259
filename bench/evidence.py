"""Where a classifier's evidence lies on a set with exact sources, and how an interpreter fares there.

The figures of the README's "What holds on real recordings": on a data folder
made by `data_prep/collection_prepare.py` or `data_prep/synthetic_prepare.py`
(its `sources/` and `meta/ground_truth.csv`), for a trained interpreter's
inference folder (which holds its frozen classifier), on one fold:

- the classifier's accuracy on the mixtures and on the clean target events;
- the share of the targets' and the backgrounds' energy in the lowest `--low_bins` bins;
- how often its decision on the mixture changes when the lowest `--low_bins`
  bins are zeroed, on the mixtures and on the clean targets (is it reading a
  band that the backgrounds fill?), and how often the background alone gets
  the mixture's decision;
- the ground-truth mask's Fid-In, with and without that band added;
- the interpreter's SI-SDRi, GT precision / recall and Fid-In over all clips,
  and over the clips where the classifier is right and the ground-truth mask
  keeps its class (where the evidence is the target event);
- for L-MAC, its own training loss (in-term, out-term, size term) on its mask and
  on that mask cut to the event's frames: on a training fold (`--fold 1`), which
  of the two its objective prefers, i.e. whether what the mask holds outside the
  event is asked for by the loss or left by a decoder that did not fit it;
- each mask on the clips of other classes (`other_class_pairs`): how often the
  masked-in input keeps that clip's own class (a mask that does so on any clip is
  generic: it keeps the clip, not the clip's evidence) and how often it gets the
  class of the mask's own clip (the mask's shape alone carries the class);
- coarse reference masks made from the target alone (`coarse_masks`): the
  event's frames over all bins (a time gate), and those frames over the band
  that holds 95 % of the target's energy (a box): what a mask that only finds
  when the event is, or when and roughly where, reaches; and the interpreter's
  own mask cut to the event's frames: what the mask holds outside the event
  costs (SI-SDRi) and buys (Fid-In, also over the clips where the evidence is
  the target event).

The clips and sources are read as `eval.py` reads them (peak-normalised, the
sources scaled alike: `data_prep.ground_truth.GroundTruth`), so "all clips" is
`eval.py`'s figure.

    python bench/evidence.py --interpreter results/demo_real/lmac/inference \
        --data_folder results/debian_sounds/dataset

Not a test: nothing here asserts.

Authors
 * audio-interpret contributors 2026
"""

import argparse
import csv
import os
import sys

import speechbrain as sb
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_prep.audio import load_clip  # noqa: E402
from data_prep.ground_truth import GroundTruth  # noqa: E402
from recipes.core.pipeline import floor_mask  # noqa: E402
from recipes.core.startup import top_level_scalars  # noqa: E402
from recipes.evaluation.metrics import ground_truth_metrics, spectrogram_energy, target_region  # noqa: E402
from recipes.interpreters.inference import AudioInterpreter  # noqa: E402


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interpreter", required=True, help="an inference folder (or its run's folder)")
    parser.add_argument("--data_folder", required=True, help="a set with sources/ and meta/ground_truth.csv")
    parser.add_argument("--fold", type=int, default=5, help="the fold to read (default: the test fold, 5)")
    parser.add_argument("--low_bins", type=int, default=25, help="the low band's STFT bins (25: 0-390 Hz at 16 kHz)")
    parser.add_argument(
        "--out_loss", default=None, help="L-MAC: the out-term's loss it was trained with (default: its run's yaml)"
    )
    parser.add_argument(
        "--l1_weighting", default=None, help="L-MAC: the size term it was trained with (default: its run's yaml)"
    )
    return parser.parse_args(argv)


def training_setting(folder, key, given=None):
    """A top-level `key: value` of the training run's yaml (`folder`/hyperparams.yaml, or the
    one of the folder above: an inference folder sits in its run's), unless `given`.

    The exported inference yaml keeps only what inference needs; the loss's
    settings are in the run's own yaml.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     with open(os.path.join(run, "hyperparams.yaml"), "w") as fout:
    ...         _ = fout.write("l_out_w: 0.2\\nout_loss: not_class  # why\\n")
    ...     os.mkdir(os.path.join(run, "inference"))
    ...     training_setting(os.path.join(run, "inference"), "out_loss")
    'not_class'
    >>> training_setting("no/such/run", "out_loss", given="neg_ce")
    'neg_ce'
    """
    if given is not None:
        return given
    for yaml_file in (os.path.join(folder, "hyperparams.yaml"), os.path.join(folder, os.pardir, "hyperparams.yaml")):
        if not os.path.isfile(yaml_file):
            continue
        settings = top_level_scalars(yaml_file)
        if key in settings:
            return settings[key]
    raise SystemExit(f"{folder}: no {key} in its run's hyperparams.yaml: give --{key} (what L-MAC was trained with).")


#: A frame belongs to the event when its target energy is within this factor of the loudest frame's.
EVENT_FRAME_SHARE = 1e-3
#: The box's band: the fewest bins holding this share of the target's energy.
BAND_ENERGY_SHARE = 0.95


def coarse_masks(X_target):
    """{name: mask (B, frames, F)} from the clean target's spectrogram: the event's frames
    (all bins) and the event's frames x the band holding BAND_ENERGY_SHARE of its energy.

    Example
    -------
    >>> X_target = torch.zeros(1, 4, 3)  # log1p |STFT|: an event in frames 1-2, mostly in bin 0
    >>> X_target[0, 1:3, 0], X_target[0, 1:3, 1] = 5.0, 0.1
    >>> masks = coarse_masks(X_target)
    >>> masks["the event's frames, all bins"][0, :, 0].tolist()
    [0.0, 1.0, 1.0, 0.0]
    >>> masks["the event's frames x its band"][0].tolist()
    [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    energy = spectrogram_energy(X_target).float()  # (B, frames, F)
    per_frame = energy.sum(dim=2)  # (B, frames)
    frames = (per_frame > EVENT_FRAME_SHARE * per_frame.amax(dim=1, keepdim=True)).float()
    per_bin = energy.sum(dim=1)  # (B, F)
    ranked, order = per_bin.sort(dim=1, descending=True)
    before = (ranked.cumsum(dim=1) - ranked) / per_bin.sum(dim=1, keepdim=True).clamp_min(1e-30)
    band = torch.zeros_like(per_bin).scatter(1, order, (before < BAND_ENERGY_SHARE).float())
    span = frames[:, :, None].expand_as(energy)
    return {"the event's frames, all bins": span.contiguous(), "the event's frames x its band": span * band[:, None, :]}


def share_of(flags, chosen=None):
    """The share of `flags` among the `chosen` clips (all without `chosen`), as a 3-decimal
    string ("-" for none).

    Example
    -------
    >>> flags, chosen = torch.tensor([True, False, True]), torch.tensor([True, True, False])
    >>> share_of(flags, chosen), share_of(flags, torch.zeros(3, dtype=torch.bool)), share_of(flags)
    ('0.500', '-', '0.667')
    """
    if chosen is None:
        chosen = torch.ones_like(flags, dtype=torch.bool)
    return f"{flags[chosen].float().mean():.3f}" if chosen.any() else "-"


def other_class_pairs(classes, n_draws=5, seed=0):
    """(clip, mask's clip) index pairs (P,), (P,) of clips of different classes, from
    `n_draws` seeded random permutations of the clips.

    Example
    -------
    >>> classes = torch.tensor([0, 0, 1, 2])
    >>> clip, owner = other_class_pairs(classes, n_draws=20)
    >>> bool((classes[clip] != classes[owner]).all()), len(clip) > 20
    (True, True)
    """
    generator = torch.Generator().manual_seed(seed)
    clip = torch.arange(len(classes)).repeat(n_draws)
    owner = torch.cat([torch.randperm(len(classes), generator=generator) for _ in range(n_draws)])
    other = classes[clip] != classes[owner]
    return clip[other], owner[other]


def share(flags):
    return f"{100 * flags.float().mean().item():.1f} %"


def main(argv=None):
    args = parse_arguments(argv)
    interpreter = AudioInterpreter.from_hparams(source=args.interpreter)
    brain = interpreter.brain
    with open(os.path.join(args.data_folder, "meta", "esc50.csv"), encoding="utf-8") as fin:
        rows = [row for row in csv.DictReader(fin) if int(row["fold"]) == args.fold]
    if not rows:
        raise SystemExit(f"{args.data_folder}: no clip in fold {args.fold}.")
    ids = [row["filename"].rsplit(".", 1)[0] for row in rows]
    rate, n_samples = interpreter.sample_rate, interpreter.n_samples
    clips = torch.stack([load_clip(os.path.join(args.data_folder, "audio", row["filename"]), rate, n_samples) for row in rows])
    target, background = GroundTruth(args.data_folder, rate, n_samples).sources(ids, clips)
    labels = torch.tensor([interpreter.label_encoder.lab2ind[row["category"]] for row in rows])

    def decision(X):
        return brain.classify(X)[0].argmax(dim=1)

    def without_low_band(X):
        kept = torch.ones_like(X)
        kept[..., : args.low_bins] = 0
        return brain.apply_mask(X, kept)

    out = brain.explain(clips)
    X, classes = out["X"], out["classes"]
    X_target = brain.preprocess(target)[0]
    region = target_region(target, background, brain.hparams.compute_stft)
    with_band = region.clone()
    with_band[..., : args.low_bins] = 1
    gt_keeps = decision(brain.apply_mask(X, region)) == classes
    right = classes == labels
    target_decision = decision(X_target)

    print(f"# {args.interpreter} on {args.data_folder}, fold {args.fold} ({len(rows)} clips)\n")
    print(f"- classifier accuracy: mixtures {share(right)}, clean targets {share(target_decision == labels)}")
    for name, source in (("target events", X_target), ("backgrounds", brain.preprocess(background)[0])):
        energy = spectrogram_energy(source)
        low = energy[..., : args.low_bins].sum() / energy.sum()
        print(f"- bins 0-{args.low_bins - 1} hold {100 * low.item():.1f} % of the {name}' energy")
    print(
        f"- bins 0-{args.low_bins - 1} zeroed: the decision changes on {share(decision(without_low_band(X)) != classes)} "
        f"of the mixtures, {share(decision(without_low_band(X_target)) != target_decision)} of the clean targets"
    )
    print(f"- the background alone gets the mixture's decision on {share(decision(brain.preprocess(background)[0]) == classes)}")
    print(
        f"- ground-truth mask Fid-In {share(gt_keeps)}; with bins 0-{args.low_bins - 1} added "
        f"{share(decision(brain.apply_mask(X, with_band)) == classes)}\n"
    )
    scores = ground_truth_metrics(out["X_int"], X, out["audio"], clips, target, region)
    keeps = decision(out["X_int"]) == classes
    good = right & gt_keeps  # the clips whose evidence is the target event
    print(f"| {interpreter.method}: clips | n | SI-SDRi dB | GT precision | GT recall | Fid-In |")
    print("|---|---|---|---|---|---|")
    for name, chosen in (
        ("all", torch.ones_like(right)),
        ("the classifier right and the ground truth keeping its class", good),
        ("the classifier wrong", ~right),
    ):
        if chosen.any():
            print(
                f"| {name} | {int(chosen.sum())} | {scores['si_sdri'][chosen].nanmean():+.2f} | "
                f"{scores['gt_precision'][chosen].nanmean():.3f} | {scores['gt_recall'][chosen].nanmean():.3f} | "
                f"{share_of(keeps, chosen)} |"
            )

    print(
        "\n| reference mask | mean mask | SI-SDRi dB | GT precision | GT recall | Fid-In "
        f"| Fid-In on the {int(good.sum())} clips the classifier gets right, the ground truth keeping its class |"
    )
    print("|---|---|---|---|---|---|---|")
    coarse = coarse_masks(X_target)
    references = {
        **coarse,
        "ground truth": region,
        # no classifier: what rises above each frequency's median over the clip's frames
        "above the clip's floor (no classifier)": floor_mask(X, brain.mask_domain),
        # the interpreter's own mask cut to the event's frames: what its mask holds
        # outside the event costs (SI-SDRi) and buys (Fid-In)
        f"{interpreter.method}'s mask x the event's frames": out["mask"] * coarse["the event's frames, all bins"],
    }
    kept_by_mask = {}
    for name, mask in references.items():
        X_int = brain.apply_mask(X, mask)
        audio = brain.invert(X_int, out["X_stft"], clips.shape[-1])
        scores = ground_truth_metrics(X_int, X, audio, clips, target, region)
        kept = decision(X_int) == classes
        kept_by_mask[name] = kept
        print(
            f"| {name} | {mask.mean():.3f} | {scores['si_sdri'].nanmean():+.2f} | "
            f"{scores['gt_precision'].nanmean():.3f} | {scores['gt_recall'].nanmean():.3f} | "
            f"{share_of(kept)} | {share_of(kept, good)} |"
        )
    clip, owner = other_class_pairs(classes)
    print(
        "\n| mask | on its own clip: the class kept | on a clip of another class "
        f"({len(clip)} pairs): that clip's class kept | ...: the class of the mask's own clip |"
    )
    print("|---|---|---|---|")
    for name, mask, kept in ((interpreter.method, out["mask"], keeps), ("ground truth", region, gt_keeps)):
        # no pair when every clip gets one class: "-" (an empty batch crashes the classifier)
        swapped = decision(brain.apply_mask(X[clip], mask[owner])) if len(clip) else classes[clip]
        print(
            f"| {name} | {share_of(kept)} | {share_of(swapped == classes[clip])} "
            f"| {share_of(swapped == classes[owner])} |"
        )
    if interpreter.method == "LMAC":
        cut = f"{interpreter.method}'s mask x the event's frames"
        masks = {"its mask": (out["mask"], keeps), "its mask x the event's frames": (references[cut], kept_by_mask[cut])}
        lmac_loss_table(args, brain, X, classes, masks)


def lmac_loss_table(args, brain, X, classes, masks):
    """L-MAC's training loss (its Brain's `interpretation_loss`), term by term, for each
    mask of `masks` ({name: (mask, whether its masked-in input keeps the class (B,))})."""
    # the exported inference yaml leaves out the loss's settings: those of the training run
    brain.hparams.out_loss = training_setting(args.interpreter, "out_loss", args.out_loss)
    brain.hparams.l1_weighting = training_setting(args.interpreter, "l1_weighting", args.l1_weighting)
    print(
        f"\n| L-MAC's loss (out_loss {brain.hparams.out_loss}, l1_weighting {brain.hparams.l1_weighting}; "
        f"fold {args.fold}) | in-term | out-term | size term | loss | keeps the class |"
    )
    print("|---|---|---|---|---|---|")
    for name, (mask, keeps) in masks.items():
        with torch.no_grad():
            terms = brain.interpretation_loss({"X": X, "mask": mask, "classes": classes}, None, sb.Stage.TEST)
        parts = [terms[key] for key in ("loss_in", "loss_out", "loss_l1")]
        values = " | ".join(f"{float(part):.3f}" for part in (*parts, sum(parts)))
        print(f"| {name} | {values} | {share_of(keeps)} |")


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as error:  # a path or folder given wrong: one line
        sys.exit(f"bench/evidence.py: {error}")
