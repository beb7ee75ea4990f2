"""Errors that reach the user.

A `TinyccError` is a mistake in the user's input (a model we cannot compile, a bad
file, a model that does not fit its part).  The command line prints its message as
one line and exits with status 2; everything else is a bug in tinycc-nn.
"""


class TinyccError(Exception):
    """A user-facing error: one line, names the file/node/tensor and what is wrong."""


class DoesNotFit(TinyccError):
    """The compiled program needs more ROM or RAM than the part has."""
