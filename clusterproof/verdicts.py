"""Failed, or could not evaluate: what a test's outcome says about its claim.

- `failed`: the cluster broke the claim: its observable was reached and was not as claimed (an
  AssertionError, a wait for the observed behaviour that came to nothing). A fixture that finds
  the observable itself broken raises `Broken` (pytest would call any failing fixture an error).
- `error`: the claim could not be evaluated because a set-up step failed before the observable
  was reached: the step raised inside `setup_step(...)` (or a jig's set-up verb), which turns
  any exception into `SetupFailed` naming the step and the cause in the API server's words.

The plugin calls `classify` from pytest_runtest_makereport: the verdict travels as attributes
of the report (so it reaches the pytest-xdist controller), and `teststatus` puts it into the
terminal's categories (a set-up failure in a test body shows as ERROR, not FAILED).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from typing import Any

from kubernetes import client

from clusterproof.api_answers import ApiAnswer
from clusterproof.errors import Broken, ClusterproofError, SetupFailed

OUTCOME = "clusterproof_outcome"  # report attribute: "error" or "failed", when the plugin decided
REASON = "clusterproof_reason"  # report attribute: the one-line reason for the claims table
_STDERR_LINES = 6


@contextlib.contextmanager
def setup_step(step: str) -> Iterator[None]:
    """`with setup_step("create the notes' NodePort Service np-svc"): ...`: whatever goes wrong
    inside is `SetupFailed(step, cause)` (the test's outcome: error, could not evaluate). Skips,
    `Broken` and nested SetupFailed pass through unchanged."""
    try:
        yield
    except (SetupFailed, Broken):
        raise
    except Exception as e:
        raise SetupFailed(step, words(e)) from e


def words(error: BaseException) -> str:
    """An error in the words of whoever refused: the API server's status, reason, message and
    field causes; a command's exit code and stderr; our own errors as they read."""
    if isinstance(error, SetupFailed):
        return error.cause
    if isinstance(error, client.ApiException):
        answer = ApiAnswer.from_exception(error)
        return answer.detail if answer.body else f"HTTP {error.status} {error.reason or ''}".strip()
    if isinstance(error, subprocess.CalledProcessError):
        argv = error.cmd if isinstance(error.cmd, list | tuple) else [str(error.cmd)]
        shown = " ".join(str(a) for a in argv if not str(a).startswith("--kubeconfig="))
        stderr = error.stderr.decode("utf-8", "replace") if isinstance(error.stderr, bytes) else error.stderr or ""
        said = " | ".join(line.strip() for line in stderr.strip().splitlines()[:_STDERR_LINES] if line.strip())
        return f"`{shown}` exited {error.returncode}" + (f": {said}" if said else "")
    if isinstance(error, ClusterproofError | AssertionError):
        return str(error) or type(error).__name__
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def classify(report: Any, error: BaseException | None) -> None:
    """Mark a report (pytest_runtest_makereport) with the verdict its exception means."""
    if error is None or not report.failed:
        return
    if isinstance(error, SetupFailed):
        setattr(report, OUTCOME, "error")
        setattr(report, REASON, str(error))
    elif isinstance(error, Broken):
        setattr(report, OUTCOME, "failed")
        setattr(report, REASON, str(error))
    elif isinstance(error, client.ApiException):  # a typed client's exception reads "(422)\nReason: ..."
        setattr(report, REASON, f"{type(error).__name__}: {words(error)}")


def outcome_of(report: Any) -> str | None:
    return getattr(report, OUTCOME, None)


def reason_of(report: Any) -> str | None:
    return getattr(report, REASON, None)


def teststatus(report: Any) -> tuple[str, str, str] | None:
    """pytest_report_teststatus: the terminal's category for a classified failure."""
    if not report.failed:
        return None
    outcome = outcome_of(report)
    if outcome == "error":
        return "error", "E", "ERROR"
    if outcome == "failed":
        return "failed", "F", "FAILED"
    return None
