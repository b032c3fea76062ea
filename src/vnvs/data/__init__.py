"""Training data: pair and grid builders, sharded storage, a PyTorch dataset, local and Ray engines.

See ``docs/data.md``.
"""
