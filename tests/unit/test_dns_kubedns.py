"""The kube-system/kube-dns ensure step against a fake client: create, repair, keep others' addresses, withdraw."""
from __future__ import annotations

import copy
import threading
import time

import pytest

from addons.dns.kubedns import LABELS, Registrar, desired_subsets, service_patch
from addons.dns.server import advertise_address, parse_listen
from api import resources as R
from client.errors import ConnectionFailed, NotFound


class FakeClient:
    def __init__(self):
        self.objects: dict[tuple, dict] = {}
        self.writes: list[tuple] = []
        self.down = False
        self.rv = 0

    def _key(self, rt, name, ns):
        return (rt.plural, ns, name)

    def _check(self):
        if self.down:
            raise ConnectionFailed("down")

    def get(self, rt, name, namespace=None):
        self._check()
        try:
            return copy.deepcopy(self.objects[self._key(rt, name, namespace)])
        except KeyError:
            raise NotFound(f"{rt.plural} {name} not found")

    def _store(self, rt, obj, ns):
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[self._key(rt, obj["metadata"]["name"], ns)] = obj
        return obj

    def create(self, rt, obj, namespace=None):
        self._check()
        self.writes.append(("create", rt.plural))
        return self._store(rt, obj, namespace)

    def update(self, rt, obj, namespace=None):
        self._check()
        self.writes.append(("update", rt.plural))
        return self._store(rt, obj, namespace)

    def patch(self, rt, name, patch, namespace=None):
        self._check()
        self.writes.append(("patch", rt.plural))
        obj = self.objects[self._key(rt, name, namespace)]
        for section in ("metadata", "spec"):
            for k, v in (patch.get(section) or {}).items():
                if v is None:
                    obj[section].pop(k, None)
                elif isinstance(v, dict):
                    obj[section].setdefault(k, {}).update(v)
                else:
                    obj[section][k] = v
        return obj


def addrs(client):
    ep = client.objects[("endpoints", "kube-system", "kube-dns")]
    return [(a["ip"], a.get("nodeName")) for s in ep["subsets"] for a in s["addresses"]]


def test_creates_service_and_endpoints_then_is_idempotent():
    c = FakeClient()
    reg = Registrar(c, "10.96.0.10", "100.64.0.2", 53, node_name="node-1")
    reg.sync()
    svc = c.objects[("services", "kube-system", "kube-dns")]
    assert svc["spec"]["clusterIP"] == "10.96.0.10" and "selector" not in svc["spec"]
    assert svc["metadata"]["labels"] == LABELS
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [("dns", 53, "UDP"),
                                                                                  ("dns-tcp", 53, "TCP")]
    ep = c.objects[("endpoints", "kube-system", "kube-dns")]
    assert ep["subsets"] == [{"addresses": [{"ip": "100.64.0.2", "nodeName": "node-1"}],
                              "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                        {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}]
    n = len(c.writes)
    reg.sync()
    assert len(c.writes) == n            # nothing differs: nothing written


def test_repairs_labels_ports_and_selector_and_keeps_other_dns_addresses():
    c = FakeClient()
    Registrar(c, "10.96.0.10", "100.64.0.3", 53).sync()       # another node's DNS
    svc = c.objects[("services", "kube-system", "kube-dns")]
    svc["metadata"]["labels"] = {"k8s-app": "kube-dns"}
    svc["spec"]["selector"] = {"app": "x"}
    svc["spec"]["ports"] = svc["spec"]["ports"][:1]
    Registrar(c, "10.96.0.10", "100.64.0.2", 53).sync()
    assert svc["metadata"]["labels"] == LABELS and "selector" not in svc["spec"] and len(svc["spec"]["ports"]) == 2
    assert sorted(addrs(c)) == [("100.64.0.2", None), ("100.64.0.3", None)]


def test_withdraw_removes_only_our_address():
    c = FakeClient()
    a, b = Registrar(c, "10.96.0.10", "100.64.0.2"), Registrar(c, "10.96.0.10", "100.64.0.3")
    a.sync()
    b.sync()
    a.withdraw()
    assert addrs(c) == [("100.64.0.3", None)]
    b.withdraw()
    assert c.objects[("endpoints", "kube-system", "kube-dns")]["subsets"] == []


def test_service_patch_reports_nothing_for_ours():
    from addons.dns.kubedns import desired_service
    assert service_patch(desired_service("10.96.0.10"), "10.96.0.10") is None


def test_desired_subsets_keeps_subsets_with_other_ports():
    other = {"addresses": [{"ip": "10.0.0.9"}], "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}]}
    got = desired_subsets({"subsets": [other]}, {"ip": "10.0.0.1"}, 53)
    assert other in got and any(s["addresses"] == [{"ip": "10.0.0.1"}] for s in got)


def test_run_retries_until_the_server_is_back_and_reacts_to_pokes():
    c = FakeClient()
    c.down = True
    reg = Registrar(c, "10.96.0.10", "100.64.0.2", resync=30)
    stop = threading.Event()
    t = threading.Thread(target=reg.run, args=(stop,), daemon=True)
    t.start()
    try:
        assert not reg.synced.wait(0.3)
        c.down = False
        assert reg.synced.wait(15)
        # someone deletes the Endpoints; the informer event pokes the registrar
        del c.objects[("endpoints", "kube-system", "kube-dns")]
        reg.handlers()["on_delete"]({"metadata": {"namespace": "kube-system", "name": "kube-dns"}})
        deadline = time.monotonic() + 5
        while ("endpoints", "kube-system", "kube-dns") not in c.objects and time.monotonic() < deadline:
            time.sleep(0.02)
        assert addrs(c) == [("100.64.0.2", None)]
    finally:
        stop.set()
        t.join(5)


@pytest.mark.parametrize("value,want", [("127.0.0.1:5353", ("127.0.0.1", 5353)), ("10.0.0.1", ("10.0.0.1", 53)),
                                        (":53", ("0.0.0.0", 53)), ("[::1]:54", ("::1", 54))])
def test_parse_listen(value, want):
    assert parse_listen(value) == want


def test_advertise_address_prefers_flag_then_specific_listen_host():
    assert advertise_address("0.0.0.0", "10.1.1.1") == "10.1.1.1"
    assert advertise_address("100.64.0.2", None) == "100.64.0.2"
    got = advertise_address("0.0.0.0", None)
    assert got is None or not got.startswith("127.")
    assert R.SERVICES.plural == "services"
