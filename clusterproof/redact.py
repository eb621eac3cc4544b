"""Remove anything that looks like a credential before text leaves the process."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

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
# an exec plugin's (or a container's) env entry: the value is on its own line, or in its own field,
# after a `name:` that says nothing (AWS_PROFILE, VAULT_ROLE): every such value goes
_ENV_VALUE = re.compile(
    r"""(?x)
    (["']?name["']?\s*:\s*["']?[\w.-]+["']?\s*(?:,|\n[ \t-]*)\s*["']?value["']?\s*:\s*["']?)
    ([^\s"',}]+)
    """
)
# `--token VALUE` (a command line, or an exec plugin's args: the value as the next list item)
_SECRET_FLAG = re.compile(
    r"""(?ix)
    (--?[\w.-]*(?:token|password|passwd|secret|api[_-]?key|private[_-]?key|credential)[\w.-]*["']?
     (?:\s*,\s*["']?|\s*\n[ \t]*-[ \t]+["']?|[ \t]+["']?))
    (?!--?[\w])([^\s"',\]]+)
    """
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:\"']+:[^/\s@\"']*@")
_DOCKER_AUTH = re.compile(r"""(?i)(["']?\bauth["']?\s*[:=]\s*["']?)([^\s"',}]+)""")
_COOKIE = re.compile(r"""(?i)(\b(?:set-)?cookie["']?\s*[:=]\s*["']?)([^"'\n]+)""")

REDACTED = "[REDACTED]"


def redact(text: str) -> str:
    text = _PEM.sub("[REDACTED PEM BLOCK]", text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _COOKIE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _ENV_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SECRET_FLAG.sub(lambda m: m.group(1) + REDACTED, text)
    text = _DOCKER_AUTH.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BOOTSTRAP_TOKEN.sub(REDACTED, text)
    return _BLOB.sub("[REDACTED BLOB]", text)


def redact_xml(path: Path) -> None:
    """Redact every text and attribute of an XML file in place (the JUnit XML: captured logs,
    stdout, tracebacks, properties), element by element so the redaction cannot break the XML."""
    tree = ElementTree.parse(path)
    for element in tree.iter():
        if element.text:
            element.text = redact(element.text)
        if element.tail:
            element.tail = redact(element.tail)
        for key, value in element.attrib.items():
            element.attrib[key] = redact(value)
    temporary = path.with_name(f".{path.name}.redacting")
    tree.write(temporary, encoding="utf-8", xml_declaration=True)
    temporary.replace(path)
