"""The ``bayesgmm`` command line: fit, compare, predict and the demo.

Every error is one line on stderr (``--debug`` shows the traceback). Exit codes:
0 success, 2 bad usage or unreadable input, 1 a fit that failed. Existing output
files are never overwritten without ``--force``.
"""

from __future__ import annotations

import sys
import traceback
import warnings
from pathlib import Path

import click
import numpy as np
import pandas as pd

COVARIANCE_CHOICES = ["full", "tied", "diag", "spherical", "VVV", "EEE", "VVI", "VII"]


class InputError(click.ClickException):
    """Bad input data or arguments found after parsing (exit code 2)."""

    exit_code = 2


class FitError(click.ClickException):
    """The model could not be fitted (exit code 1)."""

    exit_code = 1


def _read_table(path, columns=None):
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path)
    except ImportError as error:
        raise InputError(f"cannot read {path}: {error}") from None
    except Exception as error:  # noqa: BLE001 - pandas raises many kinds
        raise InputError(f"cannot read {path} as a table: {error}") from None
    if columns:
        names = [c.strip() for c in columns.split(",") if c.strip()]
        missing = [c for c in names if c not in table.columns]
        if missing:
            raise InputError(f"{path} has no column(s) {missing}; its columns are "
                             f"{list(table.columns)}.")
        table = table[names]
    return table


def _check_output(path, force):
    if path is not None and Path(path).exists() and not force:
        raise InputError(f"{path} exists; pass --force to overwrite it.")


def _check_data(X, n_components=1):
    """Input problems found before any fitting: exit code 2 with the checker's message."""
    from ._validation import check_enough_samples
    from .model import as_array_and_names

    try:
        array, _ = as_array_and_names(X)
        check_enough_samples(array.shape[0], n_components)
    except ValueError as error:
        raise InputError(str(error)) from None


def _run(fit, what):
    """Run a fit; a failure is one line and exit code 1."""
    ctx = click.get_current_context()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fit()
        if not ctx.obj["quiet"]:
            for message in dict.fromkeys(str(w.message).splitlines()[0] for w in caught):
                click.echo(f"warning: {message}", err=True)
        return result
    except click.ClickException:
        raise
    except Exception as error:  # noqa: BLE001 - one readable line, not a traceback
        if ctx.obj["debug"]:
            traceback.print_exc()
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FitError(f"{what} failed: {message}") from None


def _echo(text=""):
    if not click.get_current_context().obj["quiet"]:
        click.echo(text)


def _save_figure(fig, path):
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    _echo(f"figure written to {path}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
@click.version_option(package_name="bayesgmm")
@click.pass_context
def main(ctx, quiet, debug):
    """Gaussian mixture models fitted by EM and by Bayesian inference (PyMC)."""
    ctx.obj = {"quiet": quiet, "debug": debug}
    import matplotlib

    matplotlib.use("Agg")


@main.command()
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--components", "-k", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--covariance", type=click.Choice(COVARIANCE_CHOICES), default="full",
              show_default=True)
@click.option("--method", type=click.Choice(["em", "map", "nuts", "advi"]), default="em",
              show_default=True)
@click.option("--columns", help="Comma-separated columns to use (default: all).")
@click.option("--draws", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--tune", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--chains", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seed", type=int, default=None, help="Random seed (reproducible results).")
@click.option("--out", "-o", type=click.Path(dir_okay=False), required=True,
              help="Result file (netCDF).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also write a figure (PNG).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.pass_context
def fit(ctx, data, components, covariance, method, columns, draws, tune, chains, seed, out,
        plot, force):
    """Fit a mixture to DATA (CSV or Parquet) and save the result."""
    for path in (out, plot):
        _check_output(path, force)
    X = _read_table(data, columns)
    _check_data(X, components)
    if method == "em":
        from .em import GaussianMixtureEM

        model = _run(lambda: GaussianMixtureEM(
            components, covariance_type=covariance, n_init=5, tol=1e-6, max_iter=1000,
            random_state=seed).fit(X), "EM")
        _echo(_em_summary(model, X))
    else:
        from .bayes import GaussianMixtureBayes

        model = GaussianMixtureBayes(components, covariance_type=covariance, random_state=seed)
        quiet = ctx.obj["quiet"]
        _run(lambda: model.fit(X, method=method, draws=draws, tune=tune, chains=chains,
                               progressbar=not quiet), method.upper())
        _echo(_bayes_summary(model, method))
    model.save(out)
    _echo(f"result written to {out}")
    if plot:
        from .plots import plot_clusters

        em = model if method == "em" else model.em_
        ax = plot_clusters(em, X)
        _save_figure(ax.figure, plot)


def _em_summary(model, X):
    ds = model.to_xarray()
    lines = [f"EM, {model.n_components} components, covariance {ds.attrs['covariance_type']} "
             f"(mclust {ds.attrs['mclust_model']}): log-likelihood {model.log_likelihood_:.3f}, "
             f"BIC {model.bic(X):.2f}, AIC {model.aic(X):.2f}, ICL {model.icl(X):.2f}, "
             f"{'converged' if model.converged_ else 'NOT converged'} in {model.n_iter_} "
             "iterations"]
    table = pd.DataFrame(ds["means"].values, columns=[f"mean[{f}]" for f in ds.feature.values])
    sds = np.sqrt(np.diagonal(ds["covariances"].values, axis1=1, axis2=2))
    for j, name in enumerate(ds.feature.values):
        table[f"sd[{name}]"] = sds[:, j]
    table.insert(0, "weight", ds["weights"].values)
    table.index.name = "component"
    with pd.option_context("display.width", 140, "display.precision", 4):
        lines.append(table.to_string())
    return "\n".join(lines)


def _bayes_summary(model, method):
    with pd.option_context("display.width", 140, "display.precision", 4,
                           "display.max_columns", None):
        lines = [f"{method.upper()}, {model.n_components} components, covariance "
                 f"{model.spec_.structure.name}", model.summary().to_string()]
    if method == "nuts":
        table = model.diagnose(warn=False)
        problems = table.attrs["problems"]
        lines.append("diagnostics: " + ("all passed (R-hat <= 1.01, ESS >= 400, no "
                                        "divergences)" if not problems else " ".join(problems)))
    return "\n".join(lines)


def _parse_components(text):
    try:
        if "-" in text:
            low, high = (int(v) for v in text.split("-"))
            values = list(range(low, high + 1))
        else:
            values = [int(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"--components must look like 1-6 or 1,2,4; got {text!r}.") from None
    if not values or min(values) < 1:
        raise InputError(f"--components must be integers >= 1; got {text!r}.")
    return values


@main.command(name="compare")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--components", "-k", default="1-6", show_default=True,
              help="A range (1-6) or a list (1,2,4).")
@click.option("--covariance", default="full,tied,diag,spherical", show_default=True,
              help="Comma-separated covariance types.")
@click.option("--columns", help="Comma-separated columns to use (default: all).")
@click.option("--em-only", is_flag=True, help="Classical criteria only (no sampling).")
@click.option("--evidence", is_flag=True, help="Also the log evidence by SMC.")
@click.option("--draws", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--tune", type=click.IntRange(min=0), default=500, show_default=True)
@click.option("--chains", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Write the table (CSV).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write the criteria plot.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.pass_context
def compare_command(ctx, data, components, covariance, columns, em_only, evidence, draws,
                    tune, chains, seed, out, plot, force):
    """Compare numbers of components and covariance types on DATA."""
    from .compare import compare

    for path in (out, plot):
        _check_output(path, force)
    X = _read_table(data, columns)
    ks = _parse_components(components)
    _check_data(X, max(ks))
    types = [c.strip() for c in covariance.split(",") if c.strip()]
    unknown = [c for c in types if c not in COVARIANCE_CHOICES]
    if unknown:
        raise InputError(f"unknown covariance type(s) {unknown}; valid: {COVARIANCE_CHOICES}.")
    quiet = ctx.obj["quiet"]
    result = _run(lambda: compare(
        X, ks, types, methods=("em",) if em_only else
        ("em", "bayes"), evidence=evidence, draws=draws, tune=tune, chains=chains,
        random_state=seed, progressbar=not quiet), "the comparison")
    _echo(repr(result))
    if out:
        result.table.to_csv(out, index=False)
        _echo(f"table written to {out}")
    if plot:
        _save_figure(result.plot(), plot)


@main.command()
@click.argument("result", type=click.Path(exists=True, dir_okay=False))
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", type=click.Path(dir_okay=False), required=True,
              help="Labels and membership probabilities (CSV).")
@click.option("--hdi-prob", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.94, show_default=True, help="Credible interval (Bayesian results).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def predict(result, data, out, hdi_prob, force):
    """Labels and membership probabilities of DATA under a saved RESULT."""
    from ._io import read_kind
    from .bayes import GaussianMixtureBayes
    from .em import GaussianMixtureEM

    _check_output(out, force)
    try:
        _, kind = read_kind(result)
    except ValueError as error:
        raise InputError(str(error)) from None
    loaders = {"bayesgmm.GaussianMixtureEM": GaussianMixtureEM,
               "bayesgmm.GaussianMixtureBayes": GaussianMixtureBayes}
    if kind not in loaders:
        raise InputError(f"{result} is not a result saved by bayesgmm fit.")
    model = loaders[kind].load(result)
    table = _read_table(data)
    names = [str(n) for n in getattr(model, "feature_names_in_", [])]
    if names:
        missing = [n for n in names if n not in table.columns]
        if missing:
            raise InputError(f"{data} lacks the model's feature column(s) {missing}.")
        table = table[names]
    X = table
    _check_data(X)
    out_table = pd.DataFrame({"label": _run(lambda: model.predict(X), "prediction")})
    if kind == "bayesgmm.GaussianMixtureEM":
        proba = model.predict_proba(X)
        for k in range(proba.shape[1]):
            out_table[f"prob_{k}"] = proba[:, k]
    else:
        membership = model.membership(X, hdi_prob=hdi_prob)
        for k in range(membership.sizes["component"]):
            for column, var in (("prob", "mean"), ("lower", "lower"), ("upper", "upper")):
                out_table[f"{column}_{k}"] = membership[var].isel(component=k).values
    out_table.to_csv(out, index=False)
    _echo(f"{len(out_table)} labels written to {out}")


@main.command()
@click.option("--out", default="demo-output", show_default=True, help="Folder for figures.")
@click.option("--max-components", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--em-only", is_flag=True, help="Classical criteria only (no PyMC; seconds).")
@click.option("--draws", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--tune", type=click.IntRange(min=0), default=300, show_default=True)
@click.option("--chains", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.pass_context
def demo(ctx, out, max_components, em_only, draws, tune, chains, seed, no_progress):
    """Compare EM and Bayesian mixtures on the bundled Old Faithful data."""
    from .demo import main as demo_main

    demo_main(out, max_components=max_components, bayes=not em_only, draws=draws, tune=tune,
              chains=chains, random_state=seed,
              progressbar=not (no_progress or ctx.obj["quiet"]))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
