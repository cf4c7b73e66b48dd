"""One exception family. The CLI prints any of these as one line on stderr and exits 2."""

from __future__ import annotations


class SsmbenchError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class BadInput(SsmbenchError):
    """An argument or file the user gave is invalid (unknown name, negative size, ...)."""


class BackendUnavailable(SsmbenchError):
    """A backend that was asked for explicitly cannot run on this device."""


class ResultsError(SsmbenchError):
    """A results folder or baseline file is missing, corrupt or of another schema version."""
