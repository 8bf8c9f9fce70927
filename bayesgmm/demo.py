"""The main job: compare EM and Bayesian mixtures on Old Faithful and report the criteria."""

from __future__ import annotations

import hashlib
import os
import textwrap
import warnings
from pathlib import Path

import pandas as pd

from . import datasets
from ._io import atomic_write, write_atomically
from ._loo import PARETO_K_MAX
from .compare import COVARIANCE_TYPES, compare

#: Columns printed by the demo (``status`` is the demo's one-word ``set_aside``).
SHOWN = ["n_components", "covariance_type", "n_parameters", "log_likelihood", "bic", "aic",
         "icl", "elpd_loo", "elpd_loo_diff", "elpd_loo_dse", "n_pareto_k_high", "n_loo_refits",
         "elpd_waic", "loo_weight", "max_rhat", "min_ess_bulk", "status"]

#: NUTS settings of the demo: enough for R-hat <= 1.01 and bulk ESS >= 400 on every
#: model whose posterior has one mode (checked by compare, which sets the others aside).
DRAWS, TUNE, CHAINS = 1000, 1000, 4


#: The files the demo writes into its folder.
OUTPUTS = ("faithful_compare.png", "faithful_clusters.png", "faithful_posterior.png")

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
        with atomic_write(path) as staged:  # keeps the .png: savefig's format
            fig.savefig(staged, dpi=110)
            digest = _digest(staged)
            record = _written_by_demo(out)
            # recorded before the rename, so the file is the demo's whatever happens next
            record.setdefault(name, set()).add(digest)
            _write_marker(out, record)
        record[name] = {digest}
        _write_marker(out, record)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        plt.close(fig)
    return path


def _status(reason):
    """One word for the table from a ``set_aside`` reason (the notes give it in full)."""
    if not isinstance(reason, str):
        return ""
    for word in ("multimodal", "chains disagree", "LOO unreliable"):
        if reason.startswith(word):
            return word.replace("chains disagree", "unconverged")
    return "ranked" if reason == "" else "set aside"


def main(out_dir="demo-output", *, max_components=4, covariance_types=COVARIANCE_TYPES,
         bayes=True, draws=None, tune=None, chains=None, nuts_sampler=None, random_state=0,
         progressbar=True, force=False, quiet=False):
    """Compare 1..max_components x the covariance types by EM and NUTS.

    Prints the criteria table (with each Bayesian fit's largest R-hat, smallest bulk
    ESS, the points whose LOO term needed an exact refit, and whether it is ranked)
    and the agreement summary with the models set aside and why (nothing with
    ``quiet``), and writes to ``out_dir``: ``faithful_compare.png`` (criteria
    against K), ``faithful_clusters.png`` (the data with the BIC-chosen EM fit) and,
    with the Bayesian fits, ``faithful_posterior.png`` (the LOO-chosen model: its EM
    clusters, ellipses of posterior draws, and each point's membership uncertainty).
    ``draws``, ``tune``, ``chains`` default to :data:`DRAWS`, :data:`TUNE`,
    :data:`CHAINS`, ``nuts_sampler`` to nutpie when it is installed (else PyMC's).
    Existing files of those names are replaced only if an earlier demo wrote them
    (or ``force``); :func:`check_outputs` says so before any fitting. Returns the :class:`~bayesgmm.ModelComparison`.
    """
    import matplotlib.pyplot as plt

    from .bayes import resolve_nuts_sampler
    from .plots import plot_clusters

    draws = DRAWS if draws is None else draws
    tune = TUNE if tune is None else tune
    chains = CHAINS if chains is None else chains
    nuts_sampler = resolve_nuts_sampler("auto" if nuts_sampler is None else nuts_sampler)

    def say(*args):
        if not quiet:
            print(*args)

    check_outputs(out_dir, force=force)
    X = datasets.load_faithful()
    say(f"Old Faithful: {X.shape[0]} eruptions, features {list(X.columns)}")
    methods = ("em", "bayes") if bayes else ("em",)
    if bayes:
        say(f"fitting {max_components * len(covariance_types)} models by EM and by NUTS "
            f"({nuts_sampler}: {chains} chains x {draws} draws after {tune} warm-up) ...")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = compare(X, range(1, max_components + 1), covariance_types, methods=methods,
                         draws=draws, tune=tune, chains=chains, nuts_sampler=nuts_sampler,
                         random_state=random_state, progressbar=progressbar)
    table = result.table.copy()
    if "set_aside" in table:
        table["status"] = table["set_aside"].map(_status)
    shown = [c for c in SHOWN if c in table]
    with pd.option_context("display.width", 200, "display.precision", 2,
                           "display.max_columns", None):
        say("\nBIC, AIC, ICL: lower is better; elpd (LOO, WAIC): higher is better")
        say(table[shown].to_string(index=False, formatters={
            "loo_weight": "{:.2f}".format, "max_rhat": "{:.3f}".format,
            "min_ess_bulk": "{:.0f}".format}))
    for name, (k, cov) in result.best().items():
        say(f"best by {name.upper()}: {k} components, {cov}")
    say(textwrap.fill(result.agreement(), width=110, break_on_hyphens=False))
    if "n_loo_refits" in table and table["n_loo_refits"].sum() > 0:
        refitted = table[table["n_loo_refits"] > 0]
        say(f"LOO: {int(refitted['n_loo_refits'].sum())} points had Pareto k > {PARETO_K_MAX} "
            "and were recomputed exactly by refitting without them: " + ", ".join(
                f"K={k} {c} ({n})" for k, c, n in zip(
                    refitted["n_components"], refitted["covariance_type"],
                    refitted["n_loo_refits"])) + ".")
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
    written = [compare_png, _save_figure(fig, out, "faithful_clusters.png")]
    if bayes and "loo" in result.best():
        written.append(_save_figure(posterior_figure(result, X, result.best("loo")), out,
                                    "faithful_posterior.png"))
    say(f"\nfigures written to {', '.join(map(str, written[:-1]))} and {written[-1]}")
    return result


def posterior_figure(result, X, model):
    """What only the Bayesian fit shows, for ``model`` = (K, covariance type): three
    panels, the EM clusters | ellipses of posterior draws | each point's membership
    uncertainty (the width of its 94% interval)."""
    import matplotlib.pyplot as plt

    from .plots import plot_clusters, plot_uncertainty

    k, cov = model
    fits = result.models[k, cov]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    plot_clusters(fits["em"], X, ax=axes[0])
    axes[0].set_title(f"EM: {cov}, K={k}")
    posterior = fits["bayes"].posterior
    n_draws = min(40, posterior.sizes["chain"] * posterior.sizes["draw"])
    plot_clusters(fits["bayes"], X, n_draws=n_draws, ax=axes[1])
    axes[1].set_title(f"posterior: 1-sd ellipses of {n_draws} draws")
    plot_uncertainty(fits["bayes"], X, ax=axes[2])
    axes[2].set_title("membership uncertainty per point")
    fig.suptitle(f"Old Faithful, the model LOO chooses ({k} components, {cov})")
    fig.tight_layout()
    return fig
