"""ApiAnswer: reading the API server's Status answers (bodies written here, no server)."""

import json
from types import SimpleNamespace

from kubernetes.client import ApiException

from clusterproof.api_answers import ApiAnswer


class Headers(dict):
    def getlist(self, name):
        return [v for k, v in self.items() if k == name]


STATUS_422 = {
    "kind": "Status",
    "status": "Failure",
    "reason": "Invalid",
    "message": 'Service "s" is invalid: spec.ports[0].nodePort: Invalid value: 29999: provided port is not in the '
    "valid range. The range of valid ports is 30000-32767",
    "details": {
        "causes": [
            {"reason": "FieldValueInvalid", "message": "Invalid value: 29999", "field": "spec.ports[0].nodePort"}
        ]
    },
    "code": 422,
}


def exception(status, body, headers=None):
    e = ApiException(status=status, reason="x")
    e.body = json.dumps(body).encode()
    e.headers = headers
    return e


def test_a_refusal_names_its_reason_message_and_field_causes():
    answer = ApiAnswer.from_exception(exception(422, STATUS_422))
    assert not answer.accepted
    assert answer.reason == "Invalid"
    assert "30000-32767" in answer.message
    cause = answer.cause_for("spec.ports[0].nodePort")
    assert cause is not None and cause.reason == "FieldValueInvalid"
    assert answer.cause_for("spec.ports[0].port") is None
    assert str(answer).startswith("HTTP 422 Invalid: Service")


def test_warnings_are_read_as_their_text():
    headers = Headers({"Warning": '299 - "networking.k8s.io/v1beta1 Ingress is deprecated in v1.19+"'})
    answer = ApiAnswer.from_exception(exception(201, {"kind": "Ingress"}, headers))
    assert answer.accepted
    assert answer.warnings == ("networking.k8s.io/v1beta1 Ingress is deprecated in v1.19+",)
    assert "warnings: networking.k8s.io/v1beta1" in str(answer)


def test_a_warnings_quoted_string_is_unescaped():
    sent = ['299 - "unknown field \\"nfs\\""', '299 - "unknown field \\"iscsi\\""']
    headers = SimpleNamespace(getlist=lambda name: sent)
    answer = ApiAnswer.from_exception(exception(422, {"kind": "Status"}, headers))
    assert answer.warnings == ('unknown field "nfs"', 'unknown field "iscsi"')


def test_a_body_that_is_not_json_is_kept_as_text():
    e = ApiException(status=400, reason="BadRequest")
    e.body = b"yaml: line 13: did not find expected '-' indicator"
    answer = ApiAnswer.from_exception(e)
    assert answer.message == "yaml: line 13: did not find expected '-' indicator"
    assert answer.reason == "" and answer.causes == []


def test_answer_to_gives_the_refusal_in_the_servers_words_or_the_object_accepted():
    from kubernetes import client

    from clusterproof.api_answers import answer_to

    def refused():
        raise exception(422, STATUS_422)

    answer = answer_to(refused)
    assert (answer.status, answer.reason, answer.cause_for("spec.ports[0].nodePort").reason) == (
        422,
        "Invalid",
        "FieldValueInvalid",
    )

    claim = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(
            resources=client.V1VolumeResourceRequirements(requests={"storage": "2Gi"})
        ),
    )
    grown = answer_to(lambda: claim, status=200)
    assert grown.accepted and grown.body["spec"]["resources"]["requests"] == {"storage": "2Gi"}  # as the server wrote
    assert answer_to(lambda: [{"kind": "Pod", "metadata": {"name": "p"}}]).body["metadata"]["name"] == "p"
