"""Remove anything that looks like a credential before text leaves the process."""

from __future__ import annotations

import re

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|\Z)", re.S)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_BOOTSTRAP_TOKEN = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")
# key: value / key=value / "key": "value" where the key names a secret
_SECRET_FIELD = re.compile(
    r"""(?ix)
    (\b[\w.-]*(?:token|password|passwd|secret|api[_-]?key|private[_-]?key
      |client-key-data|client-certificate-data|certificate-authority-data)[\w.-]*
      ["']?\s*[:=]\s*["']?)
    ([^\s"',}]+)
    """
)
_BLOB = re.compile(r"[A-Za-z0-9+/]{120,}={0,2}")

REDACTED = "[REDACTED]"


def redact(text: str) -> str:
    text = _PEM.sub("[REDACTED PEM BLOCK]", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BOOTSTRAP_TOKEN.sub(REDACTED, text)
    return _BLOB.sub("[REDACTED BLOB]", text)
