"""Small bundled datasets and a simulator of Gaussian mixtures with known truth."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from ._gaussian import sample_mixture

__all__ = ["load_diabetes", "load_faithful", "load_galaxies", "simulate_mixture"]


def _read_csv(name: str) -> pd.DataFrame:
    with resources.files("bayesgmm.data").joinpath(name).open("r") as handle:
        return pd.read_csv(handle)


#: The clinical classes of :func:`load_diabetes`, from healthy to overt diabetes.
DIABETES_CLASSES = ("Normal", "Chemical", "Overt")


def load_diabetes() -> pd.DataFrame:
    """Reaven and Miller's chemical diabetes data as R's mclust has it: 145 rows.

    145 non-obese adult patients, three measurements from a three-hour oral glucose
    tolerance test and the clinical ``class`` (Reaven and Miller 1979, *Diabetologia*
    16, 17-24), in mclust's copy (``data(diabetes)``, mclust 6.0.0): ``class`` is
    Normal (76), Chemical (36) or Overt (33) diabetes, a categorical with the
    categories in that order; ``glucose`` is the area under the plasma glucose curve,
    ``insulin`` the area under the plasma insulin curve and ``sspg`` the steady-state
    plasma glucose, as mclust names and describes them (integers). A classic
    three-cluster example of model-based clustering (Fraley and Raftery 2002), where
    mclust's BIC chooses VVV with three components.

    mclust's help page calls this copy *flawed* and keeps it for backward
    compatibility: against the five-variable version in R's rrcov package, its
    ``glucose`` and ``sspg`` columns are rrcov's ``fpg`` (fasting plasma glucose) and
    ``insulin``, and its ``insulin`` column is rrcov's ``glucose`` except for row 104
    (45 here, 455 there). The values are kept exactly as mclust has them, so that fits
    can be compared with mclust's published ones (``tests/data/mclust``). The data are
    a table of the published study, distributed with mclust (GPL >= 2).

    Returns
    -------
    pandas.DataFrame of shape (145, 4)
        Columns ``class``, ``glucose``, ``insulin``, ``sspg``; fit the three numeric
        ones, e.g. ``X = load_diabetes().drop(columns="class")``.
    """
    df = _read_csv("diabetes.csv")
    df["class"] = pd.Categorical(df["class"], categories=DIABETES_CLASSES)
    return df


def load_faithful() -> pd.DataFrame:
    """Old Faithful geyser eruptions, Yellowstone: 272 rows, 2 columns.

    ``eruptions`` is the eruption time in minutes and ``waiting`` the waiting time
    to the next eruption in minutes (R's ``datasets::faithful``; Härdle 1991,
    Azzalini and Bowman 1990). The classic two-cluster example of mclust.

    Returns
    -------
    pandas.DataFrame of shape (272, 2)
    """
    return _read_csv("faithful.csv")


def load_galaxies() -> pd.DataFrame:
    """Velocities (km/s) of 82 galaxies in the Corona Borealis region.

    The one-dimensional benchmark of Bayesian mixture modelling (Postman, Huchra and
    Geller 1986; Roeder 1990; Richardson and Green 1997). The copy widely
    distributed with R's MASS package has a typo at the 78th value, 26690 instead
    of 26960; this is the corrected data (the 78th value is 26960, and the values
    are sorted).

    Returns
    -------
    pandas.DataFrame of shape (82, 1), column ``velocity``.
    """
    return _read_csv("galaxies.csv")


def simulate_mixture(n, weights, means, covariances, random_state=None):
    """Draw ``n`` points from a Gaussian mixture with known parameters.

    Parameters
    ----------
    n : int
        Number of points.
    weights : array-like of shape (K,)
        Mixing proportions (non-negative, summing to 1).
    means : array-like of shape (K, D)
        Component means; a 1-D array of length K means D = 1.
    covariances : array-like of shape (K, D, D), (K, D) or (K,)
        Full covariance matrices, per-feature variances, or one variance per
        component.
    random_state : int, Generator, RandomState or None

    Returns
    -------
    X : ndarray of shape (n, D)
    labels : ndarray of shape (n,)
        The true component of every point.

    Examples
    --------
    >>> X, z = simulate_mixture(500, [0.3, 0.7], [[0, 0], [5, 5]], [1.0, 2.0], random_state=0)
    >>> X.shape, np.bincount(z).sum()
    ((500, 2), np.int64(500))
    """
    weights = np.asarray(weights, dtype=float)
    means = np.asarray(means, dtype=float)
    if means.ndim == 1:
        means = means[:, None]
    K, D = means.shape
    if weights.shape != (K,) or np.any(weights < 0) or not np.isclose(weights.sum(), 1):
        raise ValueError(
            f"weights must be {K} non-negative numbers summing to 1 (one per row of "
            f"means), got {weights.tolist()}."
        )
    covariances = np.asarray(covariances, dtype=float)
    if covariances.shape == (K,):
        covariances = covariances[:, None, None] * np.eye(D)
    elif covariances.shape == (K, D):
        covariances = covariances[:, :, None] * np.eye(D)
    elif covariances.shape != (K, D, D):
        raise ValueError(
            f"covariances must have shape ({K}, {D}, {D}), ({K}, {D}) or ({K},), "
            f"got {covariances.shape}."
        )
    try:
        factors = np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError:
        raise ValueError("every covariance matrix must be positive definite.") from None
    if isinstance(random_state, np.random.Generator):
        rng = random_state
    else:
        rng = np.random.default_rng(check_random_state(random_state).randint(2**32))
    return sample_mixture(weights, means, factors, n, rng)
