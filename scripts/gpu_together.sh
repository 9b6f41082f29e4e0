#!/usr/bin/env bash
# Several families trained side by side in one command on a lent GPU machine (docs/gpu.md).
# One of these small models leaves most of an H200 idle, so three at once each get the whole
# command's minutes instead of a third of them.
#
#   bash scripts/gpu_together.sh "FAMILY MINUTES SHARD [options...]" ["FAMILY ..." ...]
#
# Each quoted job is what scripts/gpu_train.sh takes; each job's log lines are prefixed with its
# family. The CPU cores are shared out among the jobs. A checkpoint over RETURN_MIB (default
# 20) comes back as its weights only, so that context's (61 MB in full) and the others fit the
# 64 MiB a command may send back; /tmp/ckpt-FAMILY keeps every full one for the next command.
# Exits non-zero if any job failed. DEVICE=cpu rehearses it.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
source scripts/gpu_wheels.sh  # once, before the jobs: they would race to install
export RETURN_MIB=${RETURN_MIB:-20}
threads=$(( $(nproc) / $# )); [ "$threads" -ge 1 ] || threads=1
pids=()
for job in "$@"; do
    read -r -a args <<< "$job"
    family=${args[0]}
    OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads bash scripts/gpu_train.sh "${args[@]}" 2>&1 \
        | sed -u "s/^/[$family] /" &
    pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
exit $failed
