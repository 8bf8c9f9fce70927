# common.R -- helpers shared by the reference scripts of this folder, sourced after
# each has found its own folder (out_dir).

fmt <- function(x) ifelse(is.na(x), NA_character_, sprintf("%.17g", x))

# Writes a data frame: numeric columns as "%.17g", character columns quoted.
write_table <- function(df, path) {
  quote_cols <- which(vapply(df, function(col) !is.numeric(col), logical(1)))
  for (nm in names(df)) if (is.numeric(df[[nm]])) df[[nm]] <- fmt(df[[nm]])
  write.csv(df, path, row.names = FALSE, na = "NA",
            quote = if (length(quote_cols)) quote_cols else FALSE)
}

# Stops unless R and the packages are the versions make_reference.R recorded.
check_versions <- function(out_dir) {
  want <- readLines(file.path(out_dir, "VERSIONS.txt"))
  have <- c(R.version.string,
            paste("mclust", as.character(packageVersion("mclust"))),
            paste("MASS", as.character(packageVersion("MASS"))))
  if (!identical(want, have))
    stop("versions differ from VERSIONS.txt: ", paste(have, collapse = ", "))
}
