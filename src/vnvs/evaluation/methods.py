"""The methods a benchmark compares: ``--methods warp,warp+inpaint,mine=runs/exp1/model``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from vnvs.cameras.camera import scale_intrinsics
from vnvs.defaults import DEFAULT_GENERATOR
from vnvs.errors import InputError
from vnvs.generators import get_generator
from vnvs.generators.grid import get_grid_generator
from vnvs.geometry.control import MASK, WARPED
from vnvs.io.grid import Grid
from vnvs.recon.config import ReconSettings
from vnvs.recon.optimize import reconstruct, render_views


@dataclass
class Method:
    """One method of a benchmark run."""

    label: str
    """Its name in the reports (the alias before ``=``, else the generator name or the folder's name)."""
    spec: str
    """What ``vnvs.generators.get_generator`` receives: a registered name or a saved model folder."""


def parse_methods(text: str | list[str]) -> list[Method]:
    """Parse a comma-separated method list; each entry is ``NAME`` or ``LABEL=NAME``.

    ``NAME`` is any name ``vnvs.generators.get_generator`` accepts (``warp``, ``warp+inpaint``,
    ``default``, a saved model folder).

    Example:
        >>> [(m.label, m.spec) for m in parse_methods("warp, best=runs/a/model")]
        [('warp', 'warp'), ('best', 'runs/a/model')]
    """
    items = text if isinstance(text, list) else str(text).split(",")
    methods: list[Method] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        label, sep, spec = item.partition("=")
        label, spec = (label.strip(), spec.strip()) if sep else ("", item)
        if sep and (not label or not spec):
            raise InputError(f"method {item!r} must be NAME or LABEL=NAME")
        if not label:
            p = Path(spec)
            label = p.resolve().name if p.is_dir() else spec
        methods.append(Method(label, spec))
    if not methods:
        raise InputError("the method list is empty; give e.g. warp,warp+inpaint,default")
    labels = [m.label for m in methods]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise InputError(f"the method list names {', '.join(dupes)} more than once; give aliases (LABEL=NAME)")
    return methods


GRID_PREFIX = "grid:"
"""A method ``grid:NAME`` is the grid model ``NAME`` (``4real-trained``, a grid preset or a grid model folder)."""


@dataclass
class GridMethod:
    """A grid model as a method of the dataset benchmarks. The item's source video (row 0, with its depth)
    and its target camera path (row 1) form a two-row time x view grid; the first target frame comes
    from the novel-view generator (the freeze-time sweep of the first frame, as ``vnvs grid`` does), and
    the grid model fills the rest of the target row, which is the prediction; as ``vnvs grid`` does by
    default, the source warped to the target (the control signal's ``I_r``) is kept where it landed."""

    grid: object
    """A :class:`vnvs.generators.grid.GridGenerator`."""
    novel: object
    """The novel-view generator of the first target frame."""
    name: str
    needs_item = True
    """The scoring loop passes the item (source video, depth, cameras), not only the control signal."""

    def __call__(self, control: torch.Tensor, *, seed: int = 0, item=None) -> torch.Tensor:
        if item is None:
            raise InputError(f"{self.name} needs the source video: use the dycheck, kubric4d or videos benchmark")
        N, (H, W) = control.shape[0], item.size
        src, depth, valid = item.frames[item.times].float(), item.depth[item.times].float(), item.valid[item.times]
        K_src, w2c_src = item.K_src[item.times].float(), item.w2c_src[item.times].float()
        if tuple(src.shape[-2:]) != (H, W):
            sy, sx = H / src.shape[-2], W / src.shape[-1]
            src = F.interpolate(src, size=(H, W), mode="bilinear", align_corners=False, antialias=True)
            depth = F.interpolate(depth[:, None], size=(H, W), mode="nearest")[:, 0]
            valid = F.interpolate(valid[:, None].float(), size=(H, W), mode="nearest")[:, 0] > 0.5
            K_src = scale_intrinsics(K_src, sx, sy)
        frames = torch.zeros(2, N, 3, H, W)
        frames[0] = src
        frames[1, 0] = self.novel(control[:1], seed=seed)[0].float().cpu().clamp(0, 1)
        known = torch.zeros(2, N, dtype=torch.bool)
        known[0], known[1, 0] = True, True
        grid_depth = torch.zeros(2, N, H, W)
        grid_depth[0] = torch.where(valid, depth, torch.zeros_like(depth))
        depth_valid = torch.zeros(2, N, H, W, dtype=torch.bool)
        depth_valid[0] = valid
        warped = torch.stack([src, control[:, WARPED].float().cpu()])
        warped_mask = torch.stack([torch.ones(N, H, W, dtype=torch.bool), control[:, MASK][:, 0].cpu() > 0.5])
        out = self.grid(frames, known, torch.stack([w2c_src, item.w2c_tgt.float()]),
                        torch.stack([K_src, item.K_tgt.float()]), depth=grid_depth, depth_valid=depth_valid,
                        warped=warped, warped_mask=warped_mask, seed=seed)
        return out[1]


SCENE_PREFIX = "scene:"
"""A method ``scene:STEPS`` (or ``scene``) is a 4D Gaussian reconstruction of the source video, fitted for
STEPS steps (default :data:`SCENE_STEPS`) and rendered from the target cameras."""
SCENE_STEPS = 300


@dataclass
class SceneMethod:
    """A reconstructed 4D scene as a method of the dataset benchmarks: the item's source video with its depth
    is fitted as a one-row grid by :func:`vnvs.recon.optimize.reconstruct` (deformable Gaussians), and the
    scene is rendered from each target camera at its frame's time."""

    steps: int
    name: str
    device: str | None = None
    needs_item = True

    def __call__(self, control: torch.Tensor, *, seed: int = 0, item=None) -> torch.Tensor:
        if item is None:
            raise InputError(f"{self.name} needs the source video: use the dycheck, kubric4d or videos benchmark")
        used = torch.unique(item.times)
        frames, depth, valid = item.frames[used].float(), item.depth[used].float(), item.valid[used]
        span = max(int(item.frames.shape[0]) - 1, 1)
        grid = Grid(frames[None], item.w2c_src[used].float()[None], item.K_src[used].float()[None], fps=24.0,
                    time=used.float() / span, time_index=used, depth=torch.where(valid, depth, 0)[None],
                    valid=valid[None])
        settings = ReconSettings(steps=self.steps, deform_warmup=min(100, self.steps // 3),
                                 device="cpu" if self.device is None else self.device)
        scene = reconstruct(grid, settings, seed=seed).scene
        H, W = item.size
        images, _, _ = render_views(scene, item.w2c_tgt.float(), item.K_tgt.float(), item.times.float() / span, H, W)
        return images


def load_generators(methods: list[Method], *, allow_grid: bool = False, **options) -> dict[str, object]:
    """Build every method's generator up front, so a bad name fails before any work is done.

    ``options`` go to learned generators (``steps``, ``guidance``, ``device``, ...). ``grid:NAME`` methods
    (:class:`GridMethod`) are accepted where ``allow_grid`` (benchmarks that give the source video).
    """
    out = {}
    for m in methods:
        try:
            if m.spec == SCENE_PREFIX.rstrip(":") or m.spec.startswith(SCENE_PREFIX):
                if not allow_grid:
                    raise InputError("reconstructed scenes need the source video and its cameras: use them with the "
                                     "dycheck, kubric4d or videos benchmark")
                text = m.spec[len(SCENE_PREFIX):] if m.spec.startswith(SCENE_PREFIX) else ""
                if text and not (text.isdigit() and int(text) > 0):
                    raise InputError(f"a scene method is scene or scene:STEPS with STEPS a positive integer, got {m.spec!r}")
                out[m.label] = SceneMethod(int(text) if text else SCENE_STEPS, m.spec, options.get("device"))
            elif m.spec.startswith(GRID_PREFIX):
                if not allow_grid:
                    raise InputError("grid methods need the source video and its cameras: use them with the dycheck, "
                                     "kubric4d or videos benchmark (or --benchmark grid)")
                grid = get_grid_generator(m.spec[len(GRID_PREFIX):], steps=options.get("steps"),
                                          device=options.get("device"))
                novel = get_generator(DEFAULT_GENERATOR, **options)
                out[m.label] = GridMethod(grid, novel, m.spec)
            else:
                out[m.label] = get_generator(m.spec, **options)
        except InputError as exc:
            raise InputError(f"method {m.label!r}: {exc}") from None
    return out
