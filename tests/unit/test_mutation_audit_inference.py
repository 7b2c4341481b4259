"""Mutation audit of `AudioInterpreter`'s own bookkeeping (recipes/interpreters/inference.py)
and of the transformer backbones (models/transformer_backbones.py): each test guards a line
whose error would silently change the class or the interpretation a user gets.

The interpreter's methods run on a stand-in object (its sizes and a Brain whose `explain`
returns known tensors), so no trained run is needed; expected values are computed by hand.
"""

import types

import pytest
import torch

from recipes.interpreters.inference import AudioInterpreter


class FakeBrain:
    """`explain` returns fixed outputs; it records the clips it was given."""

    def __init__(self, outputs):
        self.outputs = outputs
        self.seen = None

    def explain(self, clips):
        self.seen = clips
        return self.outputs

    def class_name(self, index):
        return ["dog", "rain", "cat"][int(index)]


def interpreter(sample_rate=16000, n_samples=16000, brain=None):
    """An object with AudioInterpreter's methods and the attributes they read."""
    fake = types.SimpleNamespace(device="cpu", sample_rate=sample_rate, n_samples=n_samples, brain=brain)
    for name in ("prepare_batch", "_crop_warning", "_outputs", "interpret_batch"):
        setattr(fake, name, types.MethodType(getattr(AudioInterpreter, name), fake))
    fake._finite_samples = AudioInterpreter._finite_samples  # a staticmethod
    return fake


def test_channels_are_averaged_not_the_first_one_kept():
    """(B, T, C): the mean over channels. Left 1, right -1 on the first half, left 0.5, right 0.5
    on the second: the downmix is 0 then 0.5, normalised to 0 then 1."""
    wav = torch.zeros(1, 16000, 2)
    wav[0, :8000, 0], wav[0, :8000, 1] = 1.0, -1.0
    wav[0, 8000:] = 0.5
    clips, _ = interpreter().prepare_batch(wav)
    assert torch.equal(clips[0, :8000], torch.zeros(8000))
    assert torch.equal(clips[0, 8000:], torch.ones(8000))


def test_the_quiet_warning_reads_the_peak_of_the_explained_part_only():
    """A clip whose loud part is cropped away: the first 16000 samples peak at 1e-5 (-100 dBFS),
    so they are explained as noise, whatever the cropped rest holds."""
    wav = torch.full((1, 24000), 1e-5)
    wav[0, 20000] = 0.9  # beyond the 1 s that is explained
    clips, warnings = interpreter().prepare_batch(wav, names=["a.wav"])
    assert clips.shape == (1, 16000)
    assert any("a.wav peaks at -100 dBFS" in warning for warning in warnings), warnings
    assert any("only its first 1 s is explained" in warning for warning in warnings), warnings


def test_outputs_give_each_clip_the_probability_of_its_own_class():
    """Two clips of different classes: probability[i] = probs[i, class[i]], by hand."""
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    classes = torch.tensor([0, 2])
    X, X_int, mask = (torch.full((2, 4, 3), v) for v in (1.0, 2.0, 3.0))
    audio = torch.full((2, 16000), 4.0)
    outputs = {"classes": classes, "probs": probs, "mask": mask, "audio": audio, "X": X, "X_int": X_int}
    brain = FakeBrain(outputs)
    fake = interpreter(brain=brain)
    wavs = torch.stack([torch.linspace(-1, 1, 16000), torch.linspace(1, -0.5, 16000)])
    result = fake.interpret_batch(wavs)
    assert result["class"] == ["dog", "cat"]
    assert result["probability"].tolist() == pytest.approx([0.7, 0.6])
    assert torch.equal(result["X"], X) and torch.equal(result["X_int"], X_int)
    assert torch.equal(result["mask"], mask) and torch.equal(result["interpretation"], audio)
    assert torch.equal(result["input"], brain.seen)  # the clips as classified
    assert torch.allclose(result["input"][1], wavs[1])  # peak 1 already


def test_a_checkpoint_without_some_of_the_backbones_weights_is_not_half_loaded(tmp_path):
    """A ViT checkpoint of the yaml's sizes but without q/k/v biases (qkv_bias=False, a config
    field the sizes do not name): loading it must fail, not keep the biases at random."""
    from transformers import ViTConfig, ViTModel

    from models.transformer_backbones import AudioViT
    from recipes.core.brains import load_pretrained_backbone

    sizes = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16}
    ViTModel(ViTConfig(**sizes, qkv_bias=False)).save_pretrained(tmp_path / "vit")
    with pytest.raises((RuntimeError, ValueError), match="q_proj.bias"):
        load_pretrained_backbone(AudioViT(**sizes), tmp_path / "vit")


@pytest.mark.parametrize("shift, same", [(0.0, True), (1e-6, True), (0.02, False)])
def test_the_exports_self_check_compares_masks_to_1e_5(shift, same, tmp_path, monkeypatch):
    """`_check_export`: an exported folder whose mask differs from the Brain's by 0.02 (a
    slightly wrong psi) is refused; equal masks, or 1e-6 apart (float noise), pass."""
    from recipes.interpreters import inference

    mask = torch.rand(1, 4, 3, generator=torch.Generator().manual_seed(0))
    brain = types.SimpleNamespace(
        hparams=types.SimpleNamespace(sample_rate=100, signal_length_s=1.0),
        device="cpu",
        explain=lambda wav: {"classes": torch.tensor([1]), "mask": mask},
    )
    loaded = types.SimpleNamespace(interpret_batch=lambda wav: {"class_index": torch.tensor([1]), "mask": mask + shift})
    (tmp_path / "hyperparams.yaml").write_text("a: 1\n")
    monkeypatch.setattr(inference.AudioInterpreter, "from_hparams", classmethod(lambda cls, **kwargs: loaded))
    if same:
        inference._check_export(brain, str(tmp_path))
    else:
        with pytest.raises(RuntimeError, match="does not reproduce the trained one"):
            inference._check_export(brain, str(tmp_path))
