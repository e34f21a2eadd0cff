"""The endpoints controller as a real process against a real API server.

There is no kubelet yet, so the test plays it: pods are created bound to a
node and their status (podIP, Ready) is written through ``pods/NAME/status``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from api import resources as R
from client.errors import NotFound
from client.rest import Client
from tests.conftest import ApiServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ControllerManager:
    def __init__(self, server_url: str, log_path: str):
        self.server_url = server_url
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ControllerManager":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "controller-manager", "--server", self.server_url,
             "--log-level", "debug"], stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


@pytest.fixture
def cluster(tmp_path):
    server = ApiServer(str(tmp_path)).start()
    cm = ControllerManager(server.url, str(tmp_path / "controller-manager.log")).start()
    client = Client(server=server.url)
    try:
        yield server, cm, client
    finally:
        client.close()
        cm.stop()
        server.stop()


def make_pod(client, name, ip, ready=True, labels=None, ports=None, **spec):
    client.create(R.PODS, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "pocketkube/host",
                                                       "ports": ports or []}], **spec},
    })
    set_status(client, name, ip, ready)


def set_status(client, name, ip, ready):
    client.patch(R.PODS, name, {"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}},
        "default", subresource="status")


def wait_for(fn, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except NotFound:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def addresses(client, name, field="addresses"):
    ep = client.get(R.ENDPOINTS, name, "default")
    return sorted(a["ip"] for s in ep.get("subsets") or [] for a in s.get(field) or [])


def test_endpoints_follow_pods_readiness_and_deletion(cluster):
    server, cm, client = cluster
    client.create(R.SERVICES, {"metadata": {"name": "web", "namespace": "default", "labels": {"tier": "fe"}},
                               "spec": {"selector": {"app": "web"},
                                        "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    ports = [{"name": "http", "containerPort": 8080}]
    make_pod(client, "web-a", "10.244.1.2", ports=ports, hostname="a", subdomain="web")
    make_pod(client, "web-b", "10.244.1.3", ready=False, ports=ports)
    make_pod(client, "db", "10.244.1.9", labels={"app": "db"}, ports=ports)
    wait_for(lambda: addresses(client, "web") == ["10.244.1.2"]
             and addresses(client, "web", "notReadyAddresses") == ["10.244.1.3"], what="first endpoints")
    ep = client.get(R.ENDPOINTS, "web", "default")
    assert ep["metadata"]["labels"] == {"tier": "fe"}
    a = ep["subsets"][0]["addresses"][0]
    assert a["hostname"] == "a" and a["nodeName"] == "node-1"
    assert a["targetRef"]["kind"] == "Pod" and a["targetRef"]["name"] == "web-a" and a["targetRef"]["uid"]
    assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]

    set_status(client, "web-b", "10.244.1.3", True)
    wait_for(lambda: addresses(client, "web") == ["10.244.1.2", "10.244.1.3"], what="web-b ready")
    # Terminating pods leave at once (graceful deletion keeps the pod object for 30 s).
    client.delete(R.PODS, "web-a", "default")
    assert client.get(R.PODS, "web-a", "default")["metadata"].get("deletionTimestamp")
    wait_for(lambda: addresses(client, "web") == ["10.244.1.3"], what="terminating pod removed")
    # Relabelling moves a pod out.
    client.patch(R.PODS, "web-b", {"metadata": {"labels": {"app": "other"}}}, "default")
    wait_for(lambda: client.get(R.ENDPOINTS, "web", "default").get("subsets") in (None, []), what="empty")
    # The service goes: so do its endpoints.
    client.delete(R.SERVICES, "web", "default")

    def gone():
        try:
            client.get(R.ENDPOINTS, "web", "default")
            return False
        except NotFound:
            return True

    wait_for(gone, what="endpoints deleted")


def test_selectorless_headless_and_writes_only_on_change(cluster):
    server, cm, client = cluster
    client.create(R.SERVICES, {"metadata": {"name": "manual", "namespace": "default"},
                               "spec": {"ports": [{"port": 80}]}})
    manual = client.create(R.ENDPOINTS, {"metadata": {"name": "manual", "namespace": "default"},
                                         "subsets": [{"addresses": [{"ip": "10.244.7.7"}], "ports": [{"port": 80}]}]})
    client.create(R.SERVICES, {"metadata": {"name": "hl", "namespace": "default"},
                               "spec": {"clusterIP": "None", "selector": {"app": "web"}}})
    make_pod(client, "p1", "10.244.1.2")
    wait_for(lambda: addresses(client, "hl") == ["10.244.1.2"], what="headless endpoints")
    hl = client.get(R.ENDPOINTS, "hl", "default")
    assert hl["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}
    rv = hl["metadata"]["resourceVersion"]
    # Changes that do not matter to the Endpoints write nothing.
    client.patch(R.PODS, "p1", {"metadata": {"annotations": {"x": "y"}}}, "default")
    client.patch(R.SERVICES, "hl", {"metadata": {"annotations": {"x": "y"}}}, "default")
    time.sleep(1.0)
    assert client.get(R.ENDPOINTS, "hl", "default")["metadata"]["resourceVersion"] == rv
    assert client.get(R.ENDPOINTS, "manual", "default")["metadata"]["resourceVersion"] == \
        manual["metadata"]["resourceVersion"]


def test_restart_converges_and_catches_missed_events(cluster, tmp_path):
    server, cm, client = cluster
    client.create(R.SERVICES, {"metadata": {"name": "web", "namespace": "default"},
                               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    client.create(R.SERVICES, {"metadata": {"name": "old", "namespace": "default"},
                               "spec": {"selector": {"app": "web"}, "ports": [{"port": 81}]}})
    make_pod(client, "p1", "10.244.1.2")
    wait_for(lambda: addresses(client, "web") == ["10.244.1.2"] and addresses(client, "old") == ["10.244.1.2"],
             what="endpoints")
    cm.stop()
    # While the controller is down: a pod appears, one service goes, someone edits our endpoints.
    make_pod(client, "p2", "10.244.1.3")
    client.delete(R.SERVICES, "old", "default")
    ep = client.get(R.ENDPOINTS, "web", "default")
    ep["subsets"] = [{"addresses": [{"ip": "10.244.9.9"}], "ports": [{"port": 80}]}]
    client.update(R.ENDPOINTS, ep)
    cm2 = ControllerManager(server.url, str(tmp_path / "cm2.log")).start()
    try:
        wait_for(lambda: addresses(client, "web") == ["10.244.1.2", "10.244.1.3"], what="converged")

        def old_gone():
            try:
                client.get(R.ENDPOINTS, "old", "default")
                return False
            except NotFound:
                return True

        wait_for(old_gone, what="leftover endpoints deleted")
    finally:
        cm2.stop()
    cm.proc = None  # already stopped
