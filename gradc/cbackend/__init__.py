"""The C backend: plan (fusion, memory), emit (C text), build (compiler + disk cache), backend."""
from . import backend  # noqa: F401
