"""What a user of a downloaded inference folder and of `audio-interpret` relies on, without a
trained interpreter: settings, the yaml safety check, savedirs and output names
(recipes/interpreters/inference.py, recipes/interpret_files.py).

Expected values are written out by hand; every file is a real one in tmp_path.
"""

import json
import sys

import pytest

from recipes.interpret_files import earlier_outputs, plan_outputs
from recipes.interpreters.inference import (
    UntrustedYamlError,
    check_inference_yaml,
    claim_savedir,
    resolve_source,
    same_setting,
    trained_settings,
)


def test_same_setting_compares_numbers_with_float_rounding_only():
    """Guards `same_setting`: 0.1 + 0.2 is the 0.3 a yaml holds, but a value 0.1 % off is
    another setting (a loose tolerance would let a contradicting value through)."""
    assert same_setting(0.1 + 0.2, 0.3)
    assert same_setting(16000, 16000.0)
    assert not same_setting(1.0, 1.001)
    assert not same_setting(0.5, 0.505)
    assert not same_setting("1", 1)


def test_trained_settings_reads_the_inference_yaml_first(tmp_path):
    """Guards `trained_settings`: a run folder holding both yamls is read through its
    `inference/hyperparams.yaml` (the docstring's order), and `where` names that file."""
    (tmp_path / "inference").mkdir()
    (tmp_path / "hyperparams.yaml").write_text("n_fft: 1024\nsample_rate: 16000\n")
    (tmp_path / "inference" / "hyperparams.yaml").write_text(
        "pretrained_path: !PLACEHOLDER\nn_fft: 512\nsample_rate: 16000\n"
    )
    settings, where = trained_settings(tmp_path)
    assert where == str(tmp_path / "inference" / "hyperparams.yaml")
    assert settings == {"n_fft": 512, "sample_rate": 16000}
    # a file of the run stands for its folder
    (tmp_path / "psi_model.ckpt").write_bytes(b"")
    assert trained_settings(tmp_path / "psi_model.ckpt") == (settings, where)


def test_trained_settings_leave_out_the_class_count(tmp_path):
    """Guards `_settings_of`: out_n_neurons is the data's, not a trained setting to enforce."""
    (tmp_path / "hyperparams.yaml").write_text("out_n_neurons: 50\nhop_length: 256\n")
    assert trained_settings(tmp_path)[0] == {"hop_length": 256}


def test_trained_settings_of_an_old_yaml_include_its_classs_keys(tmp_path):
    """Guards the MOVED_NAMES rewrite of `_settings_of`: a yaml written before the move
    (`recipes.train_piq.PIQ`) still has PIQ's inference keys enforced (here `mask_th`)."""
    (tmp_path / "hyperparams.yaml").write_text(
        "interpreter_class: !name:recipes.train_piq.PIQ\nmask_th: 0.35\nn_fft: 512\n"
    )
    assert trained_settings(tmp_path)[0] == {"n_fft": 512, "mask_th": 0.35}


def test_trained_settings_never_import_a_module_outside_the_project(tmp_path, monkeypatch):
    """Guards `_settings_of`: reading a run's yaml must not import (run) a module it names
    outside `recipes`, e.g. a module planted beside a downloaded folder."""
    marker = tmp_path / "IMPORTED"
    (tmp_path / "planted_audit_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass PIQ:\n    inference_keys = ('mask_th',)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tmp_path / "run"
    run.mkdir()
    (run / "hyperparams.yaml").write_text(
        "interpreter_class: !name:planted_audit_module.PIQ\nmask_th: 0.5\n"
    )
    try:
        assert trained_settings(run)[0] == {}
        assert not marker.exists()
    finally:
        sys.modules.pop("planted_audit_module", None)


@pytest.mark.parametrize(
    "line",
    [
        "a: !new:torch.save [1, x.pt]",  # a function called at load time
        "a: !new:recipes.core.brains.load_state_dict_strict",
        "a: !new:torchaudio.transforms.Resample [44100, 16000]",  # not in TRUSTED_MODULES, only named alike
        "a: !new:speechbrainx.Thing",
        "a:\n    - 1\n    - !new:subprocess.Popen [[ls]]",  # in a list
        "a:\n    b:\n        - c: !apply:os.system [ls]",  # deep in maps and lists
        "!new:subprocess.Popen [[ls]]: 1",  # as a key
        # a SpeechBrain class that runs a folder's or the hub's Python (transformers' auto_map)
        "a: !new:speechbrain.lobes.models.huggingface_transformers.huggingface.HFTransformersInterface\n"
        "    source: /tmp/x\n    trust_remote_code: True",
        "a: !new:speechbrain.inference.classifiers.EncoderClassifier",  # a hub fetcher
        "a: !new:recipes.interpreters.inference.Path [x]",  # a class a trusted module imports
        "a: !new:torch.nn.modulesx.Thing",  # named like a trusted library module
        "a: !new:torch.utils.model_dump.__main__.Foo",  # a module that runs (and exits) when imported
    ],
)
def test_a_yaml_is_refused_when_it_builds_more_than_trusted_classes(line):
    """Guards `check_inference_yaml` / `_trusted_target` / `_trusted_object`: `!new:` builds only a
    class, only of the trusted packages themselves (not a package whose name starts alike), and
    every node is checked wherever it is nested."""
    with pytest.raises(UntrustedYamlError, match="may only build classes"):
        check_inference_yaml(f"ok: !new:torch.nn.Linear [2, 3]\n{line}\n", "x.yaml")


#: The classes the exports of this project's yamls write (their classifiers, signal modules,
#: interpreters, the label encoder and the Pretrainer), by the paths the yamls give them.
EXPORTED_CLASSES = (
    "models.L2I.PsiOptimized",
    "models.PIQ.VectorQuantizedPSI_Audio",
    "models.LMAC.Conv2dMaskDecoder",
    "models.transformer_backbones.AudioAST",
    "recipes.interpreters.piq.PIQ",
    "speechbrain.dataio.encoder.CategoricalEncoder",
    "speechbrain.lobes.models.ECAPA_TDNN.Classifier",
    "speechbrain.lobes.models.Cnn14.Cnn14",
    "speechbrain.lobes.models.Cnn14.CNN14PSI_stft",
    "speechbrain.processing.features.STFT",
    "speechbrain.processing.features.ISTFT",
    "speechbrain.processing.features.Filterbank",
    "speechbrain.utils.parameter_transfer.Pretrainer",
    "torch.nn.Linear",
    "torch.nn.Identity",
)


@pytest.mark.parametrize("target", EXPORTED_CLASSES)
def test_the_classes_an_export_writes_pass(target):
    """Guards `TRUSTED_LIBRARY_MODULES` / `_trusted_target` against refusing a class an
    export writes (each path as the yamls give it: `torch.nn.Linear` is defined in
    `torch.nn.modules.linear`; the interpreter class as the export names it, `!name:` bare)."""
    kind = "name" if target.startswith("recipes.interpreters.") else "new"
    text = f"a: !{kind}:{target}\n"
    assert check_inference_yaml(text, "x.yaml") == text


def test_a_yaml_of_trusted_classes_and_functions_passes():
    """Guards `check_inference_yaml` against refusing what an export writes (`!name:` of a
    function, `!new:` of a class, `!ref`), nested."""
    text = (
        "pretrained_path: !PLACEHOLDER\n"
        "m: !new:torch.nn.Sequential\n    - !new:torch.nn.Linear [2, 3]\n"
        "hooks:\n    x: !name:recipes.core.brains.load_state_dict_strict\n"
        "p: !ref <pretrained_path>/a.ckpt\n"
    )
    assert check_inference_yaml(text, "x.yaml") == text


def test_a_savedir_with_a_users_file_and_a_stale_partial_record_is_refused(tmp_path):
    """Guards `claim_savedir`: a folder holding a file of the user's is refused even when a
    crashed run left `.interpreter_source.txt.partial` in it; the user's file is untouched."""
    savedir = tmp_path / "mine"
    savedir.mkdir()
    (savedir / ".interpreter_source.txt.partial").write_text("")
    (savedir / "hyperparams.yaml").write_text("my own\n")
    with pytest.raises(ValueError, match="already holds files and no interpreter_source.txt"):
        claim_savedir(savedir, "/runs/piq/inference")
    assert (savedir / "hyperparams.yaml").read_text() == "my own\n"
    assert not (savedir / "interpreter_source.txt").exists()


def test_a_folder_with_a_training_yaml_is_not_taken_for_an_inference_folder(tmp_path):
    """Guards `resolve_source`: a yaml without `pretrained_path` (a training yaml) is refused
    with the folder to give instead."""
    (tmp_path / "hyperparams.yaml").write_text("sample_rate: 16000\nnumber_of_epochs: 10\n")
    with pytest.raises(ValueError, match="not an exported inference yaml"):
        resolve_source(tmp_path)
    (tmp_path / "hyperparams.yaml").write_text(
        "pretrained_path: !PLACEHOLDER\nsample_rate: 16000\n"
    )
    assert resolve_source(tmp_path) == str(tmp_path)


def _predictions(out, files, **more):
    """A predictions.json as audio-interpret writes it."""
    record = {"interpreter": "runs/piq/inference", "method": "PIQ", "files": files, **more}
    (out / "predictions.json").write_text(json.dumps(record))


@pytest.mark.parametrize(
    "record",
    [{"files": {}}, {"files": {"x": {"files": {}}}, "mine": "user data"}, {"interpreter": 1, "method": "PIQ", "files": {}}],
)
def test_a_predictions_json_of_the_users_is_refused(tmp_path, record):
    """Guards `earlier_predictions`: a json with a "files" map alone was taken for the
    command's and written over (found by a probe)."""
    (tmp_path / "predictions.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="is not a predictions.json of audio-interpret"):
        plan_outputs([str(tmp_path / "in" / "dog.wav")], str(tmp_path))


def test_outputs_of_a_killed_run_and_of_earlier_runs_are_ours(tmp_path):
    """Guards `earlier_outputs`: the names a killed run noted in its ledger, and the "outputs"
    every run lists by name (a rerun from another working folder: its entries' paths were
    relative to the first run's), are rewritten, not renamed around (found by a probe: c01-2*
    ... beside the killed run's c01*)."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("c01.png", "c01_original.wav", "c01_interpretation.wav", "mono.png", "mine.png"):
        (out / name).write_bytes(b"x")
    (out / ".audio-interpret-writing-0").write_text("c01.png\nc01_original.wav\nc01_interpretation.wav\n")
    _predictions(out, {"in/mono.wav": {"files": {"png": "o3/mono.png"}}}, outputs=["mono.png"])
    assert earlier_outputs(str(out)) == {
        "c01.png", "c01_original.wav", "c01_interpretation.wav", "mono.png", ".audio-interpret-writing-0",
    }
    _, stems, notes = plan_outputs([str(tmp_path / "c01.wav"), str(tmp_path / "mono.wav"), str(tmp_path / "mine.wav")], str(out))
    assert stems == {str(tmp_path / "c01.wav"): "c01", str(tmp_path / "mono.wav"): "mono", str(tmp_path / "mine.wav"): "mine-2"}


def test_earlier_outputs_are_the_files_listed_in_out_only(tmp_path):
    """Guards `earlier_outputs`: a listed file of another folder does not make the user's file
    of the same name in `out` an earlier output; component lists are read item by item."""
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    _predictions(
        out,
        {
            "a.wav": {
                "files": {
                    "png": str(elsewhere / "dog.png"),
                    "interpretation": str(out / "a_interpretation.wav"),
                    "components": [
                        str(out / "a_component001.wav"),
                        str(out / "a_component004.wav"),
                    ],
                }
            }
        },
    )
    assert earlier_outputs(str(out)) == {
        "a_interpretation.wav",
        "a_component001.wav",
        "a_component004.wav",
    }


def test_two_inputs_of_one_name_get_two_stems(tmp_path):
    """Guards `plan_outputs`: `a/dog.wav` and `b/dog.wav` must not write the same outputs."""
    out = tmp_path / "out"
    unique, stems, notes = plan_outputs(
        [str(tmp_path / "a" / "dog.wav"), str(tmp_path / "b" / "dog.wav")], str(out)
    )
    assert [stems[path] for path in unique] == ["dog", "dog-2"]
    assert notes == [
        f"{tmp_path / 'b' / 'dog.wav'}: its outputs are named dog-2* in {out} (dog is the name of another input's outputs)."
    ]


def test_a_users_component_named_file_is_not_overwritten(tmp_path):
    """Guards `_writes` in `plan_outputs`: an L2I run writes `<stem>_component<k>.wav`, so a
    user's `dog_component001.wav` already in `out` moves dog's outputs to `dog-2`."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "dog_component001.wav").write_bytes(b"mine")
    _, stems, notes = plan_outputs([str(tmp_path / "dog.wav")], str(out))
    assert stems[str(tmp_path / "dog.wav")] == "dog-2"
    assert "dog_component001.wav is already there and no earlier run wrote it" in notes[0]


def test_an_earlier_runs_component_is_rewritten_not_renamed(tmp_path):
    """Guards `earlier_outputs` with `plan_outputs`: a rerun on the same `out` writes over the
    components its predictions.json lists (no `dog-2`)."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("dog.png", "dog_component003.wav"):
        (out / name).write_bytes(b"ours")
    _predictions(
        out,
        {
            "dog.wav": {
                "files": {
                    "png": str(out / "dog.png"),
                    "components": [str(out / "dog_component003.wav")],
                }
            }
        },
    )
    _, stems, notes = plan_outputs([str(tmp_path / "dog.wav")], str(out))
    assert stems == {str(tmp_path / "dog.wav"): "dog"} and notes == []


@pytest.mark.parametrize("name", ["predictions.json", ".run.lock"])
def test_an_input_the_run_itself_would_write_is_refused(tmp_path, name):
    """Guards `plan_outputs`: `out/predictions.json` (or the lock) given as an input would be
    written over at the end of the run: refused before any work."""
    (tmp_path / name).write_text("{}")
    with pytest.raises(ValueError, match=f"is an input, and audio-interpret writes {name}"):
        plan_outputs([str(tmp_path / name)], str(tmp_path))


@pytest.mark.parametrize(
    "line",
    [
        'evil: !!python/object/apply:os.system ["touch MARKER"]',
        'evil: !<tag:yaml.org,2002:python/object/apply:os.system> ["touch MARKER"]',
        "evil: !!python/name:os.system",
        '%TAG !p! tag:yaml.org,2002:python/\n---\nevil: !p!object/apply:os.system ["touch MARKER"]',
    ],
)
def test_a_yaml_python_tag_is_refused(line, tmp_path, monkeypatch):
    """Guards `check_inference_yaml` against yaml's own python tags: hyperpyyaml's loader
    builds `!!python/object/apply:os.system [...]`, i.e. runs the command, so a downloaded
    folder holding one is refused unless trust_code, and the command has not run."""
    monkeypatch.chdir(tmp_path)
    text = f"{line}\npretrained_path: !PLACEHOLDER\n" if line.startswith("%") else f"pretrained_path: !PLACEHOLDER\n{line}\n"
    with pytest.raises(UntrustedYamlError, match="yaml tag `tag:yaml.org,2002:python/"):
        check_inference_yaml(text, "x.yaml")
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("target", ["torch.save", "data_prep.files.write_text", "speechbrain.utils.checkpoints.torch_save"])
def test_a_yaml_may_not_name_a_function_the_export_does_not_write(target):
    """Guards `TRUSTED_FUNCTIONS`: the Pretrainer calls a checkpoint's hook as hook(module,
    path), and `!name:torch.save` there would write over the file the path links to (a
    user's file, through the savedir's links): only `load_state_dict_strict` is named."""
    text = f"pretrained_path: !PLACEHOLDER\nhooks:\n    psi: !name:{target}\n"
    with pytest.raises(UntrustedYamlError, match=f"has `!name:{target}`"):
        check_inference_yaml(text, "x.yaml")
    assert check_inference_yaml(text, "x.yaml", trust_code=True) == text


def test_only_owner_slash_name_is_taken_for_a_hub_id(tmp_path, monkeypatch):
    """Guards `_is_hub_id` via `resolve_source`: a missing relative path of three parts is a
    mistyped folder (FileNotFoundError), not a hub id sent to the network; `owner/name` is."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_source("runs/piq/inference")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_source("./piq")
    assert resolve_source("someone/piq-esc50") == "someone/piq-esc50"
