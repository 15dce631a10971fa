#!/usr/bin/env bash
# write_result.sh: store one result from the shell, checked first against the mount's schema.
#
#     write_result.sh MNT RESULT_ID FILE
#     write_result.sh /mnt/results runs/r7 r7.json
#
# FILE holds the result's bare data ({"loss": 0.25, ...}). The directory of RESULT_ID must be
# bound to a model (resultsfs bind /mnt/results/runs lab:Metrics): its binding names the schema,
# MNT/.schemas/NAMESPACE/Model.json. The script
#   1. checks FILE against that schema with check-jsonschema, and stops before writing anything
#      if it does not conform;
#   2. copies FILE to a temp name beside the result (a name starting with "." is a scratch file
#      of the mount, never a result);
#   3. renames the temp file onto MNT/RESULT_ID.json: the rename is the commit, validated by the
#      mount, and it either stores the whole result or fails, leaving the stored one as it was.
# On a refusal it prints the mount's reason (user.results.error) and exits 1.
# CHECK_JSONSCHEMA names the validator if it is not on PATH as check-jsonschema.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: write_result.sh MNT RESULT_ID FILE" >&2
    exit 2
fi
mnt=$1 id=$2 file=$3
target="$mnt/$id.json"
dir=$(dirname -- "$target")
check=${CHECK_JSONSCHEMA:-check-jsonschema}
if ! command -v -- "$check" >/dev/null; then
    echo "write_result.sh: $check not found (pipx install check-jsonschema, or set CHECK_JSONSCHEMA)" >&2
    exit 2
fi

# The model bound to the directory, NAMESPACE:Model (inherited from a parent directory if need be).
if ! model=$(getfattr --only-values -n user.results.model -- "$dir" 2>/dev/null); then
    echo "write_result.sh: $dir is not bound to a model (resultsfs bind $dir NAMESPACE:Model)" >&2
    exit 1
fi
schema="$mnt/.schemas/${model%%:*}/${model#*:}.json"

# 1. Check before writing: nothing reaches the mount unless the data conforms.
if ! "$check" --schemafile "$schema" "$file" >&2; then
    echo "write_result.sh: $file does not conform to $model; nothing written" >&2
    exit 1
fi

# 2. A temp name in the same directory (so the rename stays inside the mount), unique per run;
#    noclobber (set -C) refuses a name that exists.
tmp="$dir/.$(basename -- "$target").$$.tmp"
(set -C && cat -- "$file" >"$tmp")

# 3. The commit. On a refusal the temp file stays, and its user.results.error says why.
if ! mv -- "$tmp" "$target"; then
    reason=$(getfattr --only-values -n user.results.error -- "$tmp" 2>/dev/null ||
        echo "no reason recorded (see the mount's log)")
    rm -f -- "$tmp"
    echo "write_result.sh: $target: refused: $reason" >&2
    exit 1
fi
echo "$target: stored"
