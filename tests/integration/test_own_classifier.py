"""The README's "Your own classifier" example, run as written (issue 27, item 4).

The test reads the section's Python block (my_model.py) and its commands from
README.md, and runs them in a temporary folder: the only changes are the data
folder and clip (the tiny synthetic set), the tiny sizes appended to the two
training commands, and the project's own paths for `hparams/` and `recipes/`.
"""

import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, TINY, TINY_CLASSIFIER

SECTION = "### Your own classifier"


def readme_example():
    """(the Python block, the command lines) of the README's section."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    commands = [line[4:] for line in section.splitlines() if line.startswith("    ") and not line.startswith("     ")]
    commands = [command for command in commands if re.match(r"(sed|export|python|audio-interpret) ", command)]
    return code, commands


def test_the_readme_example_trains_and_explains_with_a_classifier_of_ones_own(tiny_synthetic, tmp_path):
    code, commands = readme_example()
    assert code.startswith("# my_model.py") and len(commands) == 6, commands
    (tmp_path / "my_model.py").write_text(code, encoding="utf-8")
    clip = sorted((tiny_synthetic / "audio").glob("*.wav"))[0]
    env = dict(os.environ)
    for command in commands:
        command = command.split("  #")[0].strip()
        if command.startswith("export PYTHONPATH="):
            env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO_ROOT)])
            continue
        command = command.replace("hparams/", f"{REPO_ROOT}/hparams/").replace("DATA", str(tiny_synthetic))
        argv = shlex.split(command.replace("clip.wav", str(clip)))
        if argv[0] == "sed":  # sed EXPRESSION YAML > COPY
            redirect = argv.index(">")
            with open(tmp_path / argv[redirect + 1], "w", encoding="utf-8") as fout:
                subprocess.run(argv[:redirect], check=True, stdout=fout, cwd=tmp_path)
            continue
        if argv[0] == "python":
            argv = [sys.executable, str(REPO_ROOT / argv[1]), *argv[2:], *TINY, *TINY_CLASSIFIER]
        else:  # audio-interpret
            argv = [sys.executable, "-m", "recipes.interpret_files", *argv[1:], "--out", "explained"]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (command, done.stderr[-3000:])
    inference = tmp_path / "results" / "my_lmac" / "inference" / "hyperparams.yaml"
    assert "!new:my_model.MyClassifier" in inference.read_text(encoding="utf-8")
    assert (tmp_path / "explained" / f"{clip.stem}_interpretation.wav").is_file()
    # without --trust_code the folder is data: refused, nothing of it run
    refused = subprocess.run(
        [sys.executable, "-m", "recipes.interpret_files", "--interpreter", str(inference.parent), str(clip)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert refused.returncode == 2 and "my_model.MyClassifier" in refused.stderr


@pytest.mark.parametrize("name", ["classifier_conv2d", "lmac_conv2d", "piq"])
def test_the_readme_sed_finds_the_encoder_in_the_yamls_it_names(name):
    """The `sed` of the example replaces exactly one line of each yaml it is given."""
    text = (REPO_ROOT / "hparams" / f"{name}.yaml").read_text(encoding="utf-8")
    assert text.count("!new:models.PIQ.Conv2dEncoder_v2") == 1
