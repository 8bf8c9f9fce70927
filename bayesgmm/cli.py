"""The ``bayesgmm`` command line: fit, compare, predict and the demo.

Every error is one line on stderr, ``bayesgmm: error: <what went wrong>``
(``--debug`` shows the traceback). Exit codes: 0 success, 2 bad usage or input
(an unknown option, a missing or unreadable file, an output that cannot be
written), 1 a fit that failed. Output paths are checked before any fitting;
existing files are never overwritten without ``--force``, and a command's
outputs are written together or not at all.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import re
import sys
import traceback
import warnings
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ._gaussian import (DEFAULT_COVARIANCE_TYPE, bayesian_covariance_names,
                        valid_covariance_names)
from ._validation import MISSING_OPTIONS

PROG = "bayesgmm"
#: ``--missing`` of ``fit`` and ``compare``.
MISSING_OPTION = click.option(
    "--missing", type=click.Choice(MISSING_OPTIONS), default=MISSING_OPTIONS[0],
    show_default=True,
    help="Empty cells (NaN): 'marginalize' fits the observed entries, each row's likelihood "
         "the marginal of its observed columns (missing at random); 'raise' refuses them.")
COVARIANCE_CHOICES = valid_covariance_names()


class InputError(click.ClickException):
    """Bad input data or arguments found after parsing (exit code 2)."""

    exit_code = 2


class FitError(click.ClickException):
    """The model could not be fitted (exit code 1)."""

    exit_code = 1


def _one_line(text):
    return " ".join(str(text).split())


def _error(message, code):
    click.echo(f"{PROG}: error: {_one_line(message)}", err=True)
    return code


class _Group(click.Group):
    """A click group whose every error is one line on stderr (see the module docstring).

    click's standalone mode prints a usage block and ``Error: ...``; here the group
    runs with ``standalone_mode=False`` and reports errors itself.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:  # embedding callers handle the exceptions themselves
            return super().main(argv, prog_name, complete_var, False, **extra)
        debug = "--debug" in argv
        try:
            code = super().main(argv, prog_name, complete_var, False, **extra)
            code = code if isinstance(code, int) else 0
        except click.exceptions.NoArgsIsHelpError as error:  # bare `bayesgmm`: the help
            error.show()
            code = error.exit_code
        except click.UsageError as error:
            hint = ""
            if error.ctx is not None and error.ctx.command.get_help_option(error.ctx):
                hint = f" (try '{error.ctx.command_path} --help')"
            code = _error(error.format_message() + hint, error.exit_code)
        except click.ClickException as error:
            code = _error(error.format_message(), error.exit_code)
        except (click.Abort, KeyboardInterrupt, EOFError):
            code = _error("interrupted", 130)
        except BrokenPipeError:  # `bayesgmm ... | head`: stop quietly
            sys.stdout = None
            code = 1
        except Exception as error:  # noqa: BLE001 - one readable line, not a traceback
            if debug:
                traceback.print_exc()
            code = _error(f"unexpected {type(error).__name__}: {error}", 1)
        sys.exit(code)


#: Delimiters a CSV file may use; a file using ';' or a tab may have decimal commas.
CSV_DELIMITERS = ",;\t|"
_SNIFF_BYTES = 1 << 16


def _read_table(path, columns=None, *, min_rows=1, unnamed_ok=False):
    """The table in a CSV or Parquet file, with every column a named column.

    CSV files: the delimiter is detected from the first 64 KiB (``,``, ``;``, tab or
    ``|``; ``,`` if none is clear), and decimal commas are read as such when the
    delimiter is not a comma. Every row must have as many fields as the header:
    pandas would otherwise silently turn a first, unnamed field into the index.
    ``min_rows``: the fewest data rows the command can use. Columns without a name
    are refused (``unnamed_ok``: the caller selects its columns by name).
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        else:
            table = _read_csv(path)
    except InputError:
        raise
    except ImportError as error:
        raise InputError(f"cannot read {path}: {error}") from None
    except Exception as error:  # noqa: BLE001 - pandas raises many kinds
        raise InputError(f"cannot read {path} as a table: {error}") from None
    if table.shape[1] == 0:
        raise InputError(f"{path} has no columns.")
    if columns is not None:
        table = table[_selected_columns(columns, table, path)]
    if not unnamed_ok:
        _refuse_unnamed(table, path)
    if len(table) < min_rows:
        if len(table) == 0:
            raise InputError(f"{path} has a header ({', '.join(map(str, table.columns))}) but "
                             "no data rows.")
        rows = f"{len(table)} data row" + "s" * (len(table) != 1)
        raise InputError(f"{path} has only {rows}: fitting a mixture needs at least "
                         f"{min_rows} (and at least as many as components).")
    return table


def _refuse_unnamed(table, path):
    unnamed = [str(c) for c in table.columns if str(c).startswith("Unnamed: ")]
    if unnamed:
        raise InputError(
            f"{path} has {len(unnamed)} unnamed column(s) (pandas calls them {unnamed}), "
            "often an index written by pandas' to_csv without index=False: name them in "
            "the header, or choose the data columns with --columns.")


def _read_data(path, columns, weights, *, min_rows=1):
    """The features of a fitting command's DATA, and the ``--weights`` column (or None).

    The weight column is dropped from the features: all other columns by default, or
    those of ``--columns`` (which must not name it). Its values are checked as
    ``sample_weight`` (numeric, finite, non-negative, not all zero), with messages
    naming the column.
    """
    if weights is None:
        return _read_table(path, columns, min_rows=min_rows), None
    name = weights.strip()
    table = _read_table(path, None, min_rows=min_rows, unnamed_ok=True)
    available = [str(c) for c in table.columns]
    if name not in available:
        raise InputError(f"--weights {name!r}: {path} has no column {name!r}; its columns are "
                         f"{available}.")
    column = table.columns[available.index(name)]
    if columns is not None:
        selected = _selected_columns(columns, table, path)
        if column in selected:
            raise InputError(f"--weights column {name!r} is also in --columns: the weights "
                             "are not a feature; leave it out of --columns.")
    else:
        selected = [c for c in table.columns if c != column]
        if not selected:
            raise InputError(f"{path} has no column besides the --weights column {name!r}: "
                             "there are no features to fit.")
    features = table[selected]
    _refuse_unnamed(features, path)
    return features, _weight_column(table[column], name, path)


def _weight_column(values, name, path):
    """The ``--weights`` column as checked sample weights (an InputError naming it)."""
    from ._validation import check_sample_weight

    what = f"--weights column {name!r} of {path}"
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = np.flatnonzero(numbers.isna().to_numpy() & values.notna().to_numpy())
        example = f"; e.g. {values.iloc[bad[0]]!r} in row {bad[0]}" if len(bad) else ""
        raise InputError(f"{what} is not numeric (dtype {values.dtype}{example}): weights "
                         "must be numbers.")
    try:
        return check_sample_weight(values.to_numpy(dtype=float, na_value=np.nan), len(values),
                                   what=what)
    except ValueError as error:
        raise InputError(str(error)) from None


def _read_csv(path):
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            sample = handle.read(_SNIFF_BYTES)
    except UnicodeDecodeError:
        raise InputError(f"cannot read {path}: it is not UTF-8 text (a CSV file was "
                         "expected; Parquet files need the .parquet extension).") from None
    if not sample.strip():
        raise InputError(f"{path} is empty.")
    delimiter = _delimiter(sample)
    decimal = "," if delimiter != "," and re.search(r"\d,\d", sample) else "."
    _check_field_counts(path, delimiter)
    return pd.read_csv(path, sep=delimiter, decimal=decimal, index_col=False,
                       encoding="utf-8-sig")


def _delimiter(sample):
    """The delimiter that splits the header into the most fields (names seldom hold
    decimal commas, data rows may); ties, and one-column headers, go to csv.Sniffer."""
    header = next((line for line in sample.splitlines() if line.strip()), "")
    fields = {d: len(next(csv.reader([header], delimiter=d), [])) for d in CSV_DELIMITERS}
    most = max(fields.values())
    candidates = "".join(d for d in CSV_DELIMITERS if fields[d] == most)
    if len(candidates) == 1:
        return candidates
    try:
        return csv.Sniffer().sniff(sample, delimiters=candidates).delimiter
    except csv.Error:  # one column, or no consistent delimiter: the first candidate
        return candidates[0]


def _check_field_counts(path, delimiter):
    """Every non-blank row has as many fields as the header (or an InputError)."""
    shown = {"\t": "tab"}.get(delimiter, repr(delimiter))
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader, [])
            for row in reader:
                if row and len(row) != len(header):
                    raise InputError(
                        f"{path} line {reader.line_num} has {len(row)} fields but the header "
                        f"has {len(header)} ({', '.join(header)}), reading it as "
                        f"{shown}-separated: every column needs a name in the header (an "
                        "unnamed first column is often an index written by pandas' to_csv "
                        "without index=False), and every row as many fields.")
        except csv.Error as error:
            raise InputError(f"cannot read {path} as a table: line {reader.line_num}: "
                             f"{error}") from None


def _selected_columns(columns, table, path):
    """The column names listed in ``--columns`` (all present, none twice)."""
    names = [c.strip() for c in columns.split(",")]
    names = [c for c in names if c]
    available = [str(c) for c in table.columns]
    if not names:
        raise InputError(f"--columns {columns!r} names no column; give comma-separated "
                         f"names such as {','.join(available[:2])}.")
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise InputError(f"--columns names {twice} more than once; name each column once.")
    missing = [c for c in names if c not in available]
    if missing:
        raise InputError(f"{path} has no column(s) {missing}; its columns are "
                         f"{available}.")
    return [table.columns[available.index(c)] for c in names]


def _check_outputs(outputs, force, inputs=()):
    """Before any work: every output can be written, the outputs are distinct files,
    none is an input, and none exists unless ``force``.

    ``outputs`` holds ``(option, path)`` pairs; a None path is skipped.
    """
    inputs = {Path(p).resolve() for p in inputs}
    seen = {}
    for option, path in outputs:
        if path is None:
            continue
        target = Path(path)
        resolved = target.resolve()
        if resolved in seen:
            raise InputError(f"{seen[resolved]} and {option} are the same file {path}; "
                             "give them different names.")
        seen[resolved] = option
        if resolved in inputs:
            raise InputError(f"{option} {path} is an input file; choose another output.")
        parent = target.parent
        if not parent.exists():
            raise InputError(f"cannot write {option} {path}: there is no folder {parent}.")
        if not parent.is_dir():
            raise InputError(f"cannot write {option} {path}: {parent} is not a folder.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"cannot write {option} {path}: no permission to create "
                             f"files in {parent}.")
        if target.is_dir():
            raise InputError(f"cannot write {option} {path}: it is a folder.")
        if target.exists() and not force:
            raise InputError(f"{path} exists; pass --force to overwrite it.")


def _figure_format(option, path):
    """The image format of a figure path (its extension; PNG without one)."""
    if path is None:
        return None
    from matplotlib.backend_bases import FigureCanvasBase

    suffix = Path(path).suffix.lower().lstrip(".")
    supported = FigureCanvasBase.get_supported_filetypes()
    if suffix and suffix not in supported:
        raise InputError(f"{option} {path}: cannot write .{suffix} figures; use one of "
                         f"{', '.join('.' + s for s in sorted(supported))}.")
    return suffix or "png"


def _write_outputs(writers):
    """Write every output or none: ``writers`` holds ``(path, write)`` pairs; each
    ``write(tmp)`` fills a temporary file beside its path, and only when all have
    succeeded are they renamed into place. A write that fails (no space, no
    permission) is an :class:`InputError` and leaves no partial outputs."""
    with contextlib.ExitStack() as outputs:
        for path, write in writers:
            write(outputs.enter_context(_output(path)))


@contextlib.contextmanager
def _output(path):
    """:func:`bayesgmm._io.atomic_write`, failing with an :class:`InputError` naming ``path``."""
    from ._io import atomic_write

    path = Path(path)
    try:
        with atomic_write(path) as tmp:
            yield tmp
    except OSError as error:
        if click.get_current_context().obj["debug"]:
            traceback.print_exc()
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None


def _check_data(X, n_components=1, weights=None, missing="raise"):
    """Input problems found before any fitting: exit code 2 with the checker's message."""
    from ._validation import check_enough_samples
    from .model import as_array_and_names

    try:
        array, _ = as_array_and_names(X, missing=missing)
        check_enough_samples(array.shape[0] if weights is None
                             else int(np.count_nonzero(weights)), n_components)
    except ValueError as error:
        raise InputError(str(error)) from None


def _run(fit, what, input_errors=()):
    """Run a fit; a failure is one line and exit code 1 (``input_errors``: exit code 2)."""
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
    except input_errors as error:
        if ctx.obj["debug"]:
            traceback.print_exc()
        raise InputError(str(error)) from None
    except Exception as error:  # noqa: BLE001 - one readable line, not a traceback
        if ctx.obj["debug"]:
            traceback.print_exc()
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FitError(f"{what} failed: {message}") from None


def _echo(text=""):
    if not click.get_current_context().obj["quiet"]:
        click.echo(text)


def _table_writer(table):
    """A writer for :func:`_write_outputs` that saves ``table`` as plain CSV (never
    compressed: the temporary file's extension, ``.gz`` say, must not change that)."""
    return lambda tmp: table.to_csv(tmp, index=False, compression=None)


def _figure_writer(fig, fmt):
    """A writer for :func:`_write_outputs` that saves ``fig`` (and then closes it)."""
    import matplotlib.pyplot as plt

    def write(tmp):
        try:
            fig.savefig(tmp, format=fmt, dpi=110, bbox_inches="tight")
        finally:
            plt.close(fig)

    return write


def _model_figure(model, X, title):
    """The fitted model over the data: ellipses (two features; posterior draws for a
    Bayesian fit), the density (one feature) or a pairs plot (more)."""
    from . import plots

    n_features = model.n_features_in_
    if n_features > 2:  # each panel shows the rows observed in its two features
        fig = plots.plot_pairs(model, X, n_draws=20 if plots._is_bayes(model) else 0)
        fig.suptitle(title)
        return fig
    X = X[~np.isnan(np.asarray(X, dtype=float)).any(axis=1)]  # a point needs every coordinate
    if n_features == 1:
        fig = plots.plot_density(model, X).figure
    else:
        fig = plots.plot_clusters(model, X).figure
    fig.suptitle(title)
    return fig


@click.group(name=PROG, cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
@click.version_option(package_name="bayesgmm")
@click.pass_context
def main(ctx, quiet, debug):
    """Gaussian mixture models fitted by EM and by Bayesian inference (PyMC)."""
    ctx.obj = {"quiet": quiet, "debug": debug}
    import matplotlib

    matplotlib.use("Agg")
    if quiet:  # sampler notes and logged warnings are not errors
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        ctx.call_on_close(lambda: logging.disable(previous))


@main.command()
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--components", "-k", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--covariance", type=click.Choice(COVARIANCE_CHOICES),
              default=DEFAULT_COVARIANCE_TYPE,
              show_default=True,
              help="Covariance family, by mclust's name or scikit-learn's (full = VVV, "
                   "tied = EEE, diag = VVI, spherical = VII). EM fits all; --method "
                   f"map/nuts/advi only {', '.join(bayesian_covariance_names())}.")
@click.option("--method", type=click.Choice(["em", "map", "nuts", "advi"]), default="em",
              show_default=True)
@click.option("--columns", help="Comma-separated columns to use (default: all).")
@click.option("--weights", metavar="COLUMN",
              help="Column of sample weights (non-negative; an integer weight counts its row "
                   "that many times); not a feature.")
@MISSING_OPTION
@click.option("--draws", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--tune", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--chains", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Random seed (reproducible results).")
@click.option("--out", "-o", type=click.Path(dir_okay=False), required=True,
              help="Result file (netCDF).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also write a figure (PNG).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.pass_context
def fit(ctx, data, components, covariance, method, columns, weights, missing, draws, tune,
        chains, seed, out, plot, force):
    """Fit a mixture to DATA (CSV or Parquet) and save the result.

    With --weights COLUMN the fit maximises (EM) or samples with (MAP, NUTS, ADVI) the
    weighted log-likelihood, sum_n w_n log p(x_n): see GaussianMixtureBayes.fit.
    """
    _check_outputs([("--out", out), ("--plot", plot)], force, inputs=[data])
    plot_format = _figure_format("--plot", plot)
    X, sample_weight = _read_data(data, columns, weights, min_rows=2)
    _check_data(X, components, sample_weight, missing)
    if sample_weight is not None:
        _echo(f"weighted by column {weights.strip()!r}: {len(sample_weight)} rows, weights "
              f"summing to {sample_weight.sum():g}")
    if method == "em":
        from .em import GaussianMixtureEM

        model = _run(lambda: GaussianMixtureEM(
            components, covariance_type=covariance, n_init=5, tol=1e-6, max_iter=1000,
            missing=missing, random_state=seed).fit(X, sample_weight=sample_weight), "EM")
        _echo(_em_summary(model, X, sample_weight))
    else:
        from .bayes import GaussianMixtureBayes

        model = GaussianMixtureBayes(components, covariance_type=covariance, missing=missing,
                                     random_state=seed)
        quiet = ctx.obj["quiet"]
        _run(lambda: model.fit(X, method=method, sample_weight=sample_weight, draws=draws,
                               tune=tune, chains=chains, progressbar=not quiet),
             method.upper())
        _echo(_bayes_summary(model, method))
    writers = [(out, model.save)]
    if plot:
        title = f"{method.upper()}: {components} component{'s' * (components != 1)}, " \
                f"{covariance}"
        fig = _run(lambda: _model_figure(model, X, title), "the plot")
        writers.append((plot, _figure_writer(fig, plot_format)))
    _write_outputs(writers)
    _echo(f"result written to {out}")
    if plot:
        _echo(f"figure written to {plot}")


def _em_summary(model, X, sample_weight=None):
    ds = model.to_xarray()
    w = sample_weight
    lines = [f"EM, {model.n_components} components, covariance {ds.attrs['covariance_type']} "
             f"(mclust {ds.attrs['mclust_model']}): log-likelihood {model.log_likelihood_:.3f}, "
             f"BIC {model.bic(X, sample_weight=w):.2f}, AIC {model.aic(X, sample_weight=w):.2f}, "
             f"ICL {model.icl(X, sample_weight=w):.2f}, "
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


#: Seconds ``compare --scheduler`` waits to reach the scheduler.
SCHEDULER_TIMEOUT = 10


@contextlib.contextmanager
def _dask_client(workers, scheduler):
    """None, or a Dask client: a local cluster of ``workers`` processes, or the
    scheduler at ``scheduler``; closed afterwards."""
    if workers is None and scheduler is None:
        yield None
        return
    if workers is not None and scheduler is not None:
        raise InputError("give --workers (a local cluster) or --scheduler (an existing "
                         "one), not both.")
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError) as error:
            raise InputError(f"--scheduler {scheduler!r}: cannot reach it ({error}).") \
                from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) \
            as cluster, Client(cluster) as client:
        yield client


#: The most models ``compare --components`` may ask for.
MAX_COMPONENT_VALUES = 100


def _parse_components(text):
    """``--components`` of compare: a range ``low-high`` or a list ``1,2,4``."""
    usage = f"--components must look like 1-6 or 1,2,4; got {text!r}."
    try:
        if "-" in text:
            low, high = (int(v) for v in text.split("-"))
            if low > high:
                raise InputError(f"--components {text!r} is an empty range: the first number "
                                 f"must not exceed the second (e.g. {high}-{low}).")
            count = high - low + 1
        else:
            values = [int(v) for v in text.split(",")]
            count = len(values)
    except ValueError:
        raise InputError(usage) from None
    if count > MAX_COMPONENT_VALUES:
        raise InputError(f"--components {text!r} asks for {count} values; give at most "
                         f"{MAX_COMPONENT_VALUES}.")
    if "-" in text:
        values = list(range(low, high + 1))
    if min(values) < 1:
        raise InputError(f"--components must be integers >= 1; got {text!r}.")
    twice = sorted({k for k in values if values.count(k) > 1})
    if twice:
        raise InputError(f"--components lists {twice} more than once; got {text!r}.")
    return values


@main.command(name="compare")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--components", "-k", default="1-6", show_default=True,
              help="A range (1-6) or a list (1,2,4).")
@click.option("--covariance", default=",".join(bayesian_covariance_names()), show_default=True,
              help="Comma-separated covariance types: any of mclust's 14 families (EII, "
                   "VII, EEI, VEI, EVI, VVI, EEE, VEE, EVE, VVE, EEV, VEV, EVV, VVV; E, V "
                   "for one column) or scikit-learn's full (VVV), tied (EEE), diag (VVI), "
                   "spherical (VII). The Bayesian fits take only "
                   f"{', '.join(bayesian_covariance_names())}; use --em-only for the "
                   "others.")
@click.option("--columns", help="Comma-separated columns to use (default: all).")
@click.option("--weights", metavar="COLUMN",
              help="Column of sample weights, given to every fit; not a feature. The "
                   "Bayesian criteria (LOO, WAIC) need integer weights.")
@MISSING_OPTION
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Fit the grid's cells in parallel on a local Dask cluster of this many "
                   "worker processes (one cell per task).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Fit the grid's cells on the Dask cluster whose scheduler is at ADDRESS "
                   "(e.g. tcp://host:8786); bayesgmm must be installed on its workers.")
@click.option("--em-only", is_flag=True, help="Classical criteria only (no sampling).")
@click.option("--evidence", is_flag=True,
              help="Also the log evidence, Bayes factors and model probabilities.")
@click.option("--evidence-method", type=click.Choice(["bridge", "smc"]), default="bridge",
              show_default=True,
              help="Bridge sampling from the NUTS draws, or Sequential Monte Carlo.")
@click.option("--draws", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--tune", type=click.IntRange(min=0), default=500, show_default=True)
@click.option("--chains", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=None)
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Write the table (CSV).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write the criteria plot.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.pass_context
def compare_command(ctx, data, components, covariance, columns, weights, missing, workers,
                    scheduler, em_only, evidence, evidence_method, draws, tune, chains, seed,
                    out, plot, force):
    """Compare numbers of components and covariance types on DATA."""
    from ._loo import check_loo_weights
    from .compare import compare

    _check_outputs([("--out", out), ("--plot", plot)], force, inputs=[data])
    plot_format = _figure_format("--plot", plot)
    X, sample_weight = _read_data(data, columns, weights, min_rows=2)
    ks = _parse_components(components)
    _check_data(X, max(ks), sample_weight, missing)
    if not em_only:
        try:
            check_loo_weights(sample_weight)
        except ValueError as error:
            raise InputError(f"--weights column {weights.strip()!r}: {error} (or pass "
                             "--em-only)") from None
    types = [c.strip() for c in covariance.split(",") if c.strip()]
    if not types:
        raise InputError(f"--covariance {covariance!r} names no covariance type; valid: "
                         f"{COVARIANCE_CHOICES}.")
    unknown = [c for c in types if c not in COVARIANCE_CHOICES]
    if unknown:
        raise InputError(f"unknown covariance type(s) {unknown}; valid: {COVARIANCE_CHOICES}.")
    quiet = ctx.obj["quiet"]
    with _dask_client(workers, scheduler) as client:
        result = _run(lambda: compare(
            X, ks, types, sample_weight=sample_weight, missing=missing,
            methods=("em",) if em_only else ("em", "bayes"), evidence=evidence,
            evidence_method=evidence_method, draws=draws, tune=tune, chains=chains,
            random_state=seed, progressbar=not quiet, client=client), "the comparison")
    _echo(repr(result))
    writers = []
    if out:
        writers.append((out, _table_writer(result.table)))
    if plot:
        writers.append((plot, _figure_writer(_run(result.plot, "the plot"), plot_format)))
    _write_outputs(writers)
    if out:
        _echo(f"table written to {out}")
    if plot:
        _echo(f"figure written to {plot}")


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

    _check_outputs([("--out", out)], force, inputs=[result, data])
    try:
        _, kind = read_kind(result)
    except ValueError as error:
        raise InputError(str(error)) from None
    loaders = {"bayesgmm.GaussianMixtureEM": GaussianMixtureEM,
               "bayesgmm.GaussianMixtureBayes": GaussianMixtureBayes}
    if kind not in loaders:
        raise InputError(f"{result} is not a result saved by bayesgmm fit.")
    try:
        model = loaders[kind].load(result)
    except ValueError as error:
        raise InputError(str(error)) from None
    names = [str(n) for n in getattr(model, "feature_names_in_", [])]
    table = _read_table(data, unnamed_ok=bool(names))
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
    _write_outputs([(out, _table_writer(out_table))])
    _echo(f"{len(out_table)} labels written to {out}")


@main.command()
@click.option("--out", default="demo-output", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the figures.")
@click.option("--force", is_flag=True,
              help="Overwrite figures in --out that an earlier demo did not write.")
@click.option("--max-components", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--em-only", is_flag=True, help="Classical criteria only (no PyMC; seconds).")
@click.option("--draws", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--tune", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--chains", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.pass_context
def demo(ctx, out, force, max_components, em_only, draws, tune, chains, seed, no_progress):
    """Compare EM and Bayesian mixtures on the bundled Old Faithful data.

    The figures go to --out. A rerun replaces the figures an earlier demo wrote
    there (they are listed in --out/.bayesgmm-demo) but no other file of the same
    name unless --force.
    """
    from . import demo as demo_module

    try:
        demo_module.check_outputs(out, force=force)
    except OSError as error:
        raise InputError(str(error)) from None
    quiet = ctx.obj["quiet"]
    _run(lambda: demo_module.main(
        out, max_components=max_components, bayes=not em_only, draws=draws, tune=tune,
        chains=chains, random_state=seed, progressbar=not (no_progress or quiet),
        force=force, quiet=quiet), "the demo", input_errors=(demo_module.OutputError,))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
