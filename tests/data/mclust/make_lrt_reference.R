# make_lrt_reference.R -- R mclust's bootstrap likelihood ratio test for the
# number of components (mclustBootstrapLRT), for bayesgmm's tests.
#
# Run from the repository root (needs R with mclust; a few minutes):
#
#     Rscript tests/data/mclust/make_lrt_reference.R
#
# For two tests (data read from the committed CSV files),
#
#     set.seed(seed)
#     mclustBootstrapLRT(X, modelName = m, nboot = 999, maxG = maxG,
#                        verbose = FALSE)
#
# with diabetes VVV, maxG = 4 (tests 1 vs 2, ..., 4 vs 5) and faithful EEE,
# maxG = 5 (1 vs 2, ..., 5 vs 6).  With maxG given, mclustBootstrapLRT does all
# maxG tests and does not stop at the first non-significant one.  It writes
#
#   mclust_lrt_reference.csv  one row per (test, G): the observed LRTS
#                             2 (loglik(G+1) - loglik(G)), the bootstrap
#                             p-value, and the mean and quantiles of the
#                             bootstrap LRTS values
#   mclust_lrt_replicates.csv the bootstrap LRTS values: test, G, replicate,
#                             value
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

tests <- list(
  list(test = "diabetes VVV", dataset = "diabetes", model = "VVV", maxG = 4,
       seed = 20261211L),
  list(test = "faithful EEE", dataset = "faithful", model = "EEE", maxG = 5,
       seed = 20261212L))
nboot <- 999L
probs <- c(0.05, 0.25, 0.5, 0.75, 0.95)

ref_rows <- list()
rep_rows <- list()
for (tt in tests) {
  X <- as.matrix(read.csv(file.path(out_dir, paste0(tt$dataset, ".csv"))))
  set.seed(tt$seed)
  t0 <- proc.time()[["elapsed"]]
  lrt <- mclustBootstrapLRT(X, modelName = tt$model, nboot = nboot,
                            maxG = tt$maxG, verbose = FALSE)
  secs <- proc.time()[["elapsed"]] - t0
  # The log-likelihoods the observed LRTS is made of: mclustBootstrapLRT
  # takes them from summary(mclustBIC(X, G = 1:(maxG + 1), ...)), i.e. the
  # Mclust fits of mclust_reference.csv.
  bic <- mclustBIC(X, G = seq_len(tt$maxG + 1), modelNames = tt$model,
                   verbose = FALSE)
  loglik <- vapply(seq_len(tt$maxG + 1), function(g)
    summary(bic, X, G = g, modelNames = tt$model)$loglik, numeric(1))
  for (g in lrt$G) {
    v <- lrt$boot[, g]
    q <- quantile(v, probs = probs, na.rm = TRUE, names = FALSE)
    ref_rows[[length(ref_rows) + 1]] <- data.frame(
      test = tt$test, dataset = tt$dataset, model = tt$model,
      G = as.integer(g), G1 = as.integer(g + 1),
      loglik0 = loglik[g], loglik1 = loglik[g + 1],
      lrts = lrt$obs[g], p_value = lrt$p.value[g],
      nboot = as.integer(nrow(lrt$boot)), n_na = as.integer(sum(is.na(v))),
      n_ge_obs = as.integer(sum(v >= lrt$obs[g], na.rm = TRUE)),
      boot_mean = mean(v, na.rm = TRUE),
      boot_q05 = q[1], boot_q25 = q[2], boot_q50 = q[3], boot_q75 = q[4],
      boot_q95 = q[5], boot_min = min(v, na.rm = TRUE),
      boot_max = max(v, na.rm = TRUE),
      n_negative = as.integer(sum(v < 0, na.rm = TRUE)),
      seed = tt$seed, maxG = as.integer(tt$maxG),
      stringsAsFactors = FALSE)
    rep_rows[[length(rep_rows) + 1]] <- data.frame(
      test = tt$test, G = as.integer(g), replicate = seq_along(v), value = v,
      stringsAsFactors = FALSE)
  }
  if (!isTRUE(all.equal(lrt$obs, 2 * diff(loglik)[lrt$G], tolerance = 1e-12)))
    stop("observed LRTS of ", tt$test, " is not 2 diff(loglik)")
  cat(sprintf("%s (%.1f s):\n", tt$test, secs))
  print(data.frame(G = paste(lrt$G, "vs", lrt$G + 1), LRTS = lrt$obs,
                   p.value = lrt$p.value))
}
ref <- do.call(rbind, ref_rows)
rownames(ref) <- NULL
write_table(ref, file.path(out_dir, "mclust_lrt_reference.csv"))
reps <- do.call(rbind, rep_rows)
rownames(reps) <- NULL
write_table(reps, file.path(out_dir, "mclust_lrt_replicates.csv"))
cat(sprintf("%d tests, %d replicate rows\n", nrow(ref), nrow(reps)))
