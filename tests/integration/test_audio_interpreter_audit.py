"""What `AudioInterpreter` does to a user's audio before explaining it, and what an export
guarantees (recipes/interpreters/inference.py), on the tiny PIQ run of conftest.py (`tiny_piq`).

Expected values come from hand computation on the input (sample counts, peaks, frequencies),
not from the code under test.
"""

import math
import re
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from recipes.interpreters import inference
from recipes.interpreters.inference import AudioInterpreter

SAMPLE_RATE = 16000  # the tiny runs: 1 s clips at 16 kHz
N_SAMPLES = 16000
EXPORTED = {
    "hyperparams.yaml",
    "label_encoder.txt",
    "embedding_model.ckpt",
    "classifier.ckpt",
    "psi_model.ckpt",
}


@pytest.fixture(scope="module")
def piq_folder(tiny_piq):
    return tiny_piq["folder"] / "inference"


@pytest.fixture(scope="module")
def piq(piq_folder):
    return AudioInterpreter.from_hparams(source=piq_folder)


def noise(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_a_clip_at_another_rate_is_resampled(piq):
    """Guards the resampling of `prepare_batch`: 0.5 s of a 1 kHz sine at 44.1 kHz is 8000
    samples at 16 kHz (then zeros), and still 1 kHz, with its peak at 1."""
    t = torch.arange(22050) / 44100
    wav = 0.3 * torch.sin(2 * math.pi * 1000 * t)
    clips, warnings = piq.prepare_batch(wav, sample_rate=44100)
    assert clips.shape == (1, N_SAMPLES) and warnings == []
    assert torch.equal(clips[0, 8000:], torch.zeros(8000))
    assert clips[0, 7900:8000].abs().max() > 0.5  # the sine lasts to the end of its 0.5 s
    spectrum = torch.fft.rfft(clips[0, :8000]).abs()
    assert int(spectrum.argmax()) == 500  # bins of 16000 / 8000 = 2 Hz: 1000 Hz
    assert clips.abs().max().item() == pytest.approx(1.0)


def test_wav_lens_keep_exactly_their_samples(piq):
    """Guards the `wav_lens` mask of `prepare_batch`: a row of relative length 0.75 keeps its
    first round(0.75 * 16000) = 12000 samples (peak-normalised over those), and its padding,
    however loud, is zeros."""
    wavs = noise(2, N_SAMPLES)
    wavs[0, 12000:] = 50.0  # padding louder than the clip
    clips, warnings = piq.prepare_batch(wavs, wav_lens=torch.tensor([0.75, 1.0]))
    kept = wavs[0, :12000]
    assert torch.allclose(clips[0, :12000], kept / kept.abs().max(), atol=1e-6)
    assert torch.equal(clips[0, 12000:], torch.zeros(4000))
    assert torch.allclose(clips[1], wavs[1] / wavs[1].abs().max(), atol=1e-6)
    assert warnings == []


def test_warnings_name_the_silent_clip_only(piq):
    """Guards the silence warning of `prepare_batch`: a row of zeros is named; a clip of the
    full length is not cropped; a padded clip is not silent."""
    wavs = noise(3, N_SAMPLES)
    wavs[1] = 0.0
    _, warnings = piq.prepare_batch(
        wavs, wav_lens=torch.tensor([1.0, 1.0, 0.5]), names=["a", "b", "c"]
    )
    assert warnings == [
        "b is silent (every sample is 0): the prediction is the classifier's answer to silence, not to a sound."
    ]


def test_nan_and_infinite_samples_are_read_as_0_with_a_warning_or_refused(piq):
    """Found by a probe: a tensor with 10 NaN samples was explained as digital silence (its NaN
    peak zeroed the whole clip), one with 3 infinite samples gave NaN probabilities and a NaN
    interpretation, both without a word. Now they are read as 0, counted and named, as a
    file's are; the clip is otherwise what it was (peak-normalised over its finite samples);
    a clip with no finite sample in its length is refused, naming it."""
    wavs = noise(3, N_SAMPLES)
    wavs[0, 100:110] = math.nan
    wavs[1, [5, 500, 5000]] = torch.tensor([math.inf, -math.inf, math.inf])
    wavs[2, 12000:] = math.nan  # padding only (wav_lens 0.75): nothing to say
    clips, warnings = piq.prepare_batch(wavs, wav_lens=torch.tensor([1.0, 1.0, 0.75]), names=["a", "b", "c"])
    assert warnings == [
        "a: 10 of 16000 sample values are NaN or infinite; they are read as 0.",
        "b: 3 of 16000 sample values are NaN or infinite; they are read as 0.",
    ]
    assert bool(torch.isfinite(clips).all())
    finite = wavs[0].nan_to_num(0.0)
    assert torch.allclose(clips[0], finite / finite.abs().max(), atol=1e-6)
    result = piq.interpret_batch(wavs[:2])
    assert bool(torch.isfinite(result["probs"]).all()) and bool(torch.isfinite(result["interpretation"]).all())
    wavs[1] = math.nan
    with pytest.raises(ValueError, match=r"^clip 1 holds no finite sample \(all 16000 sample values"):
        piq.prepare_batch(wavs[:2])


def test_a_silent_start_of_a_longer_recording_is_named_as_such(piq, tmp_path):
    """Found by a new-user probe: a file whose first second (the part explained) is silent, its
    sound later, was called silent ("every sample is 0"), as `eval.py --single_sample` does not:
    it is "the first 1 s of" the file. A silent file of the clip's length is still silent."""
    late = np.zeros(2 * N_SAMPLES, dtype=np.float32)
    late[N_SAMPLES + 100 :] = 0.5
    sf.write(str(tmp_path / "late.wav"), late, N_SAMPLES)
    sf.write(str(tmp_path / "quiet.wav"), np.zeros(N_SAMPLES, dtype=np.float32), N_SAMPLES)
    warnings = piq.interpret_file(tmp_path / "late.wav")["warnings"]
    assert warnings[-1].startswith(f"the first 1 s of {tmp_path / 'late.wav'} are silent (every sample is 0)")
    assert piq.interpret_file(tmp_path / "quiet.wav")["warnings"] == [
        f"{tmp_path / 'quiet.wav'} is silent (every sample is 0): the prediction is the classifier's answer "
        "to silence, not to a sound."
    ]


def test_soundfiles_frames_by_channels_layout_is_refused_not_read_as_a_batch(piq):
    """Found by a new-user probe: `x, sr = sf.read(stereo)` gives (T, 2); interpret_batch took it
    as T clips of 2 samples each (a silence warning per clip, no error). Refused, naming the
    layout and both fixes; (1, T, 2) and (T,) are explained, and a real batch of more samples
    than clips is one."""
    x = noise(2, 300).T.contiguous()  # (300, 2): soundfile's layout of a 300-frame stereo file
    with pytest.raises(ValueError, match=r"wavs of shape \(300, 2\): 300 clips of 2 samples each, which reads as soundfile's \(frames, channels\)"):
        piq.interpret_batch(x)
    assert piq.interpret_batch(x[None])["class_index"].shape == (1,)
    assert piq.interpret_batch(x.mean(dim=1))["class_index"].shape == (1,)
    assert piq.interpret_batch(noise(3, 9))["class_index"].shape == (3,)


def test_a_nearly_silent_clip_scaled_to_full_scale_is_said_to_be_its_noise(piq):
    """Found by a new-user probe: ±1 LSB of 16-bit dither (peak 2 ** -15, -90 dBFS) was scaled to
    full scale and explained with no warning, though collection_prepare leaves such a recording
    out as silent (below -80 dBFS). Said, with its level; a clip at -60 dBFS is not, nor is a
    silent one (its own warning)."""
    wavs = torch.zeros(3, N_SAMPLES)
    wavs[0, ::2], wavs[0, 1::2] = 2.0**-15, -(2.0**-15)
    wavs[1] = 1e-3 * noise(1, N_SAMPLES)[0] / noise(1, N_SAMPLES)[0].abs().max()  # peak 1e-3: -60 dBFS
    _, warnings = piq.prepare_batch(wavs, names=["dither", "quiet", "zeros"])
    assert warnings == [
        "dither peaks at -90 dBFS, below -80 dBFS: it is scaled to full scale like every clip, so what is "
        "explained is its noise, not a sound.",
        "zeros is silent (every sample is 0): the prediction is the classifier's answer to silence, not to a sound.",
    ]


def test_a_longer_clip_is_cropped_with_a_warning(piq):
    """Guards the crop warning of `prepare_batch`: 1.5 s is cropped to its first second, and said."""
    wavs = noise(2, 24000)
    clips, warnings = piq.prepare_batch(wavs, names=["a", "b"])
    assert torch.allclose(
        clips, wavs[:, :N_SAMPLES] / wavs[:, :N_SAMPLES].abs().amax(dim=1, keepdim=True)
    )
    assert warnings == [
        f"{name} is 1.5 s long but the interpreter takes clips of signal_length_s = 1 s: only its "
        "first 1 s is explained (cropped as in training)."
        for name in ("a", "b")
    ]


@pytest.mark.parametrize(
    ("rate", "seconds", "cropped"), [(16000, 1.0, False), (44100, 1.0, False), (22050, 1.5, True)]
)
def test_interpret_file_warns_only_about_a_file_longer_than_a_clip(
    piq, tmp_path, rate, seconds, cropped
):
    """Guards `interpret_file`'s crop warning: a file of exactly the clip length (at any rate)
    gets none; a 1.5 s file gets one, with its length."""
    path = tmp_path / "clip.wav"
    sf.write(str(path), 0.5 * np.sin(np.arange(int(rate * seconds)) * 0.05), rate)
    warnings = piq.interpret_file(path)["warnings"]
    if cropped:
        assert warnings == [
            f"{path} is 1.5 s long but the interpreter takes clips of signal_length_s = 1 s: only "
            "its first 1 s is explained (cropped as in training)."
        ]
    else:
        assert warnings == []


def test_probability_is_the_one_of_the_predicted_class(piq, tiny_synthetic):
    """Guards `_outputs`: "probability" is probs[i, class_index[i]], for every clip, and
    `interpret_file` gives the same float."""
    paths = sorted((tiny_synthetic / "audio").glob("*.wav"))
    wavs = torch.stack([torch.from_numpy(sf.read(str(path), dtype="float32")[0]) for path in paths])
    result = piq.interpret_batch(wavs)
    probs, classes = result["probs"], result["class_index"]
    for i in range(len(paths)):
        assert result["probability"][i].item() == probs[i, classes[i]].item()
    single = piq.interpret_file(paths[-1])
    assert single["probability"] == pytest.approx(probs[-1, classes[-1]].item(), abs=1e-6)


def test_a_clip_length_that_floats_cannot_hold(piq_folder, tmp_path):
    """Guards `n_samples` and the crop warning for 2.01 s clips: 2.01 * 16000 is
    32159.999999999996 in floats, i.e. 32160 samples (not 32159); a 3 s clip is "3 s long"."""
    folder = tmp_path / "longer"
    shutil.copytree(piq_folder, folder)
    text = (folder / "hyperparams.yaml").read_text()
    assert text.count("\nsignal_length_s: 1\n") == 1
    (folder / "hyperparams.yaml").write_text(
        text.replace("\nsignal_length_s: 1\n", "\nsignal_length_s: 2.01\n")
    )
    interpreter = AudioInterpreter.from_hparams(source=folder)
    result = interpreter.interpret_batch(noise(1, 3 * SAMPLE_RATE))
    assert result["input"].shape == result["interpretation"].shape == (1, 32160)
    assert result["warnings"] == [
        "clip 0 is 3 s long but the interpreter takes clips of signal_length_s = 2.01 s: only its "
        "first 2.01 s is explained (cropped as in training)."
    ]


def test_overrides_that_contradict_the_training_are_refused(piq_folder):
    """Guards `from_hparams`: an override of a trained size would explain with another STFT
    than the one the interpreter learnt; it is refused, naming both values."""
    n_fft = int(
        re.search(r"^n_fft: (\d+)$", (piq_folder / "hyperparams.yaml").read_text(), re.M).group(1)
    )
    with pytest.raises(
        ValueError,
        match=rf"overrides \{{'n_fft': {2 * n_fft}\}}: the interpreter was trained with n_fft = {n_fft} ",
    ):
        AudioInterpreter.from_hparams(source=piq_folder, overrides={"n_fft": 2 * n_fft})
    assert (
        AudioInterpreter.from_hparams(source=piq_folder, overrides={"n_fft": n_fft}).method == "PIQ"
    )
    # the same as yaml text: read once, checked, and given to the loader as a mapping
    with pytest.raises(ValueError, match=rf"the interpreter was trained with n_fft = {n_fft} "):
        AudioInterpreter.from_hparams(source=piq_folder, overrides=f"n_fft: {2 * n_fft}")
    loaded = AudioInterpreter.from_hparams(source=piq_folder, overrides="signal_length_s: 1")
    assert loaded.hparams.signal_length_s == 1


def test_an_override_of_no_key_names_the_key_not_the_yaml(piq_folder):
    """Guards the unknown-key check of `from_hparams`: was "... is not a complete inference yaml
    (KeyError ...): export the training run again", blaming a sound folder for the user's key."""
    with pytest.raises(ValueError, match=r"overrides mask_thr \(did you mean mask_th\?\): .*has no such key\.$"):
        AudioInterpreter.from_hparams(source=piq_folder, overrides={"mask_thr": 0.3})
    with pytest.raises(ValueError, match=r'overrides device: .*has no such key \("device" goes in run_opts'):
        AudioInterpreter.from_hparams(source=piq_folder, overrides={"device": "cpu"})
    with pytest.raises(ValueError, match="give a dict, or yaml text of key: value lines"):
        AudioInterpreter.from_hparams(source=piq_folder, overrides="- a list")


def test_an_export_that_does_not_reproduce_the_brain_is_not_written(
    tiny_piq, tmp_path, monkeypatch
):
    """Guards `_check_export`: checkpoints that explain otherwise than the trained Brain (here
    psi written with its weights shifted: the same classes, other masks) fail the export, and
    nothing is left in place."""
    state_dict = inference._state_dict
    psi = tiny_piq["brain"].unwrapped("psi")

    def shifted(module):
        state = state_dict(module)
        if module is not psi:
            return state
        return {
            key: value + 0.5 if value.is_floating_point() else value for key, value in state.items()
        }

    monkeypatch.setattr(inference, "_state_dict", shifted)
    with pytest.raises(RuntimeError, match="does not reproduce the trained one"):
        inference.export_inference(tiny_piq["brain"], tmp_path / "inference")
    assert list(tmp_path.iterdir()) == []


def test_a_second_export_replaces_the_first(tiny_piq, tmp_path):
    """Guards `export_inference`: an earlier export is replaced as a whole (a stale file of it
    does not survive), and the folder holds what inference needs."""
    folder = tmp_path / "inference"
    assert inference.export_inference(tiny_piq["brain"], folder) == str(folder)
    (folder / "stale.ckpt").write_bytes(b"old")
    inference.export_inference(tiny_piq["brain"], folder)
    assert {path.name for path in folder.iterdir()} == EXPORTED
    assert [path.name for path in tmp_path.iterdir()] == ["inference"]
