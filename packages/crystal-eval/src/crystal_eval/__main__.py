"""``python -m crystal_eval`` = the ``crystal-eval`` command."""

import sys

from crystal_eval.cli import main

sys.exit(main())
