"""EM on Dask arrays: data larger than memory, or spread over a cluster.

:class:`~bayesgmm.GaussianMixtureEM` hands a Dask array (or an xarray DataArray backed
by one, e.g. opened from zarr or netCDF) to this module. Every EM iteration is one
task per chunk of rows, each running the in-memory block engine
(:class:`bayesgmm.em._BlockEngine`) on its chunk and returning only the chunk's
sufficient statistics (log-likelihood, ``Σr``, ``Σr·x``, ``Σr·q(x)`` per component),
then a tree reduction of those sums; the M-step runs in the client on the totals, so
no chunk's responsibilities are kept and the maths is the in-memory code's. The
scheduler is whichever Dask would use (a ``dask.distributed.Client`` if one is active).

The start (hierarchical, k-means, ...) runs in memory on a seeded subsample of
``START_ROWS`` rows; the centre and covariance of the data (the scale checks,
``standardize``, the collapse check) come from one pass over the data. Predictions of
a Dask input are lazy Dask arrays chunked as the input's rows.

Not supported yet: missing entries (NaN) when fitting (refused with the chunk that has
them; predictions marginalise them as in memory), ``prior`` (MAP-EM), and chunks split
along features (refused: rechunk with ``X.rechunk({1: -1})``).
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
    """One pass's statistics of a chunk: total weight, weighted mean and scatter about
    it, each feature's range, rows of positive weight, and the first problem found."""
    bad = None
    finite = np.isfinite(X)
    if not finite.all():
        n_nan = int(np.isnan(X).sum())
        bad = (index, start, start + len(X), n_nan, int((~finite).sum()) - n_nan, "X")
    elif not (np.isfinite(w).all() and (w >= 0).all()):
        bad = (index, start, start + len(X), 0, 0, "sample_weight")
    if bad is not None:
        return {"bad": bad}
    total = float(w.sum())
    mean = (w @ X) / total if total > 0 else np.zeros(X.shape[1])
    deviations = X - mean
    return {
        "bad": None, "weight": total, "mean": mean,
        "scatter": (deviations.T * w) @ deviations,
        "low": X.min(axis=0).astype(np.float64), "high": X.max(axis=0).astype(np.float64),
        "n_points": int(np.count_nonzero(w)),
    }


def _combine_data_moments(parts):
    """Merge chunk statistics (Chan, Golub and LeVeque's pairwise update of the mean
    and scatter, weighted); the first problem found wins."""
    bad = [p["bad"] for p in parts if p["bad"] is not None]
    if bad:
        return {"bad": min(bad)}
    result = dict(parts[0])
    for part in parts[1:]:
        total = result["weight"] + part["weight"]
        if part["weight"] > 0:
            delta = part["mean"] - result["mean"]
            share = part["weight"] / total
            result["scatter"] = (result["scatter"] + part["scatter"]
                                 + np.outer(delta, delta) * result["weight"] * share)
            result["mean"] = result["mean"] + delta * share
        result["weight"] = total
        result["low"] = np.minimum(result["low"], part["low"])
        result["high"] = np.maximum(result["high"], part["high"])
        result["n_points"] += part["n_points"]
    return result


def _data_moments(X, sample_weight):
    """Centre (D,), covariance (D, D), spread (D,) and rows of positive weight, in one
    pass; a chunk with NaN, inf or a bad weight is refused by its index and rows."""
    from dask import delayed

    parts = [delayed(_chunk_data_moments, pure=True)(i, start, x, w)
             for i, (start, x, w) in enumerate(_chunks(X, sample_weight))]
    moments = _tree_reduce(parts, _combine_data_moments).compute()
    if moments["bad"] is not None:
        index, start, stop, n_nan, n_inf, what = moments["bad"]
        where = f"in chunk {index} (rows {start} to {stop - 1})"
        if what == "sample_weight":
            raise ValueError(f"sample_weight has a negative or non-finite weight {where}: "
                             "weights must be finite and non-negative.")
        if n_nan:
            raise ValueError(
                f"X (a Dask array) has {n_nan} NaN {where}. EM on Dask input does not "
                "treat NaN as missing entries yet (in memory it does, with "
                "missing='marginalize'): drop the incomplete rows, e.g. "
                "X[~da.isnan(X).any(axis=1)] followed by compute_chunk_sizes(), or fit "
                "the data in memory.")
        raise ValueError(f"X (a Dask array) has {n_inf} infinite values {where}: EM needs "
                         "finite data.")
    if not moments["weight"] > 0:
        raise ValueError("sample_weight must not be all zero.")
    center = moments["mean"]
    covariance = moments["scatter"] / moments["weight"]
    spread = np.maximum(moments["high"] - center, center - moments["low"])
    return center, covariance, spread, moments["n_points"], moments["weight"]


def _chunk_sweep(X, w, center, covariance_type, params, moments):
    """The block engine's pass over one chunk (a :class:`bayesgmm.em._PassResult`)."""
    structure = _em.get_covariance_structure(covariance_type)
    engine = _em._BlockEngine(X, w, center, structure)
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

    def __init__(self, X, sample_weight, center, structure, total_weight):
        self.X = X
        self.chunks = _chunks(X, sample_weight)
        self.center = np.asarray(center, dtype=X.dtype)
        self.structure = structure
        # _run_em reads only the total weight, as sample_weight.sum()
        self.sample_weight = np.array([total_weight])
        self.data_variance = self.prior = self.fixed = None

    def log_prior(self, params):
        """The prior's log density at ``params`` (0: MAP-EM is refused for Dask input)."""
        return _em._BlockEngine.log_prior(self, params)

    def sweep(self, weights, means, precisions_cholesky, *, moments=True, labels=False):
        """One pass over the data at the given parameters (labels are not collected)."""
        from dask import delayed

        params = delayed((weights, means, precisions_cholesky), pure=True, traverse=True)
        parts = [delayed(_chunk_sweep, pure=True)(x, w, self.center, self.structure.name,
                                                  params, moments)
                 for _, x, w in self.chunks]
        return _tree_reduce(parts, _add_passes).compute()


# ------------------------------------------------------------------ fitting
def fit(model, X, sample_weight=None):
    """``model.fit(X)`` for a Dask ``X``: EM as in memory, from a start on a subsample."""
    model._check_parameters()
    if model.prior is not None:
        raise ValueError("prior (MAP-EM) is not supported with Dask input yet: fit the "
                         "data in memory, or drop the prior.")
    X, names = _as_dask_table(X)
    n_samples, n_features = X.shape
    if n_samples < 2:
        raise ValueError(f"Found array with {n_samples} sample(s) (shape={X.shape}) while "
                         "a minimum of 2 is required.")
    model.n_features_in_ = n_features
    if names is not None:
        model.feature_names_in_ = names
    elif hasattr(model, "feature_names_in_"):
        del model.feature_names_in_
    weights = _row_weights(sample_weight, X)
    model._check_initial_parameters(n_features)
    structure = model._structure
    fixed = model._fixed_parameters(n_features)
    center, covariance, spread, n_points, total_weight = _data_moments(X, weights)
    _em.check_enough_samples(n_points, model.n_components)
    structure.check_estimable(model.n_components, n_features, n_points)
    _em._check_representable(spread, X.dtype)
    scaling = _em._Scaling.of(structure, center, covariance) if model.standardize else None
    if scaling is not None:
        X_fit = scaling.standardise(X)
        center = scaling.standardise_means(center)
        covariance = scaling.standardise_covariance(covariance)
    else:
        X_fit = X
    engine = _DaskEngine(X_fit, weights, center, structure, total_weight)
    engine.data_variance = _em._variance_if_nonsingular(covariance)
    engine.fixed = None if fixed is None else fixed.to_standardised(scaling)
    model._warn_if_regularisation_dominates(np.diag(covariance))
    random_state = _em.check_random_state(model.random_state)
    do_init = not (model.warm_start and hasattr(model, "converged_"))
    n_init = model.n_init if do_init else 1
    log_jacobian = 0.0 if scaling is None else scaling.log_jacobian
    previous = (model.lower_bounds_[-1] + log_jacobian
                if not do_init and len(getattr(model, "lower_bounds_", ())) else -np.inf)
    user_init = model._user_initial_parameters(scaling)

    start = screen = None
    if do_init and not all(p is not None for p in user_init):
        start = _start_engine(X_fit, weights, engine, random_state)
        # "auto" screens its starts by EM on the subsample, as in memory on large data
        screen = start if model.init_params == "auto" else None
    best = model._best_of_starts(engine, start or engine, screen, scaling, random_state,
                                 user_init, previous, n_init, do_init)
    if screen is not None:
        if model.verbose:
            print("Best start on the subsample, continued on all the data")
        best = model._run_em(engine, best["params"])

    params = best["params"]
    if scaling is not None:
        params = scaling.to_original(params)
    model._set_parameters(params, X.dtype)
    model.prior_ = None
    model.log_prior_ = 0.0
    model.n_missing_ = 0
    model._set_run(best, log_jacobian * total_weight, total_weight, stacklevel=4)
    return model


def _start_engine(X, weights, engine, random_state):
    """An in-memory block engine on ``START_ROWS`` seeded random rows of ``X`` (all of
    them when there are fewer), with the Dask engine's centre and checks."""
    import dask

    n_samples = X.shape[0]
    if n_samples <= START_ROWS:
        rows = slice(None)
    else:
        rows = np.sort(_em.sample_without_replacement(n_samples, START_ROWS,
                                                      random_state=random_state))
    X_rows, w_rows = dask.compute(X[rows], weights[rows])
    start = _em._BlockEngine(np.ascontiguousarray(X_rows), w_rows, engine.center,
                             engine.structure)
    if not np.count_nonzero(w_rows):
        raise ValueError(f"The {len(w_rows)} rows drawn for the start all have zero weight.")
    start.data_variance, start.fixed = engine.data_variance, engine.fixed
    return start


# ------------------------------------------------------------------ prediction
def _chunk_predictions(X, params, covariance_type, missing, kind, block_info=None):
    """log p(x) (n,) or responsibilities (n, K) of one chunk, by the in-memory engine
    (missing entries marginalised, as in memory, unless ``missing="raise"``)."""
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
    weights, means, precisions_cholesky = params
    model = _em.GaussianMixtureEM(covariance_type=covariance_type)
    engine = model._engine(X, np.ones(len(X)), weights @ means)
    log_prob = np.empty(len(X), dtype=X.dtype)
    resp = np.empty((len(X), len(weights)), dtype=X.dtype)
    for rows, log_norm, block_resp in engine.predict_blocks(weights, means,
                                                            precisions_cholesky):
        log_prob[rows] = log_norm
        resp[rows] = block_resp
    return log_prob if kind == "log_prob" else resp


def _predictions(model, X, kind):
    X, names = _as_dask_table(X)
    _check_features(model, X, names)
    params = tuple(np.asarray(p, dtype=np.float64)
                   for p in (model.weights_, model.means_, model.precisions_cholesky_))
    common = dict(params=params, covariance_type=model._structure.name,
                  missing=model.missing, kind=kind, dtype=X.dtype, meta=np.empty((0,) * (
                      1 if kind == "log_prob" else 2), dtype=X.dtype))
    if kind == "log_prob":
        return X.map_blocks(_chunk_predictions, drop_axis=1, chunks=(X.chunks[0],), **common)
    return X.map_blocks(_chunk_predictions, chunks=(X.chunks[0], (model.n_components,)),
                        **common)


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


def aic(model, X, sample_weight=None):
    """``-2 log L + 2 p``, computed."""
    total, _ = _log_likelihood_and_weight(model, X, sample_weight)
    return float(-2 * total + 2 * model.n_parameters())
