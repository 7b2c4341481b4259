"""A downloaded inference folder is data: ways its yaml ran code or touched files outside itself
when loaded with `AudioInterpreter.from_hparams`, each refused with a message naming it.

Each folder here is the smallest one `from_hparams` reads (a Linear psi, a label encoder); what
an attack would do (a file deleted, a command run, a folder made) is checked not to have happened.
"""

import pytest
import torch
from speechbrain.dataio.encoder import CategoricalEncoder

from recipes.core.startup import load_yaml
from recipes.interpreters.inference import (
    AudioInterpreter,
    UntrustedYamlError,
    check_inference_yaml,
)

HEAD = """pretrained_path: !PLACEHOLDER
sample_rate: 16000
signal_length_s: 1.0
use_pretrained: false
add_wham_noise: false
use_tensorboard: false
psi: !new:torch.nn.Linear [2, 3]
interpreter_class: !name:recipes.interpreters.piq.PIQ
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
"""
PRETRAINER = """pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        psi: !ref <psi>
        label_encoder: !ref <label_encoder>
    paths:
        psi: !ref <pretrained_path>/psi_model.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
    custom_hooks:
        psi: !name:recipes.core.brains.load_state_dict_strict
            what: PIQ psi
"""


def _folder(tmp_path, extra="", pretrainer=PRETRAINER, head=HEAD):
    folder = tmp_path / "downloaded"
    folder.mkdir()
    (folder / "hyperparams.yaml").write_text(head + extra + pretrainer, encoding="utf-8")
    torch.save(torch.nn.Linear(2, 3).state_dict(), folder / "psi_model.ckpt")
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(["a", "b", "c"])
    encoder.save(folder / "label_encoder.txt")
    return folder


def test_a_tuple_holding_a_python_tag_is_refused_and_runs_nothing(tmp_path):
    """hyperpyyaml reads a `(a, b)` value's items with PyYAML's full Loader: this ran `touch`."""
    marker = tmp_path / "ran"
    folder = _folder(tmp_path, f"evil: (1, !!python/object/apply:os.system [touch {marker}])\n")
    with pytest.raises(UntrustedYamlError, match="tuple holding the yaml tag `tag:yaml.org,2002:python/object/apply"):
        AudioInterpreter.from_hparams(source=folder)
    assert not marker.exists()


def test_a_tuple_made_by_a_reference_is_read_as_plain_values(tmp_path):
    """The same tuple put together by `!ref` from harmless-looking strings (the check sees no tag).

    hyperpyyaml writes the resolved reference back as yaml text: whether that text is a plain
    `(...)` (read as a tuple: refused) or a quoted string (kept as text) depends on which tuple
    resolvers earlier loads in the process registered on ruamel's classes. Either way nothing
    runs."""
    marker = tmp_path / "ran"
    extra = f"p1: '!'\np2: '!python/object/apply:os.system [touch {marker}]'\nevil: !ref (1, <p1><p2>)\n"
    try:
        loaded = load_yaml(HEAD + extra, {"pretrained_path": str(tmp_path)}, data=True)
    except ValueError as error:
        assert "is not a list of plain yaml values" in str(error)
    else:
        assert isinstance(loaded["evil"], str)  # text, never a call
    assert not marker.exists()
    assert load_yaml("size: (2, 3.5, x)\n")["size"] == (2, 3.5, "x")  # plain tuples still read


def _unlink_as_condition(tmp_path, references):
    """A user's file, a Pretrainer holding its path, and `references` (yaml lines that end in
    `kill`, the file's `unlink`) given to the interpreter's Pretrainer as a condition:
    (the file, the inference folder)."""
    victim = tmp_path / "precious.txt"
    victim.write_text("mine\n")
    extra = f"holder: !new:speechbrain.utils.parameter_transfer.Pretrainer\n    collect_in: {victim}\n" + references
    pretrainer = PRETRAINER.replace("    custom_hooks:", "    conditions:\n        psi: !ref <kill>\n    custom_hooks:")
    return victim, _folder(tmp_path, extra, pretrainer)


def test_an_attribute_reference_is_refused_and_deletes_nothing(tmp_path):
    """`!ref <key.name>` is hyperpyyaml's `!apply:getattr`: a Pretrainer's `collect_in.unlink`,
    given as a condition, deleted a file of the user's."""
    victim, source = _unlink_as_condition(tmp_path, "victim: !ref <holder.collect_in>\nkill: !ref <victim.unlink>\n")
    with pytest.raises(UntrustedYamlError, match=r"has `<\w+\.\w+>`: a reference to an attribute"):
        AudioInterpreter.from_hparams(source=source)
    assert victim.read_text() == "mine\n"


def test_an_attribute_reference_put_together_from_pieces_is_refused(tmp_path):
    """`<p><q>` gives `<holder.collect_in>`, which hyperpyyaml resolves again (the check sees none)."""
    pieces = "p: '<holder'\nq: '.collect_in>'\nvictim: !ref <p><q>\nr: '.unlink>'\nv: '<victim'\nkill: !ref <v><r>\n"
    victim, source = _unlink_as_condition(tmp_path, pieces)
    with pytest.raises(ValueError, match=r"A reference <key.attribute> \(hyperpyyaml's !apply:getattr\)"):
        AudioInterpreter.from_hparams(source=source)
    assert victim.read_text() == "mine\n"


def test_a_project_class_that_writes_files_is_refused(tmp_path):
    """`WavStream(path)` (recipes.reporting.figures) makes the folders of `path` and a file there."""
    outside = tmp_path / "outside"
    extra = f"evil: !new:recipes.reporting.figures.WavStream\n    path: {outside}/made/x.wav\n    sample_rate: 1\n"
    with pytest.raises(UntrustedYamlError, match="has `!new:recipes.reporting.figures.WavStream`: .*may only build"):
        AudioInterpreter.from_hparams(source=_folder(tmp_path, extra))
    assert not outside.exists()


@pytest.mark.parametrize(
    "line",
    [
        "a: !new:recipes.interpreters.piq.PIQ\n    hparams: {add_wham_noise: true}",  # a Brain of the yaml's settings
        "a: !name:recipes.interpreters.piq.PIQ\n    hparams: {add_wham_noise: true}",  # its partial, called as a hook
        "a: !new:recipes.interpreters.inference.AudioInterpreter\n    hparams: {}",  # a Module that builds a Brain
        "a: !new:recipes.interpreters.piq.PIQ",  # built, not named
        "a: !name:recipes.interpreters.piq.PIQ {}",  # named, with an (empty) mapping of arguments
        "a: !name:recipes.interpreters.piq.PIQ []",
    ],
)
def test_a_brain_given_arguments_is_refused(line):
    with pytest.raises(UntrustedYamlError, match="may only build classes"):
        check_inference_yaml(f"{line}\n", "x.yaml")
    assert check_inference_yaml("a: !name:recipes.interpreters.piq.PIQ\n", "x.yaml")  # as exports write it


def test_a_setting_fixed_for_inference_is_refused(tmp_path):
    """`add_wham_noise: true` made the Brain download WHAM! noise into the yaml's `wham_folder`."""
    outside = tmp_path / "outside"
    head = HEAD.replace("add_wham_noise: false", f"add_wham_noise: true\nwham_folder: {outside}")
    with pytest.raises(UntrustedYamlError, match="sets add_wham_noise: True, which an inference folder loads as False"):
        AudioInterpreter.from_hparams(source=_folder(tmp_path, head=head))
    assert not outside.exists()


def test_a_checkpoint_outside_the_folder_is_refused_unless_the_folder_is_trusted(tmp_path):
    """A folder trusted (`trust_code=True`) reads what it says: here a psi shared beside it."""
    pretrainer = PRETRAINER.replace("<pretrained_path>/psi_model.ckpt", "<pretrained_path>/../elsewhere/psi_model.ckpt")
    folder = _folder(tmp_path, pretrainer=pretrainer)
    with pytest.raises(UntrustedYamlError, match="reads psi from .*elsewhere/psi_model.ckpt, outside the folder"):
        AudioInterpreter.from_hparams(source=folder)
    (tmp_path / "elsewhere").mkdir()
    (folder / "psi_model.ckpt").rename(tmp_path / "elsewhere" / "psi_model.ckpt")
    # past the folder's checks: the Pretrainer loads the shared file (this smallest yaml has no
    # `modules` to build a Brain of, which a real export has)
    with pytest.raises(KeyError, match="modules"):
        AudioInterpreter.from_hparams(source=folder, trust_code=True)


def test_a_string_in_angle_brackets_that_is_no_reference_is_kept():
    """Only `<key.attribute>` (identifiers) is an attribute reference; a url in a comment-like
    string is text."""
    assert check_inference_yaml("note: 'trained at <https://example.org/run>'\n", "x.yaml")
    with pytest.raises(UntrustedYamlError, match="`<pretrainer.collect_in>`"):
        check_inference_yaml("a: !ref <pretrainer.collect_in>\n", "x.yaml")


def test_a_checkpoint_loaded_by_speechbrains_default_hook_is_refused(tmp_path):
    """A Module in the label encoder's place is loaded by torch.load without weights_only=True."""
    pretrainer = PRETRAINER.replace("label_encoder: !ref <label_encoder>", "label_encoder: !ref <psi>")
    with pytest.raises(UntrustedYamlError, match="loads label_encoder otherwise than an export does"):
        AudioInterpreter.from_hparams(source=_folder(tmp_path, pretrainer=pretrainer))


def test_pretrainer_conditions_are_refused(tmp_path):
    """A condition leaves a checkpoint unloaded (random weights), or calls what the yaml gives."""
    pretrainer = PRETRAINER.replace("    custom_hooks:", "    conditions:\n        psi: false\n    custom_hooks:")
    with pytest.raises(UntrustedYamlError, match="Pretrainer has conditions"):
        AudioInterpreter.from_hparams(source=_folder(tmp_path, pretrainer=pretrainer))


def test_a_trained_setting_eval_passes_on_is_a_plain_value(tmp_path):
    """eval.py gives the folder's trained settings to the recipe yaml as `--key=value`: a tuple
    there ran its `!!python` tag (the recipe yaml is loaded as trusted), a `<key.attribute>`
    would read an attribute of the recipe's objects."""
    from recipes.interpreters.inference import trained_settings

    marker = tmp_path / "ran"
    folder = tmp_path / "run"
    (folder / "inference").mkdir(parents=True)
    yaml_path = folder / "inference" / "hyperparams.yaml"
    yaml_path.write_text(f"n_fft: (1, !!python/object/apply:os.system [touch {marker}])\n", encoding="utf-8")
    value = f"(1, !!python/object/apply:os.system [touch {marker}])"  # as trained_settings reads it
    with pytest.raises(ValueError, match="is not a list of plain yaml values"):
        load_yaml("n_fft: 512\nx: !ref <n_fft>\n", f"n_fft: {value}")
    assert not marker.exists()
    yaml_path.write_text("n_fft: <checkpointer.checkpoints_dir>\n", encoding="utf-8")
    with pytest.raises(UntrustedYamlError, match="The trained setting n_fft: <checkpointer.checkpoints_dir> holds a reference"):
        trained_settings(folder)


@pytest.mark.parametrize("name", ["hyperparams.yaml", "psi_model.ckpt", "label_encoder.txt"])
def test_a_file_that_is_not_a_plain_file_is_refused_before_it_is_read(tmp_path, name):
    """A folder's file linked to a device (/dev/zero filled the memory as the label encoder) or a
    folder. A link to a folder stands for the device here: reading it fails at once, not after
    the memory is gone, when the check is missing."""
    folder = _folder(tmp_path)
    (folder / name).unlink()
    (folder / name).symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ValueError, match=rf"its {name.split('.')[0].replace('_model', '')}\S* \(.*\) is not a plain file"):
        AudioInterpreter.from_hparams(source=folder)



def test_a_text_file_larger_than_an_export_writes_is_not_read(tmp_path, monkeypatch):
    """The yaml, then the label encoder, one byte over the bound (the bound lowered to the
    tiny folder's sizes: what an export writes is a few kB, the real bound 16 MiB)."""
    from recipes.interpreters import inference

    folder = _folder(tmp_path)
    yaml_size = (folder / "hyperparams.yaml").stat().st_size
    monkeypatch.setattr(inference, "MAX_TEXT_BYTES", yaml_size - 1)
    with pytest.raises(ValueError, match=rf"its hyperparams.yaml \(.*\) holds {yaml_size} bytes, more than the {yaml_size - 1}"):
        AudioInterpreter.from_hparams(source=folder)
    monkeypatch.setattr(inference, "MAX_TEXT_BYTES", yaml_size)
    with open(folder / "label_encoder.txt", "a", encoding="utf-8") as fout:
        fout.write("\n" * yaml_size)
    size = (folder / "label_encoder.txt").stat().st_size
    with pytest.raises(ValueError, match=rf"its label_encoder \(.*\) holds {size} bytes, more than the {yaml_size}"):
        AudioInterpreter.from_hparams(source=folder)


def test_eval_does_not_read_a_run_folders_yaml_larger_than_any_run_writes(tmp_path, monkeypatch):
    """`eval.py --pretrained_interpreter RUN` reads RUN's yamls for its trained settings (a run
    folder may come from elsewhere, as a download): one byte over the bound is refused, naming
    the file, for the inference folder's yaml and for the run's own (bound lowered: 20 bytes)."""
    from recipes.interpreters import inference

    monkeypatch.setattr(inference, "MAX_TEXT_BYTES", 20)
    run = tmp_path / "run"
    (run / "inference").mkdir(parents=True)
    (run / "hyperparams.yaml").write_text("n_fft: 512\nhop_length: 2\n", encoding="utf-8")  # 11 + 14 bytes
    with pytest.raises(ValueError, match=r"run: its hyperparams.yaml \(.*run/hyperparams.yaml\) holds 25 bytes, more than the 20"):
        inference.trained_settings(run)
    (run / "hyperparams.yaml").write_text("n_fft: 512\n", encoding="utf-8")  # 11 bytes: read
    assert inference.trained_settings(run) == ({"n_fft": 512}, str(run / "hyperparams.yaml"))
    (run / "inference" / "hyperparams.yaml").write_text("n_fft: 512\n" + "#" * 10 + "\n", encoding="utf-8")  # 22
    with pytest.raises(ValueError, match=r"holds 22 bytes, more than the 20"):
        inference.trained_settings(run)


def test_nested_aliases_are_refused_before_they_expand(tmp_path):
    """Ten lines of nested aliases (`a1: &a1 [*a0, *a0, ...]`) expand to 10^9 items: the check
    walked them all (9 s at six levels, hours at nine). Refused at the first alias, naming it."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 4)]
    with pytest.raises(UntrustedYamlError, match=r"x.yaml: a yaml alias \(\*a\d\) repeats the value anchored on line \d"):
        check_inference_yaml("\n".join(lines) + "\n", "x.yaml")
    folder = _folder(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(UntrustedYamlError, match="a yaml alias"):
        AudioInterpreter.from_hparams(source=folder)


def test_references_that_repeat_each_other_are_refused_before_they_are_resolved(monkeypatch):
    """`b: !ref <a><a>` doubles a, `c: !ref <b><b>` doubles b...: nine such lines hold 10^10
    characters once resolved. Counted by hand with the bound lowered: a is 3 characters, b is
    its own 6 ("<a><a>") plus a twice, 12; c ("<b>/x", 5) plus b, 17."""
    from recipes.interpreters import inference

    text = "a: abc\nb: !ref <a><a>\nc: !ref <b>/x\n"
    monkeypatch.setattr(inference, "MAX_TEXT_BYTES", 17)
    assert check_inference_yaml(text, "x.yaml") == text
    monkeypatch.setattr(inference, "MAX_TEXT_BYTES", 16)
    with pytest.raises(UntrustedYamlError, match="x.yaml: its key c holds about 17 characters once its references"):
        check_inference_yaml(text, "x.yaml")
    monkeypatch.undo()
    lines = ["a0: xxxxxxxxxx"] + [f"a{i}: !ref " + f"<a{i - 1}>" * 10 for i in range(1, 10)]
    with pytest.raises(UntrustedYamlError, match=r"its key a9 holds about \d{11} characters"):
        check_inference_yaml("\n".join(lines) + "\n", "x.yaml")
    assert check_inference_yaml("a: !ref <a>\n", "x.yaml")  # a cycle counts once (hyperpyyaml refuses it)
