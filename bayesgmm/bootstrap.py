"""Bootstrap inference for EM fits: standard errors, intervals, and the LRT for K.

- :func:`bootstrap` (mclust's ``MclustBootstrap``): non-parametric, weighted likelihood
  and parametric bootstrap, and the jackknife, of a fitted
  :class:`~bayesgmm.GaussianMixtureEM`; standard errors and percentile intervals of the
  weights, means and covariances, every replicate relabelled to the fit's components.
- :func:`bootstrap_lrt` (mclust's ``mclustBootstrapLRT``, McLachlan 1987): the
  likelihood-ratio statistic for G against G + 1 components, its parametric-bootstrap
  distribution under G and the bootstrap p-value, for G = 1 .. ``max_components`` - 1.

Every replicate is the EM fit a clone of the estimator (``sklearn.base.clone``, or
``GaussianMixtureEM(**em_options)``) makes, so every estimator option reaches the
replicates; only the start (the original fit's parameters) and the stopping rule
(``tol``, ``max_iter``) are set here.

**Batched.** :func:`bootstrap` fits its replicates together, a batch of them per EM
iteration (:mod:`bayesgmm._batch_em`: their densities one matrix product with the
shared rows, the M-step one call of the covariance family), which on small data is
10-20 times faster than one fit after another and gives the same fits to rounding
(``tests/test_batch_em.py``). Fits it cannot reproduce exactly (a ``prior``,
``standardize=True``, data too large to expand in memory) and the LRT's fits are
estimator fits, one per replicate; ``batch=False`` asks for those everywhere.

**Parallel and reproducible.** Replicate ``b`` draws from its own
``np.random.SeedSequence(random_state).spawn(n_boot)[b]``, so the results are identical
for any ``n_jobs``, batch size and order of completion. Batches of replicates (or, one
by one, several replicates per task, so that small data do not pay a process start per
replicate) run through joblib, ``n_jobs=-1`` (all local cores) by default, with a rich
progress bar; replicates that fit in one batch run in this process. Any joblib backend
works; a Dask cluster is ``client=``::

    from dask.distributed import Client

    result = bootstrap(em, X, n_boot=9999, client=Client("scheduler-address:8786"))

**Failures are kept.** A replicate whose fit fails (a collapsed component, a non-finite
log-likelihood, too few distinct points) is a row of NaN with its reason in
``replicates["error"]``; it is counted in ``n_failed``, the statistics use the others,
and a :class:`BootstrapWarning` says how many failed. mclust redraws such replicates
silently.

References
----------
McLachlan, G. J. (1987). On bootstrapping the likelihood ratio test statistic for the
number of components in a normal mixture. Applied Statistics 36(3), 318-324.
Efron, B. and Tibshirani, R. (1993). An Introduction to the Bootstrap. Chapman & Hall.
Newton, M. A. and Raftery, A. E. (1994). Approximate Bayesian inference with the
weighted likelihood bootstrap. JRSS B 56(1), 3-48.
Scrucca, L., Fop, M., Murphy, T. B. and Raftery, A. E. (2016). mclust 5: clustering,
classification and density estimation using Gaussian finite mixture models. The R
Journal 8(1), 289-317.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import linear_sum_assignment
from scipy.stats import norm
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.validation import check_is_fitted

from ._batch_em import batch_size, fit_batch, supports
from ._gaussian import get_covariance_structure, sample_mixture
from ._validation import (
    as_numeric_table,
    check_choice,
    check_client,
    check_enough_samples,
    check_integer,
    check_number,
    check_seed,
    describe_error,
)
from .em import GaussianMixtureEM

__all__ = ["KINDS", "BootstrapResult", "BootstrapWarning", "LRTResult", "bootstrap",
           "bootstrap_lrt"]

#: Accepted values of ``kind`` (mclust's ``bs``, ``wlbs``, ``pb``, ``jk``).
KINDS = ("nonparametric", "weighted", "parametric", "jackknife")

#: EM's stopping rule (``tol``: the change of the mean per-sample log-likelihood) in
#: the replicates of :func:`bootstrap`. Where components overlap the parameters converge
#: far more slowly than the log-likelihood: on Old Faithful EEE G=3 the standard errors
#: of the two overlapping weights are 13-15% too small at mclust's rule (a change of
#: 1e-5 of the total, 4e-5 per sample; the non-parametric and parametric bootstrap) and
#: 2% at 1e-6; 1e-8 is converged (1e-10 gives the same to 0.2%). A leave-one-out fit
#: moves only O(1/n) from its start, so the jackknife needs 1e-10: at 1e-6 its standard
#: errors are a quarter too small, at mclust's rule half (mclust's jackknife gives 0.022
#: and 0.030 where the converged values are 0.057 and 0.061).
DEFAULT_TOL = 1e-8
JACKKNIFE_TOL = 1e-10
#: ``tol`` of :func:`bootstrap_lrt`'s fits. The statistic needs only log-likelihoods,
#: which converge faster than the parameters, but a G + 1 fit of data from G components
#: has a redundant component along which EM crawls: on Old Faithful EEE (1 vs 2, 2 vs
#: 3) the log-likelihood at 1e-6 is within 0.005 of 1e-8's for half of the replicates
#: and 0.03-0.4 for the slowest tenth (at mclust's rule: 0.1-0.14 for half, up to 4,
#: which biases its bootstrap values low); 1e-8 costs 2.5-4 times the iterations.
LRT_TOL = 1e-6
DEFAULT_MAX_ITER = 10_000

#: Estimator parameters the bootstrap sets itself (and ``bootstrap_lrt`` refuses).
_SET_HERE = ("n_components", "weights_init", "means_init", "precisions_init", "warm_start")

#: What a failed fit raises: collapse (a ValueError), a non-finite log-likelihood,
#: too few distinct points, a failed factorisation.
_FIT_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError)

#: Two log-likelihoods closer than this (relative) are the same point: a G + 1 fit no
#: better than the G fit by more than rounding gives the statistic 0, not 1e-12, so
#: that it ties with the bootstrap's zeros.
_SAME_LIKELIHOOD = 1e-9

# Tasks per worker (at least _MIN_TASKS): enough for a smooth progress bar and load
# balance, few enough that small replicates are batched.
_TASKS_PER_WORKER = 8
_MIN_TASKS = 50


class BootstrapWarning(UserWarning):
    """Some replicates failed, did not converge, or warned."""


# ----------------------------------------------------------------------- results
@dataclass(frozen=True)
class BootstrapResult:
    """Replicates of a bootstrap (or jackknife) of an EM fit, and their statistics.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    estimates : xarray.Dataset
        The original fit: ``weights`` (component), ``means`` (component, feature),
        ``covariances`` (component, feature, feature2), full matrices whatever the family.
    replicates : xarray.Dataset
        The same variables with a leading ``replicate`` dimension, relabelled to the
        original components (NaN for a failed replicate), and per replicate
        ``log_likelihood``, ``n_iter``, ``converged``, ``relabelled`` (its components
        were permuted to match), ``error`` ("" or the failure's type and message) and
        ``warnings`` (the warning categories its fit raised, "; "-separated).
    level : float
        Default level of :meth:`intervals` and :meth:`summary`.
    random_state : int or None
        The entropy of the ``SeedSequence`` (pass it back as ``random_state`` to repeat
        the run); None for the jackknife, which draws nothing.
    """

    kind: str
    estimates: xr.Dataset
    replicates: xr.Dataset
    level: float = 0.95
    random_state: int | None = None

    @property
    def n_boot(self) -> int:
        """Number of replicates (successful or not); n for the jackknife."""
        return int(self.replicates.sizes["replicate"])

    @property
    def n_failed(self) -> int:
        """Replicates whose fit failed (they are NaN in ``replicates``)."""
        return int((self.replicates["error"] != "").sum())

    @property
    def failures(self) -> dict[str, int]:
        """The number of failed replicates per kind of error."""
        errors = self.replicates["error"].values
        return dict(Counter(_reason(e) for e in errors if e))

    @property
    def n_relabelled(self) -> int:
        """Replicates whose components had to be permuted to match the original fit's."""
        return int(self.replicates["relabelled"].sum())

    @property
    def n_unconverged(self) -> int:
        """Successful replicates whose EM stopped at ``max_iter`` before ``tol``."""
        ok = self.replicates["error"] == ""
        return int((ok & ~self.replicates["converged"]).sum())

    def _parameters(self):
        return self.replicates[["weights", "means", "covariances"]]

    def standard_errors(self) -> xr.Dataset:
        """Standard errors of ``weights``, ``means`` and ``covariances``.

        The standard deviation of the successful replicates (denominator m - 1, as
        mclust), or for the jackknife ``sqrt((m - 1) / m * sum_i (theta_i -
        mean(theta))**2)`` over its m successful leave-one-out fits.
        """
        values = self._parameters()
        if self.kind != "jackknife":
            return values.std("replicate", ddof=1)
        m = self.n_boot - self.n_failed
        squares = ((values - values.mean("replicate")) ** 2).sum("replicate")
        return np.sqrt((m - 1) / m * squares)

    def intervals(self, level=None) -> xr.Dataset:
        """Intervals at ``level`` (default ``self.level``), with a dimension ``bound``
        (``lower``, ``upper``).

        Percentile intervals (quantiles ``(1 -+ level) / 2`` of the successful
        replicates, numpy's linear interpolation = R's type 7, as mclust); for the
        jackknife, whose leave-one-out fits spread about sqrt(n) times too little,
        normal intervals ``estimate -+ z se`` (mclust centres them at the mean of the
        leave-one-out fits instead, which differs by O(1/n)).
        """
        level = self.level if level is None else check_number(
            "level", level, low=0, high=1, low_open=True, high_open=True)
        tail = (1 - level) / 2
        if self.kind == "jackknife":
            half = norm.ppf(1 - tail) * self.standard_errors()
            bounds = xr.concat([self.estimates - half, self.estimates + half], dim="bound")
        else:
            bounds = self._parameters().quantile([tail, 1 - tail], dim="replicate")
            bounds = bounds.rename(quantile="bound").drop_vars("bound")
        return bounds.assign_coords(bound=["lower", "upper"])

    def summary(self, level=None) -> pd.DataFrame:
        """One row per parameter: ``estimate``, the replicates' ``mean``, ``se`` and the
        interval bounds ``ci{level}_lb``, ``ci{level}_ub``.

        Rows ``weights[k]``, ``means[k, feature]`` and ``covariances[k, feature,
        feature2]`` (upper triangle and diagonal).
        """
        level = self.level if level is None else level
        bounds = self.intervals(level)
        columns = {"estimate": self.estimates, "mean": self._parameters().mean("replicate"),
                   "se": self.standard_errors()}
        percent = f"{100 * level:g}".replace(".", "_")
        columns[f"ci{percent}_lb"] = bounds.sel(bound="lower")
        columns[f"ci{percent}_ub"] = bounds.sel(bound="upper")
        features = list(self.estimates["feature"].values)
        rows, index = [], []
        for k in self.estimates["component"].values:
            cells = [("weights", f"weights[{k}]", {"component": k})]
            cells += [("means", f"means[{k}, {f}]", {"component": k, "feature": f})
                      for f in features]
            cells += [("covariances", f"covariances[{k}, {f}, {g}]",
                       {"component": k, "feature": f, "feature2": g})
                      for i, f in enumerate(features) for g in features[i:]]
            for name, label, where in cells:
                index.append(label)
                rows.append([float(ds[name].sel(where)) for ds in columns.values()])
        table = pd.DataFrame(rows, index=pd.Index(index, name="parameter"),
                             columns=list(columns))
        table.attrs.update(kind=self.kind, level=level, n_boot=self.n_boot,
                           n_failed=self.n_failed)
        return table

    def __repr__(self) -> str:
        return (f"<BootstrapResult {self.kind}: {self.n_boot} replicates, {self.n_failed} "
                f"failed, {self.n_relabelled} relabelled, {self.n_unconverged} unconverged>")


@dataclass(frozen=True)
class LRTResult:
    """The sequential bootstrap likelihood-ratio tests of G against G + 1 components.

    Attributes
    ----------
    covariance_type : str
    table : pandas.DataFrame
        One row per test: ``G``, ``G+1``, ``LRTS`` (``2 (loglik_{G+1} - loglik_G)``,
        never negative), ``p_value`` (``(1 + #{boot >= LRTS}) / (m + 1)`` over the m
        successful replicates), ``n_boot``, ``n_failed`` (replicates without a
        statistic: their G fit failed), ``n_failed_starts`` (G + 1 starts that failed
        in the replicates; the others still gave the statistic), ``loglik_G``,
        ``loglik_G+1``.
    replicates : xarray.Dataset
        Dims ``G`` (components under the null) and ``replicate``: ``lrts``,
        ``log_likelihood_null``, ``log_likelihood_alt``, ``n_failed_starts``, ``error``.
    models : dict of int to GaussianMixtureEM
        The fit with G components for G = 1 .. max_components (the best one found: see
        :func:`bootstrap_lrt`).
    random_state : int
        The entropy of the ``SeedSequence``: pass it back to repeat the run.
    observed_failures : tuple of str
        Starts of the observed fits that failed (the others were kept).
    """

    covariance_type: str
    table: pd.DataFrame
    replicates: xr.Dataset
    models: dict = field(repr=False)
    random_state: int | None = None
    observed_failures: tuple = ()

    def select(self, level=0.05) -> int:
        """The sequential choice: the first G whose test against G + 1 is not rejected at
        ``level`` (mclust's stopping rule), or the largest G + 1 when all are."""
        check_number("level", level, low=0, high=1, low_open=True, high_open=True)
        kept = self.table.loc[self.table["p_value"] > level, "G"]
        return int(kept.iloc[0]) if len(kept) else int(self.table["G+1"].iloc[-1])

    def plot(self, **kwargs):
        """Histograms of the bootstrap distributions with the observed statistics
        (:func:`bayesgmm.plots.plot_bootstrap_lrt`); returns the Figure."""
        from .plots import plot_bootstrap_lrt

        return plot_bootstrap_lrt(self, **kwargs)

    def __repr__(self) -> str:
        return f"<LRTResult {self.covariance_type}:\n{self.table.to_string(index=False)}>"


# ------------------------------------------------------------------- bootstrap
def bootstrap(em, X, kind="nonparametric", n_boot=999, *, level=0.95, random_state=None,
              n_jobs=-1, progressbar=True, tol=None, max_iter=DEFAULT_MAX_ITER, batch=True,
              client=None):
    """Bootstrap (or jackknife) a fitted EM mixture: standard errors and intervals.

    Each replicate is the fit of a clone of ``em`` (all its options) by EM started from
    ``em``'s parameters (mclust starts from its responsibilities, which is the same
    start), to the replicate's data:

    - ``"nonparametric"`` (mclust's ``bs``): n rows drawn with replacement (as integer
      sample weights on X, which is the same likelihood);
    - ``"weighted"`` (``wlbs``, Newton and Raftery 1994): every row weighted by an
      Exp(1) draw, i.e. Dirichlet(1, ..., 1) weights, scaled to sum to n;
    - ``"parametric"`` (``pb``): n points simulated from ``em``;
    - ``"jackknife"`` (``jk``): each row left out once (n replicates; ``n_boot`` is not
      used).

    The replicate's components are then matched to ``em``'s (Hungarian algorithm on the
    squared distances between means in each original component's metric) and
    permuted when they do not match in order; ``n_relabelled`` counts those.

    Parameters
    ----------
    em : GaussianMixtureEM
        A fitted estimator, fitted without sample weights on ``X``, best with a small
        ``tol`` (1e-8): its estimates are the table's and the jackknife intervals'
        centre, and where components overlap the default 1e-3 stops short of the
        optimum.
    X : array-like of shape (n_samples, n_features)
        The data ``em`` was fitted on.
    kind : {"nonparametric", "weighted", "parametric", "jackknife"}
    n_boot : int, default=999
        Number of replicates (not used by the jackknife).
    level : float, default=0.95
        Default level of the intervals.
    random_state : int or None
        Seed of the ``np.random.SeedSequence`` whose children seed the replicates.
    n_jobs : int, default=-1
        joblib's: -1 uses every core (or the workers of the active
        ``joblib.parallel_config`` backend, or of ``client``), 1 runs in this process.
    client : dask.distributed.Client, optional
        Run the replicates' tasks on this client's workers (a ``LocalCluster`` or any
        cluster's scheduler) through joblib's dask backend; the results are those of
        any other ``n_jobs``.
    progressbar : bool, default=True
    tol : float, optional
        EM's stopping rule in the replicates: the change of the mean per-sample
        log-likelihood. Default 1e-8, and 1e-10 for the jackknife (see
        ``DEFAULT_TOL``: looser rules, mclust's among them, give too small standard
        errors where components overlap).
    max_iter : int, default=10000
        EM's iteration limit in the replicates. Every other option is ``em``'s.
    batch : bool, default=True
        Fit the replicates in batches (see the module's docstring) where that gives the
        estimator's fits; False: one estimator fit per replicate.

    Returns
    -------
    BootstrapResult

    Raises
    ------
    ValueError
        Before any fitting, for an unfitted ``em``, an ``X`` that is not its data, a bad
        ``kind``, ``n_boot``, ``level``, ``tol`` or ``max_iter``.

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, datasets
    >>> from bayesgmm.bootstrap import bootstrap
    >>> X = datasets.load_faithful()
    >>> em = GaussianMixtureEM(3, covariance_type="EEE", tol=1e-6, random_state=0).fit(X)
    >>> result = bootstrap(em, X, n_boot=99, random_state=1, progressbar=False)
    >>> result.standard_errors()["weights"].values.round(2)  # doctest: +SKIP
    array([0.05, 0.03, 0.05])
    """
    kind = check_choice("kind", kind, KINDS)
    n_boot = check_integer("n_boot", n_boot, minimum=1)
    check_number("level", level, low=0, high=1, low_open=True, high_open=True)
    random_state = check_seed("random_state", random_state)
    if tol is None:
        tol = JACKKNIFE_TOL if kind == "jackknife" else DEFAULT_TOL
    tol = check_number("tol", tol, low=0)
    max_iter = check_integer("max_iter", max_iter, minimum=1)
    if not isinstance(batch, (bool, np.bool_)):
        raise ValueError(f"batch must be True or False, got {batch!r}.")
    data = _check_fitted_on(em, X)

    K, D = em.means_.shape
    covariances = get_covariance_structure(em.covariance_type).to_full(em.covariances_, K, D)
    template = clone(em).set_params(tol=tol, max_iter=max_iter, warm_start=False, verbose=0)
    job = _BootstrapJob(
        kind=kind, template=template, X=data,
        start=(em.weights_, em.means_, em.precisions_),
        weights=np.asarray(em.weights_, dtype=float),
        means=np.asarray(em.means_, dtype=float),
        covariances=np.asarray(covariances, dtype=float))
    if kind == "jackknife":
        seeds, entropy = [None] * len(data), None
    else:
        sequence = np.random.SeedSequence(random_state)
        seeds, entropy = sequence.spawn(n_boot), sequence.entropy
    items = [(0, b, s) for b, s in enumerate(seeds)]
    description = f"{kind} bootstrap"
    with _workers(client):
        if batch and supports(template, job.start, data):
            size = batch_size(template, K, len(data), D, per_dataset=kind == "parametric")
            outcomes = _map_batches(_bootstrap_batch, job, items, size, n_jobs=n_jobs,
                                    progressbar=progressbar, description=description)
        else:
            outcomes = _map_replicates(_bootstrap_replicate, [job], items, n_jobs=n_jobs,
                                       progressbar=progressbar, description=description)
    estimates = em.to_xarray()[["weights", "means", "covariances"]]
    result = BootstrapResult(kind, estimates, _replicates_dataset(outcomes, estimates),
                             level=float(level), random_state=entropy)
    if result.n_failed == result.n_boot:
        raise RuntimeError(
            f"All {result.n_boot} {kind} replicates failed; the first: "
            f"{result.replicates['error'].values[0]} The fit may be too fragile to "
            "bootstrap: try fewer components, a more constrained covariance_type or a "
            "larger reg_covar.")
    _warn_about(result.n_boot, result.n_failed, result.failures, result.n_unconverged,
                result.replicates["warnings"].values, max_iter)
    return result


def _check_fitted_on(em, X):
    """``X`` as a float array after checking that ``em`` is a fitted GaussianMixtureEM
    and ``X`` its (unweighted) data."""
    if not isinstance(em, GaussianMixtureEM):
        raise ValueError(f"em must be a fitted GaussianMixtureEM, got {type(em).__name__}.")
    try:
        check_is_fitted(em)
    except NotFittedError:
        raise ValueError("em is not fitted: call em.fit(X) first, then bootstrap(em, X) "
                         "with the same X.") from None
    table = as_numeric_table(X)
    data = np.asarray(table, dtype=np.float64)
    if data.shape[1] != em.n_features_in_:
        raise ValueError(
            f"X has {data.shape[1]} features but em was fitted on {em.n_features_in_}: "
            "pass the data em was fitted on.")
    names = getattr(em, "feature_names_in_", None)
    if names is not None and isinstance(table, pd.DataFrame) \
            and list(table.columns) != list(names):
        raise ValueError(f"X has columns {list(table.columns)} but em was fitted on "
                         f"{list(names)}: pass the data em was fitted on.")
    check_enough_samples(len(data), em.n_components)
    named = pd.DataFrame(data, columns=names) if names is not None else data
    log_likelihood = float(em.score_samples(named).sum())
    if not math.isclose(log_likelihood, em.log_likelihood_, rel_tol=1e-6, abs_tol=1e-6):
        raise ValueError(
            f"X is not the data em was fitted on: its log-likelihood under em is "
            f"{log_likelihood:.6f}, em.log_likelihood_ is {em.log_likelihood_:.6f}. Pass "
            "the same X (a fit with sample_weight cannot be bootstrapped: refit without).")
    return data


@dataclass(frozen=True)
class _BootstrapJob:
    """What every replicate of one bootstrap needs (pickled once per task)."""

    kind: str
    template: GaussianMixtureEM  # unfitted clone of em, with the replicates' tol/max_iter
    X: np.ndarray
    start: tuple  # em's weights_, means_, precisions_ (the family's layout)
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray  # (K, D, D)


def _replicate_data(job: _BootstrapJob, index, seed):
    """Replicate ``index``'s data: ``(X, sample_weight)`` (None: unweighted)."""
    n = len(job.X)
    X, sample_weight = job.X, None
    rng = np.random.default_rng(seed)
    if job.kind == "nonparametric":
        sample_weight = np.bincount(rng.integers(n, size=n), minlength=n).astype(float)
    elif job.kind == "weighted":
        sample_weight = rng.exponential(size=n)
        sample_weight *= n / sample_weight.sum()
    elif job.kind == "parametric":
        X = sample_mixture(job.weights, job.means, np.linalg.cholesky(job.covariances), n,
                           rng)[0]
    else:  # jackknife
        sample_weight = np.ones(n)
        sample_weight[index] = 0.0
    return X, sample_weight


def _bootstrap_replicate(job: _BootstrapJob, index, seed):
    """One replicate: its data, the EM fit from the original parameters, relabelled."""
    X, sample_weight = _replicate_data(job, index, seed)
    try:
        model, caught = _fit_from(job.template, job.start, X, sample_weight)
    except _FIT_ERRORS as error:
        return {"error": describe_error(error)}
    return _relabelled(job, {
        "weights": model.weights_, "means": model.means_, "covariances": model.covariances_,
        "log_likelihood": model.log_likelihood_, "n_iter": model.n_iter_,
        "converged": model.converged_, "error": "", "warnings": caught})


def _bootstrap_batch(job: _BootstrapJob, items, advance=None):
    """A batch of replicates fitted together by :func:`bayesgmm._batch_em.fit_batch`:
    [(position, outcome)], the same outcomes as :func:`_bootstrap_replicate`'s."""
    data = [_replicate_data(job, index, seed) for _, (_, index, seed) in items]
    if job.kind == "parametric":
        X, sample_weight = np.stack([X for X, _ in data]), None
    else:
        X, sample_weight = job.X, np.stack([w for _, w in data])
    fits = fit_batch(job.template, job.start, X, sample_weight, advance=advance)
    return [(position, _relabelled(job, fit) if not fit["error"] else fit)
            for (position, _), fit in zip(items, fits)]


def _relabelled(job: _BootstrapJob, fit):
    """A successful fit's record with full covariances, its components matched to the
    original fit's."""
    K, D = fit["means"].shape
    covariances = job.template._structure.to_full(fit["covariances"], K, D)
    order = _match_components(job.means, job.covariances, fit["means"])
    return fit | {"weights": fit["weights"][order], "means": fit["means"][order],
                  "covariances": covariances[order],
                  "relabelled": bool(np.any(order != np.arange(K)))}


def _match_components(means, covariances, replicate_means):
    """The replicate's component for each original one (an index array (K,)).

    Minimises the total squared Mahalanobis distance of the means, each in its original
    component's metric (Hungarian algorithm).
    """
    offsets = replicate_means[None, :, :] - means[:, None, :]  # (original, replicate, D)
    solved = np.linalg.solve(covariances[:, None], offsets[..., None])[..., 0]
    cost = np.einsum("jkd,jkd->jk", offsets, solved)
    rows, columns = linear_sum_assignment(cost)
    return columns[np.argsort(rows)]


def _replicates_dataset(outcomes, estimates):
    """The replicates' records as a Dataset shaped like ``estimates`` plus ``replicate``."""
    shapes = {name: estimates[name].shape for name in ("weights", "means", "covariances")}
    columns = {name: np.full((len(outcomes), *shape), np.nan) for name, shape in shapes.items()}
    scalars = {"log_likelihood": np.full(len(outcomes), np.nan),
               "n_iter": np.zeros(len(outcomes), dtype=int),
               "converged": np.zeros(len(outcomes), dtype=bool),
               "relabelled": np.zeros(len(outcomes), dtype=bool)}
    filled = columns | scalars  # the same arrays, filled in place
    errors, caught = [], []
    for b, outcome in enumerate(outcomes):
        errors.append(outcome["error"])
        caught.append("; ".join(outcome.get("warnings", ())))
        if not outcome["error"]:
            for name, values in filled.items():
                values[b] = outcome[name]
    data = {name: (("replicate", *estimates[name].dims), values)
            for name, values in columns.items()}
    data |= {name: ("replicate", values) for name, values in scalars.items()}
    data |= {"error": ("replicate", np.array(errors, dtype=object)),
             "warnings": ("replicate", np.array(caught, dtype=object))}
    return xr.Dataset(data, coords={"replicate": np.arange(len(outcomes)),
                                    **estimates.coords})


# ------------------------------------------------------------------------- LRT
def bootstrap_lrt(X, covariance_type, max_components, n_boot=999, *, split_starts=True,
                  random_state=None, n_jobs=-1, progressbar=True, client=None, **em_options):
    """Bootstrap likelihood-ratio tests of G against G + 1 components (McLachlan 1987).

    For G = 1 .. ``max_components`` - 1: the statistic ``LRTS = 2 (loglik_{G+1} -
    loglik_G)`` of the data, and its distribution under the G-component fit, from
    ``n_boot`` data sets of n points simulated from that fit, each refitted with G and
    with G + 1 components. p-value ``(1 + #{boot >= LRTS}) / (m + 1)`` over the m
    successful replicates (mclust's ``mclustBootstrapLRT``; its ``maxG`` is
    ``max_components - 1``).

    **The statistic is never negative.** The G fit with one component duplicated (its
    weight halved) is a point of the G + 1 model with exactly the G likelihood, and a
    fixed point of EM for every family, so ``loglik_{G+1} >= loglik_G`` is guaranteed by
    counting that point among the G + 1 candidates. The G + 1 fit is the best of:

    - observed data: the estimator's usual start(s) (``init_params``, ``n_init``), each
      component of the G fit split in two along its main axis (means one standard
      deviation either side, weight halved, covariance kept), and the duplicated
      largest component (run through EM, so that ``models[G + 1]`` is a fit);
    - each replicate: EM from the observed G + 1 fit (mclust's one start), from the
      splits of the replicate's own G fit (EM from the observed G fit, as mclust), and
      the duplicated point.

    mclust uses one start per fit, and its G + 1 fit can end below its G fit (Old
    Faithful EEE, 3 vs 4 and 4 vs 5: -0.09 and -12.6, and 105-287 negative bootstrap
    values per test). The splits give the replicates the same kind of search as the
    observed statistic, whose null distribution they estimate; on the diabetes data
    (VVV) they raise the bootstrap values' median by a few units, since one start often
    misses the G + 1 optimum. Statistics within rounding of 0 (1e-9 relative) are 0.
    With a prior (``prior=...`` among ``em_options``) every fit is MAP-EM's and the
    statistic compares their log-likelihoods, floored at 0 by the duplicated point: the
    MAP analogue of the test, not McLachlan's.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    covariance_type : str
        Any of GaussianMixtureEM's (scikit-learn's or mclust's names: "VVV", "EEE", ...).
    max_components : int
        The largest number of components fitted (tests up to max_components - 1 vs
        max_components); at least 2, and no more than the data can estimate.
    n_boot : int, default=999
        Replicates per test.
    split_starts : bool, default=True
        Whether the G + 1 fits (observed and bootstrap) also start from the splits of
        the G fit. False: mclust's search (one start per replicate fit, G + 2 times
        fewer fits) with the duplicated point, i.e. mclust's bootstrap values floored
        at 0.
    random_state : int or None
        Seeds the observed fits' starts and the replicates (one SeedSequence child per
        test and replicate).
    n_jobs : int, default=-1
        joblib's (see :func:`bootstrap`).
    client : dask.distributed.Client, optional
        Run the replicates on this client's workers (see :func:`bootstrap`).
    progressbar : bool, default=True
    **em_options
        Passed to every :class:`~bayesgmm.GaussianMixtureEM` (``tol`` defaults to 1e-6
        here, see ``LRT_TOL``; ``tol=1e-8`` is more exact and 2.5-4 times slower;
        ``max_iter`` to 10000; e.g. ``reg_covar``, ``n_init``, ``standardize``).

    Returns
    -------
    LRTResult

    Raises
    ------
    ValueError
        Before any fitting: ``n_boot`` < 1, ``max_components`` < 2 or more than the
        data can estimate, an unknown ``covariance_type`` or bad estimator option.

    Examples
    --------
    >>> from bayesgmm import datasets
    >>> from bayesgmm.bootstrap import bootstrap_lrt
    >>> X = datasets.load_faithful()
    >>> lrt = bootstrap_lrt(X, "EEE", 4, n_boot=99, random_state=1, progressbar=False)
    >>> lrt.table[["G", "G+1", "LRTS", "p_value"]]  # doctest: +SKIP
    """
    n_boot = check_integer("n_boot", n_boot, minimum=1)
    max_components = check_integer("max_components", max_components, minimum=2)
    random_state = check_seed("random_state", random_state)
    given = sorted(set(_SET_HERE) & set(em_options))
    if given:
        raise ValueError(f"bootstrap_lrt sets {given} itself; remove them from the options.")
    if "random_state" in em_options:
        raise ValueError("Pass random_state to bootstrap_lrt itself; it seeds the fits too.")
    sequence = np.random.SeedSequence(random_state)
    options = {"tol": LRT_TOL, "max_iter": DEFAULT_MAX_ITER, **em_options,
               "random_state": int(sequence.generate_state(1)[0])}
    template = GaussianMixtureEM(covariance_type=covariance_type, **options)
    template._check_parameters()
    table = as_numeric_table(X)
    data = np.asarray(table, dtype=np.float64)
    n, n_features = data.shape
    structure = template._structure
    structure.check_n_features(n_features)
    try:
        check_enough_samples(n, max_components)
        structure.check_estimable(max_components, n_features, n)
    except ValueError as error:
        raise ValueError(f"max_components={max_components} is more than these data can "
                         f"support. {error}") from None

    if not isinstance(split_starts, (bool, np.bool_)):
        raise ValueError(f"split_starts must be True or False, got {split_starts!r}.")
    models, failures = _observed_fits(table, template, max_components, split_starts)
    tests = range(1, max_components)
    jobs = [_LRTJob(template=clone(template), null=_start_of(models[G]),
                    alt=_start_of(models[G + 1]), n_samples=n, split_starts=split_starts)
            for G in tests]
    items = [(t, b, seed) for t, child in enumerate(sequence.spawn(len(jobs)))
             for b, seed in enumerate(child.spawn(n_boot))]
    with _workers(client):
        outcomes = _map_replicates(_lrt_replicate, jobs, items, n_jobs=n_jobs,
                                   progressbar=progressbar,
                                   description=f"bootstrap LRT {structure.mclust_name}")
    replicates = _lrt_dataset(outcomes, list(tests), n_boot)
    rows = []
    for G in tests:
        l0, l1 = models[G].log_likelihood_, models[G + 1].log_likelihood_
        observed = _lrts(l0, l1)
        boot = replicates["lrts"].sel(G=G).values
        boot = boot[np.isfinite(boot)]
        rows.append({
            "G": G, "G+1": G + 1, "LRTS": observed,
            "p_value": (1 + np.sum(boot >= observed)) / (len(boot) + 1),
            "n_boot": n_boot, "n_failed": n_boot - len(boot),
            "n_failed_starts": int(replicates["n_failed_starts"].sel(G=G).sum()),
            "loglik_G": l0, "loglik_G+1": max(l0, l1)})
    result = LRTResult(structure.mclust_name, pd.DataFrame(rows), replicates, models,
                       random_state=sequence.entropy, observed_failures=tuple(failures))
    n_failed = int(result.table["n_failed"].sum())
    if n_failed:
        reasons = Counter(_reason(e) for e in replicates["error"].values.ravel() if e)
        _warn_about(len(tests) * n_boot, n_failed, dict(reasons), 0, (), 0)
    return result


def _lrts(null_log_likelihood, alt_log_likelihood):
    """``2 (l1 - l0)``, or 0 when the G + 1 fit is not above the G fit beyond rounding
    (the duplicated G fit is a G + 1 candidate with exactly the G likelihood)."""
    gain = alt_log_likelihood - null_log_likelihood
    return 2.0 * gain if gain > _SAME_LIKELIHOOD * (1 + abs(null_log_likelihood)) else 0.0


def _observed_fits(X, template, max_components, split_starts):
    """The fits with 1 .. max_components components (see bootstrap_lrt) and the
    messages of the starts that failed."""
    failures = []

    def attempt(what, fit):
        try:
            return fit()
        except _FIT_ERRORS as error:
            failures.append(f"G={what}: {describe_error(error)}")
            return None

    models = {1: clone(template).set_params(n_components=1).fit(X)}
    for G in range(2, max_components + 1):
        usual = clone(template).set_params(n_components=G)
        candidates = [attempt(f"{G} usual start", lambda: usual.fit(X))]
        previous = models[G - 1]
        for k, start in enumerate(_split_starts(previous) if split_starts else ()):
            candidates.append(attempt(f"{G} split of component {k}",
                                      lambda s=start: _fit_from(template, s, X)[0]))
        largest = int(np.argmax(previous.weights_))
        duplicate = _insert_copy(_start_of(previous), template._structure.layout,
                                 largest, np.zeros(previous.means_.shape[1]))
        candidates.append(attempt(f"{G} duplicated component {largest}",
                                  lambda: _fit_from(template, duplicate, X)[0]))
        fitted = [m for m in candidates if m is not None]
        if not fitted:
            raise RuntimeError(f"Every start of the {G}-component fit failed: "
                               f"{failures[-1]}")
        # the first of equal optima, as GaussianMixtureEM keeps its first start
        models[G] = max(fitted, key=lambda m: m.log_likelihood_)
    return models, failures


@dataclass(frozen=True)
class _LRTJob:
    """What every replicate of one test needs."""

    template: GaussianMixtureEM
    null: tuple  # the observed G fit's (weights, means, precisions)
    alt: tuple  # the observed G + 1 fit's
    n_samples: int
    split_starts: bool


def _lrt_replicate(job: _LRTJob, index, seed):
    """One replicate of a test: data from the G fit, its G and G + 1 fits."""
    weights, means, precisions = job.null
    K, D = means.shape
    covariances = np.linalg.inv(job.template._structure.to_full(precisions, K, D))
    chol = np.linalg.cholesky(covariances)
    X = sample_mixture(weights, means, chol, job.n_samples, np.random.default_rng(seed))[0]
    try:
        null = _fit_from(job.template, job.null, X)[0]
    except _FIT_ERRORS as error:
        return {"error": describe_error(error)}
    alt_log_likelihood, failures = -np.inf, []
    for start in [job.alt, *(_split_starts(null) if job.split_starts else ())]:
        try:
            alt = _fit_from(job.template, start, X)[0]
        except _FIT_ERRORS as error:
            failures.append(error)
            continue
        alt_log_likelihood = max(alt_log_likelihood, alt.log_likelihood_)
    if not np.isfinite(alt_log_likelihood):
        # the duplicated point alone would give 0: a replicate without any G + 1 fit
        # has no statistic
        return {"error": f"every G + 1 start failed; the last: {describe_error(failures[-1])}"}
    alt_log_likelihood = max(alt_log_likelihood, null.log_likelihood_)  # the duplicate
    return {"lrts": _lrts(null.log_likelihood_, alt_log_likelihood),
            "log_likelihood_null": null.log_likelihood_,
            "log_likelihood_alt": alt_log_likelihood,
            "n_failed_starts": len(failures), "error": ""}


def _lrt_dataset(outcomes, tests, n_boot):
    """The LRT replicates' records as a Dataset with dims (G, replicate)."""
    shape = (len(tests), n_boot)
    floats = {name: np.full(shape, np.nan)
              for name in ("lrts", "log_likelihood_null", "log_likelihood_alt")}
    n_failed_starts = np.zeros(shape, dtype=int)
    errors = np.full(shape, "", dtype=object)
    for i, outcome in enumerate(outcomes):
        t, b = divmod(i, n_boot)
        errors[t, b] = outcome["error"]
        if outcome["error"]:
            continue
        for name, values in floats.items():
            values[t, b] = outcome[name]
        n_failed_starts[t, b] = outcome["n_failed_starts"]
    dims = ("G", "replicate")
    return xr.Dataset(
        {**{name: (dims, values) for name, values in floats.items()},
         "n_failed_starts": (dims, n_failed_starts), "error": (dims, errors)},
        coords={"G": tests, "replicate": np.arange(n_boot)})


# ---------------------------------------------------------------------- starts
def _start_of(model):
    """A fit's (weights, means, precisions) in its family's layout, as float arrays."""
    return tuple(np.asarray(p, dtype=np.float64)
                 for p in (model.weights_, model.means_, model.precisions_))


def _insert_copy(start, layout, k, shift):
    """The start with component k split in two: weight halved, means ``mean -+ shift``,
    the precision copied (a layout without a component axis is shared and kept)."""
    weights, means, precisions = start
    weights = np.insert(weights, k + 1, weights[k] / 2)
    weights[k] /= 2
    means = np.insert(means, k + 1, means[k] + shift, axis=0)
    means[k] -= shift
    if "component" in layout:
        axis = layout.index("component")
        precisions = np.insert(precisions, k + 1, np.take(precisions, k, axis=axis), axis=axis)
    return weights, means, precisions


def _split_starts(model):
    """G + 1-component starts from a G fit: each component split along its main axis,
    the two means one standard deviation either side."""
    K, D = model.means_.shape
    structure = model._structure
    covariances = structure.to_full(np.asarray(model.covariances_, dtype=np.float64), K, D)
    start = _start_of(model)
    starts = []
    for k in range(K):
        values, vectors = np.linalg.eigh(covariances[k])
        shift = np.sqrt(max(values[-1], 0.0)) * vectors[:, -1]
        starts.append(_insert_copy(start, structure.layout, k, shift))
    return starts


# ---------------------------------------------------------------------- fitting
def _fit_quietly(model, X, sample_weight=None):
    """``model.fit`` with its warnings recorded: (model, warning categories)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, sample_weight=sample_weight)
    names = tuple(sorted({w.category.__name__ for w in caught
                          if not issubclass(w.category, ConvergenceWarning)}))
    return model, names


def _fit_from(template, start, X, sample_weight=None):
    """EM from ``start`` = (weights, means, precisions) by a clone of ``template``."""
    weights, means, precisions = start
    model = clone(template).set_params(
        n_components=len(weights), weights_init=weights / weights.sum(), means_init=means,
        precisions_init=precisions, warm_start=False)
    return _fit_quietly(model, X, sample_weight)


def _reason(description):
    """The kind of a failure from its description (the error's type, or what failed)."""
    return str(description).split(":")[0].split(";")[0]


def _warn_about(n_total, n_failed, failures, n_unconverged, caught, max_iter):
    """One BootstrapWarning for failed, unconverged and warning replicates."""
    parts = []
    if n_failed:
        reasons = ", ".join(f"{name}: {count}" for name, count in failures.items())
        parts.append(f"{n_failed} of {n_total} replicates failed ({reasons}); the "
                     "statistics use the others, and each reason is in "
                     "replicates['error']")
    if n_unconverged:
        parts.append(f"{n_unconverged} replicates stopped at max_iter={max_iter} before "
                     "tol (replicates['converged']); raise max_iter")
    counts = Counter(name for text in caught if text for name in text.split("; "))
    if counts:
        parts.append("replicate fits warned (" + ", ".join(
            f"{name}: {count}" for name, count in counts.items())
            + "; replicates['warnings'])")
    if parts:
        warnings.warn("; ".join(parts) + ".", BootstrapWarning, stacklevel=3)


# --------------------------------------------------------------------- parallel
def _run_batch(replicate, jobs, items):
    """Run one task's replicates: [(position, outcome)]."""
    return [(position, replicate(jobs[job], index, seed))
            for position, (job, index, seed) in items]


def _workers(client):
    """Where the replicates' tasks run: a Dask client's workers (joblib's dask backend),
    or joblib's default (local processes, or the active ``joblib.parallel_config``)."""
    if client is None:
        return contextlib.nullcontext()
    import joblib

    return joblib.parallel_config(backend="dask", client=check_client(client))


def _map_batches(task, job, items, size, *, n_jobs, progressbar, description):
    """``task(job, [(position, item), ...])`` over batches of at most ``size`` items: in
    this process when one batch holds them all or one job is asked for (the progress
    bar then advances as fits finish), else one joblib task per batch."""
    from joblib import Parallel, delayed, effective_n_jobs

    positioned = list(enumerate(items))
    n_batches = -(-len(items) // size)
    outcomes = [None] * len(items)
    with _Progress(progressbar, len(items), description) as advance:
        if n_batches == 1 or effective_n_jobs(n_jobs) == 1:
            for start in range(0, len(items), size):
                for position, outcome in task(job, positioned[start:start + size], advance):
                    outcomes[position] = outcome
            return outcomes
        batches = np.array_split(np.arange(len(items)), max(n_batches,
                                                            effective_n_jobs(n_jobs)))
        tasks = (delayed(task)(job, [positioned[p] for p in batch]) for batch in batches)
        for done in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks):
            for position, outcome in done:
                outcomes[position] = outcome
            advance(len(done))
    return outcomes


def _map_replicates(replicate, jobs, items, *, n_jobs, progressbar, description):
    """``[replicate(jobs[j], b, seed) for (j, b, seed) in items]``, in order, run in
    batches by joblib (results arrive in any order; each is put in its place)."""
    from joblib import Parallel, delayed, effective_n_jobs

    n_workers = effective_n_jobs(n_jobs)
    n_tasks = min(len(items), max(_MIN_TASKS, _TASKS_PER_WORKER * n_workers))
    batches = np.array_split(np.arange(len(items)), n_tasks)
    tasks = (delayed(_run_batch)(replicate, {j: jobs[j] for j in {items[p][0] for p in batch}},
                                 [(int(p), items[p]) for p in batch])
             for batch in batches)
    outcomes = [None] * len(items)
    with _Progress(progressbar, len(items), description) as advance:
        for done in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks):
            for position, outcome in done:
                outcomes[position] = outcome
            advance(len(done))
    return outcomes


class _Progress:
    """A rich progress bar over the replicates (or nothing)."""

    def __init__(self, enabled, total, description):
        self.enabled, self.total, self.description = enabled, total, description

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                             MofNCompleteColumn(), TimeElapsedColumn(),
                             TimeRemainingColumn(), transient=True)
        self._bar.start()
        task = self._bar.add_task(self.description, total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self._bar.stop()
