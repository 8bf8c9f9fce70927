#!/usr/bin/env python
"""Whole default EM fits against scikit-learn's, and every family's time per iteration.

"A user times fit(), not one iteration": ``em_vs_sklearn.py`` times one EM iteration
from a common start; this script times what a user runs, ``fit(X)`` with each
library's defaults, and checks that the speed is not bought with a worse optimum.

Run from the repository root::

    .venv/bin/python benchmarks/em_whole_fit.py            # full benchmark (~5-15 min)
    .venv/bin/python benchmarks/em_whole_fit.py --quick    # smoke run (under a minute)
    .venv/bin/python benchmarks/em_whole_fit.py --list     # case names
    .venv/bin/python benchmarks/em_whole_fit.py --cases 'fit-n1e6-*' --json out.json

Data: ``em_vs_sklearn.simulate`` (a mixture of K Gaussians, random means of spread
4 and random full covariances, fixed seed), the same array for every fit of a case.
Waiting for a quiet machine (``em_vs_sklearn.wait_until_quiet``) and the measure of
other processes' CPU use during a fit (``em_vs_sklearn.ForeignLoad``) are shared
with that script, as is its environment printout.

Part 1, whole fits (cases ``fit-*``: (n, D, K, type) = (1e6, 10, 8, full),
(1e6, 10, 8, diag), (1e5, 2, 3, full)). Three estimators, each fitted ``--repeats``
times (default 3) on the same X with ``random_state=--seed`` (default 0), so every
repetition is the same fit:

- ``sklearn``: ``sklearn.mixture.GaussianMixture(K, covariance_type=type,
  random_state=seed).fit(X)``: its defaults, k-means start, tol 1e-3, n_init 1;
- ``bayesgmm``: ``GaussianMixtureEM(K, covariance_type=type,
  random_state=seed).fit(X)``: its defaults, init_params="auto" (mclust's
  hierarchical start and one scale-free k-means start, both screened by EM on a
  2,000-row subsample, the better one continued on all rows after one EM step on
  p / tol rows for p free parameters, if those are at most 3/5 of the rows), tol 1e-3,
  n_init 1;
- ``bayesgmm kmeans``: the same with ``init_params="kmeans"`` (scikit-learn's start,
  k-means of all rows), so the cost of the start strategy is visible.

Numbers: ``best`` and ``median`` wall time of ``fit`` over the repetitions (before
each the script waits up to ``--wait-quiet`` s for other processes to leave the CPUs
idle; a repetition during which they used >= 0.1 CPU is redone, at most 10 times per
estimator; ``--wait-quiet 0`` neither waits nor redoes); ``speed-up`` = best sklearn
/ best bayesgmm; ``n_iter`` is ``n_iter_``; ``loglik`` is the total log-likelihood
of X under each fitted model by one independent evaluator
(``em_vs_sklearn.model_log_likelihood``: scipy's multivariate normal logpdf,
float64, log-sum-exp over components; diagonal covariances made full matrices), and
``>= sklearn`` says whether bayesgmm's is at least scikit-learn's (allowing 1e-9
relative for rounding when both reach the same optimum; the difference is printed).

Breakdown of bayesgmm's fits: every bayesgmm fit runs as a subclass whose
``_initial_parameters``, ``_refined_on_more_rows`` and ``_run_em`` are timed wrappers
around the originals
(nothing else changes, the overhead is two clock reads per call). ``start`` =
building the starts (hierarchical clustering, k-means, the initial M-step) plus
the screening EM runs on the 2,000-row subsample plus the refining EM step of the
best one on p / tol rows (``_refined_on_more_rows``, also timed; skipped when that is
more than 3/5 of the rows); ``EM`` = the EM run on all rows
(its iterations and the final E-step / labelling pass), given also per iteration as
EM / (n_iter + 1); ``other`` = the rest of ``fit`` (validation, the data covariance
pass, setting the attributes). Figures are from the fastest repetition.
``fit(max_iter=0)`` is also timed (best of the repetitions), as a cruder estimate
of the start: with init_params="auto" and more than 2,000 rows it builds both starts
on the subsample but runs no screening EM -- the better start is picked by its
initial log-likelihood on the subsample, not after EM -- then makes one E-step
pass over all rows and returns the initial parameters (n_iter_ = 0). So it omits
the screening EM (and may pick the other start); the instrumented ``start`` does not.

Part 2, time per iteration of every family (cases ``families-*``: n = 1e5, K = 8,
D = 10 and D = 3). All 14 mclust families (EII, VII, EEI, VEI, EVI, VVI, EEE, VEE,
EVE, VVE, EEV, VEV, EVV, VVV) start from the same explicit parameters: weights,
means and full covariances of one k-means (``em_vs_sklearn.initial_parameters``,
k-means of a 20,000-row subsample), the covariances mapped to the family's layout by
``get_covariance_structure(name).from_full`` (a projection of the layout, not a
constrained estimate: the diagonal for the diagonal families, the mean of the
diagonal for the spherical ones, component 0 for EEE, the matrices themselves for
the others; the first M-step imposes the family's constraints) and inverted in that
layout (``covariances_from_precisions``, an involution) to give ``precisions_init``.
``tol=0``; ``fit`` with ``max_iter=N1`` and ``N2`` (default 2 and 10, quick 1 and
3), each the best of ``--repeats``; s/iter = (best(N2) - best(N1)) / (N2 - N1), so
validation, set-up and the final pass cancel (as in ``em_vs_sklearn.py``); ``ratio``
= family s/iter / VVV s/iter (target: every family within 2x of VVV). The iterative
M-steps (VEI, VEE, EVE, VVE, VEV) cost a number of inner rounds per EM iteration that
depends on K and D, not on n. ``ConvergenceWarning`` and bayesgmm's
``MStepConvergenceWarning`` are silenced and counted (over all fits of the family).
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import json
import os
import statistics
import sys
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from em_vs_sklearn import (  # noqa: E402  (the sibling script's helpers)
    MAX_DISTURBED,
    QUIET_THRESHOLD,
    ForeignLoad,
    environment,
    foreign_load_now,
    initial_parameters,
    iterations_and_repeats,
    model_log_likelihood,
    simulate,
    wait_until_quiet,
)

from bayesgmm import GaussianMixtureEM, get_covariance_structure  # noqa: E402
from bayesgmm._gaussian import MStepConvergenceWarning  # noqa: E402

MiB = 2.0**20
FAMILIES = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE",
            "EEV", "VEV", "EVV", "VVV")
REFERENCE_FAMILY = "VVV"
LOGLIK_RTOL = 1e-9  # bayesgmm's log-likelihood counts as >= sklearn's down to this


def _short(n):
    exponent = int(np.floor(np.log10(n)))
    mantissa = n / 10**exponent
    return f"{mantissa:g}e{exponent}" if mantissa == int(mantissa) else str(n)


@dataclass(frozen=True)
class FitCase:
    n_samples: int
    n_features: int
    n_components: int
    covariance_type: str
    target_speedup: float

    @property
    def name(self):
        return (f"fit-n{_short(self.n_samples)}-d{self.n_features}-k{self.n_components}"
                f"-{self.covariance_type}")


@dataclass(frozen=True)
class FamilyCase:
    n_samples: int
    n_features: int
    n_components: int

    @property
    def name(self):
        return f"families-n{_short(self.n_samples)}-d{self.n_features}-k{self.n_components}"


FIT_CASES = [
    FitCase(1_000_000, 10, 8, "full", 10.0),
    FitCase(1_000_000, 10, 8, "diag", 5.0),
    FitCase(100_000, 2, 3, "full", 5.0),
]
FAMILY_CASES = [
    FamilyCase(100_000, 10, 8),
    FamilyCase(100_000, 3, 8),
]
TARGET_FAMILY_RATIO = 2.0

ESTIMATORS = ("sklearn", "bayesgmm", "bayesgmm kmeans")


# ------------------------------------------------------------- instrumentation
class _Clock:
    """Where the time of the current instrumented fit went."""

    def reset(self, n_rows):
        self.n_rows = n_rows
        self.start_s = 0.0  # building starts (+ their initial M-step)
        self.screen_s = 0.0  # EM runs on a subsample
        self.refine_s = 0.0  # the one EM step on p / tol rows after the screening
        self.em_s = 0.0  # EM runs on all rows
        self.n_starts = 0
        self.n_screen_runs = 0


CLOCK = _Clock()


class TimedEM(GaussianMixtureEM):
    """GaussianMixtureEM whose start and EM runs are timed (into CLOCK); nothing else differs."""

    def _initial_parameters(self, engine, random_state, user_init, method):
        t0 = time.perf_counter()
        try:
            return super()._initial_parameters(engine, random_state, user_init, method)
        finally:
            CLOCK.start_s += time.perf_counter() - t0
            CLOCK.n_starts += 1

    def _refined_on_more_rows(self, engine, params, random_state):
        t0 = time.perf_counter()
        try:
            return super()._refined_on_more_rows(engine, params, random_state)
        finally:
            CLOCK.refine_s += time.perf_counter() - t0

    def _run_em(self, engine, params, previous=-np.inf):
        t0 = time.perf_counter()
        try:
            return super()._run_em(engine, params, previous)
        finally:
            elapsed = time.perf_counter() - t0
            if engine.X.shape[0] < CLOCK.n_rows:
                CLOCK.screen_s += elapsed
                CLOCK.n_screen_runs += 1
            else:
                CLOCK.em_s += elapsed


def make_estimator(name, K, covariance_type, seed, **extra):
    if name == "sklearn":
        return GaussianMixture(K, covariance_type=covariance_type, random_state=seed, **extra)
    if name == "bayesgmm kmeans":
        extra = {"init_params": "kmeans", **extra}
    return TimedEM(K, covariance_type=covariance_type, random_state=seed, **extra)


def timed_fit(model, X):
    """(seconds, foreign load in CPUs, warnings by category name, clock copy or None)."""
    CLOCK.reset(X.shape[0])
    gc.collect()
    with warnings.catch_warnings(record=True) as caught, ForeignLoad() as load:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model.fit(X)
        elapsed = time.perf_counter() - start
    counts = Counter(w.category.__name__ for w in caught)
    clock = dict(vars(CLOCK)) if isinstance(model, TimedEM) else None
    return elapsed, load.cpus, counts, clock


def repeated_fits(make, X, repeats, wait_quiet, log, label):
    """`repeats` undisturbed fits (disturbed ones redone up to MAX_DISTURBED times; with
    wait_quiet=0 nothing is waited for or redone, and the load is only recorded)."""
    kept, disturbed = [], 0
    max_disturbed = MAX_DISTURBED if wait_quiet else 0
    while len(kept) < repeats:
        if wait_quiet:
            wait_until_quiet(wait_quiet, log)
        model = make()
        elapsed, busy, counts, clock = timed_fit(model, X)
        if not np.isnan(busy) and busy >= QUIET_THRESHOLD and disturbed < max_disturbed:
            disturbed += 1
            continue
        kept.append({"seconds": elapsed, "foreign_load_cpus": busy,
                     "warnings": dict(counts), "clock": clock, "model": model})
    if disturbed:
        log(f"    {label}: {disturbed} repetition(s) disturbed by other processes redone")
    return kept


# ---------------------------------------------------------------- part 1: fits
@dataclass
class EstimatorResult:
    times_s: list
    best_s: float
    median_s: float
    n_iter: int
    converged: bool
    loglik: float
    warnings: dict
    foreign_load_cpus: float
    breakdown: dict = field(default_factory=dict)  # bayesgmm only


@dataclass
class FitResult:
    case: str
    n_samples: int
    n_features: int
    n_components: int
    covariance_type: str
    seed: int
    repeats: int
    target_speedup: float
    estimators: dict = field(default_factory=dict)
    max_iter0_best_s: dict = field(default_factory=dict)
    max_iter0_n_iter: dict = field(default_factory=dict)

    def speedup(self, name):
        return self.estimators["sklearn"].best_s / self.estimators[name].best_s

    def loglik_diff(self, name):
        return self.estimators[name].loglik - self.estimators["sklearn"].loglik

    def loglik_ok(self, name):
        return self.loglik_diff(name) >= -LOGLIK_RTOL * abs(self.estimators["sklearn"].loglik)


def run_fit_case(case, X, seed, repeats, wait_quiet, log):
    res = FitResult(case.name, case.n_samples, case.n_features, case.n_components,
                    case.covariance_type, seed, repeats, case.target_speedup)
    for name in ESTIMATORS:
        runs = repeated_fits(lambda: make_estimator(name, case.n_components,
                                                    case.covariance_type, seed),
                             X, repeats, wait_quiet, log, name)
        times = [r["seconds"] for r in runs]
        fastest = runs[int(np.argmin(times))]
        model = fastest["model"]
        warn = Counter()
        for r in runs:
            warn.update(r["warnings"])
        loads = [r["foreign_load_cpus"] for r in runs if not np.isnan(r["foreign_load_cpus"])]
        est = EstimatorResult(
            times_s=times, best_s=min(times), median_s=statistics.median(times),
            n_iter=int(model.n_iter_), converged=bool(model.converged_),
            loglik=model_log_likelihood(X, model, case.covariance_type),
            warnings=dict(warn), foreign_load_cpus=max(loads, default=float("nan")),
        )
        if fastest["clock"] is not None:
            c = fastest["clock"]
            other = est.best_s - c["start_s"] - c["screen_s"] - c["refine_s"] - c["em_s"]
            est.breakdown = {
                "start_s": c["start_s"] + c["screen_s"] + c["refine_s"],
                "start_build_s": c["start_s"], "screen_em_s": c["screen_s"],
                "refine_step_s": c["refine_s"],
                "n_starts": c["n_starts"], "n_screen_runs": c["n_screen_runs"],
                "em_s": c["em_s"], "em_s_per_iter": c["em_s"] / (est.n_iter + 1),
                "other_s": other,
            }
        res.estimators[name] = est
        extra = ""
        if est.breakdown:
            b = est.breakdown
            extra = (f"; start {b['start_s']:.3f} s ({b['n_starts']} start(s) built "
                     f"{b['start_build_s']:.3f} s + {b['n_screen_runs']} screening EM run(s) "
                     f"{b['screen_em_s']:.3f} s + refining step {b['refine_step_s']:.3f} s), "
                     f"EM on all rows {b['em_s']:.3f} s "
                     f"({b['em_s_per_iter']:.4f} s per pass), other {b['other_s']:.3f} s")
        log(f"    {name:16s} best {est.best_s:8.3f} s, median {est.median_s:8.3f} s, "
            f"n_iter {est.n_iter:3d}{'' if est.converged else ' (not converged)'}, "
            f"loglik {est.loglik:.8e}{extra}")
        if est.warnings:
            log(f"    {'':16s} warnings: {est.warnings}")
        del model, runs, fastest
    for name in ESTIMATORS[1:]:
        runs = repeated_fits(lambda: make_estimator(name, case.n_components,
                                                    case.covariance_type, seed, max_iter=0),
                             X, repeats, wait_quiet, log, f"{name} max_iter=0")
        res.max_iter0_best_s[name] = min(r["seconds"] for r in runs)
        res.max_iter0_n_iter[name] = int(runs[0]["model"].n_iter_)
        log(f"    {name:16s} fit(max_iter=0) best {res.max_iter0_best_s[name]:8.3f} s")
    return res


FIT_HEADER = ("case", "estimator", "best s", "median s", "speed-up", "n_iter",
              "loglik", "- sklearn's", ">= sklearn", "start s", "EM s", "EM s/pass",
              "max_iter=0 s")


def fit_rows(results):
    for r in results:
        for name in ESTIMATORS:
            e = r.estimators[name]
            b = e.breakdown
            yield (
                r.case if name == "sklearn" else "",
                name,
                f"{e.best_s:.3f}",
                f"{e.median_s:.3f}",
                "" if name == "sklearn" else f"{r.speedup(name):.1f}x",
                f"{e.n_iter}" + ("" if e.converged else "*"),
                f"{e.loglik:.6f}",
                "" if name == "sklearn" else f"{r.loglik_diff(name):+.3g}",
                "" if name == "sklearn" else ("yes" if r.loglik_ok(name) else "NO"),
                f"{b['start_s']:.3f}" if b else "",
                f"{b['em_s']:.3f}" if b else "",
                f"{b['em_s_per_iter']:.4f}" if b else "",
                f"{r.max_iter0_best_s[name]:.3f}" if name in r.max_iter0_best_s else "",
            )


# ------------------------------------------------------- part 2: per iteration
@dataclass
class FamilyResult:
    family: str
    times_s: dict  # max_iter -> list of seconds
    s_per_iter: float
    setup_s: float
    ratio_to_reference: float = float("nan")
    warnings: dict = field(default_factory=dict)
    foreign_load_cpus: float = float("nan")


@dataclass
class FamilyCaseResult:
    case: str
    n_samples: int
    n_features: int
    n_components: int
    iters: tuple
    repeats: int
    families: list = field(default_factory=list)


def family_start(X, K, family):
    """weights_init, means_init, precisions_init in the family's layout (see docstring)."""
    weights, means, precisions_full = initial_parameters(X, K, "full")
    structure = get_covariance_structure(family)
    covariances = structure.from_full(np.linalg.inv(precisions_full))
    precisions = structure.covariances_from_precisions(covariances)  # inverse, same layout
    return weights, means, precisions


def run_family_case(case, X, iters, repeats, wait_quiet, log, families=FAMILIES):
    n1, n2 = iters
    res = FamilyCaseResult(case.name, case.n_samples, case.n_features, case.n_components,
                           tuple(iters), repeats)
    for family in families:
        weights, means, precisions = family_start(X, case.n_components, family)
        warn, times, loads = Counter(), {}, []
        for max_iter in (n1, n2):
            def make(max_iter=max_iter):
                return GaussianMixtureEM(
                    case.n_components, covariance_type=family, tol=0.0, max_iter=max_iter,
                    weights_init=weights, means_init=means, precisions_init=precisions,
                    random_state=0)
            runs = repeated_fits(make, X, repeats, wait_quiet, log, f"{family} max_iter={max_iter}")
            for r in runs:
                assert r["model"].n_iter_ == max_iter, (family, r["model"].n_iter_, max_iter)
                warn.update(r["warnings"])
                if not np.isnan(r["foreign_load_cpus"]):
                    loads.append(r["foreign_load_cpus"])
            times[max_iter] = [r["seconds"] for r in runs]
        best1, best2 = min(times[n1]), min(times[n2])
        per_iter = (best2 - best1) / (n2 - n1)
        fr = FamilyResult(family, {str(k): v for k, v in times.items()}, per_iter,
                          best1 - n1 * per_iter, warnings=dict(warn),
                          foreign_load_cpus=max(loads, default=float("nan")))
        res.families.append(fr)
        log(f"    {family}: fit({n1} it) best {best1:.4f} s, fit({n2} it) best {best2:.4f} s "
            f"-> {per_iter * 1e3:.3f} ms/iter" + (f"; warnings {dict(warn)}" if warn else ""))
    ref = next(f for f in res.families if f.family == REFERENCE_FAMILY).s_per_iter
    for f in res.families:
        f.ratio_to_reference = f.s_per_iter / ref
    return res


FAMILY_HEADER = ("case", "family", "ms/iter", f"/ {REFERENCE_FAMILY}",
                 f"<= {TARGET_FAMILY_RATIO:g}x",
                 "set-up s", "ConvergenceW", "MStepConvW", "other warnings")


def family_rows(results):
    for r in results:
        for j, f in enumerate(r.families):
            w = dict(f.warnings)
            conv = w.pop(ConvergenceWarning.__name__, 0)
            mstep = w.pop(MStepConvergenceWarning.__name__, 0)
            yield (
                r.case if j == 0 else "",
                f.family,
                f"{f.s_per_iter * 1e3:.3f}",
                f"{f.ratio_to_reference:.3g}",
                "yes" if f.ratio_to_reference <= TARGET_FAMILY_RATIO else "NO",
                f"{f.setup_s:.4f}",
                str(conv),
                str(mstep),
                ", ".join(f"{k} {v}" for k, v in w.items()),
            )


def format_table(header, rows):
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for j, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(row[2:], widths[2:])]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------- runner
def all_case_names():
    return [c.name for c in FIT_CASES] + [c.name for c in FAMILY_CASES]


def select(cases, patterns):
    if not patterns:
        return list(cases)
    return [c for c in cases if any(fnmatch.fnmatch(c.name, p) or p == c.name for p in patterns)]


def quick_size(n, divisor, minimum):
    return max(minimum, n // divisor)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: fit cases n / 50 (at least 5,000 rows, so that "
                             "'auto' still screens on a subsample), family cases n / 20 "
                             "(where the n-independent M-step weighs more than at full size), "
                             "max_iter 1 and 3, 2 repeats")
    parser.add_argument("--cases", default="",
                        help="comma-separated case names or shell patterns (see --list)")
    parser.add_argument("--list", action="store_true", help="list the case names and exit")
    parser.add_argument("--seed", type=int, default=0, help="random_state of the whole fits")
    parser.add_argument("--iters", default=None,
                        help="N1,N2: the two max_iter values of part 2 (default 2,10; quick 1,3)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="repetitions of each timed fit (default 3; quick 2)")
    parser.add_argument("--wait-quiet", type=float, default=120.0, metavar="SECONDS",
                        help="before each timed fit wait up to this long for other processes "
                             "to leave the CPUs idle, and redo a fit they disturbed (default "
                             "120; 0 disables both: smoke runs on a busy machine)")
    parser.add_argument("--families", default="",
                        help=f"part 2: comma-separated families to time (default all; "
                             f"{REFERENCE_FAMILY}, the reference, is always added)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    if args.list:
        print("\n".join(all_case_names()))
        return 0
    patterns = [p.strip() for p in args.cases.split(",") if p.strip()]
    fit_cases, family_cases = select(FIT_CASES, patterns), select(FAMILY_CASES, patterns)
    if not fit_cases and not family_cases:
        sys.exit(f"No case matches {patterns}; cases are: {all_case_names()}")
    iters, repeats = iterations_and_repeats(args)
    families = [f.strip() for f in args.families.split(",") if f.strip()] or list(FAMILIES)
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        sys.exit(f"--families: unknown {unknown}; families are {list(FAMILIES)}")
    families = [f for f in FAMILIES if f in families or f == REFERENCE_FAMILY]

    def log(message=""):
        print(message, flush=True)

    env = environment()
    log("Whole EM fits (bayesgmm.GaussianMixtureEM vs sklearn GaussianMixture) and "
        "time per iteration of the 14 families")
    for key, value in env.items():
        log(f"  {key:10s} {value}")
    log(f"  load       other processes: {foreign_load_now(1.0):.2f} CPUs now; load average "
        f"{open('/proc/loadavg').read().split()[0]}")
    log(f"  timing     best and median of {repeats}; seed {args.seed}; part 2 max_iter="
        f"{iters[0]} and {iters[1]}, tol=0"
        + ("  [QUICK smoke run: reduced n]" if args.quick else ""))
    log()

    fit_results, family_results = [], []
    for case in fit_cases:
        if args.quick:
            case = FitCase(quick_size(case.n_samples, 50, 5_000), case.n_features,
                           case.n_components, case.covariance_type, case.target_speedup)
        gc.collect()
        X = simulate(case.n_samples, case.n_features, case.n_components)
        log(f"{case.name}  ({X.nbytes / MiB:.0f} MiB of float64 data)")
        fit_results.append(run_fit_case(case, X, args.seed, repeats, args.wait_quiet, log))
        del X
        log()
    for case in family_cases:
        if args.quick:
            case = FamilyCase(quick_size(case.n_samples, 20, 2_000), case.n_features,
                              case.n_components)
        gc.collect()
        X = simulate(case.n_samples, case.n_features, case.n_components)
        log(f"{case.name}  ({X.nbytes / MiB:.0f} MiB of float64 data)")
        family_results.append(run_family_case(case, X, iters, repeats, args.wait_quiet, log,
                                              families))
        del X
        log()

    loads = [e.foreign_load_cpus for r in fit_results for e in r.estimators.values()]
    loads += [f.foreign_load_cpus for r in family_results for f in r.families]
    loads = [v for v in loads if not np.isnan(v)]
    if fit_results:
        log("Part 1: whole default fits (best / median wall time of fit(X); speed-up = best "
            "sklearn / best; * = not converged)")
        log(format_table(FIT_HEADER, fit_rows(fit_results)))
        log("loglik: total log-likelihood of X under the fitted model (scipy, float64). "
            "start s: building the starts + screening EM on the subsample; EM s: EM on all "
            "rows; EM s/pass: EM s / (n_iter + 1); max_iter=0 s: fit(max_iter=0) (no "
            "screening EM, see the docstring).")
        for r in fit_results:
            s = r.speedup("bayesgmm")
            log(f"Target {r.case}: whole fit >= {r.target_speedup:g}x faster: {s:.1f}x "
                f"({'MET' if s >= r.target_speedup else 'MISSED'}); log-likelihood >= "
                f"sklearn's: {'MET' if r.loglik_ok('bayesgmm') else 'MISSED'} "
                f"({r.loglik_diff('bayesgmm'):+.4g})")
        log()
    if family_results:
        log(f"Part 2: time per EM iteration of every family, (best fit({iters[1]}) - best "
            f"fit({iters[0]})) / {iters[1] - iters[0]}, same k-means start")
        log(format_table(FAMILY_HEADER, family_rows(family_results)))
        for r in family_results:
            worst = max(r.families, key=lambda f: f.ratio_to_reference)
            n_bad = sum(f.ratio_to_reference > TARGET_FAMILY_RATIO for f in r.families)
            log(f"Target {r.case}: every family within {TARGET_FAMILY_RATIO:g}x of "
                f"{REFERENCE_FAMILY}: {'MET' if not n_bad else f'MISSED ({n_bad} families)'}; "
                f"slowest {worst.family} {worst.ratio_to_reference:.2f}x")
        log()
    worst = max(loads, default=0.0)
    log(f"Other processes' CPU use during the kept timings: at most {worst:.2f} CPUs"
        + ("  -- WARNING: timings disturbed, rerun on a quiet machine." if worst >= QUIET_THRESHOLD
           else " (quiet machine)."))

    if args.json:
        payload = {
            "environment": env,
            "quick": args.quick,
            "seed": args.seed,
            "repeats": repeats,
            "iters": list(iters),
            "fits": [asdict(r) | {
                "speedup": {n: r.speedup(n) for n in ESTIMATORS[1:]},
                "loglik_minus_sklearn": {n: r.loglik_diff(n) for n in ESTIMATORS[1:]},
                "loglik_at_least_sklearn": {n: r.loglik_ok(n) for n in ESTIMATORS[1:]},
            } for r in fit_results],
            "families": [asdict(r) for r in family_results],
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
        log(f"Results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
