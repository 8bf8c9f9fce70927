# make_start_reference.R -- the partitions mclust starts its EM from.
#
# Run from the repository root (needs R with mclust):
#
#     Rscript tests/data/mclust/make_start_reference.R
#
# Mclust(X, G) starts EM from hclass(hc(X, modelName = "VVV", use = "SVD"), G)
# for multivariate data (mclust.options("hcModelName"), mclust.options("hcUse"))
# and from quantile classes, mclust:::qclass(x, G), for one-dimensional data.
# This script writes those partitions for the data sets of make_reference.R
# (read from the CSV files it wrote) and G = 1..6 to mclust_start_classes.csv:
# one row per (dataset, G, point): dataset, G, row (1-based), class (1-based, as
# mclust numbers them).  bayesgmm's own implementation of both starts is tested
# against it; CI does not need R.

suppressPackageStartupMessages(library(mclust))

args <- commandArgs(trailingOnly = FALSE)
file_arg <- sub("^--file=", "", args[grep("^--file=", args)])
out_dir <- if (length(file_arg) == 1) dirname(normalizePath(file_arg)) else
  file.path("tests", "data", "mclust")

stopifnot(mclust.options("hcModelName") == "VVV", mclust.options("hcUse") == "SVD")
rows <- list()
for (name in c("faithful", "iris", "diabetes", "galaxies")) {
  X <- as.matrix(read.csv(file.path(out_dir, paste0(name, ".csv"))))
  if (ncol(X) > 1) {
    classes <- hclass(hc(X, modelName = "VVV", use = "SVD"), 1:6)
  } else {
    classes <- sapply(1:6, function(G) mclust:::qclass(X[, 1], G))
  }
  for (G in 1:6) {
    rows[[length(rows) + 1]] <- data.frame(
      dataset = name, G = G, row = seq_len(nrow(X)), class = as.integer(classes[, G]))
  }
}
out <- do.call(rbind, rows)
write.csv(out, file.path(out_dir, "mclust_start_classes.csv"), row.names = FALSE,
          quote = 1)
cat("wrote", nrow(out), "rows\n")
