#!/usr/bin/env bash
# make demo: mount an example store and show it with ordinary tools, then unmount.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
work=$(mktemp -d /tmp/resultsfs-demo.XXXXXX)
store=$work/store
mnt=$work/mnt
models=$PWD/examples/models.py
mkdir -p "$mnt"
cleanup() {
    if mountpoint -q "$mnt" 2>/dev/null || ! stat "$mnt" >/dev/null 2>&1; then
        resultsfs umount "$mnt" >/dev/null 2>&1 || fusermount3 -uz "$mnt" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

show() {
    printf '\n\033[1m$ %s\033[0m\n' "$*"
    bash -c "$*" || printf '(exit status %s)\n' "$?"
}

python examples/make_store.py "$store"
show "resultsfs mount $store $mnt --models $models"
cd "$mnt"
show "find . | sort"
show "cat sweep3/lr0.1/seed0.json"
show "jq -c '{seed: .data.seed, loss: .data.final_loss}' sweep3/*/*.json"
show "grep -rl '\"seed\": 2' ."
show "getfattr -d sweep3/lr0.1/seed0.json"
echo
echo "# Writes are validated at close and committed atomically into the store:"
show "jq '.data.accuracy = 0.99' sweep3/lr0.1/seed0.json > tmp.json && mv tmp.json sweep3/lr0.1/seed0.json && jq .data.accuracy sweep3/lr0.1/seed0.json"
show "sed -i 's/\"seed\": 1/\"seed\": 11/' sweep3/lr0.01/seed1.json && jq .data.seed sweep3/lr0.01/seed1.json"
show "echo 'not json' > sweep3/lr0.1/seed1.json"
show "echo '{\"learning_rate\": -1, \"seed\": 1, \"final_loss\": 0, \"accuracy\": 2, \"finished\": \"2026-01-01T00:00:00Z\"}' > sweep3/lr0.1/seed1.json; getfattr --only-values -n user.results.error sweep3/lr0.1/seed1.json; echo"
show "jq .data.accuracy sweep3/lr0.1/seed1.json"
echo
echo "# Leases taken by another process show live:"
show "resultsfs lock -s $store sweep3/lr0.1/seed2 --holder nightly-job --ttl 600 && getfattr -d -m user.results.lock sweep3/lr0.1/seed2.json"
show "resultsfs unlock -s $store sweep3/lr0.1/seed2 --holder nightly-job && getfattr -n user.results.lock.state sweep3/lr0.1/seed2.json"
cd /
show "resultsfs umount $mnt"
show "resultsfs ls -r -s $store && resultsfs check -s $store --models $models"
