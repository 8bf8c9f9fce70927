"""The main job: compare EM and Bayesian mixtures on Old Faithful and report the criteria."""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from . import datasets
from ._io import write_atomically
from .compare import COVARIANCE_TYPES, compare

#: Columns printed by the demo.
SHOWN = ["n_components", "covariance_type", "n_parameters", "log_likelihood", "bic", "aic",
         "icl", "elpd_loo", "elpd_loo_diff", "elpd_loo_dse", "n_pareto_k_high", "elpd_waic",
         "loo_weight", "max_rhat"]

#: The files the demo writes into its folder.
OUTPUTS = ("faithful_compare.png", "faithful_clusters.png")

#: The demo's record of what it wrote: ``<sha256>  <name>`` lines, like ``sha256sum``.
MARKER = ".bayesgmm-demo"


class OutputError(OSError):
    """The demo's figures cannot be written (or would overwrite a file it did not write)."""


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _written_by_demo(out):
    """``{name: {sha256, ...}}`` of the files an earlier demo wrote into ``out``."""
    try:
        lines = (Path(out) / MARKER).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    record = {}
    for line in lines:
        digest, _, name = line.partition("  ")
        if name:
            record.setdefault(name, set()).add(digest)
    return record


def _write_marker(out, record):
    text = "".join(f"{digest}  {name}\n" for name, digests in sorted(record.items())
                   for digest in sorted(digests))
    write_atomically(Path(out) / MARKER, lambda tmp: Path(tmp).write_text(text))


def check_outputs(out_dir="demo-output", *, force=False):
    """Raise :class:`OutputError` now, before any fitting, if the demo could not write
    its figures into ``out_dir``: a file in the way of the folder, no permission, or a
    figure's name taken by a file the demo did not write (its content is not one the
    demo recorded in ``out_dir/.bayesgmm-demo``) and ``force`` is False.

    A rerun therefore replaces the demo's own figures but nothing else.
    """
    out = Path(out_dir)
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write the demo's figures to {out}: {existing} is a file, "
                          "not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write the demo's figures to {out}: no permission to "
                          f"create files in {existing}.")
    record = _written_by_demo(out) if out.is_dir() else {}
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            raise OutputError(f"cannot write {path}: it is a folder.")
        if path.exists() and not force and _digest(path) not in record.get(name, ()):
            raise OutputError(f"{path} exists and was not written by the demo; pass --force "
                              "to overwrite it, or --out another folder.")


def _save_figure(fig, out, name):
    """Write a figure atomically and record it as the demo's own."""
    import matplotlib.pyplot as plt

    path = Path(out) / name
    try:
        with tempfile.TemporaryDirectory(dir=out, prefix=".bayesgmm-demo.") as staging:
            staged = Path(staging) / name
            fig.savefig(staged, dpi=110)
            digest = _digest(staged)
            record = _written_by_demo(out)
            # recorded before the rename, so the file is the demo's whatever happens next
            record.setdefault(name, set()).add(digest)
            _write_marker(out, record)
            os.replace(staged, path)
            record[name] = {digest}
            _write_marker(out, record)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        plt.close(fig)
    return path


def main(out_dir="demo-output", *, max_components=4, covariance_types=COVARIANCE_TYPES,
         bayes=True, draws=300, tune=300, chains=2, random_state=0, progressbar=True,
         force=False, quiet=False):
    """Compare 1..max_components x the covariance types by EM and NUTS.

    Prints the criteria table and the agreement summary (nothing with ``quiet``),
    and writes ``faithful_compare.png`` (criteria against K) and
    ``faithful_clusters.png`` (the data with the BIC-chosen fit) to ``out_dir``.
    Existing files of those names are replaced only if an earlier demo wrote them
    (or ``force``); :func:`check_outputs` says so before any fitting. Returns the
    :class:`~bayesgmm.ModelComparison`.
    """
    import matplotlib.pyplot as plt

    from .plots import plot_clusters

    def say(*args):
        if not quiet:
            print(*args)

    check_outputs(out_dir, force=force)
    X = datasets.load_faithful()
    say(f"Old Faithful: {X.shape[0]} eruptions, features {list(X.columns)}")
    methods = ("em", "bayes") if bayes else ("em",)
    if bayes:
        say(f"fitting {max_components * len(covariance_types)} models by EM and by NUTS "
            f"({chains} chains x {draws} draws after {tune} warm-up) ...")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = compare(X, range(1, max_components + 1), covariance_types, methods=methods,
                         draws=draws, tune=tune, chains=chains, random_state=random_state,
                         progressbar=progressbar)
    shown = [c for c in SHOWN if c in result.table]
    with pd.option_context("display.width", 160, "display.precision", 2,
                           "display.max_columns", None):
        say("\nBIC, AIC, ICL: lower is better; elpd (LOO, WAIC): higher is better")
        say(result.table[shown].round({"loo_weight": 2}).to_string(index=False))
    for name, (k, cov) in result.best().items():
        say(f"best by {name.upper()}: {k} components, {cov}")
    say(result.agreement())
    if "max_rhat" in result.table:
        unsettled = result.table[result.table["max_rhat"] > 1.01]
        if len(unsettled):
            names = ", ".join(f"K={k} {c}" for k, c in zip(unsettled["n_components"],
                                                           unsettled["covariance_type"]))
            say(f"note: R-hat > 1.01 for {names}: their chains disagree at these short "
                "runs (--draws/--tune to run longer); read their LOO/WAIC with care.")
    for warning in caught:
        say(f"note: {warning.message}")

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {out}: {error.strerror or error}") from None
    compare_png = _save_figure(result.plot(), out, "faithful_compare.png")
    k, cov = result.best("bic")
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    plot_clusters(result.models[k, cov]["em"], X, ax=ax)
    ax.set_title(f"best BIC: {cov}, K={k}")
    fig.tight_layout()
    clusters_png = _save_figure(fig, out, "faithful_clusters.png")
    say(f"\nfigures written to {compare_png} and {clusters_png}")
    return result
