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
    def __init__(self, message: str, logs: dict[str, str] | None = None, report: object = None) -> None:
        super().__init__(message)
        self.logs = logs or {}
        self.report = report
        """The gate's last GateReport: who was unhealthy when time ran out."""


class Interrupted(RescueError):
    exit_code = EXIT_INTERRUPTED


class StalePicture(InputError):
    """The fresh look before the first change found the cluster no longer as the pre-flight saw it."""


class SurveyFailed(RescueError):
    """A pre-flight probe raised instead of answering (a bug, an unwrapped library error): named by its target."""

    @classmethod
    def of(cls, target: str, exc: BaseException) -> SurveyFailed:
        first = (str(exc).strip().splitlines() or [""])[0]
        return cls(f"{target}: {type(exc).__name__}: {first}" if first else f"{target}: {type(exc).__name__}")
