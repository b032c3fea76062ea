#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run: gsplat's CUDA extension, the CUDA tests of the
# rasterizer, reconstruction and the mesh renderer, and benchmarks/gpu.py.
# Wheels the GPU machine lacks (gsplat, av, diffusers) may be carried in .whl/ and are installed
# into /tmp/site first. Logs and results go to $OUT (default: gpu_checks/).
set -uo pipefail
OUT=${OUT:-gpu_checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-16} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=src:${PYTHONPATH:-}
nvidia-smi -L
python3 -c "import torch, numba, cv2, av; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numba', numba.__version__, 'opencv', cv2.__version__, 'av', av.__version__)"
start=$(date +%s)
python3 -c "import torch, gsplat; from gsplat.cuda._backend import _C; print('gsplat', gsplat.__version__, 'extension', _C is not None)" 2>&1 | tail -3 | tee "$OUT/gsplat_build.log"
echo "gsplat extension ready after $(( $(date +%s) - start )) s" | tee -a "$OUT/gsplat_build.log"
python3 -m pytest -p no:cacheprovider -o addopts="" -q -n 8 -rs tests/test_recon_rasterize.py tests/test_recon.py \
  tests/test_mesh_render.py 2>&1 | tee "$OUT/tests.log" | tail -15
python3 benchmarks/gpu.py 2>&1 | tee "$OUT/gpu_bench.log" | tail -8
cp benchmarks/results/gpu.json "$OUT/" 2>/dev/null
exit 0
