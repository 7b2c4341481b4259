"""The README's "Your own classifier" example, run as written (issue 27, item 4).

The test reads the section's Python block (my_model.py) and its commands from
README.md, and runs them in a temporary folder: the only changes are the data
folder and clip (the tiny synthetic set), the tiny sizes appended to the two
training commands, and the project's own paths for `hparams/` and `recipes/`.
"""

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


def test_the_readme_example_trains_and_explains_with_a_classifier_of_ones_own(
    tiny_synthetic, tmp_path, monkeypatch, capsys
):
    """The commands run in this process (each script's `main`, `audio-interpret`'s too), in
    the example's folder, with that folder on the import path as `export PYTHONPATH=.` puts it."""
    from recipes import interpret_files, train_classifier, train_lmac

    scripts = {"recipes/train_classifier.py": train_classifier.main, "recipes/train_lmac.py": train_lmac.main}
    code, commands = readme_example()
    assert code.startswith("# my_model.py") and len(commands) == 6, commands
    (tmp_path / "my_model.py").write_text(code, encoding="utf-8")
    clip = sorted((tiny_synthetic / "audio").glob("*.wav"))[0]
    monkeypatch.chdir(tmp_path)
    try:
        for command in commands:
            command = command.split("  #")[0].strip()
            if command.startswith("export PYTHONPATH="):
                monkeypatch.syspath_prepend(str(tmp_path))
                continue
            command = command.replace("hparams/", f"{REPO_ROOT}/hparams/").replace("DATA", str(tiny_synthetic))
            argv = shlex.split(command.replace("clip.wav", str(clip)))
            if argv[0] == "sed":  # sed EXPRESSION YAML > COPY
                redirect = argv.index(">")
                with open(tmp_path / argv[redirect + 1], "w", encoding="utf-8") as fout:
                    subprocess.run(argv[:redirect], check=True, stdout=fout, cwd=tmp_path)
            elif argv[0] == "python":
                scripts[argv[1]]([*argv[2:], *TINY, *TINY_CLASSIFIER])
            else:  # audio-interpret
                assert interpret_files.main([*argv[1:], "--out", "explained"]) == 0, capsys.readouterr().err
        inference = tmp_path / "results" / "my_lmac" / "inference" / "hyperparams.yaml"
        assert "!new:my_model.MyClassifier" in inference.read_text(encoding="utf-8")
        assert (tmp_path / "explained" / f"{clip.stem}_interpretation.wav").is_file()
        # without --trust_code the folder is data: refused before anything of it is built
        capsys.readouterr()
        assert interpret_files.main(["--interpreter", str(inference.parent), str(clip), "--out", "again"]) == 2
        assert "my_model.MyClassifier" in capsys.readouterr().err
        assert not (tmp_path / "again").exists() or not any((tmp_path / "again").glob("*.wav"))
    finally:
        sys.modules.pop("my_model", None)


@pytest.mark.parametrize("name", ["classifier_conv2d", "lmac_conv2d", "piq"])
def test_the_readme_sed_finds_the_encoder_in_the_yamls_it_names(name):
    """The `sed` of the example replaces exactly one line of each yaml it is given."""
    text = (REPO_ROOT / "hparams" / f"{name}.yaml").read_text(encoding="utf-8")
    assert text.count("!new:models.PIQ.Conv2dEncoder_v2") == 1
