"""Property-based tests of the user-facing arguments: bad values fail at once, by name.

For every generated bad value of an argument of ``GaussianMixtureBayes.fit``, the
estimator, ``membership``, the priors and the command line's parsing, the error is a
``ValueError`` (an ``InputError`` for the command line) whose message names the
argument; valid values are accepted. Nothing here samples or compiles: the fits are
stopped (by a patched ``_fit_em``) right after validation, which must come first.

Files: damaged copies of saved results (one bit flipped at positions spread over the
whole file, and truncations) either load as valid fits or raise a ValueError naming
the file; never another exception.
"""

import json
import re
import warnings
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayesgmm import GaussianMixtureBayes, GaussianMixtureEM, bayes
from bayesgmm.cli import InputError, _parse_components, _read_table
from bayesgmm.priors import LKJ, Dirichlet, GMMPriors, HalfNormal, InverseGamma, Normal

from .conftest import seed

# derandomize: the same examples on every run, so the tests cannot fail by chance
PROPERTY = settings(deadline=None, max_examples=60, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

RNG = np.random.default_rng(20261201)
X = pd.DataFrame(np.concatenate([RNG.normal(0, 1, (15, 2)), RNG.normal(5, 1, (15, 2))]),
                 columns=["a", "b"])


class Reached(Exception):
    """Raised in place of the EM start: every argument passed validation."""


def fit_until_em(model=None, **kwargs):
    """``fit`` up to the first expensive step; True if validation let it through."""
    model = model or GaussianMixtureBayes(2)
    with mock.patch.object(bayes, "_fit_em", side_effect=Reached), \
            mock.patch.object(bayes, "build_model_from_spec", side_effect=AssertionError):
        try:
            model.fit(X, **kwargs)
        except Reached:
            return True
    raise AssertionError("fit went past the EM start")


# ------------------------------------------------------------ strategies
finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
not_numbers = st.one_of(
    st.text(max_size=4), st.booleans(), st.none(), st.just(object()),
    st.complex_numbers(allow_nan=False, allow_infinity=False).filter(lambda z: z.imag != 0),
    st.lists(st.text(max_size=2), min_size=1, max_size=2), st.just(float("nan")),
    st.just(float("inf")), st.just(-float("inf")),
)
not_integers = st.one_of(not_numbers, finite_floats, st.integers().map(float))


# ------------------------------------------------------- fit(...) arguments
@pytest.mark.parametrize(("name", "minimum"), [("draws", 1), ("chains", 1), ("tune", 0),
                                               ("advi_steps", 1)])
@PROPERTY
@given(value=st.one_of(not_integers, st.integers(max_value=-1)))
def test_integer_fit_arguments(name, minimum, value):
    with pytest.raises(ValueError, match=rf"^{name} must be an integer >= {minimum}, got"):
        fit_until_em(**{name: value})


@pytest.mark.parametrize("name", ["draws", "chains", "tune", "advi_steps"])
@PROPERTY
@given(value=st.one_of(st.integers(1, 10**6), st.integers(1, 100).map(np.int64)))
def test_integer_fit_arguments_accept_integers(name, value):
    assert fit_until_em(**{name: value})


@PROPERTY
@given(value=st.one_of(not_numbers, finite_floats.filter(lambda x: not 0 < x < 1),
                       st.sampled_from([0, 1, 0.0, 1.0, -0.0, 1.5])))
def test_target_accept_outside_the_unit_interval(value):
    with pytest.raises(ValueError, match=r"^target_accept must be a number in \(0, 1\)"):
        fit_until_em(target_accept=value)


@PROPERTY
@given(value=st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True))
def test_target_accept_inside_the_unit_interval(value):
    assert fit_until_em(target_accept=value)


@pytest.mark.parametrize(("name", "valid"), [("method", bayes.METHODS),
                                             ("nuts_sampler", ("auto", "pymc")),
                                             ("init", bayes.INITS)])
@PROPERTY
@given(value=st.one_of(st.text(max_size=8), not_numbers, st.integers()))
def test_choice_fit_arguments(name, valid, value):
    if value in valid:
        assert fit_until_em(**{name: value})
        return
    with pytest.raises(ValueError, match=rf"^{name} must be one of \["):
        fit_until_em(**{name: value})


@PROPERTY
@given(value=st.one_of(st.integers(max_value=-1), finite_floats, st.text(max_size=3),
                       st.booleans(), st.just([1, 2])))
def test_random_state_must_be_a_seed(value):
    with pytest.raises(ValueError, match=r"^random_state must be None or a non-negative"):
        fit_until_em(GaussianMixtureBayes(2, random_state=value))


@PROPERTY
@given(value=st.one_of(st.none(), st.integers(0, 2**64)))
def test_random_state_accepts_seeds(value):
    assert fit_until_em(GaussianMixtureBayes(2, random_state=value))


@PROPERTY
@given(value=st.one_of(finite_floats, st.booleans(),
                       st.integers().filter(lambda i: i not in (0, 1)),
                       st.text(max_size=3).filter(lambda s: s not in ("a", "b"))))
def test_order_by_must_name_a_feature(value):
    with pytest.raises(ValueError, match=r"^order_by must be"):
        fit_until_em(GaussianMixtureBayes(2, order_by=value))


@pytest.mark.parametrize("value", [None, 0, 1, np.int64(1), "a", "b"])
def test_order_by_accepts_features(value):
    assert fit_until_em(GaussianMixtureBayes(2, order_by=value))


@PROPERTY
@given(value=st.one_of(not_integers, st.integers(max_value=0)))
def test_n_components(value):
    with pytest.raises(ValueError, match=r"^n_components must be an integer >= 1"):
        fit_until_em(GaussianMixtureBayes(value))


# ------------------------------------------------------------------ priors
POSITIVE = {  # prior: (constructor of one parameter, its name in messages, required)
    "Dirichlet alpha": (lambda v: Dirichlet(v), True),
    "Normal sigma": (lambda v: Normal(sigma=v), False),
    "HalfNormal sigma": (lambda v: HalfNormal(v), False),
    "InverseGamma alpha": (lambda v: InverseGamma(alpha=v), True),
    "InverseGamma beta": (lambda v: InverseGamma(beta=v), False),
    "LKJ eta": (lambda v: LKJ(eta=v), True),
}
bad_positive = st.one_of(
    not_numbers, finite_floats.filter(lambda x: x <= 0), st.integers(max_value=0),
    st.lists(finite_floats, min_size=1, max_size=3).filter(lambda v: min(v) <= 0),
    st.lists(st.one_of(st.text(max_size=2), st.none()), min_size=1, max_size=3),
)


@pytest.mark.parametrize("name", list(POSITIVE))
@PROPERTY
@given(value=bad_positive)
def test_positive_prior_parameters(name, value):
    make, required = POSITIVE[name]
    if value is None and not required:
        make(value)  # None: the data-scaled default
        return
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        make(value)


@pytest.mark.parametrize("name", list(POSITIVE))
@PROPERTY
@given(value=st.floats(min_value=1e-300, max_value=1e300))
def test_positive_prior_parameters_accept_positive_numbers(name, value):
    prior = POSITIVE[name][0](value)
    assert repr(prior).startswith(name.split()[0])


@PROPERTY
@given(value=st.one_of(st.text(max_size=4), st.booleans(), st.just(float("nan")),
                       st.just([1.0, "x"]), st.just(object())))
def test_normal_mu(value):
    with pytest.raises(ValueError, match=r"^Normal mu must be"):
        Normal(mu=value)


@PROPERTY
@given(value=st.one_of(finite_floats, st.lists(finite_floats, min_size=2, max_size=2)))
def test_normal_mu_accepts_numbers(value):
    Normal(mu=value)


@PROPERTY
@given(value=st.one_of(st.text(max_size=4), st.integers(), st.none(), st.just(HalfNormal())))
def test_gmm_priors_fields(value):
    with pytest.raises(ValueError, match=r"^priors\.weights must be"):
        GMMPriors(weights=value)
    with pytest.raises(ValueError, match=r"^priors\.covariance must be"):
        GMMPriors(covariance=Dirichlet() if value is None or isinstance(value, HalfNormal)
                  else value)


def test_a_string_in_a_prior_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^Normal sigma must be a number .* got 'wide'"):
        Normal(sigma="wide")
    with pytest.raises(ValueError, match=r"^HalfNormal sigma must be a number .* got '2'"):
        HalfNormal("2")  # numpy would convert it; a typo must not pass


# ------------------------------------------------------------- membership
@pytest.fixture(scope="module")
def map_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return GaussianMixtureBayes(2, covariance_type="diag", random_state=0).fit(
            X, method="map", progressbar=False)


@PROPERTY
@given(value=st.one_of(not_numbers, finite_floats.filter(lambda x: not 0 < x < 1),
                       st.sampled_from([0, 1, 1.5, -0.5])))
def test_hdi_prob_outside_the_unit_interval(map_fit, value):
    with pytest.raises(ValueError, match=r"^hdi_prob must be a number in \(0, 1\)"):
        map_fit.membership(X, hdi_prob=value)
    with pytest.raises(ValueError, match=r"^hdi_prob must be a number in \(0, 1\)"):
        map_fit.summary(hdi_prob=value)


@PROPERTY
@given(value=st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True))
def test_hdi_prob_inside_the_unit_interval(map_fit, value):
    out = map_fit.membership(X.iloc[:3], hdi_prob=value)
    assert out.attrs["hdi_prob"] == value


@pytest.mark.parametrize("method", ["membership", "predict_proba", "predict"])
def test_memberships_of_no_points(map_fit, method):
    with pytest.raises(ValueError, match=r"X has no samples \(shape \(0, 2\)\)"):
        getattr(map_fit, method)(np.empty((0, 2)))


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: m.log_evidence("smc", chains=1), "chains must be an integer >= 2"),
    (lambda m: m.log_evidence("smc", draws=0), "draws must be an integer >= 1"),
    (lambda m: m.log_evidence("laplace"), r"method must be one of \['bridge', 'smc'\]"),
    (lambda m: m.log_evidence(), "bridge sampling needs posterior draws from NUTS; this "
                                 "fit is 'map'"),
    (lambda m: m.log_evidence(random_state=-1), "random_state must be None or a non-negative"),
    (lambda m: m.sample_posterior_predictive(random_state="x"), "random_state must be None"),
    (lambda m: m.sample_prior_predictive(draws=2.5), "draws must be an integer >= 1"),
])
def test_other_methods_check_their_arguments(map_fit, call, message):
    with pytest.raises(ValueError, match=message):
        call(map_fit)


# ---------------------------------------------------------- command line
@PROPERTY
@given(text=st.one_of(st.text(max_size=12), st.text(alphabet="0123456789-, ", max_size=10)))
def test_components_option_parses_or_names_itself(text):
    try:
        values = _parse_components(text)
    except InputError as error:
        assert "--components" in error.message
        return
    assert values and all(isinstance(k, int) and k >= 1 for k in values)
    assert len(set(values)) == len(values) <= 100


@PROPERTY
@given(low=st.integers(1, 50), size=st.integers(0, 40))
def test_components_option_ranges(low, size):
    assert _parse_components(f"{low}-{low + size}") == list(range(low, low + size + 1))
    if size:
        with pytest.raises(InputError, match="is an empty range"):
            _parse_components(f"{low + size}-{low}")


@PROPERTY
@given(values=st.lists(st.integers(1, 1000), min_size=1, max_size=10, unique=True))
def test_components_option_lists(values):
    assert _parse_components(",".join(map(str, values))) == values


@pytest.fixture(scope="module")
def table_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("csv") / "table.csv"
    X.to_csv(path, index=False)
    return path


@PROPERTY
@given(text=st.one_of(st.text(max_size=8), st.text(alphabet="ab, ", max_size=8)))
def test_columns_option_selects_or_explains(table_csv, text):
    try:
        table = _read_table(table_csv, text)
    except InputError as error:
        assert "--columns" in error.message or "has no column" in error.message
        return
    names = [c.strip() for c in text.split(",") if c.strip()]
    assert list(table.columns) == names


@PROPERTY
@given(
    values=st.lists(st.lists(st.floats(-1e6, 1e6, allow_subnormal=False), min_size=3,
                             max_size=3), min_size=2, max_size=6),
    style=st.sampled_from([(",", "."), (";", ","), (";", "."), ("\t", "."), ("\t", ",")]),
    index=st.booleans(),
)
def test_csv_dialects_are_read_exactly_or_refused(tmp_path_factory, values, style, index):
    delimiter, decimal = style
    path = tmp_path_factory.mktemp("dialect") / "data.csv"
    lines = [delimiter.join(["x", "y", "z"])]
    for i, row in enumerate(values):
        fields = [repr(float(v)).replace(".", decimal) for v in row]
        lines.append(delimiter.join(([str(i)] if index else []) + fields))
    path.write_text("\n".join(lines) + "\n")
    if index:  # an unnamed first field: refused, never fitted as an index
        with pytest.raises(InputError, match="line 2 has 4 fields but the header has 3"):
            _read_table(path)
        return
    table = _read_table(path)
    assert list(table.columns) == ["x", "y", "z"]
    np.testing.assert_array_equal(table.to_numpy(), np.array(values, dtype=float))


# ------------------------------------------------------------------- files
def _valid_mixture(model):
    probabilities = model.predict_proba(X)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1)


@pytest.fixture(scope="module")
def saved_files(tmp_path_factory, map_fit):
    folder = tmp_path_factory.mktemp("saved")
    em = GaussianMixtureEM(2, covariance_type="full", random_state=0).fit(X)
    return {GaussianMixtureEM: em.save(folder / "em.nc").read_bytes(),
            GaussianMixtureBayes: map_fit.save(folder / "map.nc").read_bytes()}


def _load_damaged(cls, data, path):
    path.write_bytes(data)
    try:
        model = cls.load(path)
    except ValueError as error:
        assert str(path) in str(error)
        return "refused"
    _valid_mixture(model)
    return "loaded"


# N_FLIPS positions spread evenly over each file (headers, attributes, data, the
# checksum line), one bit flipped at each (the bit cycles with the position)
N_FLIPS = 200
CHECKSUM_LINE = 82  # b"\\nbayesgmm-sha256:" + 64 hex digits + b"\\n"


@pytest.mark.parametrize("cls", [GaussianMixtureEM, GaussianMixtureBayes],
                         ids=["em", "bayes"])
def test_bit_flipped_files_load_valid_or_are_refused(saved_files, tmp_path, cls):
    data = saved_files[cls]
    assert data.endswith(b"\n") and b"\nbayesgmm-sha256:" in data[-CHECKSUM_LINE:]
    outcomes = {"refused": 0, "loaded": 0}
    for position in np.linspace(0, len(data) - 1, N_FLIPS).astype(int):
        damaged = bytearray(data)
        damaged[position] ^= 1 << (position % 8)
        outcome = _load_damaged(cls, bytes(damaged), tmp_path / "damaged.nc")
        outcomes[outcome] += 1
        if position < len(data) - CHECKSUM_LINE:  # damaged HDF5 data: always caught
            assert outcome == "refused", position
    assert outcomes["refused"] >= N_FLIPS - 5, outcomes


@pytest.mark.parametrize("cls", [GaussianMixtureEM, GaussianMixtureBayes],
                         ids=["em", "bayes"])
def test_truncated_files_are_refused(saved_files, tmp_path, cls):
    data = saved_files[cls]
    for length in np.linspace(0, len(data) - 1, 40).astype(int):
        outcome = _load_damaged(cls, data[:length], tmp_path / "short.nc")
        # cut inside the checksum line: the HDF5 data is whole and may load
        assert outcome == "refused" or length >= len(data) - CHECKSUM_LINE, length


# ------------------------------------------------- edited and forged files
def _edited(path, out, edit):
    """A copy of the result at ``path`` rewritten by xarray after ``edit(tree)``."""
    tree = xr.open_datatree(path, engine="h5netcdf").load()
    edit(tree)
    tree.to_netcdf(out, engine="h5netcdf")
    return out


def _set_config(key, value):
    def edit(tree):
        config = json.loads(tree.attrs["config"])
        config[key] = value
        tree.attrs["config"] = json.dumps(config)
    return edit


def _set_posterior(name, change):
    def edit(tree):
        change(tree["posterior"][name].values)  # in place: the tree is loaded in memory
    return edit


def _add_off_diagonal(amount, symmetric=True):
    def change(values):
        values[..., 0, 1] += amount
        if symmetric:
            values[..., 1, 0] += amount
    return change


def _both(*edits):
    def edit(tree):
        for one in edits:
            one(tree)
    return edit


def _set_observed(change):
    def edit(tree):
        change(tree["observed_data"]["obs"].values)
    return edit


def _set_attr(name, value):
    def edit(tree):
        tree.attrs[name] = value
    return edit


def _drop_group(name):
    def edit(tree):
        del tree[name]
    return edit


BAYES_EDITS = {
    "nan weights": (_set_posterior("weights", lambda v: v.fill(np.nan)),
                    "posterior/weights has 2 NaN or infinite value"),
    "weights off the simplex": (_set_posterior("weights", lambda v: v.__imul__(0.5)),
                                "weights are not on the simplex"),
    "negative variance": (_set_posterior("covariances", lambda v: v.__setitem__(
        (0, 0, 0, 0, 0), -1.0)), "covariances have a variance <= 0"),
    "not positive definite": (_set_posterior("covariances", _add_off_diagonal(1e3)),
                              "covariances are not positive definite"),
    "not symmetric": (_set_posterior("covariances", _add_off_diagonal(1e-3, symmetric=False)),
                      "covariances are not symmetric"),
    "not diagonal": (_set_posterior("covariances", _add_off_diagonal(1e-3)),
                     "do not have the 'diag' structure"),
    "components": (_set_config("n_components", 3), "its em weights have shape (2,) (expected "
                                                   "(3,))"),
    "covariance type": (_set_config("covariance_type", "fukl"), "covariance_type must be"),
    "feature names": (_set_config("feature_names", ["a", "c"]), "feature labels"),
    "priors": (_set_config("priors", {"weights": 1}), "its priors"),
    "em weights": (_set_config("em", {"weights": [0.5], "means": [], "covariances": []}),
                   "its em weights have shape (1,)"),
    "json": (_set_attr("config", "{not json"), "its 'config' attribute is not valid JSON"),
    "newer version": (_set_attr("bayesgmm_version", "99.0.0"), "newer than this one"),
    "forged kind": (_set_attr("bayesgmm_kind", "bayesgmm.GaussianMixtureEM"),
                    "lacks the 'params' attribute"),
    "no data": (_drop_group("observed_data"), "it has no 'observed_data' group"),
    "a deleted entry": (_set_observed(lambda v: v.__setitem__((0, 1), np.nan)),
                        "observed_data/obs has 1 missing entries where the configuration "
                        "says 0"),
    "an infinite entry": (_set_observed(lambda v: v.__setitem__((0, 1), np.inf)),
                          "observed_data/obs has infinite values"),
    "an empty row": (_set_observed(lambda v: v.__setitem__(2, np.nan)),
                     "observed_data/obs has 1 row(s) with every entry missing"),
    "NaN in a fit refusing it": (_both(_set_config("missing", "raise"), _set_observed(
        lambda v: v.__setitem__((0, 1), np.nan))), "observed_data/obs has 1 NaN or infinite"),
    "no posterior": (_drop_group("posterior"), "it has no 'posterior' group"),
}


@pytest.mark.parametrize("edit", list(BAYES_EDITS))
def test_edited_bayes_files_are_refused_by_name(map_fit, tmp_path, edit):
    change, message = BAYES_EDITS[edit]
    path = _edited(map_fit.save(tmp_path / "fit.nc"), tmp_path / "edited.nc", change)
    _assert_refused_by_name(GaussianMixtureEM if edit == "forged kind" else GaussianMixtureBayes,
                            path, message)


def _assert_refused_by_name(cls, path, message):
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        cls.load(path)
    assert str(caught.value).startswith(str(path))


def _set_em(name, value):
    def edit(tree):
        if name in tree.attrs:
            tree.attrs[name] = value
        else:
            value(tree[name].values)
    return edit


EM_EDITS = {
    "nan weights": (_set_em("weights", lambda v: v.fill(np.nan)), "weights has 2 NaN"),
    "not positive definite": (_set_em("covariances", lambda v: v.__imul__(-1)),
                              "covariances have a variance <= 0"),
    "params": (_set_em("params", '{"n_components": 2, "shape": 1}'),
               "unknown parameter(s) ['shape']"),
    "covariance type": (_set_em("params", '{"n_components": 2, "covariance_type": "x"}'),
                        "covariance_type must be one of"),
    "components": (_set_em("params", '{"n_components": 3, "covariance_type": "full"}'),
                   "entries along 'component'"),
    "n_iter": (_set_em("n_iter", -1), "n_iter attribute is -1"),
    "forged kind": (_set_em("bayesgmm_kind", "bayesgmm.GaussianMixtureBayes"),
                    "lacks the 'config' attribute"),
}


@pytest.mark.parametrize("edit", list(EM_EDITS))
def test_edited_em_files_are_refused_by_name(tmp_path, edit):
    change, message = EM_EDITS[edit]
    em = GaussianMixtureEM(2, random_state=0).fit(X)
    path = _edited(em.save(tmp_path / "em.nc"), tmp_path / "edited.nc", change)
    _assert_refused_by_name(GaussianMixtureBayes if edit == "forged kind" else GaussianMixtureEM,
                            path, message)


def test_an_unedited_rewrite_loads(map_fit, tmp_path):
    # no checksum line (rewritten by xarray), nothing changed: loads as the original
    path = _edited(map_fit.save(tmp_path / "fit.nc"), tmp_path / "copy.nc", lambda tree: None)
    np.testing.assert_allclose(GaussianMixtureBayes.load(path).predict_proba(X),
                               map_fit.predict_proba(X))


@pytest.mark.parametrize("cls", [GaussianMixtureEM, GaussianMixtureBayes],
                         ids=["em", "bayes"])
def test_save_needs_a_file_name(map_fit, tmp_path, cls):
    model = map_fit if cls is GaussianMixtureBayes else GaussianMixtureEM(2).fit(X)
    with pytest.raises(ValueError, match="path is empty: give the name of the file"):
        model.save("")
    with pytest.raises(ValueError, match="it is a folder"):
        model.save(tmp_path)
    with pytest.raises(FileNotFoundError, match="there is no folder"):
        model.save(tmp_path / "missing" / "fit.nc")
    assert list(tmp_path.iterdir()) == []  # and no temporary file is left behind


# ------------------------------------------------------- data and priors
def test_data_on_an_extreme_scale_names_the_scale():
    with mock.patch.object(bayes, "build_model_from_spec", side_effect=AssertionError):
        with pytest.raises(ValueError, match=r"too large for float64 .* \d\.\d+e\+300.*"
                                             r"Rescale the data"):
            GaussianMixtureBayes(2).fit(X * 1e300)
        with pytest.raises(ValueError, match=r"too small for float64.*Rescale the data"):
            GaussianMixtureBayes(2).fit(X * 1e-300)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag"])
def test_a_constant_column_is_refused_before_compiling(covariance_type):
    """Under a HalfNormal prior on the sds the posterior is improper; the default
    inverse-gamma on the variances keeps it proper, and the fit works."""
    data = X.assign(c=1.0)
    half = HalfNormal() if covariance_type == "diag" else LKJ(sd=HalfNormal())
    with mock.patch.object(bayes, "build_model_from_spec", side_effect=AssertionError):
        with pytest.raises(ValueError, match=r"column\(s\) 2 are constant .* improper.*"
                                             r"InverseGamma"):
            GaussianMixtureBayes(2, covariance_type=covariance_type,
                                 priors=GMMPriors(covariance=half)).fit(data, method="map")
    fit = GaussianMixtureBayes(2, covariance_type=covariance_type, random_state=0).fit(
        data, method="map", progressbar=False)
    # the mode of an InverseGamma(2 + n_k / 2, beta = 0.02) posterior for the variance
    variance = np.diagonal(fit.map_["covariances"].values, axis1=-2, axis2=-1)[..., 2].ravel()
    n_k = fit.map_["weights"].values.ravel() * len(data)
    expected = 0.02 / (3 + n_k / 2) if covariance_type != "tied" else 0.02 / (3 + len(data) / 2)
    np.testing.assert_allclose(variance, expected, rtol=0.05)


def test_map_failure_is_a_named_warning(map_fit):
    narrow = GMMPriors(covariance=HalfNormal(1e-300))
    with pytest.warns(bayes.MAPConvergenceWarning, match="not a posterior mode.*rescale"):
        GaussianMixtureBayes(2, covariance_type="diag", priors=narrow, random_state=0).fit(
            X, method="map", progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bayes.MAPConvergenceWarning)
        assert map_fit.map_.attrs["optimizer_success"]  # a good fit does not warn


# ------------------------------------------------------ loaded Bayesian fits
def test_log_evidence_of_a_loaded_fit(tmp_path):
    # the 7-point mixture of test_compare, whose exact log evidence is -14.6808
    data = np.array([-2.2, -1.6, -2.5, -1.9, 1.8, 2.4, 1.5])[:, None]
    priors = GMMPriors(Dirichlet(1.0), Normal(mu=0.0, sigma=2.0), InverseGamma(3.0, 2.0))
    fitted = GaussianMixtureBayes(2, covariance_type="diag", priors=priors, random_state=0)
    path = fitted.fit(data, method="map", progressbar=False).save(tmp_path / "fit.nc")
    loaded = GaussianMixtureBayes.load(path)
    assert loaded.model_ is None
    result = loaded.log_evidence("smc", draws=300, chains=2,
                                 random_state=seed("loaded-evidence"))
    np.testing.assert_allclose(loaded.model_["X"].get_value(), data)  # rebuilt from the file
    assert abs(result["log_evidence"] - -14.6808) < 1.0, result  # SMC error here is ~0.05
