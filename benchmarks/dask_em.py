#!/usr/bin/env python
"""EM on a Dask array read from disk, on workers with less memory than the data.

Run from the repository root on an otherwise idle machine (needs ``zarr``: installed
with nutpie, which ``make`` installs; else ``pip install zarr``)::

    .venv/bin/python benchmarks/dask_em.py                       # 1e8 x 10 float32, 4 GB
    .venv/bin/python benchmarks/dask_em.py --rows 200000000 --memory-limit 2GB   # 8 GB

Data: ``--rows`` points of 10 features from 3 diagonal Gaussians, float32, written once
to a zarr store (``--path``) in chunks of 500,000 rows; the workers (``LocalCluster``
processes, one thread each) get ``--memory-limit`` each (1.2 GB: under a third of the
default data).
Timed, for 1 and 2 workers:

- ``read``: one pass over the store (``X.sum().compute()``): the disk-read bound of an
  EM iteration (from the page cache once the store has been read: say so);
- ``iteration``: a ``GaussianMixtureEM(3, covariance_type="diag", tol=0)`` fit from a fixed
  start, ``(time(max_iter=4) - time(max_iter=1)) / 3``: one E-step + M-step pass;
- the peak memory of the busiest worker process during the fits (``MemorySampler``).

``ratio`` = iteration / read (target: within 2x). Results go to
``benchmarks/results-dask-em.json``.
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
from em_vs_sklearn import environment, wait_until_quiet  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JSON = os.path.join(ROOT, "benchmarks", "results-dask-em.json")
CHUNK = 500_000
MEANS = np.array([np.zeros(10), np.full(10, 3.0), np.linspace(-3, 3, 10)], dtype=np.float32)


def _chunk(block_id, rows):
    rng = np.random.default_rng(block_id)
    labels = rng.integers(3, size=rows)
    return (MEANS[labels] + rng.standard_normal((rows, 10), dtype=np.float32)).astype(
        np.float32)


def write_store(path, n):
    import dask.array as da

    if os.path.exists(path):
        X = da.from_zarr(path)
        if X.shape == (n, 10):
            return X
        import shutil

        shutil.rmtree(path)
    chunks = [CHUNK] * (n // CHUNK) + ([n % CHUNK] if n % CHUNK else [])
    blocks = [da.from_delayed(_delayed_chunk(i, rows), (rows, 10), np.float32)
              for i, rows in enumerate(chunks)]
    da.concatenate(blocks).rechunk((CHUNK, 10)).to_zarr(path)
    return da.from_zarr(path)


def _delayed_chunk(i, rows):
    import dask

    return dask.delayed(_chunk)(i, rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--path", default="/tmp/bayesgmm-dask-bench.zarr")
    parser.add_argument("--memory-limit", default=None,
                        help="per worker, e.g. 2GB (default: 1.2GB, at most a quarter of "
                             "the default data; a worker that has imported bayesgmm and "
                             "PyMC uses about 0.3 GB before any data)")
    parser.add_argument("--wait-quiet", type=float, default=60.0)
    parser.add_argument("--json", default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster
    from distributed.diagnostics import MemorySampler

    from bayesgmm import GaussianMixtureEM

    data_bytes = args.rows * 10 * 4
    limit = args.memory_limit or "1200MB"
    init = {"weights_init": np.full(3, 1 / 3), "means_init": MEANS.astype(float) + 0.2,
            "precisions_init": np.ones((3, 10))}
    results = {"benchmark": "EM on a zarr-backed Dask array, diag K=3, D=10",
               "rows": args.rows, "data_gb": round(data_bytes / 1e9, 2),
               "memory_limit_per_worker": limit, "runs": [], "environment": environment()}
    for n_workers in (1, 2):
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, memory_limit=limit,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            X = write_store(args.path, args.rows)
            wait_until_quiet(args.wait_quiet, print)
            X.sum().compute()  # the store in the page cache, as every later pass finds it
            start = time.perf_counter()
            X.sum().compute()
            read = time.perf_counter() - start
            sampler = MemorySampler()
            times = {}
            with sampler.sample("fit", measure="process", interval=0.2):
                for max_iter in (1, 4):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        em = GaussianMixtureEM(3, covariance_type="diag", tol=0,
                                               max_iter=max_iter, **init)
                        start = time.perf_counter()
                        em.fit(X)
                        times[max_iter] = time.perf_counter() - start
            iteration = (times[4] - times[1]) / 3
            peak = client.run(lambda: __import__("psutil").Process().memory_info().rss)
            total_peak = float(sampler.to_pandas()["fit"].max())
            run = {"workers": n_workers, "read_seconds": round(read, 2),
                   "iteration_seconds": round(iteration, 2),
                   "ratio": round(iteration / read, 2),
                   "peak_process_memory_gb_all_workers": round(total_peak / 1e9, 2),
                   "worker_rss_after_gb": [round(v / 1e9, 2) for v in peak.values()],
                   "fit_max_iter_4_seconds": round(times[4], 2)}
            results["runs"].append(run)
            print(f"{n_workers} worker(s), {limit} each: read {read:.2f} s, iteration "
                  f"{iteration:.2f} s ({run['ratio']}x the read), peak memory of all "
                  f"workers {run['peak_process_memory_gb_all_workers']} GB "
                  f"(data {results['data_gb']} GB)")
    results["speed_up_2_workers"] = round(results["runs"][0]["iteration_seconds"]
                                          / results["runs"][1]["iteration_seconds"], 2)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    print(f"2 workers: {results['speed_up_2_workers']}x one worker's iteration; "
          f"written {args.json}")


if __name__ == "__main__":
    main()
