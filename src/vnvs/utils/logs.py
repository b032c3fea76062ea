"""How vnvs talks to a person: library modules log through ``logging.getLogger(__name__)``; the
``vnvs`` command shows warnings and errors of the ``vnvs`` loggers once, on stderr, as
``warning: ...`` lines that do not break progress bars. A library user keeps control of logging:
nothing here runs on import."""

from __future__ import annotations

import logging
import sys

from tqdm.auto import tqdm


class _ProgressSafeHandler(logging.Handler):
    """Writes records between progress-bar redraws (``tqdm.write``)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {' '.join(record.getMessage().split())}"


def configure_cli_logging(level: int = logging.WARNING) -> None:
    """Show the ``vnvs`` loggers' records of ``level`` and above on stderr (idempotent)."""
    logger = logging.getLogger("vnvs")
    if any(isinstance(h, _ProgressSafeHandler) for h in logger.handlers):
        return
    handler = _ProgressSafeHandler()
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
