#!/usr/bin/env python
"""bayesgmm's bootstrap against R mclust's: 999 non-parametric replicates of Old Faithful EEE G=3.

Run from the repository root on an otherwise idle machine::

    .venv/bin/python benchmarks/bootstrap.py                 # ~1-2 min
    .venv/bin/python benchmarks/bootstrap.py --n-boot 99     # smoke run
    .venv/bin/python benchmarks/bootstrap.py --json out.json # another output file

What is timed (wall clock, each a whole call):

- ``mclust``: ``Rscript benchmarks/mclust_bootstrap_time.R --nboot=N``, i.e.
  ``MclustBootstrap(fit, nboot = N, type = "bs")`` of ``Mclust(faithful, G = 3,
  modelNames = "EEE")``, timed inside R (R's start-up and the fit excluded), in the same
  run as bayesgmm's;
- ``bayesgmm``: ``bootstrap(em, X, "nonparametric", n_boot=N, random_state=seed,
  progressbar=False)`` of ``GaussianMixtureEM(3, covariance_type="EEE", tol=1e-10)``
  fitted to the same data (the fit excluded), in five settings:

  1. ``default``: the defaults (tol 1e-8, ``n_jobs=-1``, ``batch=True``): the 999
     replicates are one batch of the batched EM, run in this process;
  2. ``mclust's rule``: ``tol`` set to mclust's stopping rule (a relative change of 1e-5
     of the log-likelihood = 1e-5 (1 + |loglik|) / n per sample), like for like: the
     same number of EM iterations' worth of convergence as mclust's, whose standard
     errors of the two overlapping weights this leaves 12% too small (see
     ``bayesgmm.bootstrap.DEFAULT_TOL``);
  3. ``one by one, cold``: ``batch=False``, one GaussianMixtureEM fit per replicate on
     all cores, the first parallel call of the process: it pays for starting the joblib
     (loky) workers, each of which imports bayesgmm;
  4. ``one by one, warm``: the same again, the workers reused;
  5. ``one by one, 1 job``: one fit after another in this process.

``ratio`` = bayesgmm seconds / mclust seconds (below 1: bayesgmm is faster). Also
printed: the mean EM iterations per replicate, the standard errors of the weights, and
the CPUs other processes used in the second before the call and, for the calls in this
process, during it (``foreign_load_now`` and ``ForeignLoad`` of ``em_vs_sklearn.py``; above 0.1
the timing is disturbed; during a parallel call bayesgmm's own workers would count). Results go to
``benchmarks/results-bootstrap.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from em_vs_sklearn import (  # noqa: E402  (the sibling script's helpers)
    ForeignLoad,
    environment,
    foreign_load_now,
    wait_until_quiet,
)

from bayesgmm import GaussianMixtureEM, datasets  # noqa: E402
from bayesgmm.bootstrap import bootstrap  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R_SCRIPT = os.path.join(ROOT, "benchmarks", "mclust_bootstrap_time.R")
DEFAULT_JSON = os.path.join(ROOT, "benchmarks", "results-bootstrap.json")
SEED = 20261201


def time_mclust(n_boot, seed):
    """The JSON line of mclust_bootstrap_time.R, as a dict."""
    output = subprocess.run(["Rscript", R_SCRIPT, f"--nboot={n_boot}", f"--seed={seed}"],
                            capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(output.strip().splitlines()[-1])


def time_bayesgmm(em, X, n_boot, seed, **options):
    load_before = foreign_load_now(1.0)
    with ForeignLoad() as load:
        start = time.perf_counter()
        result = bootstrap(em, X, n_boot=n_boot, random_state=seed, progressbar=False,
                           **options)
        seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3),
            "ms_per_replicate": round(1000 * seconds / n_boot, 3),
            "mean_n_iter": round(float(result.replicates["n_iter"].mean()), 1),
            "n_failed": result.n_failed, "n_relabelled": result.n_relabelled,
            "se_weights": [round(float(v), 5) for v in result.standard_errors()["weights"]],
            "foreign_load_before": round(load_before, 2),
            # our own joblib workers are other processes: only a call in this process
            # has a meaningful foreign load during the call
            "foreign_load": (round(load.cpus, 2)
                             if options.get("n_jobs") == 1 or options.get("batch", True)
                             else None)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=999)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--wait-quiet", type=float, default=120.0,
                        help="seconds to wait for an idle machine before each timing")
    parser.add_argument("--json", default=DEFAULT_JSON)
    args = parser.parse_args(argv)

    X = datasets.load_faithful()
    em = GaussianMixtureEM(3, covariance_type="EEE", tol=1e-10, max_iter=10_000,
                           random_state=0).fit(X)
    mclust_tol = 1e-5 * (1 + abs(em.log_likelihood_)) / len(X)
    cases = [
        ("default", {}),
        ("mclust's rule", {"tol": mclust_tol}),
        ("one by one, cold", {"batch": False}),
        ("one by one, warm", {"batch": False}),
        ("one by one, 1 job", {"batch": False, "n_jobs": 1}),
    ]
    log = print
    wait_until_quiet(args.wait_quiet, log)
    mclust = time_mclust(args.n_boot, args.seed)
    log(f"mclust {mclust['mclust_version']} (R {mclust['r_version']}): {args.n_boot} "
        f"replicates in {mclust['bootstrap_seconds']:.3f} s, se(pro) {mclust['se_pro']}")
    rows = []
    for name, options in cases:
        wait_until_quiet(args.wait_quiet, log)
        row = {"case": name, **options, **time_bayesgmm(em, X, args.n_boot, args.seed,
                                                       **options)}
        row["ratio"] = round(row["seconds"] / mclust["bootstrap_seconds"], 2)
        rows.append(row)
        log(f"{name:>22}: {row['seconds']:7.3f} s ({row['ms_per_replicate']:.2f} ms per "
            f"replicate, {row['mean_n_iter']} EM iterations), ratio {row['ratio']:5.2f}, "
            f"se(weights) {row['se_weights']}, foreign load before {row['foreign_load_before']}"
            f", during {row['foreign_load']}")
    results = {"benchmark": "bootstrap faithful EEE G=3 nonparametric",
               "n_boot": args.n_boot, "seed": args.seed, "mclust_tol": mclust_tol,
               "environment": environment(), "mclust": mclust, "bayesgmm": rows}
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    log(f"written {args.json}")


if __name__ == "__main__":
    main()
