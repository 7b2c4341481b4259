#!/usr/bin/env python3
"""Trains, tests and exports an L2I (Listen to Interpret) interpreter.

Run from the repository root:

    python recipes/train_l2i.py hparams/l2i_conv2d.yaml --data_folder /data/ESC-50
    python recipes/train_l2i.py hparams/l2i_cnn14.yaml --data_folder /data/ESC-50

The Brain is `recipes.interpreters.l2i.L2I` (its docstring gives the method);
this script runs the common training flow (`recipes.interpreters.training`):
data, Brain, fit, test on the best checkpoint, export of the inference folder.

Authors
 * audio-interpret contributors 2026
"""

import sys

from recipes.interpreters.l2i import (
    L2I,  # also importable from here: old inference yamls name recipes.train_l2i.L2I
)
from recipes.interpreters.training import train_interpreter


def main(argv=None):
    """Trains, tests and exports an L2I interpreter; returns the Brain."""
    return train_interpreter(L2I, argv, recipe_file=__file__)


if __name__ == "__main__":
    main(sys.argv[1:])
