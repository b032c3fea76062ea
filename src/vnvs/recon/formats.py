"""Scene folders and standard 3DGS PLY files.

A scene folder (``vnvs reconstruct`` output, layout in docs/conventions.md)::

    scene.json                 format name and version, settings, time range, cameras of the grid
    canonical.safetensors      canonical Gaussians (means, log_scales, quats, opacity_logits, f_dc)
    deformation.safetensors    deformation MLP weights (+ the view embeddings)
    ply/time_XXX.ply           the Gaussians at chosen grid columns, INRIA 3DGS layout

The PLY layout is the one of the INRIA 3DGS code and every viewer built on it: binary little-endian
float32 vertices ``x y z nx ny nz f_dc_0 f_dc_1 f_dc_2 opacity scale_0 scale_1 scale_2 rot_0 rot_1
rot_2 rot_3`` with opacity a logit, scales logs, ``rot`` a ``(w, x, y, z)`` quaternion and ``f_dc``
the degree-0 SH colour.

Example:
    >>> import tempfile, torch
    >>> folder = tempfile.TemporaryDirectory()
    >>> q = torch.rand(4, 4)
    >>> g = {"means": torch.rand(4, 3), "log_scales": torch.rand(4, 3), "quats": q / q.norm(dim=1, keepdim=True),
    ...      "opacity_logits": torch.rand(4), "f_dc": torch.rand(4, 3)}
    >>> path = write_ply(f"{folder.name}/a.ply", **g)
    >>> back = read_ply(path)
    >>> all(torch.allclose(back[k], g[k]) for k in g)
    True
    >>> folder.cleanup()
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vnvs.errors import InputError
from vnvs.recon.scene import DeformableGaussians
from vnvs.utils.atomic import atomic_path

SCENE_FORMAT = "vnvs-gaussian-scene"
SCENE_VERSION = 1
SCENE_JSON = "scene.json"
CANONICAL_FILE = "canonical.safetensors"
DEFORMATION_FILE = "deformation.safetensors"
PLY_DIR = "ply"

PLY_FIELDS = ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
              "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")


def ply_name(column: int) -> str:
    return f"{PLY_DIR}/time_{column:03d}.ply"


def write_ply(path: str | os.PathLike, means: torch.Tensor, log_scales: torch.Tensor, quats: torch.Tensor,
              opacity_logits: torch.Tensor, f_dc: torch.Tensor) -> Path:
    """Write Gaussians as a binary INRIA 3DGS PLY (atomically)."""
    n = means.shape[0]
    data = torch.cat([means, torch.zeros(n, 3), f_dc, opacity_logits[:, None], log_scales,
                      quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)], 1)
    arr = data.detach().cpu().float().numpy().astype("<f4")
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n" + "".join(
        f"property float {f}\n" for f in PLY_FIELDS) + "end_header\n"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(header.encode("ascii"))
            fh.write(np.ascontiguousarray(arr).tobytes())
    return Path(path)


def read_ply(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a binary little-endian 3DGS PLY (degree-0 fields; higher SH bands are ignored)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply") or end < 0:
        raise InputError(f"{path}: not a PLY file")
    lines = raw[:end].decode("ascii", "replace").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise InputError(f"{path}: only binary little-endian PLY files are supported")
    count = next((int(line.split()[2]) for line in lines if line.startswith("element vertex")), None)
    props = [line.split()[2] for line in lines if line.startswith("property")]
    if count is None or any(not line.startswith("property float") for line in lines if line.startswith("property")):
        raise InputError(f"{path}: expected float vertex properties")
    missing = [f for f in PLY_FIELDS if f not in props and not f.startswith("n")]
    if missing:
        raise InputError(f"{path}: not a 3DGS PLY (missing {', '.join(missing)})")
    body = np.frombuffer(raw, dtype="<f4", offset=end + len(b"end_header\n"))
    if body.size != count * len(props):
        raise InputError(f"{path}: truncated ({body.size} values for {count} vertices x {len(props)} properties)")
    table = torch.from_numpy(body.reshape(count, len(props)).copy())
    col = {p: i for i, p in enumerate(props)}

    def cols(*names):
        return table[:, [col[n] for n in names]]

    return {"means": cols("x", "y", "z"), "f_dc": cols("f_dc_0", "f_dc_1", "f_dc_2"),
            "opacity_logits": cols("opacity")[:, 0], "log_scales": cols("scale_0", "scale_1", "scale_2"),
            "quats": cols("rot_0", "rot_1", "rot_2", "rot_3")}


def write_scene(folder: Path, scene: DeformableGaussians, info: dict, ply_columns: list[int],
                times: torch.Tensor) -> list[str]:
    """Write a scene folder's files into ``folder`` (the caller makes the folder atomic). Returns the names."""
    names = [SCENE_JSON, CANONICAL_FILE, DEFORMATION_FILE]
    save_file({k: v.contiguous() for k, v in scene.gaussian_state_dict().items()}, str(folder / CANONICAL_FILE))
    save_file(scene.deformation_state_dict(), str(folder / DEFORMATION_FILE))
    (folder / PLY_DIR).mkdir(exist_ok=True)
    with torch.no_grad():
        for c in ply_columns:
            g = scene.at(float(times[c]))
            write_ply(folder / ply_name(c), g.means, g.log_scales, g.quats, g.opacity_logits, g.f_dc)
            names.append(ply_name(c))
    doc = {"format": SCENE_FORMAT, "version": SCENE_VERSION, "gaussians": len(scene), "model": scene.hparams,
           "canonical": CANONICAL_FILE, "deformation": DEFORMATION_FILE,
           "ply": {str(c): ply_name(c) for c in ply_columns}, **info}
    (folder / SCENE_JSON).write_text(json.dumps(doc, indent=1) + "\n")
    return names


def read_scene(folder: str | os.PathLike) -> tuple[DeformableGaussians, dict]:
    """Load a scene folder: ``(scene, scene.json document)``; one-line :class:`InputError` on any problem."""
    folder = Path(folder)
    path = folder / SCENE_JSON
    if not folder.is_dir():
        raise InputError(f"{folder}: not a scene folder (no such directory)")
    try:
        doc = json.loads(path.read_text())
    except OSError:
        raise InputError(f"{folder}: not a scene folder (no {SCENE_JSON}; write one with `vnvs reconstruct`)") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: malformed JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict) or doc.get("format") != SCENE_FORMAT:
        raise InputError(f"{path}: not a vnvs scene (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    if doc.get("version") != SCENE_VERSION:
        raise InputError(f"{path}: unsupported scene version {doc.get('version')!r} (this vnvs reads {SCENE_VERSION})")
    try:
        gaussians = load_file(str(folder / doc.get("canonical", CANONICAL_FILE)))
        deformation = load_file(str(folder / doc.get("deformation", DEFORMATION_FILE)))
        scene = DeformableGaussians.from_state(gaussians, deformation, doc["model"])
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as e:
        raise InputError(f"{folder}: broken scene weights ({' '.join(str(e).split())[:200]})") from None
    for key in ("height", "width", "time_range", "cameras"):
        if key not in doc:
            raise InputError(f"{path}: missing {key!r}")
    return scene, doc
