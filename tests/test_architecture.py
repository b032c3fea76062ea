"""The package layering of docs/architecture.md holds: imports point down only, and stay at module level."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "vnvs"

LAZY_ALLOWED = {"geometry/splat.py", "geometry/mesh_render.py", "recon/rasterize.py", "cli.py"}
"""Modules that may import vnvs code inside a function: the splat, the mesh renderer and the Gaussian
rasterizer load their numba kernels (and numba's compile cache) only when the CPU fast path runs; the command line loads a command's
modules (and torch) only when that command runs, so ``vnvs --help`` and ``vnvs --version`` answer at once."""


def test_layers_contract_is_kept():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                           "sys.exit(lint_imports(no_cache=True, no_logo=True))"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout, done.stdout


def _inner_vnvs_imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.module or "").split(".")[0] == "vnvs":
                    found.append((inner.lineno, inner.module))
                elif isinstance(inner, ast.Import):
                    found += [(inner.lineno, a.name) for a in inner.names if a.name.split(".")[0] == "vnvs"]
    return found


def test_vnvs_imports_are_at_module_level():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel in LAZY_ALLOWED:
            continue
        offenders += [f"{rel}:{line} imports {module}" for line, module in _inner_vnvs_imports(ast.parse(path.read_text()))]
    assert not offenders, "vnvs imports inside functions hide cycles; import at module level:\n" + "\n".join(offenders)


def test_the_import_check_sees_imports_inside_functions():
    tree = ast.parse("import os\n\ndef f():\n    from vnvs.io import read_video\n    return read_video\n")
    assert _inner_vnvs_imports(tree) == [(4, "vnvs.io")]


def test_help_loads_nothing_heavy():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    code = ("import sys, runpy; sys.argv = ['vnvs', '--help']\n"
            "try:\n    runpy.run_module('vnvs.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('torch', 'cv2', 'numba', 'diffusers', 'transformers', 'av') if m in sys.modules)\n"
            "print('heavy=' + ','.join(heavy))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "heavy=", f"vnvs --help imported {done.stdout.strip().splitlines()[-1]}"
