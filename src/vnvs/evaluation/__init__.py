"""``vnvs eval``: score generators on benchmarks with ground truth and write a report.

Benchmarks:

* ``synthetic`` (:mod:`vnvs.evaluation.synthetic`): held-out procedural scenes (scene numbers
  disjoint from every training scene), a novel trajectory each, exact ground-truth target video
  and exact co-visibility; PSNR / SSIM over the full frame, the co-visible and the disoccluded
  regions, seconds per frame.
* ``real`` (:mod:`vnvs.evaluation.real`): the self-supervised task on held-out real videos (pairs
  prepared by ``vnvs prepare --kind flow-pairs``): predict the target clip from its control signal.

Reports: ``report.json`` (per-scene and mean values, settings, machine) and ``report.md`` (a
Markdown table), see :mod:`vnvs.evaluation.report`. See ``docs/evaluation.md``.
"""
