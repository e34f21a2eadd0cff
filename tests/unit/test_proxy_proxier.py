"""The proxier's diff, full resync, cleanup, conntrack and batching against fake seams."""
from __future__ import annotations

import threading
import time

from nodeutil.iptables import FakeConntrack, FakeRunner, parse_save
from proxy.proxier import Proxier, cleanup_payload, diff_payload, missing_jumps
from proxy.rules import JUMPS, Config, build_ruleset, sep_chain, svc_chain


def svc(name, ip, port=80, proto="TCP", rv="1", node_port=None):
    p = {"name": "p", "port": port, "protocol": proto}
    spec = {"type": "ClusterIP", "clusterIP": ip, "ports": [p]}
    if node_port:
        spec["type"] = "NodePort"
        p["nodePort"] = node_port
    return {"metadata": {"namespace": "default", "name": name, "resourceVersion": rv}, "spec": spec}


def ep(name, ips, port=8080, proto="TCP", rv="1"):
    return {"metadata": {"namespace": "default", "name": name, "resourceVersion": rv},
            "subsets": [{"addresses": [{"ip": i} for i in ips], "ports": [{"name": "p", "port": port,
                                                                           "protocol": proto}]}] if ips else []}


class World:
    def __init__(self, n=5, runner=None):
        self.services = [svc(f"s{i}", f"10.96.1.{i}") for i in range(n)]
        self.endpoints = [ep(f"s{i}", [f"10.244.1.{10 + i}", f"10.244.2.{10 + i}"]) for i in range(n)]
        self.runner = runner or FakeRunner()
        self.conntrack = FakeConntrack()
        self.proxier = Proxier(self.runner, self.conntrack, Config(), services=lambda: list(self.services),
                               endpoints=lambda: list(self.endpoints), min_sync_period=0.05)

    def set_ep(self, i, ips, rv):
        self.endpoints[i] = ep(f"s{i}", ips, rv=rv)


def test_first_sync_is_full_and_inserts_jumps_once():
    w = World()
    assert w.proxier.sync()
    assert w.runner.saves == 1 and len(w.runner.payloads) == 1
    state = parse_save(w.runner.save())
    assert missing_jumps(state) == []
    # The jumps sit at the top of the built-in chains, once each.
    assert state["nat"]["PREROUTING"] == ["-A PREROUTING " + dict(((t, c), s) for t, c, s in JUMPS)[
        ("nat", "PREROUTING")]]
    assert w.proxier.last_sync["full"] is True
    # A second sync with nothing changed sends nothing at all.
    assert w.proxier.sync()
    assert len(w.runner.payloads) == 1 and w.proxier.last_sync["full"] is False


def test_one_endpoint_change_sends_only_the_changed_chains():
    w = World(n=50)
    w.proxier.sync()
    w.set_ep(7, ["10.244.1.17", "10.244.3.99"], rv="2")
    w.proxier.sync()
    payload = w.runner.payloads[-1]
    declared = sorted(line[1:].split()[0] for line in payload.splitlines() if line.startswith(":"))
    key = "default/s7:p"
    new_sep, old_sep = sep_chain(key, "TCP", "10.244.3.99:8080"), sep_chain(key, "TCP", "10.244.2.17:8080")
    assert declared == sorted([svc_chain(key, "TCP"), new_sep, old_sep])
    assert f"-X {old_sep}" in payload
    assert "KUBE-SERVICES" not in payload  # 50 services' dispatch rules are not rewritten
    assert payload.count("*nat") == 1 and "*filter" not in payload
    # And the fake kernel now holds exactly the desired rules.
    want = build_ruleset(w.services, {f"default/s{i}": e for i, e in enumerate(w.endpoints)})
    have = parse_save(w.runner.save())
    for table, chains in want.tables.items():
        for chain, rules in chains.items():
            assert have[table][chain] == list(rules)
    assert old_sep not in have["nat"]


def test_losing_all_endpoints_moves_service_to_reject():
    w = World(n=2)
    w.proxier.sync()
    w.set_ep(1, [], rv="2")
    w.proxier.sync()
    payload = w.runner.payloads[-1]
    assert "*filter" in payload and "REJECT" in payload and "10.96.1.1/32" in payload
    have = parse_save(w.runner.save())
    assert svc_chain("default/s1:p", "TCP") not in have["nat"]


def test_failure_schedules_full_resync_that_repairs_and_removes_stale():
    w = World(n=3)
    w.proxier.sync()
    w.runner.fail_next = 1
    w.set_ep(0, ["10.244.9.9"], rv="2")
    assert not w.proxier.sync()
    # Meanwhile someone deleted one of our chains' rules by hand.
    w.runner.tables["nat"][svc_chain("default/s2:p", "TCP")] = []
    saves = w.runner.saves
    assert w.proxier.sync()
    assert w.runner.saves == saves + 1 and w.proxier.last_sync["full"] is True
    want = build_ruleset(w.services, {f"default/s{i}": e for i, e in enumerate(w.endpoints)})
    have = parse_save(w.runner.save())
    assert have["nat"][svc_chain("default/s2:p", "TCP")] == list(want.tables["nat"][svc_chain("default/s2:p", "TCP")])
    assert sep_chain("default/s0:p", "TCP", "10.244.1.10:8080") not in have["nat"]


def test_restart_deletes_chains_of_services_gone_while_down_and_keeps_foreign_rules():
    runner = FakeRunner(tables={"nat": {"DOCKER": ["-A DOCKER -j RETURN"],
                                        "PREROUTING": ["-A PREROUTING -j DOCKER"]},
                                "filter": {"INPUT": ["-A INPUT -p tcp --dport 22 -j ACCEPT"]}})
    w = World(n=3, runner=runner)
    w.proxier.sync()
    gone = svc_chain("default/s2:p", "TCP")
    assert gone in runner.tables["nat"]
    # A new proxy process sees one service less.
    w2 = World(n=2, runner=runner)
    assert w2.proxier.sync()
    assert gone not in runner.tables["nat"]
    assert runner.tables["nat"]["DOCKER"] == ["-A DOCKER -j RETURN"]
    assert "-A PREROUTING -j DOCKER" in runner.tables["nat"]["PREROUTING"]
    assert "-A INPUT -p tcp --dport 22 -j ACCEPT" in runner.tables["filter"]["INPUT"]
    # Jumps were not inserted twice.
    assert sum("KUBE-SERVICES" in r for r in runner.tables["nat"]["PREROUTING"]) == 1


def test_cleanup_removes_everything_ours_only():
    runner = FakeRunner(tables={"nat": {"DOCKER": ["-A DOCKER -j RETURN"], "KUBE-MARK-DROP": []},
                                "filter": {"INPUT": ["-A INPUT -p tcp --dport 22 -j ACCEPT"]}})
    w = World(n=3, runner=runner)
    w.proxier.sync()
    assert w.proxier.cleanup()
    text = runner.save()
    left = [line for line in text.splitlines() if "KUBE-" in line]
    assert left == [":KUBE-MARK-DROP - [0:0]"]  # not ours (the kubelet's in Kubernetes)
    assert "-A DOCKER -j RETURN" in text and "--dport 22" in text
    assert not w.proxier.cleanup()  # idempotent: nothing left to remove
    assert cleanup_payload(parse_save(text)) == ""


def test_udp_endpoint_removal_clears_conntrack():
    w = World(n=0)
    w.services = [svc("dns", "10.96.0.10", 53, "UDP", node_port=30053)]
    w.endpoints = [ep("dns", ["10.244.1.2", "10.244.1.3"], 53, "UDP")]
    w.proxier.sync()
    assert w.conntrack.calls == [{"orig_dst": "10.96.0.10"}, {"orig_port_dst": 30053}]
    w.conntrack.calls.clear()
    w.endpoints = [ep("dns", ["10.244.1.3"], 53, "UDP", rv="2")]
    w.proxier.sync()
    assert w.conntrack.calls == [{"orig_dst": "10.96.0.10", "dst_nat": "10.244.1.2"},
                                 {"orig_port_dst": 30053, "dst_nat": "10.244.1.2"}]
    # TCP never needs it.
    w2 = World(n=2)
    w2.proxier.sync()
    w2.set_ep(0, ["10.244.9.9"], rv="2")
    w2.proxier.sync()
    assert w2.conntrack.calls == []


def test_diff_payload_nothing_to_do_is_empty():
    rs = build_ruleset([svc("a", "10.96.0.5")], {"default/a": ep("a", ["10.244.1.2"])})
    applied = {t: dict(c) for t, c in rs.tables.items()}
    assert diff_payload(rs, applied) == ("", 0, 0)
    payload, written, deleted = diff_payload(rs, None, {"nat": {"KUBE-SVC-OLD", "DOCKER"}, "filter": set()})
    assert written == rs.chain_count() and deleted == 1
    assert "-X KUBE-SVC-OLD" in payload and "DOCKER" not in payload


def test_run_loop_batches_bursts_into_few_syncs():
    w = World(n=3)
    w.proxier.min_sync_period = 0.3
    stop = threading.Event()
    t = threading.Thread(target=w.proxier.run, args=(stop,), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 5
        while w.proxier.syncs < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.proxier.syncs == 1
        for k in range(20):  # a burst of changes within one period
            w.set_ep(0, [f"10.244.5.{k + 1}"], rv=str(10 + k))
            w.proxier.request_sync()
            time.sleep(0.005)
        deadline = time.monotonic() + 5
        while w.proxier.syncs < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.4)
        assert w.proxier.syncs == 2  # one restore for the whole burst
        assert "10.244.5.20:8080" in w.runner.save()
    finally:
        stop.set()
        w.proxier.request_sync()
        t.join(5)
    assert not t.is_alive()


def test_run_waits_for_ready_before_first_sync():
    w = World(n=1)
    stop = threading.Event()
    ready = threading.Event()
    t = threading.Thread(target=w.proxier.run, args=(stop, ready.is_set), daemon=True)
    t.start()
    try:
        time.sleep(0.2)
        assert w.proxier.syncs == 0 and w.runner.payloads == []
        ready.set()
        deadline = time.monotonic() + 5
        while w.proxier.syncs < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.proxier.syncs == 1
    finally:
        stop.set()
        w.proxier.request_sync()
        t.join(5)


def test_failed_restore_retries_by_itself():
    w = World(n=1)
    w.proxier.retry_period = 0.05
    w.runner.fail_next = 2
    stop = threading.Event()
    t = threading.Thread(target=w.proxier.run, args=(stop,), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 5
        while w.proxier.syncs < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.proxier.syncs == 1 and len(w.runner.payloads) == 3
    finally:
        stop.set()
        w.proxier.request_sync()
        t.join(5)


def test_periodic_full_sync_repairs_edits_behind_our_back():
    w = World(n=2)
    w.proxier.sync()
    chain = svc_chain("default/s1:p", "TCP")
    w.runner.tables["nat"][chain] = []  # someone flushed it
    w.proxier.sync()
    assert w.runner.tables["nat"][chain] == []  # incremental syncs trust what they wrote
    w.proxier.full_sync_period = 0.0
    w.proxier.sync()
    assert w.proxier.last_sync["full"] is True and w.runner.tables["nat"][chain] != []


def test_local_policy_changes_are_minimal_restores():
    # A Local service whose only local endpoint moves to another node: one restore with just its chains
    # (its KUBE-SVL goes, the DROP appears in the filter table), the other services untouched.
    services = [svc(f"s{i}", f"10.96.1.{i}", node_port=30100 + i) for i in range(20)]
    services[3]["spec"]["externalTrafficPolicy"] = "Local"

    def endpoints(node):
        out = [ep(f"s{i}", [f"10.244.1.{10 + i}"]) for i in range(20)]
        out[3] = {"metadata": {"namespace": "default", "name": "s3", "resourceVersion": "2" if node else "1"},
                  "subsets": [{"addresses": [{"ip": "10.244.1.13", "nodeName": node or "node-a"}],
                               "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}]}]}
        return out
    state = {"eps": endpoints(None)}
    runner = FakeRunner()
    p = Proxier(runner, FakeConntrack(), Config(node_name="node-a"), services=lambda: services,
                endpoints=lambda: state["eps"])
    assert p.sync()
    key = "default/s3:p"
    from proxy.rules import svl_chain
    assert svl_chain(key, "TCP") in parse_save(runner.save())["nat"]
    state["eps"] = endpoints("node-b")
    assert p.sync()
    payload = runner.payloads[-1]
    assert f"-X {svl_chain(key, 'TCP')}" in payload
    assert "has no local endpoints" in payload and "-j DROP" in payload
    assert p.last_sync["chains_written"] <= 4 and "s4" not in payload
    saved = parse_save(runner.save())
    assert svl_chain(key, "TCP") not in saved["nat"]
