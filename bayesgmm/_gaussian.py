"""Per-covariance-structure Gaussian maths shared by the EM and Bayesian engines.

Every covariance structure writes the component log-density as a *linear* function
of a few per-point features, so that both EM steps become large matrix products:

    log N(x | mu_k, Sigma_k) = -1/2 q(x) . a_k  +  x . b_k  +  c_k

where ``q(x)`` are second-moment features of the point (the upper triangle of
``x x^T`` for full and tied covariances, ``x**2`` for diagonal ones, ``|x|^2`` for
spherical ones), ``a_k`` holds the matching entries of the precision matrix, ``b_k =
P_k mu_k`` and ``c_k`` gathers the constant terms.  The same features summed with
responsibilities, ``sum_n r_nk q(x_n)``, are the sufficient statistics of the M-step.

Adding a covariance structure (say one of mclust's volume/shape/orientation models)
means adding one subclass of :class:`CovarianceStructure` and registering it in
:data:`COVARIANCE_STRUCTURES`: the EM loop, sampling, the criteria, the parameter
counts and the Bayesian model (through :meth:`CovarianceStructure.bayesian`) take
everything from it, and nothing outside this module tests a structure's name.

The data handed to these functions is expected to be centred (the engines subtract
the weighted data mean), which keeps the expanded quadratic form accurate for
components near that centre. For a small component far from it the terms cancel, and
the EM engine expands it about its own mean instead: ``coefficients`` and
``covariances`` work per component, with each component's means and moments in its
own coordinates.
"""

from __future__ import annotations

import functools
import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

__all__ = [
    "COVARIANCE_STRUCTURES",
    "CovarianceStructure",
    "GaussianCoefficients",
    "get_covariance_structure",
]

_LOG_2PI = math.log(2.0 * math.pi)

#: A component has collapsed when its covariance matrix, standardised by the data's
#: variances, has an eigenvalue below this: it then sits on points with (nearly)
#: identical values, held up only by ``reg_covar``, and its likelihood is spurious.
COLLAPSE_TOLERANCE = 1e-5


class CollapsedComponentError(ValueError):
    """A component's covariance is not positive definite (it collapsed)."""

    def __init__(self, components, reg_covar=None, prefix="Fitting the mixture model failed because "):
        self.components = list(components)
        names = ", ".join(str(k) for k in self.components)
        noun = "component" if len(self.components) == 1 else "components"
        reg = "" if reg_covar is None else f" (currently reg_covar={reg_covar:g})"
        super().__init__(
            f"{prefix}{noun} {names} collapsed: its "
            "covariance matrix is singular or not positive definite, typically because "
            "too few points, or points lying on a line or plane, were assigned to it. "
            f"Try increasing reg_covar{reg}, using fewer components, a more constrained "
            "covariance_type (e.g. 'tied' or 'diag'), or scaling the input data."
        )


@dataclass(frozen=True)
class GaussianCoefficients:
    """Coefficients of the component log-densities as a linear function of features.

    ``log N(x_n | k) = -0.5 * quad[k] @ q(x_n) + lin[k] @ x_n + const[k]``.
    """

    quad: np.ndarray  # (n_components, n_quad_features)
    lin: np.ndarray  # (n_components, n_features)
    const: np.ndarray  # (n_components,)


@dataclass(frozen=True)
class BayesianParametrisation:
    """How the Bayesian model parametrises a structure's covariances.

    ``kind`` is ``"matrix"`` (standard deviations with an LKJ prior on the
    correlations), ``"per_feature"`` (one variance per feature, axis-aligned) or
    ``"single"`` (one variance per component); ``shared`` says whether all components
    share one covariance. Everything the PyMC model, its starting points and its
    priors need to know about a structure is in these two fields.
    """

    kind: str
    shared: bool = False

    def scale_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of the model's scale variables (``sds``/``sigmas``, ``variances``)."""
        if self.kind == "single":
            return (1,) if self.shared else (n_components,)
        return (n_features,) if self.shared else (n_components, n_features)

    @property
    def scale_dims(self) -> tuple[str, ...]:
        if self.kind == "single":
            return ("component",)
        return ("feature",) if self.shared else ("component", "feature")

    def variances(self, full: np.ndarray) -> np.ndarray:
        """The scale variables' variances, of :meth:`scale_shape`, from full
        covariances (K, D, D) (for a shared covariance, all K the same)."""
        diagonal = np.diagonal(full, axis1=-2, axis2=-1)
        if self.kind == "single":
            values = diagonal.mean(axis=-1)
            return values[:1] if self.shared else values
        return diagonal[0] if self.shared else diagonal


_AXIS_LETTERS = {"component": "k", "feature": "d", "feature2": "d"}


class CovarianceStructure(ABC):
    """One covariance structure: its parameter layout, M-step and log-density."""

    #: scikit-learn's name of the structure.
    name: str
    #: mclust's three-letter name (volume, shape, orientation).
    mclust_name: str
    #: a one-line description for documentation and error messages.
    description: str
    #: whether scaling each feature by its own factor maps the family onto itself
    #: (spherical covariances stay spherical only under one common factor).
    per_feature_scaling: bool = True
    #: the axes of ``covariances_`` (and of ``precisions_cholesky_``), named as the
    #: labelled results name them: "component", "feature", "feature2".
    layout: tuple[str, ...]
    #: whether :meth:`covariances` takes leading batch axes on all its arguments (a batch
    #: of independent fits, e.g. the bootstrap's replicates, in one call); the families
    #: with an iterative or constraining M-step run one call per fit instead.
    batched_m_step: bool = False
    #: whether each component's covariance is estimated on its own (so one of them can
    #: be held fixed while the others are estimated); False where the family ties
    #: components together (a shared matrix, volume, shape or orientation)
    independent_components: bool = False

    # -- layout -----------------------------------------------------------------
    def covariance_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of ``covariances_`` (and of ``precisions_cholesky_``)."""
        sizes = {"component": n_components, "feature": n_features, "feature2": n_features}
        return tuple(sizes[axis] for axis in self.layout)

    @property
    def signature(self) -> str:
        """The layout as a gufunc signature's core dimensions, e.g. ``"(k,d,d)"``."""
        return "(" + ",".join(_AXIS_LETTERS[axis] for axis in self.layout) + ")"

    def full_matrices(self, values: np.ndarray, n_features: int) -> np.ndarray:
        """The distinct covariances (or precision factors) of ``values`` as full
        matrices: (K, D, D), or (1, D, D) for a layout without a component axis."""
        values = np.asarray(values)
        if "component" not in self.layout:
            return self.to_full(values, 1, n_features)
        return self.to_full(values, len(values), n_features)

    def per_component(self, values: np.ndarray, n_components: int):
        """``(structure, values)`` with one entry per component along axis -len(layout):
        this structure itself unless its layout is shared by all components.

        ``values`` may have leading batch axes (draws). Lets batched code (all draws'
        components at once) treat every structure the same way.
        """
        return self, values

    def check_n_features(self, n_features: int) -> None:
        """Raise a ValueError saying why data with ``n_features`` cannot have this structure."""

    def bayesian(self, n_features: int) -> BayesianParametrisation:
        """How the Bayesian model parametrises this structure (see
        :class:`BayesianParametrisation`)."""
        raise ValueError(
            f"covariance_type {self.mclust_name!r} ({self.description}) is fitted by EM "
            f"only for now; the Bayesian model takes {bayesian_covariance_names()} (or "
            "their mclust names).")

    def sample(self, rng, means, covariances, counts) -> np.ndarray:
        """``counts[k]`` draws from component ``k``, stacked in component order.

        The default draws ``N(0, I)`` and colours it by the covariance's lower Cholesky
        factor; the sklearn-compatible structures override it to consume ``rng`` exactly
        as scikit-learn's ``GaussianMixture.sample`` does.
        """
        K, D = means.shape
        factors = np.linalg.cholesky(self.to_full(covariances, K, D))
        return np.vstack([mean + rng.standard_normal(size=(int(c), D)) @ factor.T
                          for mean, factor, c in zip(means, factors, counts)])

    @abstractmethod
    def n_covariance_parameters(self, n_components: int, n_features: int) -> int:
        """Number of free parameters in the covariances."""

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free parameters of the whole mixture: covariances, means and weights."""
        return (
            self.n_covariance_parameters(n_components, n_features)
            + n_components * n_features
            + n_components
            - 1
        )

    def check_estimable(self, n_components: int, n_features: int, n_samples: int) -> None:
        """Refuse, before any fitting, a maximum-likelihood fit with more free parameters
        than the data have values (``n_samples * n_features``): its likelihood has no
        maximum worth the name, and BIC/AIC of it mean nothing."""
        n_parameters = self.n_parameters(n_components, n_features)
        n_values = n_samples * n_features
        if n_parameters <= n_values:
            return
        fewer = [k for k in range(n_components - 1, 0, -1)
                 if self.n_parameters(k, n_features) <= n_values]
        families = [s.mclust_name for s in COVARIANCE_STRUCTURES.values()
                    if s.n_parameters(n_components, n_features) <= n_values
                    and _accepts(s, n_features)]
        remedies = []
        if fewer:
            remedies.append(f"at most {fewer[0]} components")
        if families:
            remedies.append(f"a more parsimonious family ({', '.join(families)})")
        remedies.append("more data, or the Bayesian model, whose priors regularise")
        name = (repr(self.name) if self.name == self.mclust_name
                else f"{self.name!r} ({self.mclust_name})")
        raise ValueError(
            f"covariance_type {name} with {n_components} components has "
            f"{n_parameters} free parameters, more than the {n_values} values of these data "
            f"({n_samples} samples x {n_features} features): maximum likelihood cannot "
            f"estimate them. Use {'; or '.join(remedies)}.")

    # -- the conjugate prior (MAP-EM) ----------------------------------------------
    @property
    def prior_scale_kind(self) -> str:
        """The form of the conjugate prior's scale: "matrix" (D, D) for the general
        covariance families, "vector" (D,) for the diagonal ones, "scalar" for the
        spherical ones."""
        if "feature2" in self.layout:
            return "matrix"
        return "vector" if "feature" in self.layout else "scalar"

    def check_prior(self) -> None:
        """Raise a ValueError if this family has no conjugate prior."""
        if type(self).map_constrain is CovarianceStructure.map_constrain:
            raise ValueError(
                f"covariance_type {self.mclust_name!r} ({self.description}) has no conjugate "
                "prior (mclust has none for EVE, VEE, VVE and EVV): use one of "
                f"{prior_covariance_names()}, or fit it without a prior.")

    def map_shrinks_means(self, n_components: int) -> bool:
        """Whether the MAP means are shrunk towards the prior mean (mclust's EEI
        leaves them at the component averages)."""
        return True

    def map_covariances(self, nk, means, quad_moments, prior, offsets, reg_covar,
                        previous=None):
        """M-step covariances under the conjugate prior (mclust's MAP-EM).

        ``means`` are the components' averages and ``offsets`` the prior mean, both in
        each component's own coordinates (those of ``quad_moments``); ``prior`` a
        :class:`~bayesgmm.priors.ResolvedConjugatePrior`. Every family sees the
        posterior scatter ``T_k = W_k + kappa n_k / (n_k + kappa) d_k d_k^T`` (``W_k``
        the scatter about the average, ``d_k`` the average minus the prior mean) in
        its container's layout, and one component takes mclust's single-component
        formula (``mvn``), as ``Mclust`` does for G = 1.
        """
        shrinkage = prior.shrinkage
        factor = shrinkage * nk / (nk + shrinkage)
        T = self._posterior_scatter(nk, means, quad_moments, means - offsets, factor)
        if len(nk) == 1:
            covariances = self._map_one(nk, T, prior)
        else:
            covariances = self.map_constrain(nk, T, prior, previous)
        covariances = np.array(covariances, dtype=float)
        if "feature2" in self.layout:
            D = covariances.shape[-1]
            covariances[..., np.arange(D), np.arange(D)] += reg_covar
        else:
            covariances += reg_covar
        return covariances

    def _posterior_scatter(self, nk, means, quad_moments, d, factor):
        """``T_k`` (see :meth:`map_covariances`) in the container's layout."""
        raise NotImplementedError

    def _map_one(self, nk, T, prior):
        """The MAP covariance of a single component (the container's formula)."""
        raise NotImplementedError

    def map_constrain(self, nk, T, prior, previous=None):
        """The family's MAP covariances of two or more components from ``T``."""
        raise NotImplementedError

    def log_prior(self, prior, means, covariances) -> float:
        """Log density of the conjugate prior at (means, covariances), whose sum with the
        log-likelihood MAP-EM increases; NaN where the family's M-step is the mode of no
        density (mclust's EEI)."""
        K, D = means.shape
        full = self.to_full(covariances, K, D)
        if K == 1:
            value = self._log_prior_one(prior, full)
        else:
            value = self._log_prior_covariances(prior, full)
        if self.map_shrinks_means(K) and prior.shrinkage > 0:
            value += float(np.sum(_log_normal(means, prior.mean, full / prior.shrinkage)))
        return float(value)

    def _log_prior_one(self, prior, full):
        raise NotImplementedError

    def _log_prior_covariances(self, prior, full):
        raise NotImplementedError

    @abstractmethod
    def from_full(self, full: np.ndarray, xp=np) -> np.ndarray:
        """Inverse of :meth:`to_full`: full matrices (..., K, D, D) to this layout.

        Covariances or precision factors alike; ``xp=pytensor.tensor`` for tensors.
        """

    @abstractmethod
    def to_full(self, values: np.ndarray, n_components: int, n_features: int) -> np.ndarray:
        """Covariances, or precision Cholesky factors, as full matrices of shape (K, D, D).

        Both are stored in the same layout, and the map from the stored values to
        the full matrices is the same for the two.
        """

    # -- features and M-step ------------------------------------------------------
    @abstractmethod
    def quad_features(self, X, xp=np):
        """Second-moment features ``q(x)`` of each row, shape (n, n_quad_features).

        ``xp`` is the array namespace: ``numpy`` (EM) or ``pytensor.tensor`` (the
        PyMC model), so both engines evaluate one and the same log-density.
        """

    def quad_moments_from_second_moments(self, second):
        """``sum r q(x)`` from ``sum r x x^T`` (..., D, D): the features are linear in
        ``x x^T`` (what EM with missing entries has: expected outer products)."""
        second = np.asarray(second, dtype=np.float64)
        return np.einsum("mij,...ij->...m", _quad_map(self, second.shape[-1]), second)

    def quad_features_by_feature(self, Xt, out):
        """Write ``quad_features`` of a feature-major numpy block ``Xt`` (D, n) to ``out`` (m, n).

        The layout of the EM engine's blocks: every feature is one contiguous row.
        """
        out[...] = self.quad_features(Xt.T).T

    @abstractmethod
    def covariances(
        self,
        nk: np.ndarray,
        means: np.ndarray,
        quad_moments: np.ndarray,
        reg_covar: float,
        previous: np.ndarray | None = None,
    ) -> np.ndarray:
        """M-step covariances from the weighted moments.

        Parameters
        ----------
        nk : ndarray of shape (n_components,)
            Sum of responsibilities (times sample weights) per component.
        means : ndarray of shape (n_components, n_features)
            The component means, in the same (centred) coordinates as the moments.
        quad_moments : ndarray of shape (n_components, n_quad_features)
            ``sum_n r_nk q(x_n)``.
        reg_covar : float
            Added to the diagonal of every covariance.
        previous : ndarray, optional
            The current covariances (this layout), where an iterative M-step starts:
            it then never ends below them (a generalised EM step).
        """

    # -- precisions and log-density -------------------------------------------
    @abstractmethod
    def precisions_cholesky(self, covariances: np.ndarray, reg_covar=None) -> np.ndarray:
        """A factor ``L`` with ``L @ L.T`` equal to the precision (inverse covariance).

        Raises :class:`CollapsedComponentError` naming the components whose
        covariance is not positive definite (``reg_covar`` only enters its message).
        """

    @abstractmethod
    def covariances_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        """Covariances from precision matrices (same layout)."""

    @abstractmethod
    def precisions_cholesky_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        """The factor ``L`` of given precision matrices (same layout), ``P = L @ L.T``.

        Upper triangular, as the factor :meth:`precisions_cholesky` gives (scikit-learn's
        convention), so a start from ``precisions_init`` and one from an M-step agree.
        """

    @abstractmethod
    def precisions_from_cholesky(self, precisions_cholesky: np.ndarray) -> np.ndarray:
        """Precisions ``L @ L.T`` from their factors (same layout): scikit-learn's ``precisions_``."""

    @abstractmethod
    def coefficients(self, means, precisions_cholesky, xp=np) -> GaussianCoefficients:
        """Coefficients of the log-density as a linear function of the features.

        Works on numpy arrays or, with ``xp=pytensor.tensor``, on symbolic tensors
        of static shape.
        """

    def mixture_log_density(self, X, log_weights, means, precisions_cholesky, xp=np):
        """``log sum_k w_k N(x | k)`` of each row, and the joint terms (n, K).

        The marginal log-likelihood with the labels summed out, in the same
        expanded form the EM engine uses; ``X`` should be centred (and ``means``
        expressed in the same coordinates) for accuracy.
        """
        coef = self.coefficients(means, precisions_cholesky, xp=xp)
        joint = (
            -0.5 * (self.quad_features(X, xp=xp) @ coef.quad.T)
            + X @ coef.lin.T
            + (coef.const + log_weights)[None, :]
        )
        if xp is np:
            from scipy.special import logsumexp

            return logsumexp(joint, axis=1), joint
        return xp.logsumexp(joint, axis=1), joint

    def log_prob(
        self, X: np.ndarray, means: np.ndarray, precisions_cholesky: np.ndarray
    ) -> np.ndarray:
        """Log-density of each row under each component, shape (n, n_components).

        The reference formulation (a whitening transform per component), independent
        of the feature expansion used by the engines; kept for tests and for
        callers who want one clear formula.
        """
        n_features = X.shape[1]
        full_chol = self.to_full(precisions_cholesky, len(means), n_features)
        out = np.empty((X.shape[0], len(means)))
        for k, (mu, chol) in enumerate(zip(means, full_chol)):
            y = (X - mu) @ chol
            out[:, k] = (
                -0.5 * (n_features * _LOG_2PI + np.sum(y * y, axis=1))
                + np.sum(np.log(np.abs(np.diag(chol))))
            )
        return out

    def __repr__(self) -> str:
        return f"<covariance structure {self.name!r} (mclust {self.mclust_name})>"


# -- helpers for full matrices ---------------------------------------------------
@functools.lru_cache(maxsize=64)
def _triu_pairs(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(n_features)``, computed once per size (read-only arrays): an EM
    iteration on small data asks for them several times."""
    rows, cols = np.triu_indices(n_features)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


@functools.lru_cache(maxsize=64)
def _diagonal_index(n_features: int) -> np.ndarray:
    index = np.arange(n_features)
    index.flags.writeable = False
    return index


@functools.lru_cache(maxsize=256)
def _quad_map(structure, n_features):
    """A (m, D, D) with ``q(x) = sum_ij A[:, i, j] x_i x_j`` for ``structure``'s features
    (read off its features of the unit vectors and their pairwise sums)."""
    eye = np.eye(n_features)
    single = structure.quad_features(eye)  # q(e_i), (D, m)
    A = np.zeros((single.shape[1], n_features, n_features))
    for i in range(n_features):
        A[:, i, i] = single[i]
        for j in range(i + 1, n_features):
            pair = structure.quad_features((eye[i] + eye[j])[None])[0]
            A[:, i, j] = A[:, j, i] = 0.5 * (pair - single[i] - single[j])
    A.flags.writeable = False
    return A


def _n_features(x) -> int:
    """The static size of the last axis of a numpy array or a pytensor variable."""
    if isinstance(x, np.ndarray):
        return x.shape[-1]
    size = x.type.shape[-1]
    if size is None:
        raise ValueError("the feature dimension must have a static size in the graph")
    return size


def _outer_features(X) -> np.ndarray:
    rows, cols = _triu_pairs(_n_features(X))
    return X[:, rows] * X[:, cols]


def _outer_features_by_feature(Xt: np.ndarray, out: np.ndarray) -> None:
    """``_outer_features`` of a feature-major block ``Xt`` (D, n), written to ``out`` (m, n).

    One contiguous broadcast product per feature: about 40x faster than
    fancy-indexing a row-major block.
    """
    n_features = Xt.shape[0]
    start = 0
    for i in range(n_features):
        stop = start + n_features - i
        np.multiply(Xt[i], Xt[i:], out=out[start:stop])
        start = stop


def _symmetric_from_triu(values: np.ndarray, n_features: int) -> np.ndarray:
    """(..., D(D+1)/2) upper-triangle entries -> (..., D, D) symmetric matrices."""
    rows, cols = _triu_pairs(n_features)
    out = np.zeros(values.shape[:-1] + (n_features, n_features))
    out[..., rows, cols] = values
    out[..., cols, rows] = values
    return out


@functools.lru_cache(maxsize=64)
def _triu_weights(n_features: int) -> np.ndarray:
    """Off-diagonal entries appear twice in x^T P x."""
    rows, cols = _triu_pairs(n_features)
    weights = np.where(rows == cols, 1.0, 2.0)
    weights.flags.writeable = False
    return weights


def _cholesky_of_precision_from_covariance(cov: np.ndarray) -> np.ndarray:
    """scikit-learn's convention: ``solve(chol(cov), I).T``, upper triangular.

    numpy's LAPACK only (no scipy.linalg): scipy ships its own OpenBLAS, and
    alternating the two libraries' thread pools costs milliseconds per call.
    Works on one matrix or a stack; raises ``np.linalg.LinAlgError`` if one is not
    positive definite.
    """
    cov_chol = np.linalg.cholesky(cov)
    return np.swapaxes(np.tril(np.linalg.inv(cov_chol)), -1, -2)


def _upper_cholesky(precisions: np.ndarray) -> np.ndarray:
    """An upper-triangular ``U`` with ``U @ U.T == precisions`` (one matrix or a stack).

    The lower Cholesky factor of the matrix with rows and columns reversed, reversed
    back (scikit-learn's ``_flipudlr`` construction).
    """
    flipped = np.flip(np.asarray(precisions), axis=(-2, -1))
    return np.flip(np.linalg.cholesky(flipped), axis=(-2, -1))


def _batched_precision_cholesky(covs: np.ndarray, reg_covar=None) -> np.ndarray:
    if np.all(np.isfinite(covs)):
        try:
            return _cholesky_of_precision_from_covariance(covs)
        except np.linalg.LinAlgError:
            pass
    failed = []
    for k, cov in enumerate(covs):
        try:
            if not np.all(np.isfinite(cov)):
                raise np.linalg.LinAlgError
            _cholesky_of_precision_from_covariance(cov)
        except np.linalg.LinAlgError:
            failed.append(k)
    raise CollapsedComponentError(failed, reg_covar)


def _full_coefficients(means, prec_chols, xp) -> GaussianCoefficients:
    """Coefficients for a stack of full precision factors (K, D, D)."""
    n_features = _n_features(means)
    precisions = prec_chols @ xp.swapaxes(prec_chols, -1, -2)
    rows, cols = _triu_pairs(n_features)
    quad = precisions[:, rows, cols] * _triu_weights(n_features)
    lin = xp.einsum("kij,kj->ki", precisions, means)
    log_det = xp.sum(xp.log(xp.abs(xp.diagonal(prec_chols, axis1=-2, axis2=-1))), axis=-1)
    const = -0.5 * (n_features * _LOG_2PI + xp.sum(lin * means, axis=1)) + log_det
    return GaussianCoefficients(quad, lin, const)


# -- the conjugate prior's pieces ----------------------------------------------------
def _prior_terms(prior, nk):
    """(p-independent) pieces of mclust's denominators: n, G, dof and I = [shrinkage > 0]."""
    return float(nk.sum()), len(nk), float(prior.dof), float(prior.shrinkage > 0)


def _matrix_scatter(nk, means, quad_moments, d, factor):
    n_features = means.shape[1]
    W = (_symmetric_from_triu(quad_moments, n_features)
         - nk[:, None, None] * means[:, :, None] * means[:, None, :])
    return W + factor[:, None, None] * d[:, :, None] * d[:, None, :]


def _log_inverse_gamma(variances, dof, scale):
    """log IG(variances; dof / 2, scale / 2), summed."""
    a, b = 0.5 * dof, 0.5 * np.asarray(scale, dtype=float)
    variances = np.asarray(variances, dtype=float)
    return float(np.sum(a * np.log(b) - math.lgamma(a) - (a + 1) * np.log(variances)
                        - b / variances))


def _log_inverse_wishart(full, dof, scale):
    """log IW(Sigma_k; dof, scale), summed over the stack ``full`` (K, D, D)."""
    from scipy.special import multigammaln

    D = full.shape[-1]
    log_det = np.linalg.slogdet(full)[1]
    trace = np.einsum("ij,kji->k", scale, np.linalg.inv(full))
    return float(np.sum(0.5 * dof * np.linalg.slogdet(scale)[1] - 0.5 * dof * D * math.log(2)
                        - multigammaln(0.5 * dof, D) - 0.5 * (dof + D + 1) * log_det
                        - 0.5 * trace))


def _log_normal(x, mean, covariances):
    """log N(x_k; mean, covariances_k) per row of ``x`` (K, D)."""
    D = x.shape[1]
    r = x - mean
    solved = np.linalg.solve(covariances, r[:, :, None])[:, :, 0]
    return -0.5 * (D * _LOG_2PI + np.linalg.slogdet(covariances)[1] + np.sum(r * solved, axis=1))


def _diagonals(full):
    return np.diagonal(full, axis1=-2, axis2=-1)


class Full(CovarianceStructure):
    name = "full"
    mclust_name = "VVV"
    description = "each component has its own general covariance matrix"
    layout = ("component", "feature", "feature2")
    batched_m_step = True
    independent_components = True

    def bayesian(self, n_features):
        return BayesianParametrisation("matrix" if n_features > 1 else "per_feature")

    def sample(self, rng, means, covariances, counts):
        return np.vstack([rng.multivariate_normal(mean, cov, int(c))
                          for mean, cov, c in zip(means, covariances, counts)])

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2

    def to_full(self, values, n_components, n_features):
        return np.asarray(values)

    def from_full(self, full, xp=np):
        return np.asarray(full) if xp is np else full

    def quad_features(self, X, xp=np):
        return _outer_features(X)

    def quad_features_by_feature(self, Xt, out):
        _outer_features_by_feature(Xt, out)

    def covariances(self, nk, means, quad_moments, reg_covar, previous=None):
        n_features = means.shape[-1]
        second = _symmetric_from_triu(quad_moments, n_features) / nk[..., None, None]
        covs = second - means[..., :, None] * means[..., None, :]
        diagonal = _diagonal_index(n_features)
        covs[..., diagonal, diagonal] += reg_covar
        return covs

    def _posterior_scatter(self, nk, means, quad_moments, d, factor):
        return _matrix_scatter(nk, means, quad_moments, d, factor)

    def _map_one(self, nk, T, prior):
        n, _, dof, I = _prior_terms(prior, nk)
        return (prior.scale + T) / (dof + n + T.shape[-1] + 1 + I)

    def map_constrain(self, nk, T, prior, previous=None):
        # mclust's mevvvp adds the mean prior's 1 even without one (shrinkage 0); its
        # mstep() and the single-component formula do not, nor does this: so the fit is
        # always the posterior's mode (identical to mclust's at shrinkage > 0)
        _, _, dof, I = _prior_terms(prior, nk)
        return (prior.scale + T) / (dof + nk + T.shape[-1] + 1 + I)[:, None, None]

    def _log_prior_one(self, prior, full):
        return _log_inverse_wishart(full[:1], prior.dof, prior.scale)

    def _log_prior_covariances(self, prior, full):
        return _log_inverse_wishart(full, prior.dof, prior.scale)

    def precisions_cholesky(self, covariances, reg_covar=None):
        return _batched_precision_cholesky(covariances, reg_covar)

    def covariances_from_precisions(self, precisions):
        return np.linalg.inv(precisions)

    def precisions_cholesky_from_precisions(self, precisions):
        return _upper_cholesky(precisions)

    def precisions_from_cholesky(self, precisions_cholesky):
        return precisions_cholesky @ np.swapaxes(precisions_cholesky, -1, -2)

    def coefficients(self, means, precisions_cholesky, xp=np):
        return _full_coefficients(means, precisions_cholesky, xp)


class Tied(CovarianceStructure):
    name = "tied"
    mclust_name = "EEE"
    description = "all components share one general covariance matrix"
    layout = ("feature", "feature2")
    batched_m_step = True

    def bayesian(self, n_features):
        return BayesianParametrisation("matrix" if n_features > 1 else "per_feature",
                                       shared=True)

    def per_component(self, values, n_components):
        values = np.asarray(values)
        shape = values.shape[:-2] + (n_components,) + values.shape[-2:]
        return COVARIANCE_STRUCTURES["full"], np.broadcast_to(values[..., None, :, :], shape)

    def sample(self, rng, means, covariances, counts):
        return np.vstack([rng.multivariate_normal(mean, covariances, int(c))
                          for mean, c in zip(means, counts)])

    def n_covariance_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) // 2

    def to_full(self, values, n_components, n_features):
        values = np.asarray(values)
        return np.broadcast_to(values, (n_components,) + values.shape).copy()

    def from_full(self, full, xp=np):
        return (np.asarray(full) if xp is np else full)[..., 0, :, :]

    def quad_features(self, X, xp=np):
        return _outer_features(X)

    def quad_features_by_feature(self, Xt, out):
        _outer_features_by_feature(Xt, out)

    def covariances(self, nk, means, quad_moments, reg_covar, previous=None):
        n_features = means.shape[-1]
        second = _symmetric_from_triu(quad_moments.sum(axis=-2), n_features)
        between = np.swapaxes(nk[..., None] * means, -1, -2) @ means
        cov = (second - between) / nk.sum(axis=-1)[..., None, None]
        diagonal = _diagonal_index(n_features)
        cov[..., diagonal, diagonal] += reg_covar
        return cov

    def _posterior_scatter(self, nk, means, quad_moments, d, factor):
        return _matrix_scatter(nk, means, quad_moments, d, factor)

    def _map_one(self, nk, T, prior):
        return COVARIANCE_STRUCTURES["full"]._map_one(nk, T, prior)[0]

    def map_constrain(self, nk, T, prior, previous=None):
        n, G, dof, I = _prior_terms(prior, nk)
        return (prior.scale + T.sum(axis=0)) / (dof + n + T.shape[-1] + 1 + G * I)

    def _log_prior_one(self, prior, full):
        return _log_inverse_wishart(full[:1], prior.dof, prior.scale)

    _log_prior_covariances = _log_prior_one

    def precisions_cholesky(self, covariances, reg_covar=None):
        return _batched_precision_cholesky(covariances[None], reg_covar)[0]

    def covariances_from_precisions(self, precisions):
        return np.linalg.inv(precisions)

    def precisions_cholesky_from_precisions(self, precisions):
        return _upper_cholesky(precisions)

    def precisions_from_cholesky(self, precisions_cholesky):
        return precisions_cholesky @ np.swapaxes(precisions_cholesky, -1, -2)

    def coefficients(self, means, precisions_cholesky, xp=np):
        n_components, n_features = means.shape[0], _n_features(means)
        stacked = xp.broadcast_to(precisions_cholesky[None], (n_components, n_features, n_features))
        return _full_coefficients(means, stacked, xp)


def _diagonal_coefficients(means, precision_diag, log_det, xp):
    """Linear and constant coefficients for per-feature precisions (K, D) or (K, 1)."""
    lin = means * precision_diag
    const = -0.5 * (_n_features(means) * _LOG_2PI + xp.sum(lin * means, axis=1)) + log_det
    return lin, const


class Diag(CovarianceStructure):
    name = "diag"
    mclust_name = "VVI"
    description = "each component has its own diagonal covariance (axis-aligned)"
    layout = ("component", "feature")
    batched_m_step = True
    independent_components = True

    def bayesian(self, n_features):
        return BayesianParametrisation("per_feature")

    def sample(self, rng, means, covariances, counts):
        return np.vstack([mean + rng.standard_normal(size=(int(c), means.shape[1])) * np.sqrt(cov)
                          for mean, cov, c in zip(means, covariances, counts)])

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features

    def to_full(self, values, n_components, n_features):
        return np.asarray(values)[:, :, None] * np.eye(n_features)

    def from_full(self, full, xp=np):
        diagonal = xp.diagonal(full, axis1=-2, axis2=-1)
        return diagonal.copy() if xp is np else diagonal

    def quad_features(self, X, xp=np):
        return X * X

    def covariances(self, nk, means, quad_moments, reg_covar, previous=None):
        return quad_moments / nk[..., None] - means * means + reg_covar

    def _posterior_scatter(self, nk, means, quad_moments, d, factor):
        return quad_moments - nk[:, None] * means * means + factor[:, None] * d * d

    def _map_one(self, nk, T, prior):
        n, _, dof, I = _prior_terms(prior, nk)
        return (prior.scale + T) / (dof + n + 2 + I)

    def map_constrain(self, nk, T, prior, previous=None):
        _, _, dof, I = _prior_terms(prior, nk)
        return (prior.scale + T) / (nk + dof + 2 + I)[:, None]

    def _log_prior_one(self, prior, full):
        return _log_inverse_gamma(_diagonals(full[:1]), prior.dof, prior.scale)

    def _log_prior_covariances(self, prior, full):
        return _log_inverse_gamma(_diagonals(full), prior.dof, prior.scale)

    def precisions_cholesky(self, covariances, reg_covar=None):
        return _sqrt_precision(covariances, reg_covar)

    def covariances_from_precisions(self, precisions):
        return 1.0 / np.asarray(precisions)

    def precisions_cholesky_from_precisions(self, precisions):
        return np.sqrt(precisions)

    def precisions_from_cholesky(self, precisions_cholesky):
        return np.asarray(precisions_cholesky) ** 2

    def coefficients(self, means, precisions_cholesky, xp=np):
        precision = precisions_cholesky**2
        log_det = xp.sum(xp.log(precisions_cholesky), axis=1)
        lin, const = _diagonal_coefficients(means, precision, log_det, xp)
        return GaussianCoefficients(precision, lin, const)


class Spherical(CovarianceStructure):
    name = "spherical"
    mclust_name = "VII"
    description = "each component has its own single variance (round clusters)"
    per_feature_scaling = False
    layout = ("component",)
    batched_m_step = True
    independent_components = True

    def bayesian(self, n_features):
        return BayesianParametrisation("single")

    def sample(self, rng, means, covariances, counts):
        return np.vstack([mean + rng.standard_normal(size=(int(c), means.shape[1])) * np.sqrt(cov)
                          for mean, cov, c in zip(means, covariances, counts)])

    def n_covariance_parameters(self, n_components, n_features):
        return n_components

    def to_full(self, values, n_components, n_features):
        return np.asarray(values)[:, None, None] * np.eye(n_features)

    def from_full(self, full, xp=np):
        return xp.diagonal(full, axis1=-2, axis2=-1).mean(axis=-1)

    def quad_features(self, X, xp=np):
        if xp is np:  # a reduction along the short feature axis is slow in numpy
            return (X * X) @ np.ones((X.shape[1], 1), dtype=X.dtype)
        return xp.sum(X * X, axis=1, keepdims=True)

    def covariances(self, nk, means, quad_moments, reg_covar, previous=None):
        n_features = means.shape[-1]
        return ((quad_moments[..., 0] / nk - np.sum(means * means, axis=-1)) / n_features
                + reg_covar)

    def _posterior_scatter(self, nk, means, quad_moments, d, factor):
        return quad_moments[:, 0] - nk * np.sum(means * means, axis=1) + factor * np.sum(d * d, 1)

    def _map_one(self, nk, T, prior):
        n, _, dof, I = _prior_terms(prior, nk)
        p = len(prior.mean)
        return (prior.scale + T) / (dof + n * p + 2 + p * I)

    def map_constrain(self, nk, T, prior, previous=None):
        _, _, dof, I = _prior_terms(prior, nk)
        p = len(prior.mean)
        return (prior.scale + T) / (dof + nk * p + 2 + p * I)

    def _log_prior_one(self, prior, full):
        return _log_inverse_gamma(full[:1, 0, 0], prior.dof, prior.scale)

    def _log_prior_covariances(self, prior, full):
        return _log_inverse_gamma(full[:, 0, 0], prior.dof, prior.scale)

    def precisions_cholesky(self, covariances, reg_covar=None):
        return _sqrt_precision(covariances, reg_covar)

    def covariances_from_precisions(self, precisions):
        return 1.0 / np.asarray(precisions)

    def precisions_cholesky_from_precisions(self, precisions):
        return np.sqrt(precisions)

    def precisions_from_cholesky(self, precisions_cholesky):
        return np.asarray(precisions_cholesky) ** 2

    def coefficients(self, means, precisions_cholesky, xp=np):
        precision = precisions_cholesky**2
        log_det = _n_features(means) * xp.log(precisions_cholesky)
        lin, const = _diagonal_coefficients(means, precision[:, None], log_det, xp)
        return GaussianCoefficients(precision[:, None], lin, const)


def _sqrt_precision(variances, reg_covar=None):
    variances = np.asarray(variances)
    bad = ~(variances > 0)
    if bad.any():
        failed = np.unique(np.nonzero(bad.reshape(len(bad), -1))[0])
        raise CollapsedComponentError(failed.tolist(), reg_covar)
    return 1.0 / np.sqrt(variances)


# -- mclust's parsimonious families --------------------------------------------------
# Sigma_k = lambda_k D_k A_k D_k^T: volume lambda (det^(1/d)), shape A (diagonal, det 1)
# and orientation D each Equal or Variable across components, or the axes (I). Each
# family is one of three containers (spherical, diagonal, general: the scikit-learn
# structure whose layout, features and log-density it shares) plus its M-step, which
# constrains the container's unconstrained estimates S_k (with reg_covar on the
# diagonal, so that reg_covar regularises every family as it does VVV). Maximising
# sum_k n_k [log det Sigma_k + tr(S_k Sigma_k^-1)] (Celeux & Govaert 1995); the
# iterative ones stop when that objective changes by less than ``MSTEP_TOL`` (relative)
# or after ``MSTEP_MAX_ITER`` rounds, and warn with the family's name if they did not.

#: Relative change of the M-step objective at which an iterative M-step stops.
MSTEP_TOL = 1e-10
#: Rounds after which an iterative M-step stops and warns.
MSTEP_MAX_ITER = 500


class MStepConvergenceWarning(UserWarning):
    """An iterative M-step (VEI, VEE, VEV, EVE, VVE) stopped before converging."""


def _geometric_mean(values):
    return np.exp(np.mean(np.log(values), axis=-1))


def _objective(nk, S, variances):
    """sum_k n_k [log det Sigma_k + tr(S_k Sigma_k^-1)] for Sigma_k diagonal in the basis
    where ``S`` (K, D) holds the diagonal of S_k: the quantity every M-step lowers."""
    return float(np.sum(nk * np.sum(np.log(variances) + S / variances, axis=-1)))


def _iterate(name, step, state, tol=None, max_iter=None):
    """Run ``state, objective = step(state)`` until the objective settles."""
    tol = MSTEP_TOL if tol is None else tol
    max_iter = MSTEP_MAX_ITER if max_iter is None else max_iter
    previous = np.inf
    for iteration in range(1, max_iter + 1):
        state, objective = step(state)
        if abs(previous - objective) <= tol * max(1.0, abs(objective)):
            return state, iteration
        previous = objective
    warnings.warn(
        f"the {name} M-step did not converge in {max_iter} iterations (relative change "
        f"of its objective above {tol:g}); the EM iteration goes on from its last value.",
        MStepConvergenceWarning, stacklevel=5)
    return state, max_iter


class _Parsimonious:
    """Mixin for a family that constrains its container's M-step."""

    per_feature_scaling = False
    batched_m_step = False
    independent_components = False

    # EM only for now (the Bayesian model's volume/shape/orientation priors are to come),
    # and the generic sampler rather than the container's scikit-learn stream
    bayesian = CovarianceStructure.bayesian
    sample = CovarianceStructure.sample

    def covariances(self, nk, means, quad_moments, reg_covar, previous=None):
        return self.constrain(nk, super().covariances(nk, means, quad_moments, reg_covar),
                              previous)

    def constrain(self, nk, S, previous=None):
        """The family's covariances from the container's per-component estimates."""
        raise NotImplementedError

    # mclust has no prior for EVE, VEE, VVE, EVV: those keep the base's map_constrain,
    # which check_prior reads as "no prior"
    map_constrain = CovarianceStructure.map_constrain


# spherical container ------------------------------------------------------------------
class EII(_Parsimonious, Spherical):
    name = mclust_name = "EII"
    description = "all components share one single variance (round clusters of equal size)"

    def n_covariance_parameters(self, n_components, n_features):
        return 1

    def constrain(self, nk, S, previous=None):
        return np.full_like(S, np.sum(nk * S) / np.sum(nk))

    def map_constrain(self, nk, T, prior, previous=None):
        # as mclust's meeiip: the prior's scale does not enter (it does for G = 1)
        n, G, dof, _ = _prior_terms(prior, nk)
        return np.full_like(T, T.sum() / (dof + (n + G) * len(prior.mean) + 2))

    def _log_prior_covariances(self, prior, full):
        # the density (up to a constant) whose mode that M-step is
        return -(0.5 * prior.dof + 1) * math.log(full[0, 0, 0])


# diagonal container -------------------------------------------------------------------
class EEI(_Parsimonious, Diag):
    name = mclust_name = "EEI"
    description = "all components share one diagonal covariance (axis-aligned)"
    per_feature_scaling = True

    def n_covariance_parameters(self, n_components, n_features):
        return n_features

    def constrain(self, nk, S, previous=None):
        return np.broadcast_to(nk @ S / np.sum(nk), S.shape).copy()

    def map_shrinks_means(self, n_components):
        return n_components == 1  # mclust's meeeip keeps the averages

    def map_constrain(self, nk, T, prior, previous=None):
        n, _, dof, I = _prior_terms(prior, nk)
        return np.broadcast_to((prior.scale + T.sum(axis=0)) / (dof + 1 + I + n), T.shape).copy()

    def _log_prior_covariances(self, prior, full):
        # mclust's EEI M-step (scatter about the prior mean, averages unshrunk) is the
        # mode of no density
        return math.nan


class EVI(_Parsimonious, Diag):
    name = mclust_name = "EVI"
    description = "axis-aligned, equal volume, shapes varying"
    per_feature_scaling = True

    def n_covariance_parameters(self, n_components, n_features):
        return 1 + n_components * (n_features - 1)

    def constrain(self, nk, S, previous=None):
        g = _geometric_mean(S)
        return (np.sum(nk * g) / np.sum(nk)) * S / g[:, None]

    def map_constrain(self, nk, T, prior, previous=None):
        n, _, dof, I = _prior_terms(prior, nk)
        S = prior.scale + T
        g = _geometric_mean(S)
        return (g.sum() / (dof + 1 + n + I)) * S / g[:, None]

    def _log_prior_covariances(self, prior, full):
        G, D = full.shape[0], full.shape[-1]
        volume = np.exp(np.linalg.slogdet(full[0])[1] / D)
        return float(-D * (prior.dof + 2 - G) / 2 * math.log(volume)
                     - 0.5 * np.sum(prior.scale / _diagonals(full)))


class VEI(_Parsimonious, Diag):
    name = mclust_name = "VEI"
    description = "axis-aligned, volumes varying, equal shape"
    per_feature_scaling = True

    def n_covariance_parameters(self, n_components, n_features):
        return n_components + n_features - 1

    def constrain(self, nk, S, previous=None):
        return _equal_shape(self.name, nk, S)

    def map_constrain(self, nk, T, prior, previous=None):
        # mclust's meveip alternates lambda_k = sum_j w_kj / A_j / den_k and A ~
        # sum_k w_k / lambda_k: the equal-shape step with counts den_k / D
        _, _, dof, I = _prior_terms(prior, nk)
        D = T.shape[1]
        counts = (dof + D * nk + 2 + I) / D
        return _equal_shape(self.name, counts, (prior.scale + T) / counts[:, None])

    def _log_prior_covariances(self, prior, full):
        D = full.shape[-1]
        volumes = np.exp(np.linalg.slogdet(full)[1] / D)
        return float(np.sum(-(prior.dof + 3 - D) / 2 * np.log(volumes))
                     - 0.5 * np.sum(prior.scale / _diagonals(full)))


def _equal_shape(name, nk, values):
    """``lambda_k A`` (K, D) with one shape A (det 1) for all components, from their
    variances ``values`` (K, D) along their own axes: alternately the best A for the
    volumes and the best volumes for A. VEI's M-step; VEV's on the eigenvalues."""
    def shape(volumes):
        A = nk @ (values / volumes[:, None])
        return A / _geometric_mean(A)

    def step(volumes):
        volumes = np.mean(values / shape(volumes), axis=1)
        return volumes, _objective(nk, values, volumes[:, None] * shape(volumes))

    volumes, _ = _iterate(name, step, np.mean(values, axis=1))
    return volumes[:, None] * shape(volumes)


# general container --------------------------------------------------------------------
def _eigh_descending(S):
    values, vectors = np.linalg.eigh(S)
    return values[..., ::-1], vectors[..., ::-1]


def _rotate(vectors, values):
    """vectors diag(values) vectors^T, batched."""
    return np.einsum("...ij,...j,...kj->...ik", vectors, values, vectors)


class EEV(_Parsimonious, Full):
    name = mclust_name = "EEV"
    description = "equal volume and shape, orientations varying"

    def n_covariance_parameters(self, n_components, n_features):
        return n_features + n_components * n_features * (n_features - 1) // 2

    def constrain(self, nk, S, previous=None):
        values, vectors = _eigh_descending(S)
        return _rotate(vectors, np.broadcast_to(nk @ values / np.sum(nk), values.shape))

    def map_constrain(self, nk, T, prior, previous=None):
        n, _, dof, I = _prior_terms(prior, nk)
        values, vectors = _eigh_descending(prior.scale + T)
        common = values.sum(axis=0) / (dof + T.shape[-1] + 1 + I + n)
        return _rotate(vectors, np.broadcast_to(common, values.shape))

    def _log_prior_covariances(self, prior, full):
        G, D = full.shape[0], full.shape[-1]
        trace = np.einsum("ij,kji->", prior.scale, np.linalg.inv(full))
        return float(-(prior.dof + D + 2 - G) / 2 * np.linalg.slogdet(full[0])[1]
                     - 0.5 * trace)


class VEV(_Parsimonious, Full):
    name = mclust_name = "VEV"
    description = "volumes varying, equal shape, orientations varying"

    def n_covariance_parameters(self, n_components, n_features):
        return n_components + n_features - 1 + n_components * n_features * (n_features - 1) // 2

    def constrain(self, nk, S, previous=None):
        values, vectors = _eigh_descending(S)
        return _rotate(vectors, _equal_shape(self.name, nk, values))

    def map_constrain(self, nk, T, prior, previous=None):
        # mclust's mevevp: the equal-shape step on the eigenvalues of scale + T_k with
        # the counts n_k (the prior's dof does not enter)
        values, vectors = _eigh_descending(prior.scale + T)
        return _rotate(vectors, _equal_shape(self.name, nk, values / nk[:, None]))

    def _log_prior_covariances(self, prior, full):
        trace = np.einsum("ij,kji->", prior.scale, np.linalg.inv(full))
        return float(0.5 * np.sum(np.linalg.slogdet(full)[1]) - 0.5 * trace)


class EVV(_Parsimonious, Full):
    name = mclust_name = "EVV"
    description = "equal volume, shapes and orientations varying"
    per_feature_scaling = True

    def n_covariance_parameters(self, n_components, n_features):
        return 1 + n_components * (n_features * (n_features + 1) // 2 - 1)

    def constrain(self, nk, S, previous=None):
        g = np.linalg.det(S) ** (1.0 / S.shape[-1])
        return (np.sum(nk * g) / np.sum(nk)) * S / g[:, None, None]


class VEE(_Parsimonious, Full):
    name = mclust_name = "VEE"
    description = "volumes varying, equal shape and orientation"
    per_feature_scaling = True

    def n_covariance_parameters(self, n_components, n_features):
        return n_components - 1 + n_features * (n_features + 1) // 2

    def constrain(self, nk, S, previous=None):
        d = S.shape[-1]

        def common(volumes):
            C = np.einsum("k,kij->ij", nk / volumes, S)
            return C / np.linalg.det(C) ** (1.0 / d)

        def step(volumes):
            C = common(volumes)
            volumes = np.einsum("kij,ji->k", S, np.linalg.inv(C)) / d
            objective = float(np.sum(nk * (d * np.log(volumes) + d)))
            return volumes, objective

        volumes, _ = _iterate(self.name, step, np.trace(S, axis1=1, axis2=2) / d)
        return volumes[:, None, None] * common(volumes)


def _along(D, S):
    """diag(D^T S_k D) (K, d): the scatter of each component along D's axes."""
    return np.einsum("ji,kjl,li->ki", D, S, D)


def _cayley(X):
    """The rotation (I - X/2)^-1 (I + X/2) of a skew-symmetric X: exp(X) to second order,
    so Newton's step in X is the exponential map's."""
    eye = np.eye(len(X))
    return np.linalg.solve(eye - X / 2, eye + X / 2)


def _orientation_mm_step(nk, S, D, weights):
    """One round of Browne & McNicholas' (2014) MM algorithm: majorise
    sum_k tr(W_k D B_k D^T), W_k = n_k S_k, B_k = diag(``weights[k]``) (the inverse
    variances along D's axes), at D by its tangent (W_k - omega_k I is negative
    semi-definite, omega_k the largest eigenvalue of W_k) and minimise over rotations.
    Never increases the M-step objective; converges linearly."""
    W = nk[:, None, None] * S
    omega = np.linalg.eigvalsh(W)[:, -1]
    G = np.einsum("kij,jl,kl->il", W - omega[:, None, None] * np.eye(len(D)), D, weights)
    U, _, Vt = np.linalg.svd(G)
    return -U @ Vt


def _orientation_newton_terms(nk, S, D, profile):
    """The objective f at D, with its gradient and Hessian in the coordinates x of
    the skew-symmetric X (upper triangle) of the rotation D exp(X), at X = 0.

    ``profile(nk, c)`` gives the M-step objective F with volumes and shapes at their
    best for the scatter c (K, d) along D's axes, dF/dc (K, d) and d2F/dc2 (K d, K d).
    With T_k = D^T S_k D, c_ki(X) = [exp(-X) T_k exp(X)]_ii, whose first derivative in
    x_ij (i < j) is 2 T_k[i, j] (e_j - e_i) and whose second order term is
    sum_ab X_ai T_k[a, b] X_bi + sum_ab X_ai X_ba T_k[b, i]."""
    K, d, _ = S.shape
    I, J = np.triu_indices(d, 1)
    pairs = np.arange(len(I))
    T = np.einsum("ja,kjl,lb->kab", D, S, D)
    c = np.einsum("kii->ki", T)
    value, dF, d2F = profile(nk, c)
    jacobian = np.zeros((K, d, len(I)))
    jacobian[:, J, pairs] = 2 * T[:, I, J]
    jacobian[:, I, pairs] = -2 * T[:, I, J]
    jacobian = jacobian.reshape(K * d, len(I))
    gradient = jacobian.T @ dF.ravel()
    # the second-order term of sum_ki dF_ki c_ki(X) as a bilinear form A[a, i, b, c]
    # in (X_ai, X_bc), then restricted to X = sum_p x_p (e_i e_j^T - e_j e_i^T)
    A = np.zeros((d, d, d, d))
    a, i, b = np.indices((d, d, d))
    A[a, i, b, i] += np.einsum("ki,kab->iab", dF, T)[i, a, b]
    A[a, i, b, a] += np.einsum("kbi,ki->bi", T, dF)[b, i]
    upper, lower = A[I, J], A[J, I]
    R = upper[:, I, J] - upper[:, J, I] - lower[:, I, J] + lower[:, J, I]
    hessian = R + R.T + jacobian.T @ d2F @ jacobian
    return value, gradient, hessian


def _common_orientation(name, nk, S, D, diagonal, profile, tol=None, max_iter=None,
                        trace=None):
    """The orientation D minimising the M-step objective f from the start D, by Newton's
    method on the rotations: f(D) = F(c) for c = diag(D^T S_k D) (K, d), the variances
    along D's axes being ``diagonal(nk, c)``; ``profile`` gives F's derivatives (see
    ``_orientation_newton_terms``).

    The Hessian's eigenvalues are taken in absolute value (so the step descends also
    where f is not convex), the step is at most one radian, and a backtracking line
    search keeps only steps that lower f (Armijo); where none does, one MM round
    (``_orientation_mm_step``) is taken instead, so f never increases. Near the optimum
    the steps are Newton's and converge quadratically, so a warm start (the current
    orientation, as EM gives) needs few rounds. The loop stops when the predicted
    decrease (half the Newton decrement) is within ``tol`` (relative) of f, after that
    last full Newton step if it does not raise f (so the end is at f's optimum to
    about tol squared). ``trace``, if a list, receives f at the start and after each
    round.
    """
    tol = MSTEP_TOL if tol is None else tol
    max_iter = MSTEP_MAX_ITER if max_iter is None else max_iter
    d = len(D)
    I, J = np.triu_indices(d, 1)

    def value(D):
        c = _along(D, S)
        return _objective(nk, c, diagonal(nk, c))

    if d < 2:
        return D
    f, gradient, hessian = _orientation_newton_terms(nk, S, D, profile)
    if trace is not None:
        trace.append(f)
    for _ in range(max_iter):
        scale = tol * max(1.0, abs(f))
        if not np.all(np.isfinite(hessian)):
            return D
        eigenvalues, vectors = np.linalg.eigh(hessian)
        floor = 1e-12 * np.abs(eigenvalues).max()
        if not floor > 0:
            return D  # f is flat here (every c_ki equal along its axes)
        curvature = np.maximum(np.abs(eigenvalues), floor)
        step = -vectors @ (vectors.T @ gradient / curvature)
        decrement = -gradient @ step  # > 0: the step descends
        X = np.zeros((d, d))
        if decrement / 2 <= scale:
            # what is left is below tol: Newton's full step, if it does not go up, ends it
            X[I, J], X[J, I] = step, -step
            candidate = D @ _cayley(X)
            f_new = value(candidate)
            if f_new <= f:
                D = candidate
                if trace is not None:
                    trace.append(f_new)
            return D
        step *= min(1.0, 1.0 / np.linalg.norm(step))
        slope = gradient @ step
        for _ in range(30):
            X[I, J], X[J, I] = step, -step
            candidate = D @ _cayley(X)
            f_new = value(candidate)
            if f_new <= f + 1e-4 * slope:
                break
            step /= 2
            slope /= 2
        else:
            candidate = _orientation_mm_step(nk, S, D, 1.0 / diagonal(nk, _along(D, S)))
            f_new = value(candidate)
            if not f_new < f:
                return D  # at f's numerical floor
            if f - f_new <= scale:
                if trace is not None:
                    trace.append(f_new)
                return candidate
        D = candidate
        f, gradient, hessian = _orientation_newton_terms(nk, S, D, profile)
        if trace is not None:
            trace.append(f)
    warnings.warn(
        f"the {name} M-step did not converge in {max_iter} iterations (relative change "
        f"of its objective above {tol:g}); the EM iteration goes on from its last value.",
        MStepConvergenceWarning, stacklevel=5)
    return D


class _CommonOrientation(_Parsimonious, Full):
    """EVE and VVE: one orientation D for all, found by Newton's method on the
    rotations (``_common_orientation``, safeguarded by the MM algorithm of Browne &
    McNicholas 2014), the volumes and shapes following in closed form."""

    def diagonal(self, nk, C):
        """The components' variances (K, D) along D's axes, from diag(D^T S_k D)."""
        raise NotImplementedError

    def profile(self, nk, C):
        """The M-step objective at its best volumes and shapes for the scatter ``C``
        (K, D) along the axes, and its first (K, D) and second (K D, K D) derivatives
        in C."""
        raise NotImplementedError

    def orientation(self, nk, S, D, trace=None):
        """The common orientation for the estimates ``S`` (K, D, D), from ``D``."""
        return _common_orientation(self.name, nk, S, D, self.diagonal, self.profile,
                                   trace=trace)

    def constrain(self, nk, S, previous=None):
        # from the current orientation (the eigenvectors of any sum of the current
        # covariances), so the steps only improve on it; else the pooled scatter's
        W = nk[:, None, None] * S
        _, D = _eigh_descending(W.sum(axis=0) if previous is None else previous.sum(axis=0))
        D = self.orientation(nk, S, D)
        return _rotate(np.broadcast_to(D, S.shape), self.diagonal(nk, _along(D, S)))


class EVE(_CommonOrientation):
    name = mclust_name = "EVE"
    description = "equal volume and orientation, shapes varying"

    def n_covariance_parameters(self, n_components, n_features):
        return 1 + n_components * (n_features - 1) + n_features * (n_features - 1) // 2

    def diagonal(self, nk, C):
        g = _geometric_mean(C)
        return (np.sum(nk * g) / np.sum(nk)) * C / g[:, None]

    def profile(self, nk, C):
        # F = n d log(lambda) + n d, lambda = sum_k n_k g_k / n, g_k = C_k's geometric mean
        K, d = C.shape
        n = np.sum(nk)
        g = _geometric_mean(C)
        total = nk @ g
        u = (nk * g)[:, None] / (d * C)  # d total / dC
        second = np.zeros((K, d, K, d))  # d2 total / dC2, block diagonal in k
        k = np.arange(K)
        second[k, :, k, :] = u[:, :, None] * u[:, None, :] / (nk * g)[:, None, None]
        second[k[:, None], np.arange(d), k[:, None], np.arange(d)] -= u / C
        u = u.ravel()
        hessian = n * d * (second.reshape(K * d, K * d) / total - np.outer(u, u) / total**2)
        return _objective(nk, C, self.diagonal(nk, C)), n * d * u.reshape(K, d) / total, hessian


class VVE(_CommonOrientation):
    name = mclust_name = "VVE"
    description = "volumes and shapes varying, equal orientation"

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features + n_features * (n_features - 1) // 2

    def diagonal(self, nk, C):
        return C

    def profile(self, nk, C):
        # F = sum_k n_k sum_i (log C_ki + 1)
        return (_objective(nk, C, C), nk[:, None] / C, np.diag((-nk[:, None] / C**2).ravel()))


# one feature: mclust's E and V ----------------------------------------------------------
class _OneFeature:
    def check_n_features(self, n_features):
        if n_features != 1:
            raise ValueError(
                f"covariance_type {self.name!r} is mclust's name for one-dimensional data, "
                f"which have one feature; these data have {n_features}. Use "
                f"{'EII' if self.name == 'E' else 'VII'!r} (or any of "
                f"{[name for name in COVARIANCE_STRUCTURES if name not in ('E', 'V')]}).")


class E(_OneFeature, EII):
    name = mclust_name = "E"
    description = "one feature: all components share one variance"

    def map_constrain(self, nk, T, prior, previous=None):
        n, G, dof, _ = _prior_terms(prior, nk)
        return np.full_like(T, (prior.scale + T.sum()) / (dof + n + G + 2))

    def _log_prior_covariances(self, prior, full):
        return _log_inverse_gamma(full[0, 0, 0], prior.dof, prior.scale)


class V(_OneFeature, Spherical):
    name = mclust_name = "V"
    description = "one feature: each component has its own variance"

    def map_constrain(self, nk, T, prior, previous=None):
        return (prior.scale + T) / (prior.dof + nk + 3)


def _accepts(structure, n_features):
    """Whether ``structure`` can describe data with ``n_features`` features."""
    try:
        structure.check_n_features(n_features)
    except ValueError:
        return False
    return True


COVARIANCE_STRUCTURES: dict[str, CovarianceStructure] = {
    structure.name: structure for structure in (
        Full(), Tied(), Diag(), Spherical(),  # scikit-learn's four: VVV, EEE, VVI, VII
        EII(), EEI(), VEI(), EVI(), VEE(), EVE(), VVE(), EEV(), VEV(), EVV(), E(), V())
}
"""The covariance structures by primary name (scikit-learn's where it has one)."""

_ALIASES = {s.mclust_name: s.name for s in COVARIANCE_STRUCTURES.values()}

#: The estimators' default ``covariance_type`` (scikit-learn's default).
DEFAULT_COVARIANCE_TYPE = "full"


def collapsed_components(
    structure: CovarianceStructure, covariances: np.ndarray, data_variance: np.ndarray
) -> list[int]:
    """Components whose standardised covariance has an eigenvalue below the tolerance.

    Features of zero variance (constant columns) are left out of the check.
    """
    full = structure.full_matrices(covariances, len(data_variance))
    keep = data_variance > 0
    scale = 1.0 / np.sqrt(data_variance[keep])
    standardised = full[:, keep][:, :, keep] * scale[:, None] * scale[None, :]
    smallest = np.linalg.eigvalsh(standardised)[:, 0] if keep.any() else np.ones(len(full))
    return np.flatnonzero(smallest < COLLAPSE_TOLERANCE).tolist()


def sample_mixture(weights, means, covariance_cholesky, n, rng):
    """``n`` draws from a mixture and their components: ``(X (n, D), labels (n,))``.

    ``covariance_cholesky`` holds lower factors ``L_k`` (K, D, D) with covariance
    ``L_k L_k^T``. The one sampler of the package (the EM estimator's ``sample`` keeps
    scikit-learn's random stream instead: :meth:`CovarianceStructure.sample`).
    """
    rng = np.random.default_rng(rng)
    weights = np.asarray(weights, dtype=float)
    labels = rng.choice(len(weights), size=n, p=weights / weights.sum())
    noise = rng.standard_normal((n, np.shape(means)[1]))
    return means[labels] + np.einsum("nij,nj->ni", covariance_cholesky[labels], noise), labels


def bayesian_covariance_names() -> list[str]:
    """The structures the Bayesian model can parametrise, by their primary names."""
    return [structure.name for structure in COVARIANCE_STRUCTURES.values()
            if type(structure).bayesian is not CovarianceStructure.bayesian
            and _accepts(structure, 2)]


def prior_covariance_names() -> list[str]:
    """The structures with a conjugate prior (MAP-EM), by their mclust names."""
    return [structure.mclust_name for structure in COVARIANCE_STRUCTURES.values()
            if type(structure).map_constrain is not CovarianceStructure.map_constrain]


def valid_covariance_names() -> list[str]:
    """All accepted names: scikit-learn's and mclust's."""
    return list(COVARIANCE_STRUCTURES) + [a for a in _ALIASES if a not in COVARIANCE_STRUCTURES]


def get_covariance_structure(name) -> CovarianceStructure:
    """The structure called ``name`` (scikit-learn's or mclust's name).

    >>> get_covariance_structure("VVV").name
    'full'
    """
    if isinstance(name, CovarianceStructure):
        return name
    key = _ALIASES.get(name, name) if isinstance(name, str) else None
    if key not in COVARIANCE_STRUCTURES:
        raise ValueError(
            f"covariance_type must be one of {valid_covariance_names()}, got {name!r}."
        )
    return COVARIANCE_STRUCTURES[key]
