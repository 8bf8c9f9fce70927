# mclust_bootstrap_time.R -- wall time of R mclust's nonparametric bootstrap,
# the peer figure for bayesgmm's bootstrap benchmark.
#
#     Rscript benchmarks/mclust_bootstrap_time.R [--nboot=999] [--fit-reps=20]
#                                                [--seed=20261201]
#
# On Old Faithful (tests/data/mclust/faithful.csv) it times
#
#     fit <- Mclust(X, G = 3, modelNames = "EEE", verbose = FALSE)
#     MclustBootstrap(fit, nboot = 999, type = "bs", verbose = FALSE)
#
# The fit is timed --fit-reps times (it takes a few hundredths of a second;
# the first call is included and also reported alone); the bootstrap once,
# after set.seed(seed) (the seed of make_bootstrap_reference.R, so the
# replicates are those of mclust_bootstrap_bs_replicates.csv).  It prints one
# JSON line on stdout:
#
#     {"tool": "R mclust", ..., "fit_seconds": ..., "bootstrap_seconds": ...}
#
# Elapsed (wall-clock) seconds, from proc.time().  Run it on an otherwise idle
# machine.

suppressPackageStartupMessages(library(mclust))

args <- commandArgs(trailingOnly = FALSE)
opt <- function(name, default) {
  hit <- grep(paste0("^--", name, "="), args, value = TRUE)
  if (length(hit)) as.numeric(sub(paste0("^--", name, "="), "", hit[1])) else
    default
}
nboot <- as.integer(opt("nboot", 999))
fit_reps <- as.integer(opt("fit-reps", 20))
seed <- as.integer(opt("seed", 20261201))

file_arg <- sub("^--file=", "", args[grep("^--file=", args)])
root <- if (length(file_arg) == 1) dirname(dirname(normalizePath(file_arg))) else
  "."
X <- as.matrix(read.csv(file.path(root, "tests", "data", "mclust",
                                  "faithful.csv")))

elapsed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  force(expr)
  proc.time()[["elapsed"]] - t0
}

fit_times <- numeric(fit_reps)
for (r in seq_len(fit_reps)) {
  fit_times[r] <- elapsed(
    fit <- Mclust(X, G = 3, modelNames = "EEE", verbose = FALSE))
}
RNGkind("Mersenne-Twister", "Inversion", "Rejection")
set.seed(seed)
boot_seconds <- elapsed(
  boot <- MclustBootstrap(fit, nboot = nboot, type = "bs", verbose = FALSE))
se_pro <- apply(boot$pro, 2, sd, na.rm = TRUE)

num <- function(x) sprintf("%.6g", x)
json <- paste0(
  "{",
  "\"tool\": \"R mclust\", ",
  "\"r_version\": \"", R.version$major, ".", R.version$minor, "\", ",
  "\"mclust_version\": \"", as.character(packageVersion("mclust")), "\", ",
  "\"dataset\": \"faithful\", \"model\": \"EEE\", \"G\": 3, ",
  "\"n\": ", nrow(X), ", \"type\": \"bs\", \"nboot\": ", nboot, ", ",
  "\"seed\": ", seed, ", \"nonfit\": ", boot$nonfit, ", ",
  "\"fit_reps\": ", fit_reps, ", ",
  "\"fit_seconds\": ", num(median(fit_times)), ", ",
  "\"fit_seconds_min\": ", num(min(fit_times)), ", ",
  "\"fit_seconds_first\": ", num(fit_times[1]), ", ",
  "\"bootstrap_seconds\": ", num(boot_seconds), ", ",
  "\"bootstrap_seconds_per_replicate\": ", num(boot_seconds / nboot), ", ",
  "\"se_pro\": [", paste(num(se_pro), collapse = ", "), "]",
  "}")
cat(json, "\n", sep = "")
