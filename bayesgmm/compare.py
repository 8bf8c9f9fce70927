"""Model comparison: EM's BIC/AIC/ICL beside Bayesian LOO, WAIC and log evidence.

:func:`compare` fits every (number of components, covariance type) of a grid by
EM and, unless told otherwise, by NUTS started from that EM fit, and collects the
criteria in one tidy table (:class:`ModelComparison`). Failed fits are recorded
with their reason; they never abort the grid.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from ._gaussian import bayesian_covariance_names, get_covariance_structure
from ._validation import (check_choice, check_client, check_integer, check_number, check_seed,
                          describe_error, optional_sample_weight)
from .em import GaussianMixtureEM
from .model import as_array_and_names

__all__ = ["CRITERIA", "ModelComparison", "compare", "waic"]

#: The default grid's covariance types: every structure both engines fit.
COVARIANCE_TYPES = tuple(bayesian_covariance_names())
METHODS = ("em", "bayes")


@dataclass(frozen=True)
class Criterion:
    column: str
    label: str
    lower_is_better: bool
    se_column: str | None = None
    # whose fits it judges: "em", "bayes" (NUTS) or "evidence" (bridge sampling uses the
    # NUTS draws and is judged with them; SMC's own runs keep a fit set aside for its chains)
    method: str = "em"


#: The criteria of the table, in display order.
CRITERIA = {
    "bic": Criterion("bic", "BIC", True),
    "aic": Criterion("aic", "AIC", True),
    "icl": Criterion("icl", "ICL", True),
    "loo": Criterion("elpd_loo", "LOO", False, "elpd_loo_dse", "bayes"),
    "waic": Criterion("elpd_waic", "WAIC", False, method="bayes"),
    "evidence": Criterion("log_evidence", "log evidence", False, "log_evidence_se", "evidence"),
}


def waic(log_likelihood, sample_weight=None):
    """WAIC from a pointwise log-likelihood array ``(chain, draw, n)``.

    Returns ``(elpd_waic, se, p_waic, pointwise elpd)`` following Vehtari, Gelman
    and Gabry (2017): lppd minus the posterior variance of the log-likelihood.
    With integer ``sample_weight`` (the unweighted ``log p(x_n | draw)`` of a weighted
    fit) every row's term counts ``w_n`` times: the WAIC of the data with the rows
    repeated (the pointwise elpd stays one value per row).
    """
    from ._loo import check_loo_weights

    ll = np.asarray(log_likelihood, dtype=float)
    ll = ll.reshape(-1, ll.shape[-1])
    lppd = logsumexp(ll, axis=0) - np.log(ll.shape[0])
    p = ll.var(axis=0, ddof=1)
    pointwise = lppd - p
    if sample_weight is None:
        n = pointwise.size
        return float(pointwise.sum()), float(np.sqrt(n * pointwise.var())), float(p.sum()), \
            pointwise
    check_loo_weights(sample_weight)
    w = np.asarray(sample_weight, dtype=float)
    total = w.sum()
    mean = (w @ pointwise) / total
    spread = (w @ (pointwise - mean) ** 2) / total  # the variance of the repeated terms
    return float(w @ pointwise), float(np.sqrt(total * spread)), float(w @ p), pointwise


@dataclass
class ModelComparison:
    """The result of :func:`compare`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (n_components, covariance_type): EM's ``log_likelihood``,
        ``n_parameters``, ``bic``, ``aic``, ``icl`` (lower is better),
        ``bic_mclust``, ``icl_mclust`` (mclust's sign, higher is better) and
        ``em_converged``; the Bayesian ``elpd_loo`` ± ``elpd_loo_se``, ``p_loo``,
        ``n_pareto_k_high`` (PSIS terms with k > 0.7) and ``n_loo_refits`` (those
        recomputed exactly by refitting without the point, so that every term of
        ``elpd_loo`` is reliable), ``elpd_waic`` ± ``elpd_waic_se``, ``p_waic``,
        ``loo_weight`` (stacking), ``elpd_loo_diff`` (to the best model) ±
        ``elpd_loo_dse`` (the se of that difference, the one to judge it by),
        ``max_rhat`` and ``min_ess_bulk`` (over the weights, means and covariances),
        ``divergences``, ``set_aside`` (why the Bayesian fit is not ranked: chains
        that disagree or sit in different modes, an unreliable LOO, draws so
        repeated that PSIS-LOO cannot be computed (its columns are then NaN); empty
        when it is ranked) and, with evidence, ``log_evidence`` ± ``log_evidence_se``
        (its Monte Carlo standard error), ``evidence_method`` ("bridge" or "smc"),
        ``log_bayes_factor`` (log evidence minus the best model's) and
        ``posterior_probability`` (of each model, under ``model_prior``), both among
        the models the evidence may rank; a ``rank_<criterion>`` column per criterion
        (1 = best, among the models the criterion may rank); ``em_error`` and ``bayes_error``
        say why a fit failed (empty when it did not). ``table.attrs["sum_of_weights"]``:
        the ``n`` of the criteria (the number of rows, or the sum of ``sample_weight``).
    models : dict
        ``{(n_components, covariance_type): {"em": GaussianMixtureEM,
        "bayes": GaussianMixtureBayes, "loo": LooRefits}}`` for every fit that
        succeeded (``loo`` holds the pointwise LOO and its refits).

    EM criteria rank only EM fits that converged; Bayesian criteria only fits whose
    chains agree (R-hat <= 1.01, bulk ESS >= 400) and whose LOO is reliable.
    """

    table: pd.DataFrame
    models: dict = field(default_factory=dict)

    @property
    def criteria(self):
        """Names of the criteria with at least one value in the table."""
        return [name for name, c in CRITERIA.items()
                if c.column in self.table and self.table[c.column].notna().any()]

    def rankable(self, criterion):
        """Boolean Series: the rows ``criterion`` may rank.

        A row with a value, and for EM criteria an EM fit that converged
        (``em_converged``), for Bayesian ones a fit not set aside (``set_aside``
        empty: chains that agree and a reliable LOO).
        """
        c = CRITERIA[criterion]
        table = self.table
        ok = table[c.column].notna() if c.column in table else pd.Series(False, table.index)
        if c.method == "em" and "em_converged" in table:
            ok &= table["em_converged"].fillna(False).astype(bool)
        if c.method == "bayes" and "set_aside" in table:
            ok &= table["set_aside"].fillna("") == ""
        if c.method == "evidence" and "set_aside" in table and "evidence_method" in table:
            ok &= (table["evidence_method"] != "bridge") | (table["set_aside"].fillna("") == "")
        return ok

    def best(self, criterion=None):
        """The chosen ``(n_components, covariance_type)``.

        With ``criterion`` (one of :data:`CRITERIA`: "bic", "aic", "icl", "loo",
        "waic", "evidence") that model; without, a dict of every criterion's choice
        (criteria with no model they may rank are left out). Only models the
        criterion may rank are chosen (:meth:`rankable`): never one whose chains
        disagree or whose LOO is unreliable, nor an EM fit that did not converge;
        :meth:`set_aside` says why a model was left out.
        """
        if criterion is None:
            return {name: self.best(name) for name in self.criteria
                    if self.rankable(name).any()}
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {list(CRITERIA)}, got {criterion!r}.")
        c = CRITERIA[criterion]
        values = self.table[c.column] if c.column in self.table else pd.Series(dtype=float)
        if values.notna().sum() == 0:
            raise ValueError(f"no model has a value for {c.label}; was it computed "
                             "(methods, evidence=True) and did the fits succeed?")
        values = values[self.rankable(criterion)]
        if values.empty:
            raise ValueError(f"every model with a value for {c.label} was set aside: "
                             + "; ".join(self.set_aside(c.method)) + ".")
        row = self.table.loc[values.idxmin() if c.lower_is_better else values.idxmax()]
        return int(row["n_components"]), str(row["covariance_type"])

    def set_aside(self, method="bayes"):
        """``["K=4 full (<reason>)", ...]``: the models left out of ``method``'s criteria.

        ``method="bayes"``: fits whose chains disagree or whose LOO is unreliable
        (the ``set_aside`` column); ``"em"``: EM fits that did not converge.
        """
        table = self.table
        if method == "bayes":
            if "set_aside" not in table:
                return []
            rows = table[table["set_aside"].fillna("") != ""]
            return [f"K={k} {c} ({why})" for k, c, why in
                    zip(rows["n_components"], rows["covariance_type"], rows["set_aside"])]
        if "em_converged" not in table:
            return []
        rows = table[(table["em_converged"] == False) & table["bic"].notna()]  # noqa: E712
        return [f"K={k} {c} (EM did not converge)" for k, c in
                zip(rows["n_components"], rows["covariance_type"])]

    def agreement(self):
        """The choices of the criteria in words, the largest agreeing group first,
        then the models set aside and why."""
        groups = {}
        for name, choice in self.best().items():
            groups.setdefault(choice, []).append(CRITERIA[name].label)
        ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
        parts = []
        for i, ((k, cov), labels) in enumerate(ordered):
            who = _join(labels)
            model = f"{k} component{'s' if k != 1 else ''}, {cov}"
            if i == 0:
                verb = "all choose" if len(groups) == 1 and len(labels) > 2 else (
                    "both choose" if len(labels) == 2 else "chooses" if len(labels) == 1
                    else "choose")
                parts.append(f"{who} {verb} {model}")
            else:
                parts.append(f"{who} prefer{'s' if len(labels) == 1 else ''} {model}")
        text = "; ".join(parts) + "." if parts else "No criterion could rank a model."
        bridged = "evidence_method" in self.table and (
            self.table["evidence_method"] == "bridge").any()
        for method in ("bayes", "em"):
            names = [CRITERIA[n].label for n in self.criteria if CRITERIA[n].method == method
                     or (method == "bayes" and CRITERIA[n].method == "evidence" and bridged)]
            aside = self.set_aside(method)
            if aside and names:
                text += f" Set aside from {_join(names)}: " + "; ".join(aside) + "."
        return text

    def to_xarray(self):
        """The table as an xarray Dataset with dims ``n_components`` and ``covariance_type``."""
        ds = self.table.set_index(["n_components", "covariance_type"]).to_xarray()
        return ds.reindex(covariance_type=list(dict.fromkeys(self.table["covariance_type"])))

    def plot(self, criteria=None, *, figsize=None):
        """One panel per criterion, each drawn by :func:`bayesgmm.plots.plot_criterion`.

        ``criteria``: names from :data:`CRITERIA` (default: :attr:`criteria`, those with
        a value). Each panel has one line per covariance type, bars of ±1 se of the
        difference to the best model for LOO and ±1 Monte Carlo se for the log
        evidence, crosses for the models the criterion does not rank (set aside, or EM
        fits that did not converge) and the chosen model circled; the first panel has
        the legend. Returns the matplotlib Figure.
        """
        import matplotlib.pyplot as plt

        from .plots import plot_criterion

        names = list(criteria) if criteria is not None else self.criteria
        unknown = [n for n in names if n not in CRITERIA]
        if unknown:
            raise ValueError(f"unknown criteria {unknown}; valid: {list(CRITERIA)}.")
        if not names:
            raise ValueError(f"nothing to plot: give criteria from {list(CRITERIA)} that "
                             f"the table has values for ({self.criteria}).")
        n_cols = min(3, len(names))
        n_rows = -(-len(names) // n_cols)
        fig, axes = plt.subplots(n_rows, n_cols, squeeze=False,
                                 figsize=figsize or (4.2 * n_cols, 3.4 * n_rows))
        try:
            for i, (ax, name) in enumerate(zip(axes.flat, names)):
                plot_criterion(self.table, name, ax=ax, legend=i == 0)
        except ValueError:  # e.g. a criterion the table has no column for
            plt.close(fig)
            raise
        for ax in axes.flat[len(names):]:
            ax.set_visible(False)
        fig.tight_layout()
        return fig

    def __repr__(self):
        shown = ["n_components", "covariance_type"] + [
            CRITERIA[n].column for n in self.criteria]
        with pd.option_context("display.width", 120, "display.precision", 2):
            table = self.table[shown].to_string(index=False)
        return f"ModelComparison\n{table}\n{self.agreement()}"


def compare(X, n_components=range(1, 7), covariance_types=COVARIANCE_TYPES, *,
            sample_weight=None, missing="marginalize", methods=METHODS, priors=None,
            evidence=False, evidence_method="bridge", model_prior=None, n_init=5, draws=1000,
            tune=1000, chains=4, nuts_sampler="auto",
            smc_draws=1000, smc_chains=4, max_loo_refits=10, random_state=None,
            progressbar=True, client=None):
    """Fit a grid of mixtures by EM and NUTS and compare them by every criterion.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Numpy array, pandas DataFrame or xarray DataArray.
    n_components : iterable of int
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights of the rows, given to every fit (checked first, with
        EM's messages). EM maximises the weighted log-likelihood and its criteria
        count ``n`` as the sum of the weights (``BIC = -2 sum_n w_n log p(x_n) + p
        log(sum_n w_n)``, as :meth:`GaussianMixtureEM.bic` with the weights): for
        integer weights every EM column equals that of the data with each row
        repeated ``w_n`` times. The Bayesian fits use the power likelihood
        (:meth:`GaussianMixtureBayes.fit`); their LOO and WAIC count every row's term
        ``w_n`` times (the repeated data's, a refit leaving out one copy: see
        :mod:`bayesgmm._loo`), which needs integer weights: with other weights the
        Bayesian methods are refused before any fit (use ``methods=("em",)``).
    missing : {"marginalize", "raise"}
        What NaN in ``X`` means, for every fit (``GaussianMixtureEM(missing=...)``,
        ``GaussianMixtureBayes(missing=...)``): by default a missing entry, each row's
        likelihood the marginal density of its observed features, so that BIC, AIC,
        ICL, LOO and WAIC are all criteria of the observed-data likelihood (LOO leaves
        out a whole row, its observed entries); ``"raise"`` refuses NaN.
    covariance_types : iterable of str
        Any of mclust's covariance families (EII, VII, EEI, VEI, EVI, VVI, EEE, VEE, EVE,
        VVE, EEV, VEV, EVV, VVV; E and V for one feature) or scikit-learn's names of four
        of them (full = VVV, tied = EEE, diag = VVI, spherical = VII); the table calls a
        family by its name in ``bayesgmm.COVARIANCE_STRUCTURES`` (``full``, not ``VVV``).
        EM fits every family; the Bayesian model only those of
        ``bayesgmm._gaussian.bayesian_covariance_names()`` (full, tied, diag, spherical),
        and refuses the others with the reason in ``bayes_error``: compare all fourteen
        with ``methods=("em",)``. By default the families both engines fit.
    methods : tuple of {"em", "bayes"}
        ``("em",)`` gives the classical criteria alone, without PyMC.
    priors : GMMPriors, ConjugatePrior, dict or None
        Priors of every Bayesian fit (None: the data-scaled defaults).
    evidence : bool
        Also estimate each Bayesian model's log marginal likelihood
        (:meth:`GaussianMixtureBayes.log_evidence`), its Bayes factor against the
        best model and the models' posterior probabilities.
    evidence_method : {"bridge", "smc"}
        "bridge" (default): bridge sampling from the NUTS draws, precise to a few
        hundredths of a nat with the default draws, and ranked only for fits whose
        chains agree (it rests on them). "smc": Sequential Monte Carlo
        (``smc_draws`` particles, ``smc_chains`` runs), a new sampling run per model.
    model_prior : dict or None
        Prior probability of each model, ``{(n_components, covariance_type): p}``
        (normalised over the models ranked); None: uniform.
    n_init : int
        EM restarts per model.
    draws, tune, chains, nuts_sampler
        NUTS settings of each Bayesian fit (see :meth:`GaussianMixtureBayes.fit`).
        A fit is ranked by the Bayesian criteria only if its chains agree (R-hat <=
        1.01 and bulk ESS >= 400 for the weights, means and covariances); one whose
        chains sit in different modes is reported as multimodal. Both land in the
        ``set_aside`` column with the reason.
    max_loo_refits : int
        PSIS-LOO terms with Pareto k > 0.7 are recomputed exactly, by NUTS on the
        data without the point (:func:`bayesgmm._loo.loo_with_refits`), for at
        most this many points per model; a model with more is set aside.
    random_state : int or None
        Seeds every fit (each model gets its own stream).
    progressbar : bool
        Show a progress bar over the grid.
    client : dask.distributed.Client, optional
        Fit the grid's cells in parallel, each (K, family) one task of this client: a
        ``LocalCluster``'s processes (``Client()``) or any cluster's scheduler
        (``Client("tcp://host:8786")``, dask-jobqueue, Kubernetes). The data are sent to
        every worker once; each task fits the cell's EM and Bayesian models from the
        cell's own seed, so the table is the sequential one whatever the number of
        workers (EM columns exactly; NUTS draws equal where the workers' compiled
        functions round as the client's). Rows arrive as tasks finish (the progress bar
        counts them) and are put in the grid's order; a task whose worker is lost is
        retried, and one that still fails becomes a row with its error.

    Returns
    -------
    ModelComparison
    """
    array = as_array_and_names(X, missing=missing)[0]  # checks X; the fits get X as given
    n_features = array.shape[1]
    weights = optional_sample_weight(sample_weight, array.shape[0])

    grid = _grid(n_components, covariance_types)
    methods = tuple(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"methods must be a non-empty subset of {list(METHODS)}, got "
                         f"{list(methods)}.")
    if evidence and "bayes" not in methods:
        raise ValueError("evidence=True needs the Bayesian fits: include 'bayes' in methods.")
    if "bayes" in methods:
        from ._loo import check_loo_weights

        check_loo_weights(weights)
    # every setting is checked here, before the first fit: a bad one is not an error row
    check_integer("n_init", n_init, minimum=1)
    check_seed("random_state", random_state)
    if "bayes" in methods:
        for name, value, minimum in (("draws", draws, 1), ("tune", tune, 0),
                                     ("chains", chains, 1), ("max_loo_refits", max_loo_refits, 0)):
            check_integer(name, value, minimum=minimum)
    if evidence:
        from .bayes import EVIDENCE_METHODS

        check_choice("evidence_method", evidence_method, EVIDENCE_METHODS)
        if evidence_method == "smc":
            check_integer("smc_draws", smc_draws, minimum=1)
            check_integer("smc_chains", smc_chains, minimum=2)
        else:
            from ._bridge import check_enough_draws

            for k, cov in grid:
                check_enough_draws(_n_parameters(cov, k, n_features), draws, chains)
        model_prior = _model_prior(model_prior, grid)
    if "bayes" in methods:
        from .bayes import GaussianMixtureBayes, resolve_nuts_sampler
        from .priors import as_priors

        nuts_sampler = resolve_nuts_sampler(nuts_sampler)
        as_priors(priors)  # bad priors fail here, before any fit

    seeds = np.random.SeedSequence(random_state).generate_state(len(grid))
    nuts = {"draws": draws, "tune": tune, "chains": chains, "nuts_sampler": nuts_sampler,
            "progressbar": False}
    evidence_settings = {"method": evidence_method} if evidence_method == "bridge" else {
        "method": "smc", "draws": smc_draws, "chains": smc_chains}
    cell = _Cell(n_features, methods, missing, n_init, priors, nuts, max_loo_refits,
                 evidence_settings if evidence else None)
    with _progress(progressbar, len(grid)) as advance:
        if client is None:
            cells = [cell(k, cov, int(seed), X, weights, advance)
                     for (k, cov), seed in zip(grid, seeds)]
        else:
            cells = _distributed(client, cell, grid, seeds, X, weights, advance)
    rows = [row for row, _ in cells]
    models = {(row["n_components"], row["covariance_type"]): fits for row, fits in cells}
    bayes_fits = {key: fits["loo"].loo for (key, fits), row in zip(models.items(), rows)
                  if "loo" in fits and not row["set_aside"]}

    table = pd.DataFrame(rows)
    table.attrs["sum_of_weights"] = float(len(array) if weights is None else weights.sum())
    for column in ("em_error", "bayes_error", "set_aside") if "bayes" in methods \
            else ("em_error",):
        table[column] = table[column].fillna("") if column in table else ""
    if bayes_fits:
        for column, values in _loo_comparison(bayes_fits, table).items():
            table[column] = values
    elif "bayes" in methods:  # no model to rank: the columns still exist
        for column in ("loo_weight", "elpd_loo_diff", "elpd_loo_dse"):
            table[column] = np.nan
    result = ModelComparison(table, models)
    if evidence:
        _evidence_comparison(result, model_prior)
    for name, c in CRITERIA.items():
        if c.column in table and table[c.column].notna().any():
            ranked = table[c.column].where(result.rankable(name))
            table[f"rank_{name}"] = ranked.rank(
                ascending=c.lower_is_better, method="min").astype("Int64")
    return result


def _grid(n_components, covariance_types):
    if isinstance(n_components, (int, np.integer)):
        n_components = [n_components]
    if isinstance(covariance_types, str):
        covariance_types = [covariance_types]
    ks = list(n_components)
    if not ks:
        raise ValueError("n_components is empty; give integers >= 1.")
    for k in ks:
        check_integer("n_components", k, minimum=1)
    ks = [int(k) for k in ks]
    covs = [get_covariance_structure(c).name for c in covariance_types]
    if not covs:
        raise ValueError("covariance_types is empty; give at least one of "
                         f"{list(COVARIANCE_TYPES)}.")
    return list(itertools.product(ks, dict.fromkeys(covs)))


def _n_parameters(cov, k, n_features):
    return int(get_covariance_structure(cov).n_parameters(k, n_features))


@dataclass(frozen=True)
class _Cell:
    """One cell of the grid, (K, family): its EM fit, Bayesian fit and criteria, as a row
    and the fitted models. A plain callable of picklable settings, so that a Dask worker
    runs it as the sequential loop does, from the same seed."""

    n_features: int
    methods: tuple
    missing: str
    n_init: int
    priors: object
    nuts: dict
    max_loo_refits: int
    evidence: dict | None  # the evidence method's settings, None for no evidence

    def __call__(self, k, cov, seed, X, weights, advance=None):
        from .bayes import GaussianMixtureBayes

        advance = advance or (lambda message: None)
        row = {"n_components": k, "covariance_type": cov,
               "n_parameters": _n_parameters(cov, k, self.n_features)}
        em = _try(row, "em_error", GaussianMixtureEM(
            k, covariance_type=cov, n_init=self.n_init, tol=1e-6, max_iter=1000,
            missing=self.missing, random_state=seed).fit, X, sample_weight=weights)
        fits = {} if em is None else {"em": em}
        if em is not None:
            row.update(_em_criteria(em, X, weights))
        if "bayes" in self.methods:
            advance(f"K={k}, {cov}: NUTS")
            bayes = GaussianMixtureBayes(k, covariance_type=cov, priors=self.priors,
                                         missing=self.missing, random_state=seed)
            if _try(row, "bayes_error", bayes.fit, X, sample_weight=weights, em=em,
                    **self.nuts) is not None:
                fits["bayes"] = bayes
                advance(f"K={k}, {cov}: LOO")
                criteria = _try(row, "bayes_error", _bayes_criteria, bayes,
                                self.max_loo_refits, seed)
                if criteria is not None:
                    fits["loo"] = criteria.pop("loo")
                    row.update(criteria)
                if self.evidence is not None:
                    advance(f"K={k}, {cov}: {self.evidence['method']} evidence")
                    found = _try(row, "bayes_error", bayes.log_evidence, random_state=seed,
                                 **self.evidence)
                    if found is not None:
                        row["log_evidence"], row["log_evidence_se"] = \
                            found["log_evidence"], found["se"]
                        row["evidence_method"] = self.evidence["method"]
        advance(None)
        return row, fits


def _distributed(client, cell, grid, seeds, X, weights, advance):
    """Every cell as a task of ``client`` (:func:`bayesgmm._tasks.on_client`): the rows in
    the grid's order; the data go to every worker once; a task that fails even when
    retried is a row with its error."""
    from ._tasks import on_client

    check_client(client)
    data = client.scatter([X, weights], broadcast=True)

    def failed(i, message):
        k, cov = grid[i]
        row = {"n_components": k, "covariance_type": cov,
               "n_parameters": _n_parameters(cov, k, cell.n_features), "em_error": message}
        if "bayes" in cell.methods:
            row["bayes_error"] = row["set_aside"] = message
        return row, {}

    return on_client(client, cell, [(k, cov, int(seed), *data) for (k, cov), seed
                                    in zip(grid, seeds)], name="cell", failed=failed,
                     advance=advance)


def _try(row, column, fit, *args, **kwargs):
    """Run ``fit``; on failure record the reason in ``row[column]`` and return None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fits of a grid are judged by the table
            return fit(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - a failed fit is a row, not an abort
        row[column] = describe_error(error)
        return None


def _em_criteria(em, X, weights=None):
    bic, icl = em.bic(X, sample_weight=weights), em.icl(X, sample_weight=weights)
    return {"log_likelihood": em.log_likelihood_, "bic": bic,
            "aic": em.aic(X, sample_weight=weights), "icl": icl,
            "bic_mclust": -bic, "icl_mclust": -icl, "em_converged": bool(em.converged_)}


def _bayes_criteria(bayes, max_loo_refits, seed):
    """LOO (with exact refits where Pareto k is high), WAIC, and whether the chains agree.

    Refits are spent only on fits whose chains agree: a fit set aside for its chains
    keeps its plain PSIS-LOO, for the record.
    """
    from ._chains import chain_agreement
    from ._loo import loo_with_refits

    chains = chain_agreement(bayes)
    refits = loo_with_refits(bayes, max_refits=max_loo_refits if not chains["reason"] else 0,
                             random_state=seed)
    result = refits.loo
    elpd_loo, elpd_loo_se, p_loo = (np.nan,) * 3 if result is None else (
        float(result.elpd), float(result.se), float(result.p))
    elpd_waic, se_waic, p_waic, _ = waic(bayes.idata_["log_likelihood"]["obs"].values,
                                         getattr(bayes, "sample_weight_", None))
    stats = bayes.idata_["sample_stats"]
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    reasons = [chains["reason"]] if chains["reason"] else []
    if refits.unreliable and not reasons:
        reasons.append(f"LOO unreliable: {refits.unreliable}")
    return {
        "elpd_loo": elpd_loo, "elpd_loo_se": elpd_loo_se, "p_loo": p_loo,
        "n_pareto_k_high": refits.n_pareto_k_high, "n_loo_refits": len(refits.refitted),
        "elpd_waic": elpd_waic, "elpd_waic_se": se_waic, "p_waic": p_waic,
        "max_rhat": chains["max_rhat"], "min_ess_bulk": chains["min_ess_bulk"],
        "divergences": divergences, "set_aside": "; ".join(reasons), "loo": refits,
    }


def _loo_comparison(fits, table):
    """Stacking weights, and elpd_loo minus the best model's with the se of that difference,
    among the ranked models (``fits``: their corrected pointwise LOO)."""
    from arviz_stats import compare as az_compare

    keys = list(zip(table["n_components"], table["covariance_type"]))
    if len(fits) == 1:  # nothing to compare with: all the weight, no difference
        out = {column: np.full(len(keys), np.nan)
               for column in ("loo_weight", "elpd_loo_diff", "elpd_loo_dse")}
        at = keys.index(next(iter(fits)))
        out["loo_weight"][at], out["elpd_loo_diff"][at], out["elpd_loo_dse"][at] = 1, 0, 0
        return out
    labels = {f"K={k} {cov}": (k, cov) for k, cov in fits}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = az_compare({name: fits[key] for name, key in labels.items()},
                            round_to="none")
    result.index = [labels[name] for name in result.index]
    return {column: result[source].reindex(keys).to_numpy(dtype=float)
            for column, source in (("loo_weight", "weight"), ("elpd_loo_diff", "elpd_diff"),
                                   ("elpd_loo_dse", "dse"))}


def _model_prior(model_prior, grid):
    """``{(k, cov): p}`` with every model of the grid, checked; None is uniform."""
    if model_prior is None:
        return {key: 1.0 for key in grid}
    if not isinstance(model_prior, dict):
        raise ValueError("model_prior must be a dict {(n_components, covariance_type): "
                         f"probability}} or None, got {type(model_prior).__name__}.")
    keyed = {(int(k), get_covariance_structure(c).name): p for (k, c), p in model_prior.items()}
    missing = [key for key in grid if key not in keyed]
    if missing:
        raise ValueError(f"model_prior has no probability for {missing}; give every model "
                         "of the grid one (they are normalised over the models ranked).")
    for key, p in keyed.items():
        check_number(f"model_prior[{key}]", p, low=0, low_open=True)
    return {key: float(keyed[key]) for key in grid}


def _evidence_comparison(result, model_prior):
    """Bayes factors against the best model and posterior model probabilities, among
    the models the evidence may rank; a warning when the best is not decided."""
    from ._bridge import EvidenceWarning

    table = result.table
    table["evidence_method"] = table.get("evidence_method", pd.Series(
        np.nan, table.index, dtype=object))
    for column in ("log_evidence", "log_evidence_se"):
        if column not in table:
            table[column] = np.nan
    ranked = result.rankable("evidence")
    table["log_bayes_factor"] = np.nan
    table["posterior_probability"] = np.nan
    if not ranked.any():
        return
    log_z = table.loc[ranked, "log_evidence"]
    log_prior = np.log([model_prior[key] for key in zip(
        table.loc[ranked, "n_components"], table.loc[ranked, "covariance_type"])])
    table.loc[ranked, "log_bayes_factor"] = log_z - log_z.max()
    log_post = log_z + log_prior
    table.loc[ranked, "posterior_probability"] = np.exp(log_post - logsumexp(log_post))
    if ranked.sum() > 1:
        order = log_z.sort_values(ascending=False).index
        first, second = order[0], order[1]
        gap = table.loc[first, "log_evidence"] - table.loc[second, "log_evidence"]
        se = np.hypot(table.loc[first, "log_evidence_se"], table.loc[second, "log_evidence_se"])
        if not gap > 2 * se:
            names = [f"K={table.loc[i, 'n_components']} {table.loc[i, 'covariance_type']}"
                     for i in (first, second)]
            warnings.warn(
                f"the log evidence cannot decide between {names[0]} and {names[1]}: they "
                f"differ by {gap:.3f} nats, within 2 Monte Carlo standard errors "
                f"({2 * se:.3f}); sample more draws to decide.",
                EvidenceWarning, stacklevel=3)


def _join(labels):
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


class _progress:
    """A rich progress bar over the grid (or nothing)."""

    def __init__(self, enabled, total):
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if not self.enabled:
            return lambda description: None
        from rich.progress import Progress

        self._bar = Progress(transient=True)
        self._bar.start()
        task = self._bar.add_task("model grid", total=self.total)

        def advance(description):
            if description is None:
                self._bar.advance(task)
            else:
                self._bar.update(task, description=description)

        return advance

    def __exit__(self, *exc):
        if self.enabled:
            self._bar.stop()
