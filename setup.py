"""setuptools entry point. Metadata lives in pyproject.toml. This file adds gradc's native call path
(csrc/gradc_fastcall.c) as an optional extension: without a C compiler gradc still installs, and
compiled functions are called through cffi instead."""
from setuptools import Extension, setup


class _NumpyInclude:
    """Resolved late, when the build has numpy installed."""

    def __str__(self):
        import numpy
        return numpy.get_include()


setup(ext_modules=[Extension("gradc._fastcall", ["csrc/gradc_fastcall.c"],
                             include_dirs=[_NumpyInclude()], optional=True,
                             extra_compile_args=["-O2"])])
