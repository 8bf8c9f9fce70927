"""Fit a Gaussian mixture by EM, read the criteria, and look at the fit.

    python examples/fit_em.py [OUT_DIR]
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bayesgmm import GaussianMixtureEM, datasets, plots  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else "example-output")
out.mkdir(parents=True, exist_ok=True)

X = datasets.load_faithful()
model = GaussianMixtureEM(3, covariance_type="EEE", n_init=10, tol=1e-6,
                          random_state=0).fit(X)
print(f"log-likelihood {model.log_likelihood_:.3f} (mclust: -1126.326)")
print(f"BIC {model.bic(X):.2f}, AIC {model.aic(X):.2f}, ICL {model.icl(X):.2f}")
print(model.to_xarray()["means"].to_pandas().round(3))

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
plots.plot_clusters(model, X, ax=left)
plots.plot_log_likelihood(model, ax=right)
fig.tight_layout()
fig.savefig(out / "fit_em.png", dpi=100)
print(f"figure written to {out / 'fit_em.png'}")
