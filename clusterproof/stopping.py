"""Being stopped from outside: the parent's death, a closed terminal, a child to hand a stop on to.

What tox 4 does when it is stopped (measured with tox 4.67 and a stand-in child, see tox.ini):
- SIGINT (to tox alone, or to its process group as a terminal's Ctrl-C does): tox sends its
  command SIGINT after `suicide_timeout`, SIGTERM `interrupt_timeout` later, SIGKILL
  `terminate_timeout` after that (defaults 0, 0.3, 0.2 s: pytest was killed 0.35 s into its
  cleanup);
- SIGTERM or SIGKILL to tox: tox dies at once and tells its command nothing. The command lives
  on, orphaned, its stdout a pipe (or pty) nobody reads: its next write fails (EPIPE, EIO), and
  a Go child writing there (kind) is killed by SIGPIPE, as Go programs are on fd 1 and 2.

So a process run by tox asks the kernel for SIGHUP when its parent dies (`stop_with_parent`, when
CLUSTERPROOF_STOP_WITH_PARENT=1, as tox.ini sets), and on SIGHUP first points its output at a
file (`divert_output`): a closed terminal or a dead parent means nobody reads it any more.
`call` runs a child (pytest under the benchmark) and hands every stop signal on to it.

A stop (SIGTERM, SIGHUP) is raised as `Stopped`, a KeyboardInterrupt: no `except Exception` can
swallow it (pytest.exit's Exit is an Exception, and was swallowed by every broad handler on the
way), and pytest ends the session as on Ctrl-C; the plugin makes its exit status 128 + the signal.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

STOP_WITH_PARENT_ENV = "CLUSTERPROOF_STOP_WITH_PARENT"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # linux/prctl.h

_PARENT_AT_START = os.getppid()


class Stopped(KeyboardInterrupt):
    """Stopped from outside by `signum`, after the cleanup ran."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.returncode = 128 + signum
        super().__init__(f"{signal.Signals(signum).name} received: cleaned up")


def _fd_target(fd: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _is_stream(target: str | None) -> bool:
    """A pipe or a terminal: what goes away with whoever reads it (a file does not)."""
    return bool(target) and (target.startswith("pipe:") or target.startswith("/dev/pts/") or target == "/dev/tty")


# What stdout and stderr were when the process started, before pytest's capture moved them: the
# descriptors pytest keeps to put them back are copies of these.
_STREAMS_AT_START = {t for t in (_fd_target(1), _fd_target(2)) if _is_stream(t)}


def stop_with_parent(env: Mapping[str, str] = os.environ) -> bool:
    """Linux, when CLUSTERPROOF_STOP_WITH_PARENT=1: SIGHUP to this process when its parent dies
    (sent at once if it already has). A SIGHUP handler must be installed first."""
    if env.get(STOP_WITH_PARENT_ENV) != "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGHUP), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != _PARENT_AT_START:  # the parent died before we asked
        os.kill(os.getpid(), signal.SIGHUP)
    return True


def divert_output(path: Path | None) -> list[int]:
    """Point every descriptor that writes to the terminal or pipe this process started with (and
    stdout/stderr if they are a pipe or terminal) at `path` (appended; os.devnull if None), so
    that cleanup and the children it starts can still write. Returns the descriptors moved."""
    if path is not None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sink = os.open(path or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        sink = os.open(os.devnull, os.O_WRONLY)
    streams = _STREAMS_AT_START | {t for t in (_fd_target(1), _fd_target(2)) if _is_stream(t)}
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = [1, 2]
        streams = None  # no /proc: move stdout and stderr whatever they are
    moved = []
    for fd in fds:
        if fd == sink or (streams is not None and _fd_target(fd) not in streams):
            continue
        with contextlib.suppress(OSError):
            os.dup2(sink, fd)
            moved.append(fd)
    os.close(sink)
    return moved


def run_as_group(command: Sequence[str], **popen: object) -> int:
    """Run `command` to its end in a process group of its own, and return its exit code. Stopped
    while it runs (Ctrl-C, Stopped: any BaseException), the whole group is killed and waited for
    before the stop goes on: the command's own children too. (`kind create` killed alone left its
    `docker run`s to finish making the cluster's nodes after the run had deleted the cluster.) A
    stop inside Popen itself, before the child is known, is not caught: a window of its return."""
    child = subprocess.Popen(list(command), start_new_session=True, **popen)  # type: ignore[call-overload]
    try:
        return child.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        raise


def call(command: Sequence[str], *, hangup_log: Path | None = None, **popen: object) -> tuple[int, int | None]:
    """Run `command`, handing SIGINT/SIGTERM/SIGHUP on to it (each as it comes) and waiting for it
    to finish its cleanup. SIGHUP also diverts this process's output to `hangup_log`. Returns
    (exit code, the first stop signal received or None). The child, when it is pytest, takes a
    repeat of the signal it already got (a terminal's Ctrl-C reaches both) as that same stop."""
    child: subprocess.Popen[bytes] | None = None
    first: list[int] = []

    def hand_on(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            divert_output(hangup_log)
        if not first:
            first.append(signum)
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    previous = {s: signal.signal(s, hand_on) for s in STOP_SIGNALS}
    try:
        child = subprocess.Popen(list(command), **popen)  # type: ignore[call-overload]
        if first:  # stopped while it was starting
            child.send_signal(first[0])
        rc = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return rc, (first[0] if first else None)
