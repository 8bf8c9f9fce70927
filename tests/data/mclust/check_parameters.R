# check_parameters.R -- checks mclust_parameters.csv against the other files
# that make_reference.R writes.
#
# Run from the repository root, after make_reference.R:
#
#     Rscript tests/data/mclust/check_parameters.R
#
# It reads only the committed CSV files (the parameters as written, rounded
# to 17 significant digits, and the data sets as written) and checks, for
# every row of mclust_reference.csv:
#
#   - a cell has parameters if and only if its status is "ok", and an ok cell
#     has exactly G components, each with one pro, d means and d x d sigma
#     entries, nothing missing and no duplicates;
#   - pro is positive and sums to 1 (to 1e-12);
#   - each sigma is symmetric (to 1e-12 relative to its largest entry) and
#     positive definite (its Cholesky factorisation succeeds);
#   - the log-likelihood of the data under the saved parameters is computed
#     twice, directly (Cholesky factor, log-sum-exp over components) and with
#     mclust's dens(..., logarithm = TRUE) (as a VVV model, or V in 1-D); the
#     two must agree to 1e-12 relative;
#   - and it is compared with the table's loglik (fit$loglik).
#
# Why that last comparison is not "equal to 1e-8": Mclust() (in
# summaryMclustBIC) runs EM with me(), whose loglik is the log-likelihood of
# me()'s parameters; but when sum((pro - colMeans(z))^2) > sqrt(.Machine$
# double.eps) it replaces those parameters by mstep(z), one more M-step, and
# keeps me()'s loglik (the replacement is skipped if that mstep() returns a
# nonzero code).  fit$parameters, which are what mclust_parameters.csv holds,
# are then one M-step past the point whose log-likelihood is fit$loglik, and
# their log-likelihood is a little higher.  (Checked once by hand for this
# run, mclust 6.0.0: in all 217 cells with G > 1, fit$loglik is the
# log-likelihood of me()'s parameters to 1.4e-15; the G = 1 fits are closed
# form.  In the 74 cells (44 of them G = 1) where the condition did not hold
# the saved parameters reproduce loglik to 1e-15; it held in the other 187,
# and the 137 cells that differ by more than 1e-8 are all among them.)  The
# check asserts what holds:
#
#     0 <= (loglik(saved) - loglik) / (1 + |loglik|) <= emControl()$tol[1]
#
# (1e-5 is mclust's default EM tolerance, the one the fits used, measured in
# the same units), with 1e-12 allowed below 0 for rounding.  The lower bound
# is EM's ascent property (an M-step does not lower the log-likelihood); the
# upper bound is not a theorem (the extra step could in principle gain more
# than the stopping tolerance), but it holds for every cell here.  The script
# prints how many cells agree with loglik to 1e-8 relative and the largest
# relative discrepancy.
#
# It prints its summary and stops with an error if any check fails.

suppressPackageStartupMessages(library(mclust))

args <- commandArgs(trailingOnly = FALSE)
file_arg <- sub("^--file=", "", args[grep("^--file=", args)])
dir <- if (length(file_arg) == 1) dirname(normalizePath(file_arg)) else
  file.path("tests", "data", "mclust")

tol_pro <- 1e-12
tol_sym <- 1e-12
tol_methods <- 1e-12  # direct vs mclust dens()
tol_below <- 1e-12    # loglik(saved) may fall below loglik by rounding only
tol_em <- emControl()$tol[1]  # 1e-5: mclust's EM tolerance
tol_report <- 1e-8    # only counted and reported

ref <- read.csv(file.path(dir, "mclust_reference.csv"),
                stringsAsFactors = FALSE)
par <- read.csv(file.path(dir, "mclust_parameters.csv"),
                stringsAsFactors = FALSE)
stopifnot(identical(names(par), c("dataset", "model", "G", "parameter",
                                  "component", "i", "j", "value")))
stopifnot(all(par$parameter %in% c("pro", "mean", "sigma")))

data <- lapply(setNames(nm = unique(ref$dataset)), function(name)
  as.matrix(read.csv(file.path(dir, paste0(name, ".csv")))))

failures <- character(0)
fail <- function(...) failures <<- c(failures, paste0(...))

# Log-likelihood of X under a Gaussian mixture, computed directly.
loglik_direct <- function(X, pro, mu, sigma) {
  n <- nrow(X); d <- ncol(X); G <- length(pro)
  logp <- matrix(NA_real_, n, G)
  for (k in seq_len(G)) {
    L <- chol(sigma[, , k])                  # upper triangular, S = L'L
    z <- backsolve(L, t(X) - mu[, k], transpose = TRUE)
    logdet <- 2 * sum(log(diag(L)))
    logp[, k] <- log(pro[k]) -
      0.5 * (d * log(2 * pi) + logdet + colSums(z * z))
  }
  m <- apply(logp, 1, max)
  sum(m + log(rowSums(exp(logp - m))))
}

cell_key <- paste(par$dataset, par$model, par$G)
ref_key <- paste(ref$dataset, ref$model, ref$G)
extra <- setdiff(unique(cell_key), ref_key[ref$status == "ok"])
if (length(extra)) fail("parameters for cells that are not ok: ",
                        paste(extra, collapse = ", "))

max_pro <- 0; max_sym <- 0; max_rel <- 0; max_methods <- 0
min_gap <- Inf; max_gap <- -Inf; n_within <- 0
worst_cell <- NA_character_
n_cells <- 0
for (r in seq_len(nrow(ref))) {
  key <- ref_key[r]
  rows <- par[cell_key == key, , drop = FALSE]
  if (ref$status[r] != "ok") {
    if (nrow(rows)) fail(key, ": status is not ok but has parameters")
    next
  }
  if (!nrow(rows)) { fail(key, ": no parameters"); next }
  n_cells <- n_cells + 1
  X <- data[[ref$dataset[r]]]
  d <- ncol(X); G <- ref$G[r]
  if (d != ref$d[r] || nrow(X) != ref$n[r]) fail(key, ": data size differs")
  if (nrow(rows) != G * (1 + d + d * d)) {
    fail(key, ": ", nrow(rows), " rows, expected ", G * (1 + d + d * d))
    next
  }
  if (any(is.na(rows$value))) { fail(key, ": NA values"); next }
  pro <- rep(NA_real_, G)
  mu <- matrix(NA_real_, d, G)
  sigma <- array(NA_real_, c(d, d, G))
  for (q in seq_len(nrow(rows))) {
    k <- rows$component[q]; i <- rows$i[q]; j <- rows$j[q]
    v <- rows$value[q]
    ok_k <- !is.na(k) && k >= 1 && k <= G
    if (rows$parameter[q] == "pro" && ok_k && is.na(i) && is.na(j)) {
      if (!is.na(pro[k])) fail(key, ": duplicate pro ", k)
      pro[k] <- v
    } else if (rows$parameter[q] == "mean" && ok_k && is.na(j) &&
               !is.na(i) && i >= 1 && i <= d) {
      if (!is.na(mu[i, k])) fail(key, ": duplicate mean ", k, " ", i)
      mu[i, k] <- v
    } else if (rows$parameter[q] == "sigma" && ok_k && !is.na(i) &&
               !is.na(j) && i >= 1 && i <= d && j >= 1 && j <= d) {
      if (!is.na(sigma[i, j, k])) fail(key, ": duplicate sigma ", k)
      sigma[i, j, k] <- v
    } else {
      fail(key, ": bad row ", q)
    }
  }
  if (anyNA(pro) || anyNA(mu) || anyNA(sigma)) {
    fail(key, ": parameters incomplete"); next
  }

  if (any(pro <= 0)) fail(key, ": pro not positive")
  e_pro <- abs(sum(pro) - 1)
  max_pro <- max(max_pro, e_pro)
  if (e_pro > tol_pro) fail(key, ": pro sums to ", sprintf("%.17g", sum(pro)))

  pd <- TRUE
  for (k in seq_len(G)) {
    S <- sigma[, , k, drop = TRUE]
    S <- matrix(S, d, d)
    e_sym <- max(abs(S - t(S))) / max(abs(S))
    max_sym <- max(max_sym, e_sym)
    if (e_sym > tol_sym) fail(key, ": sigma ", k, " not symmetric (", e_sym, ")")
    if (inherits(tryCatch(chol(S), error = function(e) e), "error") ||
        min(eigen(S, symmetric = TRUE, only.values = TRUE)$values) <= 0) {
      fail(key, ": sigma ", k, " not positive definite"); pd <- FALSE
    }
  }
  if (!pd) next

  ll <- loglik_direct(X, pro, mu, sigma)

  # The same with mclust's own density code.
  if (d == 1) {
    p <- list(pro = pro, mean = as.vector(mu),
              variance = list(modelName = "V", d = 1, G = G,
                              sigmasq = as.vector(sigma)))
    ld <- dens(as.vector(X), modelName = "V", parameters = p, logarithm = TRUE)
  } else {
    chols <- array(NA_real_, c(d, d, G))
    for (k in seq_len(G)) chols[, , k] <- chol(matrix(sigma[, , k], d, d))
    p <- list(pro = pro, mean = mu,
              variance = list(modelName = "VVV", d = d, G = G,
                              sigma = sigma, cholsigma = chols))
    ld <- dens(X, modelName = "VVV", parameters = p, logarithm = TRUE)
  }
  e_methods <- abs(sum(ld) - ll) / abs(ll)
  max_methods <- max(max_methods, e_methods)
  if (is.na(e_methods) || e_methods > tol_methods)
    fail(key, ": direct loglik ", sprintf("%.17g", ll), " vs dens() ",
         sprintf("%.17g", sum(ld)))

  ref_ll <- ref$loglik[r]
  rel <- abs(ll - ref_ll) / abs(ref_ll)
  if (!is.na(rel) && rel > max_rel) { max_rel <- rel; worst_cell <- key }
  if (!is.na(rel) && rel <= tol_report) n_within <- n_within + 1
  gap <- (ll - ref_ll) / (1 + abs(ref_ll))
  min_gap <- min(min_gap, gap); max_gap <- max(max_gap, gap)
  if (is.na(gap) || gap < -tol_below || gap > tol_em)
    fail(key, ": loglik of the saved parameters ", sprintf("%.17g", ll),
         " vs loglik ", sprintf("%.17g", ref_ll), " (gap ", gap, ")")
}

cat(sprintf("%d cells with parameters (%d rows), %d cells not ok\n",
            n_cells, nrow(par), sum(ref$status != "ok")))
cat(sprintf("max |sum(pro) - 1|: %.3g\n", max_pro))
cat(sprintf("max relative asymmetry of sigma: %.3g\n", max_sym))
cat(sprintf("max relative difference, direct vs mclust dens(): %.3g\n",
            max_methods))
cat(sprintf(paste0("loglik(saved) - loglik, over 1 + |loglik|: ",
                   "min %.3g, max %.3g (allowed %.3g .. %.3g)\n"),
            min_gap, max_gap, -tol_below, tol_em))
cat(sprintf("max relative |loglik(saved) - loglik| / |loglik|: %.3g (%s)\n",
            max_rel, worst_cell))
cat(sprintf("cells with |loglik(saved) - loglik| <= %.0e |loglik|: %d of %d\n",
            tol_report, n_within, n_cells))
if (length(failures)) {
  cat(failures, sep = "\n")
  stop(length(failures), " check(s) failed")
}
cat("all checks passed\n")
