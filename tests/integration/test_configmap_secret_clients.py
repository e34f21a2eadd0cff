"""ConfigMap and Secret through the clients people use: stock kubectl, the official Python client, pkctl.

One SQLite server serves the module (the storage backends are covered by
the CRUD tests); each test works in a namespace of its own. kubectl 1.27 and
1.31 run the generators (`create configmap --from-literal|--from-file`,
`create secret generic|tls|docker-registry`) as JSON; 1.32+ send protobuf bodies from
typed `create` (test_protobuf_kubectl.py). pkctl's `get` and `describe`
output is compared with kubectl 1.33's on the same objects, byte for byte.
Secret values must never reach the server's log, an Event or describe.
"""
from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import threading
import uuid

import pytest

from api import resources as R
from client.kubeconfig import write_kubeconfig
from client.rest import Client
from pkctl.main import main as pkctl_main

from ..conftest import ApiServer
from .kubectlutil import Kubectl

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client as k8s, watch  # noqa: E402

SECRET_VALUE = "s3cr3t-" + uuid.uuid4().hex  # searched for in the server log afterwards


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = tmp_path_factory.mktemp("cmsecret")
    s = ApiServer(str(d)).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def api(srv):
    c = Client(server=srv.url)
    yield c
    c.close()


@pytest.fixture
def ns(api):
    name = "t-" + uuid.uuid4().hex[:8]
    api.create(R.NAMESPACES, {"metadata": {"name": name}})
    return name


def kubectl(minor: int, srv, tmp_path) -> Kubectl:
    return Kubectl(minor, srv.url, str(tmp_path / f"kcache-{minor}"))


def pk(srv, tmp_path, *argv: str, ns: str) -> tuple[int, str, str]:
    kc = tmp_path / "pk.kubeconfig"
    if not kc.exists():
        write_kubeconfig(str(kc), srv.url, token=None)
    out, err = io.StringIO(), io.StringIO()
    rc = pkctl_main(["--kubeconfig", str(kc), "-n", ns, *argv], stdout=out, stderr=err, stdin=io.StringIO(""))
    return rc, out.getvalue(), err.getvalue()


def without_age(text: str) -> str:
    """A table with its AGE cells blanked: kubectl and pkctl run a second apart may print 0s and 1s."""
    return re.sub(r"(?m)\s+\d+s$", "", text)


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def tls_pair(tmp_path) -> tuple[str, str]:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=web",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


# ------------------------------------------------------------------ kubectl
@pytest.mark.parametrize("minor", [27, 31])
def test_kubectl_configmap_generators_table_and_immutability(minor, srv, ns, tmp_path):
    k = kubectl(minor, srv, tmp_path)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.properties").write_text("color=blue\nsize=3\n")
    (tmp_path / "conf" / "logo.bin").write_bytes(b"\x89PNG\xff\x00\x01")
    out = k.run("-n", ns, "create", "configmap", "app", "--from-literal=mode=prod", "--from-literal=level=2",
                f"--from-file={tmp_path / 'conf'}").stdout
    assert out == "configmap/app created\n"
    got = json.loads(k.run("-n", ns, "get", "cm", "app", "-o", "json").stdout)
    assert got["data"] == {"mode": "prod", "level": "2", "app.properties": "color=blue\nsize=3\n"}
    assert base64.b64decode(got["binaryData"]["logo.bin"]) == b"\x89PNG\xff\x00\x01"
    table = rows(k.run("-n", ns, "get", "configmaps").stdout)
    assert table[0] == ["NAME", "DATA", "AGE"]
    assert table[1][:2] == ["app", "4"]  # kubectl counts data and binaryData keys together
    # immutable: data may not change afterwards, and immutable may not be unset
    k.run("-n", ns, "create", "configmap", "frozen", "--from-literal=a=1")
    k.run("-n", ns, "patch", "configmap", "frozen", "-p", '{"immutable": true}')
    p = k.run("-n", ns, "patch", "configmap", "frozen", "-p", '{"data": {"a": "2"}}', check=False)
    assert p.returncode != 0 and "immutable" in p.stderr
    p = k.run("-n", ns, "patch", "configmap", "frozen", "-p", '{"immutable": false}', check=False)
    assert p.returncode != 0 and "immutable" in p.stderr
    k.run("-n", ns, "label", "configmap", "frozen", "tier=cfg")  # metadata still may change
    # a bad key is refused by the server with a field cause
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"},
                               "data": {"a b": "x"}}))
    p = k.run("-n", ns, "create", "-f", str(bad), check=False)
    assert p.returncode != 0 and 'The ConfigMap "bad" is invalid' in p.stderr and "data[a b]" in p.stderr
    k.run("-n", ns, "delete", "configmap", "app", "frozen")
    assert "No resources found" in k.run("-n", ns, "get", "cm").stderr


@pytest.mark.parametrize("minor", [27, 31])
def test_kubectl_secret_generic_tls_docker_registry(minor, srv, ns, tmp_path):
    k = kubectl(minor, srv, tmp_path)
    assert k.run("-n", ns, "create", "secret", "generic", "db", f"--from-literal=password={SECRET_VALUE}",
                 "--from-literal=user=admin").stdout == "secret/db created\n"
    cert, key = tls_pair(tmp_path)
    assert k.run("-n", ns, "create", "secret", "tls", "web-tls", f"--cert={cert}",
                 f"--key={key}").stdout == "secret/web-tls created\n"
    assert k.run("-n", ns, "create", "secret", "docker-registry", "pull", "--docker-server=registry.test:5000",
                 "--docker-username=me", f"--docker-password={SECRET_VALUE}",
                 "--docker-email=me@example.test").stdout == "secret/pull created\n"
    db = json.loads(k.run("-n", ns, "get", "secret", "db", "-o", "json").stdout)
    assert db["type"] == "Opaque" and base64.b64decode(db["data"]["password"]).decode() == SECRET_VALUE
    tls = json.loads(k.run("-n", ns, "get", "secret", "web-tls", "-o", "json").stdout)
    assert tls["type"] == "kubernetes.io/tls" and set(tls["data"]) == {"tls.crt", "tls.key"}
    pull = json.loads(k.run("-n", ns, "get", "secret", "pull", "-o", "json").stdout)
    assert pull["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(pull["data"][".dockerconfigjson"]))["auths"]
    assert auths["registry.test:5000"]["username"] == "me"
    table = rows(k.run("-n", ns, "get", "secrets").stdout)
    assert table[0] == ["NAME", "TYPE", "DATA", "AGE"]
    assert [r[:3] for r in table[1:]] == [["db", "Opaque", "2"], ["pull", "kubernetes.io/dockerconfigjson", "1"],
                                          ["web-tls", "kubernetes.io/tls", "2"]]
    # field selector on type
    names = k.run("-n", ns, "get", "secrets", "--field-selector", "type=kubernetes.io/tls", "-o", "name").stdout
    assert names == "secret/web-tls\n"
    # describe shows sizes, never values
    out = k.run("-n", ns, "describe", "secret", "db").stdout
    assert "password:  " in out and f"{len(SECRET_VALUE)} bytes" in out and SECRET_VALUE not in out
    # the type is immutable; a tls secret without its key is invalid
    p = k.run("-n", ns, "patch", "secret", "db", "-p", '{"type": "kubernetes.io/basic-auth"}', check=False)
    assert p.returncode != 0 and "immutable" in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"},
                               "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}))
    p = k.run("-n", ns, "create", "-f", str(bad), check=False)
    assert p.returncode != 0 and 'The Secret "bad" is invalid' in p.stderr and "tls.key" in p.stderr
    assert SECRET_VALUE not in p.stderr


def test_secret_string_data_is_merged_and_never_logged(srv, api, ns):
    s = api.create(R.resolve("secrets"), {"metadata": {"name": "sd", "namespace": ns},
                                          "stringData": {"token": SECRET_VALUE}, "data": {"a": "YQ=="}}, ns)
    assert "stringData" not in s
    assert base64.b64decode(s["data"]["token"]).decode() == SECRET_VALUE and s["data"]["a"] == "YQ=="
    # not base64 -> 422 naming the key, the value not echoed
    with pytest.raises(Exception) as e:
        api.create(R.resolve("secrets"), {"metadata": {"name": "nb", "namespace": ns},
                                          "data": {"k": SECRET_VALUE + "!"}}, ns)
    assert getattr(e.value, "code", None) == 422 and "data[k]" in str(e.value) and SECRET_VALUE not in str(e.value)
    events, _ = api.list_all(R.EVENTS, ns)
    assert all(SECRET_VALUE not in json.dumps(ev) for ev in events)
    assert SECRET_VALUE not in srv.read_log()


# ------------------------------------------------------------------ the official Python client
@pytest.fixture(scope="module")
def v1(srv):
    cfg = k8s.Configuration()
    cfg.host = srv.url
    c = k8s.ApiClient(cfg)
    yield k8s.CoreV1Api(c)
    c.close()


def test_python_client_configmap_crud_and_watch(v1, ns):
    seen, done = [], threading.Event()

    def run():
        w = watch.Watch()
        for ev in w.stream(v1.list_namespaced_config_map, ns, timeout_seconds=10):
            seen.append((ev["type"], ev["object"].metadata.name, dict(ev["object"].data or {})))
            if len(seen) >= 3:
                w.stop()
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    cm = v1.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="py", labels={"a": "b"}),
                                                             data={"k": "v"}))
    assert cm.metadata.uid and cm.data == {"k": "v"}
    cm.data["k"] = "v2"
    assert v1.replace_namespaced_config_map("py", ns, cm).data == {"k": "v2"}
    assert [c.metadata.name for c in v1.list_namespaced_config_map(ns, label_selector="a=b").items] == ["py"]
    v1.delete_namespaced_config_map("py", ns)
    assert done.wait(15)
    assert [(s[0], s[1]) for s in seen] == [("ADDED", "py"), ("MODIFIED", "py"), ("DELETED", "py")]
    assert seen[1][2] == {"k": "v2"}
    with pytest.raises(k8s.ApiException) as e:
        v1.read_namespaced_config_map("py", ns)
    assert e.value.status == 404


def test_python_client_secret_crud_and_watch(v1, ns):
    seen, done = [], threading.Event()

    def run():
        w = watch.Watch()
        for ev in w.stream(v1.list_namespaced_secret, ns, timeout_seconds=10):
            seen.append((ev["type"], ev["object"].metadata.name))
            if len(seen) >= 3:
                w.stop()
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    s = v1.create_namespaced_secret(ns, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="py"),
                                                     string_data={"user": "admin"}))
    assert s.type == "Opaque" and base64.b64decode(s.data["user"]) == b"admin" and not s.string_data
    s = v1.patch_namespaced_secret("py", ns, {"stringData": {"pw": "x"}})
    assert set(s.data) == {"user", "pw"}
    v1.delete_namespaced_secret("py", ns)
    assert done.wait(15)
    assert seen == [("ADDED", "py"), ("MODIFIED", "py"), ("DELETED", "py")]
    with pytest.raises(k8s.ApiException) as e:
        v1.create_namespaced_secret(ns, {"metadata": {"name": "big"}, "data": {"k": base64.b64encode(
            b"x" * (1024 * 1024 + 1)).decode()}})
    assert e.value.status == 422 and "1048576" in e.value.body


# ------------------------------------------------------------------ pkctl, compared with kubectl 1.33
def test_pkctl_generators_get_and_describe_match_kubectl(srv, ns, tmp_path):
    (tmp_path / "f.txt").write_text("line1\nline2\n")
    # one key each where describe is compared: kubectl 1.33 prints a ConfigMap's keys in Go's map order
    rc, out, err = pk(srv, tmp_path, "create", "configmap", "pk", f"--from-file=file={tmp_path / 'f.txt'}", ns=ns)
    assert (rc, out, err) == (0, "configmap/pk created\n", "")
    rc, out, err = pk(srv, tmp_path, "create", "configmap", "pk2", "--from-literal=a=1", "--from-literal=b=2", ns=ns)
    assert (rc, out, err) == (0, "configmap/pk2 created\n", "")
    rc, out, err = pk(srv, tmp_path, "create", "secret", "generic", "pks", f"--from-literal=pw={SECRET_VALUE}", ns=ns)
    assert (rc, out, err) == (0, "secret/pks created\n", "")
    cert, key = tls_pair(tmp_path)
    rc, out, _ = pk(srv, tmp_path, "create", "secret", "tls", "pkt", f"--cert={cert}", f"--key={key}", ns=ns)
    assert (rc, out) == (0, "secret/pkt created\n")
    rc, out, _ = pk(srv, tmp_path, "create", "secret", "docker-registry", "pkd", "--docker-username=u",
                    "--docker-password=p", ns=ns)
    assert (rc, out) == (0, "secret/pkd created\n")
    k = kubectl(33, srv, tmp_path)
    for argv in (["get", "configmaps"], ["get", "secrets"], ["get", "secrets", "-o", "wide"],
                 ["describe", "configmap", "pk"], ["describe", "secret", "pks"], ["describe", "secret", "pkt"]):
        want = k.run("-n", ns, *argv).stdout
        rc, got, err = pk(srv, tmp_path, *argv, ns=ns)
        assert rc == 0, err
        if argv[0] == "get":
            assert without_age(got) == without_age(want), argv
        elif argv[-1] == "pkt":  # two keys: kubectl prints them in Go's map order, pkctl sorted
            assert sorted(got.splitlines()) == sorted(want.splitlines()), argv
        else:
            assert got == want, argv
    rc, out, _ = pk(srv, tmp_path, "describe", "secret", "pks", ns=ns)
    assert SECRET_VALUE not in out
    # errors name the fix and lose nothing
    rc, _, err = pk(srv, tmp_path, "create", "configmap", "dup", "--from-literal=a=1", "--from-literal=a=2", ns=ns)
    assert rc == 1 and 'cannot add key "a"' in err
    rc, _, err = pk(srv, tmp_path, "create", "secret", "tls", "nokey", f"--cert={cert}", ns=ns)
    assert rc == 1 and '"key" not set' in err
    (tmp_path / "other").mkdir()
    _, other_key = tls_pair(tmp_path / "other")
    rc, _, err = pk(srv, tmp_path, "create", "secret", "tls", "mismatch", f"--cert={cert}", f"--key={other_key}",
                    ns=ns)
    assert rc == 1 and "belong together" in err
    rc, out, _ = pk(srv, tmp_path, "delete", "configmap", "pk", ns=ns)
    assert rc == 0 and 'configmap "pk" deleted' in out
