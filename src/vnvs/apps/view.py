"""``vnvs view``: a scene folder or a 3DGS PLY in the browser, through viser (the ``viewer`` extra).

A scene folder gets a time slider: moving it re-evaluates the deformation and replaces the splats.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from vnvs.apps.recon_config import ViewConfig
from vnvs.errors import InputError
from vnvs.recon.formats import read_ply, read_scene
from vnvs.recon.rasterize import SH_C0, covariance_3d


def _splats(g: dict[str, torch.Tensor]) -> dict:
    """viser's ``add_gaussian_splats`` arguments from Gaussian parameters."""
    with torch.no_grad():
        return {"centers": g["means"].float().numpy(),
                "covariances": covariance_3d(g["log_scales"], g["quats"]).float().numpy(),
                "rgbs": (SH_C0 * g["f_dc"] + 0.5).clamp(0, 1).float().numpy(),
                "opacities": torch.sigmoid(g["opacity_logits"])[:, None].float().numpy()}


def load_viewable(path: Path):
    """``(splats_at(t) -> dict, times or None)`` for a scene folder or a PLY file (validated before viser loads)."""
    if path.is_file() and path.suffix.lower() == ".ply":
        g = read_ply(path)
        return (lambda t: _splats(g)), None
    scene, doc = read_scene(path)

    def at(t: float) -> dict:
        s = scene.at(float(t))
        return _splats({"means": s.means, "log_scales": s.log_scales, "quats": s.quats,
                        "opacity_logits": s.opacity_logits, "f_dc": s.f_dc})

    return at, doc.get("time")


def run_view(config: ViewConfig) -> None:  # pragma: no cover - serves until interrupted
    at, times = load_viewable(config.path)
    try:
        import viser
    except ImportError:
        raise InputError("vnvs view needs viser: pip install 'vnvs[viewer]'") from None
    server = viser.ViserServer(host=config.host, port=config.port)

    def show(t: float) -> None:
        server.scene.add_gaussian_splats("/scene", **at(t))

    if times:
        slider = server.gui.add_slider("time", min=0.0, max=1.0, step=1.0 / max(len(times) - 1, 1),
                                       initial_value=float(times[len(times) // 2]))

        @slider.on_update
        def _(_event) -> None:
            show(slider.value)

        show(slider.value)
    else:
        show(0.0)
    print(f"vnvs view: http://{config.host}:{config.port} (Ctrl+C to stop)", flush=True)
    while True:
        time.sleep(1.0)
