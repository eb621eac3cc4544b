"""The pytest plugin: the one composition root. It wires the framework and the topics; it
defines nothing itself. Loaded by the `pytest11` entry point (or `-p clusterproof.plugin`).

Its parts, and the topics' own plugins (each declares its options, fixtures and hooks):
"""

# a part comes after the parts it imports (pytest imports each in this order, to rewrite its asserts)
pytest_plugins = (
    "clusterproof.plugin.reports",  # verdicts, diagnostics, the claims table
    "clusterproof.plugin.node_access",  # node access per cluster; a node left out skips its check, one down errors
    "clusterproof.plugin.configure",  # options, settings, markers, what runs, preflight
    "clusterproof.plugin.fixtures",  # the run, the cluster, namespaces, manifests, client pods
    "clusterproof.upgrade.plugin",  # --phase before|after
    "clusterproof.jigs.ingress.plugin",  # --ingress-class
)
