#!/usr/bin/env python3
"""Trains, tests and exports a PIQ (Posthoc Interpretation via Quantization) interpreter.

Run from the repository root:

    python recipes/train_piq.py hparams/piq.yaml --data_folder /data/ESC-50

The Brain is `recipes.interpreters.piq.PIQ` (its docstring gives the method);
this script runs the common training flow (`recipes.interpreters.training`):
data, Brain, fit, test on the best checkpoint, export of the inference folder.

Authors
 * audio-interpret contributors 2026
"""

import sys

from recipes.interpreters.piq import (
    PIQ,  # also importable from here: old inference yamls name recipes.train_piq.PIQ
)
from recipes.interpreters.training import train_interpreter


def main(argv=None):
    """Trains, tests and exports a PIQ interpreter; returns the Brain."""
    return train_interpreter(PIQ, argv, recipe_file=__file__)


if __name__ == "__main__":
    main(sys.argv[1:])
