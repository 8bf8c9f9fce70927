"""PyTensor configuration that bayesgmm applies before building a model."""

from __future__ import annotations

import os
from pathlib import Path

_configured = False


def _user_set_blas_flags() -> bool:
    if "blas__ldflags" in os.environ.get("PYTENSOR_FLAGS", ""):
        return True
    rc_files = os.environ.get("PYTENSORRC", str(Path.home() / ".pytensorrc"))
    for rc in rc_files.split(os.pathsep):
        path = Path(rc)
        if path.is_file() and "[blas]" in path.read_text(errors="ignore"):
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
    if _user_set_blas_flags():
        return
    import pytensor

    try:
        pytensor.config.blas__ldflags = ""
    except Exception:  # pragma: no cover - already read and locked by the user
        pass
