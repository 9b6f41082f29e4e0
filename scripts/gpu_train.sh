#!/usr/bin/env bash
# One command on a lent GPU machine (docs/gpu.md): install the carried wheels, resume FAMILY
# from the last checkpoint, train for MINUTES on the carried shard, and leave the checkpoint in
# $OUT/FAMILY (shards of at most 16 MiB) and in /tmp/ckpt-FAMILY for the next command.
#
#   bash scripts/gpu_train.sh FAMILY MINUTES SHARD [extra train options...]
#
# Resumes from /tmp/ckpt-FAMILY if this machine still has it, else from .gpuckpt/FAMILY (a
# returned checkpoint carried back), else from the shipped codec FAMILY; with none of these it
# stops, unless NEW=1 asks for a new model (a slimmed tree without the codec folder must not
# start a trained family over by mistake). DEVICE=cpu rehearses it. With RETURN_MIB=N, a
# checkpoint larger than N MiB comes back as its weights only (the moving average, no optimizer
# state: a run resumed from it starts a new optimizer), so that several families fit what comes
# back; the full checkpoint stays in /tmp/ckpt-FAMILY for the next command on this machine.
set -euo pipefail
family=$1; minutes=$2; shard=$3; shift 3
out=${OUT:-/tmp/out}
py=${PYTHON:-python3}
source "$(dirname "$0")/gpu_wheels.sh"
ckpt=${CKPT_ROOT:-/tmp}/ckpt-$family
if [ -f "$ckpt/checkpoint.json" ]; then resume=$ckpt
elif [ -f ".gpuckpt/$family/checkpoint.json" ]; then resume=.gpuckpt/$family
elif [ -f "codecs/$family/config.json" ]; then resume=$family
elif [ "${NEW:-}" = 1 ]; then resume=""  # a new model, as the family's spec builds it (perceptual: from context)
else
    echo "nothing to resume $family from (no $ckpt, .gpuckpt/$family or codecs/$family):" \
         "carry one, or set NEW=1 to train a new model" >&2
    exit 2
fi
device=${DEVICE:-cuda}
echo "resume from ${resume:-a new model}; data $shard; $($py -c 'import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")')"
$py -m neurocodec.cli train "$family" --data "$shard" --minutes "$minutes" --out "$ckpt" ${resume:+--resume "$resume"} \
    --device "$device" "$@"
mkdir -p "$out/$family"
if [ -n "${RETURN_MIB:-}" ] && [ "$(du -sm "$ckpt" | cut -f1)" -gt "$RETURN_MIB" ]; then
    $py -c 'import sys; from neurocodec.train.checkpoint import copy_weights_only as c; c(*sys.argv[1:])' "$ckpt" "$out/$family"
else
    cp "$ckpt"/checkpoint* "$out/$family/"
fi
ls -la "$out/$family"
