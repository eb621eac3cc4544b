"""Leave the host as the run found it.

The kubelet sets host-wide sysctls from inside a kind node (they are not namespaced):
kernel.panic, kernel.panic_on_oops, vm.overcommit_memory and friends. kind leaves its
docker network and an empty /lib/modules behind. Both are put back after the run, and only
what the run itself changed.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

KUBELET_SYSCTLS = (
    "kernel/panic",
    "kernel/panic_on_oops",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)


def read_sysctls(names=KUBELET_SYSCTLS, root: Path = Path("/proc/sys")) -> dict[str, str]:
    values = {}
    for name in names:
        with contextlib.suppress(OSError):
            values[name] = (root / name).read_text().strip()
    return values


def restore_sysctls(saved: dict[str, str], root: Path = Path("/proc/sys")) -> list[str]:
    """Write back what changed; returns 'name: now -> saved' for each restored value."""
    restored = []
    for name, value in saved.items():
        path = root / name
        with contextlib.suppress(OSError):
            now = path.read_text().strip()
            if now != value:
                path.write_text(value)
                restored.append(f"{name.replace('/', '.')}: {now} -> {value}")
    return restored


def _docker_network_exists(name: str) -> bool:
    return subprocess.run(["docker", "network", "inspect", name], capture_output=True).returncode == 0


def _kind_nodes_running() -> bool:
    found = subprocess.run(
        ["docker", "ps", "-q", "--filter", "label=io.x-k8s.kind.cluster"], capture_output=True, text=True
    )
    return found.returncode != 0 or bool(found.stdout.strip())


@contextlib.contextmanager
def host_hygiene(log=print) -> Iterator[None]:
    sysctls = read_sysctls()
    had_network = _docker_network_exists("kind")
    modules = Path("/lib/modules")
    had_modules = modules.exists()
    try:
        yield
    finally:
        restored = restore_sysctls(sysctls)
        if restored:
            log("restored host sysctls the kubelet changed: " + ", ".join(restored))
        if not had_network and _docker_network_exists("kind"):
            # fails, harmlessly, while a kept cluster still uses it
            subprocess.run(["docker", "network", "rm", "kind"], capture_output=True)
        if not had_modules and modules.is_dir() and not any(modules.iterdir()) and not _kind_nodes_running():
            # a kept cluster's nodes bind-mount it: removed only when no kind node runs
            with contextlib.suppress(OSError):
                modules.rmdir()
