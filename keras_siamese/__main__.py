"""`python -m keras_siamese` is the `keras-siamese` command."""

import sys

from keras_siamese.cli import program

sys.exit(program())
