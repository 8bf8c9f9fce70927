# make_prior_reference.R -- R mclust reference tables for MAP fits with
# mclust's default conjugate prior, for bayesgmm's tests.
#
# Run from the repository root (needs R with mclust; a few seconds):
#
#     Rscript tests/data/mclust/make_prior_reference.R
#
# It is make_reference.R with a prior: for each data set (read from the
# committed faithful.csv, iris.csv, diabetes.csv, galaxies.csv), each
# covariance family that mclust fits with a prior (EII, VII, EEI, VEI, EVI,
# VVI, EEE, EEV, VEV, VVV; "E" and "V" for the 1-D galaxies; mclustBIC silently
# drops VEE, EVE, VVE and EVV when a prior is given) and G = 1..6 it calls
#
#     Mclust(X, G = G, modelNames = family, prior = priorControl(),
#            verbose = FALSE)
#
# and writes
#
#   mclust_prior_reference.csv       one row per cell, the columns of
#                                    mclust_reference.csv
#   mclust_prior_parameters.csv      the estimates of every ok cell, the layout
#                                    of mclust_parameters.csv
#   mclust_prior_hyperparameters.csv the prior's parameters as mclust resolves
#                                    them for the cell (defaultPrior(X, G,
#                                    family), which is what the me*/mstep*/mvn*
#                                    functions call): dataset, model, G,
#                                    parameter, i, j, value
#
# It also checks that the start partition of every cell (G >= 2) is the one
# in mclust_start_classes.csv (the start does not depend on the prior), and
# that R and the packages are the versions in VERSIONS.txt.  It writes no
# other file.  All numbers are written with 17 significant digits ("%.17g").

suppressPackageStartupMessages(library(mclust))

args <- commandArgs(trailingOnly = FALSE)
file_arg <- sub("^--file=", "", args[grep("^--file=", args)])
out_dir <- if (length(file_arg) == 1) dirname(normalizePath(file_arg)) else
  file.path("tests", "data", "mclust")

source(file.path(out_dir, "common.R"))  # fmt, write_table, check_versions
check_versions(out_dir)

datasets <- list()
for (name in c("faithful", "iris", "diabetes", "galaxies")) {
  datasets[[name]] <- as.matrix(read.csv(file.path(out_dir,
                                                   paste0(name, ".csv"))))
}
starts <- read.csv(file.path(out_dir, "mclust_start_classes.csv"))

multi_families <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
                    "EEV", "VEV", "VVV")
uni_families <- c("E", "V")
Gs <- 1:6

rows <- list()
fits <- list()
hyper_rows <- list()
n_start_checked <- 0
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
          Mclust(X, G = G, modelNames = family, prior = priorControl(),
                 verbose = FALSE),
          warning = function(w) {
            warns <<- c(warns, conditionMessage(w))
            invokeRestart("muffleWarning")
          }),
        error = function(e) { err <<- conditionMessage(e); NULL })
      nvp <- nVarParams(family, d, G)
      bic_table <- if (!is.null(fit)) fit$BIC else tryCatch(
        suppressWarnings(mclustBIC(X, G = G, modelNames = family,
                                   prior = priorControl(), verbose = FALSE)),
        error = function(e) NULL)
      # mclust's EM return code (see make_reference.R).  Note that the me*
      # functions return -2 for "z column sum fell below threshold" (only
      # with equalPro) and -3 for "mixing proportion fell below threshold"
      # (equalPro = FALSE, as here): make_reference.R's comment has these two
      # the other way round (no cell of that table has either code).
      code <- if (is.null(bic_table)) NA_integer_ else
        as.integer(attr(bic_table, "returnCodes")[as.character(G), family])
      reason <- if (is.na(code)) NULL else switch(as.character(code),
        "-1" = "singular covariance",
        "-2" = "a z column sum fell below threshold",
        "-3" = "mixing proportion fell below threshold",
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
      # The start partition, computed as summaryMclustBIC does from the BIC
      # table's initialization, must be the no-prior one.
      if (G >= 2 && !is.null(bic_table)) {
        hcPairs <- attr(bic_table, "initialization")$hcPairs
        cl <- if (d > 1 || !is.null(hcPairs)) hclass(hcPairs, G) else
          mclust:::qclass(X[, 1], G)
        ref_cl <- starts$class[starts$dataset == name & starts$G == G]
        if (!identical(as.integer(cl), as.integer(ref_cl)))
          stop("start partition of ", name, " ", family, " G=", G,
               " differs from mclust_start_classes.csv")
        n_start_checked <- n_start_checked + 1
      }
      # The prior as mclust resolves it: me<family>(), mstep<family>() and
      # mvn<model>() call prior$functionName(data, G, modelName, ...), i.e.
      # defaultPrior(X, G, family) for priorControl().  (For G = 1 Mclust fits
      # mvnXII / mvnXXI / mvnXXX / mvnX, whose defaultPrior branch is that of
      # the family.)
      pr <- defaultPrior(X, G, family)
      if (!is.na(fitted_model) && G == 1 &&
          !isTRUE(all.equal(pr, defaultPrior(X, G, fitted_model),
                            tolerance = 0)))
        stop("defaultPrior differs between ", family, " and ", fitted_model)
      sc <- pr$scale
      sc_i <- if (length(sc) == 1) NA else rep(seq_len(d), each = d)
      sc_j <- if (length(sc) == 1) NA else rep(seq_len(d), times = d)
      sc_v <- if (length(sc) == 1) as.numeric(sc) else as.vector(t(sc))
      hyper_rows[[length(hyper_rows) + 1]] <- data.frame(
        dataset = name, model = family, G = as.integer(G),
        parameter = c("shrinkage", rep("mean", d), "dof",
                      rep("scale", length(sc_v))),
        i = as.integer(c(NA, seq_len(d), NA, sc_i)),
        j = as.integer(c(NA, rep(NA, d), NA, sc_j)),
        value = as.numeric(c(pr$shrinkage, pr$mean, pr$dof, sc_v)),
        stringsAsFactors = FALSE)
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
write_table(ref, file.path(out_dir, "mclust_prior_reference.csv"))

hyper <- do.call(rbind, hyper_rows)
rownames(hyper) <- NULL
write_table(hyper, file.path(out_dir, "mclust_prior_hyperparameters.csv"))

# Parameter estimates of every fitted cell, exactly as in make_reference.R.
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
write_table(params, file.path(out_dir, "mclust_prior_parameters.csv"))

cat(sprintf(paste0("%d cells, %d not ok; parameters for %d cells (%d rows); ",
                   "%d hyperparameter rows; %d start partitions checked\n"),
            nrow(ref), sum(ref$status != "ok"), length(param_rows),
            nrow(params), nrow(hyper), n_start_checked))
