"""The thread policy holds across numba kernels: a serial block stays serial after a splat or mesh render."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CODE = """
import torch
from vnvs.utils.threads import configure_threads, serial
from vnvs.geometry import forward_splat, forward_splat_flow
from vnvs.geometry.mesh_render import mesh_render
configure_threads(2)
T, H, W = 2, 12, 16
img, depth = torch.rand(T, 3, H, W), torch.rand(T, H, W) + 1
K = torch.tensor([[10.0, 0, 7.5], [0, 10, 5.5], [0, 0, 1]]).expand(T, 3, 3)
w2c = torch.eye(4).expand(T, 4, 4)
seen = []
with serial():
    forward_splat_flow(img, torch.randn(T, 2, H, W), seed=0, backend="numba")
    seen.append(torch.get_num_threads())
    forward_splat(img, depth, K, w2c, K, w2c, backend="numba")
    seen.append(torch.get_num_threads())
    mesh_render(img, depth, K, w2c, K, w2c, backend="numba")
    seen.append(torch.get_num_threads())
seen.append(torch.get_num_threads())
print("seen=" + ",".join(map(str, seen)))
"""


def test_serial_blocks_stay_serial_after_numba_kernels():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), NUMBA_NUM_THREADS="2")
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "seen=1,1,1,2"
