"""EM on Dask arrays: data larger than memory, or spread over a cluster.

:class:`~bayesgmm.GaussianMixtureEM` hands a Dask array (or an xarray DataArray backed
by one, e.g. opened from zarr or netCDF) to this module. Every EM iteration is one
task per chunk of rows, each running the in-memory engine on its chunk (the block
engine :class:`bayesgmm.em._BlockEngine`, or with missing entries
:class:`bayesgmm._missing.MissingEngine`) and returning only the chunk's sufficient
statistics (log-likelihood, ``Σr``, ``Σr·x``, ``Σr·q(x)`` per component), then a tree
reduction of those sums; the M-step runs in the client on the totals, so no chunk's
responsibilities are kept and the maths is the in-memory code's. The fit itself is
:meth:`GaussianMixtureEM._fit`'s, asking :class:`DaskData` what it asks of in-memory
data. The scheduler is whichever Dask would use (a ``dask.distributed.Client`` if one
is active).

The start (hierarchical, k-means, ...) runs in memory on a seeded subsample of
``START_ROWS`` rows; the centre and covariance of the data (the scale checks,
``standardize``, the prior's defaults, the collapse check) come from one pass over the
data (two when entries are missing: the second for the mean-imputed covariance).
Predictions, imputations and ``icl`` of a Dask input are lazy Dask arrays chunked as
the input's rows, or computed criteria.

Chunks split along features are refused: rechunk with ``X.rechunk({1: -1})``. Unlike
in memory, the best screened start of ``init_params="auto"`` continues on all the data
directly (no step on a larger subsample first: drawing it would read all the data).
"""

from __future__ import annotations

import sys

import numpy as np

from . import em as _em

#: Rows drawn (seeded by ``random_state``) into memory for the start of a Dask fit.
START_ROWS = 10_000

# Partial results summed per task of the tree reduction.
_SPLIT_EVERY = 8


def is_dask_input(X) -> bool:
    """Whether ``X`` is a Dask collection (or an xarray object backed by one).

    Never imports Dask: nothing can be a Dask collection before Dask is imported.
    """
    if "dask" not in sys.modules:
        return False
    import dask

    return dask.is_dask_collection(X)


# ------------------------------------------------------------------ input checks
def _as_dask_table(X, what="X"):
    """``X`` as a 2-D floating Dask array with whole rows in every chunk, and its
    feature names (or None)."""
    import dask.array as da

    names = None
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - xarray is a dependency
        xr = None
    if xr is not None and isinstance(X, xr.Dataset):
        raise TypeError(
            f"{what} is an xarray Dataset; pass a 2-D DataArray (sample x feature), "
            "e.g. ds.to_dataarray('feature').transpose(..., 'feature').")
    if xr is not None and isinstance(X, xr.DataArray):
        if X.ndim != 2:
            raise ValueError(
                f"Expected a 2-D DataArray {what} with dims (sample, feature), got dims "
                f"{X.dims}.")
        if "feature" in X.dims:
            X = X.transpose(..., "feature")
        if X.dims[1] in X.coords:
            names = np.asarray([str(v) for v in X.coords[X.dims[1]].values], dtype=object)
        X = X.data
    if not isinstance(X, da.Array):
        raise TypeError(
            f"{what} is a Dask collection of type {type(X).__name__}; EM takes a Dask "
            "array (or a DataArray backed by one). Convert a Dask DataFrame with "
            "df.to_dask_array(lengths=True).")
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2-D {what} of shape (n_samples, n_features), got a Dask array of "
            f"shape {X.shape}.")
    if any(np.isnan(size) for size in X.chunks[0]):
        raise ValueError(
            f"{what} is a Dask array of unknown chunk sizes (rows {X.chunks[0]}): call "
            f"{what}.compute_chunk_sizes() first.")
    if len(X.chunks[1]) > 1:
        raise ValueError(
            f"{what} is a Dask array whose chunks split the features ({X.chunks[1]} "
            "columns): EM needs every feature of a row in one chunk. Rechunk it with "
            f"{what}.rechunk({{1: -1}}) (rows per chunk then times {X.shape[1]} features "
            "should fit in a worker's memory).")
    kind = X.dtype.kind
    if kind not in "biuf":
        raise ValueError(
            f"{what} is a Dask array of dtype {X.dtype}; a Gaussian mixture needs real "
            "numbers.")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    return X, names


def _check_features(model, X, names):
    """Prediction input against the fitted model: the number and names of features."""
    _em.check_is_fitted(model)
    if X.shape[1] != model.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(model).__name__} is expecting "
            f"{model.n_features_in_} features as input.")
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None and names is not None and list(fitted) != list(names):
        raise ValueError(
            f"The feature names should match those that were passed during fit: got "
            f"{list(names)}, fitted with {list(fitted)}.")


def _row_weights(sample_weight, X):
    """Sample weights as a Dask array chunked as the rows of ``X``."""
    import dask.array as da

    if sample_weight is None:
        return da.ones(X.shape[0], chunks=(X.chunks[0],))
    if is_dask_input(sample_weight):
        weights = da.asarray(sample_weight)
        if weights.shape != (X.shape[0],):
            raise ValueError(
                f"sample_weight must have shape ({X.shape[0]},) (one weight per row of X), "
                f"got a Dask array of shape {weights.shape}.")
        return weights.astype(np.float64).rechunk((X.chunks[0],))
    weights = _em.check_sample_weight(sample_weight, X.shape[0], np.float64)
    return da.from_array(weights, chunks=(X.chunks[0],))


# ------------------------------------------------------------------ reductions
def _tree_reduce(parts, combine):
    """One delayed value: ``combine`` applied to groups of ``_SPLIT_EVERY`` parts,
    level after level, so no task sums more than a few partial results."""
    from dask import delayed

    while len(parts) > 1:
        parts = [delayed(combine, pure=True)(parts[i:i + _SPLIT_EVERY])
                 for i in range(0, len(parts), _SPLIT_EVERY)]
    return parts[0]


def _chunks(X, sample_weight):
    """(row offset, X chunk, weight chunk) of every non-empty chunk of rows, delayed."""
    offsets = np.concatenate([[0], np.cumsum(X.chunks[0])])
    pieces = zip(X.to_delayed().ravel(), sample_weight.to_delayed().ravel())
    return [(int(offsets[i]), x, w) for i, (x, w) in enumerate(pieces)
            if X.chunks[0][i] > 0]


def _chunk_data_moments(index, start, X, w):
    """One pass's statistics of a chunk: total weight, rows of positive weight, each
    feature's observed weight and weighted sum, the NaN count, and without NaN the
    weighted mean, scatter about it and each feature's range; or the first problem
    found (infinities, a bad weight, a row with every entry missing)."""
    where = (index, start, start + len(X))
    missing = np.isnan(X)
    n_nan = int(missing.sum())
    n_inf = int(np.isinf(X).sum())
    if n_inf:
        return {"bad": (*where, n_inf, "inf")}
    if not (np.isfinite(w).all() and (w >= 0).all()):
        return {"bad": (*where, 0, "sample_weight")}
    if n_nan and missing.all(axis=1).any():
        return {"bad": (*where, int(missing.all(axis=1).sum()), "empty")}
    total = float(w.sum())
    observed = ~missing
    observed_sum = w @ (np.where(observed, X, 0) if n_nan else X)
    part = {
        "bad": None, "weight": total, "n_points": int(np.count_nonzero(w)),
        "n_nan": n_nan, "first_nan": (*where, n_nan) if n_nan else None,
        "observed_weight": w @ observed, "observed_sum": observed_sum,
        "mean": None, "scatter": None, "low": None, "high": None,
    }
    if not n_nan:
        mean = observed_sum / total if total > 0 else np.zeros(X.shape[1])
        deviations = X - mean
        part.update(mean=mean, scatter=(deviations.T * w) @ deviations,
                    low=X.min(axis=0).astype(np.float64),
                    high=X.max(axis=0).astype(np.float64))
    return part


def _combine_data_moments(parts):
    """Merge chunk statistics: the sums added, the mean and scatter merged (Chan, Golub
    and LeVeque's pairwise update, weighted) while no chunk has missing entries; the
    first problem found wins."""
    bad = [p["bad"] for p in parts if p["bad"] is not None]
    if bad:
        return {"bad": min(bad)}
    result = dict(parts[0])
    for part in parts[1:]:
        total = result["weight"] + part["weight"]
        if result["scatter"] is not None and part["scatter"] is not None:
            if part["weight"] > 0:
                delta = part["mean"] - result["mean"]
                share = part["weight"] / total
                result["scatter"] = (result["scatter"] + part["scatter"]
                                     + np.outer(delta, delta) * result["weight"] * share)
                result["mean"] = result["mean"] + delta * share
            result["low"] = np.minimum(result["low"], part["low"])
            result["high"] = np.maximum(result["high"], part["high"])
        else:
            result.update(mean=None, scatter=None, low=None, high=None)
        result["weight"] = total
        for key in ("n_points", "n_nan", "observed_weight", "observed_sum"):
            result[key] = result[key] + part[key]
        firsts = [f for f in (result["first_nan"], part["first_nan"]) if f is not None]
        result["first_nan"] = min(firsts) if firsts else None
    return result


def _chunk_filled_moments(X, w, fill, center):
    """A chunk's scatter about ``center`` and feature ranges, missing entries replaced
    by ``fill`` (the observed means)."""
    from ._missing import filled_with  # not at import: _missing imports em, em this

    filled = filled_with(X, fill)
    deviations = filled - center.astype(X.dtype)
    return {"scatter": (deviations.T * w) @ deviations,
            "low": filled.min(axis=0).astype(np.float64),
            "high": filled.max(axis=0).astype(np.float64)}


def _add_filled_moments(parts):
    return {"scatter": sum(p["scatter"] for p in parts),
            "low": np.min([p["low"] for p in parts], axis=0),
            "high": np.max([p["high"] for p in parts], axis=0)}


def _data_moments(X, sample_weight, missing):
    """The data's statistics a fit needs (:meth:`DaskData.scan`), in one pass, or two
    when entries are missing; a chunk with inf, a bad weight, a row with no observed
    entry, or (``missing="raise"``) NaN is refused by its index and rows."""
    from dask import delayed

    chunks = _chunks(X, sample_weight)
    parts = [delayed(_chunk_data_moments, pure=True)(i, start, x, w)
             for i, (start, x, w) in enumerate(chunks)]
    moments = _tree_reduce(parts, _combine_data_moments).compute()
    if moments["bad"] is not None:
        index, start, stop, count, what = moments["bad"]
        where = f"in chunk {index} (rows {start} to {stop - 1})"
        if what == "sample_weight":
            raise ValueError(f"sample_weight has a negative or non-finite weight {where}: "
                             "weights must be finite and non-negative.")
        if what == "empty":
            raise ValueError(
                f"X (a Dask array) has {count} row(s) whose entries are all NaN {where}: "
                "a row with every feature missing carries no information. Drop it, e.g. "
                "X[~da.isnan(X).all(axis=1)] followed by compute_chunk_sizes().")
        raise ValueError(f"X (a Dask array) has {count} infinite values {where}: EM needs "
                         "finite data.")
    if moments["n_nan"] and missing == "raise":
        index, start, stop, count = moments["first_nan"]
        raise ValueError(
            f"X (a Dask array) has {moments['n_nan']} NaN, the first {count} in chunk "
            f"{index} (rows {start} to {stop - 1}); missing='raise' refuses missing "
            "entries. With missing='marginalize' (the default) EM treats them as missing "
            "at random.")
    total = moments["weight"]
    if not total > 0:
        raise ValueError("sample_weight must not be all zero.")
    if moments["n_nan"]:
        from ._missing import observed_means

        observed = moments["observed_weight"]
        fill = observed_means(moments["observed_sum"], observed)  # as mean_imputed's
        center = (moments["observed_sum"] + fill * (total - observed)) / total
        parts = [delayed(_chunk_filled_moments, pure=True)(x, w, fill, center)
                 for _, x, w in chunks]
        moments.update(_tree_reduce(parts, _add_filled_moments).compute())
    else:
        fill, center = None, moments["mean"]
    moments.update(fill=fill, center=center, covariance=moments["scatter"] / total)
    return moments


def _chunk_sweep(X, w, center, covariance_type, params, moments, has_missing):
    """The in-memory engine's pass over one chunk (a :class:`bayesgmm.em._PassResult`)."""
    structure = _em.get_covariance_structure(covariance_type)
    engine = _em.engine_for(X, w, center, structure, has_missing=None if has_missing
                            else False)
    return engine.sweep(*params, moments=moments)


def _add_passes(parts):
    """The sum of chunks' pass results (the centres are every chunk's)."""
    total = parts[0]
    for part in parts[1:]:
        total = _em._PassResult(
            total.log_likelihood + part.log_likelihood,
            *(None if a is None else a + b for a, b in
              ((total.nk, part.nk), (total.sum_x, part.sum_x), (total.sum_q, part.sum_q))),
            centres=total.centres)
    return total


class _DaskEngine:
    """The EM engine of a Dask array: what ``GaussianMixtureEM._run_em`` and ``_m_step``
    use of :class:`bayesgmm.em._BlockEngine`, a sweep being one task per chunk and a
    tree sum."""

    def __init__(self, X, sample_weight, center, structure, total_weight, has_missing):
        self.X = X
        self.chunks = _chunks(X, sample_weight)
        self.center = np.asarray(center, dtype=X.dtype)
        self.structure = structure
        self.has_missing = has_missing
        # _run_em reads only the total weight, as sample_weight.sum()
        self.sample_weight = np.array([total_weight])
        self.data_variance = self.prior = self.fixed = None

    def log_prior(self, params):
        """The prior's log density at ``params`` (0 without one), as in memory."""
        return _em._BlockEngine.log_prior(self, params)

    def sweep(self, weights, means, precisions_cholesky, *, moments=True, labels=False):
        """One pass over the data at the given parameters (labels are not collected)."""
        from dask import delayed

        params = delayed((weights, means, precisions_cholesky), pure=True, traverse=True)
        parts = [delayed(_chunk_sweep, pure=True)(x, w, self.center, self.structure.name,
                                                  params, moments, self.has_missing)
                 for _, x, w in self.chunks]
        return _tree_reduce(parts, _add_passes).compute()


# ------------------------------------------------------------------ fitting
class DaskData:
    """The data of a fit to a Dask array, answering what :meth:`GaussianMixtureEM._fit`
    asks of its data (as :class:`bayesgmm.em._ArrayData` does in memory)."""

    def __init__(self, model, X, sample_weight):
        X, names = _as_dask_table(X)
        n_samples, n_features = X.shape
        if n_samples < 2:
            raise ValueError(f"Found array with {n_samples} sample(s) (shape={X.shape}) "
                             "while a minimum of 2 is required.")
        model.n_features_in_ = n_features
        if names is not None:
            model.feature_names_in_ = names
        elif hasattr(model, "feature_names_in_"):
            del model.feature_names_in_
        self.X, self.weights = X, _row_weights(sample_weight, X)
        self.n_features, self.dtype = n_features, X.dtype
        self.missing = model.missing
        self.n_missing = 0
        self.fill = None  # with missing entries: each feature's observed mean

    def scan(self, structure):
        """The pass(es) over the data: centre, covariance and largest deviations, of the
        mean-imputed data where entries are missing (see ``_ArrayData.scan``)."""
        moments = _data_moments(self.X, self.weights, self.missing)
        self.n_points, self.total_weight = moments["n_points"], moments["weight"]
        self.n_missing, self.fill = moments["n_nan"], moments["fill"]
        self.observed_share = moments["observed_weight"] / self.total_weight
        self.center, self.covariance = moments["center"], moments["covariance"]
        spread = np.maximum(moments["high"] - self.center, self.center - moments["low"])
        return self.center, self.covariance, spread

    def resolve_prior(self, prior, n_components, structure):
        W = self.total_weight
        return prior.resolve_from_moments(self.center, self.covariance * (W / (W - 1)),
                                          self.n_points, n_components, structure)

    def standardise(self, scaling):
        self.X = scaling.standardise(self.X)
        if self.fill is not None:
            self.fill = scaling.standardise_means(self.fill)
        return scaling.standardise_means(self.center)

    def log_jacobian(self, scaling):
        return (scaling.log_jacobian if not self.n_missing
                else scaling.log_jacobian_of(self.observed_share))

    def engines(self, structure, center, labels):
        """The Dask engine, for EM and (with parameters given in full) its start."""
        engine = _DaskEngine(self.X, self.weights, center, structure, self.total_weight,
                             self.n_missing > 0)
        return engine, engine

    def start_engines(self, engine, start, random_state, screened):
        """In-memory engines on ``START_ROWS`` seeded random rows (all of them when there
        are fewer): the starts are computed on them (mean-imputed), and with
        ``screened`` ("auto") run EM on them first."""
        import dask

        n_samples = self.X.shape[0]
        if n_samples <= START_ROWS:
            rows = slice(None)
        else:
            rows = np.sort(_em.sample_without_replacement(n_samples, START_ROWS,
                                                          random_state=random_state))
        X_rows, w_rows = dask.compute(self.X[rows], self.weights[rows])
        X_rows = np.ascontiguousarray(X_rows)
        if not np.count_nonzero(w_rows):
            raise ValueError(f"The {len(w_rows)} rows drawn for the start all have zero "
                             "weight.")
        from ._missing import filled_with

        filled = X_rows if self.fill is None else filled_with(X_rows, self.fill)
        start = _em.with_settings_of(engine, _em._BlockEngine(
            filled, w_rows, engine.center, engine.structure))
        if not screened:
            return start, None
        screen = start if self.fill is None else _em.with_settings_of(
            engine, _em.engine_for(X_rows, w_rows, engine.center, engine.structure))
        return start, screen

    def continued(self, model, engine, params, random_state):
        """The best screened start, as it is (a larger subsample would cost a read of
        all the data)."""
        return params


# ------------------------------------------------------------------ prediction
def _check_chunk(X, missing, block_info):
    """Refuse infinities, rows with no observed entry, and with ``missing="raise"`` NaN
    in one chunk of prediction input, naming the chunk."""
    finite = np.isfinite(X)
    if not finite.all():
        location = block_info[0] if block_info else {}
        rows = location.get("array-location", [(0, len(X))])[0]
        where = (f"in chunk {location.get('chunk-location', ('?',))[0]} "
                 f"(rows {rows[0]} to {rows[1] - 1})")
        n_nan = int(np.isnan(X).sum())
        if n_nan < (~finite).sum():
            raise ValueError(f"X (a Dask array) has infinite values {where}.")
        if missing == "raise":
            raise ValueError(f"X (a Dask array) has {n_nan} NaN {where}; missing='raise' "
                             "refuses missing entries.")
        if np.isnan(X).all(axis=1).any():
            raise ValueError(f"X (a Dask array) has a row whose entries are all NaN {where}: "
                             "it has no density.")


def _chunk_predictions(X, params, covariance_type, missing, kind, block_info=None):
    """Of one chunk, by the in-memory engine (missing entries marginalised, as in
    memory, unless ``missing="raise"``): log p(x) (n,) for ``kind="log_prob"``, the
    responsibilities (n, K) for ``"resp"``, or ``[log p(x), log max_k p(k | x)]``
    (n, 2) for ``"icl"``."""
    _check_chunk(X, missing, block_info)
    weights, means, precisions_cholesky = params
    engine = _em.engine_for(X, np.ones(len(X)), weights @ means,
                            _em.get_covariance_structure(covariance_type))
    log_prob = np.empty(len(X), dtype=X.dtype)
    resp = np.empty((len(X), len(weights)), dtype=X.dtype)
    for rows, log_norm, block_resp in engine.predict_blocks(weights, means,
                                                            precisions_cholesky):
        log_prob[rows] = log_norm
        resp[rows] = block_resp
    if kind == "icl":
        with np.errstate(divide="ignore"):
            return np.column_stack([log_prob, np.log(resp.max(axis=1))]).astype(np.float64)
    return log_prob if kind == "log_prob" else resp


def _chunk_impute(X, params, covariance_type, with_covariance, block_info=None):
    """``MissingEngine.impute`` of one chunk: the imputed rows (n, D), followed with
    ``with_covariance`` by their conditional covariances flattened (n, D * D)."""
    from ._missing import MissingEngine

    _check_chunk(X, "marginalize", block_info)
    weights, means, _ = params
    engine = MissingEngine(X, np.ones(len(X)), weights @ means,
                           _em.get_covariance_structure(covariance_type))
    filled, covariance = engine.impute(*params, with_covariance=with_covariance)
    if not with_covariance:
        return filled.astype(X.dtype)
    return np.hstack([filled, covariance.reshape(len(X), -1)])


def _fitted_parameters(model, X):
    """The checked input as a Dask table, and the fitted (weights, means, precision
    factors) in float64."""
    X, names = _as_dask_table(X)
    _check_features(model, X, names)
    params = tuple(np.asarray(p, dtype=np.float64)
                   for p in (model.weights_, model.means_, model.precisions_cholesky_))
    return X, params


def _predictions(model, X, kind):
    X, params = _fitted_parameters(model, X)
    dtype = np.float64 if kind == "icl" else X.dtype
    columns = {"log_prob": None, "resp": model.n_components, "icl": 2}[kind]
    common = dict(params=params, covariance_type=model._structure.name,
                  missing=model.missing, kind=kind, dtype=dtype,
                  meta=np.empty((0,) * (1 if columns is None else 2), dtype=dtype))
    if columns is None:
        return X.map_blocks(_chunk_predictions, drop_axis=1, chunks=(X.chunks[0],), **common)
    return X.map_blocks(_chunk_predictions, chunks=(X.chunks[0], (columns,)), **common)


def impute(model, X, return_covariance=False):
    """Lazy :meth:`GaussianMixtureEM.impute` of a Dask ``X``: the imputed data chunked as
    ``X``'s rows, and with ``return_covariance`` the conditional covariances (n, D, D)."""
    X, params = _fitted_parameters(model, X)
    D = X.shape[1]
    common = dict(params=params, covariance_type=model._structure.name,
                  with_covariance=return_covariance)
    if not return_covariance:
        return X.map_blocks(_chunk_impute, dtype=X.dtype, meta=np.empty((0, 0), X.dtype),
                            **common)
    both = X.map_blocks(_chunk_impute, chunks=(X.chunks[0], (D + D * D,)),
                        dtype=np.float64, meta=np.empty((0, 0)), **common)
    return both[:, :D].astype(X.dtype), both[:, D:].reshape(X.shape[0], D, D)


def score_samples(model, X):
    """Lazy log-density of each row, a Dask array chunked as the rows of ``X``."""
    return _predictions(model, X, "log_prob")


def predict_proba(model, X):
    """Lazy responsibilities (n_samples, n_components), chunked as the rows of ``X``."""
    return _predictions(model, X, "resp")


def predict(model, X):
    """Lazy most probable component of each row."""
    return predict_proba(model, X).argmax(axis=1)


def _log_likelihood_and_weight(model, X, sample_weight):
    import dask

    log_prob = score_samples(model, X)
    if sample_weight is None:
        return float(log_prob.sum(dtype=np.float64).compute()), float(log_prob.shape[0])
    weights = _row_weights(sample_weight, log_prob[:, None])
    total, weight = dask.compute((weights * log_prob).sum(), weights.sum())
    return float(total), float(weight)


def score(model, X, sample_weight=None):
    """Mean (weighted) log-likelihood per row, computed."""
    if sample_weight is None:  # as in memory: the mean in X's dtype
        return float(score_samples(model, X).mean().compute())
    total, weight = _log_likelihood_and_weight(model, X, sample_weight)
    return total / weight


def bic(model, X, sample_weight=None):
    """``-2 log L + p log n``, computed."""
    total, weight = _log_likelihood_and_weight(model, X, sample_weight)
    return float(-2 * total + model.n_parameters() * np.log(weight))


def icl(model, X, sample_weight=None):
    """``bic`` plus twice the classification entropy (:meth:`GaussianMixtureEM.icl`),
    computed in one pass."""
    import dask

    values = _predictions(model, X, "icl")
    weights = _row_weights(sample_weight, values)
    log_lik, log_max, weight = dask.compute(weights @ values[:, 0], weights @ values[:, 1],
                                            weights.sum())
    bic = -2 * float(log_lik) + model.n_parameters() * np.log(float(weight))
    return float(bic - 2 * float(log_max))


def aic(model, X, sample_weight=None):
    """``-2 log L + 2 p``, computed."""
    total, _ = _log_likelihood_and_weight(model, X, sample_weight)
    return float(-2 * total + 2 * model.n_parameters())
