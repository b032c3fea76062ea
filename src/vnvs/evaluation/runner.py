"""``run_eval``: one benchmark run, from settings to ``report.json`` / ``report.md``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from vnvs.errors import InputError
from vnvs.evaluation import grid as grid_bench
from vnvs.evaluation import real, synthetic
from vnvs.evaluation.config import (
    DATASET_BENCHMARKS,
    DEFAULT_SCENES,
    EVAL_FILES,
    EvalConfig,
)
from vnvs.evaluation.datasets import index_dycheck, index_kubric4d, index_videos
from vnvs.evaluation.methods import load_generators, parse_methods
from vnvs.evaluation.plots import write_figures
from vnvs.evaluation.report import build_report, write_report
from vnvs.evaluation.scoring import SET_METRICS, benchmark_metrics, run_items
from vnvs.metrics.suite import MetricOptions, load_metric_networks
from vnvs.utils.atomic import staged_output

DATASET_NAMES = {"dycheck": "DyCheck iPhone (public layout)", "kubric4d": "Kubric-4D (GCD's layout)",
                 "videos": "folder of videos (vnvs layout)"}

def run_eval(config: EvalConfig) -> dict:
    """Run a benchmark, write the reports into ``config.output`` and return the report."""
    if config.benchmark == "grid":
        return _run_grid(config)
    if config.benchmark in DATASET_BENCHMARKS:
        return _run_dataset(config)
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
    _write(report, config.output)
    return report


def _write(report: dict, output, sheets=()) -> None:
    """Reports, plots and contact sheets, into a staging folder that replaces ``output`` whole."""
    with staged_output(output, EVAL_FILES) as staging:
        report["figures"] = write_figures(report, staging, sheets)
        write_report(report, staging)


def metric_options(config: EvalConfig) -> MetricOptions:
    """The metric networks' settings of a run."""
    def text(p):
        return None if p is None else str(p)

    return MetricOptions(lpips=None if config.lpips == "none" else config.lpips, lpips_weights=text(config.lpips_weights),
                         fid_weights=text(config.fid_weights), fvd_weights=text(config.fvd_weights),
                         clip_model=config.clip_model, device=config.device or "cpu")


def index_dataset(config: EvalConfig) -> list:
    """The items of a dataset benchmark (validates the folder's layout)."""
    if config.data is None:
        raise InputError(f"the {config.benchmark} benchmark needs data: the dataset folder")
    if config.benchmark == "dycheck":
        return index_dycheck(config.data, factor=config.factor, stride=config.stride, max_frames=config.max_frames)
    if config.benchmark == "kubric4d":
        return index_kubric4d(config.data, source_view=config.source_view, target_views=config.target_view_list(),
                              stride=config.stride, max_frames=config.max_frames)
    trajectory = None if config.trajectory == "random" else config.trajectory
    return index_videos(config.data, trajectory=trajectory, mode=config.mode, depth=config.depth, stride=config.stride,
                        max_frames=config.max_frames, device=config.device)


def _run_dataset(config: EvalConfig) -> dict:
    """A benchmark read from a dataset folder (:mod:`vnvs.evaluation.datasets`, :mod:`vnvs.evaluation.scoring`)."""
    methods = parse_methods(config.methods)
    refs = index_dataset(config)
    if config.scenes is not None:
        refs = refs[: config.scenes]
    options = {k: v for k, v in (("steps", config.steps), ("guidance", config.guidance),
                                 ("device", config.device)) if v is not None}
    options.update(config.extra)
    generators = load_generators(methods, allow_grid=True, **options)
    specs = {m.label: m.spec for m in methods}
    mopts = metric_options(config)
    nets = load_metric_networks(mopts)
    items, results, facts, sheets = run_items(refs, generators, specs, benchmark=config.benchmark, seed=config.seed,
                                              options=mopts, nets=nets, renderer=config.renderer, sheets=config.sheets)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    for k in ("frames", "size", "max_orbit", "cache", "kind", "views", "grid_generator"):
        settings[k] = None
    if config.benchmark != "videos":
        settings.update(trajectory=None, mode=None, depth=None)
    metrics = benchmark_metrics(config.benchmark)
    report = build_report(config.benchmark, "item", settings, items, results, metrics, device=config.device,
                          notes=_notes(config.benchmark))
    first = next(iter(results.values()), {}).get("set", {})
    for m in results.values():
        for k in SET_METRICS:
            m["mean"][k] = m["set"].get(k)
    report["set_metrics"] = list(SET_METRICS)
    report["protocol"] = _protocol(config, facts, first)
    _write(report, config.output, sheets)
    return report


def _notes(benchmark: str) -> str:
    if benchmark == "dycheck":
        return ("DyCheck protocol: each validation camera is an item; every frame is predicted from the training "
                "frame of the same time carried to the validation camera with its depth. mPSNR / mSSIM / mLPIPS: "
                "over the co-visibility mask (DyCheck's covisible/); PSNR / SSIM / LPIPS: the whole frame. "
                "Seconds per frame: the generator alone.")
    if benchmark == "kubric4d":
        return ("Kubric-4D protocol: the source view with its depth is the input; each other view is an item scored "
                "over the whole frame at native resolution. Seconds per frame: the generator alone.")
    return ("Videos: each source video is rendered along its trajectory (as vnvs render); frame metrics need a "
            "NAME.target video; RotErr / TransErr: camera accuracy of the generated video against the trajectory.")


def _protocol(config: EvalConfig, facts: dict, set_info: dict) -> dict:
    sizes = ", ".join(f"{w}x{h}" for h, w in facts["sizes"]) or "-"
    masked = (f"yes, on {facts['masked_items']} item(s): DyCheck's co-visibility mask (mPSNR, mSSIM, mLPIPS); "
              "unmasked metrics over the whole frame" if facts["masked_items"] else "no (whole frame)")
    split = {"dycheck": f"val (held-out cameras), image scale {config.factor or 'from extra.json'}",
             "kubric4d": f"source view {config.source_view}, target views {config.target_views or 'all others'}",
             "videos": "all videos in the folder"}[config.benchmark]
    return {
        "dataset": f"{DATASET_NAMES[config.benchmark]} at {config.data}",
        "split": split,
        "masked": masked,
        "resolution (W x H)": sizes,
        "frames": f"{facts['frames']} target frames in total (stride {config.stride}, "
                  f"at most {config.max_frames or 'all'} per item)",
        "ground truth": f"{facts['items_with_truth']} item(s) have it",
        "control signal": f"render_control, {config.renderer} renderer",
        "LPIPS network": config.lpips,
        "FID feature network": set_info.get("fid_network", "none"),
        "FVD variant / feature network": set_info.get("fvd_variant", "none"),
        "set metrics reference": "the ground-truth targets (else the source videos)",
    }


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
        orbit=config.max_orbit, generator=config.grid_generator, steps=config.steps, device=config.device,
        composite=config.grid_composite, seamless=config.grid_seamless)
    notes = ("PSNR / SSIM over the generated cells (row 0 and column 0 are given). view error: mean absolute "
             "difference (0-255) between neighbouring generated views along the exact correspondence; time error: "
             "the same between consecutive times along the exact scene flow. The exact grid itself scores view "
             f"error {_num(floor['view_error'])} and time error {_num(floor['time_error'])} (interpolation). "
             "Seconds per cell: the method's wall time over the cells it produces, column 0 included. Grid models "
             + ("keep the source video warped to each cell wherever it landed and paint the holes (composite"
                + (", seamless)." if config.grid_seamless else ", not seamless).")
                if config.grid_composite else "are scored on their own cells (no composite)."))
    report = build_report("grid", "scene", settings, items, results, grid_bench.METRICS, device=config.device,
                          notes=notes)
    report["exact"] = floor
    _write(report, config.output)
    return report


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"
