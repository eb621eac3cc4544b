"""kind on hosts whose capability bounding set is short.

`docker run --privileged` asks for every capability the daemon knows; where the host's
bounding set lacks one (CAP_SYS_RESOURCE on some VMs), runc fails with "unable to apply
caps". kind always passes --privileged, so kind is given a `docker` that swaps it for the
same privileges minus the missing capabilities. On a normal host nothing is changed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Linux capability numbers (include/uapi/linux/capability.h) -> docker's names
CAP_NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]

SHIM = """#!/bin/sh
# Written by clusterproof for kind: --privileged minus the capabilities this host lacks.
real={real}
case "$1" in
  run|create)
    cmd=$1; shift
    for a in "$@"; do
      shift
      if [ "$a" = --privileged ]; then
        set -- "$@" --cap-add=ALL {drops} --security-opt=systempaths=unconfined \\
          --security-opt=seccomp=unconfined --security-opt=apparmor=unconfined \\
          '--device-cgroup-rule=a *:* rwm' --device=/dev/kmsg
      else
        set -- "$@" "$a"
      fi
    done
    exec "$real" "$cmd" "$@" ;;
  exec)
    shift
    for a in "$@"; do shift; [ "$a" = --privileged ] || set -- "$@" "$a"; done
    exec "$real" exec "$@" ;;
esac
exec "$real" "$@"
"""

LAUNCHER = """#!/bin/sh
# kind with clusterproof's docker shim first in PATH (see {shim_dir}/docker)
PATH={shim_dir}:$PATH exec {kind} "$@"
"""


def missing_capabilities(status: str | None = None, last_cap: int | None = None) -> list[str]:
    """Capabilities the kernel knows but this process's bounding set lacks."""
    if status is None:
        status = Path("/proc/self/status").read_text()
    if last_cap is None:
        last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    bounding = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("CapBnd:"))
    return [CAP_NAMES[i] for i in range(min(last_cap + 1, len(CAP_NAMES))) if not bounding >> i & 1]


def kind_command(kind_path: Path, run_dir: Path, missing: list[str] | None = None) -> Path:
    """kind itself on a normal host; else a launcher that puts the docker shim first in PATH."""
    missing = missing_capabilities() if missing is None else missing
    if not missing:
        return kind_path
    real_docker = shutil.which("docker")
    if real_docker is None:
        return kind_path  # the docker check reports this with its own message
    shim_dir = run_dir / "docker-shim"
    shim_dir.mkdir(parents=True, exist_ok=True)
    drops = " ".join(f"--cap-drop={cap}" for cap in missing)
    shim = shim_dir / "docker"
    shim.write_text(SHIM.format(real=real_docker, drops=drops))
    shim.chmod(0o755)
    launcher = run_dir / "kind"
    launcher.write_text(LAUNCHER.format(shim_dir=shim_dir, kind=Path(kind_path).resolve()))
    launcher.chmod(0o755)
    return launcher
