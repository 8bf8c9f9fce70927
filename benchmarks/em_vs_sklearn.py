#!/usr/bin/env python
"""Per-iteration speed and peak memory of bayesgmm's EM against scikit-learn's.

Run from the repository root::

    .venv/bin/python benchmarks/em_vs_sklearn.py            # full benchmark (several minutes)
    .venv/bin/python benchmarks/em_vs_sklearn.py --quick    # smoke run (seconds)
    .venv/bin/python benchmarks/em_vs_sklearn.py --list     # case names
    .venv/bin/python benchmarks/em_vs_sklearn.py --cases 'n1e6-*-full*'

For every case (n_samples, n_features, n_components, covariance type, dtype):

1. Data: a mixture of ``K`` Gaussians with random means (spread 4) and random
   full covariances, drawn with a fixed seed (the same data for both libraries).
2. Start: both estimators get the same explicit ``weights_init``, ``means_init``
   and ``precisions_init``, estimated from a k-means (``n_init=1``) of a
   subsample of at most 20,000 rows. No k-means runs inside either ``fit``.
3. Time per EM iteration: ``fit`` with ``tol=0`` (no early stop) and
   ``max_iter=N1`` and ``max_iter=N2``; each is repeated and the best wall time
   kept; time per iteration = (best(N2) - best(N1)) / (N2 - N1). Input
   validation, the initial set-up and the final E-step / labelling pass are the
   same in both fits and cancel out. ``ConvergenceWarning`` is silenced.
4. Peak extra memory: one more ``fit`` (``max_iter=N1``) with ``tracemalloc``
   started right before it (data and initial parameters already exist, so they
   are not counted) and the peak of traced memory read right after. numpy
   registers its buffers with tracemalloc, so this is the peak of everything the
   fit allocates on top of the input; BLAS-internal work buffers are not seen
   (the same for both libraries).
5. Agreement: the log-likelihood of the data under each library's fitted
   parameters (after N2 iterations) is computed by one independent evaluator
   (scipy's multivariate normal log-density, float64, log-sum-exp over
   components); the relative difference is printed.
6. Efficiency: the machine's matrix-product speed (best of 5 products of two
   2000x2000 matrices, 2*2000^3 flops, float64 and float32) next to the flop
   rate of bayesgmm's EM iteration, estimated as

       flops/iteration = 2 * (2*n*K*m + 2*n*K*D)

   with m = D(D+1)/2 second-moment features for "full" and m = D for "diag":
   the E-step multiplies the (n, m) features and (n, D) data by the (K, m) and
   (K, D) coefficients, the M-step multiplies the responsibilities back into
   the same features. Element-wise work (features, exp, normalisation) is not
   counted, so this is a lower bound on the work actually done.

The target (from the issue): on n1e6-d10-k8-full (float64), bayesgmm at least
10x faster per iteration than scikit-learn, with peak extra memory at most half
of scikit-learn's.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import gc
import json
import platform
import sys
import time
import tracemalloc
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import bayesgmm
from bayesgmm import GaussianMixtureEM

SEED = 20261122
REG_COVAR = 1e-6
INIT_SUBSAMPLE = 20_000
MiB = 2.0**20
MIN_SECONDS = 3.0  # fast cases: keep repeating until this much time was spent ...
MAX_REPEATS = 25  # ... or this many repetitions were made
MIN_LOAD_WINDOW = 0.25  # seconds; shorter fits are not checked individually
QUIET_THRESHOLD = 0.1  # a timed fit counts as clean if other processes used < 0.1 CPU
MAX_DISTURBED = 10  # disturbed (re-done) repetitions allowed per library and case


@dataclass(frozen=True)
class Case:
    n_samples: int
    n_features: int
    n_components: int
    covariance_type: str
    dtype: str = "float64"

    @property
    def name(self) -> str:
        suffix = "-f32" if self.dtype == "float32" else ""
        return (
            f"n{_short(self.n_samples)}-d{self.n_features}-k{self.n_components}"
            f"-{self.covariance_type}{suffix}"
        )

    def flops_per_iteration(self) -> float:
        """Matrix-product flops of one EM iteration (E-step + M-step moments)."""
        n, D, K = self.n_samples, self.n_features, self.n_components
        m = D * (D + 1) // 2 if self.covariance_type == "full" else D
        return 2.0 * (2.0 * n * K * m + 2.0 * n * K * D)


def _short(n: int) -> str:
    exponent = int(round(np.log10(n)))
    if 10**exponent == n:
        return f"1e{exponent}"
    mantissa = n / 10**exponent
    return f"{mantissa:g}e{exponent}" if mantissa == int(mantissa) else str(n)


CASES = [
    Case(100_000, 2, 3, "full"),
    Case(100_000, 2, 3, "diag"),
    Case(100_000, 10, 8, "full"),
    Case(100_000, 10, 8, "diag"),
    Case(1_000_000, 10, 8, "full"),
    Case(1_000_000, 10, 8, "diag"),
    Case(1_000_000, 10, 8, "full", "float32"),
]
TARGET_CASE = "n1e6-d10-k8-full"
TARGET_SPEEDUP = 10.0
TARGET_MEMORY_RATIO = 0.5


@dataclass
class Result:
    case: str
    n_samples: int
    n_features: int
    n_components: int
    covariance_type: str
    dtype: str
    iters: tuple
    repeats: int
    sklearn_times: dict = field(default_factory=dict)  # max_iter -> list of seconds
    bayesgmm_times: dict = field(default_factory=dict)
    sklearn_s_per_iter: float = float("nan")
    bayesgmm_s_per_iter: float = float("nan")
    sklearn_setup_s: float = float("nan")
    bayesgmm_setup_s: float = float("nan")
    sklearn_peak_mib: float = float("nan")
    bayesgmm_peak_mib: float = float("nan")
    data_mib: float = float("nan")
    flops_per_iter: float = float("nan")
    bayesgmm_gflops: float = float("nan")
    matmul_gflops: float = float("nan")
    loglik_sklearn: float = float("nan")
    loglik_bayesgmm: float = float("nan")
    loglik_rel_diff: float = float("nan")
    max_abs_mean_diff: float = float("nan")
    foreign_load_cpus: float = float("nan")

    @property
    def speedup(self):
        return self.sklearn_s_per_iter / self.bayesgmm_s_per_iter

    @property
    def memory_ratio(self):
        return self.bayesgmm_peak_mib / self.sklearn_peak_mib


# ----------------------------------------------------------------------- data
def simulate(n, D, K, seed=SEED):
    """A well-separated mixture: weights ~ Dirichlet(5), means ~ N(0, 4^2 I), random SPD covariances."""
    rng = np.random.default_rng([seed, n, D, K])
    weights = rng.dirichlet(np.full(K, 5.0))
    means = rng.normal(scale=4.0, size=(K, D))
    labels = rng.choice(K, size=n, p=weights)
    X = rng.standard_normal((n, D))
    for k in range(K):
        A = rng.normal(size=(D, D))
        cov = A @ A.T / D + 0.25 * np.eye(D)
        chol = np.linalg.cholesky(cov)
        rows = labels == k
        X[rows] = X[rows] @ chol.T + means[k]
    return X


def initial_parameters(X, K, covariance_type, seed=SEED):
    """weights, means, precisions from a k-means of a subsample (float64)."""
    rng = np.random.default_rng(seed)
    n, D = X.shape
    rows = rng.choice(n, size=min(n, INIT_SUBSAMPLE), replace=False)
    sub = np.asarray(X[np.sort(rows)], dtype=np.float64)
    labels = KMeans(K, n_init=1, random_state=0).fit(sub).labels_
    weights = np.bincount(labels, minlength=K) / len(labels)
    means = np.stack([sub[labels == k].mean(axis=0) for k in range(K)])
    if covariance_type == "full":
        precisions = []
        for k in range(K):
            cov = np.cov(sub[labels == k], rowvar=False) + REG_COVAR * np.eye(D)
            prec = np.linalg.inv(cov)
            precisions.append((prec + prec.T) / 2)
        precisions = np.stack(precisions)
    elif covariance_type == "diag":
        precisions = np.stack(
            [1.0 / (sub[labels == k].var(axis=0) + REG_COVAR) for k in range(K)]
        )
    else:  # pragma: no cover - only full and diag are benchmarked
        raise ValueError(covariance_type)
    return weights, means, precisions


# -------------------------------------------------------------------- fitting
def make_estimator(library, case, init, max_iter):
    weights, means, precisions = init
    params = dict(
        n_components=case.n_components,
        covariance_type=case.covariance_type,
        tol=0.0,
        reg_covar=REG_COVAR,
        max_iter=max_iter,
        n_init=1,
        weights_init=weights,
        means_init=means,
        precisions_init=precisions,
        random_state=0,
    )
    cls = GaussianMixture if library == "sklearn" else GaussianMixtureEM
    return cls(**params)


def timed_fit(library, case, init, X, max_iter):
    model = make_estimator(library, case, init, max_iter)
    gc.collect()
    with warnings.catch_warnings(), ForeignLoad() as load:
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X)
        elapsed = time.perf_counter() - start
    assert model.n_iter_ == max_iter, (library, model.n_iter_, max_iter)
    return elapsed, model, load.cpus


def peak_memory_of_fit(library, case, init, X, max_iter):
    """Peak traced allocation (bytes) of one fit, beyond what existed before it."""
    model = make_estimator(library, case, init, max_iter)
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        tracemalloc.start()
        try:
            model.fit(X)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return peak


def model_log_likelihood(X64, model, covariance_type):
    """Total log-likelihood under a fitted model, by scipy (independent of both libraries)."""
    log_joint = np.empty((X64.shape[0], len(model.weights_)))
    for k, (w, mu, cov) in enumerate(zip(model.weights_, model.means_, model.covariances_)):
        cov = np.diag(cov) if covariance_type == "diag" else cov
        log_joint[:, k] = np.log(w) + multivariate_normal(mu, cov).logpdf(X64)
    return float(logsumexp(log_joint, axis=1).sum())


def matmul_gflops(dtype, size=2000, repeats=5):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    a @ b  # warm-up (thread pool start)
    best = min(_time(lambda: a @ b) for _ in range(repeats))
    return 2.0 * size**3 / best / 1e9


class ForeignLoad:
    """CPU used by *other* processes while a block of code runs, in CPUs.

    The machine's busy time (/proc/stat) minus this process's own CPU time,
    divided by the wall time: 0 on a quiet machine, 1 if another process kept
    one core busy. BLAS threads spin and stall when cores are shared, so
    timings taken under foreign load are not comparable.
    """

    def __enter__(self):
        self.start = (_machine_busy_seconds(), _own_cpu_seconds(), time.perf_counter())
        return self

    def __exit__(self, *exc):
        busy, own, wall = _machine_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
        wall -= self.start[2]
        # /proc/stat and os.times() count in clock ticks (10 ms): too coarse for
        # shorter windows, which report NaN (unknown) instead.
        self.cpus = (
            max(0.0, (busy - self.start[0]) - (own - self.start[1])) / wall
            if wall >= MIN_LOAD_WINDOW else float("nan")
        )
        return False


def foreign_load_now(seconds=1.0):
    """Other processes' CPU use (in CPUs) measured over the next `seconds`."""
    with ForeignLoad() as load:
        time.sleep(seconds)
    return load.cpus


def wait_until_quiet(max_wait, log, threshold=None):
    """Sleep until other processes use less than `threshold` CPUs (at most max_wait s)."""
    threshold = QUIET_THRESHOLD if threshold is None else threshold
    waited = 0.0
    while waited < max_wait:
        busy = foreign_load_now(0.5)
        if busy < threshold:
            return True
        if waited == 0.0:
            log(f"    machine busy (other processes use {busy:.2f} CPUs); waiting up to "
                f"{max_wait:.0f} s for it to become quiet ...")
        waited += 0.5 + 4.0
        time.sleep(4.0)
    return False


def _machine_busy_seconds():
    try:
        import os

        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _own_cpu_seconds():
    import os

    t = os.times()
    return t.user + t.system


def _time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------------- runner
def run_case(case, X64, iters, repeats, gflops, log, min_seconds=MIN_SECONDS, wait_quiet=0.0):
    n1, n2 = iters
    X = X64 if case.dtype == "float64" else X64.astype(case.dtype)
    init = initial_parameters(X64, case.n_components, case.covariance_type)
    res = Result(
        case=case.name, n_samples=case.n_samples, n_features=case.n_features,
        n_components=case.n_components, covariance_type=case.covariance_type,
        dtype=case.dtype, iters=tuple(iters), repeats=repeats,
        data_mib=X.nbytes / MiB, flops_per_iter=case.flops_per_iteration(),
        matmul_gflops=gflops[case.dtype],
    )
    fitted = {}
    for library in ("sklearn", "bayesgmm"):
        times = {n1: [], n2: []}
        disturbed = {n1: [], n2: []}
        spent, rep, n_disturbed, kept_busy = 0.0, 0, 0, 0.0
        # At least `repeats` clean pairs; fast cases are repeated up to MAX_REPEATS
        # times or until MIN_SECONDS have been spent, so their minima are stable
        # too. A pair during which other processes used CPU is set aside and redone
        # (up to MAX_DISTURBED times), after waiting for the machine to be quiet.
        while rep < repeats or (spent < min_seconds and rep < MAX_REPEATS):
            if wait_quiet:
                wait_until_quiet(wait_quiet, log)
            pair, pair_busy = {}, 0.0
            for max_iter in (n1, n2):
                elapsed, model, busy = timed_fit(library, case, init, X, max_iter)
                pair[max_iter] = elapsed
                if not np.isnan(busy):
                    pair_busy = max(pair_busy, busy)
                spent += elapsed
                if max_iter == n2:
                    fitted[library] = model
            if pair_busy < QUIET_THRESHOLD or n_disturbed >= MAX_DISTURBED:
                for k, v in pair.items():
                    times[k].append(v)
                rep += 1
                kept_busy = max(kept_busy, pair_busy)
            else:
                n_disturbed += 1
                for k, v in pair.items():
                    disturbed[k].append(v)
        if n_disturbed:
            log(f"    {library}: {n_disturbed} repetition(s) disturbed by other processes "
                "were discarded")
        res.foreign_load_cpus = max(
            0.0 if np.isnan(res.foreign_load_cpus) else res.foreign_load_cpus, kept_busy)
        best1, best2 = min(times[n1]), min(times[n2])
        per_iter = (best2 - best1) / (n2 - n1)
        setattr(res, f"{library}_times", {str(k): v for k, v in times.items()})
        setattr(res, f"{library}_s_per_iter", per_iter)
        setattr(res, f"{library}_setup_s", best1 - n1 * per_iter)
        peak = peak_memory_of_fit(library, case, init, X, n1)
        setattr(res, f"{library}_peak_mib", peak / MiB)
        log(
            f"    {library:8s} fit({n1} it) best {best1:8.3f} s, fit({n2} it) best "
            f"{best2:8.3f} s -> {per_iter:.4f} s/iter (set-up + final pass "
            f"{best1 - n1 * per_iter:.3f} s); peak extra {peak / MiB:.1f} MiB"
        )
    if res.foreign_load_cpus >= QUIET_THRESHOLD:
        log(f"    WARNING: other processes used up to {res.foreign_load_cpus:.2f} CPUs during "
            "the kept timings of this case; they are disturbed.")
    res.bayesgmm_gflops = res.flops_per_iter / res.bayesgmm_s_per_iter / 1e9
    res.loglik_sklearn = model_log_likelihood(X64, fitted["sklearn"], case.covariance_type)
    res.loglik_bayesgmm = model_log_likelihood(X64, fitted["bayesgmm"], case.covariance_type)
    res.loglik_rel_diff = abs(res.loglik_bayesgmm - res.loglik_sklearn) / abs(res.loglik_sklearn)
    res.max_abs_mean_diff = float(
        np.max(np.abs(fitted["bayesgmm"].means_ - fitted["sklearn"].means_))
    )
    log(
        f"    log-likelihood after {n2} iterations: sklearn {res.loglik_sklearn:.8e}, "
        f"bayesgmm {res.loglik_bayesgmm:.8e} (rel. diff {res.loglik_rel_diff:.1e}; "
        f"max |means diff| {res.max_abs_mean_diff:.1e})"
    )
    return res


HEADER = (
    "case", "sklearn s/iter", "bayesgmm s/iter", "speed-up", "sklearn MiB",
    "bayesgmm MiB", "mem ratio", "GFLOP/s (matmul)", "loglik rel diff",
)


def table_rows(results):
    for r in results:
        yield (
            r.case,
            f"{r.sklearn_s_per_iter:.4f}",
            f"{r.bayesgmm_s_per_iter:.4f}",
            f"{r.speedup:.1f}x",
            f"{r.sklearn_peak_mib:.1f}",
            f"{r.bayesgmm_peak_mib:.1f}",
            f"{r.memory_ratio:.2f}",
            f"{r.bayesgmm_gflops:.1f} ({r.matmul_gflops:.0f})",
            f"{r.loglik_rel_diff:.1e}",
        )


def format_text(results):
    rows = [HEADER, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = []
    for j, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(results):
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines)


def environment():
    import sklearn
    from threadpoolctl import threadpool_info

    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = info.get("model name", platform.processor() or "unknown")
    if "cpu family" in info:
        cpu += f" (family {info['cpu family']}, model {info.get('model', '?')}"
        cpu += f", {float(info.get('cpu MHz', 'nan')):.0f} MHz"
        flags = set(info.get("flags", "").split())
        cpu += ", AVX-512" if "avx512f" in flags else (", AVX2" if "avx2" in flags else "")
        cpu += ", virtual machine)" if "hypervisor" in flags else ")"
    blas = [
        f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, "
        f"{p.get('num_threads')} threads, {p.get('threading_layer')})"
        for p in threadpool_info() if p.get("user_api") == "blas"
    ]
    try:
        import os

        n_cpu = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        import os

        n_cpu = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) / 2**20
    except OSError:
        mem = float("nan")
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu,
        "cpus": n_cpu,
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "bayesgmm": bayesgmm.__version__,
        "blas": "; ".join(blas) or "unknown",
    }


def select_cases(patterns):
    if not patterns:
        return list(CASES)
    chosen = []
    for case in CASES:
        if any(fnmatch.fnmatch(case.name, p) or p == case.name for p in patterns):
            chosen.append(case)
    if not chosen:
        sys.exit(f"No case matches {patterns}; cases are: {[c.name for c in CASES]}")
    return chosen


def iterations_and_repeats(args):
    """(N1, N2) fit lengths and repetitions from ``--iters``, ``--repeats``, ``--quick``."""
    iters = tuple(int(v) for v in args.iters.split(",")) if args.iters else (
        (1, 3) if args.quick else (2, 10))
    if len(iters) != 2 or not 1 <= iters[0] < iters[1]:
        sys.exit("--iters must be N1,N2 with 1 <= N1 < N2")
    return iters, args.repeats or (2 if args.quick else 3)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: n_samples / 50, max_iter 1 and 3, fewer repeats")
    parser.add_argument("--cases", default="",
                        help="comma-separated case names or shell patterns (see --list)")
    parser.add_argument("--list", action="store_true", help="list the case names and exit")
    parser.add_argument("--iters", default=None,
                        help="N1,N2: the two max_iter values timed (default 2,10; quick 1,3)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="minimum repetitions of each timed fit, best kept (default 3; quick 2); "
                             f"fast cases repeat until {MIN_SECONDS:g} s or {MAX_REPEATS} repetitions")
    parser.add_argument("--wait-quiet", type=float, default=120.0, metavar="SECONDS",
                        help="before each timed repetition wait up to this long for other "
                             "processes to leave the CPUs idle (default 120; 0 disables)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    if args.list:
        print("\n".join(c.name for c in CASES))
        return 0
    cases = select_cases([p.strip() for p in args.cases.split(",") if p.strip()])
    iters, repeats = iterations_and_repeats(args)

    def log(message=""):
        print(message, flush=True)

    env = environment()
    log("EM per-iteration benchmark: bayesgmm.GaussianMixtureEM vs sklearn GaussianMixture")
    for key, value in env.items():
        log(f"  {key:10s} {value}")
    for _attempt in range(5):
        if args.wait_quiet:
            wait_until_quiet(args.wait_quiet, log)
        with ForeignLoad() as load:
            gflops = {"float64": matmul_gflops(np.float64), "float32": matmul_gflops(np.float32)}
        if load.cpus < QUIET_THRESHOLD:
            break
    log(f"  matmul     2000x2000 @ 2000x2000: float64 {gflops['float64']:.1f} GFLOP/s, "
        f"float32 {gflops['float32']:.1f} GFLOP/s (best of 5)")
    log(f"  load       other processes: {load.cpus:.2f} CPUs during the matmul test; "
        f"load average {open('/proc/loadavg').read().split()[0]}")
    log(f"  timing     max_iter={iters[0]} and {iters[1]}, tol=0, best of {repeats}"
        + ("  [QUICK smoke run: reduced n]" if args.quick else ""))
    log()

    results = []
    data_cache = {}
    for case in cases:
        if args.quick:
            case = Case(max(2_000, case.n_samples // 50), case.n_features,
                        case.n_components, case.covariance_type, case.dtype)
        key = (case.n_samples, case.n_features, case.n_components)
        if key not in data_cache:
            data_cache.clear()  # keep one data set in memory at a time
            gc.collect()
            data_cache[key] = simulate(*key)
        log(f"{case.name}  ({case.dtype}, {data_cache[key].nbytes / MiB:.0f} MiB of float64 data)")
        result = run_case(case, data_cache[key], iters, repeats, gflops, log,
                          min_seconds=0.5 if args.quick else MIN_SECONDS,
                          wait_quiet=args.wait_quiet)
        results.append(result)
        log()

    log(format_text(results))
    log()
    worst = max((r.foreign_load_cpus for r in results), default=0.0)
    log(f"Other processes' CPU use during the kept timings: at most {worst:.2f} CPUs"
        + ("  -- WARNING: timings disturbed, rerun on a quiet machine." if worst > 0.1 else
           " (quiet machine)."))
    log("s/iter: (best fit(N2) - best fit(N1)) / (N2 - N1). MiB: tracemalloc peak of one fit "
        "beyond the input. mem ratio: bayesgmm / sklearn. GFLOP/s: bayesgmm's matrix-product "
        "flops per iteration / s per iteration (machine matmul rate in brackets, same dtype).")
    target = [r for r in results if r.case == TARGET_CASE]
    if target:
        r = target[0]
        ok_speed = r.speedup >= TARGET_SPEEDUP
        ok_mem = r.memory_ratio <= TARGET_MEMORY_RATIO
        log(f"Target on {TARGET_CASE}: speed-up {r.speedup:.1f}x (>= {TARGET_SPEEDUP:g}x: "
            f"{'MET' if ok_speed else 'MISSED'}), memory ratio {r.memory_ratio:.2f} "
            f"(<= {TARGET_MEMORY_RATIO:g}: {'MET' if ok_mem else 'MISSED'})")
    if args.json:
        payload = {
            "environment": env,
            "matmul_gflops": gflops,
            "matmul_foreign_load_cpus": load.cpus,
            "quick": args.quick,
            "results": [asdict(r) | {"speedup": r.speedup, "memory_ratio": r.memory_ratio}
                        for r in results],
            "markdown": format_markdown(results),
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
        log(f"Results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
