"""The methods a benchmark compares: ``--methods warp,warp+inpaint,mine=runs/exp1/model``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vnvs.errors import InputError
from vnvs.generators import get_generator


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


def load_generators(methods: list[Method], **options) -> dict[str, object]:
    """Build every method's generator up front, so a bad name fails before any work is done.

    ``options`` go to learned generators (``steps``, ``guidance``, ``device``, ...).
    """
    out = {}
    for m in methods:
        try:
            out[m.label] = get_generator(m.spec, **options)
        except InputError as exc:
            raise InputError(f"method {m.label!r}: {exc}") from None
    return out
