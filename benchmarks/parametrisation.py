#!/usr/bin/env python
"""Which parametrisation of the Bayesian mixture samples best on small data?

Run from the repository root::

    .venv/bin/python benchmarks/parametrisation.py              # about 15 min
    .venv/bin/python benchmarks/parametrisation.py --quick      # a smoke run

The prior and the likelihood are the same in every variant (bayesgmm's defaults
for ``covariance_type="full"``: Dirichlet(1) weights, Normal(data mean, data range)
means, LKJ(2) correlations with HalfNormal(data sd) standard deviations; the fused
mixture log-density); only the coordinates NUTS moves in differ:

* ``centred`` (bayesgmm's choice): ``means ~ Normal(mu0, s0)``; each covariance's
  packed Cholesky factor ``L`` with its diagonal on the log scale
  (``LKJCholeskyCov``'s transform, :func:`bayesgmm.model.lkj_cholesky_cov`).
* ``noncentred_means``: ``means = mu0 + s0 * raw`` with ``raw ~ Normal(0, 1)``.
* ``sd_corr``: standard deviations and correlations apart: ``sigmas ~
  HalfNormal`` (log scale) and the correlation's Cholesky factor ``~ LKJCorr``
  (PyMC's canonical-partial-correlation transform), ``L = diag(sigmas) C``.

Data: ``n`` points (default 30 and 90, i.e. 10 and 30 per component) from the
well-separated 3-component, 2-feature mixture of ``bayes_sampling.py``, several
seeds. Each fit: PyMC's NUTS, 4 chains x (``--tune`` + ``--draws``), target_accept
0.9, chains started near the EM solution (as ``GaussianMixtureBayes`` does).
Reported per variant, summed or averaged over the seeds: divergences, mean tree
depth and leapfrog steps per draw, min ESS-bulk and max R-hat over the weights,
means and standard deviations (components ordered by their first mean in each
draw, which is unambiguous for this well-separated truth), and min ESS-bulk per
second of sampling.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, ".")
from benchmarks.bayes_sampling import TRUE_COVS, TRUE_MEANS, TRUE_WEIGHTS  # noqa: E402

K, D = 3, 2
VARIANTS = ("centred", "noncentred_means", "sd_corr")


def build(variant, X, spec):
    import pymc as pm
    import pytensor.tensor as pt

    from bayesgmm._fused import mixture_log_density
    from bayesgmm.model import lkj_cholesky_cov

    p = spec.priors
    with pm.Model() as model:
        data = pm.Data("X", X)
        weights = pm.Dirichlet("weights", a=p.alpha, shape=(K,))
        if variant == "noncentred_means":
            raw = pm.Normal("means_raw", 0.0, 1.0, shape=(K, D))
            means = pm.Deterministic("means", p.means_mu + p.means_sigma * raw)
        else:
            means = pm.Normal("means", mu=p.means_mu, sigma=p.means_sigma, shape=(K, D))
        if variant == "sd_corr":
            sigmas = pm.HalfNormal("sigmas", sigma=p.sd_sigma, shape=(K, D))
            corr_chol = pm.LKJCorr("corr_chol", n=D, eta=p.eta, shape=(K, D, D))
            chol = sigmas[:, :, None] * corr_chol
        else:
            packed = lkj_cholesky_cov("chol_cov", D, p.eta, p.sd_sigma, shape=(K, 3))
            rows, cols = np.tril_indices(D)
            chol = pt.zeros((K, D, D))[:, rows, cols].set(packed)
            pm.Deterministic("sigmas", pt.sqrt((chol ** 2).sum(-1)))
        center = spec.center
        pm.Potential("loglik", mixture_log_density(
            data - center, pt.log(weights), means - center, chol).sum())
    return model


def start_points(variant, em, spec, chains, rng):
    """The EM solution, jittered per chain, in the variant's coordinates."""
    p = spec.priors
    full = em.covariances_
    sds = np.sqrt(np.diagonal(full, axis1=1, axis2=2))
    points = []
    for _ in range(chains):
        w = em.weights_ * np.exp(rng.normal(0, 0.05, K))
        means = em.means_ + rng.normal(0, 0.05, (K, D)) * sds
        cov = full * np.exp(rng.normal(0, 0.05, K))[:, None, None]
        point = {"weights": w / w.sum()}
        if variant == "noncentred_means":
            point["means_raw"] = (means - p.means_mu) / p.means_sigma
        else:
            point["means"] = means
        chol = np.linalg.cholesky(cov)
        if variant == "sd_corr":
            sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
            point["sigmas"] = sd
            point["corr_chol"] = chol / sd[:, :, None]
        else:
            point["chol_cov"] = chol[:, *np.tril_indices(D)]
        points.append(point)
    return points


def ordered_draws(posterior):
    """weights, means, sigmas with components sorted by the first mean, per draw."""
    means = posterior["means"].values  # (chain, draw, K, D)
    order = np.argsort(means[..., 0], axis=-1)
    take = lambda a: np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 3)), 2)
    return {"weights": take(posterior["weights"].values), "means": take(means),
            "sigmas": take(posterior["sigmas"].values)}


def fit(variant, n, seed, draws, tune, chains):
    import arviz_stats
    import pymc as pm

    from bayesgmm import GaussianMixtureEM
    from bayesgmm.datasets import simulate_mixture
    from bayesgmm.model import make_spec

    X, _ = simulate_mixture(n, TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVS, random_state=seed)
    spec = make_spec(X, K, "full")
    em = GaussianMixtureEM(K, covariance_type="full", n_init=5, random_state=seed).fit(X)
    model = build(variant, X, spec)
    rng = np.random.default_rng(seed)
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=2, target_accept=0.9,
                          initvals=start_points(variant, em, spec, chains, rng),
                          random_seed=seed, progressbar=False, compute_convergence_checks=False)
        wall = time.perf_counter() - t
    posterior, stats = idata["posterior"], idata["sample_stats"]
    ordered = ordered_draws(posterior)
    ess = min(float(np.min(arviz_stats.ess(v, method="bulk"))) for v in ordered.values())
    rhat = max(float(np.max(arviz_stats.rhat(v))) for v in ordered.values())
    sampling = float(posterior.attrs.get("sampling_time", wall))
    return {"variant": variant, "n": n, "seed": seed,
            "divergences": int(stats["diverging"].values.sum()),
            "tree_depth": float(stats["tree_depth"].values.mean()),
            "steps": float(stats["n_steps"].values.mean()),
            "min_ess_bulk": ess, "max_rhat": rhat, "sampling_s": sampling,
            "ess_per_s": ess / sampling}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[30, 90])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.seeds, args.draws, args.tune = [30], 1, 100, 100
    rows = []
    for n in args.n:
        for seed in range(args.seeds):
            for variant in VARIANTS:
                row = fit(variant, n, 1000 + seed, args.draws, args.tune, args.chains)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\n{'n':>4} {'variant':<18} {'div':>5} {'depth':>6} {'steps':>6} {'minESS':>7} "
          f"{'maxRhat':>8} {'ESS/s':>7}   (seeds: {args.seeds}; divergences summed, rest mean)")
    for n in args.n:
        for variant in VARIANTS:
            sel = [r for r in rows if r["n"] == n and r["variant"] == variant]
            mean = lambda key: np.mean([r[key] for r in sel])
            print(f"{n:>4} {variant:<18} {sum(r['divergences'] for r in sel):>5} "
                  f"{mean('tree_depth'):>6.2f} {mean('steps'):>6.1f} {mean('min_ess_bulk'):>7.0f} "
                  f"{max(r['max_rhat'] for r in sel):>8.3f} {mean('ess_per_s'):>7.0f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
