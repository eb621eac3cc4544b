"""What the API server answered: status, Status reason/message/causes, warnings.

Claims about refusals ("the 4th pod is refused with 403", "nodePort 29999 is invalid") and
the notes' broken manifests need the server's own words, so requests can also be sent raw:
a body exactly as given (JSON, or YAML text the server parses itself), no typed model and no
apiVersion/kind routing in between.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from kubernetes import client

from clusterproof.errors import SetupFailed


class Connected(Protocol):
    """Anything holding an ApiClient with the cluster's credentials (a Cluster does)."""

    api: client.ApiClient


T = TypeVar("T")


def unless_missing(call: Callable[[], T]) -> T | None:
    """`call()`'s answer, or None where its object is not there (HTTP 404); any other refusal raises.
    For "read it, or None" and "delete it if it is still there"."""
    try:
        return call()
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


@dataclass(frozen=True)
class Cause:
    field: str
    reason: str
    message: str


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: Any
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_exception(cls, e: client.ApiException) -> ApiAnswer:
        return cls(e.status, _json_or_text(e.body), _warnings(e.headers))

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", "")) if isinstance(self.body, dict) else ""

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else str(self.body)

    @property
    def causes(self) -> list[Cause]:
        details = (self.body.get("details") or {}) if isinstance(self.body, dict) else {}
        causes = details.get("causes") or []
        return [Cause(c.get("field", ""), c.get("reason", ""), c.get("message", "")) for c in causes]

    @property
    def refused_as_bad_yaml(self) -> bool:
        """400 BadRequest naming YAML: the server could not parse the text it was sent."""
        return self.status == 400 and self.reason == "BadRequest" and "yaml" in self.message.lower()

    def cause_for(self, field_path: str) -> Cause | None:
        return next((c for c in self.causes if c.field == field_path), None)

    def __str__(self) -> str:
        text = f"HTTP {self.status} accepted" if self.accepted else f"HTTP {self.status} {self.reason}: {self.message}"
        return text + (f" (warnings: {'; '.join(self.warnings)})" if self.warnings else "")

    @property
    def detail(self) -> str:
        """str(self) plus the field causes the message does not already spell out."""
        extra = [f"{c.field}: {c.message}" for c in self.causes if c.message and c.message not in self.message]
        return str(self) + (f" [causes: {'; '.join(extra)}]" if extra else "")


class ApiRefusal(SetupFailed, client.ApiException):
    """The API server refused to create (or change) an object a test needs for its set-up:
    `could not evaluate (set-up: create Service svc-nodeport): HTTP 422 Invalid: ...`, in the
    server's words. Still an ApiException (status, body, headers as the server sent them), so
    `answer_to` and callers that judge the refusal themselves read it as before."""

    def __init__(self, step: str, error: client.ApiException) -> None:
        self.answer = ApiAnswer.from_exception(error)
        self.status, self.reason, self.body, self.headers = error.status, error.reason, error.body, error.headers
        SetupFailed.__init__(self, step, self.answer.detail)


def answer_to(request: Callable[[], Any], *, status: int = 201) -> ApiAnswer:
    """The API server's answer to `request()` (a typed, dynamic or Manifests call): the object it
    returned, as `status`, or its refusal in its own words (status, reason, message, causes)."""
    try:
        result = request()
    except client.ApiException as e:
        return ApiAnswer.from_exception(e)
    return ApiAnswer(status, _as_dict(result))


def _as_dict(result: Any) -> Any:
    if isinstance(result, list) and len(result) == 1:  # Manifests.create of one document
        result = result[0]
    if hasattr(result, "openapi_types"):  # a typed model: camelCase, as the server wrote it
        return client.ApiClient().sanitize_for_serialization(result)
    return result.to_dict() if hasattr(result, "to_dict") else result


def raw_request(
    cluster: Connected,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    query: Iterable[tuple[str, str]] = (),
    timeout: float = 30,
) -> ApiAnswer:
    """One request through the cluster's ApiClient (its credentials), answered, never raised
    (an API error; a connection that fails raises as the client does)."""
    api = cluster.api
    request = api.param_serialize(
        method,
        path,
        query_params=list(query),
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    try:
        response = api.call_api(*request, _request_timeout=timeout)
        response.read()
    except client.ApiException as e:
        return ApiAnswer.from_exception(e)
    return ApiAnswer(response.status, _json_or_text(response.data), _warnings(response.getheaders()))


def post_yaml_as_written(cluster: Connected, path: str, text: str, *, dry_run: bool = False) -> ApiAnswer:
    """POST manifest text untouched (application/yaml): the API server parses it itself, so even
    text that is not valid YAML gets the server's own answer."""
    query = [("dryRun", "All")] if dry_run else []
    return raw_request(cluster, "POST", path, text, content_type="application/yaml", query=query)


def _json_or_text(body: Any) -> Any:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        return json.loads(body) if body else {}
    except (TypeError, ValueError):
        return body


def _warnings(headers: Any) -> tuple[str, ...]:
    """Warning headers (RFC 7234 `299 - "text"`), as their text."""
    if not headers:
        return ()
    getall = getattr(headers, "getlist", None) or getattr(headers, "get_all", None)
    values = getall("Warning") if getall else [headers.get("Warning")]
    return tuple(_warning_text(v) for v in values if v)


def _warning_text(value: str) -> str:
    """The warn-text of `299 - "text"`, its quoted-string unescaped (`unknown field \\"nfs\\"`)."""
    quoted = re.match(r'\d{3} \S+ "((?:[^"\\]|\\.)*)"', value)
    if quoted is None:
        return value.split(" ", 2)[-1].strip('"')
    return re.sub(r"\\(.)", r"\1", quoted.group(1))
