"""bayesgmm: Gaussian mixture models fitted by EM and by Bayesian inference (PyMC)."""

from importlib.metadata import PackageNotFoundError, version

from . import datasets
from ._gaussian import COVARIANCE_STRUCTURES, get_covariance_structure
from .bayes import GaussianMixtureBayes
from .bootstrap import bootstrap, bootstrap_lrt
from .compare import ModelComparison, compare
from .em import GaussianMixtureEM
from .model import build_model
from .study import StudyResult, simulation_study

try:
    __version__ = version("bayesgmm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "COVARIANCE_STRUCTURES",
    "GaussianMixtureBayes",
    "GaussianMixtureEM",
    "ModelComparison",
    "StudyResult",
    "build_model",
    "compare",
    "__version__",
    "bootstrap",
    "bootstrap_lrt",
    "datasets",
    "get_covariance_structure",
    "simulation_study",
]
