"""Kubeconfig search order, parsing and writing."""
from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
import yaml

from client import kubeconfig as K


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """No real ~/.kube/config, $KUBECONFIG or /var/lib/pocketkube leaks into a test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setattr(K, "SYSTEM_KUBECONFIG", str(tmp_path / "var-lib-pocketkube" / "kubeconfig"))
    return home


def write(path, server="https://10.0.0.1:6443", token="tok", namespace="default", name="pocketkube"):
    return K.write_kubeconfig(str(path), server, token, namespace=namespace, cluster_name=name)


def test_write_then_load_roundtrip(tmp_path):
    path = write(tmp_path / "kc", server="http://127.0.0.1:6443", token="secret", namespace="team-a")
    cfg = K.load_config(path)
    assert cfg.server == "http://127.0.0.1:6443"
    assert cfg.token == "secret"
    assert cfg.namespace == "team-a"
    assert cfg.source == path
    assert "secret" not in repr(cfg)


def test_written_file_is_private_and_standard(tmp_path):
    path = write(tmp_path / "sub" / "dir" / "kubeconfig")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = yaml.safe_load(Path(path).read_text())
    assert doc["apiVersion"] == "v1" and doc["kind"] == "Config"
    assert doc["current-context"] == "pocketkube"
    assert doc["clusters"][0] == {"name": "pocketkube", "cluster": {"server": "https://10.0.0.1:6443"}}
    assert doc["users"][0]["user"] == {"token": "tok"}
    ctx = doc["contexts"][0]["context"]
    assert ctx == {"cluster": "pocketkube", "user": "pocketkube-admin", "namespace": "default"}


def test_rewrite_replaces_and_stays_private(tmp_path):
    path = tmp_path / "out" / "kc"
    path.parent.mkdir()
    path.write_text("old")
    os.chmod(path, 0o644)
    write(path, token="new")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert K.load_config(str(path)).token == "new"
    assert [p.name for p in path.parent.iterdir()] == ["kc"]  # no temp file left behind


def test_explicit_missing_path_is_an_error(tmp_path, monkeypatch):
    write(tmp_path / "elsewhere")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "elsewhere"))
    with pytest.raises(K.ConfigError, match="does not exist"):
        K.load_config(str(tmp_path / "missing"))


def test_kubeconfig_env_first_existing_file(tmp_path, monkeypatch, isolated_home):
    second = write(tmp_path / "second", server="https://second:6443")
    write(tmp_path / "third", server="https://third:6443")
    (isolated_home / ".kube").mkdir()
    write(isolated_home / ".kube" / "config", server="https://home:6443")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(
        [str(tmp_path / "nope"), second, str(tmp_path / "third")]))
    assert K.load_config().server == "https://second:6443"


def test_home_config_then_system_path(tmp_path, monkeypatch, isolated_home):
    system = tmp_path / "var-lib-pocketkube" / "kubeconfig"
    write(system, server="https://system:6443")
    assert K.load_config().server == "https://system:6443"
    (isolated_home / ".kube").mkdir()
    write(isolated_home / ".kube" / "config", server="https://home:6443")
    assert K.load_config().server == "https://home:6443"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "does-not-exist"))
    assert K.load_config().server == "https://home:6443"


def test_nothing_found_names_the_fix():
    with pytest.raises(K.ConfigError) as info:
        K.load_config()
    msg = str(info.value)
    assert "no kubeconfig found" in msg
    assert "--kubeconfig" in msg and "KUBECONFIG" in msg and "pocketkube up" in msg


def test_server_argument_needs_no_file():
    cfg = K.load_config(server="http://127.0.0.1:8080/", token="t")
    assert cfg.server == "http://127.0.0.1:8080"
    assert cfg.token == "t"
    assert cfg.namespace == "default"


def test_server_and_token_override_file(tmp_path):
    path = write(tmp_path / "kc", server="https://a:1", token="from-file")
    cfg = K.load_config(path, server="http://b:2", token="from-flag")
    assert (cfg.server, cfg.token) == ("http://b:2", "from-flag")
    cfg = K.load_config(path, server="http://b:2")
    assert cfg.token == "from-file"


def multi_context_doc(tmp_path) -> dict:
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n").decode()
    (tmp_path / "token.txt").write_text("file-token\n")
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [
            {"name": "c1", "cluster": {"server": "https://one:6443", "certificate-authority-data": ca}},
            {"name": "c2", "cluster": {"server": "https://two:6443", "insecure-skip-tls-verify": True,
                                       "certificate-authority": "ca.crt"}},
        ],
        "users": [
            {"name": "u1", "user": {"token": "inline-token"}},
            {"name": "u2", "user": {"tokenFile": "token.txt", "client-certificate": "/abs/client.crt",
                                    "client-key": "client.key"}},
        ],
        "contexts": [
            {"name": "one", "context": {"cluster": "c1", "user": "u1", "namespace": "ns1"}},
            {"name": "two", "context": {"cluster": "c2", "user": "u2"}},
        ],
        "current-context": "one",
    }


def test_current_context_and_ca_data(tmp_path):
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(multi_context_doc(tmp_path)))
    cfg = K.load_config(str(path))
    assert cfg.server == "https://one:6443"
    assert cfg.token == "inline-token"
    assert cfg.namespace == "ns1"
    assert cfg.ca_file and os.path.isfile(cfg.ca_file)
    assert b"fake" in Path(cfg.ca_file).read_bytes()
    assert stat.S_IMODE(os.stat(cfg.ca_file).st_mode) == 0o600
    # Loading twice reuses the same materialized file.
    assert K.load_config(str(path)).ca_file == cfg.ca_file


def test_context_argument_token_file_and_relative_paths(tmp_path):
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(multi_context_doc(tmp_path)))
    cfg = K.load_config(str(path), context="two")
    assert cfg.server == "https://two:6443"
    assert cfg.token == "file-token"
    assert cfg.insecure_skip_tls_verify is True
    assert cfg.ca_file == str(tmp_path / "ca.crt")
    assert cfg.client_cert_file == "/abs/client.crt"
    assert cfg.client_key_file == str(tmp_path / "client.key")
    assert cfg.namespace == "default"


def test_unknown_context_is_an_error(tmp_path):
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(multi_context_doc(tmp_path)))
    with pytest.raises(K.ConfigError, match="no context named 'three'"):
        K.load_config(str(path), context="three")


def test_single_context_without_current_context(tmp_path):
    doc = yaml.safe_load(Path(write(tmp_path / "kc")).read_text())
    del doc["current-context"]
    (tmp_path / "kc").write_text(yaml.safe_dump(doc))
    assert K.load_config(str(tmp_path / "kc")).server == "https://10.0.0.1:6443"


@pytest.mark.parametrize("text,match", [
    ("- just\n- a list\n", "not a mapping"),
    ("apiVersion: v1\nclusters: []\ncontexts: []\nusers: []\n", "no current-context"),
    ("current-context: x\ncontexts:\n- name: x\n  context: {cluster: nope}\n", "unknown cluster"),
    ("current-context: x\nclusters:\n- name: c\n  cluster: {}\ncontexts:\n- name: x\n  context: {cluster: c}\n",
     "has no server"),
    ("key: [unclosed\n", "cannot read"),
])
def test_broken_files_raise_config_error(tmp_path, text, match):
    path = tmp_path / "kc"
    path.write_text(text)
    with pytest.raises(K.ConfigError, match=match):
        K.load_config(str(path))


def test_user_without_token(tmp_path):
    path = K.write_kubeconfig(str(tmp_path / "kc"), "http://127.0.0.1:1", None)
    assert K.load_config(path).token is None
