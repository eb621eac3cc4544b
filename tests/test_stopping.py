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
