#!/usr/bin/env python
"""Speed and sampling quality of bayesgmm's Bayesian mixture against the textbook PyMC model.

Run from the repository root::

    .venv/bin/python benchmarks/bayes_sampling.py                 # full benchmark (about 40 min)
    .venv/bin/python benchmarks/bayes_sampling.py --quick         # smoke run (a few minutes)
    .venv/bin/python benchmarks/bayes_sampling.py --n 500 --samplers nutpie --skip-cold
    .venv/bin/python benchmarks/bayes_sampling.py --json /tmp/bayes.json   # also keep raw numbers
    .venv/bin/python benchmarks/bayes_sampling.py --blas-threads 1 --skip-cold --skip-map

Data: a well-separated 3-component mixture (``TRUE_*`` below, extended to D > 2 by
``truth``) drawn by
``bayesgmm.datasets.simulate_mixture`` with ``random_state=SEED``, for each N.

Two formulations of the same Bayesian model are compared:

* ``bayesgmm``: ``GaussianMixtureBayes(3, random_state=0)`` (labels summed out
  by the fused mixture log-density Op with its analytic gradient; chains start
  near the EM solution; draws relabelled afterwards).
* ``graph`` (compilation and evaluation only): ``build_model(X, 3,
  likelihood="reference")``, the same model with bayesgmm's plain-graph likelihood
  (the EM engine's expanded density, differentiated by PyTensor).
* ``reference``: the tuned textbook PyMC model (:func:`build_reference`):
  Dirichlet(1) weights, first mean coordinate ordered, one LKJCholeskyCov(eta=2,
  HalfNormal(data sd)) per component, ``pm.Mixture`` of ``pm.MvNormal``, started at
  k-means centres / proportions / within-cluster covariances. Same data-scaled prior
  scales as bayesgmm's defaults (means Normal(data mean, data range)).

Every measurement runs in a fresh subprocess (one at a time), so that caches and
imports are controlled:

1. ``eval``: one log-density + gradient evaluation (µs) of
   ``model.logp_dlogp_function(ravel_inputs=True)`` at the k-means start point:
   loop length calibrated to >= 0.2 s, best of 7 loops, divided by the loop length.
   *compiled code alone*: the logp+dlogp graph PyMC's NUTS compiles (its
   ``ValueGradFunction``: the cost rewritten by ``rewrite_pregrad`` before it is
   differentiated, the gradients joined into one vector, compiled with the
   model's ``check_bounds``; until 2026-11-23 a plain ``pytensor.function`` of
   ``model.logp()`` and its gradients, which neither sampler runs), its compiled
   numba function called from a numba loop (as nutpie calls it), without
   PyTensor's and numba's per-call Python overhead (5-15 µs, the same for any model).
2. ``compile``: wall time of ``model.logp_dlogp_function(ravel_inputs=True)`` plus
   its first call (numba compiles lazily at the first call), model already built.
   *cold*: a subprocess with ``PYTENSOR_FLAGS=base_compiledir=<new>/pytensor,
   compiledir=<new>/pytensor/compiledir`` and ``NUMBA_CACHE_DIR=<new>/numba``, where
   ``<new>`` is a new empty temporary directory per formulation and N. bayesgmm's
   formulations compile with PyTensor's C compiler off, as its fits do
   (``bayesgmm._pytensor.without_c_compiler``); the reference with the defaults. (Setting only
   ``compiledir`` is not enough: PyTensor 3 keeps its numba cache in
   ``<base_compiledir>/numba``.) *warm*: a second fresh subprocess with the same,
   now populated, dirs. *repeat*: a second compile of a newly built model in the
   warm subprocess (in-memory caches populated).
3. ``MAP``: bayesgmm ``GaussianMixtureBayes(3, random_state=0).fit(X, method="map")``
   (includes EM with n_init=5, model build, the MAP search); reference: model build +
   k-means + ``pm.find_MAP`` from the k-means start. An unmeasured warm-up process
   first fills the on-disk caches; then the measured fresh process calls it twice:
   first call (warm disk cache) and second call (warm in-process). The stages of
   each call (EM, model build, find_MAP or bayesgmm's own MAP optimiser) are timed
   by wrapping those functions in place.
4. ``NUTS`` for each sampler (``pymc``, ``nutpie``): 4 chains x (1000 tune +
   1000 draws), target_accept 0.9, cores 2. First an unmeasured warm-up fit with
   tiny draws in its own process populates the on-disk caches; then the measured
   fit runs in a fresh process (warm disk cache, cold in-process caches), which is
   what a user re-running a script sees. Reported: whole-fit wall time; wall time of
   the ``pm.sample`` call (``pm.sample`` is wrapped in the worker; the wrapper adds
   ``discard_tuned_samples=False`` so that warm-up statistics are kept: the
   posterior and sample_stats groups are unchanged); for nutpie the time of
   ``nutpie.compile_pymc_model`` inside it (also wrapped); PyMC's
   ``posterior.attrs["sampling_time"]`` (pymc: the whole multiprocess phase, worker
   start-up included; nutpie: ``nutpie.sample`` only); for the pymc sampler the
   time the chains actually spent in NUTS steps (``perf_counter_diff`` summed over
   tune+draws and chains, divided by the 2 cores), the time before the first step,
   the first step of each chain (the chain's process loads the compiled function)
   and a least-squares fit of the other steps' times, ``overhead per draw + cost
   per leapfrog step x n_steps``; leapfrog steps over tune+draws and chains and core
   time per leapfrog step (nutpie: 2 x sampling_time / steps); min ESS-bulk
   (``arviz.ess``) over all elements of weights, means and sigmas; that ESS per
   second of ``sampling_time`` and per second of the whole fit; divergences (sum
   of ``sample_stats.divergences``, nutpie: ``diverging``); max R-hat
   (``arviz.rhat``) over the same elements; the stages of bayesgmm's fit outside
   ``pm.sample`` (EM, relabelling, pointwise log-likelihood); and labelling: each
   chain's posterior mean of ``means`` is matched to the true means by the best
   permutation: "same" when every chain gets the same permutation and lands within
   0.5 of the truth. bayesgmm's numbers are from the relabelled ``idata_``; its raw
   (pre-relabelling) R-hat is also given. The reference is reported as sampled
   (no relabelling).
5. BLAS warning: in every bayesgmm worker ``warnings.warn`` is wrapped (so a
   warning is seen even where a ``catch_warnings`` filter would hide it), and the
   worker's stderr is searched for "could not link to a BLAS".

``--blas-threads 1`` sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS
in every worker (by default the environment is left alone: OpenBLAS then starts one
thread per core in each of pm.sample's two forked chain processes).

Before each measured subprocess of a full run the script waits (polling every
30 s, at most 40 min) while ``pgrep -f em_vs_sklearn`` finds another benchmark.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

SEED = 20261122
K = 3
TRUE_WEIGHTS = [0.3, 0.3, 0.4]
TRUE_MEANS = [[-4.0, 0.0], [0.0, 4.0], [4.0, -1.0]]
TRUE_COVS = [
    [[1.0, 0.5], [0.5, 1.0]],
    [[1.5, -0.4], [-0.4, 0.8]],
    [[0.7, 0.0], [0.0, 1.2]],
]
TARGET_ACCEPT = 0.9
CORES = 2
COMPONENT_VARS = ("weights", "means", "sigmas")
BLAS_TEXT = "could not link to a BLAS"
RESULT_TAG = "@@RESULT@@ "
LABEL_TOL = 0.5  # a chain's mean of ``means`` farther than this from the truth: another mode


# --------------------------------------------------------------------------- data and models
def truth(d=2):
    """Weights, means and covariances of the simulated mixture in ``d`` >= 2 dimensions.

    The first two coordinates are ``TRUE_*``; further ones add separated means and
    unit-ish variances, so the components stay as distinct in every ``d``.
    """
    means = np.asarray(TRUE_MEANS, dtype=float)
    covs = np.asarray(TRUE_COVS, dtype=float)
    if d > 2:
        extra = np.array([[1.5, -1.5, 0.0]]).T * np.linspace(1.0, 0.5, d - 2)[None, :]
        means = np.hstack([means, extra])
        full = np.zeros((K, d, d))
        full[:, :2, :2] = covs
        full[:, 2:, 2:] = 0.8 * np.eye(d - 2)
        covs = full
    return np.asarray(TRUE_WEIGHTS), means, covs


def make_data(n, d=2):
    from bayesgmm.datasets import simulate_mixture

    X, _ = simulate_mixture(n, *truth(d), random_state=SEED)
    return X


def flop_estimate(n, d):
    """The issue's arithmetic estimate of one log-density + gradient: N K (D^2 + D) 10."""
    return n * K * (d * d + d) * 10


def kmeans_start(X):
    """Start values from k-means (components sorted by the first coordinate).

    Returns (reference_initvals, bayesgmm_initvals), both in the constrained space.
    """
    from sklearn.cluster import KMeans

    km = KMeans(K, n_init=10, random_state=0).fit(X)
    order = np.argsort(km.cluster_centers_[:, 0])
    centres = km.cluster_centers_[order]
    rank = np.empty(K, dtype=int)
    rank[order] = np.arange(K)
    labels = rank[km.labels_]
    weights = np.bincount(labels, minlength=K) / len(X)
    rows, cols = np.tril_indices(X.shape[1])
    covs = [np.cov(X[labels == k].T) + 1e-6 * np.eye(X.shape[1]) for k in range(K)]
    from bayesgmm.model import sds_and_corr_chol

    chols = np.linalg.cholesky(np.array(covs))
    sds, corr_chol = sds_and_corr_chol(np.array(covs))
    reference = {"weights": weights, "means_x0": centres[:, 0], "means_rest": centres[:, 1:],
                 **{f"chol_cov_{k}": chols[k][rows, cols] for k in range(K)}}
    bayesgmm = {"weights": weights, "means": centres, "sds": sds, "corr_chol": corr_chol}
    return reference, bayesgmm


def build_reference(X):
    """The tuned textbook PyMC mixture (same data-scaled priors as bayesgmm's defaults)."""
    import pymc as pm
    import pytensor.tensor as pt

    D = X.shape[1]
    center = X.mean(axis=0)
    spread = X.max(axis=0) - X.min(axis=0)
    sd = X.std(axis=0)
    coords = {"component": np.arange(K), "feature": [f"x{j}" for j in range(D)]}
    with pm.Model(coords=coords) as model:
        weights = pm.Dirichlet("weights", a=np.ones(K), dims="component")
        first = pm.Normal("means_x0", mu=center[0], sigma=spread[0], shape=(K,),
                          transform=pm.distributions.transforms.ordered)
        rest = pm.Normal("means_rest", mu=center[1:], sigma=spread[1:], shape=(K, D - 1))
        means = pm.Deterministic("means", pt.concatenate([first[:, None], rest], axis=1),
                                 dims=("component", "feature"))
        chols, sds = [], []
        for k in range(K):
            chol, _corr, stds = pm.LKJCholeskyCov(
                f"chol_cov_{k}", n=D, eta=2.0,
                sd_dist=pm.HalfNormal.dist(sigma=sd, shape=(D,)), compute_corr=True)
            chols.append(chol)
            sds.append(stds)
        pm.Deterministic("sigmas", pt.stack(sds), dims=("component", "feature"))
        pm.Mixture("obs", w=weights,
                   comp_dists=[pm.MvNormal.dist(mu=means[k], chol=chols[k]) for k in range(K)],
                   observed=X)
    return model


def build(impl, X):
    """``bayesgmm``: the fused likelihood; ``graph``: bayesgmm's reference formulation."""
    if impl == "reference":
        return build_reference(X)
    from bayesgmm import build_model

    return build_model(X, K, likelihood="reference" if impl == "graph" else "fused")


# --------------------------------------------------------------------------- diagnostics
def _as_dataset(obj):
    return obj.to_dataset() if hasattr(obj, "to_dataset") else obj


def component_diagnostics(posterior):
    """min ESS-bulk and max R-hat over every element of weights, means, sigmas."""
    import arviz as az

    ds = posterior[[v for v in COMPONENT_VARS if v in posterior]]
    ess = _as_dataset(az.ess(ds, method="bulk"))
    rhat = _as_dataset(az.rhat(ds))
    min_ess = min(float(np.nanmin(ess[v].values)) for v in ds.data_vars)
    max_rhat = max(float(np.nanmax(rhat[v].values)) for v in ds.data_vars)
    worst = {v: {"ess_bulk_min": float(np.nanmin(ess[v].values)),
                 "rhat_max": float(np.nanmax(rhat[v].values))} for v in ds.data_vars}
    return min_ess, max_rhat, worst


def labelling(posterior):
    """Per chain: best permutation of components onto the true means, and its distance."""
    means = posterior["means"].transpose("chain", "draw", "component", "feature").values
    truth_means = globals()["truth"](means.shape[-1])[1]
    chains = []
    for c in range(means.shape[0]):
        m = means[c].mean(axis=0)
        best = min(itertools.permutations(range(K)),
                   key=lambda p: np.linalg.norm(m[list(p)] - truth_means))
        dist = float(np.abs(m[list(best)] - truth_means).max())
        chains.append({"perm": list(best), "max_abs_error": dist})
    perms = {tuple(c["perm"]) for c in chains}
    far = [i for i, c in enumerate(chains) if c["max_abs_error"] > LABEL_TOL]
    if len(perms) == 1 and not far:
        verdict = "same"
    else:  # e.g. "differ 0|123; off 0": chain 0 labelled apart, and away from the truth
        parts = []
        if len(perms) > 1:
            groups = {}
            for i, c in enumerate(chains):
                groups.setdefault(tuple(c["perm"]), []).append(i)
            parts.append("differ " + "|".join("".join(map(str, g)) for g in groups.values()))
        if far:
            parts.append("off " + "".join(map(str, far)))
        verdict = "; ".join(parts)
    return verdict, chains


def divergence_count(sample_stats):
    for name in ("divergences", "diverging"):
        if name in sample_stats:
            return int(sample_stats[name].values.sum()), name
    return None, None


def total_leapfrog_steps(idata):
    """Leapfrog steps over tune + draws and all chains (gradient evaluations)."""
    total = 0
    for group in ("warmup_sample_stats", "sample_stats"):
        if group not in idata.children:
            continue
        stats = idata[group].to_dataset()
        name = next((v for v in ("n_steps", "tree_size") if v in stats), None)
        if name is None:
            return None
        total += float(stats[name].values.sum())
    return total


def chain_timing(idata, call_start, call_end, cores):
    """Where the pm.sample call spent its time, from per-step perf_counter stats (pymc)."""
    if "warmup_sample_stats" not in idata.children:
        return None
    warm = idata["warmup_sample_stats"].to_dataset()
    post = idata["sample_stats"].to_dataset()
    if "perf_counter_start" not in post:
        return None
    firsts, lasts, steps = [], [], []
    for c in range(post.sizes["chain"]):
        w_start = warm["perf_counter_start"].values[c]
        p_start = post["perf_counter_start"].values[c]
        p_diff = post["perf_counter_diff"].values[c]
        firsts.append(float(w_start[0]) if w_start.size else float(p_start[0]))
        lasts.append(float(p_start[-1] + p_diff[-1]))
        steps.append(float(warm["perf_counter_diff"].values[c].sum() + p_diff.sum()))
    # The first step of every chain includes loading/compiling the function in the chain's
    # process; the others: per-draw wall time = overhead + cost * leapfrog steps (least
    # squares over all later draws, tune and kept).
    first_step = [float(warm["perf_counter_diff"].values[c][0]) if warm.sizes["draw"]
                  else float(post["perf_counter_diff"].values[c][0])
                  for c in range(post.sizes["chain"])]
    name = next((v for v in ("n_steps", "tree_size") if v in post), None)
    fit = None
    if name is not None:
        steps_all = np.concatenate([warm[name].values, post[name].values], axis=1)[:, 1:]
        diff_all = np.concatenate([warm["perf_counter_diff"].values,
                                   post["perf_counter_diff"].values], axis=1)[:, 1:]
        steps_all, diff_all = steps_all.ravel(), diff_all.ravel()
        design = np.column_stack([np.ones_like(steps_all), steps_all])
        (overhead, per_step), *_ = np.linalg.lstsq(design, diff_all, rcond=None)
        fit = {"per_draw_overhead_ms": float(overhead) * 1e3,
               "per_leapfrog_us": float(per_step) * 1e6,
               "n_draws": int(steps_all.size)}
    return {
        "draw_time_fit": fit,
        "first_step_s": first_step,
        "first_step_mean_s": float(np.mean(first_step)),
        "chain_start_after_call_s": [f - call_start for f in firsts],
        "chain_end_after_call_s": [x - call_start for x in lasts],
        "chain_step_seconds": steps,
        "setup_before_first_step_s": min(firsts) - call_start,
        "stepping_span_s": max(lasts) - min(firsts),
        "after_last_step_s": call_end - max(lasts),
        "step_seconds_per_core": sum(steps) / cores,
    }


# --------------------------------------------------------------------------- worker side
class _BlasWatch:
    """Record the PyTensor BLAS warning even where a warnings filter would hide it."""

    def __init__(self):
        import warnings

        self.hits = []
        original = warnings.warn

        def warn(message, *args, **kwargs):
            if BLAS_TEXT in str(message):
                self.hits.append(str(message).splitlines()[0])
            if len(args) < 2:  # keep the caller's stacklevel pointing past this wrapper
                kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            return original(message, *args, **kwargs)

        warnings.warn = warn


def worker(spec):
    blas = _BlasWatch()
    import warnings

    warnings.simplefilter("always")
    out = {"spec": spec}
    t0 = time.perf_counter()
    task, impl, n, d = spec["task"], spec["impl"], spec["n"], spec.get("d", 2)
    try:
        import pymc as pm

        import bayesgmm  # noqa: F401

        out["import_s"] = time.perf_counter() - t0
        X = make_data(n, d)
        if task == "compile":
            _task_compile(out, impl, X)
        elif task == "paired_evals":
            _task_paired_evals(out, spec["impls"], X)
        elif task == "map":
            _task_map(out, impl, X, pm)
        elif task == "nuts":
            _task_nuts(out, spec, impl, X, pm)
        else:
            raise ValueError(task)
    except Exception as error:  # noqa: BLE001 - reported in the table, never fatal
        out["error"] = f"{type(error).__name__}: {error}"
        out["traceback"] = traceback.format_exc()
    out["blas_warning"] = blas.hits
    out["worker_total_s"] = time.perf_counter() - t0
    print(RESULT_TAG + json.dumps(out, default=float), flush=True)


class _Stages:
    """Wall time spent in named functions, installed by wrapping them in place."""

    def __init__(self):
        self.seconds = {}

    def wrap(self, owner, name, label):
        original = getattr(owner, name, None)
        if original is None:  # not in this version of bayesgmm
            return

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t

        setattr(owner, name, timed)

    def take(self):
        out, self.seconds = self.seconds, {}
        return out


def _stage_timers(pm):
    """Time the stages of a bayesgmm fit (EM, model build, find_MAP, relabelling, ...)."""
    import bayesgmm._inference as inference
    import bayesgmm.bayes as bb

    stages = _Stages()
    stages.wrap(bb, "_fit_em", "em")
    stages.wrap(bb, "build_model_from_spec", "build_model")
    stages.wrap(bb.GaussianMixtureBayes, "_relabel", "relabel")
    stages.wrap(bb.GaussianMixtureBayes, "_pointwise_log_likelihood", "log_likelihood")
    stages.wrap(pm, "find_MAP", "find_MAP")
    # bayesgmm's own MAP (replaces find_MAP), called by the map back end
    stages.wrap(inference, "_map_point", "map_optimiser")
    return stages


def _eval_point(impl, model, X):
    from pymc.blocking import DictToArrayBijection
    from pymc.initial_point import make_initial_point_fn

    ref_start, bg_start = kmeans_start(X)
    start = ref_start if impl == "reference" else bg_start
    point = make_initial_point_fn(model=model, overrides=start, jitter_rvs=set())(0)
    return DictToArrayBijection.map({v.name: point[v.name] for v in model.value_vars}).data


def _compile(model):
    t = time.perf_counter()
    f = model.logp_dlogp_function(ravel_inputs=True)
    f.set_extra_values({})
    return f, time.perf_counter() - t


def _best_time_us(f, *args):
    """Calibrated loop of at least 0.2 s, best of 7, per call (µs)."""
    calls = 1
    while True:
        t = time.perf_counter()
        for _ in range(calls):
            f(*args)
        if time.perf_counter() - t >= 0.2 or calls >= 2**20:
            break
        calls *= 2
    best = np.inf
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(calls):
            f(*args)
        best = min(best, time.perf_counter() - t)
    return best / calls * 1e6


def _logp_grad_function(model, x, variables=None):
    """The numba function of the log-density (of ``variables``, default all) and gradient
    that PyMC's NUTS compiles: ``ValueGradFunction``'s graph (the cost rewritten by
    ``rewrite_pregrad`` before differentiation, the gradients joined into one vector,
    compiled by ``pymc.pytensorf.compile`` with the model's ``check_bounds``), taking
    the value variables unraveled (as nutpie's compiled function does)."""
    from pymc.model.core import ValueGradFunction

    value_vars = model.value_vars
    point = model.initial_point()
    sizes = np.cumsum([point[v.name].size for v in value_vars])[:-1]
    args = [part.reshape(point[v.name].shape)
            for part, v in zip(np.split(x, sizes), value_vars)]
    with model:
        f = ValueGradFunction([model.logp(vars=variables)], value_vars, model=model,
                              ravel_inputs=False, mode="NUMBA", trust_input=True)
    return f._pytensor_function, args


def _likelihood_eval_us(model, x):
    """The likelihood term alone (with the transforms feeding it) and its gradient."""
    f, args = _logp_grad_function(model, x, model.observed_RVs)
    return _best_time_us(f, *args)


def _core_loop(model, x):
    """``(loop, jit_fn, values)``: ``loop(jit_fn, values, calls)`` runs logp+dlogp ``calls`` times.

    The compiled numba function of the graph (``vm.jit_fn``, every input, shared
    data included, as an argument) is called in a numba loop, as nutpie calls it:
    neither PyTensor's ``Function.__call__`` nor numba's argument checks (together
    5-15 µs per call, the same for every model) are counted.
    """
    import numba

    f, args = _logp_grad_function(model, x)
    storage = f.input_storage
    values = tuple(args) + tuple(storage[i].data for i in range(len(args), len(storage)))

    @numba.njit
    def loop(fn, values, calls):
        total = 0.0
        for _ in range(calls):
            total += fn(*values)[0][()]
        return total

    loop(f.vm.jit_fn, values, 1)
    return loop, f.vm.jit_fn, values


def _core_eval_us(model, x):
    """logp+dlogp of the whole model as the compiled code costs it, without Python."""
    calls = 1000
    return _best_time_us(*_core_loop(model, x), calls) / calls


def _task_paired_evals(out, impls, X, rounds=15, calls=1000):
    """Compiled-code logp+dlogp of several models, timed in alternating rounds.

    On a shared machine the speed drifts by 20-30% over minutes, so figures taken
    in separate processes give ratios that move as much. Here every round times
    each model once (``calls`` evaluations), one after the other; the ratio is
    taken round by round, and its median reported.
    """
    from bayesgmm._pytensor import without_c_compiler

    loops = {}
    for impl in impls:
        model = build(impl, X)
        with without_c_compiler():
            loops[impl] = _core_loop(model, _eval_point(impl, model, X))
    times = {impl: [] for impl in impls}
    for _ in range(rounds):
        for impl, (loop, fn, values) in loops.items():
            t = time.perf_counter()
            loop(fn, values, calls)
            times[impl].append((time.perf_counter() - t) / calls * 1e6)
    out["paired_us"] = times
    out["paired_median_us"] = {impl: float(np.median(t)) for impl, t in times.items()}
    out["paired_min_us"] = {impl: float(np.min(t)) for impl, t in times.items()}
    ratios = {impl: np.asarray(t) / np.asarray(times[impls[0]]) for impl, t in times.items()}
    out["paired_ratio_median"] = {impl: float(np.median(r)) for impl, r in ratios.items()}
    out["paired_ratio_range"] = {impl: [float(r.min()), float(r.max())]
                                 for impl, r in ratios.items()}


def _task_compile(out, impl, X):
    import contextlib

    from bayesgmm._pytensor import without_c_compiler

    t = time.perf_counter()
    model = build(impl, X)
    out["build_s"] = time.perf_counter() - t
    x = _eval_point(impl, model, X)
    # bayesgmm compiles with PyTensor's C compiler off (as its fits do); the
    # reference with PyTensor's defaults, as a user's script would
    with without_c_compiler() if impl != "reference" else contextlib.nullcontext():
        f, out["create_s"] = _compile(model)
        t = time.perf_counter()
        logp, _grad = f(x)
        out["first_call_s"] = time.perf_counter() - t
    out["compile_s"] = out["create_s"] + out["first_call_s"]
    out["logp_at_start"] = float(logp)
    out["n_params"] = int(x.size)
    out["eval_us"] = _best_time_us(f, x)  # one evaluation: calibrated loop, best of 7
    out["likelihood_eval_us"] = _likelihood_eval_us(model, x)
    out["core_eval_us"] = _core_eval_us(model, x)
    # second compile of a newly built model in the same process
    model2 = build(impl, X)
    f2, create2 = _compile(model2)
    t = time.perf_counter()
    f2(x)
    out["repeat_compile_s"] = create2 + time.perf_counter() - t


def _task_map(out, impl, X, pm):
    import warnings

    calls, stages_per_call = [], []
    stages = _stage_timers(pm)
    for _ in range(2):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            if impl == "bayesgmm":
                from bayesgmm import GaussianMixtureBayes

                g = GaussianMixtureBayes(K, random_state=0).fit(X, method="map",
                                                                progressbar=False)
                means = g.idata_["posterior"]["means"].values[0, 0]
            else:
                t_stage = time.perf_counter()
                model = build_reference(X)
                start, _ = kmeans_start(X)
                stages.seconds["build_model+kmeans"] = time.perf_counter() - t_stage
                point = pm.find_MAP(model=model, initvals=start, progressbar=False)
                means = np.asarray(point["means"])
        calls.append(time.perf_counter() - t)
        stages_per_call.append(stages.take())
        truth_means = truth(X.shape[1])[1]
        err = min(np.abs(means[list(p)] - truth_means).max()
                  for p in itertools.permutations(range(K)))
        out["map_max_abs_mean_error"] = float(err)
    out["map_first_s"], out["map_second_s"] = calls
    out["map_stages"] = stages_per_call


def _task_nuts(out, spec, impl, X, pm):
    import warnings

    sampler = spec["sampler"]
    draws, tune, chains = spec["draws"], spec["tune"], spec["chains"]
    captured = {}
    original = pm.sample

    def sample(*args, **kwargs):
        kwargs.setdefault("discard_tuned_samples", False)  # keep warm-up stats (timing)
        captured["start"] = time.perf_counter()
        result = original(*args, **kwargs)
        captured["end"] = time.perf_counter()
        captured["idata"] = result
        captured["kwargs"] = {k: v for k, v in kwargs.items() if k != "initvals" and k != "model"}
        return result

    pm.sample = sample
    if sampler == "nutpie":  # time nutpie's own compilation inside pm.sample
        import nutpie

        original_compile = nutpie.compile_pymc_model

        def compile_pymc_model(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original_compile(*args, **kwargs)
            finally:
                captured["nutpie_compile_s"] = time.perf_counter() - t

        nutpie.compile_pymc_model = compile_pymc_model
    stages = _stage_timers(pm)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        if impl == "bayesgmm":
            from bayesgmm import GaussianMixtureBayes

            g = GaussianMixtureBayes(K, random_state=0).fit(
                X, draws=draws, tune=tune, chains=chains, nuts_sampler=sampler,
                progressbar=False)
            final = g.idata_["posterior"].to_dataset()
            stats = g.idata_["sample_stats"].to_dataset()
            out["relabel"] = dict(g.relabel_)
        else:
            model = build_reference(X)
            start, _ = kmeans_start(X)
            kwargs = {"draws": draws, "tune": tune, "chains": chains, "cores": CORES,
                      "model": model, "nuts_sampler": sampler, "initvals": start,
                      "target_accept": TARGET_ACCEPT, "random_seed": SEED,
                      "progressbar": False, "compute_convergence_checks": False}
            if sampler == "pymc":
                kwargs["init"] = "adapt_diag"
            idata = pm.sample(**kwargs)
            final = idata["posterior"].to_dataset()
            stats = idata["sample_stats"].to_dataset()
    out["fit_s"] = time.perf_counter() - t
    out["stages"] = stages.take()
    raw = captured["idata"]
    out["sample_call_s"] = captured["end"] - captured["start"]
    out["sample_kwargs"] = {k: repr(v) for k, v in captured["kwargs"].items()}
    out["sampling_time_attr_s"] = raw["posterior"].attrs.get("sampling_time")
    out["nutpie_compile_s"] = captured.get("nutpie_compile_s")
    out["n_draws_kept"] = int(final.sizes["draw"])
    out["n_chains"] = int(final.sizes["chain"])
    out["min_ess_bulk"], out["max_rhat"], out["per_var"] = component_diagnostics(final)
    out["divergences"], out["divergence_stat"] = divergence_count(stats)
    out["labelling"], out["chains"] = labelling(final)
    if impl == "bayesgmm":
        raw_post = raw["posterior"].to_dataset()
        _, out["raw_max_rhat"], _ = component_diagnostics(raw_post)
        out["raw_labelling"], _ = labelling(raw_post)
    if "reached_max_treedepth" in stats:
        out["treedepth_hits"] = int(stats["reached_max_treedepth"].values.sum())
    elif "maxdepth_reached" in stats:
        out["treedepth_hits"] = int(stats["maxdepth_reached"].values.sum())
    for name in ("n_steps", "tree_size"):
        if name in stats:
            out["mean_leapfrog_steps"] = float(stats[name].values.mean())
            break
    if "step_size" in stats:
        out["step_size"] = float(np.median(stats["step_size"].values))
    out["total_leapfrog_steps"] = total_leapfrog_steps(raw)
    if sampler == "pymc":
        out["timing"] = chain_timing(raw, captured["start"], captured["end"], CORES)
        seconds = sum(out["timing"]["chain_step_seconds"]) if out["timing"] else None
    else:  # nutpie runs the chains in CORES threads inside sampling_time
        seconds = (out["sampling_time_attr_s"] or 0) * CORES
    if seconds and out["total_leapfrog_steps"]:
        out["us_per_leapfrog"] = seconds / out["total_leapfrog_steps"] * 1e6


# --------------------------------------------------------------------------- parent side
def cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def code_state():
    """Commit of the repository and whether bayesgmm/ differs from it (others edit it)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args):
        try:
            return subprocess.run(["git", "-C", root, *args], capture_output=True,
                                  text=True, timeout=30, check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    import hashlib

    digest = hashlib.sha256()
    package = os.path.join(root, "bayesgmm")
    for name in sorted(os.listdir(package)):
        if name.endswith(".py"):
            with open(os.path.join(package, name), "rb") as handle:
                digest.update(name.encode() + handle.read())
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "bayesgmm_modified": git("status", "--porcelain", "--", "bayesgmm"),
            "bayesgmm_sources_sha256": digest.hexdigest()[:16]}


def versions():
    import importlib.metadata as md

    names = ["bayesgmm", "pymc", "pytensor", "numba", "nutpie", "arviz", "arviz-base",
             "arviz-stats", "numpy", "scipy", "xarray", "scikit-learn"]
    found = {}
    for name in names:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    found["python"] = platform.python_version()
    return found


def wait_for_other_benchmark(enabled, log):
    if not enabled:
        return 0.0
    start = time.time()
    while time.time() - start < 40 * 60:
        found = subprocess.run(["pgrep", "-f", "em_vs_sklearn"], capture_output=True,
                               text=True, check=False)
        if not found.stdout.strip():
            return time.time() - start
        log(f"  (em_vs_sklearn is running: waiting 30 s, {time.time() - start:.0f} s so far)")
        time.sleep(30)
    log("  (gave up waiting for em_vs_sklearn after 40 min; timings may be contended)")
    return time.time() - start


def run_worker(spec, env_extra=None, timeout=4 * 3600):
    env = dict(os.environ)
    env.update(env_extra or {})
    t = time.perf_counter()
    load_before = os.getloadavg()[0]
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker",
                               json.dumps(spec)], capture_output=True, text=True, env=env,
                              timeout=timeout, check=False)
        stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as error:
        stdout = error.stdout or ""
        stderr = error.stderr or ""
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
        rc = "timeout"
    result = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
    if result is None:
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        result = {"spec": spec, "error": f"worker failed (rc={rc}): {tail}"}
    result["process_s"] = time.perf_counter() - t
    result["load1_before"] = load_before
    result["stderr_blas_warning"] = BLAS_TEXT in stderr
    return result


def _fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if not np.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def _ratio(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool) and not isinstance(b, bool) and b:
        return f"{a / b:.2f}"
    return ""


def table_rows(results, n, d, samplers):
    """(label, bayesgmm value, reference value, graph value) rows for one (N, D)."""
    def get(impl, key, *path):
        r = results.get((n, d, impl, key))
        if r is None:
            return None
        if "error" in r and not path:
            return "FAILED"
        for p in path:
            if isinstance(p, int):
                r = r[p] if isinstance(r, list) and len(r) > p else None
                continue
            if r is None or not isinstance(r, dict):
                return None
            if "error" in r and p not in r:
                return "FAILED: " + r["error"].splitlines()[0][:80]
            r = r.get(p)
        return r

    rows = [
        ("model build (s)", "compile_warm", "build_s"),
        ("logp+dlogp eval (µs)", "compile_warm", "eval_us"),
        ("likelihood term + gradient alone (µs)", "compile_warm", "likelihood_eval_us"),
        ("logp+dlogp eval, compiled code alone (µs)", "compile_warm", "core_eval_us"),
        ("compile logp+dlogp, cold cache (s)", "compile_cold", "compile_s"),
        ("compile logp+dlogp, warm cache, fresh process (s)", "compile_warm", "compile_s"),
        ("compile logp+dlogp, again in same process (s)", "compile_warm", "repeat_compile_s"),
        ("MAP, first call in process (s)", "map", "map_first_s"),
        ("MAP, second call (warm) (s)", "map", "map_second_s"),
        ("MAP max |mean error| vs truth", "map", "map_max_abs_mean_error"),
        ("MAP 2nd call: EM (s)", "map", ("map_stages", 1, "em")),
        ("MAP 2nd call: model build (+k-means for reference) (s)", "map",
         ("map_stages", 1, "build_model")),
        ("MAP 2nd call: pm.find_MAP (s)", "map", ("map_stages", 1, "find_MAP")),
        ("MAP 2nd call: bayesgmm's MAP optimiser (s)", "map",
         ("map_stages", 1, "map_optimiser")),
    ]
    out = []
    for label, key, field in rows:
        path = field if isinstance(field, tuple) else (field,)
        b, r = get("bayesgmm", key, *path), get("reference", key, *path)
        g = get("graph", key, *path)
        if label.startswith("MAP 2nd call: model build"):
            r = get("reference", key, "map_stages", 1, "build_model+kmeans")
        if b is None and r is None:
            continue
        out.append((label, b, r, g))
    paired = results.get((n, d, "paired", "evals"))
    if paired is not None and "paired_median_us" in paired:
        medians, ratios = paired["paired_median_us"], paired["paired_ratio_median"]
        out.append(("logp+dlogp, compiled code alone, alternating rounds, median (µs)",
                    *(medians.get(i) for i in ("bayesgmm", "reference", "graph"))))
        out.append(("  that, as a multiple of bayesgmm's: median over rounds (x)",
                    *(ratios.get(i) for i in ("bayesgmm", "reference", "graph"))))
    elif paired is not None:
        out.append(("logp+dlogp, alternating rounds", "FAILED", "FAILED", None))
    flops = flop_estimate(n, d)
    out.append(("flop estimate N·K·(D²+D)·10 (MFLOP)", flops / 1e6, flops / 1e6, flops / 1e6))
    gflops = [None if not isinstance(e, float) else flops / e / 1e3 for e in
              (get(i, "compile_warm", "likelihood_eval_us") for i in ("bayesgmm", "reference",
                                                                       "graph"))]
    out.append(("likelihood term: GFLOP/s of that estimate", *gflops))
    for label, key in (("whole NUTS fit, cold cache, pymc sampler (s)", "fit_cold"),
                       ("whole NUTS fit, warm cache right after, pymc sampler (s)",
                        "fit_warm")):
        b, r = get("bayesgmm", key, "fit_s"), get("reference", key, "fit_s")
        if b is not None or r is not None:
            out.append((label, b, r, None))
    for s in samplers:
        key = f"nuts_{s}"
        for label, field in [
            ("whole fit, warm cache (s)", "fit_s"),
            ("pm.sample call (s)", "sample_call_s"),
            ("sampling_time attr (s)", "sampling_time_attr_s"),
            ("NUTS steps / 2 cores (s)", ("timing", "step_seconds_per_core")),
            ("pm.sample: before first step (s)", ("timing", "setup_before_first_step_s")),
            ("first NUTS step of a chain, mean (s)", ("timing", "first_step_mean_s")),
            ("nutpie.compile_pymc_model (s)", "nutpie_compile_s"),
            ("fit outside pm.sample: EM (s)", ("stages", "em")),
            ("fit outside pm.sample: relabelling (s)", ("stages", "relabel")),
            ("fit outside pm.sample: pointwise log-lik (s)", ("stages", "log_likelihood")),
            ("min ESS-bulk", "min_ess_bulk"),
            ("min ESS-bulk / s sampling_time", "ess_per_s"),
            ("min ESS-bulk / s whole fit", "ess_per_fit_s"),
            ("divergences", "divergences"),
            ("max R-hat", "max_rhat"),
            ("max R-hat before relabelling", "raw_max_rhat"),
            ("chain labellings", "labelling"),
            ("mean leapfrog steps / draw", "mean_leapfrog_steps"),
            ("leapfrog steps, tune+draws, all chains", "total_leapfrog_steps"),
            ("µs per leapfrog step (core time)", "us_per_leapfrog"),
            ("fit of step time: µs per leapfrog", ("timing", "draw_time_fit",
                                                   "per_leapfrog_us")),
            ("fit of step time: ms overhead per draw", ("timing", "draw_time_fit",
                                                        "per_draw_overhead_ms")),
        ]:
            path = field if isinstance(field, tuple) else (field,)
            b, r = get("bayesgmm", key, *path), get("reference", key, *path)
            if b is None and r is None:
                continue
            out.append((f"NUTS[{s}] {label}", b, r, None))
    blas = [get("bayesgmm", k, "blas_seen") for k in
            ["compile_warm", "map"] + [f"nuts_{s}" for s in samplers]]
    blas_ref = [get("reference", k, "blas_seen") for k in
                ["compile_warm", "map"] + [f"nuts_{s}" for s in samplers]]
    out.append(("BLAS warning emitted", _any_yes(blas), _any_yes(blas_ref), None))
    return out


def _any_yes(values):
    known = [v for v in values if isinstance(v, bool)]
    if not known:
        return None
    return any(known)


def print_table(results, ns, ds, samplers, log):
    """One table per (N, D): bayesgmm (fused), the textbook reference, their ratio, and
    bayesgmm's own reference formulation (``graph``) where it was measured."""
    for n in ns:
        for d in ds:
            rows = table_rows(results, n, d, samplers)
            width = max(len(r[0]) for r in rows)
            log(f"\nN = {n}, D = {d}, K = {K}")
            log(f"| {'measure'.ljust(width)} | {'bayesgmm':>10} | {'reference':>10} | "
                f"{'b/r':>6} | {'graph':>10} |")
            log(f"|{'-' * (width + 2)}|{'-' * 11}:|{'-' * 11}:|{'-' * 7}:|{'-' * 11}:|")
            for label, b, r, g in rows:
                log(f"| {label.ljust(width)} | {_fmt(b):>10} | {_fmt(r):>10} | "
                    f"{_ratio(b, r):>6} | {_fmt(g):>10} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--n", type=int, nargs="+", help="numbers of points (default 500 5000)")
    parser.add_argument("--d", type=int, nargs="+", help="numbers of features (default 2 5)")
    parser.add_argument("--samplers", nargs="+", choices=["pymc", "nutpie"],
                        default=["pymc", "nutpie"])
    parser.add_argument("--impls", nargs="+", choices=["bayesgmm", "reference", "graph"],
                        default=["bayesgmm", "reference", "graph"],
                        help="graph (bayesgmm's reference formulation) is measured in the "
                             "compile/eval task only")
    parser.add_argument("--draws", type=int)
    parser.add_argument("--tune", type=int)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--skip-cold", action="store_true", help="no cold-cache compile")
    parser.add_argument("--cold-everywhere", action="store_true",
                        help="cold-cache compiles and fits for every (N, D), not only the first")
    parser.add_argument("--skip-nuts", action="store_true")
    parser.add_argument("--no-wait", action="store_true",
                        help="do not wait for a running em_vs_sklearn benchmark")
    parser.add_argument("--blas-threads", type=int,
                        help="set OPENBLAS/OMP/MKL_NUM_THREADS to this in every worker "
                             "(default: leave the environment alone)")
    parser.add_argument("--skip-map", action="store_true")
    parser.add_argument("--json", help="write all raw results to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return

    ns = args.n or ([300] if args.quick else [500, 5000])
    ds = args.d or ([2] if args.quick else [2, 5])
    draws = args.draws or (60 if args.quick else 1000)
    tune = args.tune or (60 if args.quick else 1000)
    warmup_draws = 20 if args.quick else 30
    wait = not (args.quick or args.no_wait)

    def log(message=""):
        print(message, flush=True)

    info = {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "versions": versions(),
        "code": code_state(),
        "settings": {"n": ns, "d": ds, "draws": draws, "tune": tune, "chains": args.chains,
                     "cores": CORES, "target_accept": TARGET_ACCEPT, "seed": SEED,
                     "samplers": args.samplers, "quick": args.quick,
                     "blas_threads": args.blas_threads},
    }
    log(json.dumps(info, indent=1))
    thread_env = {}
    if args.blas_threads:
        thread_env = {name: str(args.blas_threads) for name in
                      ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    results = {}
    tmp_root = tempfile.mkdtemp(prefix="bayesgmm-bench-")

    def record(n, d, impl, key, spec, env=None):
        waited = wait_for_other_benchmark(wait, log)
        log(f"[{time.strftime('%H:%M:%S')}] N={n} D={d} {impl} {key} ...")
        r = run_worker(spec, {**thread_env, **(env or {})})
        r["waited_s"] = waited
        r["blas_seen"] = bool(r.get("blas_warning")) or r.get("stderr_blas_warning", False)
        if "fit_s" in r and r.get("sampling_time_attr_s"):
            r["ess_per_s"] = r["min_ess_bulk"] / r["sampling_time_attr_s"]
            r["ess_per_fit_s"] = r["min_ess_bulk"] / r["fit_s"]
        results[(n, d, impl, key)] = r
        brief = {k: r.get(k) for k in ("error", "compile_s", "eval_us", "map_first_s",
                                       "map_second_s", "fit_s", "sample_call_s",
                                       "sampling_time_attr_s", "min_ess_bulk", "max_rhat",
                                       "divergences", "labelling", "blas_seen", "process_s",
                                       "paired_median_us", "paired_ratio_median")
                 if k in r}
        log("    " + json.dumps(brief, default=float))
        return r

    def fresh_caches(name):
        # PyTensor keeps its numba cache in <base_compiledir>/numba, not in compiledir:
        # both are redirected, and numba's own cache too.
        fresh = f"{tmp_root}/{name}"
        flags = [os.environ.get("PYTENSOR_FLAGS", ""), f"base_compiledir={fresh}/pytensor",
                 f"compiledir={fresh}/pytensor/compiledir"]
        return {"PYTENSOR_FLAGS": ",".join(filter(None, flags)),
                "NUMBA_CACHE_DIR": f"{fresh}/numba"}

    sampled = [i for i in args.impls if i != "graph"]
    try:
        for n in ns:
            for d in ds:
                cold = not args.skip_cold and (args.cold_everywhere
                                               or (n, d) == (ns[0], ds[0]))
                for impl in args.impls:
                    base = {"impl": impl, "n": n, "d": d}
                    if cold:
                        cache = fresh_caches(f"{impl}-{n}-{d}")
                        record(n, d, impl, "compile_cold", {**base, "task": "compile"}, cache)
                        record(n, d, impl, "compile_warm", {**base, "task": "compile"}, cache)
                    else:
                        record(n, d, impl, "compile_warm", {**base, "task": "compile"})
                    if cold and impl != "graph" and not args.skip_nuts:
                        # a user's first fit on a fresh machine, then the next one
                        cache = fresh_caches(f"fit-{impl}-{n}-{d}")
                        spec = {**base, "task": "nuts", "sampler": "pymc",
                                "chains": args.chains, "draws": draws, "tune": tune}
                        record(n, d, impl, "fit_cold", spec, cache)
                        record(n, d, impl, "fit_warm", spec, cache)
                    if args.skip_map or impl == "graph":
                        continue
                    log(f"[{time.strftime('%H:%M:%S')}] N={n} D={d} {impl} map warm-up ...")
                    results[(n, d, impl, "warmup_map")] = run_worker(
                        {**base, "task": "map"}, thread_env)
                    record(n, d, impl, "map", {**base, "task": "map"})
                paired = [i for i in ("bayesgmm", "reference", "graph") if i in args.impls]
                if len(paired) > 1 and paired[0] == "bayesgmm":
                    record(n, d, "paired", "evals", {"task": "paired_evals", "impl": "paired",
                                                     "impls": paired, "n": n, "d": d})
        if not args.skip_nuts:
            for n in ns:
                for d in ds:
                    for sampler in args.samplers:
                        for impl in sampled:
                            spec = {"impl": impl, "n": n, "d": d, "task": "nuts",
                                    "sampler": sampler, "chains": args.chains}
                            log(f"[{time.strftime('%H:%M:%S')}] N={n} D={d} {impl} "
                                f"nuts_{sampler} warm-up (unmeasured) ...")
                            warm = run_worker({**spec, "draws": warmup_draws,
                                               "tune": warmup_draws, "chains": 2}, thread_env)
                            results[(n, d, impl, f"warmup_{sampler}")] = warm
                            log(f"    warm-up process {warm['process_s']:.1f} s"
                                + (f", error: {warm['error'][:200]}" if "error" in warm
                                   else ""))
                            record(n, d, impl, f"nuts_{sampler}",
                                   {**spec, "draws": draws, "tune": tune})
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

    log("\n" + "=" * 80)
    log(f"{info['date']}, {info['cpu']}, {info['cores']} cores; "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    log(f"code: {info['code']}")
    log(f"NUTS: {args.chains} chains x ({tune} tune + {draws} draws), cores={CORES}, "
        f"target_accept={TARGET_ACCEPT}, BLAS threads per worker: "
        f"{args.blas_threads or 'environment default'}")
    print_table(results, ns, ds, args.samplers, log)
    errors = {"/".join(map(str, k)): v["error"] for k, v in results.items() if "error" in v}
    if errors:
        log("\nFailures:")
        for key, message in errors.items():
            log(f"  {key}: {message.splitlines()[0][:300]}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"info": info, "results": {"/".join(map(str, k)): v
                                                 for k, v in results.items()}},
                      handle, indent=1, default=float)
        log(f"\nraw results: {args.json}")


if __name__ == "__main__":
    main()
