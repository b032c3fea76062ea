"""The names of what ``vnvs prepare`` builds (no heavy imports: the command line reads them)."""

PREPARE_KINDS = ("flow-pairs", "covis", "affine4d", "synthetic")
"""Values of ``vnvs prepare --kind``."""
PAIR_KINDS = ("flow-pairs", "covis", "synthetic-pairs", "synthetic-covis")
GRID_KINDS = ("affine4d", "synthetic-grid")
SAMPLE_KINDS = PAIR_KINDS + GRID_KINDS
"""Kinds a stored sample can have (``synthetic`` work items yield the three synthetic kinds)."""
PREPARE_KIND_OF = {"flow-pairs": "flow-pairs", "covis": "covis", "affine4d": "affine4d",
                   "synthetic-pairs": "synthetic", "synthetic-covis": "synthetic", "synthetic-grid": "synthetic"}
"""The prepare kind that builds each sample kind."""
