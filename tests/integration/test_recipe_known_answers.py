"""The recipes' Brains on answers known in advance (issue 25), with the tiny session runs.

- PIQ inside the recipe: each clip is decoded with its own class's codebook partition
  (plus the shared keys), whatever the other clips of the batch are;
- resume: a run started again on its folder continues from the weights it saved.
"""

import shutil

import pytest
import speechbrain as sb
import torch
import yaml
from conftest import HPARAMS, with_flag

from models.PIQ import partition_of_codes
from recipes.core.brains import build_brain
from recipes.core.run_guard import LOCK_FILE
from recipes.core.startup import prepare_run
from recipes.interpreters.piq import PIQ
from recipes.interpreters.training import fit_interpreter


def codes_of(z_q, codebook):
    """The codebook entry of each quantized vector of z_q (B, D, h, w): (B, h * w), by exact match."""
    vectors = z_q.permute(0, 2, 3, 1).reshape(z_q.shape[0], -1, z_q.shape[1])  # (B, h * w, D)
    entries = codebook.unsqueeze(0).expand(z_q.shape[0], -1, -1)  # (B, K, D)
    exact = "donot_use_mm_for_euclid_dist"
    distances = torch.cdist(vectors, entries, compute_mode=exact)  # (B, h * w, K)
    nearest = distances.min(dim=2)
    assert nearest.values.max() < 1e-4  # each vector is a codebook entry (to float rounding)
    return nearest.indices


def test_piq_decodes_each_clip_with_its_own_class_partition(tiny_piq):
    """Through PIQ.interpret (the recipe's Brain): every quantized vector of a clip is a code
    of its class's partition or a shared key, clip by clip in a batch of three classes."""
    brain = tiny_piq["brain"]
    hparams = brain.hparams
    # the class owning each code (K,), -1 for the shared keys
    owner = partition_of_codes(hparams.K, hparams.out_n_neurons, hparams.shared_keys)
    codebook = brain.unwrapped("psi").codebook.embedding.weight.detach()  # (K, D)
    wavs = 0.2 * torch.randn(3, 16000, generator=torch.Generator().manual_seed(0))
    X, _ = brain.preprocess(wavs)
    _, representations = brain.classify(X)
    saved_codes = brain.codes_used
    brain.modules.eval()
    try:
        with torch.no_grad():
            alone = {  # every clip as class c
                c: brain.interpret(X, representations, torch.full((3,), c), sb.Stage.TEST)["z_q"]
                for c in range(hparams.out_n_neurons)
            }
            mixed_classes = torch.tensor([2, 0, 1])
            mixed = brain.interpret(X, representations, mixed_classes, sb.Stage.TEST)["z_q"]
    finally:
        brain.codes_used = saved_codes
    for c, z_q in alone.items():
        codes = owner[codes_of(z_q, codebook)]  # (3, h * w) the owners of the chosen codes
        assert ((codes == c) | (codes == -1)).all(), c
        assert (codes == c).any(dim=1).all(), c  # its own partition, not the shared keys alone
    codes = owner[codes_of(mixed, codebook)]
    for i, c in enumerate(mixed_classes.tolist()):
        assert ((codes[i] == c) | (codes[i] == -1)).all() and (codes[i] == c).any(), i
        assert torch.equal(mixed[i], alone[c][i]), i  # as if the batch were all its class
    assert not torch.equal(alone[0], alone[1])  # the partition decides the codes


def test_a_resumed_run_continues_from_the_saved_weights(tiny_piq, tmp_path):
    """The same command on the folder of a finished 1-epoch run: the Brain (freshly built,
    with its own random initialisation) resumes the checkpoint's interpreter weights."""
    folder = tmp_path / "resumed"
    shutil.copytree(tiny_piq["folder"], folder, ignore=shutil.ignore_patterns(LOCK_FILE))
    (checkpoint,) = (folder / "save").glob("CKPT+*")
    # the checkpoint holds the interpreter's weights
    assert (checkpoint / "psi_model.ckpt").is_file()
    saved = torch.load(checkpoint / "psi_model.ckpt", weights_only=True)
    argv = with_flag(tiny_piq["argv"], "--seed", 99)  # another initialisation than the run's
    hparams, run_opts, _, _, datasets, label_encoder = prepare_run(
        argv + ["--output_folder", str(folder)]
    )
    brain = build_brain(PIQ, hparams, run_opts, label_encoder=label_encoder)
    fresh = {name: value.clone() for name, value in brain.unwrapped("psi").state_dict().items()}
    assert any(not torch.equal(fresh[name], saved[name]) for name in saved)  # the test can fail
    fit_interpreter(brain, hparams, datasets)  # epoch 1 of 1 is done: recovery, no training
    assert hparams["epoch_counter"].current == 1
    resumed = brain.unwrapped("psi").state_dict()
    assert saved.keys() == resumed.keys()
    for name, value in saved.items():
        assert torch.equal(resumed[name].cpu(), value), name


class _TagsAsText(yaml.SafeLoader):
    """A yaml loader that reads every hyperpyyaml tag (!new:, !ref, ...) as its plain value."""


_TagsAsText.add_multi_constructor(
    "!",
    lambda loader, tag, node: {
        yaml.ScalarNode: loader.construct_scalar,
        yaml.SequenceNode: loader.construct_sequence,
        yaml.MappingNode: loader.construct_mapping,
    }[type(node)](node),
)


@pytest.mark.parametrize("name", ["l2i_conv2d", "l2i_cnn14", "lmac_conv2d", "lmac_cnn14", "piq"])
def test_every_trained_module_is_restored_on_resume(name):
    """The resume test above runs PIQ; for every interpreter yaml, each trained module (L2I's
    psi and Theta, ...) is a recoverable of the checkpointer, so a resumed run loads it too."""
    with open(HPARAMS / f"{name}.yaml") as fin:
        hparams = yaml.load(fin, Loader=_TagsAsText)
    recoverables = set(hparams["checkpointer"]["recoverables"].values())
    modules = set(hparams["modules"].values())
    assert modules and modules <= recoverables, modules - recoverables
