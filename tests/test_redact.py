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


EXEC_PLUGIN = """\
users:
- name: eks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: aws-iam-authenticator
      args:
      - token
      - --token
      - s3cr3t-from-args
      env:
      - name: AWS_PROFILE
        value: prod-admin-profile
      - {name: VAULT_ROLE, value: role-xyz-123}
"""


def test_exec_plugin_env_values_and_token_arguments():
    out = redact(EXEC_PLUGIN)
    for secret in ("prod-admin-profile", "role-xyz-123", "s3cr3t-from-args"):
        assert secret not in out
    assert "name: AWS_PROFILE" in out and "command: aws-iam-authenticator" in out


def test_token_flags_on_a_command_line_and_in_json_args():
    out = redact('kubectl --token abc123def get pods; args: ["--token", "zzz999yyy"]; --password=hunter22 --verbose')
    assert "abc123def" not in out and "zzz999yyy" not in out and "hunter22" not in out
    assert "get pods" in out and "--verbose" in out


def test_url_userinfo_docker_auth_and_cookies():
    out = redact(
        'server: https://admin:pw0rd@api.example:6443\n{"auths": {"r.io": {"auth": "dXNlcjpwYXNz"}}}\n'
        "Cookie: session=abcdef0123; csrftoken=xyz\nSet-Cookie: id=zzz; HttpOnly\n{'cookie': 'k=v'}"
    )
    for secret in ("pw0rd", "admin:", "dXNlcjpwYXNz", "abcdef0123", "csrftoken=xyz", "id=zzz", "k=v"):
        assert secret not in out
    assert "https://[REDACTED]@api.example:6443" in out
