"""Reading a kubeconfig file: which file, its context names and current-context (nothing else is kept)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml


def resolve_kubeconfig(given: Path | None, env: Mapping[str, str]) -> Path:
    if given is None:
        from_env = env.get("KUBECONFIG", "")
        if os.pathsep in from_env:
            raise pytest.UsageError("KUBECONFIG lists several files: pass the one to use with --kubeconfig")
        given = Path(from_env).expanduser() if from_env else Path.home() / ".kube" / "config"
    if not given.is_file():
        raise pytest.UsageError(f"kubeconfig {given}: no such file")
    if not os.access(given, os.R_OK):
        raise pytest.UsageError(f"kubeconfig {given}: not readable")
    return given


def read_contexts(kubeconfig: Path) -> tuple[set[str], str | None]:
    """Context names and current-context; nothing else of the file is kept or shown."""
    try:
        doc = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise pytest.UsageError(f"kubeconfig {kubeconfig}: not UTF-8 text") from None
    except (OSError, yaml.YAMLError) as e:
        raise pytest.UsageError(f"kubeconfig {kubeconfig}: not readable YAML ({type(e).__name__})") from None
    if not isinstance(doc, dict):
        raise pytest.UsageError(f"kubeconfig {kubeconfig}: not a kubeconfig (no mapping)")
    contexts = doc.get("contexts") or []
    current = doc.get("current-context") or None
    named = isinstance(contexts, list) and all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in contexts)
    if not named:
        raise pytest.UsageError(f"kubeconfig {kubeconfig}: `contexts` is not a list of named contexts")
    if current is not None and not isinstance(current, str):
        raise pytest.UsageError(f"kubeconfig {kubeconfig}: `current-context` is not a name")
    return {c["name"] for c in contexts if c["name"]}, current
