#!/usr/bin/env bash
# Writes build/gen/version.h with the commit and build flags; rewrites it only when they change (no spurious rebuilds).
set -eu
out=$1; flags=$2
if commit=$(git rev-parse --short=12 HEAD 2>/dev/null); then
    git diff --quiet HEAD -- 2>/dev/null || commit="$commit-dirty"
else  # a copy of the tree without .git (the GPU machine) carries the commit it was taken at in .commit
    commit=$(cat .commit 2>/dev/null || echo unknown)
fi
tmp=$(mktemp)
printf '#pragma once\n#define JEPA_BUILD_COMMIT "%s"\n#define JEPA_BUILD_FLAGS "%s"\n' "$commit" "$flags" > "$tmp"
mkdir -p "$(dirname "$out")"
if [ -f "$out" ] && cmp -s "$tmp" "$out"; then rm -f "$tmp"; else mv "$tmp" "$out"; fi
