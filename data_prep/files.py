"""Writing files that a killed run cannot leave half-written: the one atomic writer.

Every file the project writes for a person or a later stage (manifests, csv,
wav, png, json, checkpoints, the HTML report) goes through `write_atomic`: the
content is written to a hidden temporary file beside the target,
`.<name>.partial`, which is then renamed onto the target with `os.replace`. A
reader sees the previous file or the new one, never a torn one; a run killed in
the middle leaves at most a `.partial` file, which the next write replaces.

Example
-------
>>> import os, tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = write_json({"accuracy": 0.5}, os.path.join(tmp, "out", "metrics.json"))
...     sorted(os.listdir(os.path.dirname(path)))
['metrics.json']

Authors
 * audio-interpret contributors 2026
"""

import json
import os

PARTIAL_SUFFIX = ".partial"


def partial_path(path):
    """The temporary file `write_atomic` writes before renaming it onto `path`.

    >>> partial_path("/data/meta/esc50.csv")
    '/data/meta/.esc50.csv.partial'
    """
    directory, name = os.path.split(os.fspath(path))
    return os.path.join(directory, f".{name}{PARTIAL_SUFFIX}")


def write_atomic(path, write_fn):
    """Calls `write_fn(temporary_path)`, then moves the result onto `path`.

    Arguments
    ---------
    path : str or os.PathLike
        The file to write; its folder is created when missing.
    write_fn : callable
        Writes the whole content to the path it is given, e.g.
        `lambda tmp: torch.save(state, tmp)` or `lambda tmp: fig.savefig(tmp, format="png")`
        (give writers that guess the format from the name an explicit format:
        the temporary name ends in `.partial`).

    Returns
    -------
    str
        `path`, as a string.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = partial_path(os.path.abspath(path))
    try:
        write_fn(partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def write_text(text, path):
    """Writes a text file (UTF-8, newlines as given) atomically; returns `path`."""

    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as fout:
            fout.write(text)

    return write_atomic(path, write)


def write_bytes(data, path):
    """Writes bytes atomically; returns `path`."""

    def write(tmp):
        with open(tmp, "wb") as fout:
            fout.write(data)

    return write_atomic(path, write)


def write_json(data, path, indent=2):
    """Writes `data` as JSON atomically; returns `path`.

    Values JSON cannot hold as numbers (NaN, inf) are refused, not written as
    the non-standard `NaN` token: map them to None first.
    """
    return write_text(json.dumps(data, indent=indent, allow_nan=False) + "\n", path)
