"""Atomic file writing (the estimators' ``save``, the demo) and reading results back."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def new_file_mode():
    """The permissions an ordinary new file gets (0o666 less the umask).

    ``tempfile.mkstemp`` creates its files private (0o600); a temporary file renamed
    into place gets this mode first, so it ends up readable like any other.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomically(path, write):
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    A failed write leaves any earlier file at ``path`` intact.
    """
    path = Path(path)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                   dir=path.parent or ".")
    os.close(handle)
    try:
        write(tmp)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_kind(path):
    """Open a bayesgmm netCDF file: ``(DataTree, kind)``; clear errors for anything else."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        tree = xr.open_datatree(path, engine="h5netcdf").load()
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a netCDF file written by bayesgmm: {error}") from None
    return tree, tree.attrs.get("bayesgmm_kind")
