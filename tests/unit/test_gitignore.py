""".gitignore covers the folders that the README's examples write into the working tree."""

import re
import subprocess

from conftest import REPO_ROOT

from recipes.interpret_files import parse_arguments

# A flag or argument that names a folder the command writes, as the README's examples give it.
_WRITTEN = re.compile(r"(?:--out|--output_folder|--eval_folder|--savedir)[ =]+([^\s`)]+)|savedir=\"([^\"]+)\"")


def folders_the_readme_writes():
    """The relative folders of the README's examples (placeholders such as DIR and absolute
    paths left out), the default --out of audio-interpret and the recipes' results/."""
    found = set()
    for match in _WRITTEN.finditer((REPO_ROOT / "README.md").read_text(encoding="utf-8")):
        folder = match.group(1) or match.group(2)
        if not folder.startswith(("/", "~", "$")) and not folder.rstrip("/").isupper():
            found.add(folder.rstrip("/"))
    found.add(parse_arguments(["clip.wav", "--interpreter", "x"]).out)
    return sorted(found | {"results"})


def test_what_the_readme_examples_write_is_ignored_by_git():
    """Was: `audio-interpret ... --out explained/` and the savedir example left untracked folders."""
    folders = folders_the_readme_writes()
    assert "explained" in folders and "interpretations" in folders  # the parse sees the examples
    for folder in folders:
        done = subprocess.run(
            ["git", "check-ignore", "-q", f"{folder}/some_output.wav"], cwd=REPO_ROOT, timeout=30
        )
        assert done.returncode == 0, f"{folder}/ (written by a README example) is not in .gitignore"
