"""Tests added by the second mutation audit of `recipes/core/startup.py` and
`recipes/evaluation/explain_file.py`: each one fails under a small, plausible change of the
code that the other tests let through (named in each docstring, "Catches: ..."), and its
expected value is worked out by hand, not read from the code under test.

Survivors left: S12 (the first pass also saving hyperparams.yaml, overwritten by the second),
S24 (`_with_override` never given a key already there) and E14 (components_kept read before
"components" is set) are equivalent; S26 (keep_applied_settings in the first pass) differs only
after a start that fails in its data step.

No training, no dataset: hand-written yaml and wav files in tmp_path, the data step and the
interpreter replaced by hand-made stand-ins (`HandMadeInterpreter` of test_explain_file).
"""

import io

import numpy as np
import pytest
import soundfile as sf
import test_explain_file
import torch
from conftest import HPARAMS
from test_explain_file import HandMadeInterpreter

from recipes.core import startup
from recipes.evaluation import explain_file
from recipes.evaluation.explain_file import _top_classes, explain_single_sample

# ================================================================ startup


def test_a_hidden_key_is_never_suggested_and_without_a_near_name_the_keys_are_listed():
    """hyperpyyaml's `__set_seed` is no key a user sets: `--__set` finds no name starting with
    it among 'seed' and SpeechBrain's flags, so no suggestion names `--__set_seed`. `--zzzzqqq`
    is near no name: the error lists the yaml's keys instead, hidden ones left out.
    Catches: the `startswith("__")` filter dropped; the "Its keys" hint dropped."""
    error = KeyError("Override '__set' not found in: ['__set_seed', 'seed']")
    assert "__set_seed" not in str(startup.unknown_override_error(error, "x.yaml"))
    error = KeyError("Override 'zzzzqqq' not found in: ['__set_seed', 'alpha', 'beta']")
    assert str(startup.unknown_override_error(error, "x.yaml")) == (
        "--zzzzqqq: x.yaml has no key zzzzqqq, and SpeechBrain no such flag. Its keys: alpha, beta."
    )


def test_a_tagged_value_is_no_scalar_default():
    """The docstring: values with a tag are left out; `!!float 3` is a tag too, so only `b`.
    Catches: `!` dropped from the first character class of `_TOP_LEVEL_SCALAR`."""
    assert startup.top_level_scalars(io.StringIO("a: !!float 3\nb: 2\n")) == {"b": 2}


def test_prepare_run_refuses_an_override_of_the_wrong_kind_before_any_folder(tmp_path):
    """piq.yaml's number_of_epochs is a number: `--number_of_epochs abc` is refused by name
    and no output folder is made. Catches: `check_override_types` not called by prepare_run."""
    run = tmp_path / "run"
    argv = [str(HPARAMS / "piq.yaml"), "--number_of_epochs", "abc", "--output_folder", str(run),
            "--data_folder", str(tmp_path)]  # fmt: skip
    with pytest.raises(ValueError, match=r"^--number_of_epochs 'abc': number_of_epochs is a number in "):
        startup.prepare_run(argv, prepare=False)
    assert not run.exists()


def test_a_tuple_holding_a_python_tag_is_refused_not_run():
    """`(1, !!python/object/apply:os.getcwd [])` would call os.getcwd under PyYAML's full
    Loader; a tuple holds plain values. Catches: `yaml.safe_load` -> `yaml.load(Loader=yaml.Loader)`."""
    with pytest.raises(ValueError, match=r"is not a list of plain yaml values"):
        startup.load_yaml("size: (1, !!python/object/apply:os.getcwd [])\n")


def test_a_data_yaml_refuses_a_reference_to_an_attribute():
    """`!ref <a.keys>` is hyperpyyaml's `!apply:getattr` of the object built for a: allowed in a
    recipe yaml, refused in a yaml that is data. Catches: `data` ignored (always `_Loader`)."""
    text = "a: !new:collections.OrderedDict\nb: !ref <a.keys>\n"
    assert callable(startup.load_yaml(text)["b"])
    with pytest.raises(ValueError, match=r"reads an attribute of an object"):
        startup.load_yaml(text, data=True)


def test_the_data_step_gets_every_setting_of_the_yaml(monkeypatch):
    """prepare_esc50 is given each manifest path and fold list under its own name, and the
    yaml's skip_manifest_creation (True here, not the default False).
    Catches: skip_manifest_creation always False."""
    calls = []
    monkeypatch.setattr(startup, "prepare_esc50", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(startup, "dataio_prep", lambda hparams: ("datasets", "encoder"))
    hparams = {
        "data_folder": "D", "audio_data_folder": "D/audio", "train_annotation": "tr.json",
        "valid_annotation": "va.json", "test_annotation": "te.json", "train_fold_nums": [1, 2],
        "valid_fold_nums": [3], "test_fold_nums": [4], "skip_manifest_creation": True,
    }  # fmt: skip
    assert startup.prepare_data(hparams) == ("datasets", "encoder")
    assert calls == [{
        "data_folder": "D", "audio_data_folder": "D/audio", "save_json_train": "tr.json",
        "save_json_valid": "va.json", "save_json_test": "te.json", "train_fold_nums": [1, 2],
        "valid_fold_nums": [3], "test_fold_nums": [4], "skip_manifest_creation": True,
    }]  # fmt: skip


def test_the_first_pass_is_built_for_one_class_the_second_for_the_data(tmp_path, monkeypatch):
    """The module docstring: the yaml (50 classes) is loaded first for 1 class, then, the data
    having 3, for 3. Catches: the first pass's `out_n_neurons` other than 1 (e.g. 2: a
    check K >= classes with K = 1 refused a one-class dataset)."""
    yaml_file = tmp_path / "tiny.yaml"
    yaml_file.write_text("seed: 1\noutput_folder: !PLACEHOLDER\ndata_folder: !PLACEHOLDER\nout_n_neurons: 50\n")
    loaded = []
    real_load = startup.load_yaml

    def recording_load(stream, overrides=None, data=False):
        hparams = real_load(stream, overrides, data)
        loaded.append(hparams["out_n_neurons"])
        return hparams

    monkeypatch.setattr(startup, "load_yaml", recording_load)
    monkeypatch.setattr(startup, "prepare_data", lambda hparams: ({}, ["a", "b", "c"]))
    argv = [str(yaml_file), "--output_folder", str(tmp_path / "run"), "--data_folder", str(tmp_path)]
    hparams = startup.prepare_run(argv)[0]
    assert loaded == [1, 3] and hparams["out_n_neurons"] == 3


# ================================================================ explain_file

plotted = test_explain_file.plotted  # the fixture: what a --window run plotted


class ComponentInterpreter(HandMadeInterpreter):
    """L2I-like: `component_audio` of one clip gives components 0, 1, 2 of relevance 0.1, 0.5,
    0.3 (audio: 0.1, 0.2, 0.3 times the clip) and the outputs of `explain`."""

    def component_audio(self, wav):
        components = [(k, relevance, (k + 1) / 10 * wav) for k, relevance in enumerate((0.1, 0.5, 0.3))]
        return components, self.explain(wav.unsqueeze(0))


def test_the_start_of_a_file_at_a_rate_whose_window_is_not_a_float_integer(tmp_path, monkeypatch):
    """100 Hz, signal_length_s 0.29: 29 samples (100 * 0.29 is 28.999999999999996 in floats,
    rounded, not truncated to 28). The 40-sample file is 0.4 s long; its first 29 samples are
    given; the figure and the component wavs are at 100 Hz; of the 3 components, the 2 most
    relevant (1: 0.5, 2: 0.3) are written, all 3 counted as kept.
    Catches: `int(...)` for `int(round(...))`; the figure's or the components' sample_rate
    another than hparams'; `max_components` ignored; components_kept counting the written ones."""
    path = tmp_path / "clip.wav"
    sf.write(str(path), np.linspace(0.1, 0.5, 40, dtype=np.float32), 100, subtype="FLOAT")
    saved = []
    monkeypatch.setattr(explain_file, "save_interpretation", lambda folder, stem, **kwargs: saved.append(kwargs) or {})
    brain = ComponentInterpreter()
    hparams = {"sample_rate": 100, "signal_length_s": 0.29, "batch_size": 2}
    (tmp_path / "out").mkdir()
    result = explain_single_sample(brain, hparams, str(path), str(tmp_path / "out"), max_components=2)
    assert [tuple(batch.shape) for batch in brain.given] == [(1, 29)]
    assert saved[0]["sample_rate"] == 100
    assert result["warnings"][0].startswith(f"{path} is 0.4 s long but the classifier takes signal_length_s = 0.29 s")
    assert result["components_kept"] == 3
    assert [(c["component"], c["relevance"]) for c in result["components"]] == [(1, 0.5), (2, 0.3)]
    for component in result["components"]:
        info = sf.info(component["file"])
        assert (info.samplerate, info.frames) == (100, 29)


def test_the_top_classes_are_the_three_most_probable_in_order():
    """Of 4 classes [0.1, 0.4, 0.2, 0.3]: 1 (0.4), 3 (0.3), 2 (0.2); the 4th is left out.
    Catches: k - 1 classes (the existing tests have 2 classes, fewer than 3)."""

    class Names:
        def class_name(self, index):
            return "abcd"[index]

    top = _top_classes(Names(), torch.tensor([0.1, 0.4, 0.2, 0.3]))
    assert [(t["class"], t["probability"]) for t in top] == [
        ("b", pytest.approx(0.4)), ("d", pytest.approx(0.3)), ("c", pytest.approx(0.2)),
    ]  # fmt: skip


class NanInterpreter(HandMadeInterpreter):
    """Probabilities [NaN, 1] (a classifier gone wrong) and keep_class_step 2."""

    def explain(self, wavs):
        outputs = super().explain(wavs)
        outputs["probs"] = torch.tensor([[float("nan"), 1.0]]).repeat(wavs.shape[0], 1)
        return {**outputs, "classes": torch.zeros(wavs.shape[0], dtype=torch.long), "keep_class_step": torch.tensor([2])}


def test_a_nan_probability_is_written_as_null_and_the_keep_class_step_kept(tmp_path, monkeypatch):
    """prediction.json is strict JSON: a NaN probability is null there (json.loads of a NaN
    token would parse; the text is checked). keep_class_step 2 is in the result and the file;
    the file given as a relative path is named by its absolute one.
    Catches: `finite_or_none` dropped from the single-file write; keep_class_step not copied;
    `os.path.abspath` dropped from "file"."""
    import json

    sf.write(str(tmp_path / "clip.wav"), np.full(4, 0.5, dtype=np.float32), 4, subtype="FLOAT")
    monkeypatch.setattr(explain_file, "save_interpretation", lambda folder, stem, **kwargs: {})
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    hparams = {"sample_rate": 4, "signal_length_s": 1.0, "batch_size": 2}
    result = explain_single_sample(NanInterpreter(), hparams, "clip.wav", str(out))
    assert result["file"] == str(tmp_path / "clip.wav")
    assert result["keep_class_step"] == 2
    text = (out / "prediction.json").read_text()
    assert "NaN" not in text
    saved = json.loads(text)
    assert saved["probability"] is None and saved["keep_class_step"] == 2


def test_single_sample_setup_reads_the_training_runs_encoder_and_sizes_the_models(tmp_path, monkeypatch):
    """The interpreter's run saved its encoder of 3 classes in `save/`: the models are built
    for 3, and the (unused) data folder is the folder of the file given as a relative path.
    Catches: `save/` not looked in; the class count off by one; the file's path not made absolute."""
    from types import SimpleNamespace

    from speechbrain.dataio.encoder import CategoricalEncoder

    run = tmp_path / "interpreter_run"
    (run / "save").mkdir(parents=True)
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(["dog", "rain", "bird"])
    encoder.save(str(run / "save" / "label_encoder.txt"))
    yaml_file = tmp_path / "tiny.yaml"
    yaml_file.write_text("seed: 1\noutput_folder: !PLACEHOLDER\ndata_folder: !PLACEHOLDER\nout_n_neurons: 50\n")
    (tmp_path / "clips").mkdir()
    monkeypatch.chdir(tmp_path / "clips")
    args = SimpleNamespace(single_sample="clip.wav")
    hparams, _, label_encoder = explain_file.single_sample_setup(
        args, [str(yaml_file), "--output_folder", str(tmp_path / "eval")], str(run)
    )
    assert hparams["out_n_neurons"] == 3 and len(label_encoder) == 3
    assert hparams["data_folder"] == str(tmp_path / "clips")


def test_a_window_run_of_a_silent_file_is_the_mean_of_all_its_windows(tmp_path, plotted):
    """8 zero samples at 4 Hz: 2 windows of 1 s, both silent, so the mean is over both (the
    classifier's answer to silence: rain, p = 1) and the title says "mean of 2 windows", with
    none "left out"; the one warning says the file is silent.
    Catches: the count of heard windows 0 when every window is silent."""
    path = tmp_path / "quiet.wav"
    sf.write(str(path), np.zeros(8, dtype=np.float32), 4, subtype="FLOAT")
    hparams = {"sample_rate": 4, "signal_length_s": 1.0, "batch_size": 2}
    result = explain_single_sample(HandMadeInterpreter(), hparams, str(path), str(tmp_path / "out"), window=True)
    assert result["class"] == "rain" and result["probability"] == pytest.approx(1.0)
    assert plotted[0][3] == "quiet: rain (p=1.00, mean of 2 windows of 1 s)"
    assert len(result["warnings"]) == 1 and result["warnings"][0].startswith(f"{path} is silent")


def test_a_window_run_of_a_file_that_is_not_audio_is_refused_naming_it(tmp_path):
    """A text file given to --window: a ValueError naming it with the flag, before any output.
    Catches: `check_audio_file` not called in the window mode."""
    path = tmp_path / "notes.wav"
    path.write_text("not audio\n")
    hparams = {"sample_rate": 4, "signal_length_s": 1.0, "batch_size": 2}
    with pytest.raises(ValueError, match=rf"^--single_sample {path}"):
        explain_single_sample(HandMadeInterpreter(), hparams, str(path), str(tmp_path / "out"), window=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("main", [True, False], ids=["main process", "other process"])
def test_other_processes_build_their_data_after_the_main_one_saved_the_encoder(monkeypatch, main):
    """Under DDP the main process writes the manifests, then builds the data (saving the label
    encoder), each step followed by a barrier; another process builds its data only after the
    second barrier (the encoder is then on disk): main: prepare, barrier, data, barrier;
    other: barrier, barrier, data. Catches: dataio_prep called directly, not in run_on_main
    (the other processes read the encoder before the main one wrote it)."""
    from speechbrain.utils import distributed

    events = []
    monkeypatch.setattr(distributed, "if_main_process", lambda: main)
    monkeypatch.setattr(distributed, "ddp_barrier", lambda: events.append("barrier"))
    monkeypatch.setattr(distributed, "ddp_broadcast", lambda value, *args, **kwargs: value)
    monkeypatch.setattr(startup, "prepare_esc50", lambda **kwargs: events.append("prepare"))
    monkeypatch.setattr(startup, "dataio_prep", lambda hparams: events.append("data") or ("datasets", "encoder"))
    keys = ("data_folder", "audio_data_folder", "train_annotation", "valid_annotation", "test_annotation",
            "train_fold_nums", "valid_fold_nums", "test_fold_nums")  # fmt: skip
    assert startup.prepare_data(dict.fromkeys(keys, "x")) == ("datasets", "encoder")
    assert events == (["prepare", "barrier", "data", "barrier"] if main else ["barrier", "barrier", "data"])
