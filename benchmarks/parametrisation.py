#!/usr/bin/env python
"""Which parametrisation of the Bayesian mixture samples best on small data?

Run from the repository root::

    .venv/bin/python benchmarks/parametrisation.py              # about 15 min
    .venv/bin/python benchmarks/parametrisation.py --quick      # a smoke run

The prior and the likelihood are the same in every variant (bayesgmm's defaults
for ``covariance_type="full"``: Dirichlet(1) weights, Normal(data mean, data range)
means, LKJ(2) correlations with HalfNormal(data sd) standard deviations; the fused
mixture log-density); only the coordinates NUTS moves in differ:

* ``packed`` (bayesgmm's parametrisation before this study): ``means ~
  Normal(mu0, s0)``; each covariance's packed Cholesky factor ``L`` with its
  diagonal on the log scale (``LKJCholeskyCov``'s coordinates; its density
  vectorised over components by :func:`lkj_cholesky_cov` below).
* ``packed_noncentred``: the same with ``means = mu0 + s0 * raw``,
  ``raw ~ Normal(0, 1)``.
* ``sd_corr`` (bayesgmm's choice since): standard deviations and correlations
  apart, ``sds ~ HalfNormal`` (log scale) and the correlation's Cholesky factor
  ``C ~ LKJCorr`` (PyMC's unit-row-norm transform), ``L = diag(sds) C``; centred
  means. Exactly ``build_model``'s full-covariance model.

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
VARIANTS = ("packed", "packed_noncentred", "sd_corr")


def unpack_tril(packed, n):
    """Lower-triangular matrices (..., n, n) from their rows packed as (..., n (n + 1) / 2)."""
    import pytensor.tensor as pt

    rows, cols = np.tril_indices(n)
    batch = [packed.shape[axis] for axis in range(packed.ndim - 1)]
    return pt.zeros((*batch, n, n), dtype=packed.dtype)[..., rows, cols].set(packed)


def lkj_cholesky_cov(name, n, eta, sd_sigma, *, shape, dims=None):
    """Packed Cholesky factors of covariances, each ``LKJCholeskyCov(n, eta, HalfNormal(sd_sigma))``.

    The same prior as ``pm.LKJCholeskyCov(name, n=n, eta=eta,
    sd_dist=pm.HalfNormal.dist(sd_sigma), compute_corr=False)`` (LKJ(eta)
    correlations, half-normal standard deviations; same packing, same
    log-transformed diagonal, same log-density), but for any number of factors
    at once: ``shape`` is ``(*batch, n (n + 1) / 2)``. PyMC's own log-density
    handles one vector only, so a model with K components needed K variables
    and K copies of the graph, which were most of the model's nodes, compile
    time and prior cost per gradient. Here one vectorised graph serves them all
    (checked against PyMC's to 1e-12 when it was bayesgmm's prior).

    For the row norms ``s_i = |L_i|`` (the standard deviations) of a factor
    with diagonal ``L_ii``, the log-density is

        log C(eta, n) + sum_i [(2 eta - 2 + n - i) log(L_ii / s_i) - i log s_i
                               + log HalfNormal(s_i | sd_sigma_i)]

    (``i`` from 0): PyMC's LKJ term, its Jacobian from (standard deviations,
    correlation factor) to ``L``, and the standard deviations' prior.
    """
    import pymc as pm
    import pytensor.tensor as pt
    from pymc.distributions.multivariate import _lkj_normalizing_constant
    from pymc.distributions.transforms import CholeskyCovPacked

    i = np.arange(n)

    def logp(value, eta, sd_sigma):
        L = unpack_tril(value, n)  # the same node as the likelihood's (merged by PyTensor)
        log_sd = 0.5 * pt.log((L ** 2).sum(axis=-1))
        log_diag = pt.log(pt.diagonal(L, axis1=-2, axis2=-1))
        half_normal = 0.5 * np.log(2 / np.pi) - pt.log(sd_sigma) \
            - 0.5 * (pt.exp(log_sd) / sd_sigma) ** 2
        terms = (2 * eta - 2 + n - i) * (log_diag - log_sd) - i * log_sd + half_normal
        return terms.sum(axis=-1) + _lkj_normalizing_constant(eta, n)

    def dist(eta, sd_sigma, size):
        return pm.LKJCholeskyCov.dist(n=n, eta=eta, sd_dist=pm.HalfNormal.dist(sd_sigma, shape=n),
                                      compute_corr=False, size=size)

    return pm.CustomDist(name, eta, sd_sigma, dist=dist, logp=logp, signature="(),(n)->(m)",
                         transform=CholeskyCovPacked(n), shape=shape, dims=dims)


def build(variant, X, spec):
    import pymc as pm
    import pytensor.tensor as pt

    from bayesgmm._fused import mixture_log_density

    p = spec.priors
    with pm.Model() as model:
        data = pm.Data("X", X)
        weights = pm.Dirichlet("weights", a=p.alpha, shape=(K,))
        if variant == "packed_noncentred":
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
            chol = unpack_tril(packed, D)
            pm.Deterministic("sigmas", pt.sqrt((chol ** 2).sum(-1)))
        center = spec.center
        pm.Potential("loglik", mixture_log_density(
            data - center, pt.log(weights), means - center, chol).sum())
    return model


def start_points(variant, em, spec, chains, rng):
    """The EM solution, jittered per chain, in the variant's coordinates."""
    from bayesgmm.model import sds_and_corr_chol

    p = spec.priors
    full = em.covariances_
    sds = np.sqrt(np.diagonal(full, axis1=1, axis2=2))
    points = []
    for _ in range(chains):
        w = em.weights_ * np.exp(rng.normal(0, 0.05, K))
        means = em.means_ + rng.normal(0, 0.05, (K, D)) * sds
        cov = full * np.exp(rng.normal(0, 0.05, K))[:, None, None]
        point = {"weights": w / w.sum()}
        if variant == "packed_noncentred":
            point["means_raw"] = (means - p.means_mu) / p.means_sigma
        else:
            point["means"] = means
        if variant == "sd_corr":
            point["sigmas"], point["corr_chol"] = sds_and_corr_chol(cov)
        else:
            point["chol_cov"] = np.linalg.cholesky(cov)[:, *np.tril_indices(D)]
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
                          init="adapt_diag",
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
