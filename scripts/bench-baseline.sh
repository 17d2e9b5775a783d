#!/usr/bin/env bash
# Builds an earlier revision of sufast in .bench-baseline (a git worktree)
# for `make bench BASELINE=<rev>`, which measures it beside the working
# tree in the same rounds: the before/after of a change, on one machine,
# in one run.
set -euo pipefail
cd "$(dirname "$0")/.."

rev=${1:?usage: scripts/bench-baseline.sh <git revision>}
dir=.bench-baseline
commit=$(git rev-parse --verify "$rev^{commit}")

if [ -d "$dir" ]; then
    git -C "$dir" checkout --quiet --detach "$commit"
else
    git worktree add --quiet --detach "$dir" "$commit"
fi
make --no-print-directory -C "$dir" build >/dev/null
echo "baseline: $(git log -1 --format='%h %s' "$commit")"
