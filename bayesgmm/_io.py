"""Atomic file writing and reading results back.

:func:`atomic_write` is the one place that writes a file atomically (the estimators'
``save`` through :func:`write_atomically`, the command line's outputs, the demo's figures):
a failed run never damages a file the user already has.

Every HDF5 (netCDF-4) file written by :func:`write_atomically` ends with a checksum
line, ``\\nbayesgmm-sha256:<64 hex digits>\\n``, after the HDF5 data (HDF5 and
netCDF readers ignore bytes past the end of the HDF5 data). :func:`read_kind`
verifies it before HDF5 parses anything: a damaged file, bit flips included, is
refused at once. Without that check some damaged files make the HDF5 library loop
forever (seen for one flipped bit in about a hundred), and no Python code can
interrupt it. Files without the line (written by other tools, or rewritten after an
edit) are parsed and checked as below.

:func:`read_kind` opens a result file and, for the kinds bayesgmm writes, checks
everything the loaders will read before they read it: the attributes and their
types, the required groups and variables with their dimensions, shapes consistent
with the stored configuration, finite values, weights on the simplex and positive
definite covariances of the right structure. Any failure is a ``ValueError`` that
names the file and what is wrong, so a damaged or edited file never becomes a
half-built estimator or a raw h5py error.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

EM_KIND = "bayesgmm.GaussianMixtureEM"
BAYES_KIND = "bayesgmm.GaussianMixtureBayes"
#: Tolerances of the checks: weights sum to one, covariances are symmetric.
SIMPLEX_TOLERANCE, SYMMETRY_TOLERANCE = 1e-6, 1e-8
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_CHECKSUM_PREFIX = b"\nbayesgmm-sha256:"
_CHECKSUM_LENGTH = len(_CHECKSUM_PREFIX) + 64 + 1


def new_file_mode():
    """The permissions an ordinary new file gets (0o666 less the umask).

    ``tempfile.mkstemp`` creates its files private (0o600); a temporary file renamed
    into place gets this mode first, so it ends up readable like any other.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def check_output_path(path) -> Path:
    """``path`` as a Path that names a file which can be created; clear errors otherwise."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file name (str or os.PathLike), got {path!r}.")
    if str(path) == "" or os.fspath(path) == "":
        raise ValueError("path is empty: give the name of the file to write, e.g. 'fit.nc'.")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot save to {path}: it is a folder; give a file name inside it.")
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot save to {path}: there is no folder {parent}.")
    return path


@contextmanager
def atomic_write(path):
    """Yield a temporary file beside ``path``; when the block ends, rename it over ``path``.

    Write to the yielded ``Path`` (it exists, empty). It has the suffix of ``path``
    (writers that choose the format from the extension, matplotlib's ``savefig`` say,
    choose the same one) and gets the permissions of an ordinary new file
    (:func:`new_file_mode`) before the rename. If the block raises, the temporary file
    is removed and any earlier file at ``path`` is left untouched. Nest several
    (``contextlib.ExitStack``) to rename a set of files only once all are written.

    Examples
    --------
    >>> with atomic_write("table.csv") as tmp:  # doctest: +SKIP
    ...     frame.to_csv(tmp, index=False)
    """
    path = Path(path)
    # ".fit.nc-<random>.nc": a "." before the random part would make it the suffix of a
    # destination without one
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=path.suffix,
                                   dir=path.parent)
    os.close(handle)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomically(path, write):
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    A failed write leaves any earlier file at ``path`` intact (see :func:`atomic_write`);
    an HDF5 file gets the checksum line of the module docstring. Returns ``path`` as a
    ``Path``, checked by :func:`check_output_path` first.
    """
    path = check_output_path(path)
    with atomic_write(path) as tmp:
        write(tmp)
        _append_checksum(tmp)
    return path


def read_kind(path):
    """Open a bayesgmm netCDF file: ``(DataTree, kind)``; clear errors for anything else.

    Files of the kinds bayesgmm writes (``bayesgmm_kind`` attribute) are checked in
    full (see the module docstring); a ``ValueError`` naming the file says what is
    wrong. Other netCDF files are returned unchecked with their kind (None if absent).
    """
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    _verify_checksum(path)
    try:
        _read_root_attributes(path)
        with xr.open_datatree(path, engine="h5netcdf") as opened:
            tree = opened.load()
    except Exception as error:  # noqa: BLE001 - h5py raises OSError, KeyError, RuntimeError...
        raise ValueError(
            f"{path} is not a netCDF file written by bayesgmm, or it is damaged: "
            f"{type(error).__name__}: {error}") from None
    kind = tree.attrs.get("bayesgmm_kind")
    kind = kind if isinstance(kind, str) else None
    if kind in _CHECKS:
        _CHECKS[kind](_File(path, tree))
    return tree, kind


def _sha256(path, length):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while length > 0:
            block = handle.read(min(length, 1 << 20))
            if not block:
                break
            digest.update(block)
            length -= len(block)
    return digest.hexdigest().encode()


def _append_checksum(path):
    """End an HDF5 file with the checksum line (other files are left alone)."""
    with open(path, "rb") as handle:
        if handle.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
            return
    checksum = _sha256(path, os.path.getsize(path))
    with open(path, "ab") as handle:
        handle.write(_CHECKSUM_PREFIX + checksum + b"\n")


def _verify_checksum(path):
    """Refuse a file whose checksum line does not match it; True if it had one."""
    size = os.path.getsize(path)
    if size < _CHECKSUM_LENGTH:
        return False
    with open(path, "rb") as handle:
        handle.seek(size - _CHECKSUM_LENGTH)
        line = handle.read()
    match = re.fullmatch(re.escape(_CHECKSUM_PREFIX) + rb"([0-9a-f]{64})\n", line)
    if match is None:
        return False
    if _sha256(path, size - _CHECKSUM_LENGTH) != match[1]:
        raise ValueError(
            f"{path} is damaged: its contents do not match the checksum bayesgmm wrote at "
            "its end (a copy or disk error, or an edit after saving). Save the result again "
            "or use an intact copy.")
    return True


def _read_root_attributes(path):
    """Open ``path`` with h5py and read its root attributes, or raise.

    h5netcdf reads a root attribute half-way through building its File object; if
    that read fails (a damaged file), the half-built object raises again from its
    ``__del__`` (an "exception ignored" report, an error under pytest). Reading the
    attributes here first fails cleanly instead.
    """
    import h5py

    with h5py.File(path, "r") as h5:
        dict(h5.attrs)


# ------------------------------------------------------------- file checks
class _File:
    """A result file being checked: typed access to its contents, failing with its name."""

    def __init__(self, path, tree):
        self.path, self.tree = path, tree

    def fail(self, what):
        raise ValueError(f"{self.path} is damaged or not a bayesgmm result: {what}.")

    # attributes
    def attr(self, attrs, name, where="the file"):
        if name not in attrs:
            self.fail(f"{where} lacks the {name!r} attribute")
        return attrs[name]

    def json_object(self, name):
        text = self.attr(self.tree.attrs, name)
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except ValueError as error:
            self.fail(f"its {name!r} attribute is not valid JSON ({error})")
        if not isinstance(value, dict):
            self.fail(f"its {name!r} attribute is not a JSON object")
        return value

    def integer(self, value, name, minimum=None, maximum=None):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
                or (minimum is not None and value < minimum) \
                or (maximum is not None and value > maximum):
            bounds = "" if minimum is None else f" >= {minimum}"
            bounds += "" if maximum is None else f" and <= {maximum}"
            self.fail(f"{name} is {_shown(value)}, not an integer{bounds}")
        return int(value)

    def number(self, value, name):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
                or not np.isfinite(value):
            self.fail(f"{name} is {_shown(value)}, not a finite number")
        return float(value)

    def entry(self, mapping, key, where):
        if key not in mapping:
            self.fail(f"{where} has no {key!r}")
        return mapping[key]

    def structure(self, name):
        from ._gaussian import get_covariance_structure

        try:
            return get_covariance_structure(name)
        except ValueError as error:
            self.fail(f"its covariance type: {error}")

    def version(self, required):
        from . import __version__

        version = self.tree.attrs.get("bayesgmm_version")
        if version is None and not required:
            return
        if not isinstance(version, str) or not re.fullmatch(r"\d+\.\d+\.\d+\S*", version):
            self.fail(f"its bayesgmm_version attribute is {version!r}, not a version number")
        ours = _major_minor(__version__)
        if ours > (0, 0) and _major_minor(version) > ours:
            raise ValueError(f"{self.path} was written by bayesgmm {version}, newer than this "
                             f"one ({__version__}): upgrade bayesgmm to read it.")

    # arrays
    def group(self, name):
        if name not in self.tree.children:
            self.fail(f"it has no {name!r} group")
        return self.tree[name].to_dataset()

    def array(self, ds, name, dims, where, *, sizes=None, required=True, finite=True):
        """A float array with these dims; ``sizes`` maps dims to the sizes they must have."""
        label = name if where is None else f"{where}/{name}"
        if name not in ds:
            if required:
                self.fail(f"it has no variable {label!r}")
            return None
        var = ds[name]
        if tuple(var.dims) != tuple(dims):
            self.fail(f"{label} has dims {tuple(var.dims)}, expected {tuple(dims)}")
        values = var.values
        if values.dtype.kind not in "iuf":
            self.fail(f"{label} holds {values.dtype} values, not numbers")
        values = values.astype(float)
        for dim, size in (sizes or {}).items():
            if dim in var.sizes and var.sizes[dim] != size:
                self.fail(f"{label} has {var.sizes[dim]} entries along {dim!r} where "
                          f"the configuration says {size}")
        if finite and not np.all(np.isfinite(values)):
            bad = int(np.sum(~np.isfinite(values)))
            self.fail(f"{label} has {bad} NaN or infinite value(s)")
        if values.size == 0:
            self.fail(f"{label} is empty")
        return values

    def labels(self, ds, dim, expected, where):
        """The coordinate ``dim`` of ``ds``, if any, equals ``expected``."""
        if dim in ds.coords and [str(v) for v in ds[dim].values] != list(expected):
            self.fail(f"{where}'s {dim} labels {[str(v) for v in ds[dim].values]} differ "
                      f"from the configuration's {list(expected)}")

    def mixture(self, weights, means, covariances, structure, where):
        """Weights on the simplex and positive definite covariances of ``structure``.

        ``weights`` (..., K), ``means`` (..., K, D), ``covariances`` (..., K, D, D) as
        full matrices; leading dimensions (chains, draws) are checked draw by draw.
        """
        K, D = means.shape[-2:]
        if weights.shape[-1] != K or covariances.shape[-3:] != (K, D, D):
            self.fail(f"{where} has weights, means and covariances of inconsistent shapes "
                      f"{weights.shape}, {means.shape}, {covariances.shape}")
        totals = weights.sum(axis=-1)
        if np.any(weights < 0) or np.any(np.abs(totals - 1) > SIMPLEX_TOLERANCE):
            self.fail(f"{where} weights are not on the simplex (minimum {weights.min():.6g}, "
                      f"sums from {totals.min():.12g} to {totals.max():.12g}; they must be "
                      "non-negative and sum to 1)")
        diagonal = np.diagonal(covariances, axis1=-2, axis2=-1)
        if np.any(diagonal <= 0):
            self.fail(f"{where} covariances have a variance <= 0")
        scale = np.sqrt(diagonal[..., :, None] * diagonal[..., None, :])
        asymmetry = np.abs(covariances - np.swapaxes(covariances, -1, -2))
        if np.any(asymmetry > SYMMETRY_TOLERANCE * scale):
            self.fail(f"{where} covariances are not symmetric")
        try:
            np.linalg.cholesky(covariances)
        except np.linalg.LinAlgError:
            self.fail(f"{where} covariances are not positive definite")
        for full, tolerance in zip(covariances.reshape((-1, K, D, D)),
                                   SYMMETRY_TOLERANCE * scale.reshape((-1, K, D, D))):
            expected = structure.to_full(structure.from_full(full), K, D)
            if np.any(np.abs(full - expected) > tolerance):
                self.fail(f"{where} covariances do not have the {structure.name!r} structure "
                          "of the configuration")


def _shown(value):
    return repr(value.item() if isinstance(value, np.generic) else value)


def _major_minor(version):
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _check_em_file(f: _File):
    """What :meth:`GaussianMixtureEM.load` reads."""
    from .em import GaussianMixtureEM

    f.version(required=False)
    params = f.json_object("params")
    unknown = sorted(set(params) - set(GaussianMixtureEM._get_param_names()))
    if unknown:
        f.fail(f"its params attribute has unknown parameter(s) {unknown}")
    structure = f.structure(f.entry(params, "covariance_type", "its params attribute"))
    K = f.integer(f.entry(params, "n_components", "its params attribute"), "n_components",
                  minimum=1)
    attrs = f.tree.attrs
    for name in ("log_likelihood", "lower_bound"):
        f.number(f.attr(attrs, name), f"the {name} attribute")
    f.integer(f.attr(attrs, "n_iter"), "the n_iter attribute", minimum=0)
    for name in ("converged", "named_features"):  # flags: 0/1 (or booleans)
        flag = f.attr(attrs, name)
        f.integer(int(flag) if isinstance(flag, (bool, np.bool_)) else flag,
                  f"the {name} attribute", minimum=0, maximum=1)
    ds = f.tree.to_dataset()
    weights = f.array(ds, "weights", ("component",), None, sizes={"component": K})
    means = f.array(ds, "means", ("component", "feature"), None, sizes={"component": K})
    D = means.shape[1]
    covariances = f.array(ds, "covariances", ("component", "feature", "feature2"), None,
                          sizes={"component": K, "feature2": D})
    f.array(ds, "log_likelihood_trace", ("iteration",), None)
    if "feature" in ds.coords and ds["feature"].values.dtype.kind not in "UO":
        f.fail("its feature labels are not strings")
    f.mixture(weights, means, covariances, structure, "its")


def _check_bayes_file(f: _File):
    """What :meth:`GaussianMixtureBayes.load` reads."""
    from .priors import priors_from_dict

    config = f.json_object("config")
    method = f.attr(f.tree.attrs, "method")
    if method not in ("nuts", "map", "advi"):
        f.fail(f"its method attribute is {method!r}, not 'nuts', 'map' or 'advi'")
    f.version(required=True)
    where = "its config attribute"

    def entry(key):
        return f.entry(config, key, where)

    K = f.integer(entry("n_components"), "n_components", minimum=1)
    structure = f.structure(entry("covariance_type"))
    names = entry("feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names) \
            or len(set(names)) != len(names):
        f.fail(f"its feature_names {names!r} are not distinct strings")
    D = len(names)
    center = entry("center")
    if not isinstance(center, list) or len(center) != D:
        f.fail(f"its center {center!r} does not have one value per feature ({D})")
    for value in center:
        f.number(value, "a value of center")
    if entry("order_by") is not None:
        f.integer(entry("order_by"), "order_by", minimum=0, maximum=D - 1)
    if entry("random_state") is not None:
        f.integer(entry("random_state"), "random_state", minimum=0)
    if config.get("fixed") is not None:  # absent before fixed parameters
        from ._fixed import FixedParameters, from_dict

        try:
            FixedParameters.check(from_dict(config["fixed"]), structure, K, D)
        except (ValueError, TypeError, AttributeError) as error:
            f.fail(f"its fixed parameters: {error}")
    try:
        priors_from_dict(entry("priors"))
    except ValueError as error:
        f.fail(f"its priors: {error}")
    for key in ("relabel", "fit"):
        if not isinstance(entry(key), dict):
            f.fail(f"its {key} entry is not a JSON object")
    if not isinstance(config.get("retry"), (dict, type(None))):  # absent before 2026-12
        f.fail("its retry entry is neither null nor a JSON object")
    em = entry("em")
    if not isinstance(em, dict):
        f.fail("its em entry is not a JSON object")
    em_arrays = []
    for key, shape in (("weights", (K,)), ("means", (K, D)),
                       ("covariances", structure.covariance_shape(K, D))):
        try:
            value = np.asarray(f.entry(em, key, "its em entry"), dtype=float)
        except (TypeError, ValueError):
            f.fail(f"its em {key} are not numbers")
        if value.shape != tuple(shape) or not np.all(np.isfinite(value)):
            f.fail(f"its em {key} have shape {value.shape} (expected {tuple(shape)}) or are "
                   "not finite")
        em_arrays.append(value)
    f.number(f.entry(em, "log_likelihood", "its em entry"), "the em log_likelihood")
    weights, means, covariances = em_arrays
    f.mixture(weights, means, structure.to_full(covariances, K, D), structure, "its EM fit's")

    observed = f.group("observed_data")
    marginalised = config.get("missing", "raise") == "marginalize"
    X = f.array(observed, "obs", ("obs_id", "feature"), "observed_data", sizes={"feature": D},
                finite=not marginalised)
    if marginalised:  # NaN marks a missing entry; never an infinity or an empty row
        if np.isinf(X).any():
            f.fail("observed_data/obs has infinite values")
        if np.isnan(X).all(axis=1).any():
            f.fail(f"observed_data/obs has {int(np.isnan(X).all(axis=1).sum())} row(s) "
                   "with every entry missing")
        if int(np.isnan(X).sum()) != config.get("n_missing", 0):
            f.fail(f"observed_data/obs has {int(np.isnan(X).sum())} missing entries where "
                   f"the configuration says {config.get('n_missing', 0)}")
    f.labels(observed, "feature", names, "observed_data")
    weights = f.array(observed, "sample_weight", ("obs_id",), "observed_data",
                      sizes={"obs_id": len(X)}, required=False)
    if weights is not None and (np.any(weights < 0) or not np.any(weights > 0)):
        f.fail("observed_data/sample_weight has negative values or none positive")
    if bool(config.get("weighted", False)) != (weights is not None):  # absent before 2026-12
        f.fail("its configuration says the fit was " + (
            "weighted" if config.get("weighted") else "unweighted") + " but observed_data "
            + ("lacks" if weights is None else "has") + " sample_weight")
    posterior = f.group("posterior")
    lead = ("chain", "draw")
    sizes = {"component": K, "feature": D}
    weights = f.array(posterior, "weights", lead + ("component",), "posterior", sizes=sizes)
    means = f.array(posterior, "means", lead + ("component", "feature"), "posterior",
                    sizes=sizes)
    covariances = f.array(posterior, "covariances", lead + ("component", "feature", "feature2"),
                          "posterior", sizes={**sizes, "feature2": D})
    for name in ("sigmas", "variances"):
        # per component and feature; spherical ones have no feature dim, 1-D tied no component
        own = posterior[name].dims if name in posterior.data_vars else ()
        dims = lead + tuple(d for d in ("component", "feature") if d in own)
        values = f.array(posterior, name, dims if len(dims) > 2 else lead + ("component",),
                         "posterior", sizes=sizes, required=False)
        if values is not None and np.any(values <= 0):
            f.fail(f"posterior/{name} has values <= 0")
    correlations = f.array(posterior, "correlations",
                           lead + ("component", "feature", "feature2"), "posterior",
                           sizes={**sizes, "feature2": D}, required=False)
    if correlations is not None and np.any(np.abs(correlations) > 1 + 1e-9):
        f.fail("posterior/correlations has values outside [-1, 1]")
    f.labels(posterior, "feature", names, "posterior")
    f.mixture(weights, means, covariances, structure, "posterior")
    chains, draws = weights.shape[:2]
    log_lik = f.group("log_likelihood")
    values = f.array(log_lik, "obs", lead + ("obs_id",), "log_likelihood",
                     sizes={"chain": chains, "draw": draws, "obs_id": len(X)}, finite=False)
    if np.any(np.isnan(values)):
        f.fail("log_likelihood/obs has NaN values")
    if "sample_stats" in f.tree.children:
        stats = f.group("sample_stats")
        for dim, size in (("chain", chains), ("draw", draws)):
            if stats.sizes.get(dim, size) != size:
                f.fail(f"sample_stats has {stats.sizes[dim]} entries along {dim!r}, the "
                       f"posterior {size}")


_CHECKS = {EM_KIND: _check_em_file, BAYES_KIND: _check_bayes_file}
