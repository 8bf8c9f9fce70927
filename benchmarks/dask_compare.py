#!/usr/bin/env python
"""The main job's comparison grid on Dask workers: 1 against 2 local worker processes.

    .venv/bin/python benchmarks/dask_compare.py             # the demo's grid, ~10 min
    .venv/bin/python benchmarks/dask_compare.py --quick     # K = 1..2, short chains

The demo's grid (Old Faithful, K = 1..4 x full, tied, diag, spherical, EM and NUTS
with the demo's 1000 + 1000 draws x 4 chains) by ``compare(..., client=...)`` on a
``LocalCluster`` of 1 and of 2 worker processes (one thread each), each on a fresh
cluster: its workers compile their own models (PyTensor's disk cache is shared, so the
second cluster finds the first's compiled code). Timed: the whole ``compare`` call, and
on the workers the time inside the tasks (``distributed.get_task_stream``), whose
difference from the wall time x workers is idle workers, data transfer and the
client's own work (LOO comparison, ranking). The tables of 1 and 2 workers are checked
to be equal. Results go to ``benchmarks/results-dask-compare.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from em_vs_sklearn import environment, wait_until_quiet  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JSON = os.path.join(ROOT, "benchmarks", "results-dask-compare.json")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--wait-quiet", type=float, default=60.0)
    parser.add_argument("--json", default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster, get_task_stream

    from bayesgmm import compare, datasets
    from bayesgmm.demo import CHAINS, DRAWS, TUNE

    X = datasets.load_faithful()
    ks = range(1, 3) if args.quick else range(1, 5)
    settings = dict(draws=200, tune=200, chains=2) if args.quick else dict(
        draws=DRAWS, tune=TUNE, chains=CHAINS)
    results = {"benchmark": "compare on Old Faithful over Dask workers", "grid": {
        "n_components": list(ks), "covariance_types": ["full", "tied", "diag", "spherical"],
        **settings}, "runs": [], "environment": environment()}
    tables = {}
    for n_workers in (1, 2):
        wait_until_quiet(args.wait_quiet, print)
        with LocalCluster(n_workers=n_workers, threads_per_worker=1,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.wait_for_workers(n_workers)
            with get_task_stream(client=client) as stream:
                start = time.perf_counter()
                result = compare(X, ks, random_state=0, progressbar=False, client=client,
                                 **settings)
                wall = time.perf_counter() - start
            busy = sum(part["stop"] - part["start"] for task in stream.data
                       for part in task["startstops"] if part["action"] == "compute")
        tables[n_workers] = result.table
        run = {"workers": n_workers, "wall_seconds": round(wall, 1),
               "seconds_in_tasks": round(busy, 1),
               "idle_or_overhead_seconds": round(wall * n_workers - busy, 1)}
        results["runs"].append(run)
        print(f"{n_workers} worker(s): {wall:.1f} s wall, {busy:.1f} s inside the tasks, "
              f"{run['idle_or_overhead_seconds']:.1f} worker-seconds idle or overhead")
    results["speed_up"] = round(results["runs"][0]["wall_seconds"]
                                / results["runs"][1]["wall_seconds"], 2)
    columns = ["bic", "aic", "icl", "elpd_loo", "elpd_waic"]
    differences = (tables[1][columns] - tables[2][columns]).abs()
    difference = differences.max().max()
    results["max_table_difference"] = float(difference)
    results["max_difference_per_column"] = differences.max().to_dict()
    # the Bayesian columns come from NUTS: equal where both clusters' compiled
    # functions round alike, else within Monte Carlo error (cells listed, with LOO's SE)
    keys = tables[1][["n_components", "covariance_type"]]
    results["cells_with_different_loo"] = [
        {"n_components": int(keys.iloc[i, 0]), "covariance_type": str(keys.iloc[i, 1]),
         "elpd_loo_1_worker": float(tables[1]["elpd_loo"].iloc[i]),
         "elpd_loo_2_workers": float(tables[2]["elpd_loo"].iloc[i]),
         "elpd_loo_se": float(tables[1]["elpd_loo_se"].iloc[i])
         if "elpd_loo_se" in tables[1] else None}
        for i in np.flatnonzero(differences["elpd_loo"].to_numpy() > 0)]
    pd.testing.assert_frame_equal(tables[1][["bic", "aic", "icl"]], tables[2][["bic", "aic",
                                                                              "icl"]])
    print(f"speed-up with 2 workers: {results['speed_up']}x; largest difference between "
          f"the tables: {difference:.3g}")
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2, default=float)
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
