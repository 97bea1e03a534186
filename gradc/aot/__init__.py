"""Ahead-of-time builds (API.md section 5): `gc.Module` collects exported functions and turns them
into standalone C (.c / .h), a cffi extension with a small NumPy wrapper, or a cffi FFI builder for
setuptools. What it builds needs NumPy and cffi at run time; no gradc, tracing or compiler.

  module.py   gc.Module and the build           export.py   one exported function
  csource.py  the C of each export              wrapper.py  the NumPy wrapper's text
  runtime.py  the wrapper's runtime (copied)    files.py    output files and the compiler's process
  names.py    errors, specs, C identifiers
"""
from .export import Export
from .module import Built, Module
from .names import BuildError, one_line  # noqa: F401 - one_line serves the CLI

__all__ = ["Module", "Export", "Built", "BuildError"]
