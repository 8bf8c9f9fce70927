"""Fit the Bayesian mixture with NUTS, check the diagnostics, read the posterior.

    python examples/fit_bayes.py [OUT_DIR]

Short chains (2 x 300 draws) keep it quick; use the defaults (4 x 1000) for real work.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from bayesgmm import GaussianMixtureBayes, datasets, plots  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else "example-output")
out.mkdir(parents=True, exist_ok=True)

X = datasets.load_faithful()
model = GaussianMixtureBayes(2, random_state=0).fit(X, draws=300, tune=300, chains=2,
                                                     progressbar=False)
table = model.diagnose(warn=False)
print(f"max R-hat {table['r_hat'].max():.3f}, min ESS-bulk {table['ess_bulk'].min():.0f}, "
      f"divergences {table.attrs['divergences']}, draws relabelled "
      f"{model.relabel_['n_permuted']}")
print(model.summary().round(3).to_string())
membership = model.membership(X)
unsure = (membership["upper"] - membership["lower"]).max("component")
print(f"points whose membership interval is wider than 0.5: {int((unsure > 0.5).sum())}")
ax = plots.plot_clusters(model, X, n_draws=20)
ax.figure.savefig(out / "fit_bayes.png", dpi=100)
print(f"figure written to {out / 'fit_bayes.png'}")
