"""`python -m bench`: the benchmark suite's command line (see bench/run.py)."""
from bench.run import main

main()
