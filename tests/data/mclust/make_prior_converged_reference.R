# make_prior_converged_reference.R -- MAP-EM with mclust's conjugate prior, run
# to convergence.
#
# Run from the repository root (needs R with mclust):
#
#     Rscript tests/data/mclust/make_prior_converged_reference.R
#
# mclust_prior_reference.csv holds what Mclust(..., prior = priorControl())
# reports, and Mclust stops EM when the log-likelihood changes by less than
# 1e-5 relative: on these data that is up to ~1 log-likelihood unit short of
# the posterior mode it climbs towards (faithful VVV G=3: -1128.183 at 11
# iterations, -1128.135 at 313).  A test of the M-step needs the mode itself.
# This script starts from the same partition Mclust starts from (the rows of
# mclust_start_classes.csv: hc in SVD coordinates, quantile classes in 1-D)
# and runs me(..., prior = priorControl()) with tol = 1e-13 (both of
# emControl's tolerances), for G = 2..6 and the families of
# make_prior_reference.R (G = 1 has a closed form, mvn, which
# mclust_prior_reference.csv already gives exactly).
#
# Writes mclust_prior_converged.csv: dataset, model, G, loglik (the data
# log-likelihood at the last E-step), iterations, return_code (0 = ok),
# status, and pro/mean of every component in one long table
# mclust_prior_converged_parameters.csv (dataset, model, G, parameter,
# component, i, value), all "%.17g".

suppressPackageStartupMessages(library(mclust))
out_dir <- file.path("tests", "data", "mclust")
source(file.path(out_dir, "common.R"))  # fmt, check_versions
check_versions(out_dir)
starts <- read.csv(file.path(out_dir, "mclust_start_classes.csv"))
control <- emControl(tol = c(1e-13, 1e-13))
rows <- list(); params <- list()
for (name in c("faithful", "iris", "diabetes", "galaxies")) {
  X <- as.matrix(read.csv(file.path(out_dir, paste0(name, ".csv"))))
  families <- if (ncol(X) == 1) c("E", "V") else
    c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "EEV", "VEV", "VVV")
  for (family in families) for (G in 2:6) {
    cl <- starts[starts$dataset == name & starts$G == G, ]
    z <- unmap(cl$class[order(cl$row)])
    fit <- tryCatch(suppressWarnings(
      me(modelName = family, data = X, z = z, prior = priorControl(),
         control = control)), error = function(e) NULL)
    code <- if (is.null(fit)) NA else attr(fit, "returnCode")
    ok <- !is.null(fit) && identical(as.integer(code), 0L)
    rows[[length(rows) + 1]] <- data.frame(
      dataset = name, model = family, G = G,
      loglik = fmt(if (ok) fit$loglik else NA),
      iterations = if (ok) attr(fit, "info")[1] else NA,
      return_code = code, status = if (ok) "ok" else "failed")
    if (ok) {
      mu <- matrix(fit$parameters$mean, ncol = G)
      params[[length(params) + 1]] <- rbind(
        data.frame(dataset = name, model = family, G = G, parameter = "pro",
                   component = 1:G, i = NA, value = fmt(fit$parameters$pro)),
        data.frame(dataset = name, model = family, G = G, parameter = "mean",
                   component = rep(1:G, each = nrow(mu)),
                   i = rep(seq_len(nrow(mu)), G), value = fmt(c(mu))))
    }
  }
}
write.csv(do.call(rbind, rows), file.path(out_dir, "mclust_prior_converged.csv"),
          row.names = FALSE, quote = c(1, 2, 7))
write.csv(do.call(rbind, params),
          file.path(out_dir, "mclust_prior_converged_parameters.csv"),
          row.names = FALSE, quote = c(1, 2, 4), na = "NA")
