"""Shared test fixtures: where the real sample clips are, and a tiny synthetic set."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def repo_root():
    """The repository root (recipes are run from here)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def esc50_sample_dir():
    """5 real ESC-50 clips (44.1 kHz, one per fold) with their meta/esc50.csv (read-only)."""
    path = SHARED / "data" / "esc50_sample"
    if not (path / "meta" / "esc50.csv").is_file():
        pytest.fail(f"{path} is missing: CI clones the project with ../shared beside it")
    return path


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    """A tiny synthetic ESC-50-layout dataset: 3 classes x 5 clips (one per fold), 1 s each."""
    from data_prep.synthetic_prepare import create_synthetic_dataset

    out = tmp_path_factory.mktemp("tiny_synthetic")
    return create_synthetic_dataset(out, classes=3, per_class=5, seed=7, duration_s=1.0)
