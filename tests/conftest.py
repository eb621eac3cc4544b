"""Unit tests only: pytester (in-process pytest runs) for the plugin's end-to-end tests. Not
loaded by `pytest suites`, so e2e runs go without it."""

pytest_plugins = ["pytester"]
