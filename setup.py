"""Build the Cython hot paths in cython_ext/.

Metadata lives in pyproject.toml; this file only declares the compiled
extensions. Every ``cython_ext/*.pyx`` becomes ``cython_ext.<name>``, compiled
on every core (an install on a Pi builds them from source).
"""

import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
extensions = [
    Extension(
        f"cython_ext.{pyx.stem}",
        [str(pyx.relative_to(HERE))],
        extra_compile_args=["-O3"],
    )
    for pyx in sorted((HERE / "cython_ext").glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level="3",
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
    options={"build_ext": {"parallel": os.cpu_count() or 1}},
)
