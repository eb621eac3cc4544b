# pytester is for the plugin-level unit tests in tests/ (a non-root conftest may not list plugins).
pytest_plugins = ["clusterproof.plugin", "pytester"]
