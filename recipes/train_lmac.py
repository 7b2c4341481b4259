#!/usr/bin/env python3
"""Trains, tests and exports an L-MAC (Listenable Maps for Audio Classifiers) interpreter.

Run from the repository root:

    python recipes/train_lmac.py hparams/lmac_conv2d.yaml --data_folder /data/ESC-50
    python recipes/train_lmac.py hparams/lmac_cnn14.yaml --data_folder /data/ESC-50

The Brain is `recipes.interpreters.lmac.LMAC` (its docstring gives the method);
this script runs the common training flow (`recipes.interpreters.training`):
data, Brain, fit, test on the best checkpoint, export of the inference folder.

Authors
 * audio-interpret contributors 2026
"""

import sys

from recipes.interpreters.lmac import (
    LMAC,  # also importable from here: old inference yamls name recipes.train_lmac.LMAC
)
from recipes.interpreters.training import train_interpreter


def main(argv=None):
    """Trains, tests and exports an LMAC interpreter; returns the Brain."""
    return train_interpreter(LMAC, argv, recipe_file=__file__)


if __name__ == "__main__":
    main(sys.argv[1:])
