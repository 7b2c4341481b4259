"""Mutation audit of the export and safety side of recipes/interpreters/inference.py: the
inference yaml an export writes, the folder it moves into place, its self-check, and what a
downloaded folder may name, read and load (`check_inference_yaml`, `_check_loaded`,
`resolve_source`, `claim_savedir`, `trained_settings`). Each test names the mutant(s) it kills.

No training: the exporting Brain is a stand-in (its hparams, modules and label encoder), the
downloaded folders the smallest ones `from_hparams` reads (test_download_red_team). A folder
that gets past every check of `from_hparams` fails at the end with KeyError 'modules' (the
smallest yaml has none, which a real export has). Expected values are written out by hand.
"""

import logging
import os
import sys
import types

import pytest
import torch
from ruamel.yaml import YAML
from speechbrain.dataio.encoder import CategoricalEncoder
from test_download_red_team import HEAD, PRETRAINER, _folder

from recipes.interpreters import inference
from recipes.interpreters.base import InterpreterBrain
from recipes.interpreters.inference import (
    AudioInterpreter,
    UntrustedYamlError,
    _check_loaded,
    _resolved_sizes,
    check_inference_yaml,
    claim_savedir,
    inference_spec,
    resolve_source,
    trained_settings,
)
from recipes.interpreters.l2i import L2I
from recipes.interpreters.lmac import LMAC


class Tiny(InterpreterBrain):
    """An interpreter class that declares one of each: a key, a fixed value, a frozen module."""

    inference_keys = ("mask_th",)
    inference_fixed = {"finetuning": False}
    inference_frozen = {"nmf_decoder": "nmf_decoder_path"}


#: The resolved training yaml of a Tiny run: sizes, the classifier, the frozen decoder, psi.
TRAINING_YAML = """sample_rate: 16000
signal_length_s: 1.0
n_fft: 512
mask_th: 0.35
embedding_model: !new:torch.nn.Linear [4, 3]
classifier: !new:torch.nn.Linear [3, 2]
nmf_decoder: !new:torch.nn.Identity
modules:
    psi: !new:torch.nn.Linear [3, 4]
"""


def tiny_brain(tmp_path, **more):
    """A trained Tiny Brain as `inference_yaml` / `export_inference` read it; its output folder
    holds TRAINING_YAML."""
    output = tmp_path / "run"
    output.mkdir()
    (output / "hyperparams.yaml").write_text(TRAINING_YAML, encoding="utf-8")
    hparams = types.SimpleNamespace(
        interpreter_class=Tiny,
        output_folder=str(output),
        sample_rate=16000,
        signal_length_s=1.0,
        n_fft=512,
        mask_th=0.35,
        embedding_model=torch.nn.Linear(4, 3),
        classifier=torch.nn.Linear(3, 2),
        nmf_decoder=torch.nn.Identity(),
    )
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(["a", "b"])
    psi = torch.nn.Linear(3, 4)
    fields = {"hparams": hparams, "modules": {"psi": psi}, "label_encoder": encoder, "unwrapped": lambda name: psi}
    return types.SimpleNamespace(**{**fields, **more})


# ---------------------------------------------------------------- inference_spec, inference_yaml


def test_inference_spec_gives_each_classs_fixed_values_and_frozen_modules():
    """Kills X1 (`fixed` given as {}: LMAC's finetuning would no longer be held at False) and
    X2 (`frozen` given as {}: L2I's NMF decoder neither exported nor loaded)."""
    assert inference_spec(LMAC) == {"keys": ("l_in_w", "l_out_w", "reg_w_l1", "g_w"), "fixed": {"finetuning": False}, "frozen": {}}
    assert inference_spec(L2I) == {
        "keys": ("relevance_th", "relevance_centered", "theta_pooling"),
        "fixed": {},
        "frozen": {"nmf_decoder": "nmf_decoder_path"},
    }


def test_a_class_of_a_script_run_as_main_is_not_exported(tmp_path):
    """Kills X3 (the `__main__` check dropped): a Brain class defined in a script run as a
    script is named `__main__.PIQ`, which no other process can import."""
    script_class = type("PIQ", (InterpreterBrain,), {"__module__": "__main__"})
    brain = tiny_brain(tmp_path)
    brain.hparams.interpreter_class = script_class
    with pytest.raises(ValueError, match="has no `interpreter_class`"):
        inference.inference_yaml(brain, tmp_path / "run" / "hyperparams.yaml")


def test_a_run_without_a_key_the_class_needs_is_not_exported(tmp_path):
    """Kills X4 (the missing-key check dropped): a run without `mask_th` would export a yaml
    its own class cannot load."""
    brain = tiny_brain(tmp_path)
    del brain.hparams.mask_th
    with pytest.raises(ValueError, match=r"The Tiny run has no \['mask_th'\], which its inference yaml needs"):
        inference.inference_yaml(brain, tmp_path / "run" / "hyperparams.yaml")


def test_the_inference_yaml_holds_the_classs_fixed_values_and_a_strict_hook_per_checkpoint(tmp_path):
    """Kills X7 (the class's `inference_fixed` not written: LMAC's finetuning left to the yaml's
    default), X1 (the same through `inference_spec`) and X8 (hooks for the interpreter's own
    modules only, which the integration tests catch too): every checkpoint, the classifier's and
    the frozen decoder's too, is loaded by load_state_dict_strict."""
    brain = tiny_brain(tmp_path)
    text = inference.inference_yaml(brain, tmp_path / "run" / "hyperparams.yaml")
    document = YAML(typ="rt").load(text)
    assert {key: document[key] for key in ("use_pretrained", "add_wham_noise", "use_tensorboard", "finetuning")} == {
        "use_pretrained": False,
        "add_wham_noise": False,
        "use_tensorboard": False,
        "finetuning": False,
    }
    assert document["mask_th"] == 0.35 and document["n_fft"] == 512
    assert "nmf_decoder_path: !ref <pretrained_path>/nmf_decoder.ckpt" in text
    hooks = document["pretrainer"]["custom_hooks"]
    assert sorted(hooks) == ["classifier", "embedding_model", "nmf_decoder", "psi"]
    for name, hook in hooks.items():
        assert hook.tag.value == "!name:recipes.core.brains.load_state_dict_strict"
        assert hook["what"] == f"Tiny {name}"


# ---------------------------------------------------------------- export_inference


def test_a_brain_without_a_label_encoder_is_refused_before_anything_is_written(tmp_path):
    """Kills X9 (the label-encoder check dropped)."""
    brain = tiny_brain(tmp_path, label_encoder=None)
    with pytest.raises(ValueError, match="The Brain has no label encoder"):
        inference.export_inference(brain, tmp_path / "out" / "inference")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_the_exported_folder_is_readable_by_others_as_the_umask_says(tmp_path, monkeypatch):
    """Kills X10 (the chmod of the staging folder dropped): mkdtemp makes it 0o700, so the
    shared folder would be the exporter's alone. Umask 0o022: 0o777 & ~0o022 = 0o755."""
    monkeypatch.setattr(inference, "_check_export", lambda brain, staging: None)
    brain = tiny_brain(tmp_path)
    previous = os.umask(0o022)
    try:
        folder = inference.export_inference(brain, tmp_path / "out" / "inference")
    finally:
        os.umask(previous)
    assert folder == str(tmp_path / "out" / "inference")
    assert os.stat(folder).st_mode & 0o777 == 0o755
    assert sorted(os.listdir(folder)) == [
        "classifier.ckpt",
        "embedding_model.ckpt",
        "hyperparams.yaml",
        "label_encoder.txt",
        "nmf_decoder.ckpt",
        "psi_model.ckpt",
    ]


# ---------------------------------------------------------------- _check_export


def _check_export(tmp_path, monkeypatch, yaml_text="a: 1\n", loaded_class=1):
    """`_check_export` of a Brain whose class is 1 and whose mask is all 0.5, against a loaded
    folder of class `loaded_class` and the same mask; the keyword arguments from_hparams got."""
    mask = torch.full((1, 4, 3), 0.5)
    brain = types.SimpleNamespace(
        hparams=types.SimpleNamespace(sample_rate=100, signal_length_s=1.0),
        device="cpu",
        explain=lambda wav: {"classes": torch.tensor([1]), "mask": mask},
    )
    loaded = types.SimpleNamespace(
        interpret_batch=lambda wav: {"class_index": torch.tensor([loaded_class]), "mask": mask.clone()}
    )
    given = {}

    def from_hparams(cls, **kwargs):
        given.update(kwargs)
        return loaded

    (tmp_path / "hyperparams.yaml").write_text(yaml_text, encoding="utf-8")
    monkeypatch.setattr(inference.AudioInterpreter, "from_hparams", classmethod(from_hparams))
    inference._check_export(brain, str(tmp_path))
    return given


def test_the_exports_self_check_refuses_another_class_with_the_same_mask(tmp_path, monkeypatch):
    """Kills X16 (the class comparison dropped): the same mask but class 2 instead of 1."""
    with pytest.raises(RuntimeError, match=r"does not reproduce the trained one \(class \[2\] vs \[1\]"):
        _check_export(tmp_path, monkeypatch, loaded_class=2)


def test_the_exports_self_check_loads_the_runs_own_yaml_as_trusted(tmp_path, monkeypatch):
    """Kills X15 (trust_code=False): the run's own yaml, a classifier of the user's own included
    (README, "Your own classifier"), is loaded by the process that built its classes."""
    given = _check_export(tmp_path, monkeypatch)
    assert given == {"source": str(tmp_path), "run_opts": {"device": "cpu"}, "trust_code": True}


def test_an_export_naming_code_outside_the_project_warns_that_loading_needs_trust(tmp_path, monkeypatch, caplog):
    """Kills X14 (the export's own check run with trust_code=True: never a warning). A yaml
    that builds a class outside the trusted modules is exported with a warning naming
    --trust_code; a yaml of trusted classes without one."""
    with caplog.at_level(logging.WARNING, logger=inference.logger.name):
        _check_export(tmp_path, monkeypatch, yaml_text="a: !new:torch.nn.Linear [2, 3]\n")
    assert not [record for record in caplog.records if "trust_code" in record.getMessage()]
    with caplog.at_level(logging.WARNING, logger=inference.logger.name):
        _check_export(tmp_path, monkeypatch, yaml_text="a: !new:my_own_classifiers.Net\n")
    (record,) = [record for record in caplog.records if "trust_code" in record.getMessage()]
    assert "loading it needs trust_code=True (audio-interpret --trust_code)" in record.getMessage()


# ---------------------------------------------------------------- resolve_source


def test_a_folder_holding_an_empty_inference_folder_is_itself_the_interpreter(tmp_path):
    """Kills X19 (any `inference/` subfolder taken for the run's export, a yaml in it or not)."""
    (tmp_path / "inference").mkdir()
    (tmp_path / "hyperparams.yaml").write_text("pretrained_path: !PLACEHOLDER\n", encoding="utf-8")
    assert resolve_source(tmp_path) == str(tmp_path)
    (tmp_path / "inference" / "hyperparams.yaml").write_text("pretrained_path: !PLACEHOLDER\n", encoding="utf-8")
    assert resolve_source(tmp_path) == str(tmp_path / "inference")


def test_a_yaml_that_is_a_broken_link_is_named_as_a_link_not_as_missing(tmp_path):
    """Kills X20 (`lexists` made `exists`: a link to nowhere said to be no file at all)."""
    (tmp_path / "hyperparams.yaml").symlink_to(tmp_path / "gone.yaml")
    with pytest.raises(ValueError, match=r"its hyperparams.yaml \(.*gone.yaml\) is not a plain file"):
        resolve_source(tmp_path)


def test_resolve_source_reads_no_yaml_larger_than_an_export_writes(tmp_path, monkeypatch):
    """Kills X21 (resolve_source's size bound dropped: it read the whole yaml, however large,
    before from_hparams checked it). The bound lowered to 30 bytes; the yaml is 31."""
    text = "pretrained_path: !PLACEHOLDER\n" + "#"  # 30 + 1 characters
    (tmp_path / "hyperparams.yaml").write_text(text, encoding="utf-8")
    monkeypatch.setattr(inference, "MAX_TEXT_BYTES", 30)
    with pytest.raises(ValueError, match=r"its hyperparams.yaml \(.*\) holds 31 bytes, more than the 30 bytes"):
        resolve_source(tmp_path)
    monkeypatch.setattr(inference, "MAX_TEXT_BYTES", 31)
    assert resolve_source(tmp_path) == str(tmp_path)


# ---------------------------------------------------------------- what a yaml may name


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A module `recipes_planted_audit` on the path (its name starts like the project's package,
    as one planted beside a downloaded folder could): importing it writes a marker file."""
    marker = tmp_path / "IMPORTED"
    (tmp_path / "recipes_planted_audit.py").write_text(
        f"import torch\nopen({str(marker)!r}, 'w').close()\n"
        "class Net(torch.nn.Module):\n    pass\n"
        "class PIQ:\n    inference_keys = ('mask_th',)\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop("recipes_planted_audit", None)


def test_a_module_named_like_the_project_is_neither_imported_nor_trusted(planted):
    """Kills X31 (`_within` by name prefix, without the dot: `recipes_planted_audit` inside
    `recipes`): it would be imported (run) and its Module built."""
    with pytest.raises(UntrustedYamlError, match="has `!new:recipes_planted_audit.Net`"):
        check_inference_yaml("a: !new:recipes_planted_audit.Net\n", "x.yaml")
    assert not planted.exists()


def test_trained_settings_do_not_import_a_module_named_like_the_project(planted, tmp_path):
    """Kills X25 (the package test made `startswith("recipes")`): `recipes_planted_audit` would
    be imported to read its class's keys."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "hyperparams.yaml").write_text("interpreter_class: !name:recipes_planted_audit.PIQ\nmask_th: 0.5\nn_fft: 512\n")
    assert trained_settings(run)[0] == {"n_fft": 512}
    assert not planted.exists()


def test_a_trained_setting_holding_a_plain_reference_is_refused(tmp_path):
    """Kills X26 (only `<key.attribute>` refused): `n_fft: <seed>` would be passed on to the
    recipe's yaml as `--n_fft=<seed>`, there the value of another key."""
    (tmp_path / "hyperparams.yaml").write_text("n_fft: <seed>\n")
    with pytest.raises(UntrustedYamlError, match="The trained setting n_fft: <seed> holds a reference"):
        trained_settings(tmp_path)


def test_a_name_of_the_project_that_names_nothing_says_so():
    """Kills X33 (AttributeError no longer caught: a crash) and X47 (the "names nothing" check
    dropped: said to be untrusted code instead of a truncated yaml)."""
    with pytest.raises(ValueError, match="names nothing in recipes: the yaml is truncated") as error:
        check_inference_yaml("a: !new:recipes.interpreters.piq.NoSuchClass\n", "x.yaml")
    assert not isinstance(error.value, UntrustedYamlError)


def test_a_library_module_a_project_module_imports_is_not_trusted_by_being_reachable():
    """Kills X35 (the class's own module not checked): `models.transformer_backbones.ViTModel`
    is transformers' ViTModel, imported there; only the classes defined in trusted modules pass."""
    with pytest.raises(UntrustedYamlError, match="has `!new:models.transformer_backbones.ViTModel`"):
        check_inference_yaml("a: !new:models.transformer_backbones.ViTModel\n", "x.yaml")
    text = "a: !new:models.transformer_backbones.AudioViT\n"  # defined there: an export writes it
    assert check_inference_yaml(text, "x.yaml") == text


def test_a_tuple_holding_a_python_tag_in_a_mapping_is_refused():
    """Kills X40 (only lists inside a tuple's items searched): the tag is a mapping's value (a
    quoted `!tuple`: a plain scalar holds no `: `)."""
    with pytest.raises(UntrustedYamlError, match="tuple holding the yaml tag `tag:yaml.org,2002:python/object/apply"):
        check_inference_yaml('evil: !tuple "(1, {k: !!python/object/apply:os.system [ls]})"\n', "x.yaml")


def test_an_explicit_tuple_tag_is_checked_whatever_its_text(tmp_path):
    """A real gap, fixed: hyperpyyaml reads a `!tuple` value's text[1:-1] as a list whatever the
    text, but `check_inference_yaml` looked only at `(...)` values on one line, so `!tuple "x!!python
    ... y"` and a quoted "(1,\\n!!python ...)" passed it (the loader's `_plain_tuple` still refused
    them: nothing ran). Kills X63 (the `!tuple` test dropped again)."""
    for value in ('"x!!python/object/apply:os.system [ls], 1y"', '"(1,\\n!!python/object/apply:os.system [ls])"'):
        with pytest.raises(UntrustedYamlError, match="tuple holding the yaml tag `tag:yaml.org,2002:python/object/apply"):
            check_inference_yaml(f"evil: !tuple {value}\n", "x.yaml")
    text = 'size: !tuple "(2, 3)"\n'
    assert check_inference_yaml(text, "x.yaml") == text


def test_an_attribute_reference_through_an_index_is_refused():
    """Kills X24 (`<key[0].attribute>` not matched by the attribute-reference pattern)."""
    with pytest.raises(UntrustedYamlError, match=r"has `<holder\[0\].unlink>`: a reference to an attribute"):
        check_inference_yaml("kill: !ref <holder[0].unlink>\n", "x.yaml")


def test_apply_is_refused_even_for_a_trusted_class():
    """Kills X49 (`!apply:` accepted as `!new:` is): `!apply:` calls what it names at load time;
    an export writes none."""
    with pytest.raises(UntrustedYamlError, match="has `!apply:torch.nn.Linear`"):
        check_inference_yaml("a: !apply:torch.nn.Linear [2, 3]\n", "x.yaml")


# ---------------------------------------------------------------- _resolved_sizes


def test_resolved_sizes_count_indexed_references_and_references_in_mappings():
    """Kills X43 (`<a[0]>` counted as a key named `a[0]`, i.e. 0) and X44 (mapping values not
    counted). b: "<a[0]>/x" is 8 characters plus a's 3; c: its key "x" (1) and "<a><a>" (6)
    plus a twice (6)."""
    sizes = _resolved_sizes(YAML().compose("a: abc\nb: !ref <a[0]>/x\nc:\n    x: !ref <a><a>\n"))
    assert sizes == {"a": 3, "b": 8 + 3, "c": 1 + 6 + 3 + 3}


def test_the_largest_resolved_key_is_the_one_named(monkeypatch):
    """Kills X51 (the key with the last name taken for the largest): b is 3 characters, a
    ("<b><b>") 6 + 3 + 3 = 12, over a bound of 11; b alone is under it."""
    monkeypatch.setattr(inference, "MAX_TEXT_BYTES", 11)
    with pytest.raises(UntrustedYamlError, match="x.yaml: its key a holds about 12 characters"):
        check_inference_yaml("b: abc\na: !ref <b><b>\n", "x.yaml")


# ---------------------------------------------------------------- claim_savedir


def test_a_savedir_is_not_taken_for_a_folder_whose_name_extends_its_own(tmp_path):
    """Kills X53 (`==` made `in`): the savedir of /runs/piq/inference holds its files, not
    those of /runs/piq/inference2."""
    claim_savedir(tmp_path / "saved", "/runs/piq/inference")
    with pytest.raises(ValueError, match="holds the files of /runs/piq/inference, not of /runs/piq/inference2"):
        claim_savedir(tmp_path / "saved", "/runs/piq/inference2")
    claim_savedir(tmp_path / "saved", "/runs/piq/inference")  # the same one again: fine


# ---------------------------------------------------------------- _check_loaded


def _pretrainer(source, **more):
    """A Pretrainer's fields as _check_loaded reads them: nothing loaded, no conditions."""
    return types.SimpleNamespace(**{"conditions": None, "paths": {}, "loadables": {}, "custom_hooks": {}, **more})


def test_a_fixed_setting_given_as_an_override_is_the_users_and_a_missing_one_is_no_error(tmp_path):
    """Kills X55 (an override of a fixed setting refused: the message offers it) and X56 (a
    fixed key the yaml lacks read anyway: KeyError)."""
    hparams = {"add_wham_noise": True, "pretrainer": _pretrainer(str(tmp_path))}  # no use_tensorboard
    assert _check_loaded(hparams, {"add_wham_noise": True}, str(tmp_path), "x.yaml") is None
    with pytest.raises(UntrustedYamlError, match="x.yaml sets add_wham_noise: True"):
        _check_loaded(hparams, {}, str(tmp_path), "x.yaml")


def test_a_checkpoint_path_that_is_the_folder_or_its_parent_is_refused(tmp_path):
    """Kills X58 (the basename test dropped): `<pretrained_path>/..` has the folder as its
    dirname, and is its parent."""
    for path in (f"{tmp_path}/..", f"{tmp_path}/."):
        hparams = {"pretrainer": _pretrainer(str(tmp_path), paths={"psi": path})}
        with pytest.raises(UntrustedYamlError, match=r"reads psi from .*, outside the folder"):
            _check_loaded(hparams, {}, str(tmp_path), "x.yaml")


def test_a_finetuning_lmac_folder_is_refused(tmp_path):
    """Kills X1 and X57 (the class's `inference_fixed` not enforced): an L-MAC yaml with
    `finetuning: true`."""
    head = HEAD.replace("recipes.interpreters.piq.PIQ", "recipes.interpreters.lmac.LMAC") + "finetuning: true\n"
    with pytest.raises(UntrustedYamlError, match="sets finetuning: True, which an inference folder loads as False"):
        AudioInterpreter.from_hparams(source=_folder(tmp_path, head=head))


@pytest.mark.parametrize("name", ["psi", "label_encoder"])
def test_a_checkpoint_hook_other_than_the_strict_loader_is_refused(tmp_path, name):
    """Kills X59 (any hook accepted) and X60 (the label encoder's hook not checked):
    `!name:torch.nn.Identity` passes the tag check (a torch Module), and as a hook it loads
    nothing, leaving psi at random weights or the label encoder empty."""
    hooks = "    custom_hooks:\n        psi: !name:recipes.core.brains.load_state_dict_strict\n            what: PIQ psi\n"
    if name == "psi":
        pretrainer = PRETRAINER.replace(hooks, "    custom_hooks:\n        psi: !name:torch.nn.Identity\n")
    else:
        pretrainer = PRETRAINER + "        label_encoder: !name:torch.nn.Identity\n"
    assert pretrainer != PRETRAINER
    with pytest.raises(UntrustedYamlError, match=f"loads {name} otherwise than an export does"):
        AudioInterpreter.from_hparams(source=_folder(tmp_path, pretrainer=pretrainer))
    (tmp_path / "ok").mkdir()
    with pytest.raises(KeyError, match="modules"):  # the export's hooks: past every check
        AudioInterpreter.from_hparams(source=_folder(tmp_path / "ok", pretrainer=PRETRAINER))


def test_an_override_of_a_fixed_setting_loads_past_the_checks(tmp_path):
    """Kills X55 through from_hparams: `overrides={"add_wham_noise": True}` is the user's own."""
    with pytest.raises(KeyError, match="modules"):
        AudioInterpreter.from_hparams(source=_folder(tmp_path), overrides={"add_wham_noise": True})
