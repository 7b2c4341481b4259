"""The exported inference folder (recipes/interpreters/inference.py), AudioInterpreter
(recipes/interpreters/inference.py) and `audio-interpret` (recipes/interpret_files.py).

The interpreters are the tiny session fixtures of conftest.py (`tiny_l2i`,
`tiny_piq`: one epoch on the 3-class, 1 s `tiny_synthetic` set), whose
training runs export `<output_folder>/inference/`.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from speechbrain.utils.fetching import LocalStrategy

from recipes import eval as eval_recipe
from recipes import interpret_files
from recipes.evaluation import explain_file
from recipes.interpreters import inference
from recipes.interpreters.inference import AudioInterpreter

SAMPLE_RATE = 16000  # the tiny runs: 1 s clips at 16 kHz
CLIP = "5-100004-A-0.wav"


class Lazy(dict):
    """{method: value}, each made on first use (L-MAC is trained only when a test needs it)."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, name):
        self[name] = self.make(name)
        return self[name]


@pytest.fixture(scope="module")
def trained(request):
    """{method: the tiny session run of conftest.py}: "L2I", "PIQ", "LMAC"."""
    return Lazy(lambda name: request.getfixturevalue(f"tiny_{name.lower()}"))


@pytest.fixture(scope="module")
def interpreters(trained):
    """{method: its tiny run's exported folder, loaded in place}."""
    return Lazy(lambda name: AudioInterpreter.from_hparams(source=trained[name]["folder"] / "inference"))


def stereo_file(tiny_synthetic, path, sample_rate, length_s):
    """A clip of the tiny set as a stereo file of another rate, length and format:
    the left channel is the clip, the right one half of it reversed."""
    clip, rate = sf.read(str(tiny_synthetic / "audio" / CLIP), dtype="float32")
    clip = torchaudio.functional.resample(torch.from_numpy(clip), rate, sample_rate).numpy()
    clip = np.resize(clip, int(length_s * sample_rate))  # repeats to be longer, or crops
    sf.write(str(path), 0.8 * np.stack([clip, 0.5 * clip[::-1]], axis=1), sample_rate)
    return path


def eval_single_sample(run, path, eval_folder, monkeypatch):
    """`eval.py --single_sample path` without --data_folder, and the tensors it plotted."""
    argv = list(run["argv"])
    at = argv.index("--data_folder")
    del argv[at : at + 2]  # the class names come from the training run
    argv += ["--pretrained_interpreter", str(run["folder"]), "--eval_folder", str(eval_folder)]
    plotted = {}
    save = explain_file.save_interpretation

    def spy(folder, clip_id, **tensors):
        plotted.update(tensors)
        return save(folder, clip_id, **tensors)

    monkeypatch.setattr(explain_file, "save_interpretation", spy)
    return eval_recipe.main(argv + ["--single_sample", str(path)]), plotted


def test_exported_folder_holds_what_inference_needs(trained):
    folder = trained["L2I"]["folder"] / "inference"
    names = {path.name for path in folder.iterdir()}
    assert names == {
        "hyperparams.yaml",
        "label_encoder.txt",
        "embedding_model.ckpt",
        "classifier.ckpt",
        "psi_model.ckpt",
        "theta.ckpt",
        "nmf_decoder.ckpt",
    }
    text = (folder / "hyperparams.yaml").read_text()
    assert str(trained["L2I"]["folder"]) not in text and "data_folder" not in text  # no training path
    assert "relevance_th: 0.2" in text and "K: 12" in text and "signal_length_s: 1" in text
    piq = {path.name for path in (trained["PIQ"]["folder"] / "inference").iterdir()}
    assert "theta.ckpt" not in piq and "nmf_decoder.ckpt" not in piq and "psi_model.ckpt" in piq


@pytest.mark.parametrize(
    ("name", "extension", "sample_rate", "length_s"),
    [
        ("L2I", "wav", 44100, 1.5),  # cropped, with a warning
        ("PIQ", "flac", 48000, 0.6),  # zero-padded
        ("L2I", "mp3", 48000, 0.8),
        ("PIQ", "mp3", 44100, 1.3),
        ("LMAC", "ogg", 44100, 1.0),
    ],
)
def test_interpret_file_equals_eval_single_sample(
    trained, interpreters, tiny_synthetic, tmp_path, monkeypatch, name, extension, sample_rate, length_s
):
    assert extension.upper() in sf.available_formats()  # libsndfile >= 1.1 writes mp3
    path = stereo_file(tiny_synthetic, tmp_path / f"input.{extension}", sample_rate, length_s)
    expected, plotted = eval_single_sample(trained[name], path, tmp_path / "eval", monkeypatch)
    result = interpreters[name].interpret_file(path)
    assert result["class"] == expected["class"]
    assert result["probability"] == pytest.approx(expected["probability"], abs=1e-6)
    for key, eval_key in (("mask", "mask"), ("interpretation", "interpretation"), ("input", "original")):
        assert torch.allclose(result[key], plotted[eval_key], atol=1e-6), key
    assert result["interpretation"].shape == (SAMPLE_RATE,)
    assert bool(result["warnings"]) == bool(expected["warnings"]) == (length_s > 1)
    if length_s > 1:
        assert "only its first 1 s is explained" in result["warnings"][0]
    if name == "L2I":  # one waveform per relevant NMF component, as eval writes them
        assert expected["components_kept"] == len(result["components"])
        # eval writes the 10 most relevant (--max_components' default), the most relevant first
        ranked = sorted(result["components"], key=lambda c: (-c["relevance"], c["component"]))[:10]
        components = [(c["component"], c["relevance"]) for c in ranked]
        assert components == [(c["component"], pytest.approx(c["relevance"])) for c in expected["components"]]
        for mine, written in zip(ranked, expected["components"]):
            audio = mine["waveform"] / max(1.0, mine["waveform"].abs().max().item())  # write_wav's limit
            assert np.allclose(sf.read(written["file"])[0], audio.numpy(), atol=1e-4)
    else:
        assert "components" not in result


def test_interpret_batch_pads_each_clip_to_its_length(interpreters):
    """wav_lens: the padding of a row is not part of its clip; any rate, (B, T, C) downmixed."""
    interpreter = interpreters["PIQ"]
    generator = torch.Generator().manual_seed(1)
    short = torch.randn(8000, 2, generator=generator)  # 0.5 s stereo at 16 kHz
    batch = torch.stack([torch.cat([short, 5 * torch.ones(8000, 2)]), torch.randn(16000, 2, generator=generator)])
    result = interpreter.interpret_batch(batch, wav_lens=torch.tensor([0.5, 1.0]))
    alone = interpreter.interpret_batch(short.mean(dim=1))
    assert result["class"][0] == alone["class"][0]
    assert torch.allclose(result["mask"][0], alone["mask"][0], atol=1e-6)
    assert torch.allclose(result["input"][0, 8000:], torch.zeros(8000))  # padded with zeros
    resampled = interpreter.interpret_batch(
        torchaudio.functional.resample(short.mean(dim=1), SAMPLE_RATE, 44100), sample_rate=44100
    )
    assert resampled["interpretation"].shape == (1, SAMPLE_RATE)
    assert result["probs"].shape == (2, 3) and torch.allclose(result["probs"].sum(dim=1), torch.ones(2))


def test_fresh_process_command_on_moved_folder(trained, interpreters, tiny_synthetic, tmp_path, repo_root):
    """The installed `audio-interpret`, elsewhere, on a copy of the folder alone: the
    good files are written and equal this process's results; the bad ones are
    reported and the exit status is 1."""
    script = shutil.which("audio-interpret", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.fail("audio-interpret is not installed: run `.venv/bin/pip install --no-deps -e .` (make setup)")
    moved = tmp_path / "copy"
    shutil.copytree(trained["PIQ"]["folder"] / "inference", moved)
    good = stereo_file(tiny_synthetic, tmp_path / "dog.flac", 48000, 1.0)
    (tmp_path / "notes.wav").write_text("not audio")
    files = ["dog.flac", "missing.wav", "notes.wav"]
    done = subprocess.run(
        [script, *files, "--interpreter", "copy", "--out", "out", "--device", "cpu"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(repo_root)},  # the code, not the training run
    )
    assert done.returncode == 1, done.stderr
    assert "2 of 3 files could not be explained" in done.stderr
    assert "missing.wav does not exist" in done.stderr and "notes.wav is not audio" in done.stderr
    out = tmp_path / "out"
    assert sorted(path.name for path in out.iterdir()) == [
        ".run.lock",  # one run at a time on --out
        "dog.png",
        "dog_interpretation.wav",
        "dog_original.wav",
        "predictions.json",
    ]
    predictions = json.loads((out / "predictions.json").read_text())
    assert set(predictions["errors"]) == {"missing.wav", "notes.wav"}
    here = interpreters["PIQ"].interpret_file(good)
    assert predictions["files"]["dog.flac"]["class"] == here["class"]
    assert predictions["files"]["dog.flac"]["probability"] == pytest.approx(here["probability"], abs=1e-6)
    written, rate = sf.read(out / "dog_interpretation.wav")
    audio = here["interpretation"] / max(1.0, here["interpretation"].abs().max().item())
    assert rate == SAMPLE_RATE and np.allclose(written, audio.numpy(), atol=1e-4)


def test_command_in_process_l2i_components_and_empty_file(trained, interpreters, tiny_synthetic, tmp_path, capsys):
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    clip = tiny_synthetic / "audio" / CLIP
    out = tmp_path / "out"
    status = interpret_files.main(
        [str(clip), str(empty), str(clip), "--interpreter", str(trained["L2I"]["folder"]), "--out", str(out)]
    )
    assert status == 1
    assert "empty.wav holds no audio" in capsys.readouterr().err
    predictions = json.loads((out / "predictions.json").read_text())
    assert list(predictions["errors"]) == [str(empty)]
    stem = CLIP[: -len(".wav")]
    assert (out / f"{stem}_interpretation.wav").is_file() and not (out / f"{stem}-2.png").exists()  # given twice: once
    assert list(predictions["files"]) == [str(clip)] and predictions["notes"] == [f"{clip} is given 2 times: explained once."]
    components = predictions["files"][str(clip)]["files"]["components"]
    assert components and all(os.path.isfile(path) for path in components)
    # --max_components: the wavs of the most relevant kept components only, the count of all
    kept = interpreters["L2I"].interpret_file(str(clip))["components"]
    by_relevance = sorted(kept, key=lambda c: -c["relevance"])
    assert len(kept) >= 3 and by_relevance[1]["relevance"] > by_relevance[2]["relevance"]
    fewer = tmp_path / "fewer"
    assert interpret_files.main([str(clip), "--interpreter", str(trained["L2I"]["folder"]), "--out", str(fewer),
                                 "--max_components", "2"]) == 0  # fmt: skip
    entry = json.loads((fewer / "predictions.json").read_text())["files"][str(clip)]
    assert entry["components_kept"] == len(kept)
    expected = [str(fewer / f"{stem}_component{c['component']:03d}.wav") for c in by_relevance[:2]]
    assert entry["files"]["components"] == expected
    assert sorted(path.name for path in fewer.glob("*_component*.wav")) == sorted(os.path.basename(p) for p in expected)
    with pytest.raises(SystemExit):
        interpret_files.parse_arguments([str(clip), "--interpreter", "x", "--max_components", "-1"])


def test_hub_id_without_network_names_the_local_folder(trained, tmp_path, monkeypatch):
    local = tmp_path / "results" / "piq" / "1234" / "inference"
    shutil.copytree(trained["PIQ"]["folder"] / "inference", local)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # HF_HUB_OFFLINE=1: no network
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(FileNotFoundError) as error:
        AudioInterpreter.from_hparams(source="someone/piq-esc50", savedir=tmp_path / "cache")
    message = str(error.value)
    assert "someone/piq-esc50" in message and "Hugging Face hub" in message
    assert "results/piq/1234/inference" in message  # the folder to use instead
    with pytest.raises(FileNotFoundError, match="does not exist"):
        AudioInterpreter.from_hparams(source=tmp_path / "runs" / "nothing" / "inference")


def test_export_check_names_a_key_the_brain_needs(trained, tmp_path, monkeypatch):
    """A key the interpreter's Brain reads but the inference yaml lacks fails the export,
    and nothing is left in place."""
    brain = trained["PIQ"]["brain"]
    keys = tuple(key for key in type(brain).inference_keys if key != "use_mask_output")
    monkeypatch.setattr(type(brain), "inference_keys", keys)  # PIQ.interpret reads it
    with pytest.raises(ValueError, match="use_mask_output.*PIQ.inference_keys"):
        inference.export_inference(brain, tmp_path / "inference")
    assert not (tmp_path / "inference").exists()


def test_a_folder_exported_before_a_key_existed_names_the_key_to_add(trained, tmp_path):
    folder = tmp_path / "inference"
    shutil.copytree(trained["L2I"]["folder"] / "inference", folder)
    yaml_file = folder / "hyperparams.yaml"
    lines = yaml_file.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("relevance_centered:")]
    assert len(kept) == len(lines) - 1
    yaml_file.write_text("".join(kept))
    with pytest.raises(ValueError, match=r"no relevance_centered.*older version.*relevance_centered: False"):
        AudioInterpreter.from_hparams(source=folder, savedir=tmp_path / "cache")


def test_a_folder_exported_before_the_move_still_loads(trained, interpreters, tmp_path):
    """An inference yaml of the flat layout names `recipes.train_piq.PIQ` and
    `recipes.brains.load_state_dict_strict`: it loads, and explains as the folder does."""
    folder = tmp_path / "old"
    shutil.copytree(trained["PIQ"]["folder"] / "inference", folder)
    yaml_file = folder / "hyperparams.yaml"
    text = yaml_file.read_text()
    old = text.replace("recipes.interpreters.piq.PIQ", "recipes.train_piq.PIQ")
    old = old.replace("recipes.core.brains.load_state_dict_strict", "recipes.brains.load_state_dict_strict")
    assert old.count("recipes.train_piq.PIQ") == 1 and old.count("recipes.brains.") >= 3
    yaml_file.write_text(old)
    wav = 0.1 * torch.randn(2, SAMPLE_RATE, generator=torch.Generator().manual_seed(3))
    loaded = AudioInterpreter.from_hparams(source=folder).interpret_batch(wav)
    expected = interpreters["PIQ"].interpret_batch(wav)
    assert torch.equal(loaded["mask"], expected["mask"])
    assert loaded["class"] == expected["class"]


def test_a_folder_of_links_to_plain_files_loads_as_the_hub_cache_makes_them(trained, interpreters, tmp_path):
    """huggingface_hub's cache: each file of a snapshot is a link to a blob elsewhere. Links to
    plain files load (only links to devices, pipes or folders are refused: test_download_red_team)."""
    folder, blobs = tmp_path / "snapshot", tmp_path / "blobs"
    shutil.copytree(trained["PIQ"]["folder"] / "inference", blobs)
    folder.mkdir()
    for path in blobs.iterdir():
        (folder / path.name).symlink_to(path)
    wav = 0.1 * torch.randn(1, SAMPLE_RATE, generator=torch.Generator().manual_seed(4))
    loaded = AudioInterpreter.from_hparams(source=folder).interpret_batch(wav)
    assert torch.equal(loaded["mask"], interpreters["PIQ"].interpret_batch(wav)["mask"])


def test_a_yaml_that_runs_code_is_refused_unless_trusted(trained, tmp_path, monkeypatch):
    """`evil: !apply:os.system [...]` appended to an exported yaml: refused before anything
    of it is built, naming the line; built with trust_code=True."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "downloaded"
    shutil.copytree(trained["PIQ"]["folder"] / "inference", folder)
    yaml_file = folder / "hyperparams.yaml"
    lines = yaml_file.read_text().splitlines()
    yaml_file.write_text("\n".join(lines + ['evil: !apply:os.system ["touch MARKER"]']) + "\n")
    with pytest.raises(inference.UntrustedYamlError, match=rf"line {len(lines) + 1} has `!apply:os.system`"):
        AudioInterpreter.from_hparams(source=folder)
    assert not (tmp_path / "MARKER").exists()
    # a class outside the trusted modules is refused too, wherever it is nested
    yaml_file.write_text("\n".join(lines + ["extra:", "    inner: !new:subprocess.Popen [[ls]]"]) + "\n")
    with pytest.raises(inference.UntrustedYamlError, match="!new:subprocess.Popen"):
        AudioInterpreter.from_hparams(source=folder)
    # yaml's own python tags build code too (they are not hyperpyyaml's `!` tags)
    yaml_file.write_text("\n".join(lines + ['evil: !!python/object/apply:os.system ["touch MARKER"]']) + "\n")
    with pytest.raises(inference.UntrustedYamlError, match=rf"line {len(lines) + 1} has the yaml tag"):
        AudioInterpreter.from_hparams(source=folder)
    assert not (tmp_path / "MARKER").exists()
    # a checkpoint hook other than the export's: torch.save(module, path) would write over the
    # file behind the collected link
    text = "\n".join(lines) + "\n"
    assert text.count("!name:recipes.core.brains.load_state_dict_strict") >= 1
    yaml_file.write_text(text.replace("!name:recipes.core.brains.load_state_dict_strict", "!name:torch.save", 1))
    with pytest.raises(inference.UntrustedYamlError, match="has `!name:torch.save`"):
        AudioInterpreter.from_hparams(source=folder)
    yaml_file.write_text("\n".join(lines + ['evil: !apply:os.system ["touch MARKER"]']) + "\n")
    AudioInterpreter.from_hparams(source=folder, trust_code=True)
    assert (tmp_path / "MARKER").exists()


def test_one_savedir_holds_one_interpreter(trained, tmp_path):
    """Was: a savedir that had collected L2I's folder loaded L2I again when given PIQ's
    (SpeechBrain's fetch reuses a file of the same name), silently."""
    savedir = tmp_path / "collected"
    l2i_folder, piq_folder = (trained[name]["folder"] / "inference" for name in ("L2I", "PIQ"))
    l2i = AudioInterpreter.from_hparams(source=l2i_folder, savedir=savedir)
    assert l2i.method == "L2I"
    expected = f"holds the files of {re.escape(str(l2i_folder))}, not of {re.escape(str(piq_folder))}"
    with pytest.raises(ValueError, match=expected):
        AudioInterpreter.from_hparams(source=piq_folder, savedir=savedir)
    again = AudioInterpreter.from_hparams(source=l2i_folder, savedir=savedir)
    assert again.method == "L2I"
    assert AudioInterpreter.from_hparams(source=piq_folder, savedir=tmp_path / "other").method == "PIQ"

    mine = tmp_path / "mine"  # a folder of the user's, not made by from_hparams
    mine.mkdir()
    (mine / "hyperparams.yaml").write_text("my own\n")
    with pytest.raises(ValueError, match=r"already holds files and no interpreter_source.txt"):
        AudioInterpreter.from_hparams(source=trained["PIQ"]["folder"] / "inference", savedir=mine)
    assert (mine / "hyperparams.yaml").read_text() == "my own\n"


def test_a_copied_savedir_follows_its_folder(trained, tmp_path):
    """With LocalStrategy.COPY, a folder trained again is collected again, not the old copy."""
    folder = tmp_path / "inference"
    shutil.copytree(trained["PIQ"]["folder"] / "inference", folder)
    savedir = tmp_path / "collected"
    first = AudioInterpreter.from_hparams(source=folder, savedir=savedir, local_strategy=LocalStrategy.COPY)
    state = torch.load(folder / "psi_model.ckpt", weights_only=True)
    name = next(key for key, value in state.items() if value.is_floating_point())
    state[name] = state[name] + 1.0  # the folder's psi, trained again
    torch.save(state, folder / "psi_model.ckpt")
    second = AudioInterpreter.from_hparams(source=folder, savedir=savedir, local_strategy=LocalStrategy.COPY)
    assert torch.equal(second.mods["psi"].state_dict()[name].cpu(), state[name])
    assert not torch.equal(first.mods["psi"].state_dict()[name].cpu(), state[name])
