"""Every command the READMEs show is one the project takes.

`README.md` and `bench/README.md` show commands in code blocks (indented lines, a trailing
backslash continuing one) and inline (between backticks). For each one:

- `make T`: T is a target of the Makefile;
- `python S ...` / `torchrun ... S ...` / `audio-interpret ...`: the script S exists, and its
  arguments parse as its command does: a recipe run through `recipes.core.startup` (the
  `train_*.py` commands, the recipe part of `eval.py`) gets a yaml that exists and, as
  overrides, only keys of that yaml (or SpeechBrain's own flags) with values of their kind; a
  command with an argparse parser (demo, compare, report, eval's own flags, the data_prep and
  bench scripts, `audio-interpret`) parses them without an error, and compare's `--set
  STAGE.KEY=VALUE` names a key of that stage's yaml;
- every `hparams/*.yaml` named anywhere in a command exists.

Placeholders written `<...>` count as one value, a usage line's `[optional part]` as given; a
command with `...` in it is elided prose
(`recipes/eval.py ... --mask_domain power`) and `python -m ...` a profiler's wrapper: both are
left out, and counted by `test_few_commands_are_left_out`.

Also: every repository path the READMEs name (`recipes/core/pipeline.py`, `hparams/demo.yaml` ...)
exists, but for the few named on purpose outside this checkout (`NOT_HERE`); every setting they
write as `key: value` (`mask_above_floor: True`) is a key of some yaml under hparams/.

Not checked: that a command runs to its end (the integration tests and `make demo` run the
chain), nor a user's own yaml's keys (`my_lmac.yaml`).
"""

import argparse
import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from recipes.core.startup import _overrides_keys, check_override_types, parse_arguments, recipe_keys
from recipes.eval import parse_eval_arguments

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "bench/README.md")
STARTS = ("python ", "python3 ", ".venv/bin/python ", "torchrun ", "audio-interpret ", "make ")
INLINE = re.compile(r"`((?:" + "|".join(re.escape(start) for start in STARTS) + r")[^`]+)`")
# the commands whose whole command line goes through recipes.core.startup.prepare_run
STARTUP_SCRIPTS = {f"recipes/train_{name}.py" for name in ("classifier", "nmf", "l2i", "piq", "lmac")}


def documented_commands(text):
    """The commands of a markdown text: its indented code lines that start like a command
    (a trailing backslash joins the next line), then its inline ones, whitespace collapsed.

    Example
    -------
    >>> text = "Run\\n\\n    make demo   # the chain\\n    python a.py --x 1 \\\\\\n      --y 2\\n\\nor `make test`."
    >>> documented_commands(text)
    ['make demo   # the chain', 'python a.py --x 1 --y 2', 'make test']
    """
    commands = []
    lines = iter(text.splitlines())
    for line in lines:
        command = line.strip()
        if not line.startswith("    ") or not command.startswith(STARTS):
            continue
        while command.endswith("\\"):
            command = command[:-1].rstrip() + " " + next(lines, "").strip()
        commands.append(command)
    commands += [" ".join(match.group(1).split()) for match in INLINE.finditer(text)]
    return commands


def _all_commands():
    """(doc, command) for every command of the READMEs, `a && b` split in two."""
    found = []
    for doc in DOCS:
        for command in documented_commands((ROOT / doc).read_text(encoding="utf-8")):
            found += [(doc, part.strip()) for part in command.split("&&")]
    return found


def _left_out(command):
    return "..." in command or command.split()[:2] in (["python", "-m"], ["python3", "-m"])


COMMANDS = [(doc, command) for doc, command in _all_commands() if not _left_out(command)]


def _tokens(command):
    """The command's words: `<...>` placeholders one word, `# comments` dropped, and the brackets
    of a usage line's optional part (`[--seed 1234]`) taken off, so that that part is checked too."""
    words = shlex.split(re.sub(r"<[^>]*>", "PLACEHOLDER", command), comments=True)
    return [word.removeprefix("[").removesuffix("]") for word in words]


def make_targets():
    """The Makefile's targets (`name:` at the start of a line)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:", text, flags=re.M))


class _Parsed(Exception):
    """Raised by the patched `parse_args` once the command's parser has read its arguments
    (`namespace`)."""

    def __init__(self, namespace):
        super().__init__()
        self.namespace = namespace


def parse_with_command_parser(module, argv, monkeypatch):
    """Parses `argv` with the parser `module`'s command builds, and stops there (nothing runs).

    The parser is the one the command builds (in `main`, or the function it calls): its
    `parse_args` is patched to parse and then raise `_Parsed`. An argparse error is a
    SystemExit, which the caller sees. Returns the parsed namespace.
    """
    parse_args = argparse.ArgumentParser.parse_args

    def parse_then_stop(parser, args=None, namespace=None):
        raise _Parsed(parse_args(parser, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    with pytest.raises(_Parsed) as parsed:
        module.main(argv)
    return parsed.value.namespace


def _module(script):
    """The module of a script path: an importable package module, or loaded from its file
    (`bench/` is no package)."""
    if script.startswith(("recipes/", "data_prep/")):
        return importlib.import_module(script[: -len(".py")].replace("/", "."))
    spec = importlib.util.spec_from_file_location(f"readme_{Path(script).stem}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_recipe_arguments(argv, command):
    """A yaml that exists, and overrides that are its keys, with values of their kind."""
    hparams_file, _, overrides = parse_arguments(argv)
    if not hparams_file.startswith("hparams/"):
        return  # a user's own yaml (my_lmac.yaml): its keys are theirs
    assert (ROOT / hparams_file).is_file(), f"{command}: no {hparams_file}"
    unknown = _overrides_keys(overrides) - recipe_keys(ROOT / hparams_file)
    assert not unknown, f"{command}: {hparams_file} has no key {sorted(unknown)}"
    check_override_types(ROOT / hparams_file, overrides)


def _script_and_arguments(tokens):
    """(script, its arguments) of a python / torchrun / audio-interpret command line."""
    if tokens[0] == "audio-interpret":
        return "recipes/interpret_files.py", tokens[1:]
    if tokens[0] == "torchrun":
        at = next(i for i, token in enumerate(tokens) if token.endswith(".py"))
        return tokens[at], tokens[at + 1 :]
    return tokens[1], tokens[2:]


@pytest.mark.parametrize("doc, command", COMMANDS, ids=[f"{doc}: {command}" for doc, command in COMMANDS])
def test_documented_command_is_one_the_project_takes(doc, command, monkeypatch):
    tokens = _tokens(command)
    for token in tokens:
        for path in re.findall(r"hparams/[\w.-]+\.yaml", token):
            assert (ROOT / path).is_file(), f"{doc}: `{command}` names {path}, which does not exist"
    if tokens[0] == "make":
        missing = [target for target in tokens[1:] if "=" not in target and target not in make_targets()]
        assert not missing, f"{doc}: `{command}`: the Makefile has no target {missing}"
        return
    script, argv = _script_and_arguments(tokens)
    assert (ROOT / script).is_file(), f"{doc}: `{command}`: no script {script}"
    monkeypatch.chdir(ROOT)  # the commands run from the repository root
    if script in STARTUP_SCRIPTS:
        check_recipe_arguments(argv, command)
    elif script == "recipes/eval.py":
        _, recipe_argv = parse_eval_arguments(argv)
        check_recipe_arguments(recipe_argv, command)
    else:
        monkeypatch.syspath_prepend(str(ROOT / Path(script).parent))  # bench/'s scripts import their neighbours
        module = _module(script)
        args = parse_with_command_parser(module, argv, monkeypatch)
        if script == "recipes/compare.py" and args.settings:  # --set STAGE.KEY=VALUE: keys of the stage's yaml
            module.apply_settings(module.load_config(args.config, smoke=args.smoke), args.settings)


def test_the_readmes_show_commands_of_every_kind():
    """The extraction finds what the READMEs hold: if it found nothing, every check above would
    pass vacuously."""
    kinds = {command.split()[0] if not command.startswith("python") else command.split()[1] for _, command in COMMANDS}
    assert {"make", "torchrun", "audio-interpret", "recipes/train_piq.py", "recipes/eval.py", "recipes/demo.py"} <= kinds
    assert len(COMMANDS) >= 100


def test_few_commands_are_left_out():
    """Elided commands (`...`) and profiler wrappers are not checked; they stay a handful."""
    left_out = [command for _, command in _all_commands() if _left_out(command)]
    assert len(left_out) <= 8, left_out


WRONG = [
    ("python recipes/demo.py --output_folder DIR --no_such_flag", SystemExit, None),
    ("python recipes/train_piq.py hparams/piq.yaml --no_such_key 3", AssertionError, "has no key"),
    ("python recipes/train_piq.py hparams/no_such.yaml", AssertionError, "does not exist"),
    ("python recipes/compare.py --variant v --set lmac.no_such_key=3", ValueError, "has no key"),
    ("make no-such-target", AssertionError, "no target"),
    ("python recipes/eval.py hparams/piq.yaml --pretrained_interpreter p --K many", ValueError, "number"),
]


@pytest.mark.parametrize("command, error, message", WRONG, ids=[command for command, _, _ in WRONG])
def test_a_wrong_command_fails(command, error, message, monkeypatch):
    """The checks can fail: a flag no command takes, a yaml key that does not exist (as an
    override or in compare's `--set`), a yaml that does not exist, a make target that does not
    exist and an override of the wrong kind are each refused."""
    with pytest.raises(error, match=message):
        test_documented_command_is_one_the_project_takes("x", command, monkeypatch)


# Paths the READMEs name on purpose outside this checkout: SpeechBrain's own recipe (a link),
# and the two scripts of commit cbec31c whose figures bench/README.md quotes.
NOT_HERE = {"recipes/ESC50/interpret/README.md", "bench/interpretation_speed.py", "bench/speed_options.py"}
PATH = re.compile(r"\b((?:recipes|models|data_prep|hparams|bench|tests|\.ci)/[\w./-]+\.(?:py|yaml|md|txt|json|sh))\b")


def named_paths(text):
    """The repository paths a text names (`recipes/core/pipeline.py`, `hparams/demo.yaml` ...).

    Example
    -------
    >>> sorted(named_paths("see `recipes/demo.py` and hparams/demo.yaml, not results/x.json"))
    ['hparams/demo.yaml', 'recipes/demo.py']
    """
    return set(PATH.findall(text))


@pytest.mark.parametrize("doc", DOCS)
def test_every_file_the_readmes_name_exists(doc):
    named = named_paths((ROOT / doc).read_text(encoding="utf-8"))
    assert len(named) >= 10  # the pattern finds them
    missing = sorted(path for path in named - NOT_HERE if not (ROOT / path).exists())
    assert not missing, f"{doc} names files that do not exist: {missing}"


# `key: value` spans of the READMEs that are no setting: the yaml-reference example of the
# inference folders' guard (`b: !ref <a><a>`) and the demo's progress line (`demo: stage 5/12 ...`).
NOT_SETTINGS = {"b", "c", "demo"}


def yaml_keys_at_any_level():
    """Every key of every yaml under hparams/, nested ones included (`drop_last` of a loader's
    options), read as text."""
    keys = set()
    for path in (ROOT / "hparams").glob("*.yaml"):
        keys |= set(re.findall(r"^\s*([A-Za-z_]\w*)\s*:", path.read_text(encoding="utf-8"), flags=re.M))
    return keys


@pytest.mark.parametrize("doc", DOCS)
def test_every_setting_the_readmes_write_is_a_yaml_key(doc):
    """`mask_above_floor: True`, `checkpoint_key: loss` ...: a renamed key leaves none of these
    behind."""
    written = set(re.findall(r"`([a-z_]+): [^`]+`", (ROOT / doc).read_text(encoding="utf-8"))) - NOT_SETTINGS
    unknown = sorted(written - yaml_keys_at_any_level())
    assert not unknown, f"{doc} writes settings no yaml has: {unknown}"


def test_the_settings_the_readme_writes_are_found():
    written = set(re.findall(r"`([a-z_]+): [^`]+`", (ROOT / "README.md").read_text(encoding="utf-8")))
    assert {"mask_above_floor", "keep_class", "mask_domain", "drop_last"} <= written
