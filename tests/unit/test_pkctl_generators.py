"""pkctl's configmap/secret generators, without a server: what kubectl would build from the same flags."""
import base64
import json
import subprocess

import pytest

from pkctl import generators
from pkctl.errors import CLIError
from pkctl.main import build_parser, parse_args


def args(*argv):
    a = parse_args(build_parser(), ["create", *argv])
    a.namespace_for_create = "ns1"
    return a


def test_configmap_literals_files_directories_and_env_files(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.conf").write_text("x=1\n")
    (tmp_path / "d" / "blob").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "d" / "sub").mkdir()  # directories inside are skipped, as kubectl does
    env = tmp_path / "e.env"
    env.write_text("# comment\n\nK1=v1\nFROM_ENV\n")
    monkeypatch.setenv("FROM_ENV", "yes")
    cm = generators.build_configmap(args("configmap", "c", "--from-literal=lit=a=b", f"--from-file={tmp_path / 'd'}",
                                         f"--from-file=renamed={tmp_path / 'd' / 'a.conf'}",
                                         f"--from-env-file={env}", "--immutable"))
    assert cm["metadata"] == {"name": "c", "namespace": "ns1"}
    assert cm["data"] == {"lit": "a=b", "a.conf": "x=1\n", "renamed": "x=1\n", "K1": "v1", "FROM_ENV": "yes"}
    assert base64.b64decode(cm["binaryData"]["blob"]) == b"\xff\xfe\x00"
    assert cm["immutable"] is True


@pytest.mark.parametrize("argv, message", [
    (["--from-literal=a=1", "--from-literal=a=2"], 'cannot add key "a", another key by that name already exists in Data'),
    (["--from-literal=bad key=1"], '"bad key" is not a valid key name for a ConfigMap'),
    (["--from-literal=novalue"], "invalid literal source novalue, expected key=value"),
    (["--from-file=/nonexistent/x"], "error reading /nonexistent/x"),
])
def test_configmap_errors_name_the_fix(argv, message):
    with pytest.raises(CLIError) as e:
        generators.build_configmap(args("configmap", "c", *argv))
    assert message in str(e.value)


def test_secret_generic_is_base64_and_typed():
    s = generators.build_secret(args("secret", "generic", "s", "--from-literal=pw=hunter2", "--type=custom/x"))
    assert s["type"] == "custom/x" and base64.b64decode(s["data"]["pw"]) == b"hunter2"
    assert generators.build_secret(args("secret", "generic", "s2"))["type"] == "Opaque"
    with pytest.raises(CLIError, match="generic|tls|docker-registry"):
        generators.build_secret(args("secret", "weird", "s"))


def test_secret_docker_registry_config_json():
    s = generators.build_secret(args("secret", "docker-registry", "r", "--docker-username=u", "--docker-password=p",
                                     "--docker-email=e@x.test"))
    assert s["type"] == "kubernetes.io/dockerconfigjson"
    cfg = json.loads(base64.b64decode(s["data"][".dockerconfigjson"]))
    entry = cfg["auths"][generators.DEFAULT_DOCKER_SERVER]
    assert entry == {"username": "u", "password": "p", "email": "e@x.test", "auth": base64.b64encode(b"u:p").decode()}
    with pytest.raises(CLIError, match='"docker-password" not set'):
        generators.build_secret(args("secret", "docker-registry", "r", "--docker-username=u"))


def _pair(d):
    d.mkdir(exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=t",
                    "-keyout", str(d / "k"), "-out", str(d / "c")], check=True, capture_output=True, timeout=60)
    return str(d / "c"), str(d / "k")


def test_secret_tls_checks_the_pair(tmp_path):
    cert, key = _pair(tmp_path / "a")
    s = generators.build_secret(args("secret", "tls", "t", f"--cert={cert}", f"--key={key}"))
    assert s["type"] == "kubernetes.io/tls" and set(s["data"]) == {"tls.crt", "tls.key"}
    assert base64.b64decode(s["data"]["tls.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")
    _, other = _pair(tmp_path / "b")
    with pytest.raises(CLIError, match="belong together"):
        generators.build_secret(args("secret", "tls", "t", f"--cert={cert}", f"--key={other}"))
    with pytest.raises(CLIError, match='"cert", "key" not set'):
        generators.build_secret(args("secret", "tls", "t"))
