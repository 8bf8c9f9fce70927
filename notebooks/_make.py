"""Write the notebooks (outputs stripped). Run: python notebooks/_make.py"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent


def notebook(name, cells):
    nb = new_notebook(cells=[new_markdown_cell(c[3:]) if c.startswith("md:") else
                             new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, HERE / name)


notebook("01_iris_em.ipynb", [
    "md:# Iris: three clusters by EM\n\nSepal length and width of the 150 iris flowers "
    "(scikit-learn's copy of Fisher's data), three full-covariance components by EM. "
    "How well do the clusters recover the species?",
    "import matplotlib.pyplot as plt\nimport pandas as pd\nfrom sklearn.datasets import "
    "load_iris\nfrom sklearn.metrics import adjusted_rand_score\n\n"
    "from bayesgmm import GaussianMixtureEM, plots\n\niris = load_iris(as_frame=True)\n"
    "X = iris.data[['sepal length (cm)', 'sepal width (cm)']]\nspecies = iris.target",
    "model = GaussianMixtureEM(3, covariance_type='full', n_init=10, tol=1e-6, "
    "random_state=0).fit(X)\nmodel.to_xarray()",
    "ax = plots.plot_clusters(model, X)\nax.set_title('EM, 3 full components');",
    "labels = model.predict(X)\nari = adjusted_rand_score(species, labels)\n"
    "print(f'adjusted Rand index against the species: {ari:.2f}')\n"
    "pd.crosstab(iris.target_names[species], labels, rownames=['species'], "
    "colnames=['cluster'])",
    "md:Setosa separates cleanly; versicolor and virginica overlap in the sepal "
    "measurements, which is where the clusters and the species disagree. The "
    "uncertainty plot shows the same: large points are the unsure ones.",
    "plots.plot_uncertainty(model, X);",
    "assert ari > 0.4  # the notebook's claim, checked when the test suite runs it",
])

notebook("02_one_dimensional_em.ipynb", [
    "md:# A 1-D mixture, EM step by step\n\n200 points from N(0, 1) and 600 from "
    "N(4, 1.5²). We run EM one iteration at a time (warm starts) and watch the "
    "log-likelihood climb, then compare the fitted density with a kernel density "
    "estimate.",
    "import matplotlib.pyplot as plt\nimport numpy as np\n\nfrom bayesgmm import "
    "GaussianMixtureEM, datasets, plots\n\nx, truth = datasets.simulate_mixture(800, "
    "[0.25, 0.75], [[0.0], [4.0]], [[[1.0]], [[2.25]]], random_state=1)",
    "step = GaussianMixtureEM(2, max_iter=1, warm_start=True, random_state=0)\n"
    "history = []\nimport warnings\nwith warnings.catch_warnings():\n"
    "    warnings.simplefilter('ignore')  # one iteration never 'converges'\n"
    "    for i in range(8):\n        step.fit(x)\n"
    "        history.append((i + 1, step.log_likelihood_, *step.means_.ravel()))\n"
    "for row in history:\n    print('iteration {}: log-likelihood {:.2f}, means {:.3f} "
    "{:.3f}'.format(*row))",
    "model = GaussianMixtureEM(2, tol=1e-8, max_iter=500, random_state=0).fit(x)\n"
    "fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))\n"
    "plots.plot_log_likelihood(model, ax=left)\nplots.plot_density(model, x, ax=right);",
    "print('weights', model.weights_.round(3), 'means', model.means_.ravel().round(3), "
    "'sds', np.sqrt(model.covariances_.ravel()).round(3))\n"
    "assert np.all(np.diff(model.log_likelihood_trace_) >= -1e-9)",
])

notebook("03_small_data_priors.ipynb", [
    "md:# Small data: EM, MAP and the full posterior\n\n30 points from three "
    "clusters. With so few points maximum likelihood is fragile; priors stabilise the "
    "fit and the posterior says how sure each membership is. Short chains (2 x 500) "
    "keep this notebook quick; use more for real work.",
    "import matplotlib.pyplot as plt\nimport numpy as np\n\nfrom bayesgmm import "
    "GaussianMixtureBayes, GaussianMixtureEM, datasets, plots\n\n"
    "means = [[0, 0], [4, 1], [1, 4]]\ncovs = [np.eye(2) * 0.6] * 3\n"
    "X, truth = datasets.simulate_mixture(30, [0.4, 0.3, 0.3], means, covs, "
    "random_state=7)",
    "em = GaussianMixtureEM(3, n_init=10, random_state=0).fit(X)\n"
    "mapfit = GaussianMixtureBayes(3, random_state=0).fit(X, method='map')\n"
    "bayes = GaussianMixtureBayes(3, random_state=0).fit(X, draws=500, tune=500, "
    "chains=2, progressbar=False)\n"
    "print('EM weights ', em.weights_.round(2))\n"
    "print('MAP weights', mapfit.posterior['weights'].values.ravel().round(2))",
    "bayes.summary().round(2)",
    "fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))\n"
    "plots.plot_clusters(bayes, X, n_draws=30, ax=axes[0])\n"
    "plots.plot_uncertainty(bayes, X, ax=axes[1]);",
    "md:The thin ellipses are posterior draws: with 10 points per cluster the "
    "covariances are uncertain, and points between clusters get wide membership "
    "intervals. EM reports none of this.",
    "width = (bayes.membership(X)['upper'] - bayes.membership(X)['lower']).max('component')\n"
    "print(f'widest membership interval: {float(width.max()):.2f}')\n"
    "table = bayes.diagnose(warn=False)\nprint('max R-hat', table['r_hat'].max().round(3))",
])

notebook("04_model_comparison.ipynb", [
    "md:# Model comparison: Old Faithful and the galaxies\n\nBIC, AIC and ICL from EM "
    "beside LOO and WAIC from the posterior. Short chains (2 x 300) and a small grid "
    "keep it to a few minutes on 2 cores.",
    "import matplotlib.pyplot as plt\n\nfrom bayesgmm import compare, datasets",
    "faithful = compare(datasets.load_faithful(), range(1, 4), ('full', 'tied'), "
    "draws=300, tune=300, chains=2, random_state=0, progressbar=False)\n"
    "faithful.table[['n_components', 'covariance_type', 'bic', 'icl', 'elpd_loo', "
    "'elpd_loo_diff', 'elpd_loo_dse', 'loo_weight']].round(2)",
    "print(faithful.agreement())\nfaithful.plot();",
    "md:On Old Faithful BIC picks three tied components (mclust's EEE), ICL the two "
    "obvious clusters; LOO's differences among the 2- and 3-component models are "
    "within about one standard error of the difference.",
    "galaxies = compare(datasets.load_galaxies() / 1000, range(1, 5), ('diag',), "
    "draws=300, tune=300, chains=2, random_state=0, progressbar=False)\n"
    "print(galaxies.agreement())\ngalaxies.plot();",
    "md:For the 82 galaxy velocities the criteria split between three and four "
    "components: the small clusters at the extremes hold a handful of galaxies each, "
    "exactly where penalised likelihood and predictive criteria weigh evidence "
    "differently.",
    "assert faithful.best('bic') == (3, 'tied')",
])
