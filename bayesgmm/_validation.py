"""Input checks that fail early with messages saying what was wrong and how to fix it."""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

__all__ = [
    "as_numeric_table",
    "check_sample_weight",
    "optional_sample_weight",
    "integer_weights",
    "check_enough_samples",
    "check_choice",
    "check_integer",
    "check_number",
    "check_seed",
    "check_real_array",
    "check_feature",
]


def describe_error(error) -> str:
    """A failed fit's error as it is recorded in a results table: ``"Type: message"``."""
    return f"{type(error).__name__}: {error}"


def _column_label(columns, j) -> str:
    return repr(columns[j]) if columns is not None else f"{j}"


def _describe_nonfinite(values: np.ndarray, columns, allow_nan=False) -> str | None:
    """'3 NaN (column 'a': 2, 'b': 1) and 1 inf (column 'b': 1)', or None (with
    ``allow_nan``: only the infinities, and the rows with every entry NaN)."""
    if values.size == 0 or (np.isfinite(values.min()) and np.isfinite(values.max())):
        return None  # two passes without temporaries: the common case, fast
    parts = []
    checks = [("inf", np.isinf(values))]
    if not allow_nan:
        checks.insert(0, ("NaN", np.isnan(values)))
    else:
        empty = np.isnan(values).all(axis=1)
        if empty.any():
            rows = np.flatnonzero(empty)
            shown = ", ".join(str(i) for i in rows[:5]) + (" ..." if len(rows) > 5 else "")
            noun = "row" if len(rows) == 1 else "rows"
            parts.append(f"{len(rows)} {noun} with every feature missing ({noun} {shown}), "
                         "which carry no information")
    for label, mask in checks:
        per_column = mask.sum(axis=0)
        if per_column.sum() == 0:
            continue
        where = ", ".join(
            f"{_column_label(columns, j)}: {int(c)}" for j, c in enumerate(per_column) if c
        )
        noun = "column" if np.count_nonzero(per_column) == 1 else "columns"
        parts.append(f"{int(per_column.sum())} {label} ({noun} {where})")
    return " and ".join(parts) if parts else None


def as_numeric_table(X, *, what: str = "X", allow_nan: bool = False):
    """Check that ``X`` is a finite, numeric, 2-D table; return it ready for scikit-learn.

    With ``allow_nan``, NaN marks a missing entry and is accepted, except in a row
    whose entries are all missing.

    Accepts numpy arrays (and anything ``np.asarray`` understands), pandas
    DataFrames and 2-D xarray DataArrays. A DataArray with a ``feature`` dimension is
    oriented so that ``feature`` is the second axis, and its ``feature`` coordinate
    becomes the column names. DataFrames are returned as DataFrames so scikit-learn
    keeps their column names; everything else as an ndarray.

    Raises
    ------
    ValueError
        For 1-D or >2-D input, non-numeric columns (named), NaN or inf (counted per
        column).
    """
    if _is_sparse(X):
        raise TypeError(
            f"{what} is a sparse matrix, and sparse input is not supported: Gaussian "
            "mixtures need dense data. Convert it with X.toarray()."
        )
    X = _from_xarray(X, what)
    if isinstance(X, pd.Series):
        raise ValueError(
            f"{what} must be 2-D of shape (n_samples, n_features), got a pandas Series "
            f"of length {len(X)}. For a single feature pass a one-column DataFrame "
            "such as df[[name]]. Reshape your data if needed."
        )
    if isinstance(X, pd.DataFrame):
        non_numeric = [
            c for c in X.columns
            if not (pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_complex_dtype(X[c]))
        ]
        if non_numeric:
            raise ValueError(
                f"{what} has non-numeric columns {non_numeric} "
                f"(dtypes {[str(X[c].dtype) for c in non_numeric]}). A Gaussian mixture "
                "needs numbers: drop these columns, or encode them numerically first."
            )
        values = X.to_numpy(dtype=float, na_value=np.nan)
        message = _describe_nonfinite(values, list(X.columns), allow_nan)
        if message:
            raise ValueError(_nonfinite_message(what, message, allow_nan))
        return X
    if hasattr(X, "__array__") or isinstance(X, (list, tuple)):
        array = np.asarray(X)
        if array.ndim == 1:
            raise ValueError(
                f"Expected 2-D {what} of shape (n_samples, n_features), got a 1-D array "
                f"of shape {array.shape}. Reshape your data with X.reshape(-1, 1) for a "
                "single feature or X.reshape(1, -1) for a single sample."
            )
        if array.ndim != 2:
            raise ValueError(
                f"Expected 2-D {what} of shape (n_samples, n_features), got an array of "
                f"shape {array.shape}."
            )
        if array.dtype.kind == "c":
            raise ValueError(
                f"Complex data not supported: {what} is complex, and Gaussian mixtures "
                "need real numbers."
            )
        if array.dtype.kind not in "biuf":
            try:
                array = array.astype(float)
            except (TypeError, ValueError) as error:
                bad = [j for j in range(array.shape[1]) if not _column_is_numeric(array[:, j])]
                raise type(error)(
                    f"{what} has non-numeric columns {bad} (by position) ({error}). A "
                    "Gaussian mixture needs numbers: drop these columns, or encode them "
                    "numerically first."
                ) from None
        if array.dtype.kind == "f":
            message = _describe_nonfinite(array, None, allow_nan)
            if message:
                raise ValueError(_nonfinite_message(what, message, allow_nan))
        return array
    raise TypeError(
        f"{what} must be a numpy array, pandas DataFrame or xarray DataArray, "
        f"got {type(X).__name__}."
    )


def _nonfinite_message(what, description, allow_nan=False):
    if allow_nan:
        return (f"Input {what} contains {description}. NaN marks a missing entry; drop "
                "those rows (e.g. df.dropna(how='all')) and replace infinite values.")
    return (
        f"Input {what} contains {description}. Remove or impute these values "
        "before fitting (e.g. df.dropna())."
    )


def _is_sparse(X) -> bool:
    return hasattr(X, "toarray") and hasattr(X, "nnz")


def _column_is_numeric(column) -> bool:
    try:
        column.astype(float)
    except (TypeError, ValueError):
        return False
    return True


def _from_xarray(X, what):
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - xarray is a dependency
        return X
    if isinstance(X, xr.Dataset):
        raise TypeError(
            f"{what} is an xarray Dataset; pass a 2-D DataArray (sample x feature), "
            "e.g. ds.to_dataarray('feature').transpose(..., 'feature')."
        )
    if not isinstance(X, xr.DataArray):
        return X
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D DataArray {what} with dims (sample, feature), got dims {X.dims}."
        )
    if "feature" in X.dims:
        X = X.transpose(..., "feature")
    feature_dim = X.dims[1]
    if feature_dim in X.coords:
        columns = [str(v) for v in X.coords[feature_dim].values]
        return pd.DataFrame(X.values, columns=columns)
    return X.values


def check_sample_weight(sample_weight, n_samples: int, dtype=np.float64, *,
                        what: str = "sample_weight") -> np.ndarray:
    """Sample weights as a float array of shape (n_samples,); ones when None.

    The one check of sample weights, shared by EM, the Bayesian model, ``compare`` and
    the command line (which names its column in ``what``), so that a bad weight gets
    the same message everywhere, before any fitting: a number or one numeric weight
    per sample, finite, non-negative, not all zero.
    """
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    if isinstance(sample_weight, (bool, np.bool_)):
        raise ValueError(f"{what} must be numbers, got {sample_weight!r}.")
    if isinstance(sample_weight, numbers.Number):
        if isinstance(sample_weight, complex):
            raise ValueError(f"{what} must be real numbers, got {sample_weight!r}.")
        weights = np.full(n_samples, sample_weight, dtype=dtype)
    else:
        weights = np.asarray(getattr(sample_weight, "values", sample_weight))
        if weights.dtype.kind not in "biuf":
            raise ValueError(f"{what} must be numeric, got dtype {weights.dtype}.")
        weights = weights.astype(dtype)
    if weights.ndim != 1 or weights.shape[0] != n_samples:
        raise ValueError(
            f"{what} must have shape ({n_samples},), one weight per sample, "
            f"got shape {weights.shape}."
        )
    if not (np.isfinite(weights.min(initial=0.0)) and np.isfinite(weights.max(initial=0.0))):
        parts = [f"{int(mask.sum())} {label} ({_rows(mask)})" for label, mask in
                 (("NaN", np.isnan(weights)), ("inf", np.isinf(weights))) if mask.any()]
        raise ValueError(
            f"{what} contains NaN or inf: {' and '.join(parts)}; weights must be finite. "
            "Give those rows a weight (0 leaves a row out)."
        )
    negative = weights < 0
    if negative.any():
        raise ValueError(
            f"{what} has {int(negative.sum())} negative values ({_rows(negative)}); "
            "weights must be non-negative (a zero weight drops the sample)."
        )
    if not np.any(weights > 0):
        raise ValueError(
            f"{what} is all zero, so no sample would count. Give at least one "
            "sample a positive weight."
        )
    return weights


def _rows(mask, limit=5) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in rows[:limit]) + (" ..." if len(rows) > limit else "")
    return f"row{'s' if len(rows) > 1 else ''} {shown}"


def optional_sample_weight(sample_weight, n_samples: int, *, what: str = "sample_weight"):
    """None for None, else :func:`check_sample_weight`'s float64 array."""
    if sample_weight is None:
        return None
    return check_sample_weight(sample_weight, n_samples, np.float64, what=what)


def integer_weights(weights) -> bool:
    """Whether every weight is a whole number (frequency weights: each counts a row that
    many times). None, unweighted, counts as integer."""
    return weights is None or bool(np.all(np.asarray(weights) == np.round(weights)))


def check_enough_samples(n_samples: int, n_components: int) -> None:
    """Refuse fewer (positively weighted) samples than components."""
    if n_samples < n_components:
        raise ValueError(
            f"Expected n_samples >= n_components, but got n_components = {n_components}, "
            f"n_samples = {n_samples}: a mixture cannot have more components than data "
            "points. Use fewer components or more data."
        )


# ------------------------------------------------------- scalar arguments
# One checker per kind of argument, shared by the estimators, the priors and the
# command line: each names the argument, says what was expected and what came.

#: Accepted values of ``missing`` (the first is the default): what NaN in ``X`` means to
#: the estimators and :func:`bayesgmm.build_model`.
MISSING_OPTIONS = ("marginalize", "raise")


def check_choice(name, value, valid):
    """``value`` is one of the strings ``valid``; returns it."""
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"{name} must be one of {list(valid)}, got {value!r}.")
    return value


def check_integer(name, value, *, minimum=None, maximum=None):
    """An integer (a Python or numpy integer, never a bool) within bounds; returns an int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or (minimum is not None and value < minimum) \
            or (maximum is not None and value > maximum):
        if minimum is not None and maximum is not None:
            bounds = f" in [{minimum}, {maximum}]"
        elif minimum is not None:
            bounds = f" >= {minimum}"
        elif maximum is not None:
            bounds = f" <= {maximum}"
        else:
            bounds = ""
        raise ValueError(f"{name} must be an integer{bounds}, got {value!r}.")
    return int(value)


def check_number(name, value, *, low=-math.inf, high=math.inf, low_open=False,
                 high_open=False, hint=""):
    """A finite real number (not a bool, not a string) in an interval; returns a float.

    ``low_open``/``high_open`` exclude the bounds: ``check_number("target_accept", x,
    low=0, high=1, low_open=True, high_open=True)`` accepts (0, 1).
    """
    ok = (not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real)
          and math.isfinite(value)
          and (value > low if low_open else value >= low)
          and (value < high if high_open else value <= high))
    if not ok:
        if math.isinf(low) and math.isinf(high):
            expected = "a finite number"
        elif math.isinf(high):
            expected = f"a number {'>' if low_open else '>='} {low:g}"
        elif math.isinf(low):
            expected = f"a number {'<' if high_open else '<='} {high:g}"
        else:
            expected = (f"a number in {'(' if low_open else '['}{low:g}, "
                        f"{high:g}{')' if high_open else ']'}")
        raise ValueError(f"{name} must be {expected}, got {value!r}{hint}.")
    return float(value)


def check_seed(name, value):
    """None or a non-negative integer (what ``np.random.SeedSequence`` takes); returns it."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or value < 0:
        raise ValueError(
            f"{name} must be None or a non-negative integer (a seed), got {value!r}."
        )
    return int(value)


def check_real_array(name, value, *, positive=False, max_ndim=None, hint=""):
    """A number or an array of numbers, finite (and > 0 if ``positive``): float ndarray.

    Strings, booleans, complex numbers and objects are refused even when numpy could
    convert them (``"2"`` is not a number here), so that a typo in a prior fails.
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):  # ragged nested lists
        array = np.asarray(None)
    if array.dtype.kind not in "iuf" or array.size == 0:
        raise ValueError(f"{name} must be a number or an array of numbers, got {value!r}{hint}.")
    if max_ndim is not None and array.ndim > max_ndim:
        shapes = {0: "a number", 1: "a number or a vector"}.get(max_ndim, f"at most {max_ndim}-D")
        raise ValueError(f"{name} must be {shapes}, got an array of shape {array.shape}{hint}.")
    array = array.astype(float)
    if positive and not (np.all(np.isfinite(array)) and np.all(array > 0)):
        raise ValueError(f"{name} must be positive and finite, got {value!r}{hint}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {value!r}{hint}.")
    return array


def check_feature(name, value, feature_names):
    """A feature given by name or by integer position: its position (or None for None)."""
    names = list(feature_names)
    if value is None:
        return None
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"{name} must be one of the features {names}, got {value!r}.")
        return names.index(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or not 0 <= value < len(names):
        raise ValueError(
            f"{name} must be a feature name ({names}) or an integer position in "
            f"[0, {len(names) - 1}], got {value!r}."
        )
    return int(value)


def check_client(client):
    """A running ``dask.distributed.Client`` (checked without importing Dask)."""
    status = getattr(client, "status", None)
    if status != "running":
        raise ValueError(f"client must be a running dask.distributed.Client, got "
                         f"{type(client).__name__} with status {status!r}: start one, e.g. "
                         "Client() for local processes or Client('tcp://scheduler:8786').")
    return client

