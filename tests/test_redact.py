"""redact(): nothing credential-like leaves the process."""

from clusterproof.redact import redact

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----"


def test_kubeconfig_fields_are_redacted():
    text = "client-key-data: LS0tLS1CRUdJTiBSU0Eg\nclient-certificate-data: LS0t\ntoken: abcdef123456"
    out = redact(text)
    assert "LS0t" not in out and "abcdef123456" not in out
    assert out.count("[REDACTED]") == 3


def test_pem_blocks_jwts_and_bearer_headers():
    out = redact(f"key:\n{PEM}\nAuthorization: Bearer {JWT}\nsa token {JWT}")
    assert "MIIE" not in out and "eyJ" not in out
    assert "[REDACTED PEM BLOCK]" in out


def test_passwords_in_json_and_env_and_bootstrap_tokens():
    out = redact('{"password": "hunter2"} DB_PASSWORD=s3cret kubeadm join --token abcdef.0123456789abcdef')
    assert "hunter2" not in out and "s3cret" not in out and "0123456789abcdef" not in out


def test_ordinary_diagnostics_survive():
    text = "pod web-1: phase=Pending node=kind-worker\nWarning FailedMount Pod/web-1: hostPath type check failed"
    assert redact(text) == text


def test_long_base64_blobs():
    blob = "QUJD" * 50
    assert "QUJDQUJD" not in redact(f"data {blob}")
