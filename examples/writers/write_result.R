#!/usr/bin/env Rscript
# write_result.R: store one result from R, checked first against the mount's schema.
#
#     Rscript write_result.R /mnt/results runs/r7
#
# The same steps as write_result.sh: the directory's binding names the schema; the data is
# checked against it before anything is written; a temp file beside the result is renamed onto
# it, which is the commit. Needs the packages jsonlite and jsonvalidate (its "ajv" engine reads
# the draft 2020-12 schemas of .schemas/).
library(jsonlite)
library(jsonvalidate)

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2) stop("usage: Rscript write_result.R MNT RESULT_ID")
mnt <- args[[1]]
target <- file.path(mnt, paste0(args[[2]], ".json"))
dir <- dirname(target)

# The result: bare data of the model the directory is bound to.
json <- toJSON(list(loss = 0.25, accuracy = 0.91, step = 100L), auto_unbox = TRUE, digits = NA)

xattr <- function(name, path) {
  suppressWarnings(system2("getfattr", c("--only-values", "-n", name, shQuote(path)),
                           stdout = TRUE, stderr = FALSE))
}

# NAMESPACE:Model bound to the directory names the schema: MNT/.schemas/NAMESPACE/Model.json.
model <- xattr("user.results.model", dir)
if (length(model) == 0) stop(dir, " is not bound to a model (resultsfs bind ", dir, " NAMESPACE:Model)")
parts <- strsplit(model, ":", fixed = TRUE)[[1]]
schema <- file.path(mnt, ".schemas", parts[[1]], paste0(parts[[2]], ".json"))

ok <- json_validate(json, schema, engine = "ajv", verbose = TRUE)
if (!ok) {
  print(attr(ok, "errors"))
  quit(status = 1)
}

# Write a temp file (a name starting with "." is never a result), then rename it onto the
# result. The rename is the commit: if the mount refuses the result, file.rename returns FALSE
# and the stored result is left as it was.
tmp <- file.path(dir, paste0(".", basename(target), ".", Sys.getpid(), ".tmp"))
writeLines(json, tmp)
if (!file.rename(tmp, target)) {
  reason <- c(xattr("user.results.error", tmp), xattr("user.results.error", target))
  unlink(tmp)
  message(target, ": refused: ", paste(reason, collapse = "\n"))
  quit(status = 1)
}
cat(target, ": stored\n", sep = "")
