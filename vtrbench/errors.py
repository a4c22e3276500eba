"""User-facing errors.

Anything raised as :class:`VtrbenchError` is printed by the CLI as a one-line
message (no traceback) and exits with status 2. Internal bugs still raise
ordinary exceptions so that they are not hidden.
"""


class VtrbenchError(Exception):
    """An error caused by the user's input (a bad name, file, option or cache)."""


class AnnotationError(VtrbenchError):
    """An annotation file is missing or not in the expected format."""


class CacheError(VtrbenchError):
    """A feature cache is missing, incomplete, or does not match what was asked."""
