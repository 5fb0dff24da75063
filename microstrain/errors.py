"""The one exception type for user-facing errors (bad input, missing file, refused overwrite).

The CLI prints its message as one line and exits non-zero; the REST service maps it to a 4xx.
Anything else escaping is a bug and keeps its traceback.
"""


class MicrostrainError(Exception):
    """A problem the user can fix; the message says what it is in one line."""


class InputError(MicrostrainError, ValueError):
    """An E map, fiber mask or option value that violates SPEC §2."""
