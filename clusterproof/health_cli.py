"""The health read-out on the command line: `python -m clusterproof.health_cli`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kubernetes import config

from clusterproof import health
from clusterproof.cluster import Cluster
from clusterproof.errors import ClusterUnreachable


def main(argv: list[str] | None = None) -> int:
    """`python -m clusterproof.health_cli --kubeconfig PATH [--context NAME]`: the probe on any cluster,
    read-only; prints one finding a line and exits 1 when there are any (2: the API does not answer)."""
    parser = argparse.ArgumentParser(prog="python -m clusterproof.health_cli", description=main.__doc__)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config")))
    parser.add_argument("--context", help="default: the kubeconfig's current context")
    args = parser.parse_args(argv)
    try:
        context = args.context or config.list_kube_config_contexts(config_file=args.kubeconfig)[1]["name"]
        cluster = Cluster.from_kubeconfig(Path(args.kubeconfig), context, name=context, provider="existing")
    except (config.ConfigException, OSError) as e:
        print(f"--kubeconfig {args.kubeconfig}: {e}")
        return 2
    try:
        health.require_reachable(cluster)
    except ClusterUnreachable as e:
        print(e)
        return 2
    found = health.probe(cluster)
    print("\n".join(map(str, found)) or f"{context}: nothing found wrong with the system components")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
