"""The house: commands apart from the library, and imports that run one way.

    commands (recipes/*.py) -> interpreters -> evaluation -> reporting -> core -> data_prep, models

Every import of the project's own modules, deferred ones included, is read from
the source (ast) and must go to the same layer or a lower one.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Layer of each package, top (0) to bottom; a module may import its own layer or lower ones.
LAYERS = {
    "recipes": 0,  # the commands at the top of recipes/
    "recipes.interpreters": 1,
    "recipes.evaluation": 2,
    "recipes.reporting": 3,
    "recipes.core": 4,
    "models": 5,
    "data_prep": 6,
}


def module_name(path):
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def layer(name):
    """The layer of a module: its longest package prefix in LAYERS."""
    matches = [package for package in LAYERS if name == package or name.startswith(package + ".")]
    return LAYERS[max(matches, key=len)] if matches else None


def project_imports(path):
    """(line, imported module) of every import of the project's modules in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "recipes":  # `from recipes import eval`: the modules themselves
                found += [(node.lineno, f"recipes.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if layer(name) is not None]


def test_every_import_runs_down_the_layers():
    files = [p for folder in ("recipes", "models", "data_prep") for p in (REPO / folder).rglob("*.py")]
    assert len(files) > 30
    wrong = []
    for path in files:
        own = layer(module_name(path))
        for line, name in project_imports(path):
            if layer(name) < own:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_top_of_recipes_holds_only_commands():
    """Each file at the top of recipes/ is a command: a docstring with its command and a main."""
    for path in (REPO / "recipes").glob("*.py"):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert "main" in functions, path.name
        assert f"recipes/{path.name}" in (ast.get_docstring(tree) or ""), path.name


def test_no_library_module_imports_a_command():
    commands = {module_name(p) for p in (REPO / "recipes").glob("*.py") if p.name != "__init__.py"}
    library = [p for p in (REPO / "recipes").rglob("*.py") if p.parent != REPO / "recipes"]
    library += [p for folder in ("models", "data_prep") for p in (REPO / folder).rglob("*.py")]
    offending = [
        f"{p.relative_to(REPO)}:{line} imports {name}"
        for p in library
        for line, name in project_imports(p)
        if name in commands
    ]
    assert not offending, offending
