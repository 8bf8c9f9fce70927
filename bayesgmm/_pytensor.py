"""PyTensor configuration that bayesgmm applies before building a model."""

from __future__ import annotations

import configparser
import os
from contextlib import contextmanager
from pathlib import Path

_configured = False


def _user_set(flag: str) -> bool:
    """Whether the user set PyTensor's ``flag`` in PYTENSOR_FLAGS or a .pytensorrc.

    ``flag`` is PyTensor's name: ``blas__ldflags`` is ``ldflags`` in the rc
    file's ``[blas]`` section, ``cxx`` is ``cxx`` in ``[global]``.
    """
    env = os.environ.get("PYTENSOR_FLAGS", "")
    if flag in {item.split("=", 1)[0].strip() for item in env.split(",")}:
        return True
    section, key = flag.split("__", 1) if "__" in flag else ("global", flag)
    rc_files = os.environ.get("PYTENSORRC", str(Path.home() / ".pytensorrc"))
    for rc in rc_files.split(os.pathsep):
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(rc)
        except configparser.Error:
            continue
        if parser.has_option(section, key):
            return True
    return False


def configure_pytensor() -> None:
    """Skip PyTensor's search for a C BLAS unless the user configured one.

    bayesgmm's graphs are compiled by PyTensor's default numba backend, whose
    matrix products call the BLAS that ships with numpy and scipy. PyTensor's C
    backend, which PyMC still uses for a few tiny helper functions (initial
    points), searches the system for a BLAS it can link and warns when a
    pip-installed environment has none ("could not link to a BLAS installation").
    That search is irrelevant to bayesgmm's speed, so the flag is set empty here;
    set ``PYTENSOR_FLAGS=blas__ldflags=-lopenblas`` (or a ``[blas]`` section in
    ``~/.pytensorrc``) to give the C backend a system BLAS instead.
    """
    global _configured
    if _configured:
        return
    _configured = True
    if _user_set("blas__ldflags"):
        return
    import pytensor

    try:
        pytensor.config.blas__ldflags = ""
    except Exception:  # pragma: no cover - already read and locked by the user
        pass


@contextmanager
def without_c_compiler():
    """Compile bayesgmm's graphs with PyTensor's C compiler switched off.

    The graphs run on the numba backend; PyTensor's C backend would only compile
    the small constant-folding steps of its graph rewrites, about 20 C++ modules
    and 12 s of g++ on a fresh machine (measured for a full-covariance model),
    against well under a second in Python. The setting is restored on exit, and
    left alone when the user configured ``cxx`` themselves.
    """
    if _user_set("cxx"):
        yield
        return
    import pytensor

    with pytensor.config.change_flags(cxx=""):
        yield
