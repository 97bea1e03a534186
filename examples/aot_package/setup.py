"""Builds lecture_demo: gradc compiles kernels.py into the extension lecture_demo._digits_kernels
(cffi_modules) and writes its NumPy wrapper lecture_demo/digits_kernels.py (build_py)."""
import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))     # PEP 517 builds omit it
from kernels import digits  # noqa: E402

setup(
    name="lecture-demo",
    version="0.1.0",
    description="Softmax regression kernels compiled ahead of time by gradc",
    packages=["lecture_demo"],
    cffi_modules=["kernels.py:ffibuilder"],
    cmdclass={"build_py": digits.build_py_command()},
    install_requires=["numpy", "cffi>=1.15"],
    python_requires=">=3.10",
)
