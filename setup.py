"""setuptools entry point. Metadata lives in pyproject.toml; this file exists for the cffi_modules route
(see examples/aot_package/setup.py) and for tools that still call setup.py directly."""
from setuptools import setup

setup()
