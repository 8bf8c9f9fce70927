"""The inference back ends of :class:`~bayesgmm.GaussianMixtureBayes`: NUTS, MAP, ADVI.

Every back end has one signature and one result::

    backend(model, starts, settings) -> Inference

``model`` is the PyMC model (:func:`bayesgmm.model.build_model_from_spec`), ``starts``
the chains' starting points (one dict of free-variable values in the constrained space
per chain, :func:`bayesgmm._start._start_points`; ``None`` for PyMC's initial point) and
``settings`` the fit's :class:`Settings` (each back end reads the fields it needs). The
:class:`Inference` holds the ``posterior`` as draws with dims (chain, draw, ...) and the
labelled variables :data:`POSTERIOR_VARS` (a mode is one chain of one draw), the
``sample_stats`` (NUTS; ``None`` otherwise) and ``attrs``, what the fit records about
the run (NUTS: the ``target_accept`` used and the ``retry`` record).

:data:`BACKENDS` maps ``fit(method=...)`` to the back ends; :data:`METHODS` is its keys.
``GaussianMixtureBayes.fit`` looks the method up, runs it and assembles the result
(relabelling, log-likelihood, configuration): a new back end is one function and one
entry here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from sklearn.exceptions import ConvergenceWarning

from ._validation import check_choice
from .diagnostics import _n_divergent

__all__ = ["BACKENDS", "METHODS", "Inference", "Settings", "MAPConvergenceWarning",
           "resolve_nuts_sampler", "posterior_mode"]

NUTS_SAMPLERS = ("auto", "pymc", "nutpie")
#: A NUTS fit with more than this share of its draws divergent is sampled once more,
#: with the step size adapted to ``RETRY_TARGET_ACCEPT`` (recorded in ``retry_``).
DIVERGENT_SHARE_MAX = 0.01
RETRY_TARGET_ACCEPT = 0.99
#: The labelled variables kept in the posterior (others are internal to the model).
POSTERIOR_VARS = ("weights", "means", "sigmas", "variances", "correlations", "covariances")
_PACKAGE_DIR = os.path.dirname(__file__) + os.sep  # warnings point past these frames


class MAPConvergenceWarning(ConvergenceWarning):
    """The MAP optimiser stopped without finding a mode (the point returned is not one)."""


@dataclass(frozen=True)
class Settings:
    """The arguments of ``fit`` a back end may read (checked by ``fit``)."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    nuts_sampler: str = "pymc"  # resolved: "pymc" or "nutpie"
    target_accept: float = 0.95
    advi_steps: int = 20000
    progressbar: bool = False
    seed: int = 0  # of the sampler (NUTS, ADVI)


@dataclass(frozen=True)
class Inference:
    """What every back end returns."""

    #: Draws with dims (chain, draw, component, feature, feature2), the labelled
    #: variables of :data:`POSTERIOR_VARS` the model has.
    posterior: xr.Dataset
    #: The sampler's statistics per draw (NUTS), else None.
    sample_stats: xr.Dataset | None = None
    #: What the fit records about the run (NUTS: ``target_accept``, ``retry``).
    attrs: dict = field(default_factory=dict)


def resolve_nuts_sampler(nuts_sampler):
    """The NUTS implementation ``nuts_sampler`` names: ``"auto"`` is nutpie when it is
    installed (``make`` installs it), else PyMC's.

    nutpie is preferred for two measured reasons (``benchmarks/README.md``): its NUTS
    runs in compiled code, so a fit's time is mostly compiling the model, and on small
    data its mass-matrix adaptation (from gradients as well as draws) removed the
    divergences PyMC's windowed adaptation left (40 of 40 fits without one, against
    36 of 40 with PyMC's, on 60-point full-covariance data).
    """
    import importlib.util

    check_choice("nuts_sampler", nuts_sampler, NUTS_SAMPLERS)
    installed = importlib.util.find_spec("nutpie") is not None
    if nuts_sampler == "auto":
        return "nutpie" if installed else "pymc"
    if nuts_sampler == "nutpie" and not installed:
        raise ValueError("nuts_sampler='nutpie' needs the nutpie package: pip install nutpie "
                         "(or bayesgmm[nutpie]), or use nuts_sampler='pymc'.")
    return nuts_sampler


# ------------------------------------------------------------------ back ends
def run_nuts(model, starts, settings):
    """NUTS (PyMC's or nutpie's), sampled once more at :data:`RETRY_TARGET_ACCEPT` when
    more than :data:`DIVERGENT_SHARE_MAX` of the draws diverged."""
    posterior, sample_stats = _sample_nuts(model, starts, settings)
    divergences = _n_divergent(sample_stats)
    share = divergences / (sample_stats.sizes["chain"] * sample_stats.sizes["draw"])
    retry = None
    if share > DIVERGENT_SHARE_MAX and settings.target_accept < RETRY_TARGET_ACCEPT:
        # Small data: a chain reaching a near-empty component's region, whose scales
        # are the prior's, meets steps adapted to the occupied one. A smaller step
        # (higher acceptance target) samples both. Same seed, same starts.
        retry = {"target_accept": settings.target_accept, "divergences": divergences,
                 "share": share, "retried_with": RETRY_TARGET_ACCEPT}
        settings = dataclasses.replace(settings, target_accept=RETRY_TARGET_ACCEPT)
        posterior, sample_stats = _sample_nuts(model, starts, settings)
    return Inference(posterior, sample_stats,
                     {"target_accept": settings.target_accept, "retry": retry})


def run_map(model, starts, settings):
    """The posterior mode (:func:`posterior_mode`) from the first chain's start, as one
    chain of one draw; warns (:class:`MAPConvergenceWarning`) if it is not a mode."""
    return Inference(posterior_mode(model, starts[0] if starts is not None else None))


def run_advi(model, starts, settings):
    """Mean-field ADVI (``settings.advi_steps`` steps), ``settings.draws`` draws from the
    approximation (one chain)."""
    import pymc as pm

    start = starts[0] if starts is not None else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        approx = pm.fit(n=settings.advi_steps, method="advi", model=model, start=start,
                        random_seed=settings.seed, progressbar=settings.progressbar)
        idata = approx.sample(settings.draws, random_seed=settings.seed)
    return Inference(_posterior_vars(idata["posterior"].to_dataset()))


#: ``fit(method=...)``: the back end of each method (one signature, one result).
BACKENDS = {"nuts": run_nuts, "map": run_map, "advi": run_advi}
#: Accepted values of ``fit(method=...)``.
METHODS = tuple(BACKENDS)


# ----------------------------------------------------------------------- NUTS
def _sample_nuts(model, starts, settings):
    """One NUTS run: the posterior (with the deterministics) and the sample stats."""
    import pymc as pm

    chains, sampler = settings.chains, settings.nuts_sampler
    kwargs = {}
    if starts is not None:
        kwargs["initvals"] = starts[:chains] if sampler == "pymc" else starts[0]
    if sampler == "pymc":
        kwargs["init"] = "adapt_diag"
        kwargs["cores"] = min(chains, os.cpu_count() or 1)
    with warnings.catch_warnings(), _quiet_logger("pymc", settings.progressbar):
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # Only the free variables are traced: the deterministics (sigmas,
        # correlations, covariances) are computed once afterwards, so neither
        # sampler compiles a function for them (nutpie cannot cache its own).
        idata = pm.sample(
            draws=settings.draws, tune=settings.tune, chains=chains, model=model,
            nuts_sampler=sampler, target_accept=settings.target_accept,
            random_seed=settings.seed, progressbar=settings.progressbar,
            compute_convergence_checks=False,
            var_names=[rv.name for rv in model.free_RVs], **kwargs,
        )
    return _with_deterministics(model, idata["posterior"].to_dataset()), \
        idata["sample_stats"].to_dataset()


def _with_deterministics(model, posterior):
    """The posterior's free variables plus the model's deterministics, labelled.

    Evaluated for all draws at once by an interpreted graph (numpy calls): nothing
    to compile, and a few milliseconds for thousands of draws.
    """
    import pymc as pm
    from pytensor.compile.mode import Mode

    derived = pm.compute_deterministics(
        posterior, model=model, progressbar=False,
        compile_kwargs={"mode": Mode(linker="py", optimizer="fast_run")})
    return _posterior_vars(xr.merge([posterior, derived], compat="override",
                                    combine_attrs="override"))


def _posterior_vars(ds):
    keep = [v for v in POSTERIOR_VARS if v in ds]
    return ds[keep]


@contextlib.contextmanager
def _quiet_logger(name, keep):
    """Silence a library's INFO messages unless ``keep`` (e.g. with a progress bar)."""
    logger = logging.getLogger(name)
    level = logger.level
    if not keep:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


# ------------------------------------------------------------------------ MAP
def posterior_mode(model, start):
    """The posterior mode from ``start`` (:func:`_map_point`): labelled variables with
    dims (chain, draw, ...) of one chain of one draw, the optimiser's record in its
    attrs. Warns (:class:`MAPConvergenceWarning`, at the caller outside bayesgmm) when
    the optimiser gave up."""
    point = _map_point(model, start)
    _warn_if_map_failed(point.attrs)
    return point


def _warn_if_map_failed(attrs):
    """A MAP whose optimiser gave up is not a mode: say so, with what usually causes it."""
    log_posterior = float(attrs.get("log_posterior", np.nan))
    if attrs.get("optimizer_success", 1) and np.isfinite(log_posterior):
        return
    warnings.warn(
        f"The MAP optimisation failed (L-BFGS stopped after "
        f"{attrs.get('optimizer_iterations', '?')} iterations, log posterior "
        f"{log_posterior:.6g}): the point returned is not a posterior mode. This usually "
        "means a prior far narrower or wider than the data's scale (e.g. HalfNormal(1e-300)) "
        "or data on an extreme scale: use priors on the data's scale (the data-scaled "
        "defaults: leave them None) or rescale the data, or sample with method='nuts'.",
        MAPConvergenceWarning, skip_file_prefixes=(_PACKAGE_DIR,))


def map_log_density(model):
    """The log density whose maximum is the MAP: the model's, without the Jacobians of
    its transforms nor its change-of-variables potentials (``*_jacobian``)."""
    from .model import JACOBIAN_SUFFIX

    terms = [*model.basic_RVs, *[p for p in model.potentials
                                 if not p.name.endswith(JACOBIAN_SUFFIX)]]
    return model.logp(vars=terms, jacobian=False)


def _map_point(model, start):
    """Posterior mode: L-BFGS on the unconstrained parameters, from ``start``.

    The log density is taken without the transforms' Jacobian, so the mode is that
    of the posterior of the model's parameters (as ``pm.find_MAP``). One function
    returning the log density, its gradient and the labelled parameters is built
    and run as an interpreted graph (numpy calls, no C or numba code): it compiles
    in well under a second even on a fresh machine, and the few dozen evaluations
    from the EM start (thousands on a nearly singular covariance: see
    :func:`_restarted_lbfgs`) cost less than any compiler would take.
    """
    import pytensor
    from pytensor.compile.mode import Mode

    with pytensor.config.change_flags(mode=Mode(linker="py", optimizer="merge"), cxx=""):
        return _optimise(model, start)


def _optimise(model, start):
    import pytensor
    import pytensor.tensor as pt
    from pymc.initial_point import make_initial_point_fn
    from pymc.logprob.utils import ParameterValueError

    point = make_initial_point_fn(model=model, overrides=start or {}, jitter_rvs=set(),
                                  return_transformed=True)(0)
    value_vars = model.value_vars
    shapes = [np.shape(point[v.name]) for v in value_vars]
    bounds = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
    flat = pt.vector("flat", dtype="float64")
    replacements = {
        v: flat[bounds[i]:bounds[i + 1]].reshape(shapes[i]) for i, v in enumerate(value_vars)
    }
    names = [v for v in POSTERIOR_VARS if v in model.named_vars]
    outputs = model.replace_rvs_by_values([model[v] for v in names])
    logp, *outputs = pytensor.graph.replace.graph_replace(
        [map_log_density(model), *outputs], replacements, strict=False)
    function = pytensor.function([flat], [logp, pytensor.grad(logp, flat), *outputs])

    def negative(x):
        # A line search may step past what floating point can represent (a correlation
        # rounded to 1, an overflowing variance): infinitely bad, so it steps back.
        try:
            with np.errstate(all="ignore"):
                value, gradient, *_ = function(x)
        except (ParameterValueError, np.linalg.LinAlgError):
            return np.inf, np.zeros_like(x)
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            return np.inf, np.zeros_like(x)
        return -value, -gradient

    x0 = np.concatenate([np.ravel(point[v.name]) for v in value_vars])
    result = _restarted_lbfgs(negative, x0)
    _, _, *values = function(result.x)
    dims = model.named_vars_to_dims
    coords = {k: list(v) for k, v in model.coords.items() if k in ("component", "feature",
                                                                     "feature2")}
    data = {name: (("chain", "draw") + tuple(dims.get(name, ())), np.asarray(value)[None, None])
            for name, value in zip(names, values)}
    ds = xr.Dataset(data, coords={**coords, "chain": [0], "draw": [0]})
    ds.attrs.update({"optimizer_success": int(result.success), "optimizer_iterations": result.nit,
                     "log_posterior": float(-result.fun)})
    return ds


# scipy's defaults stop on a relative reduction of 2e-9 (several units of a log
# posterior of a thousand); the restarts below need each run to go to the end.
_LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-9, "maxiter": 20000, "maxcor": 30}


def _restarted_lbfgs(negative, x0, max_restarts=50, rtol=1e-10):
    """L-BFGS-B from ``x0``, restarted where it stopped until a restart gains nothing.

    On a narrow ridge (nearly collinear features: a correlation of 0.9999999, whose
    residual variance is 1e-7 of the marginal one) L-BFGS's curvature memory goes
    stale and it stops hundreds of log-posterior units below the mode; a fresh memory
    climbs on. A restart at a mode ends after an iteration or two, so a well-posed fit
    pays almost nothing. The best point is kept, with the iterations of all runs. It
    counts as converged if its run did or if a fresh run from it cannot improve it
    (L-BFGS's line search then fails at rounding level, which scipy calls abnormal).
    """
    from scipy import optimize

    def run(x):
        return optimize.minimize(negative, x, jac=True, method="L-BFGS-B",
                                 options=_LBFGS_OPTIONS)

    result = run(x0)
    iterations, stalled = result.nit, False
    for _ in range(max_restarts):
        again = run(result.x)
        iterations += again.nit
        gain = result.fun - again.fun
        if gain > 0:
            result = again
        stalled = not gain > rtol * max(1.0, abs(result.fun))
        if stalled:
            break
    result.nit, result.success = iterations, bool(result.success or stalled)
    return result
