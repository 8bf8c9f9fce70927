"""compare(): EM criteria, Bayesian LOO/WAIC/evidence, choices, table, plot."""

import itertools
import warnings

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import gammaln, logsumexp

from bayesgmm import GaussianMixtureBayes, compare, datasets
from bayesgmm.compare import ModelComparison, waic
from bayesgmm.priors import Dirichlet, GMMPriors, InverseGamma, Normal

MEANS = np.array([[0.0, 0.0], [7.0, 7.0], [14.0, 0.0]])
COVS = np.array([[[1.0, 0.6], [0.6, 1.0]], [[1.0, -0.5], [-0.5, 1.0]], [[1.5, 0.0], [0.0, 0.5]]])


def separated(n=300, seed=0):
    return datasets.simulate_mixture(n, [0.3, 0.3, 0.4], MEANS, COVS, random_state=seed)[0]


@pytest.fixture(scope="module")
def em_grid():
    X = separated()
    return X, compare(X, range(1, 6), methods=("em",), random_state=0, progressbar=False)


@pytest.fixture(scope="module")
def bayes_grid():
    X = separated(n=150)
    with warnings.catch_warnings():
        # 2 x 200 draws: a point of a misspecified model may get a Pareto k > 0.7,
        # which compare() warns about and the table counts (n_pareto_k_high)
        warnings.filterwarnings("ignore", message="PSIS-LOO is unreliable")
        result = compare(X, (2, 3, 4), ("full",), draws=200, tune=200, chains=2,
                         random_state=1, progressbar=False)
    return X, result


# ------------------------------------------------------------------------ EM
def test_em_columns_equal_the_estimators_criteria(em_grid):
    X, result = em_grid
    assert len(result.table) == 5 * 4
    for row in result.table.itertuples():
        em = result.models[row.n_components, row.covariance_type]["em"]
        assert row.bic == pytest.approx(em.bic(X), rel=1e-12)
        assert row.aic == pytest.approx(em.aic(X), rel=1e-12)
        assert row.icl == pytest.approx(em.icl(X), rel=1e-12)
        assert row.bic == pytest.approx(-2 * row.log_likelihood + row.n_parameters
                                        * np.log(len(X)), rel=1e-12)
        assert row.bic_mclust == -row.bic and row.icl_mclust == -row.icl
        assert row.n_parameters == em.n_parameters()


@pytest.mark.parametrize(("k", "cov", "d", "expected"), [
    (3, "full", 2, 17), (3, "tied", 2, 11), (3, "diag", 2, 14), (3, "spherical", 2, 11),
    (2, "full", 3, 19), (2, "tied", 3, 13), (2, "diag", 3, 13), (2, "spherical", 3, 9),
    (1, "full", 1, 2), (4, "VVV", 5, 83),
])
def test_pinned_parameter_counts(k, cov, d, expected):
    X = np.random.default_rng(0).normal(size=(60, d))
    result = compare(X, [k], [cov], methods=("em",), n_init=1, progressbar=False)
    assert result.table["n_parameters"].item() == expected


def test_bic_and_icl_choose_the_true_model(em_grid):
    _, result = em_grid
    assert result.best("bic") == (3, "full")
    assert result.best("icl") == (3, "full")
    assert result.table.loc[result.table["rank_bic"] == 1, "n_components"].item() == 3
    assert set(result.best()) == {"bic", "aic", "icl"}


def test_table_as_xarray_and_repr(em_grid):
    _, result = em_grid
    ds = result.to_xarray()
    assert ds["bic"].dims == ("n_components", "covariance_type")
    assert list(ds["covariance_type"].values) == ["full", "tied", "diag", "spherical"]
    assert float(ds["bic"].sel(n_components=3, covariance_type="full")) == pytest.approx(
        result.table.set_index(["n_components", "covariance_type"]).loc[(3, "full"), "bic"])
    assert "BIC" in repr(result) and "3 components, full" in repr(result)


def test_agreement_in_words():
    import pandas as pd

    table = pd.DataFrame({
        "n_components": [2, 3, 4], "covariance_type": ["full"] * 3,
        "bic": [10.0, 5.0, 7.0], "aic": [10.0, 6.0, 4.0], "icl": [9.0, 5.0, 8.0],
        "elpd_loo": [-10.0, -4.0, -6.0]})
    text = ModelComparison(table).agreement()
    assert text == ("BIC, ICL and LOO choose 3 components, full; AIC prefers 4 components, "
                    "full.")
    table["aic"] = [10.0, 4.0, 6.0]
    assert ModelComparison(table).agreement() == "BIC, AIC, ICL and LOO all choose 3 " \
        "components, full."


def test_plot_has_a_panel_per_criterion(em_grid):
    import matplotlib

    matplotlib.use("Agg")
    _, result = em_grid
    fig = result.plot()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3
    assert axes[0].get_title() == "BIC: full, K=3"
    assert len(axes[0].get_legend().get_texts()) == 4
    with pytest.raises(ValueError, match="unknown criteria"):
        result.plot(["bic", "dic"])


def test_failed_fits_are_rows_not_aborts():
    # 3 distinct points: a fourth component can only collapse
    X = np.repeat([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]], 10, axis=0)
    X = X + np.random.default_rng(0).normal(scale=1e-3, size=X.shape) * [1, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare(X, [1, 4], ["spherical"], methods=("em",), progressbar=False)
    errors = dict(zip(result.table["n_components"], result.table["em_error"]))
    assert errors[1] == ""
    assert "collapsed" in errors[4].lower() or "Collapsed" in errors[4]
    assert np.isnan(result.table.set_index("n_components").loc[4, "bic"])
    assert result.best("bic") == (1, "spherical")


def test_bad_arguments():
    X = separated(60)
    with pytest.raises(ValueError, match="methods must be"):
        compare(X, [1], methods=("em", "mcmc"))
    with pytest.raises(ValueError, match="evidence=True needs"):
        compare(X, [1], methods=("em",), evidence=True)
    with pytest.raises(ValueError, match="n_components"):
        compare(X, [0, 1])
    with pytest.raises(ValueError, match="covariance_type"):
        compare(X, [1], ["round"])
    with pytest.raises(ValueError, match="criterion must be one of"):
        compare(X, [1], methods=("em",), progressbar=False).best("dic")
    with pytest.raises(ValueError, match="no model has a value for LOO"):
        compare(X, [1], methods=("em",), progressbar=False).best("loo")


def test_waic_by_hand():
    rng = np.random.default_rng(0)
    ll = rng.normal(-1.0, 0.3, size=(2, 50, 7))
    flat = ll.reshape(100, 7)
    lppd = np.log(np.exp(flat).mean(axis=0))
    pointwise = lppd - flat.var(axis=0, ddof=1)
    elpd, se, p, points = waic(ll)
    assert elpd == pytest.approx(pointwise.sum())
    assert p == pytest.approx(flat.var(axis=0, ddof=1).sum())
    assert se == pytest.approx(np.sqrt(7 * pointwise.var()))
    np.testing.assert_allclose(points, pointwise)


# --------------------------------------------------------------------- Bayes
def test_loo_chooses_the_true_k_and_matches_arviz(bayes_grid):
    from arviz_stats import loo

    _, result = bayes_grid
    assert result.best("loo") == (3, "full")
    assert result.best("waic") == (3, "full")
    assert result.best("bic") == (3, "full")
    table = result.table.set_index("n_components")
    for k in (2, 3, 4):
        bayes = result.models[k, "full"]["bayes"]
        with warnings.catch_warnings():  # a high Pareto k is reported in the table
            warnings.simplefilter("ignore", UserWarning)
            expected = loo(bayes.idata_)
        assert table.loc[k, "elpd_loo"] == pytest.approx(float(expected.elpd), rel=1e-10)
        assert table.loc[k, "p_loo"] == pytest.approx(float(expected.p), rel=1e-10)
        assert bayes.em_.means_ == pytest.approx(result.models[k, "full"]["em"].means_)
    assert table["loo_weight"].sum() == pytest.approx(1.0)
    assert table.loc[3, "elpd_loo_diff"] == 0
    assert table.loc[2, "elpd_loo_diff"] == pytest.approx(
        table.loc[2, "elpd_loo"] - table.loc[3, "elpd_loo"])
    assert 0 < table.loc[2, "elpd_loo_dse"] < -table.loc[2, "elpd_loo_diff"]
    assert table.loc[3, "loo_weight"] > 0.5
    assert (table["bayes_error"] == "").all()
    assert result.agreement().startswith("BIC, AIC, ICL, LOO and WAIC all choose 3")


def _exact_log_evidence(x, mu0, s0, a, b):
    """log p(x) of a 1-D two-component mixture: sum over all 2^n labellings.

    Weights ~ Dirichlet(1, 1) integrate to n0! n1! / (n + 1)!; for each group the
    mean integrates analytically (x ~ N(mu0 1, v I + s0^2 11^T)) and the
    InverseGamma variance by quadrature.
    """
    def log_group(xs):
        if len(xs) == 0:
            return 0.0
        m, r = len(xs), xs - mu0
        ss, total = np.sum(r**2), np.sum(r)

        def log_integrand(log_v):  # log IG(v) + log N(xs | mu0, v I + s0^2 11^T) + log v
            v = np.exp(log_v)
            big = v + m * s0**2  # the eigenvalue along 1
            log_det = (m - 1) * log_v + np.log(big)
            quad = (ss - s0**2 * total**2 / big) / v
            return (stats.invgamma.logpdf(v, a, scale=b) + log_v
                    - 0.5 * (m * np.log(2 * np.pi) + log_det + quad))

        shift = np.max(log_integrand(np.linspace(-12, 8, 2001)))
        value, _ = integrate.quad(lambda t: np.exp(log_integrand(t) - shift), -12, 8,
                                  limit=200, epsabs=0, epsrel=1e-10)
        return np.log(value) + shift

    terms = []
    for z in itertools.product([0, 1], repeat=len(x)):
        z = np.array(z, dtype=bool)
        n1 = z.sum()
        n0 = len(x) - n1
        terms.append(gammaln(n0 + 1) + gammaln(n1 + 1) - gammaln(len(x) + 2)
                     + log_group(x[~z]) + log_group(x[z]))
    return logsumexp(terms)


X_EVIDENCE = np.array([-2.2, -1.6, -2.5, -1.9, 1.8, 2.4, 1.5])
PRIORS_EVIDENCE = GMMPriors(weights=Dirichlet(1.0), means=Normal(mu=0.0, sigma=2.0),
                            covariance=InverseGamma(alpha=3.0, beta=2.0))


def test_smc_evidence_matches_the_exact_value(capsys):
    exact = _exact_log_evidence(X_EVIDENCE, 0.0, 2.0, 3.0, 2.0)  # -14.6808
    model = GaussianMixtureBayes(2, covariance_type="diag", priors=PRIORS_EVIDENCE,
                                 random_state=0).fit(X_EVIDENCE[:, None], method="map")
    result = model.log_evidence(draws=2000, chains=4, random_state=0)
    assert result["se"] == pytest.approx(result["sd"] / 2)
    assert abs(result["log_evidence"] - exact) < 3 * result["se"], (result, exact)
    assert capsys.readouterr().err == ""  # no SMC chatter without a progress bar


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:PSIS-LOO is unreliable")
def test_compare_with_evidence():
    exact = _exact_log_evidence(X_EVIDENCE, 0.0, 2.0, 3.0, 2.0)
    result = compare(X_EVIDENCE[:, None], [1, 2], ["diag"], priors=PRIORS_EVIDENCE,
                     evidence=True, draws=100, tune=100, chains=2, smc_draws=2000,
                     smc_chains=4, random_state=0, progressbar=False)
    table = result.table.set_index("n_components")
    se = table.loc[2, "log_evidence_sd"] / 2
    assert abs(table.loc[2, "log_evidence"] - exact) < 3 * se
    assert table.loc[1, "log_evidence"] < table.loc[2, "log_evidence"] - 1
    assert result.best("evidence") == (2, "diag")
    assert "rank_evidence" in result.table and "evidence" in result.criteria
