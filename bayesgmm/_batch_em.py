"""EM for a batch of independent fits of one model at once: the bootstrap's replicates.

Every fit of a batch has the estimator's options and one start, and either the same
rows under its own sample weights (the non-parametric, weighted and jackknife
bootstraps reweight the data) or a data set of its own (the parametric bootstrap). One
EM iteration of all of them is a few array operations: the log joint densities of B
fits are one product ``(B, K, P) @ (P, n)`` of their coefficients with the shared
expanded rows ``[x; q(x); 1]`` (the expansion of :class:`bayesgmm.em._BlockEngine`),
their moments one more, and the M-step one call of the covariance structure on a
leading batch axis (``CovarianceStructure.batched_m_step``; the families with an
iterative M-step take one call per fit). On small data this replaces B Python-level
EM iterations of ~0.4 ms each by one of a few milliseconds.

Each fit follows :meth:`bayesgmm.GaussianMixtureEM._run_em` from a user start step for
step: the same stopping rule (change of the mean log-likelihood below ``tol``), M-step,
final pass, collapse check, and the errors ``fit`` raises before and during EM, so a
fit's result equals ``clone(em).set_params(weights_init=..., means_init=...,
precisions_init=...).fit(X, sample_weight=w)`` to rounding (``tests/test_bootstrap.py``
checks it for every family and kind). What differs is only where the densities are
expanded: about one centre per batch (the mean of the rows, or of each data set), where
a single fit takes its weighted mean, so :func:`supports` requires every component to be
near that centre (:func:`bayesgmm.em._far_threshold`) at the start.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._gaussian import CollapsedComponentError, collapsed_components
from ._validation import check_enough_samples, describe_error
from .em import (
    _BlockEngine,
    _check_finite_log_likelihood,
    _variance_if_nonsingular,
    regularisation_dominates,
)

__all__ = ["supports", "fit_batch", "batch_size"]

#: The largest expanded data (rows x (features + components)) a batch keeps in memory,
#: about 128 MiB in float64; larger data are fitted one replicate at a time by
#: GaussianMixtureEM's block engine, which never copies the data.
MAX_ELEMENTS = 2**24
#: Elements per batch of fits (rows x fits x (components + expanded features)): the
#: working arrays of a batch stay near 32 MiB each.
BATCH_ELEMENTS = 2**22


def _n_expanded(structure, n_features):
    """P: the length of one expanded row ``[x; q(x); 1]``."""
    return n_features + structure.quad_features(np.zeros((1, n_features))).shape[1] + 1


def supports(template, start, X):
    """Whether :func:`fit_batch` reproduces ``template``'s fits from ``start`` on rows like
    ``X``: no prior (MAP-EM's M-step needs the prior mean in each component's own
    coordinates, which the batch does not keep), no ``standardize``, data small enough
    to expand whole, and every component of the start near the data's centre."""
    if template.prior is not None or template.standardize:
        return False
    structure = template._structure
    n, D = X.shape
    K = len(start[0])
    if n * (_n_expanded(structure, D) + K) > MAX_ELEMENTS:
        return False
    weights, means, precisions = start
    engine = _BlockEngine(X, np.ones(n), X.mean(axis=0), structure)
    far, _ = engine.plan(np.asarray(means, dtype=float),
                         structure.precisions_cholesky_from_precisions(precisions))
    return not len(far)


def batch_size(template, n_components, n_samples, n_features, per_dataset):
    """Fits per batch, so that a batch's working arrays stay near ``BATCH_ELEMENTS``."""
    P = _n_expanded(template._structure, n_features)
    per_fit = n_samples * (n_components + (P if per_dataset else 0) + 2)
    return max(1, BATCH_ELEMENTS // per_fit)


def fit_batch(template, start, X, sample_weight=None, advance=None):
    """EM fits of ``template``'s model from one start, all at once.

    Parameters
    ----------
    template : GaussianMixtureEM
        Its ``covariance_type``, ``tol``, ``max_iter`` and ``reg_covar`` (see
        :func:`supports` for the options it must not have).
    start : tuple
        ``(weights, means, precisions)`` in the family's layout, shared by every fit.
    X : ndarray of shape (n, D), or (B, n, D) for one data set per fit
    sample_weight : ndarray of shape (B, n), optional
        Each fit's weights of the rows of a shared ``X`` (default: all ones).
    advance : callable, optional
        Called with the number of fits that finished (converged or failed) after each
        iteration: a progress bar's hook.

    Returns
    -------
    list of dict
        Per fit, as GaussianMixtureEM would have it: ``weights`` (K,), ``means`` (K, D),
        ``covariances`` (the family's layout), ``log_likelihood``, ``n_iter``,
        ``converged``, ``warnings`` (sorted names of the warnings its fit would raise,
        ConvergenceWarning aside) and ``error`` ("" or the failure's type and message).
    """
    X = np.asarray(X, dtype=np.float64)
    shared = X.ndim == 2
    n, D = X.shape[-2:]
    if shared:
        B = len(sample_weight) if sample_weight is not None else 1
    else:
        B = len(X)
    W = np.ones((B, n)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    batch = _Batch(template, X, W, shared)
    batch.check_estimable()
    batch.start(start)
    batch.run(advance)
    return batch.outcomes()


class _Batch:
    """The state of a batch of fits: parameters (B, ...) and the still running ones."""

    def __init__(self, template, X, W, shared):
        self.template = template
        self.structure = template._structure
        self.reg_covar, self.tol, self.max_iter = (template.reg_covar, template.tol,
                                                   template.max_iter)
        self.W, self.shared = W, shared
        self.B, self.n = W.shape
        self.D = X.shape[-1]
        self.total_weight = W.sum(axis=1)
        self.errors = [""] * self.B
        self.caught = [set() for _ in range(self.B)]
        # every data set expanded about its own (shared: the rows') mean
        self.centre = X.mean(axis=-2)  # (D,) or (B, D)
        Xc = X - (self.centre if shared else self.centre[:, None, :])
        flat = Xc.reshape(-1, self.D)
        quad = self.structure.quad_features(flat).reshape(Xc.shape[:-1] + (-1,))
        F = np.concatenate([Xc, quad, np.ones(Xc.shape[:-1] + (1,))], axis=-1)
        self.F = F  # (n, P) or (B, n, P)
        self.Ft = np.ascontiguousarray(np.swapaxes(F, -1, -2))  # (P, n) or (B, P, n)
        self.data_variance = self._data_variances(Xc)

    # ------------------------------------------------------------ before EM
    def _data_variances(self, Xc):
        """Each fit's data variances for the collapse check (None: singular data), and
        its RegularizationWarning, as ``fit`` computes them."""
        W, total = self.W, self.total_weight
        if self.shared:
            mean = W @ Xc / total[:, None]
            scatter = np.einsum("bn,ni,nj->bij", W, Xc, Xc, optimize=True)
        else:
            mean = np.einsum("bn,bnd->bd", W, Xc) / total[:, None]
            scatter = np.einsum("bn,bni,bnj->bij", W, Xc, Xc, optimize=True)
        covariance = scatter / total[:, None, None] - mean[:, :, None] * mean[:, None, :]
        variances = []
        for b, cov in enumerate(covariance):
            if regularisation_dominates(self.reg_covar, np.diag(cov)):
                self.caught[b].add("RegularizationWarning")
            variances.append(_variance_if_nonsingular(cov))
        return variances

    def check_estimable(self):
        """The errors ``fit`` raises before EM: too few points for the components."""
        K = self.template.n_components
        messages = {}
        for b, n_points in enumerate(np.count_nonzero(self.W, axis=1)):
            if n_points not in messages:
                try:
                    check_enough_samples(int(n_points), K)
                    self.structure.check_estimable(K, self.D, int(n_points))
                    messages[n_points] = ""
                except ValueError as error:
                    messages[n_points] = describe_error(error)
            self.errors[b] = messages[n_points]

    def start(self, start):
        """Every fit at the user start, as ``fit`` sets it from weights_init, means_init
        and precisions_init."""
        weights, means, precisions = (np.asarray(p, dtype=np.float64) for p in start)
        structure, B = self.structure, self.B
        self.weights = np.tile(weights / weights.sum(), (B, 1))
        self.means = np.tile(means, (B, 1, 1))
        covariances = structure.covariances_from_precisions(precisions)
        self.covariances = np.tile(covariances, (B,) + (1,) * covariances.ndim)
        self.K = len(weights)
        self.factors = np.empty((B,) + self._factor_shape(self.covariances[:1])[1:])
        self.n_iter = np.zeros(B, dtype=int)
        self.converged = np.zeros(B, dtype=bool)
        self.log_likelihood = np.full(B, np.nan)
        running = np.array([not e for e in self.errors])
        # a start that is not positive definite fails every fit, as in fit()
        self._set_factors(np.flatnonzero(running))

    def _factor_shape(self, covariances):
        _, per = self.structure.per_component(covariances, self.K)
        return per.shape

    # ------------------------------------------------------------------- EM
    def _set_factors(self, fits):
        """Per-component precision factors of ``fits``' covariances; a fit with a
        covariance that is not positive definite fails with fit()'s error."""
        structure, K = self.structure, self.K
        while len(fits):
            per_structure, per = structure.per_component(self.covariances[fits], K)
            flat = per.reshape((-1,) + per.shape[2:])
            try:
                factors = per_structure.precisions_cholesky(flat, self.reg_covar)
            except CollapsedComponentError as error:
                bad = sorted({k // K for k in error.components})
                for i in bad:
                    self._fail_collapsed(fits[i])
                fits = np.delete(fits, bad)
                continue
            self.factors[fits] = factors.reshape(per.shape)
            return

    def _fail_collapsed(self, b):
        try:
            self.structure.precisions_cholesky(self.covariances[b], self.reg_covar)
        except CollapsedComponentError as error:
            self.errors[b] = describe_error(error)
        else:  # not reached: the batched factor failed on one of this fit's components
            self.errors[b] = describe_error(CollapsedComponentError([], self.reg_covar))

    def _e_step(self, fits, moments):
        """Log-likelihoods (b,) of ``fits`` at their parameters and, with ``moments``,
        the moments (b, K, P) of their responsibilities."""
        K, D = self.K, self.D
        per_structure, _ = self.structure.per_component(self.covariances[:1], K)
        centre = self.centre if self.shared else self.centre[fits][:, None, :]
        offsets = (self.means[fits] - centre).reshape(-1, D)
        factors = self.factors[fits]
        coef = per_structure.coefficients(offsets, factors.reshape((-1,) + factors.shape[2:]))
        const = coef.const.reshape(-1, K) + np.log(self.weights[fits])
        C = np.concatenate([coef.lin.reshape(-1, K, D),
                            -0.5 * coef.quad.reshape(-1, K, coef.quad.shape[-1]),
                            const[:, :, None]], axis=-1)
        joint = C @ (self.Ft if self.shared else self.Ft[fits])  # (b, K, n)
        top = joint.max(axis=1, keepdims=True)
        np.subtract(joint, top, out=joint)
        np.exp(joint, out=joint)
        total = joint.sum(axis=1, keepdims=True)
        W = self.W[fits]
        log_norm = np.log(total[:, 0]) + top[:, 0]
        log_likelihood = np.einsum("bn,bn->b", W, log_norm)
        if not moments:
            return log_likelihood, None
        joint *= (W / total[:, 0])[:, None, :]  # weighted responsibilities
        return log_likelihood, joint @ (self.F if self.shared else self.F[fits])

    def _m_step(self, fits, totals):
        """GaussianMixtureEM._m_step (without a prior) for ``fits``."""
        D = self.D
        nk = totals[..., -1] + 10 * np.finfo(np.float64).eps
        means_centred = totals[..., :D] / nk[..., None]
        sum_q = totals[..., D:-1]
        structure = self.structure
        if structure.batched_m_step:
            covariances = structure.covariances(nk, means_centred, sum_q, self.reg_covar)
        else:
            covariances = np.empty_like(self.covariances[fits])
            for i, b in enumerate(fits):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    covariances[i] = structure.covariances(
                        nk[i], means_centred[i], sum_q[i], self.reg_covar,
                        previous=self.covariances[b])
                self.caught[b].update(w.category.__name__ for w in caught
                                      if not issubclass(w.category, ConvergenceWarning))
        centre = self.centre if self.shared else self.centre[fits][:, None, :]
        self.weights[fits] = nk / nk.sum(axis=-1, keepdims=True)
        self.means[fits] = means_centred + centre
        self.covariances[fits] = covariances
        self._set_factors(fits)

    def _fail(self, fits, error):
        for b in fits:
            self.errors[b] = describe_error(error)

    def run(self, advance=None):
        advance = advance or (lambda n: None)
        running = np.flatnonzero([not e for e in self.errors])
        advance(self.B - len(running))
        previous = np.full(self.B, -np.inf)
        with np.errstate(all="ignore"):
            for iteration in range(1, self.max_iter + 1):
                if not len(running):
                    break
                log_likelihood, totals = self._e_step(running, moments=True)
                finite = np.isfinite(log_likelihood)
                if not finite.all():
                    self._fail(running[~finite], _non_finite_error())
                    running, log_likelihood, totals = (running[finite], log_likelihood[finite],
                                                       totals[finite])
                self._m_step(running, totals)
                self.n_iter[running] = iteration
                mean = log_likelihood / self.total_weight[running]
                done = np.abs(mean - previous[running]) < self.tol
                previous[running] = mean
                self.converged[running[done]] = True
                ok = np.array([not self.errors[b] for b in running], dtype=bool)
                before = len(running)
                running = running[ok & ~done]
                advance(before - len(running))
            advance(len(running))  # stopped at max_iter
            self._final_pass()

    def _final_pass(self):
        """fit()'s last pass: the log-likelihood at the final parameters and the
        collapse check."""
        fits = np.flatnonzero([not e for e in self.errors])
        if not len(fits):
            return
        with np.errstate(all="ignore"):
            log_likelihood, _ = self._e_step(fits, moments=False)
        for b, value in zip(fits, log_likelihood):
            if not np.isfinite(value):
                self.errors[b] = describe_error(_non_finite_error())
                continue
            variance = self.data_variance[b]
            if variance is not None and self.max_iter > 0:
                collapsed = collapsed_components(self.structure, self.covariances[b], variance)
                if collapsed:
                    self.errors[b] = describe_error(CollapsedComponentError(collapsed,
                                                                       self.reg_covar))
                    continue
            self.log_likelihood[b] = value

    def outcomes(self):
        records = []
        for b in range(self.B):
            record = {"error": self.errors[b], "warnings": tuple(sorted(self.caught[b]))}
            if not self.errors[b]:
                record.update(weights=self.weights[b], means=self.means[b],
                              covariances=self.covariances[b],
                              log_likelihood=float(self.log_likelihood[b]),
                              n_iter=int(self.n_iter[b]), converged=bool(self.converged[b]))
            records.append(record)
        return records


def _non_finite_error():
    try:
        _check_finite_log_likelihood(np.nan)
    except ValueError as error:
        return error


