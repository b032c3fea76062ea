"""``run_eval``: one benchmark run, from settings to ``report.json`` / ``report.md``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from vnvs.errors import InputError
from vnvs.evaluation.config import DEFAULT_SCENES, EVAL_FILES, EvalConfig
from vnvs.evaluation.methods import load_generators, parse_methods
from vnvs.evaluation import real, synthetic
from vnvs.evaluation.report import build_report, write_report
from vnvs.utils.atomic import staged_output

def run_eval(config: EvalConfig) -> dict:
    """Run a benchmark, write the reports into ``config.output`` and return the report."""
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
