#!/usr/bin/env python
"""The Bayesian model's log-density and gradient with missing entries against the same
data complete: what one NUTS leapfrog step costs.

Run from the repository root on an otherwise idle machine::

    .venv/bin/python benchmarks/missing_bayes.py      # ~1 min

Data: n points of D features from 3 Gaussians, then 10% of the entries deleted
completely at random. Timed: the compiled ``logp_dlogp_function`` of
``build_model(X, 3)`` (full covariances, the numba backend, what PyMC's NUTS and
nutpie evaluate) at the model's initial point, on the complete data and on the data
with missing entries, in the same run; best of 3 runs of 200 evaluations. The
complete rows of the data with missing entries go through the fused Op, the others
through the masked one (:mod:`bayesgmm._masked`); the ``masked only`` row sends every
row through the masked Op, the cost per row of a marginalised row.
``ratio`` = missing / complete. Results go to ``benchmarks/results-missing-bayes.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from unittest import mock

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from em_vs_sklearn import environment, foreign_load_now, wait_until_quiet  # noqa: E402

from bayesgmm import build_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JSON = os.path.join(ROOT, "benchmarks", "results-missing-bayes.json")


def evaluation_time(X, repeats, evaluations=200, masked_only=False):
    from bayesgmm import _masked

    def every_row_masked(X):
        pattern, observed = _masked.missing_patterns(X)
        return np.array([], dtype=np.int64), np.arange(len(X)), pattern, observed

    with mock.patch.object(_masked, "split_rows",
                           every_row_masked if masked_only else _masked.split_rows):
        model = build_model(X, 3)
    f = model.logp_dlogp_function(ravel_inputs=True, mode="NUMBA")
    f.set_extra_values({})
    x = np.concatenate([v.ravel() for v in model.initial_point().values()])
    f(x)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(evaluations):
            f(x)
        best = min(best, (time.perf_counter() - start) / evaluations)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wait-quiet", type=float, default=60.0)
    parser.add_argument("--json", default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(20261202)
    results = {"benchmark": "Bayesian log-density + gradient, missing vs complete, full K=3",
               "fraction_missing": args.fraction, "cases": [], "environment": environment()}
    for n, D in ((1000, 2), (1000, 5), (10000, 5)):
        X = rng.normal(size=(n, D)) + np.repeat(rng.normal(scale=3.0, size=(3, D)),
                                                 [n // 3, n // 3, n - 2 * (n // 3)], axis=0)
        missing = X.copy()
        mask = rng.random(X.shape) < args.fraction
        mask[mask.all(axis=1), 0] = False
        missing[mask] = np.nan
        wait_until_quiet(args.wait_quiet, print)
        load = foreign_load_now(1.0)
        row = {"n": n, "D": D, "complete_rows": int((~mask.any(axis=1)).sum()),
               "complete_us": evaluation_time(X, args.repeats) * 1e6,
               "missing_us": evaluation_time(missing, args.repeats) * 1e6,
               "masked_only_us": evaluation_time(missing, args.repeats, masked_only=True) * 1e6,
               "foreign_load_before": round(load, 2)}
        row["ratio"] = row["missing_us"] / row["complete_us"]
        row["masked_only_ratio"] = row["masked_only_us"] / row["complete_us"]
        results["cases"].append({k: round(v, 2) if isinstance(v, float) else v
                                 for k, v in row.items()})
        print(f"n={n:>6} D={D}: complete {row['complete_us']:.0f} us, 10% missing "
              f"{row['missing_us']:.0f} us ({row['ratio']:.2f}x; "
              f"{row['complete_rows'] / n:.0%} complete rows), every row masked "
              f"{row['masked_only_us']:.0f} us ({row['masked_only_ratio']:.2f}x)")
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
