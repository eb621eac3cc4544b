"""`python -m clusterproof.sweep`: the sweep on demand (this host, and a cluster of a kubeconfig's
context explicitly allowed)."""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from clusterproof.kubeconfig import read_contexts, resolve_kubeconfig
from clusterproof.node_exec import kind_node_exec
from clusterproof.run_records import ClusterRecords, HostRegistry, registry_dir
from clusterproof.sweep.cluster_side import ClusterSide, sweep_cluster
from clusterproof.sweep.decide import Report, error_line
from clusterproof.sweep.host import KindHost, sweep_credentials, sweep_host


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clusterproof.sweep",
        description="Remove what clusterproof runs that are no longer alive left behind.",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    parser.add_argument("--kubeconfig", default=None, metavar="PATH", help="sweep this cluster too")
    parser.add_argument("--context", default=None, metavar="NAME", help="the kubeconfig's context (default: current)")
    parser.add_argument(
        "--allow-context", action="append", default=[], metavar="NAME", help="required, as for the suite"
    )
    parser.add_argument(
        "--dead", action="append", default=[], metavar="RUN_ID", help="a run that left no record: remove its things"
    )
    parser.add_argument("--no-kind", action="store_true", help="leave this host's kind clusters alone")
    parser.add_argument("--kind-bin", default=None, metavar="PATH", help="kind binary (default: kind on PATH)")
    args = parser.parse_args(argv)

    registry = HostRegistry(registry_dir())
    report = Report(dry_run=args.dry_run)
    try:
        report.merge(sweep_credentials(registry, dry_run=args.dry_run, dead=args.dead))
    except Exception as e:
        report.errors.append(f"credential copies not swept: {error_line(e)}")
    if not args.no_kind:
        kind = args.kind_bin or shutil.which("kind")
        if kind is None:
            print("sweep: kind not found on PATH: kind clusters not swept")
        else:
            try:
                report.merge(sweep_host(KindHost(kind), registry, dry_run=args.dry_run))
            except Exception as e:
                report.errors.append(f"kind clusters not swept: {error_line(e)}")
    if args.kubeconfig or args.context:
        try:
            side = _cluster_side(args.kubeconfig, args.context, args.allow_context)
        except pytest.UsageError as e:
            print(f"sweep: {e}", file=sys.stderr)
            return 2
        try:
            report.merge(sweep_cluster(side, registry.records(), dry_run=args.dry_run, dead=args.dead))
        except Exception as e:
            report.errors.append(f"cluster {side.name} not swept: {error_line(e)}")
    lines = report.lines()
    for line in lines:
        print(f"sweep: {line}")
    if not lines:
        print("sweep: nothing left by dead runs")
    return 1 if report.errors else 0


def _cluster_side(kubeconfig: str | None, context: str | None, allowed: list[str]) -> ClusterSide:
    from kubernetes import client, config


    path = resolve_kubeconfig(Path(kubeconfig).expanduser() if kubeconfig else None, os.environ)
    contexts, current = read_contexts(path)
    context = context or current
    if not context or context not in contexts:
        raise pytest.UsageError(f"context {context!r} not in kubeconfig {path}")
    if context not in allowed:
        raise pytest.UsageError(
            f"refusing to sweep context {context!r}: pass --allow-context {context} to let clusterproof delete there"
        )
    api = config.new_client_from_config(config_file=str(path), context=context, persist_config=False)
    records = ClusterRecords(context, client.CoreV1Api(api), client.CoordinationV1Api(api))
    docker = functools.cache(lambda: kind_node_exec(api))  # asked only when a dead run left node files

    def node_exec(node: str, *argv: str, input: str | None = None, check: bool = True, timeout: float = 60) -> Any:
        return docker()(node, argv, input=input, check=check, timeout=timeout)

    def why_no_node_exec() -> str | None:
        missing = docker().unavailable()
        return missing and f"{missing} (only docker reaches nodes here; a suite run with node access sweeps them)"

    return ClusterSide(
        context,
        client.CoreV1Api(api),
        client.StorageV1Api(api),
        records,
        node_exec=node_exec,
        why_no_node_exec=why_no_node_exec,
    )
