"""`python -m gradc ...`: the same command line as the `gradc` script (gradc/cli.py)."""
import sys

from .cli import main

sys.exit(main())
