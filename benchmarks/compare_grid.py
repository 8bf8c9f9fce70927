"""Wall time of bayesgmm.compare on Old Faithful, split into EM, compilation and sampling.

    .venv/bin/python benchmarks/compare_grid.py            # default grid: K = 1..6 x 4 types
    .venv/bin/python benchmarks/compare_grid.py --quick    # K = 1..2, short chains
    .venv/bin/python benchmarks/compare_grid.py --repeat   # run the grid twice in one process

Every stage is timed by wrapping the functions in place:
- EM: ``GaussianMixtureEM.fit``;
- compilation: PyTensor ``FunctionMaker`` (graph rewriting and linking) plus, for
  numba, the first call of each compiled function (numba compiles lazily), i.e.
  ``pm.sample``'s wall time before the first NUTS step;
- sampling: ``posterior.attrs["sampling_time"]`` of each ``pm.sample`` call;
- SMC (with ``--evidence``): ``pm.sample_smc``;
- the rest (relabelling, pointwise log-likelihood, LOO/WAIC, diagnostics).
It also counts compiled functions: the PyTensor functions built and the
log-density+gradient functions (``Model.logp_dlogp_function``), which must be one
per (K, covariance type).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import time

import numpy as np


class Timers:
    def __init__(self):
        self.seconds = collections.Counter()
        self.calls = collections.Counter()

    @contextlib.contextmanager
    def wrap(self, owner, name, label, after=None):
        original = getattr(owner, name)
        timers = self

        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            try:
                result = original(*args, **kwargs)
            finally:
                timers.seconds[label] += time.perf_counter() - start
                timers.calls[label] += 1
            if after is not None:
                after(result, start)
            return result

        setattr(owner, name, wrapped)
        try:
            yield
        finally:
            setattr(owner, name, original)


def run(args):
    import pymc as pm
    from pytensor.compile.maker import FunctionMaker

    from bayesgmm import GaussianMixtureEM, compare, datasets

    X = datasets.load_faithful()
    timers = Timers()

    def after_sample(idata, start):
        posterior = idata["posterior"]
        sampling = float(posterior.attrs.get("sampling_time", np.nan))
        timers.seconds["sampling (NUTS)"] += sampling
        first = idata["sample_stats"]["perf_counter_start"].values.min() \
            if "perf_counter_start" in idata["sample_stats"] else np.nan
        timers.seconds["pm.sample before first step"] += first - start

    kwargs = dict(draws=args.draws, tune=args.tune, chains=args.chains,
                  evidence=args.evidence, smc_draws=args.smc_draws, random_state=0,
                  progressbar=False)
    with contextlib.ExitStack() as stack:
        stack.enter_context(timers.wrap(GaussianMixtureEM, "fit", "EM"))
        stack.enter_context(timers.wrap(FunctionMaker, "__init__", "PyTensor FunctionMaker"))
        stack.enter_context(timers.wrap(pm.Model, "logp_dlogp_function",
                                        "logp_dlogp_function"))
        stack.enter_context(timers.wrap(pm, "sample", "pm.sample", after=after_sample))
        stack.enter_context(timers.wrap(pm, "sample_smc", "pm.sample_smc"))
        for repeat in range(2 if args.repeat else 1):
            timers.seconds.clear()
            timers.calls.clear()
            start = time.perf_counter()
            result = compare(X, range(1, args.max_components + 1), **kwargs)
            wall = time.perf_counter() - start
            report(result, timers, wall, repeat, args)


def report(result, timers, wall, repeat, args):
    n_models = len(result.table)
    s = timers.seconds
    em = s["EM"]
    before_first = s["pm.sample before first step"]
    sampling = s["sampling (NUTS)"]
    sample_total = s["pm.sample"]
    smc = s["pm.sample_smc"]
    rest = wall - em - sample_total - smc
    print(f"\n=== grid {'(second run, same process)' if repeat else ''}: "
          f"{n_models} models, K=1..{args.max_components} x 4 covariance types, "
          f"{args.chains} chains x ({args.tune} tune + {args.draws} draws)")
    rows = [
        ("whole compare()", wall),
        ("EM (n_init=5 each)", em),
        ("pm.sample, before the first NUTS step (compile + start chains)", before_first),
        ("pm.sample, sampling_time", sampling),
        ("pm.sample, total", sample_total),
        ("pm.sample_smc (evidence)", smc),
        ("the rest (relabel, log-lik, LOO/WAIC, diagnostics, model build, MAP)", rest),
    ]
    for label, value in rows:
        print(f"  {label:<72s} {value:8.1f} s")
    print(f"  PyTensor functions built: {timers.calls['PyTensor FunctionMaker']} "
          f"({s['PyTensor FunctionMaker']:.1f} s in FunctionMaker)")
    print(f"  logp+dlogp functions compiled: {timers.calls['logp_dlogp_function']} "
          f"for {n_models} models (one per model: "
          f"{'yes' if timers.calls['logp_dlogp_function'] == n_models else 'NO'})")
    failed = result.table[result.table.get("bayes_error", "") != ""]
    if len(failed):
        print(f"  failed Bayesian fits: {len(failed)}")
    print(result.agreement())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = 1..2, 200 + 200 draws")
    parser.add_argument("--max-components", type=int, default=6)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--evidence", action="store_true")
    parser.add_argument("--smc-draws", type=int, default=1000)
    parser.add_argument("--repeat", action="store_true",
                        help="run the grid twice in one process (in-memory caches warm)")
    args = parser.parse_args()
    if args.quick:
        args.max_components, args.draws, args.tune = 2, 200, 200
    run(args)


if __name__ == "__main__":
    main()
