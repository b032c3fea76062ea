#!/usr/bin/env bash
# Trains dit-small-inpaint (CogNVS in miniature: the built-in DiT with inpainting conditioning on
# co-visibility pairs) on the budget of the shipped dit-small (64 px, 9 frames, batch 8, 1,800 steps).
#
# Usage: scripts/train_inpaint.sh WORK_DIR [STEPS] [SCENES] [VIDEOS_DIR DEPTH_DIR]
#   WORK_DIR    data/, runs/dit-small-inpaint/ (checkpoints, log.jsonl, model/) are written here
#   STEPS       optimizer steps (default 1800, the preset's)
#   SCENES      procedural scenes for synthetic-covis pairs (default 1500)
#   VIDEOS_DIR, DEPTH_DIR
#               optional real videos and their depth files (DEPTH_DIR/<stem>.npy|npz, one map per
#               frame) for real covis pairs; without them the run uses synthetic-covis only
# MASKS=2d prepares the 2-D mask ablation instead (random smooth masks of the same coverage).
# Extra arguments for `vnvs train` can be given in TRAIN_ARGS; one thread by default (OMP_NUM_THREADS).
# Afterwards: python benchmarks/ttf.py WORK_DIR/runs/dit-small-inpaint/model (test-time finetuning gain).
set -euo pipefail
work=$1
steps=${2:-1800}
scenes=${3:-1500}
videos=${4:-}
depth=${5:-}
masks=${MASKS:-3d}
workers=${WORKERS:-$(nproc)}
vnvs=${VNVS:-vnvs}

$vnvs prepare --input "$scenes" --kind synthetic --size 64 --clip-frames 9 --pairs-per-video 2 \
  --covis-masks "$masks" --output "$work/data" --workers "$workers" --seed 0
config="$work/inpaint.toml"
if [ -n "$videos" ]; then
  $vnvs prepare --input "$videos" --kind covis --depth-dir "$depth" --size 64 --clip-frames 9 \
    --pairs-per-video 200 --covis-masks "$masks" --output "$work/data" --workers "$workers" --seed 0
  echo 'preset = "dit-small-inpaint"' > "$config"
else
  printf 'preset = "dit-small-inpaint"\n[data]\nsynthetic-covis = 1.0\n' > "$config"
fi
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} $vnvs train --config "$config" --data "$work/data" \
  --output "$work/runs/dit-small-inpaint" --max-steps "$steps" ${TRAIN_ARGS:-}
echo "model in $work/runs/dit-small-inpaint/model"
