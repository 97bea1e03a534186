"""gradc's differential fuzzer: random programs over the public ops, run through backend="c",
backend="numpy", the un-jitted transforms and finite differences, in float64 and float32; failures
shrunk to a runnable script. `python -m gradc.fuzz --help`; README "Fuzzing and sanitizers"."""
from .check import Outcome, check
from .generate import generate
from .program import Program, Stmt
from .runner import fuzz
from .shrink import shrink

__all__ = ["Outcome", "Program", "Stmt", "check", "fuzz", "generate", "shrink"]
