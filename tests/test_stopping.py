"""clusterproof.stopping: real processes (small Python children), no tox, no cluster."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from clusterproof import stopping

PY = sys.executable


def test_divert_output_moves_a_dead_pipe_to_the_file(tmp_path):
    """The reader of the child's stdout goes away (as tox does): after divert_output the child
    and the children it starts write to the file instead of failing."""
    log = tmp_path / "hangup.log"
    child = subprocess.Popen(
        [PY, "-c", textwrap.dedent(f"""
            import subprocess, sys, time
            from pathlib import Path
            from clusterproof import stopping
            print("before", flush=True)
            time.sleep(0.5)  # the reader is gone by now
            stopping.divert_output(Path({str(log)!r}))
            print("after, from the process", flush=True)
            subprocess.call(["sh", "-c", "echo after, from a child >&2"])
        """)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout.readline() == b"before\n"
    child.stdout.close()
    child.stderr.close()
    assert child.wait(timeout=20) == 0
    assert log.read_text() == "after, from the process\nafter, from a child\n"


def test_stop_with_parent_sends_sighup_when_the_parent_dies(tmp_path):
    """parent -> child: the child asked for SIGHUP on its parent's death (as pytest under tox
    does); SIGKILL to the parent, and the child's handler runs."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    marker = tmp_path / "hup"
    ready = tmp_path / "ready"
    child_code = textwrap.dedent(f"""
        import signal, time
        from pathlib import Path
        from clusterproof import stopping
        signal.signal(signal.SIGHUP, lambda *a: (Path({str(marker)!r}).write_text("hup"), exit(0)))
        assert stopping.stop_with_parent({{"{stopping.STOP_WITH_PARENT_ENV}": "1"}})
        Path({str(ready)!r}).write_text("ready")
        time.sleep(30)
    """)
    parent = subprocess.Popen(
        [PY, "-c", f"import subprocess, time; subprocess.Popen([{PY!r}, '-c', {child_code!r}]); time.sleep(30)"]
    )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists()
        parent.kill()
        # the handler's write_text makes the file before it writes: an empty file is not yet its answer
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.read_text() == "hup"
    finally:
        parent.kill()
        parent.wait()


def test_stop_with_parent_is_off_unless_asked():
    assert stopping.stop_with_parent({}) is False


def test_call_hands_the_stop_on_and_waits_for_the_child_to_finish():
    """SIGTERM to us while the child runs: the child gets it, its cleanup runs to the end."""
    code = textwrap.dedent("""
        import signal, sys, time
        def stop(signum, frame):
            time.sleep(0.3)  # cleaning up
            sys.exit(7)
        signal.signal(signal.SIGTERM, stop)
        print("ready", flush=True)
        time.sleep(30)
    """)
    before = signal.getsignal(signal.SIGTERM)
    read, write = os.pipe()

    def stop_us_when_the_child_is_ready():
        with os.fdopen(read) as lines:
            if lines.readline() == "ready\n":
                os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_us_when_the_child_is_ready, daemon=True).start()
    rc, stop = stopping.call([PY, "-c", code], stdout=write)
    os.close(write)
    assert (rc, stop) == (7, signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_run_as_group_stopped_kills_the_command_and_its_children(tmp_path, monkeypatch):
    """A stop while the command runs: its child (as kind's `docker run`) dies with it, before the
    stop goes on (else it would finish its work after the run cleaned up)."""
    pids = tmp_path / "pids"
    code = f"sleep 60 & echo $! > {pids}; echo ready; wait"
    read, write = os.pipe()
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: (_ for _ in ()).throw(KeyboardInterrupt()))
    waiting = threading.Event()  # the stop comes once we wait for the command, as a stop during kind create
    real_wait = subprocess.Popen.wait
    monkeypatch.setattr(subprocess.Popen, "wait", lambda self, *a, **k: waiting.set() or real_wait(self, *a, **k))

    def stop_us_when_the_command_is_ready():
        with os.fdopen(read) as lines:
            if lines.readline() == "ready\n" and waiting.wait(10):
                signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)

    threading.Thread(target=stop_us_when_the_command_is_ready, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            stopping.run_as_group(["sh", "-c", code], stdout=write)
    finally:
        signal.signal(signal.SIGALRM, previous)
        os.close(write)
    sleeper = int(pids.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(sleeper):
        time.sleep(0.05)  # an orphan killed is reaped by init: gone soon, not at once
    assert not _alive(sleeper)


def test_run_as_group_returns_the_exit_code():
    assert stopping.run_as_group(["sh", "-c", "exit 3"]) == 3


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
