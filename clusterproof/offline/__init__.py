"""Everything a kind cluster and the suites need, built from Debian packages alone.

Public entry points (used by the kind provider):
- ensure_images(progress) -> OfflineImages: builds (or finds cached) node + workload images.
- configure_cluster(cluster, node_count): pod networking without kindnet, after `kind create cluster`.
- kind_command(kind_path, run_dir) -> Path: a kind launcher that works around a short
  capability bounding set (returns kind_path unchanged on a normal host).
"""
