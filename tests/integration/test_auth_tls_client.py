"""Token auth, TLS serving, and the project's own client + informer against a real server."""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import time

import httpx
import pytest

from api import resources as R
from client import errors as cerr
from client.informer import Informer
from client.rest import Client
from tests.conftest import ApiServer, need

from .test_api_crud import PODS, pod


def test_token_file_auth(tmp_path):
    tf = tmp_path / "tokens.csv"
    tf.write_text('s3cret,admin,uid-1,"system:masters,devs"\n')
    s = ApiServer(str(tmp_path), token_file=str(tf)).start()
    try:
        with httpx.Client(base_url=s.url, timeout=10) as c:
            r = c.get(PODS)
            assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"
            assert c.get(PODS, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert c.get(PODS, headers={"Authorization": "Bearer s3cret"}).status_code == 200
            assert c.get("/healthz").status_code == 200 and c.get("/version").status_code == 200
        with Client(server=s.url, token="s3cret") as cl:
            assert cl.list(R.PODS, "default")["items"] == []
        with Client(server=s.url, token="nope") as cl:
            with pytest.raises(cerr.Unauthorized):
                cl.list(R.PODS, "default")
    finally:
        s.stop()


def test_tls_serving(tmp_path):
    need(shutil.which("openssl") is not None, "openssl is not installed")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    s = ApiServer(str(tmp_path))  # for its port and log path; started by hand since it polls plain HTTP
    args_url = f"https://127.0.0.1:{s.port}"
    ctx = ssl.create_default_context(cafile=str(cert))
    log = open(s.log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "apiserver", "--port", str(s.port), "--data-dir", s.data_dir,
                             "--tls-cert-file", str(cert), "--tls-private-key-file", str(key)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    try:
        ok = False
        for _ in range(200):
            try:
                if httpx.get(args_url + "/readyz", verify=ctx, timeout=1).status_code == 200:
                    ok = True
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert ok, s.read_log()
        r = httpx.get(args_url + "/api/v1/namespaces", verify=ctx, timeout=5)
        assert r.status_code == 200 and len(r.json()["items"]) == 4
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_informer_against_real_server(server):
    adds, updates, deletes = [], [], []
    with Client(server=server.url) as c:
        c.create(R.PODS, pod("pre"), "default")
        inf = Informer(Client(server=server.url), R.PODS, "default")
        inf.add_handler(on_add=lambda o: adds.append(o["metadata"]["name"]),
                        on_update=lambda old, new: updates.append(new["metadata"]["name"]),
                        on_delete=lambda o: deletes.append(o["metadata"]["name"]))
        inf.start()
        try:
            assert inf.wait_for_sync(10)
            assert adds == ["pre"]
            c.create(R.PODS, pod("live"), "default")
            c.patch(R.PODS, "live", {"metadata": {"labels": {"x": "1"}}}, "default")
            c.delete(R.PODS, "live", "default")
            deadline = time.time() + 10
            while time.time() < deadline and "live" not in deletes:
                time.sleep(0.05)
            assert adds == ["pre", "live"] and "live" in updates and deletes == ["live"]
            assert sorted(inf.store.list_keys()) == ["default/pre"]
        finally:
            inf.stop()


def test_informer_survives_api_server_restart(tmp_path):
    s = ApiServer(str(tmp_path)).start()
    seen = []
    inf = Informer(Client(server=s.url), R.PODS, "default")
    inf.add_handler(on_add=lambda o: seen.append(o["metadata"]["name"]))
    inf.start()
    try:
        assert inf.wait_for_sync(10)
        s.stop()
        time.sleep(1)
        s2 = ApiServer(str(tmp_path), port=s.port).start()
        try:
            with Client(server=s2.url) as c:
                c.create(R.PODS, pod("after-restart"), "default")
            deadline = time.time() + 15
            while time.time() < deadline and "after-restart" not in seen:
                time.sleep(0.1)
            assert "after-restart" in seen
        finally:
            s2.stop()
    finally:
        inf.stop()


def test_listens_on_several_addresses(tmp_path):
    """docs/design.md: loopback plus the host end of the node link."""
    s = ApiServer(str(tmp_path), extra_args=["--bind-address", "127.0.0.1,127.0.0.2"]).start()
    try:
        r = httpx.get(f"http://127.0.0.2:{s.port}/api/v1/namespaces", timeout=5)
        assert r.status_code == 200 and len(r.json()["items"]) == 4
    finally:
        s.stop()
