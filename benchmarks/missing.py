#!/usr/bin/env python
"""EM with missing entries against the same data complete: time per iteration.

Run from the repository root on an otherwise idle machine::

    .venv/bin/python benchmarks/missing.py                 # (1e6, 10), K = 8, ~2 min
    .venv/bin/python benchmarks/missing.py --n 100000      # smoke run

Data: n points of 10 features from 8 full-covariance Gaussians; then 10% of the
entries deleted completely at random (rows left with no entry are kept whole). What is
timed, both on the complete data and on the data with missing entries, in the same run:

- ``pass``: one E-step and M-step pass of the EM engine at the same parameters (the
  inner loop: ``engine.sweep`` with moments);
- ``fit``: a whole ``GaussianMixtureEM(8, covariance_type="full", max_iter=10, tol=0)``
  fit from the same ``means_init``/``weights_init``/``precisions_init`` (what a user
  times), divided by its iterations.

``ratio`` = missing / complete (target: within 3x). Results go to
``benchmarks/results-missing.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from em_vs_sklearn import environment, foreign_load_now, wait_until_quiet  # noqa: E402

from bayesgmm import GaussianMixtureEM  # noqa: E402
from bayesgmm._missing import MissingEngine  # noqa: E402
from bayesgmm.em import _BlockEngine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JSON = os.path.join(ROOT, "benchmarks", "results-missing.json")


def simulate(n, D, K, fraction, rng):
    means = rng.normal(scale=4.0, size=(K, D))
    B = rng.normal(size=(K, D, D))
    factors = np.linalg.cholesky(B @ np.swapaxes(B, -1, -2) / D + 0.5 * np.eye(D))
    labels = rng.integers(K, size=n)
    X = means[labels] + np.einsum("nij,nj->ni", factors[labels], rng.standard_normal((n, D)))
    missing = X.copy()
    mask = rng.random(X.shape) < fraction
    mask[mask.all(axis=1)] = False
    missing[mask] = np.nan
    covariances = factors @ np.swapaxes(factors, -1, -2)
    return X, missing, means, covariances


def best_of(repeats, run):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wait-quiet", type=float, default=120.0)
    parser.add_argument("--json", default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    D, K, iterations = 10, 8, 10
    rng = np.random.default_rng(20261202)
    X, X_missing, means, covariances = simulate(args.n, D, K, args.fraction, rng)
    # the start: the simulated truth, a little off
    init = {"weights_init": np.full(K, 1 / K), "means_init": means + 0.1,
            "precisions_init": np.linalg.inv(covariances * 1.1)}
    start = GaussianMixtureEM(K, max_iter=0, **init).fit(X[:1000])
    params = (start.weights_, start.means_, start.precisions_cholesky_)
    centre = X.mean(axis=0)
    complete = _BlockEngine(X, np.ones(args.n), centre, start._structure)
    missing = MissingEngine(X_missing, np.ones(args.n), centre, start._structure)
    log = print
    rows = {}
    for name, engine, data in (("complete", complete, X), ("missing", missing, X_missing)):
        wait_until_quiet(args.wait_quiet, log)
        load = foreign_load_now(1.0)
        sweep = best_of(args.repeats, lambda e=engine: e.sweep(*params[:2], params[2]))

        def whole(data=data):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return GaussianMixtureEM(K, max_iter=iterations, tol=0, **init).fit(data)

        fit = best_of(1, whole)
        rows[name] = {"pass_seconds": round(sweep, 4),
                      "fit_seconds_per_iteration": round(fit / iterations, 4),
                      "foreign_load_before": round(load, 2)}
        log(f"{name:>9}: pass {sweep:.3f} s, fit {fit / iterations:.3f} s per iteration "
            f"(foreign load {load:.2f})")
    ratio = {key: round(rows["missing"][key] / rows["complete"][key], 2)
             for key in ("pass_seconds", "fit_seconds_per_iteration")}
    log(f"    ratio: pass {ratio['pass_seconds']}x, fit {ratio['fit_seconds_per_iteration']}x "
        f"(target: 3x); {len(missing.patterns)} patterns, "
        f"{len(missing.complete_rows) / args.n:.0%} complete rows")
    results = {"benchmark": "missing entries vs complete, full K=8", "n": args.n, "D": D,
               "fraction_missing": args.fraction, "n_patterns": len(missing.patterns),
               "complete_rows": len(missing.complete_rows), "rows": rows, "ratio": ratio,
               "environment": environment()}
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    log(f"written {args.json}")


if __name__ == "__main__":
    main()
