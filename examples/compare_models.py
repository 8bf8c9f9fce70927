"""Compare numbers of components and covariance structures by BIC/AIC/ICL and LOO/WAIC.

    python examples/compare_models.py [OUT_DIR]
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from bayesgmm import compare, datasets  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else "example-output")
out.mkdir(parents=True, exist_ok=True)

X = datasets.load_galaxies() / 1000  # velocities in 1000 km/s
# 4 chains x 1000 draws: compare ranks only models whose chains agree (R-hat <= 1.01,
# bulk ESS >= 400) and whose LOO is reliable; the others are named with the reason
result = compare(X, range(1, 5), ("diag",), draws=1000, tune=1000, chains=4,
                 random_state=0, progressbar=False)
columns = ["n_components", "bic", "icl", "elpd_loo", "elpd_loo_diff", "elpd_loo_dse",
           "max_rhat", "set_aside"]
print(result.table[columns].round(2).to_string(index=False))
print(result.agreement())
result.plot().savefig(out / "compare_models.png", dpi=100)
print(f"figure written to {out / 'compare_models.png'}")
