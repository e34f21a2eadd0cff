"""`pocketkube up` state handling: names from the data dir, settings precedence, state.json round trip."""
from __future__ import annotations

import argparse
import json
import os

import pytest

from deploy import state as st
from deploy.up import build_parser, settings_from_args


def test_names_are_derived_from_the_data_dir_and_fit_linux_limits(tmp_path):
    a = st.Settings(data_dir=str(tmp_path / "a"))
    b = st.Settings(data_dir=str(tmp_path / "b"))
    assert a.id == st.short_id(str(tmp_path / "a")) and len(a.id) == 6
    assert a.id != b.id
    assert a.netns == f"pk-{a.id}-node-1" and a.fabric_ns == f"pk-{a.id}-fabric"
    assert len(a.host_if) <= 15 and len(a.node_if) <= 15 and a.host_if != a.node_if
    assert a.cgroup_root == f"pocketkube/{a.netns}"
    assert a.nodes == [{"name": "node-1", "index": 1}] and a.backend == "host-gw" and a.pod_cidr is None
    # relative and absolute spellings of one directory are the same cluster
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert st.Settings(data_dir="a").id == a.id
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("net,host,node,plen", [
    ("100.64.0.0/24", "100.64.0.1", "100.64.0.2", 24),
    ("100.64.9.8/29", "100.64.9.9", "100.64.9.10", 29),
    ("100.64.9.4/30", "100.64.9.5", "100.64.9.6", 30),
])
def test_node_addresses(net, host, node, plen):
    assert st.node_addresses(net) == (host, node, plen)


@pytest.mark.parametrize("net", ["100.64.0.0/31", "100.64.0.1/24", "fd00::/64", "nonsense"])
def test_node_network_rejects_bad_values(net):
    with pytest.raises(ValueError):
        st.node_addresses(net)


def test_validate_names_the_flag(tmp_path):
    s = st.Settings(data_dir=str(tmp_path), node_network="100.64.0.0/31", port=0, pod_cidr="10.99.0.0/24",
                    node_name="Bad_Name")
    errs = "\n".join(s.validate())
    assert "--node-network" in errs and "--port" in errs and "node name 'Bad_Name'" in errs
    assert "--pod-cidr 10.99.0.0/24 must lie inside --cluster-cidr" in errs
    s2 = st.Settings(data_dir=str(tmp_path), node_network="10.96.0.0/24")
    assert any("overlaps --service-cidr" in e for e in s2.validate())
    assert st.Settings(data_dir=str(tmp_path)).validate() == []
    assert any("room for 5 node(s), not 6" in e for e in st.Settings(
        data_dir=str(tmp_path), node_network="100.64.9.8/29",
        nodes=[{"name": f"n{i}", "index": i} for i in range(1, 7)]).validate())
    assert any("--backend" in e for e in st.Settings(data_dir=str(tmp_path), backend="ipip").validate())


def test_defaults_checked_once():
    assert st.DEFAULT_BACKEND == "host-gw" and st.BACKENDS == {"host-gw": 1500, "vxlan": 1450}
    assert st.DEFAULT_NODE_NETWORK == "100.64.0.0/24" and st.DEFAULT_CLUSTER_CIDR == "10.244.0.0/16"
    assert st.node_ip_of("100.64.0.0/24", 1) == "100.64.0.2" and st.node_ip_of("100.64.0.0/24", 253) == "100.64.0.254"
    with pytest.raises(ValueError):
        st.node_ip_of("100.64.0.0/24", 254)
    assert st.max_nodes("100.64.0.0/24") == 253 and st.max_nodes("100.64.9.8/29") == 5


def test_nodes_flag_and_node_name(tmp_path):
    d = str(tmp_path)
    s = settings_from_args(build_parser().parse_args(["--data-dir", d, "--nodes", "3", "--backend", "vxlan"]), None)
    assert s.node_names == ["node-1", "node-2", "node-3"] and [n["index"] for n in s.nodes] == [1, 2, 3]
    assert s.backend == "vxlan" and s.mtu == 1450
    # the saved nodes are kept when --nodes is not given (or is the same); --node-name renames the first
    again = settings_from_args(build_parser().parse_args(["--data-dir", d]), s)
    assert again.node_names == s.node_names and again.backend == "vxlan"
    one = settings_from_args(build_parser().parse_args(["--data-dir", d, "--node-name", "solo"]), None)
    assert one.node_names == ["solo"] and one.node_name == "solo"
    assert st.process_keys(["a"]) == ["apiserver", "controller-manager", "scheduler", "a/kubelet", "a/proxy",
                                      "a/netd", "dns"]


def test_state_round_trip_and_precedence(tmp_path):
    d = str(tmp_path / "pk")
    saved = st.Settings(data_dir=d, node_network="100.64.7.0/29", port=16443, host_routes_added=["10.244.1.0/24"],
                        nodes=[{"name": "node-1", "index": 1}, {"name": "x", "index": 3}])
    st.save_state(saved)
    loaded = st.load_state(d)
    assert loaded == saved
    with open(os.path.join(d, "state.json")) as f:
        assert json.load(f)["node_network"] == "100.64.7.0/29"
    # saved settings are reused; given flags win
    r = st.resolve_settings(d, loaded, port=None, node_network="100.64.8.0/24")
    assert r.port == 16443 and r.node_network == "100.64.8.0/24"
    assert r.host_routes_added == ["10.244.1.0/24"] and r.host_routes_added is not loaded.host_routes_added
    assert r.nodes == saved.nodes and r.nodes[1] is not loaded.nodes[1]
    assert st.resolve_settings(d, None).port == st.DEFAULT_PORT
    assert st.load_state(str(tmp_path / "nothing-here")) is None


def test_corrupt_state_names_the_fix(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(st.StateError, match="pocketkube down --data-dir .* --purge"):
        st.load_state(str(tmp_path))


def test_host_routes_and_egress_are_never_carried_over(tmp_path):
    d = str(tmp_path)
    saved = st.Settings(data_dir=d, host_routes=False, egress=True, port=7000)
    args = build_parser().parse_args(["--data-dir", d])
    s = settings_from_args(args, saved)
    assert s.port == 7000 and s.host_routes is True and s.egress is False
    args = build_parser().parse_args(["--data-dir", d, "--no-host-routes", "--egress"])
    s = settings_from_args(args, None)
    assert s.host_routes is False and s.egress is True
    assert isinstance(args, argparse.Namespace)


def test_layout_marker_does_not_match_a_sibling_dir(tmp_path):
    lay = st.Layout(str(tmp_path / "d"))
    assert lay.marker.endswith("/d/")
    assert lay.marker not in f"python -m deploy.cli scheduler --kubeconfig {tmp_path}/d2/kubeconfig"
    assert lay.marker in f"python -m deploy.cli scheduler --kubeconfig {tmp_path}/d/control-plane.kubeconfig"
