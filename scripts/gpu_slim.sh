#!/usr/bin/env bash
# Shrink the working tree before calls to a lent GPU machine, and bring it back after
# (docs/gpu.md). A call carries the whole working tree, tracked files included, and at most
# 64 MiB in all; the shipped and retired weights, results and fixtures are over 110 MB.
#
#   bash scripts/gpu_slim.sh on CODEC...   # keep neurocodec/, scripts/, docs/ and the named
#                                          # codec folders (without retired weights)
#   bash scripts/gpu_slim.sh off           # everything back
#
# It uses git's sparse checkout: the files stay tracked and committed, only the working tree
# leaves them out. Prints what would travel, the carried .whl and .gpudata shard aside.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
    on)
        shift
        patterns=('/*' '!/codecs/' '!/bench/' '!/tests/')
        for codec in "$@"; do
            [ -f "codecs/$codec/config.json" ] || git cat-file -e "HEAD:codecs/$codec/config.json" 2>/dev/null \
                || { echo "no codec '$codec' in codecs/" >&2; exit 2; }
            patterns+=("/codecs/$codec/" "!/codecs/$codec/retired/")
        done
        git sparse-checkout set --no-cone "${patterns[@]}"
        ;;
    off)
        git sparse-checkout disable
        ;;
    *)
        echo "usage: $0 on CODEC... | off" >&2
        exit 2
        ;;
esac
bytes=$({ git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
echo "working tree that travels: $((bytes / 1048576)) MiB of 64 (plus what carry names)"
