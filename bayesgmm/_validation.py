"""Input checks that fail early with messages saying what was wrong and how to fix it."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

__all__ = ["as_numeric_table", "check_sample_weight", "check_enough_samples"]


def _column_label(columns, j) -> str:
    return repr(columns[j]) if columns is not None else f"{j}"


def _describe_nonfinite(values: np.ndarray, columns) -> str | None:
    """'3 NaN (column 'a': 2, 'b': 1) and 1 inf (column 'b': 1)', or None."""
    parts = []
    for label, mask in (("NaN", np.isnan(values)), ("inf", np.isinf(values))):
        per_column = mask.sum(axis=0)
        if per_column.sum() == 0:
            continue
        where = ", ".join(
            f"{_column_label(columns, j)}: {int(c)}" for j, c in enumerate(per_column) if c
        )
        noun = "column" if np.count_nonzero(per_column) == 1 else "columns"
        parts.append(f"{int(per_column.sum())} {label} ({noun} {where})")
    return " and ".join(parts) if parts else None


def as_numeric_table(X, *, what: str = "X"):
    """Check that ``X`` is a finite, numeric, 2-D table; return it ready for scikit-learn.

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
        message = _describe_nonfinite(values, list(X.columns))
        if message:
            raise ValueError(_nonfinite_message(what, message))
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
            message = _describe_nonfinite(array, None)
            if message:
                raise ValueError(_nonfinite_message(what, message))
        return array
    raise TypeError(
        f"{what} must be a numpy array, pandas DataFrame or xarray DataArray, "
        f"got {type(X).__name__}."
    )


def _nonfinite_message(what, description):
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


def check_sample_weight(sample_weight, n_samples: int, dtype) -> np.ndarray:
    """Sample weights as a float array of shape (n_samples,); ones when None."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    if isinstance(sample_weight, numbers.Number):
        weights = np.full(n_samples, sample_weight, dtype=dtype)
    else:
        weights = np.asarray(sample_weight)
        if weights.dtype.kind not in "biuf":
            raise ValueError(f"sample_weight must be numeric, got dtype {weights.dtype}.")
        weights = weights.astype(dtype)
    if weights.ndim != 1 or weights.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), one weight per sample, "
            f"got shape {weights.shape}."
        )
    if not np.all(np.isfinite(weights)):
        raise ValueError("sample_weight contains NaN or inf; weights must be finite.")
    if np.any(weights < 0):
        raise ValueError(
            f"sample_weight has {int(np.sum(weights < 0))} negative values; weights must "
            "be non-negative (a zero weight drops the sample)."
        )
    if not np.any(weights > 0):
        raise ValueError(
            "sample_weight is all zero, so no sample would count. Give at least one "
            "sample a positive weight."
        )
    return weights


def check_enough_samples(n_samples: int, n_components: int) -> None:
    """Refuse fewer (positively weighted) samples than components."""
    if n_samples < n_components:
        raise ValueError(
            f"Expected n_samples >= n_components, but got n_components = {n_components}, "
            f"n_samples = {n_samples}: a mixture cannot have more components than data "
            "points. Use fewer components or more data."
        )
