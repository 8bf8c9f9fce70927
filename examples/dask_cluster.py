"""The same code on a laptop, on a LocalCluster and on a real cluster (Dask).

    python examples/dask_cluster.py [OUT_DIR]                          # a LocalCluster
    python examples/dask_cluster.py OUT_DIR --scheduler tcp://host:8786   # a running cluster

What runs where:

- laptop: ``Client()`` starts local worker processes (here: ``LocalCluster`` with two);
- a running cluster: ``Client("tcp://scheduler:8786")`` (``--scheduler``);
- SLURM or PBS (``pip install dask-jobqueue``)::

      from dask_jobqueue import SLURMCluster        # or PBSCluster
      cluster = SLURMCluster(cores=1, processes=1, memory="4GB", walltime="01:00:00")
      cluster.scale(jobs=8)                          # eight one-core workers
      client = Client(cluster)

- Kubernetes (``pip install dask-kubernetes``): ``KubeCluster(...)`` the same way.

Every worker needs bayesgmm (the same version as the client) and its dependencies
installed; the data must be readable by every worker (a shared file system or object
store for the zarr store below). Nothing else in the code changes.
"""

import argparse
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster

from bayesgmm import GaussianMixtureEM, compare, datasets

MEANS = np.array([[0.0, 0.0, 0.0], [3.0, 1.0, -2.0]])


def simulate_chunk(block, block_info=None):
    index = block_info[None]["chunk-location"][0]
    rng = np.random.default_rng(index)
    rows = block.shape[0]
    labels = rng.random(rows) < 0.7
    X = MEANS[labels.astype(int)] + rng.standard_normal((rows, 3))
    X[rng.random(X.shape) < 0.05] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.0  # a row keeps at least one entry
    return X


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="example-output")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.scheduler:
        client = Client(args.scheduler)
    else:
        client = Client(LocalCluster(n_workers=2, threads_per_worker=1,
                                     dashboard_address=None))
    print(f"workers: {len(client.scheduler_info()['workers'])}")

    # --- Data larger than a worker's memory: a zarr store read in chunks of rows ------
    # (here 400,000 rows of 3 features from two clusters, 5% of the entries missing;
    # for real data: X = da.from_zarr("s3://bucket/cells.zarr") or xarray.open_zarr(...))
    store = out / "cells.zarr"
    template = da.zeros((400_000, 3), chunks=(50_000, 3))
    template.map_blocks(simulate_chunk, dtype=float).to_zarr(str(store), overwrite=True)
    X = da.from_zarr(str(store))

    # EM reads the store once per iteration; NaN entries are marginalised chunk by chunk
    em = GaussianMixtureEM(2, covariance_type="VVV", tol=1e-6, random_state=0).fit(X)
    order = np.argsort(em.means_[:, 0])
    print(f"EM: {em.n_iter_} iterations, converged {em.converged_}, "
          f"{em.n_missing_} missing entries marginalised")
    print("means:", (em.means_[order].round(2) + 0.0).tolist(), "weights:",
          em.weights_[order].round(3).tolist())
    print(f"BIC {em.bic(X):.1f}  ICL {em.icl(X):.1f}")
    # lazy outputs, written back next to the data without loading them whole
    da.to_zarr(em.predict(X), str(out / "labels.zarr"), overwrite=True)
    da.to_zarr(em.impute(X), str(out / "imputed.zarr"), overwrite=True)
    print("labels and imputed data written to", out)

    # --- A comparison grid: every (K, family) cell is one task on the cluster ----------
    faithful = datasets.load_faithful()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare(faithful, range(1, 4), ("VVV", "EEE", "VVI", "EII"),
                         methods=("em",), random_state=0, progressbar=False, client=client)
    best = result.table.sort_values("bic").iloc[0]
    print(f"compare on the cluster: {len(result.table)} cells; BIC chooses "
          f"{best['covariance_type']} with K = {best['n_components']}")
    client.close()


if __name__ == "__main__":  # the worker processes import this file
    main()
