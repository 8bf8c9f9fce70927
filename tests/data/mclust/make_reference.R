# make_reference.R -- R mclust reference tables for bayesgmm's tests.
#
# Run from the repository root:
#
#     Rscript tests/data/mclust/make_reference.R
#
# It needs R with the mclust and MASS packages (Debian: r-cran-mclust,
# r-cran-mass).  CI does not need R: the CSV files this script writes are
# committed, and the Python tests only read them.
#
# For each data set (faithful, iris, diabetes, galaxies/1000) and each
# covariance family (the 14 multivariate ones, or "E" and "V" in 1-D) and
# G = 1..6 it calls
#
#     Mclust(X, G = G, modelNames = family, verbose = FALSE)
#
# with mclust's defaults otherwise (the start is model-based hierarchical
# clustering on SVD-transformed data), and writes one row per cell to
# mclust_reference.csv.  It also writes the data sets themselves
# (<dataset>.csv), the parameter estimates of every fitted cell
# (mclust_parameters.csv) and the versions used (VERSIONS.txt).
# check_parameters.R checks mclust_parameters.csv against the other files.
# galaxies is MASS::galaxies as shipped, so its 78th value is 26690 (26.69
# here), the typo that ?MASS::galaxies notes (Roeder's value is 26960, which
# is what bayesgmm/data/galaxies.csv has).
# All numbers are written with 17 significant digits ("%.17g"), so that a
# double read back in Python is the double R had.

suppressPackageStartupMessages({
  library(mclust)
  library(MASS)
})

args <- commandArgs(trailingOnly = FALSE)
file_arg <- sub("^--file=", "", args[grep("^--file=", args)])
out_dir <- if (length(file_arg) == 1) dirname(normalizePath(file_arg)) else
  file.path("tests", "data", "mclust")

fmt <- function(x) ifelse(is.na(x), NA_character_, sprintf("%.17g", x))

# Writes a data frame: numeric columns as "%.17g", character columns quoted.
write_table <- function(df, path) {
  quote_cols <- which(vapply(df, function(col) !is.numeric(col), logical(1)))
  for (nm in names(df)) if (is.numeric(df[[nm]])) df[[nm]] <- fmt(df[[nm]])
  write.csv(df, path, row.names = FALSE, na = "NA",
            quote = if (length(quote_cols)) quote_cols else FALSE)
}

data(diabetes, package = "mclust")
datasets <- list(
  faithful = as.matrix(datasets::faithful[, c("eruptions", "waiting")]),
  iris     = as.matrix(datasets::iris[, 1:4]),
  diabetes = as.matrix(diabetes[, c("glucose", "insulin", "sspg")]),
  galaxies = matrix(MASS::galaxies / 1000, ncol = 1,
                    dimnames = list(NULL, "velocity"))
)

multi_families <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
                    "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")
uni_families <- c("E", "V")
Gs <- 1:6

for (name in names(datasets)) {
  X <- datasets[[name]]
  write_table(as.data.frame(X), file.path(out_dir, paste0(name, ".csv")))
}

rows <- list()
fits <- list()
for (name in names(datasets)) {
  X <- datasets[[name]]
  n <- nrow(X); d <- ncol(X)
  families <- if (d == 1) uni_families else multi_families
  for (family in families) {
    for (G in Gs) {
      warns <- character(0)
      err <- NULL
      fit <- tryCatch(
        withCallingHandlers(
          Mclust(X, G = G, modelNames = family, verbose = FALSE),
          warning = function(w) {
            warns <<- c(warns, conditionMessage(w))
            invokeRestart("muffleWarning")
          }),
        error = function(e) { err <<- conditionMessage(e); NULL })
      nvp <- nVarParams(family, d, G)
      # mclust's EM return code for the cell (attribute "returnCodes" of the
      # BIC table): 0 normal, 1 outer / 2 inner iteration limit reached,
      # -1 singular covariance, -2 mixing proportion fell below threshold,
      # -3 a z column sum fell below threshold (equalPro), -9 LAPACK failure.
      bic_table <- if (!is.null(fit)) fit$BIC else tryCatch(
        suppressWarnings(mclustBIC(X, G = G, modelNames = family,
                                   verbose = FALSE)),
        error = function(e) NULL)
      code <- if (is.null(bic_table)) NA_integer_ else
        as.integer(attr(bic_table, "returnCodes")[as.character(G), family])
      reason <- if (is.na(code)) NULL else switch(as.character(code),
        "-1" = "singular covariance",
        "-2" = "mixing proportion fell below threshold",
        "-3" = "a z column sum fell below threshold",
        "-9" = "LAPACK failure",
        NULL)
      loglik <- df <- bic <- iclv <- NA_real_
      fitted_model <- NA_character_
      if (!is.null(err)) {
        status <- paste("error:", err)
      } else if (is.null(fit)) {
        status <- paste(c("Mclust returned NULL", reason, warns), collapse = ": ")
      } else {
        loglik <- fit$loglik; df <- fit$df; bic <- fit$bic
        iclv <- tryCatch(icl(fit), error = function(e) NA_real_)
        fitted_model <- fit$modelName
        status <- if (any(is.na(c(loglik, bic)))) "NA loglik or bic" else "ok"
        fits[[paste(name, family, G)]] <- fit
      }
      rows[[length(rows) + 1]] <- data.frame(
        dataset = name, model = family, G = G,
        loglik = loglik, df = df, bic = bic, icl = iclv,
        n = n, d = d, nVarParams = nvp, fitted_model = fitted_model,
        return_code = code, status = status,
        warning = if (length(warns)) paste(unique(warns), collapse = "; ") else "",
        stringsAsFactors = FALSE)
    }
  }
}
ref <- do.call(rbind, rows)
ref$return_code <- as.integer(ref$return_code)
ref$G <- as.integer(ref$G); ref$n <- as.integer(ref$n); ref$d <- as.integer(ref$d)
write_table(ref, file.path(out_dir, "mclust_reference.csv"))

# Parameter estimates of every fitted cell (every row of mclust_reference.csv
# with status "ok"), in the order of that table.  Per component k: pro, then
# mean i = 1..d, then sigma (i, j) for i = 1..d, j = 1..d (the full d x d
# covariance; sigmasq for 1-D models, as i = j = 1).
param_rows <- list()
for (r in which(ref$status == "ok")) {
  key <- paste(ref$dataset[r], ref$model[r], ref$G[r])
  fit <- fits[[key]]
  if (is.null(fit)) stop("no fit for ", key)
  d <- fit$d; G <- fit$G
  if (G != ref$G[r]) stop("fit for ", key, " has G = ", G)
  par <- fit$parameters
  mu <- matrix(par$mean, nrow = d, ncol = G)
  pro <- rep_len(par$pro, G)
  if (d == 1) {
    sigma <- array(rep_len(par$variance$sigmasq, G), dim = c(1, 1, G))
  } else {
    sigma <- par$variance$sigma
  }
  if (!identical(as.integer(dim(sigma)), as.integer(c(d, d, G))))
    stop("sigma of ", key, " is not d x d x G")
  # Within a component: pro; mean 1..d; sigma with j varying fastest.
  per_k <- 1 + d + d * d
  comp <- rep(seq_len(G), each = per_k)
  parameter <- rep(c("pro", rep("mean", d), rep("sigma", d * d)), G)
  ii <- rep(c(NA, seq_len(d), rep(seq_len(d), each = d)), G)
  jj <- rep(c(NA, rep(NA, d), rep(seq_len(d), times = d)), G)
  value <- unlist(lapply(seq_len(G), function(k)
    c(pro[k], mu[, k], as.vector(t(sigma[, , k])))), use.names = FALSE)
  param_rows[[length(param_rows) + 1]] <- data.frame(
    dataset = ref$dataset[r], model = ref$model[r], G = as.integer(G),
    parameter = parameter, component = as.integer(comp),
    i = as.integer(ii), j = as.integer(jj), value = as.numeric(value),
    stringsAsFactors = FALSE)
}
params <- do.call(rbind, param_rows)
rownames(params) <- NULL
write_table(params, file.path(out_dir, "mclust_parameters.csv"))

writeLines(c(R.version.string,
             paste("mclust", as.character(packageVersion("mclust"))),
             paste("MASS", as.character(packageVersion("MASS")))),
           file.path(out_dir, "VERSIONS.txt"))

cat(sprintf("%d cells, %d not ok; parameters for %d cells (%d rows)\n",
            nrow(ref), sum(ref$status != "ok"), length(param_rows),
            nrow(params)))
