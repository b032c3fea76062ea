"""``run_eval``: one benchmark run, from settings to ``report.json`` / ``report.md``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from vnvs.errors import InputError
from vnvs.evaluation.config import DEFAULT_SCENES, EVAL_FILES, EvalConfig
from vnvs.evaluation.methods import load_generators, parse_methods
from vnvs.evaluation import grid as grid_bench
from vnvs.evaluation import real, synthetic
from vnvs.evaluation.report import build_report, write_report
from vnvs.utils.atomic import staged_output

def run_eval(config: EvalConfig) -> dict:
    """Run a benchmark, write the reports into ``config.output`` and return the report."""
    if config.benchmark == "grid":
        return _run_grid(config)
    methods = parse_methods(config.methods)
    if config.benchmark == "synthetic":
        synthetic.eval_scene_numbers(config.scenes or DEFAULT_SCENES, config.seed)  # validate before loading models
    elif config.data is None:
        raise InputError("the real benchmark needs data: a folder of flow pairs made by prepare (kind flow-pairs)")
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
    with staged_output(config.output, EVAL_FILES) as staging:
        write_report(report, staging)
    return report


def _run_grid(config: EvalConfig) -> dict:
    """The grid benchmark (:mod:`vnvs.evaluation.grid`)."""
    default_methods = EvalConfig.__dataclass_fields__["methods"].default
    text = grid_bench.GRID_METHODS_DEFAULT if config.methods == default_methods else config.methods
    methods = {m.label: m.spec for m in parse_methods(text)}
    scenes = config.scenes or DEFAULT_SCENES
    synthetic.eval_scene_numbers(scenes, config.seed)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    settings.update(scenes=scenes, methods=text, data=None, kind=None, trajectory=f"orbit:{config.max_orbit:g}",
                    mode="direct", cache=None)
    items, results, floor = grid_bench.run_grid_methods(
        methods, scenes=scenes, seed=config.seed, views=config.views, frames=config.frames, size=config.size,
        orbit=config.max_orbit, generator=config.grid_generator, steps=config.steps, device=config.device)
    notes = ("PSNR / SSIM over the generated cells (row 0 and column 0 are given). view error: mean absolute "
             "difference (0-255) between neighbouring generated views along the exact correspondence; time error: "
             "the same between consecutive times along the exact scene flow. The exact grid itself scores view "
             f"error {_num(floor['view_error'])} and time error {_num(floor['time_error'])} (interpolation). "
             "Seconds per cell: the method's wall time over the cells it produces, column 0 included.")
    report = build_report("grid", "scene", settings, items, results, grid_bench.METRICS, device=config.device,
                          notes=notes)
    report["exact"] = floor
    write_report(report, config.output)
    return report


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"
