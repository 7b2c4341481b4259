"""Shared test fixtures: where the real sample clips are, a tiny synthetic set, and the
hand-made classifier of the known-answer tests."""

import contextlib
import logging
import types
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def root_logging_restored():
    """A recipe run in-process configures the root logger (SpeechBrain's `setup_logging`) with a
    console handler bound to the sys.stdout of that moment: under `capsys` a buffer closed when the
    test ends. Left in place, every later log record writes "--- Logging error ---" tracebacks into
    the next test's stderr. Each test gets the root handlers it started with back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def repo_root():
    """The repository root (recipes are run from here)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def esc50_sample_dir():
    """5 real ESC-50 clips (44.1 kHz, one per fold) with their meta/esc50.csv (read-only)."""
    path = SHARED / "data" / "esc50_sample"
    if not (path / "meta" / "esc50.csv").is_file():
        pytest.fail(f"{path} is missing: CI clones the project with ../shared beside it")
    return path


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    """A tiny synthetic ESC-50-layout dataset: 3 classes x 5 clips (one per fold), 1 s each."""
    from data_prep.synthetic_prepare import create_synthetic_dataset

    out = tmp_path_factory.mktemp("tiny_synthetic")
    return create_synthetic_dataset(out, classes=3, per_class=5, seed=7, duration_s=1.0)


HPARAMS = REPO_ROOT / "hparams"


def with_flag(argv, flag, value):
    """argv with `--flag value` set (replaced if present): yaml overrides can't repeat a key."""
    argv = list(argv)
    if flag in argv:
        argv[argv.index(flag) + 1] = str(value)
        return argv
    return argv + [flag, str(value)]
# CPU-sized overrides shared by the tiny end-to-end runs (1 s clips, tiny dims).
TINY = ["--signal_length_s", "1", "--batch_size", "4", "--number_of_epochs", "1"]
TINY_CLASSIFIER = ["--emb_dim", "8", "--lin_neurons", "8"]


@pytest.fixture(scope="session")
def tiny_pretrained(tiny_synthetic, tmp_path_factory):
    """A Conv2d classifier and an NMF dictionary (K 12) trained on `tiny_synthetic`.

    Real training through the recipes (1 epoch): the frozen parts the
    interpreter tests load. Returns the paths and the CLI overrides that point
    an interpreter yaml at them.
    """
    from recipes import train_classifier, train_nmf

    out = tmp_path_factory.mktemp("pretrained")
    data = ["--data_folder", str(tiny_synthetic)]
    train_classifier.main(
        [str(HPARAMS / "classifier_conv2d.yaml"), *data, "--output_folder", str(out / "classifier")]
        + TINY
        + TINY_CLASSIFIER
    )
    train_nmf.main(
        [str(HPARAMS / "nmf.yaml"), *data, "--output_folder", str(out / "nmf"), "--K", "12"]
        + ["--signal_length_s", "1", "--nmf_n_iter", "30", "--nmf_valid_n_iter", "30"]
    )
    overrides = [
        *data,
        "--classifier_folder",
        str(out / "classifier"),
        "--nmf_decoder_path",
        str(out / "nmf" / "nmf_decoder.ckpt"),
        *TINY,
        *TINY_CLASSIFIER,
        "--n_interpretations_to_save",
        "1",  # of the 3 valid / test clips: a PNG and its wavs cost about 0.3 s
        "--interpret_period",
        "1",
    ]
    return {
        "classifier": out / "classifier",
        "nmf": out / "nmf" / "nmf_decoder.ckpt",
        "overrides": overrides,
    }


@pytest.fixture(scope="session")
def tiny_l2i(tiny_pretrained, tmp_path_factory):
    """One epoch of L2I (conv2d yaml, K 12) on the tiny set: {"folder", "brain", "argv"}."""
    from recipes import train_l2i

    out = tmp_path_factory.mktemp("l2i") / "run"
    argv = [str(HPARAMS / "l2i_conv2d.yaml"), "--K", "12", "--lr", "0.001"] + tiny_pretrained["overrides"]
    brain = train_l2i.main(argv + ["--output_folder", str(out)])
    return {"folder": out, "brain": brain, "argv": argv}


def overrides_without_dictionary(tiny_pretrained):
    """The tiny overrides without --nmf_decoder_path (PIQ and L-MAC have no dictionary)."""
    overrides = list(tiny_pretrained["overrides"])
    nmf_at = overrides.index("--nmf_decoder_path")
    del overrides[nmf_at : nmf_at + 2]
    return overrides


def piq_argv(tiny_pretrained):
    """The tiny PIQ command line (K 30) on the tiny set, without --output_folder."""
    return [str(HPARAMS / "piq.yaml"), "--K", "30"] + overrides_without_dictionary(tiny_pretrained)


@pytest.fixture(scope="session")
def tiny_piq(tiny_pretrained, tmp_path_factory):
    """One epoch of PIQ (K 30) on the tiny set: {"folder", "brain", "argv"}."""
    from recipes import train_piq

    out = tmp_path_factory.mktemp("piq") / "run"
    argv = piq_argv(tiny_pretrained)
    brain = train_piq.main(argv + ["--output_folder", str(out)])
    return {"folder": out, "brain": brain, "argv": argv}


def lmac_argv(tiny_pretrained):
    """The tiny L-MAC command line (conv2d yaml) on the tiny set, without --output_folder."""
    return [str(HPARAMS / "lmac_conv2d.yaml"), "--lr", "0.001"] + overrides_without_dictionary(
        tiny_pretrained
    )


@pytest.fixture(scope="session")
def tiny_lmac(tiny_pretrained, tmp_path_factory):
    """One epoch of L-MAC (conv2d yaml) on the tiny set: {"folder", "brain", "argv"}."""
    from recipes import train_lmac

    out = tmp_path_factory.mktemp("lmac") / "run"
    argv = lmac_argv(tiny_pretrained)
    brain = train_lmac.main(argv + ["--output_folder", str(out)])
    return {"folder": out, "brain": brain, "argv": argv}


class ReadsTwoBins(torch.nn.Module):
    """A hand-made embedding model for known-answer tests: X (B, frames, F) -> (X[bin_a],
    X[bin_b]) (B, 2), the evidence of class 0 and of class 1 (`two_bin_head`)."""

    def __init__(self, bin_a=(1, 2), bin_b=(3, 0)):
        super().__init__()
        self.bin_a, self.bin_b = bin_a, bin_b

    def forward(self, X):
        return torch.stack([X[:, self.bin_a[0], self.bin_a[1]], X[:, self.bin_b[0], self.bin_b[1]]], dim=1)


def two_bin_head(silence_logit=1.0):
    """The classifier on `ReadsTwoBins`: logits = (2 X[bin a], 2 X[bin b], silence_logit), so
    class 2 wins when both bins are quiet."""
    head = torch.nn.Linear(2, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]]))
        head.bias.copy_(torch.tensor([0.0, 0.0, silence_logit]))
    return head


def bare_brain(brain_class=None, modules=None, **hparams):
    """A Brain of `brain_class` (InterpreterBrain by default) without its set-up, on the CPU:
    the hparams given over the two-bin classifier's (`ReadsTwoBins`, `two_bin_head`, no
    fbank, temperature 1), and `modules` (a ModuleDict; empty by default)."""
    if brain_class is None:
        from recipes.interpreters.base import InterpreterBrain

        brain_class = InterpreterBrain
    brain = object.__new__(brain_class)
    defaults = {
        "embedding_model": ReadsTwoBins(),
        "classifier": two_bin_head(),
        "compute_fbank": None,
        "use_melspectra": False,
        "classifier_temp": 1.0,
    }
    brain.hparams = types.SimpleNamespace(**{**defaults, **hparams})
    brain.modules = torch.nn.ModuleDict() if modules is None else modules
    brain.device = "cpu"
    brain.evaluation_ctx = contextlib.nullcontext()
    return brain


def minimal_interpreter_hparams(tmp_path, **extra):
    """The hparams InterpreterBrain's own __init__ needs, nothing pretrained (a flattening
    encoder, a two-class linear head, no WHAM!, no tensorboard, no lr schedule, a file train
    log under `tmp_path`); `extra` over them."""
    from speechbrain.utils.train_logger import FileTrainLogger

    return {
        "embedding_model": torch.nn.Flatten(),
        "classifier": torch.nn.Linear(1, 2),
        "use_pretrained": False,
        "add_wham_noise": False,
        "use_tensorboard": False,
        "lr_annealing": None,
        "train_logger": FileTrainLogger(str(tmp_path / "train_log.txt")),
        **extra,
    }
