"""Simulation studies of model selection: how often does each criterion choose the truth?

:func:`simulation_study` draws ``n_replicates`` data sets from a user's simulator, runs
:func:`bayesgmm.compare` on each and collects every replicate's table and choices. Each
replicate is one task: run here one after another, or on the workers of a Dask client
(``client=``), with the same results either way (replicate ``r`` is seeded by the
``r``-th child of ``np.random.SeedSequence(random_state)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._tasks import on_client
from ._validation import check_integer, check_seed, describe_error
from .compare import CRITERIA, ModelComparison, compare

__all__ = ["StudyResult", "simulation_study"]


@dataclass
class StudyResult:
    """The result of :func:`simulation_study`.

    Attributes
    ----------
    table : pandas.DataFrame
        Every replicate's comparison table (``compare(...).table``) with a
        ``replicate`` column first.
    choices : pandas.DataFrame
        One row per replicate: each criterion's chosen ``(n_components,
        covariance_type)`` (None where it could rank no model), and ``error``: why a
        replicate has no table (its simulation or comparison failed), else "".
    truth : tuple or None
        The simulating model ``(n_components, covariance_type)``, if given.
    """

    table: pd.DataFrame
    choices: pd.DataFrame
    truth: tuple | None = None

    def selection_rates(self):
        """How often each criterion chose each model: a DataFrame (model x criterion) of
        proportions of the replicates with a table (columns sum to 1 where the criterion
        chose in every replicate); criteria that were not computed are left out."""
        done = self.choices[self.choices["error"] == ""]
        criteria = [c for c in CRITERIA if c in done and done[c].notna().any()]
        counts = {c: done[c].dropna().value_counts() for c in criteria}
        rates = pd.DataFrame(counts).fillna(0.0) / max(len(done), 1)
        rates.index.name = "model"
        return rates

    def truth_rates(self):
        """The share of replicates in which each criterion chose the true model (needs
        ``truth``): a Series indexed by criterion."""
        if self.truth is None:
            raise ValueError("truth_rates needs the simulating model: give "
                             "simulation_study(..., truth=(n_components, covariance_type)).")
        rates = self.selection_rates()
        return rates.loc[[self.truth]].iloc[0] if self.truth in rates.index else \
            pd.Series(0.0, index=rates.columns)


def simulation_study(simulate, n_replicates, n_components=range(1, 5), covariance_types=None,
                     *, truth=None, random_state=None, client=None, progressbar=True,
                     **compare_options):
    """Compare models on ``n_replicates`` simulated data sets.

    Parameters
    ----------
    simulate : callable
        ``simulate(seed)`` returns a data set ``X`` (or ``(X, labels)``, as
        :func:`bayesgmm.datasets.simulate_mixture` does) from an integer seed. With a
        client it must be picklable (a module-level function, or a
        ``functools.partial`` of one, e.g. ``partial(datasets.simulate_mixture, 200,
        weights, means, covariances)``).
    n_replicates : int
    n_components, covariance_types
        The grid of every comparison (see :func:`bayesgmm.compare`; covariance types
        default to compare's).
    truth : (int, str), optional
        The simulating model, for :meth:`StudyResult.truth_rates`; the family by any
        of its names.
    random_state : int or None
        Replicate ``r``'s data and fits are seeded by the ``r``-th child of
        ``np.random.SeedSequence(random_state)``.
    client : dask.distributed.Client, optional
        Run every replicate as one task on this client's workers (a worker lost is
        retried, twice); the result is the same as without.
    progressbar : bool
        Count finished replicates.
    **compare_options
        Passed to every :func:`bayesgmm.compare` (``methods``, ``draws``, ...).

    Returns
    -------
    StudyResult
    """
    from ._gaussian import get_covariance_structure
    from .compare import COVARIANCE_TYPES, _progress

    if not callable(simulate):
        raise ValueError(f"simulate must be a callable simulate(seed) -> X, got "
                         f"{type(simulate).__name__}.")
    n_replicates = check_integer("n_replicates", n_replicates, minimum=1)
    check_seed("random_state", random_state)
    if truth is not None:
        if not (isinstance(truth, tuple) and len(truth) == 2):
            raise ValueError(f"truth must be (n_components, covariance_type), got {truth!r}.")
        truth = (check_integer("truth's n_components", truth[0], minimum=1),
                 get_covariance_structure(truth[1]).name)
    task = _Replicate(simulate, n_components,
                      COVARIANCE_TYPES if covariance_types is None else covariance_types,
                      compare_options)
    seeds = [int(s.generate_state(1)[0])
             for s in np.random.SeedSequence(random_state).spawn(n_replicates)]
    with _progress(progressbar, n_replicates) as advance:
        if client is None:
            outcomes = []
            for r, seed in enumerate(seeds):
                outcomes.append(task(r, seed))
                advance(None)
        else:
            outcomes = on_client(client, task, list(enumerate(seeds)), name="replicate",
                                 failed=lambda r, message: (None, {
                                     "replicate": r, "seed": seeds[r], "error": message}),
                                 advance=advance)
    tables = [table for table, _ in outcomes if table is not None]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return StudyResult(table, pd.DataFrame([choice for _, choice in outcomes]), truth)


@dataclass(frozen=True)
class _Replicate:
    """One replicate: simulate, compare, choose (picklable, for a Dask worker)."""

    simulate: object
    n_components: object
    covariance_types: object
    options: dict

    def __call__(self, r, seed):
        choice = {"replicate": r, "seed": seed, "error": ""}
        try:
            data = self.simulate(seed)
            X = data[0] if isinstance(data, tuple) else data
            result = compare(X, self.n_components, self.covariance_types,
                             random_state=seed, progressbar=False, **self.options)
        except Exception as error:  # noqa: BLE001 - a failed replicate is a row
            choice["error"] = describe_error(error)
            return None, choice
        choice.update(_choices(result))
        table = result.table.copy()
        table.insert(0, "replicate", r)
        return table, choice


def _choices(result: ModelComparison):
    out = {}
    for name in CRITERIA:
        try:
            out[name] = result.best(name)
        except ValueError:  # not computed, or every model set aside
            out[name] = None
    return out
