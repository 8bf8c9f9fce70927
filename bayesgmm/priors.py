"""Prior distributions of the Bayesian Gaussian mixture, with data-scaled defaults.

A prior is a small immutable object with a readable ``repr``. Parameters left as
``None`` are filled from the data when the model is built (:meth:`GMMPriors.resolve`)
and the filled values are stored with every result, so a fit can be reproduced.

Defaults (Richardson and Green 1997 scale their priors by the data range ``R``):

=============  =====================================================================
weights        ``Dirichlet(alpha=1)``: uniform on the simplex. ``alpha < 1`` favours
               sparse weights (an overfitted mixture whose extra components empty).
means          ``Normal(mu=data mean, sigma=data range)`` per feature.
full, tied     ``LKJ(eta=2, sd=InverseGamma(alpha=2, beta=0.02 R^2))``: LKJ prior on
               the correlation matrix (eta = 2 mildly favours weak correlations) and
               an inverse-gamma prior on each component variance (the diagonal).
diag,          ``InverseGamma(alpha=2, beta=0.02 R^2)`` on the variances, the
spherical      conjugate-style choice of Richardson and Green; ``HalfNormal(sigma)``
               on the standard deviations is the alternative.
=============  =====================================================================

Why inverse-gamma by default: a mixture's likelihood grows without bound as one
component shrinks onto a few points, and a prior whose density stays positive at
sd = 0 (the half-normal) leaves that spike in the posterior. On small data NUTS then
meets a funnel between a near-empty component's mean and its log-sd and diverges;
the inverse-gamma's density vanishes faster than any power at zero and closes it
(measured in ``benchmarks/README.md``, "Small data with priors").
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field, fields

import numpy as np

from ._validation import check_real_array

__all__ = [
    "ConjugatePrior",
    "Dirichlet",
    "GMMPriors",
    "HalfNormal",
    "InverseGamma",
    "LKJ",
    "Normal",
    "ResolvedPriors",
]


def _check_positive(name, value, *, allow_none=True, max_ndim=1, hint=""):
    """Positive and finite numbers (scalar or array); shapes are checked in ``resolve``."""
    if value is None:
        if allow_none:
            return
        raise ValueError(f"{name} must be given{hint}.")
    check_real_array(name, value, positive=True, max_ndim=max_ndim, hint=hint)


def _fmt(value, default):
    if value is None:
        return f"<{default}>"
    array = np.asarray(value)
    if array.ndim == 0:
        return f"{float(array):g}"
    return np.array2string(array, precision=4, separator=", ")


def _plain(value):
    if value is None or isinstance(value, (str, numbers.Number)):
        return value
    if isinstance(value, Prior):
        return value.to_dict()
    return np.asarray(value).tolist()


class Prior:
    """Base class: validation hook, readable repr and a JSON-friendly dict."""

    _defaults: dict = {}

    def __repr__(self):
        parts = ", ".join(
            f"{f.name}={_fmt(getattr(self, f.name), self._defaults.get(f.name))}"
            if not isinstance(getattr(self, f.name), Prior)
            else f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
        )
        return f"{type(self).__name__}({parts})"

    def to_dict(self):
        return {"dist": type(self).__name__, **{f.name: _plain(getattr(self, f.name))
                                                for f in fields(self)}}

    @staticmethod
    def from_dict(spec):
        """The prior described by ``to_dict()``'s output; ValueError for anything else."""
        if not isinstance(spec, dict) or not isinstance(spec.get("dist"), str) \
                or spec["dist"] not in _PRIOR_CLASSES:
            raise ValueError(
                f"a prior is a dict whose 'dist' is one of {list(_PRIOR_CLASSES)}, got {spec!r}."
            )
        spec = dict(spec)
        cls = _PRIOR_CLASSES[spec.pop("dist")]
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ValueError(f"{cls.__name__} has no parameter(s) {unknown}; its parameters "
                             f"are {names}.")
        kwargs = {k: Prior.from_dict(v) if isinstance(v, dict) else v for k, v in spec.items()}
        return cls(**kwargs)

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(json.dumps(self.to_dict(), sort_keys=True))


@dataclass(frozen=True, repr=False, eq=False)
class Dirichlet(Prior):
    """Dirichlet prior on the mixture weights; ``alpha`` scalar or one per component."""

    alpha: object = 1.0

    def __post_init__(self):
        _check_positive(
            "Dirichlet alpha", self.alpha, allow_none=False,
            hint=" (alpha = 1 is a uniform prior on the weights; alpha < 1, e.g. 0.1, "
                 "favours emptying unneeded components)")


@dataclass(frozen=True, repr=False, eq=False)
class Normal(Prior):
    """Normal prior on the component means (per component and feature)."""

    mu: object = None
    sigma: object = None
    _defaults = {"mu": "data mean", "sigma": "data range"}

    def __post_init__(self):
        if self.mu is not None:
            check_real_array("Normal mu", self.mu, max_ndim=2)
        _check_positive("Normal sigma", self.sigma, max_ndim=2)


@dataclass(frozen=True, repr=False, eq=False)
class HalfNormal(Prior):
    """Half-normal prior on standard deviations."""

    sigma: object = None
    _defaults = {"sigma": "data sd"}

    def __post_init__(self):
        _check_positive("HalfNormal sigma", self.sigma)


@dataclass(frozen=True, repr=False, eq=False)
class InverseGamma(Prior):
    """Inverse-gamma prior on variances: of diag and spherical covariances and 1-D data,
    or, as ``LKJ(sd=InverseGamma(...))``, the diagonal of full and tied ones."""

    alpha: object = 2.0
    beta: object = None
    _defaults = {"beta": "0.02 data range^2"}

    def __post_init__(self):
        _check_positive("InverseGamma alpha", self.alpha, allow_none=False)
        _check_positive("InverseGamma beta", self.beta)


@dataclass(frozen=True, repr=False, eq=False)
class LKJ(Prior):
    """LKJ prior on a correlation matrix with a prior on the scales: ``HalfNormal`` on the
    standard deviations or ``InverseGamma`` on the variances (the diagonal)."""

    eta: object = 2.0
    sd: Prior = field(default_factory=InverseGamma)

    def __post_init__(self):
        _check_positive(
            "LKJ eta", self.eta, allow_none=False, max_ndim=0,
            hint=" (1 is uniform over correlation matrices, larger values favour weak "
                 "correlations)")
        if not isinstance(self.sd, (HalfNormal, InverseGamma)):
            raise ValueError(
                "LKJ sd must be a HalfNormal prior on the standard deviations or an "
                f"InverseGamma prior on the variances, got {self.sd!r}."
            )


@dataclass(frozen=True, repr=False, eq=False)
class ConjugatePrior(Prior):
    """The conjugate prior of Fraley & Raftery (2007): mclust's ``priorControl()``.

    One prior for both engines: ``GaussianMixtureEM(prior=ConjugatePrior())`` finds
    the posterior mode by EM (MAP-EM, as ``Mclust(..., prior = priorControl())``), and
    ``GaussianMixtureBayes(priors=ConjugatePrior())`` samples the posterior it is the
    mode of. Per component, given its covariance ``Sigma_k``:

    - means: ``mu_k | Sigma_k ~ Normal(mean, Sigma_k / shrinkage)`` (``shrinkage=0``:
      a flat prior on the means);
    - covariances: inverse-Wishart ``(dof, scale)`` for the families with a general
      covariance matrix (``scale`` a (D, D) matrix), inverse-gamma ``(dof / 2,
      scale / 2)`` for each variance of the diagonal and spherical ones (``scale`` a
      number, or one per feature for the diagonal families); one such prior per
      distinct covariance parameter, as mclust;
    - weights: none (a uniform Dirichlet): their estimate is maximum likelihood.

    Parameters left ``None`` take mclust's defaults (``defaultPrior``) from the data,
    the number of components ``K`` and the family's covariance layout: ``mean`` = the
    data mean, ``dof = D + 2`` and ``scale = var(X) / K^(2/D)`` (the covariance matrix
    with divisor ``n - 1``; its diagonal when ``n <= D``), or for the spherical and
    diagonal families the number ``sum(diag(var(X))) / D / K^(2/D)``.

    mclust has no prior for EVE, VEE, VVE and EVV; neither has bayesgmm. For the
    other families MAP-EM's M-step is mclust's EM M-step (``me*p``, checked against R
    to 1e-14), so the two reach the same mode; mclust's quirks are kept for that:

    - with two or more components EII leaves the prior's scale out (a flat
      ``sigma^-(dof + 2)`` prior on its one variance), and EEI leaves the means at the
      component averages (its M-step is the mode of no density: ``log_prior_`` is NaN);
    - VEV ignores ``dof``; EVI, VEI, EEV and VEV are modes of improper priors, whose
      log density (up to a constant) ``log_prior_`` gives;
    - one component takes mclust's closed form for one Gaussian (``mvn``), whatever
      the family.

    One deliberate difference: with ``shrinkage=0`` mclust's VVV EM still counts the
    absent mean prior in its denominator; bayesgmm does not, so its fit is always the
    posterior's mode (at ``shrinkage > 0`` the two are the same).

    Examples
    --------
    >>> ConjugatePrior()
    ConjugatePrior(shrinkage=0.01, mean=<data mean>, dof=<D + 2>, scale=<var(X) / K^(2/D)>)
    """

    shrinkage: object = 0.01
    mean: object = None
    dof: object = None
    scale: object = None
    _defaults = {"mean": "data mean", "dof": "D + 2", "scale": "var(X) / K^(2/D)"}

    def __post_init__(self):
        from ._validation import check_number

        check_number("ConjugatePrior shrinkage", self.shrinkage, low=0,
                     hint=" (0 is a flat prior on the means; mclust's default is 0.01)")
        if self.mean is not None:
            check_real_array("ConjugatePrior mean", self.mean, max_ndim=1)
        if self.dof is not None:
            check_number("ConjugatePrior dof", self.dof, low=0, low_open=True)
        if self.scale is not None:
            scale = check_real_array("ConjugatePrior scale", self.scale, max_ndim=2)
            if scale.ndim < 2 and not np.all(scale > 0):
                raise ValueError(
                    f"ConjugatePrior scale must be positive, got {self.scale!r} (it is the "
                    "prior's guess of a covariance's size, in the data's units squared).")
            if scale.ndim == 2:
                _check_positive_definite("ConjugatePrior scale", scale)

    def resolve(self, X, n_components, structure, sample_weight=None
                ) -> "ResolvedConjugatePrior":
        """The prior's parameters for data ``X`` (n, D), ``n_components`` and a
        covariance structure, with every default filled in and every shape checked.

        With ``sample_weight`` the data mean and covariance are weighted (an integer
        weight counting a row that many times, the divisor ``sum(w) - 1``).
        """
        X = np.asarray(X, dtype=float)
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight,
                                                                      dtype=float)
        data_mean = (w @ X) / w.sum()
        variance = None
        if self.scale is None:
            deviations = X - data_mean
            variance = (deviations.T * w) @ deviations / (w.sum() - 1)
        return self.resolve_from_moments(data_mean, variance, np.count_nonzero(w),
                                         n_components, structure)

    def resolve_from_moments(self, data_mean, variance, n_points, n_components, structure
                             ) -> "ResolvedConjugatePrior":
        """:meth:`resolve` from the data's (weighted) mean (D,), covariance (D, D; divisor
        ``sum(w) - 1``; only read for the default scale) and number of rows of positive
        weight: what data too large for memory (a Dask array) give in one pass."""
        data_mean = np.asarray(data_mean, dtype=float)
        D = data_mean.shape[0]
        K = int(n_components)
        kind = structure.prior_scale_kind
        mean = data_mean if self.mean is None else np.asarray(self.mean, dtype=float)
        if mean.shape not in ((), (D,)):
            raise ValueError(
                f"ConjugatePrior mean has shape {mean.shape}; these data have {D} features, "
                f"so it must be a number or a vector of {D}.")
        mean = np.broadcast_to(mean, (D,)).copy()
        dof = float(D + 2 if self.dof is None else self.dof)
        if kind == "matrix" and not dof > D - 1:
            raise ValueError(
                f"ConjugatePrior dof={dof:g} is not above D - 1 = {D - 1}: an inverse-"
                f"Wishart prior on a {D} x {D} covariance needs dof > {D - 1} to be proper "
                f"(mclust's default is D + 2 = {D + 2}).")
        if self.scale is None:
            factor = (1.0 / K) ** (2.0 / D)
            if kind == "matrix":
                scale = factor * (variance if n_points > D else np.diag(np.diag(variance)))
            else:
                scale = np.full(D if kind == "vector" else (), factor * np.trace(variance) / D)
            if not np.all(np.diag(np.atleast_2d(scale)) > 0):
                raise ValueError(
                    "ConjugatePrior's default scale is var(X) / K^(2/D), and X has a "
                    "feature of zero variance: give scale= explicitly, or drop the "
                    "constant column.")
        else:
            scale = np.asarray(self.scale, dtype=float)
            shapes = {"matrix": [(D, D)], "vector": [(), (D,)], "scalar": [()]}[kind]
            if scale.shape not in shapes:
                what = {"matrix": f"a {D} x {D} positive-definite matrix",
                        "vector": f"a positive number or a vector of {D}",
                        "scalar": "a positive number"}[kind]
                raise ValueError(
                    f"ConjugatePrior scale has shape {scale.shape}, but covariance_type "
                    f"{structure.mclust_name!r} takes {what}.")
            if kind == "vector":
                scale = np.broadcast_to(scale, (D,)).copy()
        return ResolvedConjugatePrior(float(self.shrinkage), mean, dof, scale,
                                      ConjugatePrior(float(self.shrinkage), mean, dof, scale))


def _check_positive_definite(name, matrix):
    if matrix.shape[0] != matrix.shape[1] or not np.allclose(matrix, matrix.T, rtol=1e-10,
                                                              atol=0):
        raise ValueError(f"{name} must be a symmetric square matrix, got shape "
                         f"{matrix.shape}.")
    if np.linalg.eigvalsh(matrix)[0] <= 0:
        raise ValueError(f"{name} must be positive definite (it is the prior's guess of a "
                         "covariance matrix); its smallest eigenvalue is "
                         f"{np.linalg.eigvalsh(matrix)[0]:.3g}.")


@dataclass(frozen=True)
class ResolvedConjugatePrior:
    """A :class:`ConjugatePrior` with its parameters filled in for given data.

    ``scale`` is (D, D) for the general covariance families, (D,) for the diagonal
    ones and a number for the spherical ones (and 1-D data).
    """

    shrinkage: float
    mean: np.ndarray  # (D,)
    dof: float
    scale: np.ndarray
    prior: ConjugatePrior  # with every None filled in

    @property
    def priors(self) -> ConjugatePrior:
        """The prior with every default filled in (as ``ResolvedPriors.priors``)."""
        return self.prior

    def standardised(self, center, scale):
        """The same prior for the data ``(X - center) / scale`` (per feature)."""
        if self.scale.ndim == 2:
            new_scale = self.scale / np.outer(scale, scale)
        elif self.scale.ndim == 1:
            new_scale = self.scale / scale**2
        else:
            new_scale = self.scale / scale[0] ** 2
        return ResolvedConjugatePrior(self.shrinkage, (self.mean - center) / scale, self.dof,
                                      new_scale, self.prior)


_PRIOR_CLASSES = {c.__name__: c for c in (Dirichlet, Normal, HalfNormal, InverseGamma, LKJ,
                                          ConjugatePrior)}


def as_priors(priors):
    """The Bayesian model's priors from what a user may pass: None, a GMMPriors, a dict
    of its parts, a ConjugatePrior."""
    if isinstance(priors, ConjugatePrior):
        return priors
    return GMMPriors.from_any(priors)


def priors_from_dict(spec):
    """The priors described by their ``to_dict()`` (a GMMPriors' or a ConjugatePrior's)."""
    if isinstance(spec, dict) and "dist" in spec:
        prior = Prior.from_dict(spec)
        if not isinstance(prior, ConjugatePrior):
            raise ValueError(f"priors must be a GMMPriors or a ConjugatePrior, got {prior!r}.")
        return prior
    return GMMPriors.from_dict(spec)


def resolve_priors(priors, X, n_components, structure, sample_weight=None):
    """Resolved priors (:class:`ResolvedPriors` or :class:`ResolvedConjugatePrior`).

    With ``sample_weight`` (checked, non-negative) the data-scaled defaults are those
    of the weighted data: an integer weight counts a row that many times, so the
    defaults equal those of the data with the rows repeated.
    """
    priors = as_priors(priors)
    if isinstance(priors, ConjugatePrior):
        structure.check_prior()
        return priors.resolve(X, n_components, structure, sample_weight=sample_weight)
    return priors.resolve(X, n_components, structure.bayesian(X.shape[1]).kind,
                          sample_weight=sample_weight)


@dataclass(frozen=True)
class ResolvedPriors:
    """Concrete prior parameters for given data, K and covariance structure."""

    alpha: np.ndarray  # (K,)
    means_mu: np.ndarray  # (K, D)
    means_sigma: np.ndarray  # (K, D)
    covariance: str  # "lkj", "halfnormal" or "inversegamma"
    eta: float | None
    sd_sigma: np.ndarray | None  # (D,) or () for spherical / tied 1-D
    ig_alpha: np.ndarray | None
    ig_beta: np.ndarray | None
    priors: "GMMPriors"  # with every None filled in

    @property
    def scale(self):
        """The prior of the scales: "halfnormal" (on sds) or "inversegamma" (on variances)."""
        return "halfnormal" if self.ig_alpha is None else "inversegamma"


@dataclass(frozen=True)
class GMMPriors:
    """The priors of a Bayesian Gaussian mixture.

    Parameters
    ----------
    weights : Dirichlet
        Prior on the mixture weights.
    means : Normal
        Prior on the component means.
    covariance : LKJ, HalfNormal, InverseGamma or None
        ``LKJ`` for full and tied covariances; ``InverseGamma`` (on variances) or
        ``HalfNormal`` (on standard deviations) for diag and spherical ones and for
        one-dimensional data. ``None`` picks the default of the structure (inverse-gamma
        variances, under ``LKJ`` for full and tied).

    Examples
    --------
    >>> GMMPriors(weights=Dirichlet(0.1))
    GMMPriors(weights=Dirichlet(alpha=0.1), means=Normal(mu=<data mean>, sigma=<data range>), covariance=<default>)
    """

    weights: Dirichlet = field(default_factory=Dirichlet)
    means: Normal = field(default_factory=Normal)
    covariance: Prior | None = None

    def __post_init__(self):
        for name, cls in (("weights", Dirichlet), ("means", Normal)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(
                    f"priors.{name} must be a bayesgmm.priors.{cls.__name__}, "
                    f"got {getattr(self, name)!r}."
                )
        if self.covariance is not None and not isinstance(
            self.covariance, (LKJ, HalfNormal, InverseGamma)
        ):
            raise ValueError(
                "priors.covariance must be LKJ, HalfNormal or InverseGamma, "
                f"got {self.covariance!r}."
            )

    def __repr__(self):
        cov = "<default>" if self.covariance is None else repr(self.covariance)
        return f"GMMPriors(weights={self.weights!r}, means={self.means!r}, covariance={cov})"

    @classmethod
    def from_any(cls, priors) -> "GMMPriors":
        """Accept None, a GMMPriors, or a dict with keys weights/means/covariance."""
        if priors is None:
            return cls()
        if isinstance(priors, cls):
            return priors
        if isinstance(priors, dict):
            unknown = set(priors) - {"weights", "means", "covariance"}
            if unknown:
                raise ValueError(
                    f"unknown prior names {sorted(unknown)}; valid: ['weights', 'means', "
                    "'covariance']."
                )
            return cls(**priors)
        raise ValueError(f"priors must be a GMMPriors, a dict or None, got {type(priors).__name__}.")

    def to_dict(self):
        return {
            "weights": self.weights.to_dict(),
            "means": self.means.to_dict(),
            "covariance": None if self.covariance is None else self.covariance.to_dict(),
        }

    @classmethod
    def from_dict(cls, spec):
        """The priors described by ``to_dict()``'s output; ValueError for anything else."""
        keys = ["weights", "means", "covariance"]
        if not isinstance(spec, dict) or sorted(spec) != sorted(keys):
            raise ValueError(f"priors must be a dict with the keys {keys}, got {spec!r}.")
        return cls(
            weights=Prior.from_dict(spec["weights"]),
            means=Prior.from_dict(spec["means"]),
            covariance=None if spec["covariance"] is None else Prior.from_dict(spec["covariance"]),
        )

    def resolve(self, X, n_components, covariance_kind, sample_weight=None) -> ResolvedPriors:
        """Fill the data-scaled defaults and check every shape against the data.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        n_components : int
        covariance_kind : {"matrix", "per_feature", "single"}
            How the covariance is parametrised: correlation matrix and standard
            deviations (full/tied), one standard deviation per feature (diag, and
            all 1-D models), or one per component (spherical).
        sample_weight : ndarray of shape (n_samples,), optional
            Checked non-negative weights: the defaults use the weighted mean and sd
            and the range of the rows of positive weight (integer weights: those of
            the data with every row repeated as often).
        """
        K, D = n_components, X.shape[1]
        if sample_weight is not None:  # rows of weight zero are not data
            sample_weight = np.asarray(sample_weight, dtype=float)
            X, sample_weight = X[sample_weight > 0], sample_weight[sample_weight > 0]
        with np.errstate(over="ignore", invalid="ignore"):
            if sample_weight is None:
                center = X.mean(axis=0)
                sd = X.std(axis=0)
            else:
                total = sample_weight.sum()
                center = (sample_weight @ X) / total
                sd = np.sqrt((sample_weight @ (X - center) ** 2) / total)
            data_spread = X.max(axis=0) - X.min(axis=0)
        _check_data_scale(X, center, data_spread, sd)
        spread = np.where(data_spread > 0, data_spread, 1.0)
        sd = np.where(sd > 0, sd, 1.0)

        alpha = _broadcast("Dirichlet alpha", self.weights.alpha, (K,))
        mu = _broadcast("Normal mu", center if self.means.mu is None else self.means.mu, (K, D))
        sigma = _broadcast(
            "Normal sigma", spread if self.means.sigma is None else self.means.sigma, (K, D)
        )
        covariance = self.covariance
        if covariance is None:
            covariance = LKJ() if covariance_kind == "matrix" else InverseGamma()
        if covariance_kind == "matrix" and not isinstance(covariance, LKJ):
            raise ValueError(
                f"full and tied covariances take an LKJ prior, got {covariance!r}; "
                "HalfNormal and InverseGamma priors are for diag and spherical covariances."
            )
        if covariance_kind != "matrix" and isinstance(covariance, LKJ):
            raise ValueError(
                "an LKJ prior needs a full or tied covariance of at least two features; "
                "use HalfNormal (standard deviations) or InverseGamma (variances)."
            )
        sd_shape = () if covariance_kind == "single" else (D,)
        if isinstance(covariance, LKJ):
            kind, eta, scale_prior = "lkj", float(covariance.eta), covariance.sd
        else:
            kind, eta, scale_prior = None, None, covariance
        sd_sigma = ig_alpha = ig_beta = None
        if isinstance(scale_prior, HalfNormal):
            default_sd = np.sqrt(np.mean(sd**2)) if covariance_kind == "single" else sd
            sd_sigma = _broadcast("HalfNormal sigma", _or(scale_prior.sigma, default_sd),
                                  sd_shape)
            scale_prior = HalfNormal(sd_sigma)
        else:
            default_beta = 0.02 * (
                np.mean(spread**2) if covariance_kind == "single" else spread**2
            )
            ig_alpha = _broadcast("InverseGamma alpha", scale_prior.alpha, sd_shape)
            ig_beta = _broadcast("InverseGamma beta", _or(scale_prior.beta, default_beta),
                                 sd_shape)
            scale_prior = InverseGamma(ig_alpha, ig_beta)
        kind = kind or type(scale_prior).__name__.lower()
        covariance = LKJ(eta=eta, sd=scale_prior) if kind == "lkj" else scale_prior
        filled = GMMPriors(Dirichlet(alpha), Normal(mu, sigma), covariance)
        resolved = ResolvedPriors(alpha, mu, sigma, kind, eta, sd_sigma, ig_alpha, ig_beta,
                                  filled)
        _check_proper(X, data_spread, resolved.scale, covariance_kind)
        return resolved


def _check_data_scale(X, center, spread, sd):
    """Refuse data whose spread squared is not a float64: every variance would be."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        overflow = ~(np.isfinite(center) & np.isfinite(spread**2) & np.isfinite(sd**2))
        tiny = np.finfo(float).tiny
        underflow = ~overflow & (spread > 0) & ((sd**2 < tiny) | (spread**2 < tiny))
    if overflow.any():
        raise ValueError(
            f"X's values are too large for float64 (largest |value| "
            f"{np.max(np.abs(X)):.3g}, in column(s) {_few_columns(np.flatnonzero(overflow))}): "
            "the squares of their spread overflow, and so would the data-scaled default "
            "priors (means' sigma = data range, sds' sigma = data sd) and every variance of "
            "the model. Rescale the data (e.g. divide by a power of 10, or standardise each "
            "column) before fitting."
        )
    if underflow.any():
        raise ValueError(
            f"X's spread is too small for float64 in column(s) "
            f"{_few_columns(np.flatnonzero(underflow))} (range "
            f"{np.min(spread[underflow]):.3g}): its "
            "square underflows to zero, and so would the data-scaled default priors and "
            "every variance of the model. Rescale the data (e.g. multiply by a power of 10, "
            "or standardise each column) before fitting."
        )


def _check_proper(X, spread, scale, covariance_kind):
    """Refuse constant columns where they make the posterior improper.

    A HalfNormal prior (alone or under LKJ) has positive density at sd = 0, and a
    component sitting on a constant column has a likelihood growing like
    sd^-(n-1) as its sd there shrinks: the posterior has no mode and no finite mass,
    so MAP runs off to a singular covariance and NUTS cannot sample it.
    InverseGamma priors vanish fast enough at zero; a spherical covariance shares one
    sd with the other columns.
    """
    constant = spread == 0
    if len(X) < 2 or scale == "inversegamma" or not constant.any() or (
            covariance_kind == "single" and not constant.all()):
        return
    prior = "LKJ(sd=InverseGamma())" if covariance_kind == "matrix" else "InverseGamma()"
    remedy = ("Drop the constant column(s), or use the default InverseGamma prior on the "
              f"variances (priors=GMMPriors(covariance={prior})), which keeps them away "
              "from zero")
    columns = np.flatnonzero(constant)
    raise ValueError(
        f"X's column(s) {_few_columns(columns)} are constant (every value "
        f"{X[0, columns[0]]:g}): with a HalfNormal prior on the standard deviations the "
        "posterior is improper (a component's sd for that column can shrink to zero while "
        "its density grows without bound), so MAP, NUTS and ADVI have no answer to find. "
        f"{remedy}."
    )


def _few_columns(columns, limit=6):
    columns = [str(int(c)) for c in columns]
    return ", ".join(columns[:limit]) + (f" and {len(columns) - limit} more"
                                         if len(columns) > limit else "")


def _or(value, default):
    return default if value is None else value


def _broadcast(name, value, shape):
    array = np.asarray(value, dtype=float)
    try:
        return np.broadcast_to(array, shape).copy()
    except ValueError:
        raise ValueError(
            f"{name} has shape {array.shape}, which does not fit the model's shape {shape} "
            "(components, features)."
        ) from None
