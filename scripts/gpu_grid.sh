#!/usr/bin/env bash
# Grid models trained on a GPU: procedural grids (vnvs prepare --kind synthetic), two grid presets trained
# from the shipped DiT (STEPS each), then `vnvs eval --benchmark grid` against the independent baseline on
# held-out procedural grids with the settings of benchmarks/grid.py, over two evaluation seeds.
# Usage: STEPS=2000 SCENES=192 bash scripts/gpu_grid.sh   (results and the trained model folders under $OUT)
set -uo pipefail
OUT=${OUT:-gpu_grid}
STEPS=${STEPS:-2000}
SCENES=${SCENES:-192}
EVAL_SCENES=${EVAL_SCENES:-6}
PRESETS=${PRESETS:-"grid-4real grid-sv4d"}
RUN=${RUN:-/tmp/vnvs_gpu_grid}
mkdir -p "$OUT" "$RUN"
export PYTHONUNBUFFERED=1 VNVS_PROGRESS=0
if [ -z "${NO_WHEELS:-}" ] && compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=src:${PYTHONPATH:-}
vnvs() { python3 -m vnvs.cli "$@"; }
start=$(date +%s)
[ -f "$RUN/data/index.json" ] || vnvs prepare --kind synthetic --input "$SCENES" --size 32 --clip-frames 8 --views 4 \
  --workers "${WORKERS:-8}" -o "$RUN/data" | tail -2
echo "prepared after $(( $(date +%s) - start )) s"
methods="independent"
for preset in $PRESETS; do
  printf '{"preset": "%s", "max_steps": %d, "checkpoint_every": %d, "data": {"synthetic-grid": 1.0}}' \
    "$preset" "$STEPS" "$STEPS" > "$RUN/$preset.json"
  vnvs train --config "$RUN/$preset.json" --data "$RUN/data" -o "$RUN/$preset" | tail -2
  cp "$RUN/$preset/log.jsonl" "$OUT/$preset.log.jsonl"
  tar czf "$OUT/$preset.model.tgz" -C "$RUN/$preset" model
  methods="$methods,$preset=$RUN/$preset/model"
  echo "$preset trained after $(( $(date +%s) - start )) s"
done
for seed in 0 1; do
  vnvs eval --benchmark grid --methods "$methods" --scenes "$EVAL_SCENES" --seed "$seed" --frames 8 --size 32 --views 4 \
    --steps 8 --max-orbit 30 -o "$RUN/eval$seed" | tail -12
  cp "$RUN/eval$seed/report.json" "$OUT/eval_seed$seed.json"
done
echo "done after $(( $(date +%s) - start )) s"
