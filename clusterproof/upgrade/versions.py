"""Which version each component must run after the upgrade (UPG-08), and how the report says so.

The rule, for each component (the API server, each node's kubelet, kube-proxy) against the
version it ran before (at `--phase before`, or at the last `--phase after` whose checks all held:
a multi-hop upgrade is judged hop by hop):
- with `--expect-version V` (`1.37` or `v1.37.2`): the component's version starts with V's
  numbers (`v1.37.2-eks-1` matches `1.37`);
- without it: newer than before (major, minor, patch);
- the same version as before fails ("nothing was upgraded") unless `--allow-same-version`: a
  rehearsal on a cluster that is not upgraded, which the report says it was;
- older than before fails (a downgrade).
The kubelets must also match the API server's version (with --expect-version: V), kube-proxy the
API server's minor (managed clusters tag their own builds, e.g. `v1.29.0-minimal-eksbuild.1`);
none may be newer than the API server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_NUMBERS = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


class BadVersion(ValueError):
    """Not a Kubernetes version (`1.37`, `v1.37.2`)."""


def numbers(version: str) -> tuple[int, ...] | None:
    """(1, 37, 2) for v1.37.2 and v1.37.2-eks-1, (1, 37) for 1.37; None when it names no version."""
    found = _NUMBERS.match(version.strip())
    if not found:
        return None
    return tuple(int(x) for x in found.groups() if x is not None)


def parse_expected(version: str) -> str:
    """`--expect-version`: `1.37`, `v1.37`, `1.37.2`, `v1.37.2` -> `v1.37` / `v1.37.2`."""
    found = numbers(version)
    if found is None or not re.fullmatch(r"v?\d+\.\d+(\.\d+)?", version.strip()):
        raise BadVersion(f"--expect-version {version}: a Kubernetes version (1.37 or v1.37.2)")
    return "v" + ".".join(str(n) for n in found)


def matches(version: str, wanted: str) -> bool:
    """`version` starts with `wanted`'s numbers (v1.37.2-gke.1 matches v1.37 and v1.37.2)."""
    have, want = numbers(version), numbers(wanted)
    return have is not None and want is not None and have[: len(want)] == want


def minor_of(version: str) -> str:
    found = numbers(version) or (0, 0)
    return f"v{found[0]}.{found[1]}"


@dataclass(frozen=True)
class VersionRule:
    expect: str | None = None  # parse_expected's form
    allow_same: bool = False

    def describe(self, before: str) -> str:
        """The rule in words, for the report: what `after` required of a component at `before`."""
        if self.expect:
            wanted = f"{self.expect} (--expect-version)"
        else:
            wanted = f"newer than {before}"
        if self.allow_same:
            wanted += f", or still {before} (--allow-same-version: a rehearsal, not an upgrade)"
        return wanted

    def judge(self, version: str, before: str) -> str | None:
        """None when `version` (a component that ran `before`) keeps the rule; else why not."""
        have, was = numbers(version), numbers(before)
        if have is None:
            return f"{version} names no version"
        if was is not None and have < was:
            return f"{version} is older than before ({before}): a downgrade"
        same = was is not None and have == was
        if same and not self.allow_same:
            return f"still {version}, as before: nothing was upgraded (--allow-same-version for a rehearsal)"
        if same:
            return None
        if self.expect and not matches(version, self.expect):
            return f"{version}, expected {self.expect}"
        return None

    @property
    def rehearsal(self) -> bool:
        return self.allow_same


@dataclass(frozen=True)
class Row:
    """One component's verdict: a row of UPG-08 (verdict held, failed or skipped: not judged)."""

    check: str
    expected: str
    observed: str
    verdict: str
    why: str = ""


def component_rows(
    rule: VersionRule, last: dict[str, Any], server: str, kubelets: dict[str, str], kube_proxy: str | None
) -> list[Row]:
    """The API server, each kubelet and kube-proxy (None: no kube-proxy DaemonSet) against the rule,
    `last` holding what they ran before (server_version, node_versions, kube_proxy)."""
    rows = [
        _row("API server", rule.describe(last["server_version"]), server, rule.judge(server, last["server_version"]))
    ]
    target = rule.expect or server
    for node, version in sorted(kubelets.items()):
        before = last["node_versions"].get(node, last["server_version"])
        why = rule.judge(version, before) or _skew(version, server)
        if why is None and not matches(version, target) and not (rule.allow_same and version == before):
            why = f"{version}, expected {target}" + ("" if rule.expect else " (the API server's version)")
        rows.append(_row(f"kubelet on {node}", f"{target} (the API server's), was {before}", version, why))
    not_judged = "the API server's minor"
    if kube_proxy is None:
        observed = "no kube-proxy DaemonSet in kube-system (kube-proxy-free, or managed outside it): not judged"
        rows.append(Row("kube-proxy", not_judged, observed, "skipped"))
    elif numbers(kube_proxy) is None:
        rows.append(Row("kube-proxy", not_judged, f"image tag {kube_proxy!r} names no version: not judged", "skipped"))
    else:
        before = last.get("kube_proxy") or last["server_version"]
        why = rule.judge(kube_proxy, before) or _skew(kube_proxy, server)
        if why is None and not matches(kube_proxy, minor_of(target)) and not (rule.allow_same and kube_proxy == before):
            why = f"{kube_proxy}, expected {minor_of(target)}.x (the API server's minor)"
        rows.append(
            _row(
                "kube-proxy image tag", f"{minor_of(target)}.x (the API server's minor), was {before}", kube_proxy, why
            )
        )
    return rows


def _row(check: str, expected: str, observed: str, why: str | None) -> Row:
    return Row(check, expected, observed, "failed" if why else "held", why or "")


def _skew(version: str, server: str) -> str | None:
    if (numbers(version) or ()) > (numbers(server) or ()):
        return f"{version} is newer than the API server ({server}): the skew policy forbids it"
    return None
