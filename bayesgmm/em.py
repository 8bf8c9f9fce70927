"""Maximum-likelihood Gaussian mixtures by expectation-maximisation."""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.cluster import AgglomerativeClustering, KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._gaussian import (
    COLLAPSE_TOLERANCE,
    CollapsedComponentError,
    CovarianceStructure,
    collapsed_components,
    get_covariance_structure,
)
from ._validation import as_numeric_table, check_enough_samples, check_sample_weight

__all__ = ["GaussianMixtureEM", "INIT_METHODS"]

#: Accepted values of ``init_params``.
INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data", "hierarchical")

#: Rows of the agglomerative subsample used by ``init_params="hierarchical"``.
HIERARCHICAL_SUBSAMPLE = 2000

# Working memory of one block of rows (features, log-densities, responsibilities).
# A few MiB keeps the temporaries in cache while every matrix product stays large.
_BLOCK_BYTES = 4 * 2**20


_FILE_KIND = "bayesgmm.GaussianMixtureEM"


@dataclass
class _PassResult:
    """What one sweep over the data returns: log-likelihood and M-step moments."""

    log_likelihood: float
    nk: np.ndarray | None = None  # (K,) sum of weighted responsibilities
    sum_x: np.ndarray | None = None  # (K, D) sum of r * x (centred)
    sum_q: np.ndarray | None = None  # (K, m) sum of r * q(x) (centred)
    labels: np.ndarray | None = None  # (n,) most probable component


class _BlockEngine:
    """E-step and M-step moments computed in row blocks by matrix products.

    Each block of rows is centred and expanded, feature-major, into one array
    ``F = [x; q(x); 1]`` of shape (D + m + 1, b). The log joint densities of all
    components are then one product ``C @ F`` with the coefficients ``C = [b_k,
    -a_k/2, c_k]``, and all M-step moments (``Σr·x``, ``Σr·q(x)``, ``Σr``) are one
    more, ``R @ Fᵀ``. The data is never copied whole and the block buffer is reused,
    so memory beyond X is a few MiB whatever n is; the same code would serve
    out-of-core blocks.
    """

    def __init__(self, X, sample_weight, center, structure: CovarianceStructure):
        self.X = X
        self.sample_weight = sample_weight
        self.unweighted = bool(np.all(sample_weight == 1))
        self.center = np.asarray(center, dtype=X.dtype)
        self.structure = structure
        n_features = X.shape[1]
        self.n_quad = structure.quad_features(np.zeros((1, n_features), X.dtype)).shape[1]
        self.n_rows_f = n_features + self.n_quad + 1
        per_row = X.dtype.itemsize * self.n_rows_f + 8 * 4 * 8
        self.block_rows = int(max(256, _BLOCK_BYTES // per_row))

    def blocks(self):
        """Yield (rows, F) with ``F = [x - center; q(x - center); 1]`` of shape (D + m + 1, b).

        ``F`` is a view of one reused buffer: use it before asking for the next block.
        """
        n, n_features = self.X.shape
        buffer = np.empty((self.n_rows_f, min(self.block_rows, n)), dtype=self.X.dtype)
        buffer[-1] = 1.0
        for start in range(0, n, self.block_rows):
            block = slice(start, min(start + self.block_rows, n))
            F = buffer[:, :block.stop - start]
            xt = F[:n_features]
            np.subtract(self.X[block].T, self.center[:, None], out=xt)
            self.structure.quad_features_by_feature(xt, F[n_features:-1])
            yield block, F

    def coefficients(self, weights, means, precisions_cholesky):
        """The rows ``[b_k, -a_k/2, c_k + log w_k]`` of the coefficient matrix (K, D + m + 1)."""
        coef = self.structure.coefficients(means - self.center, precisions_cholesky)
        with np.errstate(divide="ignore"):
            const = coef.const + np.log(weights)
        return np.hstack([coef.lin, -0.5 * coef.quad, const[:, None]]).astype(self.X.dtype)

    def sweep(self, weights, means, precisions_cholesky, *, moments=True, labels=False):
        """One pass over the data at the given parameters."""
        coef = self.coefficients(weights, means, precisions_cholesky)
        n_components, n_features = means.shape
        result = _PassResult(0.0)
        totals = np.zeros((n_components, self.n_rows_f))
        if labels:
            result.labels = np.empty(self.X.shape[0], dtype=np.intp)
        for block, F in self.blocks():
            joint = coef @ F
            if labels:
                result.labels[block] = np.argmax(joint, axis=0)
            log_norm, resp = _normalise_in_place(joint)
            if self.unweighted:
                result.log_likelihood += float(log_norm.sum())
            else:
                wb = self.sample_weight[block]
                result.log_likelihood += float(wb @ log_norm)
                if moments:
                    resp *= wb
            if moments:
                totals += resp @ F.T
        if moments:
            result.sum_x, result.sum_q, result.nk = _split_moments(totals, n_features)
        return result

    def moments_from_resp(self, resp):
        """Weighted moments (nk, sum_x, sum_q) for given responsibilities (n, K)."""
        totals = np.zeros((resp.shape[1], self.n_rows_f))
        for block, F in self.blocks():
            weighted = resp[block] * self.sample_weight[block, None]
            totals += weighted.T @ F.T
        sum_x, sum_q, nk = _split_moments(totals, self.X.shape[1])
        return nk, sum_x, sum_q

    def data_covariance(self):
        """Weighted covariance matrix of the data (D, D), accumulated block by block."""
        n_features = self.X.shape[1]
        scatter = np.zeros((n_features, n_features))
        for block, F in self.blocks():
            xt = F[:n_features]
            scatter += (xt * self.sample_weight[block]) @ xt.T
        return scatter / self.sample_weight.sum()

    def predict_blocks(self, weights, means, precisions_cholesky):
        """Yield (block, log p(x), responsibilities (b, K)) for prediction."""
        coef = self.coefficients(weights, means, precisions_cholesky)
        for block, F in self.blocks():
            log_norm, resp = _normalise_in_place(coef @ F)
            yield block, log_norm, resp.T


def _split_moments(totals, n_features):
    """(K, D + m + 1) moment rows -> sum_x (K, D), sum_q (K, m), nk (K,)."""
    return totals[:, :n_features], totals[:, n_features:-1], totals[:, -1].copy()


def _normalise_in_place(joint):
    """Turn log joint densities (K, b) into responsibilities; return log p(x) too.

    The max and sum run over the short component axis of a component-major
    array, i.e. as K vectorised passes over long rows.
    """
    top = joint.max(axis=0)
    top[~np.isfinite(top)] = 0.0
    joint -= top
    np.exp(joint, out=joint)
    total = joint.sum(axis=0)
    with np.errstate(divide="ignore"):
        log_norm = np.log(total) + top
    joint /= total
    return log_norm, joint


class GaussianMixtureEM(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by maximum likelihood with the EM algorithm.

    A scikit-learn estimator with the same parameters, attributes and results as
    :class:`sklearn.mixture.GaussianMixture` (from the same initial parameters it
    reaches the same estimates), plus sample weights, mclust's model names,
    hierarchical initialisation, the log-likelihood trace, ICL and labelled
    (xarray) output. The E- and M-steps run in row blocks through sufficient
    statistics computed with large matrix products, which makes each iteration
    many times faster than scikit-learn's and keeps memory flat.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : str, default="full"
        ``"full"`` (mclust ``"VVV"``): each component its own covariance matrix;
        ``"tied"`` (``"EEE"``): one shared covariance matrix; ``"diag"``
        (``"VVI"``): per-component diagonal covariances; ``"spherical"``
        (``"VII"``): one variance per component.
    tol : float, default=1e-3
        Convergence threshold on the change of the mean per-sample log-likelihood.
    reg_covar : float, default=1e-6
        Non-negative value added to the diagonal of each covariance, which keeps
        them positive definite.
    max_iter : int, default=100
        EM iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the one reaching the highest log-likelihood is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data", "hierarchical"}
        How responsibilities are initialised: k-means labels; k-means++ seeds;
        uniform random responsibilities; random data points as seeds; Ward
        agglomerative clustering of a subsample of at most 2,000 points (as mclust
        starts its EM).
    weights_init : array-like of shape (n_components,), default=None
        User-given initial weights (they must sum to 1).
    means_init : array-like of shape (n_components, n_features), default=None
        User-given initial means.
    precisions_init : array-like, default=None
        User-given initial precisions (inverse covariances), shaped like
        ``covariances_`` for the covariance type.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and :meth:`sample`.
    warm_start : bool, default=False
        If True, a new ``fit`` starts from the previous solution (and ``n_init`` is
        ignored).
    verbose : int, default=0
        1 prints each initialisation, 2 also every iteration.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        ``(K, D, D)`` for full, ``(D, D)`` for tied, ``(K, D)`` for diag, ``(K,)``
        for spherical.
    precisions_cholesky_ : ndarray
        Factors ``L`` of the precision matrices (``P = L @ L.T``), same layout.
    converged_ : bool
        Whether the best initialisation converged.
    n_iter_ : int
        EM iterations of the best initialisation.
    lower_bound_ : float
        Mean (weighted) per-sample log-likelihood of the fitted parameters.
    log_likelihood_ : float
        Total (weighted) log-likelihood of the fitted parameters.
    log_likelihood_trace_ : ndarray of shape (n_iter_ + 1,)
        Total log-likelihood at the initial parameters and after every iteration
        of the best initialisation (EM never decreases it).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on data with column names.

    Notes
    -----
    ``bic``, ``aic`` and ``icl`` follow scikit-learn's sign: lower is better.
    mclust reports ``2 * loglik - p * log(n)``, higher is better: it equals
    ``-model.bic(X)``; likewise its ICL is ``-model.icl(X)``.

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, datasets
    >>> X = datasets.load_faithful()
    >>> gm = GaussianMixtureEM(3, covariance_type="EEE", n_init=10, tol=1e-6,
    ...                        random_state=0).fit(X)
    >>> round(gm.log_likelihood_, 3)
    -1126.317

    The default ``tol=1e-3`` stops earlier, at -1126.991 here: lower ``tol`` when
    the log-likelihood itself is reported.
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    @property
    def _structure(self) -> CovarianceStructure:
        return get_covariance_structure(self.covariance_type)

    def _check_parameters(self):
        _check_integer("n_components", self.n_components, minimum=1)
        _check_integer("max_iter", self.max_iter, minimum=0)
        _check_integer("n_init", self.n_init, minimum=1)
        _check_number("tol", self.tol)
        _check_number("reg_covar", self.reg_covar)
        self._structure  # noqa: B018 - raises a clear error for unknown names
        if self.init_params not in INIT_METHODS:
            raise ValueError(
                f"init_params must be one of {list(INIT_METHODS)}, got {self.init_params!r}."
            )

    def _check_initial_parameters(self, n_features):
        """Validate user-given initial weights, means and precisions."""
        K = self.n_components
        if self.weights_init is not None:
            weights = _as_float_array("weights_init", self.weights_init, (K,))
            if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, atol=1e-6):
                raise ValueError(
                    "weights_init must be non-negative and sum to 1, got sum "
                    f"{weights.sum():.6g} and minimum {weights.min():.6g}."
                )
        if self.means_init is not None:
            _as_float_array("means_init", self.means_init, (K, n_features))
        if self.precisions_init is not None:
            shape = self._structure.covariance_shape(K, n_features)
            precisions = _as_float_array("precisions_init", self.precisions_init, shape)
            full = self._structure.to_full(precisions, K, n_features)
            if not np.allclose(full, np.swapaxes(full, -1, -2)):
                raise ValueError("precisions_init must be symmetric.")
            if np.any(np.linalg.eigvalsh(full)[..., 0] <= 0):
                raise ValueError("precisions_init must be positive definite.")

    def _validate_X(self, X, *, reset):
        X = as_numeric_table(X)
        return validate_data(
            self, X, reset=reset, dtype=[np.float64, np.float32],
            ensure_min_samples=2 if reset else 1,
        )

    # -------------------------------------------------------------- fitting
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the mixture's parameters with EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numpy array, pandas DataFrame or xarray DataArray (dims sample x feature).
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; an integer weight counts a row that many times.

        Returns
        -------
        self
        """
        self.fit_predict(X, y, sample_weight=sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of every sample.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Identical to ``fit(X).predict(X)``.
        """
        self._check_parameters()
        X = self._validate_X(X, reset=True)
        weights = check_sample_weight(sample_weight, X.shape[0], np.float64)
        check_enough_samples(int(np.count_nonzero(weights)), self.n_components)
        self._check_initial_parameters(X.shape[1])

        center = (weights @ X) / weights.sum()
        engine = _BlockEngine(X, weights, center, self._structure)
        engine.data_variance = _variance_if_nonsingular(engine.data_covariance())
        random_state = check_random_state(self.random_state)
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1

        best, failure = None, None
        for init in range(n_init):
            if self.verbose:
                print(f"Initialization {init}")
            try:
                if do_init:
                    params = self._initial_parameters(engine, random_state)
                else:
                    params = (self.weights_, self.means_, self.covariances_,
                              self.precisions_cholesky_)
                run = self._run_em(engine, params)
            except CollapsedComponentError as error:
                # A restart that collapses is dropped; the others may be sound.
                if self.verbose:
                    print(f"  {error}")
                failure = error
                continue
            if best is None or run["log_likelihood"] > best["log_likelihood"]:
                best = run
        if best is None:
            if n_init > 1:
                raise CollapsedComponentError(
                    failure.components, self.reg_covar,
                    prefix=f"All {n_init} initializations failed; in the last one ",
                ) from failure
            raise failure

        (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_) = best[
            "params"
        ]
        self.converged_ = best["converged"]
        self.n_iter_ = best["n_iter"]
        self.log_likelihood_ = best["log_likelihood"]
        self.lower_bound_ = best["log_likelihood"] / weights.sum()
        self.log_likelihood_trace_ = np.asarray(best["trace"])
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge in "
                f"max_iter={self.max_iter} iterations. Try different init parameters, "
                "increase max_iter or tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return best["labels"]

    def _run_em(self, engine, params):
        total_weight = engine.sample_weight.sum()
        trace = []
        previous = -np.inf
        converged = False
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):
            sweep = engine.sweep(*params[:2], params[3], moments=True)
            _check_finite_log_likelihood(sweep.log_likelihood)
            trace.append(sweep.log_likelihood)
            params = self._m_step(engine, sweep.nk, sweep.sum_x, sweep.sum_q)
            mean_ll = sweep.log_likelihood / total_weight
            change = mean_ll - previous
            previous = mean_ll
            if self.verbose > 1:
                print(f"  Iteration {n_iter}\t log-likelihood {sweep.log_likelihood:.6f}")
            if abs(change) < self.tol:
                converged = True
                break
        final = engine.sweep(*params[:2], params[3], moments=False, labels=True)
        _check_finite_log_likelihood(final.log_likelihood)
        collapsed = (
            collapsed_components(engine.structure, params[2], engine.data_variance)
            if engine.data_variance is not None else []
        )
        if collapsed:
            raise CollapsedComponentError(collapsed, self.reg_covar)
        trace.append(final.log_likelihood)
        if self.verbose:
            print(f"Initialization converged: {converged}\t log-likelihood {final.log_likelihood:.6f}")
        return {
            "params": params,
            "converged": converged,
            "n_iter": n_iter,
            "log_likelihood": final.log_likelihood,
            "trace": trace,
            "labels": final.labels,
        }

    def _m_step(self, engine, nk, sum_x, sum_q):
        """Parameters maximising the expected complete-data log-likelihood."""
        nk = nk + 10 * np.finfo(np.float64).eps
        means_centred = sum_x / nk[:, None]
        covariances = engine.structure.covariances(nk, means_centred, sum_q, self.reg_covar)
        precisions_cholesky = engine.structure.precisions_cholesky(covariances, self.reg_covar)
        return (
            nk / nk.sum(),
            means_centred + engine.center,
            covariances,
            precisions_cholesky,
        )

    def _initial_parameters(self, engine, random_state):
        """Initial parameters: from responsibilities, overridden by the user's.

        As in scikit-learn, the responsibilities are only computed (and the random
        state only consumed) when some initial parameter is not given.
        """
        structure = engine.structure
        user_given = (self.weights_init, self.means_init, self.precisions_init)
        weights = means = covariances = precisions_cholesky = None
        if any(p is None for p in user_given):
            resp, rows = self._initial_responsibilities(engine, random_state)
            if rows is not None:
                engine = _BlockEngine(engine.X[rows], engine.sample_weight[rows],
                                      engine.center, structure)
            weights, means, covariances, precisions_cholesky = self._m_step(
                engine, *engine.moments_from_resp(resp)
            )
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=float)
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=float)
        if self.precisions_init is not None:
            precisions = np.asarray(self.precisions_init, dtype=float)
            covariances = structure.covariances_from_precisions(precisions)
            precisions_cholesky = structure.precisions_cholesky_from_precisions(precisions)
        return weights, means, covariances, precisions_cholesky

    def _initial_responsibilities(self, engine, random_state):
        """Responsibilities (n, K) to start from, and the rows they refer to."""
        X, w, K = engine.X, engine.sample_weight, self.n_components
        n_samples = X.shape[0]
        if self.init_params == "kmeans":
            labels = (
                KMeans(n_clusters=K, n_init=1, random_state=random_state)
                .fit(X, sample_weight=w)
                .labels_
            )
            return _one_hot(labels, K), None
        if self.init_params == "k-means++":
            _, indices = kmeans_plusplus(X, K, random_state=random_state, sample_weight=w)
            return _one_hot_at(indices, n_samples, K), None
        if self.init_params == "random":
            resp = random_state.uniform(size=(n_samples, K))
            return resp / resp.sum(axis=1, keepdims=True), None
        if self.init_params == "random_from_data":
            candidates = np.flatnonzero(w > 0)
            indices = random_state.choice(candidates, size=K, replace=False)
            return _one_hot_at(indices, n_samples, K), None
        # hierarchical: Ward clustering of a subsample, as mclust starts its EM
        rows = np.flatnonzero(w > 0)
        if rows.size > HIERARCHICAL_SUBSAMPLE:
            rows = np.sort(random_state.choice(rows, size=HIERARCHICAL_SUBSAMPLE, replace=False))
        labels = AgglomerativeClustering(n_clusters=K, linkage="ward").fit(X[rows]).labels_
        return _one_hot(labels, K), rows

    # ------------------------------------------------------------ prediction
    def _predict_blocks(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        center = self.weights_ @ self.means_
        engine = _BlockEngine(X, np.ones(X.shape[0]), center, self._structure)
        return X.shape[0], engine.predict_blocks(
            self.weights_, self.means_, self.precisions_cholesky_
        )

    def _log_prob_and_resp(self, X):
        n_samples, blocks = self._predict_blocks(X)
        log_prob = np.empty(n_samples)
        resp = np.empty((n_samples, self.n_components))
        for block, log_norm, block_resp in blocks:
            log_prob[block] = log_norm
            resp[block] = block_resp
        return log_prob, resp

    def score_samples(self, X):
        """Log-density of the mixture at each sample, shape (n_samples,)."""
        n_samples, blocks = self._predict_blocks(X)
        log_prob = np.empty(n_samples)
        for block, log_norm, _ in blocks:
            log_prob[block] = log_norm
        return log_prob

    def score(self, X, y=None, sample_weight=None):
        """Mean (weighted) log-likelihood per sample."""
        log_prob = self.score_samples(X)
        return float(np.average(log_prob, weights=sample_weight))

    def predict_proba(self, X):
        """Posterior probability of each component for each sample, (n_samples, K)."""
        return self._log_prob_and_resp(X)[1]

    def predict(self, X):
        """Most probable component of each sample, shape (n_samples,)."""
        return np.argmax(self.predict_proba(X), axis=1)

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture.

        Uses ``random_state`` exactly as scikit-learn's ``GaussianMixture.sample``,
        so both give the same draws for the same parameters and seed.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            The component each sample was drawn from.
        """
        check_is_fitted(self)
        _check_integer("n_samples", n_samples, minimum=1)
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        name = self._structure.name
        if name == "full":
            X = np.vstack([
                rng.multivariate_normal(mean, cov, int(c))
                for mean, cov, c in zip(self.means_, self.covariances_, counts)
            ])
        elif name == "tied":
            X = np.vstack([
                rng.multivariate_normal(mean, self.covariances_, int(c))
                for mean, c in zip(self.means_, counts)
            ])
        else:
            n_features = self.means_.shape[1]
            X = np.vstack([
                mean + rng.standard_normal(size=(c, n_features)) * np.sqrt(cov)
                for mean, cov, c in zip(self.means_, self.covariances_, counts)
            ])
        y = np.concatenate([np.full(c, k, dtype=int) for k, c in enumerate(counts)])
        return X, y

    # -------------------------------------------------------------- criteria
    def n_parameters(self):
        """Number of free parameters (weights, means and covariances)."""
        check_is_fitted(self)
        return self._structure.n_parameters(self.n_components, self.means_.shape[1])

    def _log_likelihood_and_n(self, X, sample_weight):
        log_prob, resp = self._log_prob_and_resp(X)
        weights = check_sample_weight(sample_weight, len(log_prob), np.float64)
        return log_prob, resp, weights

    def bic(self, X, sample_weight=None):
        """Bayesian information criterion, ``-2 log L + p log n`` (lower is better).

        mclust's BIC (higher is better) is ``-bic``.
        """
        log_prob, _, w = self._log_likelihood_and_n(X, sample_weight)
        return float(-2 * (w @ log_prob) + self.n_parameters() * math.log(w.sum()))

    def aic(self, X, sample_weight=None):
        """Akaike information criterion, ``-2 log L + 2 p`` (lower is better)."""
        log_prob, _, w = self._log_likelihood_and_n(X, sample_weight)
        return float(-2 * (w @ log_prob) + 2 * self.n_parameters())

    def icl(self, X, sample_weight=None):
        """Integrated completed likelihood: BIC plus twice the classification entropy.

        ``ICL = BIC - 2 sum_i log z_i,map(i)`` where ``z`` are the membership
        probabilities and ``map(i)`` the most probable component (Biernacki,
        Celeux and Govaert 2000). Lower is better; mclust's ICL is ``-icl``.
        """
        log_prob, resp, w = self._log_likelihood_and_n(X, sample_weight)
        bic = -2 * (w @ log_prob) + self.n_parameters() * math.log(w.sum())
        with np.errstate(divide="ignore"):
            entropy = -(w @ np.log(resp.max(axis=1)))
        return float(bic + 2 * entropy)

    # ---------------------------------------------------------------- output
    def _feature_names(self):
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            return [f"x{j}" for j in range(self.n_features_in_)]
        return [str(n) for n in names]

    def to_xarray(self):
        """Fitted parameters as an :class:`xarray.Dataset` with named dimensions.

        Variables: ``weights`` (component), ``means`` (component, feature),
        ``covariances`` (component, feature, feature2) as full matrices whatever
        the covariance type, and ``log_likelihood_trace`` (iteration).
        """
        import xarray as xr

        check_is_fitted(self)
        K, D = self.means_.shape
        features = self._feature_names()
        coords = {"component": np.arange(K), "feature": features, "feature2": features}
        covariances = self._structure.to_full(self.covariances_, K, D)
        return xr.Dataset(
            {
                "weights": ("component", self.weights_),
                "means": (("component", "feature"), self.means_),
                "covariances": (("component", "feature", "feature2"), covariances),
                "log_likelihood_trace": ("iteration", self.log_likelihood_trace_),
            },
            coords=coords,
            attrs={
                "model": "GaussianMixtureEM",
                "covariance_type": self._structure.name,
                "mclust_model": self._structure.mclust_name,
                "n_components": K,
                "log_likelihood": self.log_likelihood_,
                "n_parameters": self.n_parameters(),
                "n_iter": self.n_iter_,
                "converged": int(self.converged_),
                "reg_covar": self.reg_covar,
            },
        )

    def save(self, path):
        """Write the fitted parameters and settings to netCDF (``to_xarray()``), atomically.

        A failed save leaves any earlier file at ``path`` intact. Read it back with
        :meth:`GaussianMixtureEM.load`.
        """
        import json

        from ._io import write_atomically

        ds = self.to_xarray()
        params = {k: v for k, v in self.get_params().items()
                  if v is None or isinstance(v, (str, int, float, bool))}
        ds.attrs.update({"bayesgmm_kind": _FILE_KIND, "params": json.dumps(params),
                         "lower_bound": self.lower_bound_,
                         "named_features": int(hasattr(self, "feature_names_in_"))})
        return write_atomically(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`; refuses files of other models."""
        import json

        from ._io import read_kind

        tree, kind = read_kind(path)
        if kind != _FILE_KIND:
            raise ValueError(
                f"{path} was not written by GaussianMixtureEM.save (its bayesgmm_kind "
                f"attribute is {kind!r}); it cannot be loaded as one.")
        ds = tree.to_dataset()
        model = cls(**json.loads(ds.attrs["params"]))
        structure = model._structure
        model.weights_ = ds["weights"].values
        model.means_ = ds["means"].values
        model.covariances_ = structure.from_full(ds["covariances"].values)
        model.precisions_cholesky_ = structure.precisions_cholesky(model.covariances_)
        model.log_likelihood_trace_ = ds["log_likelihood_trace"].values
        model.log_likelihood_ = float(ds.attrs["log_likelihood"])
        model.lower_bound_ = float(ds.attrs["lower_bound"])
        model.n_iter_, model.converged_ = int(ds.attrs["n_iter"]), bool(ds.attrs["converged"])
        model.n_features_in_ = model.means_.shape[1]
        if ds.attrs["named_features"]:
            model.feature_names_in_ = np.asarray(ds["feature"].values, dtype=object)
        return model

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


# ------------------------------------------------------------------- helpers
def _one_hot(labels, n_components):
    resp = np.zeros((len(labels), n_components))
    resp[np.arange(len(labels)), labels] = 1.0
    return resp


def _one_hot_at(indices, n_samples, n_components):
    resp = np.zeros((n_samples, n_components))
    resp[indices, np.arange(n_components)] = 1.0
    return resp


def _check_integer(name, value, *, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _check_number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}.")


def _as_float_array(name, value, shape):
    array = np.asarray(value, dtype=float)
    if array.shape != tuple(shape):
        raise ValueError(
            f"{name} must have shape {tuple(shape)} (from n_components and n_features), "
            f"got shape {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf.")
    return array


def _variance_if_nonsingular(covariance):
    """Per-feature variances, or None when the data's own covariance is singular.

    Components are checked for collapse relative to the data's spread; when the
    data itself spans fewer dimensions than it has features (more features than
    points, or collinear features) every component is singular and the check is
    meaningless, so it is skipped.
    """
    variance = np.diag(covariance).copy()
    keep = variance > 0
    scale = 1.0 / np.sqrt(variance[keep])
    standardised = covariance[np.ix_(keep, keep)] * scale[:, None] * scale[None, :]
    if keep.any() and np.linalg.eigvalsh(standardised)[0] < COLLAPSE_TOLERANCE:
        return None
    return variance


def _check_finite_log_likelihood(value):
    if not np.isfinite(value):
        raise ValueError(
            "The log-likelihood became non-finite during EM, usually because a component "
            "collapsed onto a few points. Try increasing reg_covar, using fewer "
            "components, or scaling the input data."
        )
