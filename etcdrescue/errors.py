"""Errors that end a run, each tied to the exit code the CLI reports."""

from __future__ import annotations

EXIT_OK = 0
EXIT_REFUSED = 2
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130


class RescueError(Exception):
    """Base class: the message is one line an operator can act on."""

    exit_code = EXIT_FAILED


class InputError(RescueError):
    """Bad input or a refusal before anything changed on any host."""

    exit_code = EXIT_REFUSED


class InventoryError(InputError):
    pass


class HostKeyError(InputError):
    pass


class TransportError(RescueError):
    """SSH trouble: connection refused, lost, authentication failed."""


class StepFailed(RescueError):
    pass


class GateTimeout(StepFailed):
    pass


class Interrupted(RescueError):
    exit_code = EXIT_INTERRUPTED
