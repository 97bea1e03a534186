"""`python -m gradc ...`: the same command line as the `gradc` script (gradc/cli.py)."""
import sys

from .cli import main

if __name__ == "__main__":      # not on import (the docs' API reference inspects modules)
    sys.exit(main())
