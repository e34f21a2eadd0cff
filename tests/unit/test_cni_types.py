"""CNI data shapes: network config lists, error JSON, results in the spec's field names."""
from __future__ import annotations

import json

import pytest

from kubelet.cni.types import (ERR_INVALID_CONFIG, ERR_INVALID_ENV, CNIError, CNIResult, NetworkConfigList,
                               validate_container_id)

RESULT_1_0 = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "cni0", "mac": "0a:58:0a:f4:01:01"},
                   {"name": "veth1234abcd", "mac": "aa:bb:cc:dd:ee:01"},
                   {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/var/run/netns/x"}],
    "ips": [{"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 2}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
    "dns": {"nameservers": ["10.96.0.10"]},
}


def test_result_round_trip_keeps_spec_field_names():
    r = CNIResult.from_dict(RESULT_1_0)
    assert r.cni_version == "1.0.0"
    assert r.pod_ip() == "10.244.1.5"
    assert r.to_dict() == RESULT_1_0
    assert CNIResult.from_json(r.to_json()) == r


def test_result_0_4_carries_ip_version_and_parses_back():
    d = dict(RESULT_1_0, cniVersion="0.4.0")
    d["ips"] = [dict(RESULT_1_0["ips"][0], version="4")]
    r = CNIResult.from_dict(d)
    assert "version" not in r.ips[0]
    assert r.to_dict()["ips"][0]["version"] == "4"


def test_pod_ip_prefers_ipv4_and_handles_none():
    r = CNIResult(ips=[{"address": "fd00::5/64"}, {"address": "10.244.2.9/24"}])
    assert r.pod_ip() == "10.244.2.9"
    assert r.pod_ips() == ["10.244.2.9", "fd00::5"]
    assert CNIResult().pod_ip() is None


def test_result_from_0_2_shape():
    r = CNIResult.from_dict({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.3/16", "gateway": "10.1.0.1",
                                                            "routes": [{"dst": "0.0.0.0/0"}]}})
    assert r.pod_ip() == "10.1.0.3" and r.routes == [{"dst": "0.0.0.0/0"}]


def test_result_rejects_bad_shapes():
    with pytest.raises(ValueError):
        CNIResult.from_dict([])
    with pytest.raises(ValueError):
        CNIResult.from_dict({"cniVersion": "1.0.0", "ips": [{"gateway": "1.2.3.4"}]})


def test_error_json_round_trip():
    e = CNIError(11, "no IP addresses available", "range 10.244.1.2-10.244.1.254")
    d = json.loads(e.to_json())
    assert d == {"cniVersion": "1.0.0", "code": 11, "msg": "no IP addresses available",
                 "details": "range 10.244.1.2-10.244.1.254"}
    back = CNIError.from_json(e.to_json().encode())
    assert (back.code, back.msg, back.details) == (11, "no IP addresses available", "range 10.244.1.2-10.244.1.254")
    assert "no IP addresses available" in str(back) and "11" in str(back)
    assert "details" not in json.loads(CNIError(7, "bad").to_json())


@pytest.mark.parametrize("data", [b"", b"not json", b"[]", b'{"msg": "x"}', b'{"code": "7", "msg": "x"}'])
def test_error_from_json_rejects_non_errors(data):
    with pytest.raises(ValueError):
        CNIError.from_json(data)


def test_conflist_parse():
    nc = NetworkConfigList.from_bytes(json.dumps({
        "cniVersion": "1.0.0", "name": "net", "disableCheck": True,
        "plugins": [{"type": "bridge"}, {"type": "portmap", "capabilities": {"portMappings": True}}]}), "x.conflist")
    assert (nc.name, nc.cni_version, nc.disable_check) == ("net", "1.0.0", True)
    assert [p["type"] for p in nc.plugins] == ["bridge", "portmap"]
    assert NetworkConfigList.from_dict(nc.to_dict()).plugins == nc.plugins


def test_single_conf_becomes_one_plugin_list():
    nc = NetworkConfigList.from_dict({"cniVersion": "0.4.0", "name": "n", "type": "bridge", "bridge": "br0"})
    assert nc.plugins == [{"type": "bridge", "bridge": "br0"}]
    assert nc.name == "n" and nc.cni_version == "0.4.0"


@pytest.mark.parametrize("body, why", [
    (b"{oops", "not JSON"),
    (b"[]", "JSON object"),
    (b'{"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}', "name"),
    (b'{"name": "n", "plugins": [{"type": "x"}]}', "cniVersion"),
    (b'{"name": "n", "cniVersion": "1.0.0", "plugins": []}', "non-empty"),
    (b'{"name": "n", "cniVersion": "1.0.0", "plugins": [{"bridge": "x"}]}', "plugins[0] has no 'type'"),
    (b'{"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "../../bin/sh"}]}', "plain executable"),
    (b'{"name": "n", "cniVersion": "1.0.0"}', "neither"),
])
def test_bad_configs_say_what_is_wrong(tmp_path, body, why):
    p = tmp_path / "10-bad.conflist"
    p.write_bytes(body)
    with pytest.raises(CNIError) as ei:
        NetworkConfigList.from_file(str(p))
    assert ei.value.code == ERR_INVALID_CONFIG
    assert str(p) in ei.value.msg and why in str(ei.value)


def test_conflist_file_needs_plugins(tmp_path):
    p = tmp_path / "a.conflist"
    p.write_text(json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "bridge"}))
    with pytest.raises(CNIError, match="plugins"):
        NetworkConfigList.from_file(str(p))


def test_container_id_validation():
    validate_container_id("abc-123_x.y")
    for bad in ("", "-abc", "a/b", "a;b", "a b"):
        with pytest.raises(CNIError) as ei:
            validate_container_id(bad)
        assert ei.value.code == ERR_INVALID_ENV
