"""Is a run still alive? Decided from the record each run leaves where later runs can see it.

A run's processes (the pytest process, or each xdist worker) record themselves: run id, owner
(`main` or the xdist worker), PID and that process's start time, the machine (host name, boot id,
PID namespace), when they started and their last heartbeat (renewed every HEARTBEAT_EVERY s while
they live), and `ended` once they finished. The rule (`judge`):

- ended: dead (whatever it left is fair game: its own cleanup already ran, or failed);
- recorded on this machine (same host name, boot id and PID namespace): alive exactly while its
  PID runs and that process started when the record says (a reused PID started later: dead);
  the clock and the heartbeat play no part;
- recorded elsewhere (another host, a container with its own PID namespace, this host before a
  reboot): alive while its heartbeat is younger than STALE_AFTER (10 missed heartbeats). Such a
  record cannot be checked any other way. A record read from a cluster has its heartbeat by the
  API server's clock, moved into the reader's (clusterproof.run_records.ClusterRecords): machines
  whose clocks are minutes apart judge alike. A process that stopped renewing (frozen, cut off
  from the API) for that long is taken for dead.

A run is alive if any of its processes is (`judge_run`). No record at all: see clusterproof.sweep.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

SCHEMA = 1
HEARTBEAT_EVERY = 30.0
STALE_AFTER = 300  # seconds without a heartbeat: a record from another machine is dead

UNKNOWN_START = -1
StartOf = Callable[[int], "int | None"]  # PID -> the process's start time (clock ticks since boot), None: none


@dataclass(frozen=True)
class Machine:
    host: str
    boot_id: str
    pid_ns: str


def this_machine() -> Machine:
    return Machine(socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), _readlink("/proc/self/ns/pid"))


def process_start(pid: int) -> int | None:
    """Start time of process `pid` in clock ticks after boot (/proc/<pid>/stat field 22); None if
    there is no such process or it is a zombie (it has exited); UNKNOWN_START without /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        if os.path.exists("/proc/self/stat"):
            return None
        try:  # no procfs: whether the PID exists is all we can tell
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return UNKNOWN_START
    fields = stat.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass
class RunRecord:
    run_id: str
    owner: str  # "main" or the xdist worker id
    pid: int
    pid_start: int | None
    machine: Machine
    started: float
    heartbeat: float
    ended: float | None = None
    provider: str = ""  # kind | existing
    keep_clusters: bool = False
    docker: str = ""  # DOCKER_HOST: the kind clusters live with that daemon
    run_dir: str = ""
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)  # keys a newer schema added

    @property
    def key(self) -> str:
        return f"{self.run_id}.{self.owner}"

    def to_json(self) -> str:
        data = asdict(self)
        data.update(data.pop("extra"))
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunRecord | None:
        """None if `text` is not a record (another program's file, a half-written one)."""
        try:
            data = json.loads(text)
            known = set(cls.__dataclass_fields__) - {"extra"}
            fields = {k: v for k, v in data.items() if k in known}
            fields["machine"] = Machine(**data["machine"])
            record = cls(**fields, extra={k: v for k, v in data.items() if k not in known})
            if not (isinstance(record.run_id, str) and isinstance(record.pid, int)):
                return None
            return record
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def new_record(run_id: str, owner: str, **fields: Any) -> RunRecord:
    """This process's record, now."""
    now = time.time()
    pid = os.getpid()
    return RunRecord(
        run_id=run_id,
        owner=owner,
        pid=pid,
        pid_start=process_start(pid),
        machine=this_machine(),
        started=now,
        heartbeat=now,
        docker=os.environ.get("DOCKER_HOST", ""),
        **fields,
    )


@dataclass(frozen=True)
class Verdict:
    alive: bool
    why: str


def judge(
    record: RunRecord,
    machine: Machine,
    *,
    start_of: StartOf = process_start,
    now: float | None = None,
) -> Verdict:
    where = f"pid {record.pid} on {record.machine.host}"
    if record.ended is not None:
        return Verdict(False, f"{where} ended")
    if record.machine == machine:
        started = start_of(record.pid)
        if started is None:
            return Verdict(False, f"{where} is gone")
        if UNKNOWN_START not in (started, record.pid_start or UNKNOWN_START) and started != record.pid_start:
            return Verdict(False, f"{where} is gone (that PID is another process now)")
        return Verdict(True, f"{where} is running")
    age = (time.time() if now is None else now) - record.heartbeat
    if record.machine.host == machine.host:
        where += " (another boot or PID namespace)"
    if age <= STALE_AFTER:
        return Verdict(True, f"{where}: heartbeat {age:.0f}s ago")
    return Verdict(False, f"{where}: no heartbeat for {age:.0f}s (more than {STALE_AFTER}s)")


def judge_run(
    records: Iterable[RunRecord],
    machine: Machine,
    *,
    start_of: StartOf = process_start,
    now: float | None = None,
) -> Verdict:
    """Alive if any of the run's processes is; the reasons of all of them otherwise."""
    verdicts = [judge(r, machine, start_of=start_of, now=now) for r in records]
    alive = [v for v in verdicts if v.alive]
    if alive:
        return alive[0]
    return Verdict(False, "; ".join(sorted({v.why for v in verdicts})) or "no record")


def heartbeat(record: RunRecord, now: float | None = None) -> RunRecord:
    return replace(record, heartbeat=time.time() if now is None else now)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""
