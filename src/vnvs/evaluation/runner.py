"""``run_eval``: one benchmark run, from settings to ``report.json`` / ``report.md``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from vnvs.errors import InputError
from vnvs.evaluation.methods import load_generators, parse_methods
from vnvs.evaluation import real, synthetic
from vnvs.evaluation.report import build_report, write_report

BENCHMARKS = ("synthetic", "real")
DEFAULT_SCENES = 8
"""Scenes of the synthetic benchmark when ``scenes`` is not given."""


@dataclass
class EvalConfig:
    """Settings of ``vnvs eval``."""

    benchmark: str = "synthetic"
    """``synthetic`` (held-out procedural scenes) or ``real`` (prepared flow pairs of held-out videos)."""
    methods: str = "warp,warp+inpaint"
    """Comma-separated methods: generator names or saved model folders, optionally ``LABEL=NAME``."""
    output: Path = Path("vnvs_eval")
    """Folder for ``report.json`` and ``report.md``."""
    scenes: int | None = None
    """synthetic: number of scenes (default 8); real: at most this many samples (default all)."""
    seed: int = 0
    """synthetic: which held-out scenes; both: the generators' seed."""
    frames: int = 25
    """synthetic: frames per source video."""
    size: int = 128
    """synthetic: frame height and width."""
    trajectory: str = "random"
    """synthetic: ``random`` (a random orbit + arc + dolly per scene, as in training) or a preset / file."""
    mode: str = "gradual"
    """synthetic: mode of a fixed ``trajectory`` (``gradual`` / ``direct``); random ones draw their own."""
    max_orbit: float = 30.0
    """synthetic: largest orbit angle of random trajectories, degrees."""
    cache: Path | None = None
    """synthetic: folder keeping rendered scenes between runs (rendering is the slow part; default: none)."""
    data: Path | None = None
    """real: folder written by ``vnvs prepare --kind flow-pairs``."""
    kind: str = "flow-pairs"
    """real: sample kind to score."""
    steps: int | None = None
    """Learned methods: sampling steps (default: the model folder's ``sampling.json``, else 20)."""
    guidance: float | None = None
    """Learned methods: classifier-free guidance scale on the control signal (default 1)."""
    device: str | None = None
    """Learned methods: ``cpu``, ``cuda``, ``cuda:1`` ... (default: CUDA when available)."""
    extra: dict = field(default_factory=dict)
    """Other settings of learned generators (``resolution``, ``window``, ...)."""


def run_eval(config: EvalConfig) -> dict:
    """Run a benchmark, write the reports into ``config.output`` and return the report."""
    if config.benchmark not in BENCHMARKS:
        raise InputError(f"unknown benchmark {config.benchmark!r}; choose from {', '.join(BENCHMARKS)}")
    methods = parse_methods(config.methods)
    if config.benchmark == "synthetic":
        synthetic.eval_scene_numbers(config.scenes or DEFAULT_SCENES, config.seed)  # validate before loading models
    elif config.data is None:
        raise InputError("--benchmark real needs --data DIR (a folder prepared by vnvs prepare --kind flow-pairs)")
    options = {k: v for k, v in (("steps", config.steps), ("guidance", config.guidance),
                                 ("device", config.device)) if v is not None}
    options.update(config.extra)
    generators = load_generators(methods, **options)
    specs = {m.label: m.spec for m in methods}
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    if config.benchmark == "synthetic":
        settings.update(scenes=config.scenes or DEFAULT_SCENES, data=None, kind=None)
        items, results = synthetic.run_synthetic(generators, specs, scenes=config.scenes or DEFAULT_SCENES, seed=config.seed,
                                       frames=config.frames, size=config.size, trajectory=config.trajectory,
                                       mode=config.mode, max_orbit=config.max_orbit, cache=config.cache)
        report = build_report("synthetic", "scene", settings, items, results, synthetic.METRICS, device=config.device,
                              notes="Co-visible: target pixels whose surface point the source frame sees (exact "
                                    "geometry); disoccluded: the rest. Seconds per frame: the generator alone.")
    else:
        for k in ("frames", "size", "trajectory", "mode", "max_orbit", "cache"):
            settings[k] = None
        items, results = real.run_real(generators, specs, config.data, kind=config.kind, limit=config.scenes,
                                  seed=config.seed)
        report = build_report("real", "clip", settings, items, results, real.METRICS, device=config.device,
                              notes="M: target pixels a source pixel reached along the optical flow; not M: the "
                                    "rest. Seconds per frame: the generator alone.")
    write_report(report, config.output)
    return report
