"""gradc's benchmark suite: value and gradients per call, gradc against NumPy, PyTorch, JAX and PyTensor.

Run `python -m bench --help` (or `python bench/run.py`). Files: workloads.py (what is computed),
engines.py (one adapter per framework), timing.py (how time is measured), worker.py (one
measurement in a fresh process), report.py (markdown, JSON, PNG), run.py (command line).
"""
