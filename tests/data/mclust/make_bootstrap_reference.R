# make_bootstrap_reference.R -- R mclust's bootstrap standard errors and
# confidence intervals (MclustBootstrap) for bayesgmm's tests.
#
# Run from the repository root (needs R with mclust; about half a minute):
#
#     Rscript tests/data/mclust/make_bootstrap_reference.R
#
# For the Old Faithful data (read from the committed faithful.csv) it fits
#
#     fit <- Mclust(X, G = 3, modelNames = "EEE", verbose = FALSE)
#
# and for each resampling type t in "bs", "wlbs", "pb", "jk" calls
#
#     set.seed(seed[t])
#     boot <- MclustBootstrap(fit, nboot = 999, type = t, verbose = FALSE)
#
# ("jk" always makes n = 272 leave-one-out replicates, whatever nboot says),
# then summary(boot, what = "se"), summary(boot, what = "ci", conf.level =
# 0.95) and summary(boot, what = "ave").  It writes
#
#   mclust_bootstrap_reference.csv      long format: type, parameter,
#                                       component, i, j, statistic, value
#   mclust_bootstrap_bs_replicates.csv  the raw replicates of type "bs":
#                                       replicate, parameter, component, i, j,
#                                       value
#
# and checks that R and the packages are the versions in VERSIONS.txt.  All
# numbers are written with 17 significant digits ("%.17g"); missing values are
# NA.  The RNG is R's default (Mersenne-Twister, Inversion, Rejection).

suppressPackageStartupMessages(library(mclust))

args <- commandArgs(trailingOnly = FALSE)
file_arg <- sub("^--file=", "", args[grep("^--file=", args)])
out_dir <- if (length(file_arg) == 1) dirname(normalizePath(file_arg)) else
  file.path("tests", "data", "mclust")

source(file.path(out_dir, "common.R"))  # fmt, write_table, check_versions
check_versions(out_dir)
RNGkind("Mersenne-Twister", "Inversion", "Rejection")

X <- as.matrix(read.csv(file.path(out_dir, "faithful.csv")))
G <- 3; d <- ncol(X); n <- nrow(X)
fit <- Mclust(X, G = G, modelNames = "EEE", verbose = FALSE)
stopifnot(fit$G == G, fit$modelName == "EEE")

types <- c("bs", "wlbs", "pb", "jk")
seeds <- c(bs = 20261201L, wlbs = 20261202L, pb = 20261203L, jk = 20261204L)
nboot <- 999L
conf_level <- 0.95

# Long-format rows.  pro: component k, i = j = NA; mean: coordinate i, j = NA;
# variance: entry (i, j) of the component's covariance matrix.
rows <- list()
add <- function(type, parameter, component, i, j, statistic, value) {
  rows[[length(rows) + 1]] <<- data.frame(
    type = type, parameter = parameter, component = as.integer(component),
    i = as.integer(i), j = as.integer(j), statistic = statistic,
    value = as.numeric(value), stringsAsFactors = FALSE)
}
# pro: vector G; mean: d x G; variance: d x d x G (or, with diag_only, d x G:
# the diagonal entries, as summary(what = "ci") gives them).
add_params <- function(type, statistic, pro, mean, variance,
                       diag_only = FALSE) {
  for (k in seq_len(G)) {
    add(type, "pro", k, NA, NA, statistic, pro[k])
    for (i in seq_len(d)) add(type, "mean", k, i, NA, statistic, mean[i, k])
    for (i in seq_len(d)) for (j in seq_len(d)) {
      if (diag_only) {
        if (i == j) add(type, "variance", k, i, j, statistic, variance[i, k])
      } else {
        add(type, "variance", k, i, j, statistic, variance[i, j, k])
      }
    }
  }
}

# The fit being bootstrapped, as MclustBootstrap stores it
# (summary(fit)[c("pro", "mean", "variance")]), in mclust's component order.
par <- summary(fit)[c("pro", "mean", "variance")]
add_params("fit", "estimate", par$pro, par$mean, par$variance)
add("fit", "loglik", NA, NA, NA, "estimate", fit$loglik)

boots <- list()
for (t in types) {
  set.seed(seeds[[t]])
  boot <- MclustBootstrap(fit, nboot = nboot, type = t, verbose = FALSE)
  boots[[t]] <- boot
  stopifnot(boot$type == t)
  na_rows <- sum(!stats::complete.cases(cbind(
    boot$pro, matrix(boot$mean, nrow = nrow(boot$pro)),
    matrix(boot$variance, nrow = nrow(boot$pro)))))
  add(t, "replicates", NA, NA, NA, "seed", seeds[[t]])
  add(t, "replicates", NA, NA, NA, "nboot", boot$nboot)
  add(t, "replicates", NA, NA, NA, "rows", nrow(boot$pro))
  add(t, "replicates", NA, NA, NA, "nonfit", boot$nonfit)
  add(t, "replicates", NA, NA, NA, "na_rows", na_rows)
  se <- summary(boot, what = "se")
  ci <- summary(boot, what = "ci", conf.level = conf_level)
  ave <- summary(boot, what = "ave")
  add_params(t, "se", se$pro, se$mean, se$variance)
  add_params(t, "ci_lower", ci$pro[1, ], ci$mean[1, , ], ci$variance[1, , ],
             diag_only = TRUE)
  add_params(t, "ci_upper", ci$pro[2, ], ci$mean[2, , ], ci$variance[2, , ],
             diag_only = TRUE)
  add_params(t, "ave", ave$pro, ave$mean, ave$variance)
  cat(sprintf("%s: %d rows, nonfit %d, NA rows %d; se(pro) = %s\n", t,
              nrow(boot$pro), boot$nonfit, na_rows,
              paste(sprintf("%.5g", se$pro), collapse = ", ")))
}
out <- do.call(rbind, rows)
rownames(out) <- NULL
write_table(out, file.path(out_dir, "mclust_bootstrap_reference.csv"))

# Raw replicates of type "bs": per replicate b, per component k: pro, mean
# i = 1..d, variance (i, j) with j varying fastest (the layout of
# mclust_parameters.csv, with replicate in place of the cell).
bs <- boots[["bs"]]
B <- nrow(bs$pro)
per_k <- 1 + d + d * d
rep_rows <- vector("list", B)
for (b in seq_len(B)) {
  value <- unlist(lapply(seq_len(G), function(k)
    c(bs$pro[b, k], bs$mean[b, , k], as.vector(t(bs$variance[b, , , k])))),
    use.names = FALSE)
  rep_rows[[b]] <- data.frame(
    replicate = as.integer(b),
    parameter = rep(c("pro", rep("mean", d), rep("variance", d * d)), G),
    component = rep(seq_len(G), each = per_k),
    i = as.integer(rep(c(NA, seq_len(d), rep(seq_len(d), each = d)), G)),
    j = as.integer(rep(c(NA, rep(NA, d), rep(seq_len(d), times = d)), G)),
    value = value, stringsAsFactors = FALSE)
}
reps <- do.call(rbind, rep_rows)
rownames(reps) <- NULL
write_table(reps, file.path(out_dir, "mclust_bootstrap_bs_replicates.csv"))
cat(sprintf("%d summary rows, %d bs replicate rows\n", nrow(out), nrow(reps)))
