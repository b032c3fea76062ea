"""User-facing errors.

Anything a user can cause (a bad file, a malformed trajectory, an impossible option) raises a
:class:`VnvsError` subclass with a one-line message. The CLI prints ``error: <message>`` and exits
with code 2; it never shows a traceback for these.
"""


class VnvsError(Exception):
    """Base class for errors caused by user input; the message is one line."""


class InputError(VnvsError, ValueError):
    """An input file or argument is unreadable, malformed or inconsistent."""


class VideoError(InputError):
    """A video cannot be opened or decoded, or holds no frames."""


class DepthError(InputError):
    """A depth file is missing, has the wrong shape, or holds non-finite / non-positive values."""


class TrajectoryError(InputError):
    """A trajectory spec or file is malformed or inconsistent with the video."""


class MissingDependencyError(VnvsError, ImportError):
    """An optional dependency is not installed; the message says how to install it."""
