"""nodeutil.rtnl: what goes on the wire (decoded back with pyroute2) and how answers are read.

A recording stand-in socket takes the place of the netlink socket; the real
kernel side is covered by the CNI e2e tests (tests/e2e/test_cni.py checks the
veth, its bridge, hairpin, the address and the default route in real namespaces).
"""
from __future__ import annotations

import errno
import struct

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from nodeutil import rtnl
from nodeutil.rtnl import NetlinkError, RtnlSocket

HDR = struct.Struct("=IHHII")


def ack(seq: int, code: int = 0) -> bytes:
    body = struct.pack("=i", -code) + b"\0" * 16
    return HDR.pack(HDR.size + len(body), rtnl.NLMSG_ERROR, 0, seq, 0) + body


def link_answer(seq: int, index: int) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, 0, 0)
    return HDR.pack(HDR.size + len(body), rtnl.RTM_NEWLINK, 0, seq, 0) + body


class FakeSock:
    def __init__(self):
        self.sent: list[bytes] = []
        self.answers: list = []       # callables seq -> bytes, one per request

    def bind(self, addr):
        self.bound = addr

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        self._pending = HDR.unpack_from(data)[3]
        return len(data)

    def recv(self, n: int) -> bytes:
        return self.answers.pop(0)(self._pending)

    def close(self):
        pass


def decode(cls, data: bytes):
    m = cls(data)
    m.decode()
    return m


def sock_with(*answers) -> tuple[RtnlSocket, FakeSock]:
    fake = FakeSock()
    fake.answers = list(answers)
    return RtnlSocket(fake), fake


def test_add_veth_names_both_ends_and_creates_the_peer_in_the_pod_namespace():
    rt, fake = sock_with(lambda seq: ack(seq))
    rt.add_veth("veth1234", "0a:00:00:00:00:01", "eth0", "0a:00:00:00:00:02", 7, mtu=1400)
    m = decode(ifinfmsg, fake.sent[0])
    h = m["header"]
    assert h["type"] == rtnl.RTM_NEWLINK
    assert h["flags"] == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK | rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
    assert m.get_attr("IFLA_IFNAME") == "veth1234" and m.get_attr("IFLA_MTU") == 1400
    info = m.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer.get_attr("IFLA_IFNAME") == "eth0"
    assert peer.get_attr("IFLA_NET_NS_FD") == 7
    assert peer.get_attr("IFLA_ADDRESS") == "0a:00:00:00:00:02"
    assert peer["flags"] == 0          # the kernel refuses to open a veth end before its peer exists


def test_negative_ack_raises_netlink_error_with_the_errno():
    rt, _ = sock_with(lambda seq: ack(seq, errno.EEXIST))
    with pytest.raises(NetlinkError) as e:
        rt.add_address(3, "10.244.1.5/24")
    assert e.value.code == errno.EEXIST


def test_answers_to_other_sequence_numbers_are_skipped():
    rt, fake = sock_with(lambda seq: ack(seq - 1, errno.EPERM) + ack(seq))
    rt.set_link(5, up=True)          # the stale EPERM belongs to an earlier request: ignored
    m = decode(ifinfmsg, fake.sent[0])
    assert (m["index"], m["flags"], m["change"]) == (5, rtnl.IFF_UP, rtnl.IFF_UP)


def test_link_index_reads_the_index_and_maps_enodev_to_none():
    rt, fake = sock_with(lambda seq: link_answer(seq, 42), lambda seq: ack(seq, errno.ENODEV))
    assert rt.link_index("cni0") == 42
    assert rt.link_index("gone") is None
    m = decode(ifinfmsg, fake.sent[0])
    assert m["header"]["type"] == rtnl.RTM_GETLINK and m.get_attr("IFLA_IFNAME") == "cni0"


def test_link_index_raises_other_errors():
    rt, _ = sock_with(lambda seq: ack(seq, errno.EPERM))
    with pytest.raises(NetlinkError):
        rt.link_index("cni0")


def test_attach_and_hairpin_messages():
    rt, fake = sock_with(lambda seq: ack(seq), lambda seq: ack(seq))
    rt.set_link(9, master=4, up=True)
    rt.set_bridge_port_hairpin(9, True)
    m = decode(ifinfmsg, fake.sent[0])
    assert m["header"]["type"] == rtnl.RTM_SETLINK and m.get_attr("IFLA_MASTER") == 4 and m["flags"] & rtnl.IFF_UP
    hp = decode(ifinfmsg, fake.sent[1])
    assert hp["header"]["type"] == rtnl.RTM_NEWLINK and hp["index"] == 9
    info = hp.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_SLAVE_KIND") == "bridge"
    assert info.get_attr("IFLA_INFO_SLAVE_DATA").get_attr("IFLA_BRPORT_MODE") == 1


def test_address_and_routes():
    rt, fake = sock_with(*[lambda seq: ack(seq)] * 3)
    rt.add_address(2, "10.244.1.5/24")
    rt.add_route("0.0.0.0/0", 2, "10.244.1.1")
    rt.add_route("10.96.0.0/12", 2)
    a = decode(ifaddrmsg, fake.sent[0])
    assert (a["index"], a["prefixlen"], a.get_attr("IFA_LOCAL"), a.get_attr("IFA_ADDRESS")) == \
        (2, 24, "10.244.1.5", "10.244.1.5")
    default = decode(rtmsg, fake.sent[1])
    assert default["dst_len"] == 0 and default.get_attr("RTA_DST") is None
    assert default.get_attr("RTA_GATEWAY") == "10.244.1.1" and default.get_attr("RTA_OIF") == 2
    assert default["scope"] == rtnl.RT_SCOPE_UNIVERSE
    onlink = decode(rtmsg, fake.sent[2])
    assert (onlink["dst_len"], onlink.get_attr("RTA_DST"), onlink["scope"]) == (12, "10.96.0.0", rtnl.RT_SCOPE_LINK)


def test_configure_pod_closes_its_pod_namespace_socket(monkeypatch, tmp_path):
    """A kept netlink socket would hold a deleted pod's namespace alive; each pod call opens and closes its own."""
    from nodeutil import netlink

    socks: list[FakeSock] = []

    def fake_netns_socket(path):
        s = FakeSock()
        # lo up, eth0's index, address, eth0 up, default route
        s.answers = [lambda seq: ack(seq), lambda seq: link_answer(seq, 2)] + [lambda seq: ack(seq)] * 3
        s.closed = False
        s.close = lambda: setattr(s, "closed", True)
        socks.append(s)
        return s

    monkeypatch.setattr(netlink, "netns_socket", fake_netns_socket)
    nl = netlink.RealNetlink()
    for _ in range(2):
        nl.configure_pod(str(tmp_path), "eth0", "10.244.1.5/24", [("0.0.0.0/0", "10.244.1.1")])
    assert len(socks) == 2 and all(s.closed for s in socks)
    assert not any(s.answers for s in socks)   # every request got its answer


def _pyroute2_bytes(msg, msg_type: int, flags: int, seq: int) -> bytes:
    msg["header"]["type"], msg["header"]["flags"], msg["header"]["sequence_number"] = msg_type, flags, seq
    msg.encode()
    return bytes(msg.data)


def test_hand_packed_messages_are_byte_for_byte_what_pyroute2_encodes():
    """The reference: the same requests built with pyroute2's own message classes."""
    rt, fake = sock_with(*[lambda seq: ack(seq)] * 5)
    rt.add_address(2, "10.244.1.5/24")
    rt.add_route("0.0.0.0/0", 2, "10.244.1.1")
    rt.set_link(9, master=4)
    rt.set_link(9, up=True)
    rt.add_veth("veth1234", "0a:00:00:00:00:01", "eth0", "0a:00:00:00:00:02", 7)
    f = rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK
    a = ifaddrmsg()
    a["family"], a["prefixlen"], a["index"] = 2, 24, 2
    a["attrs"] = [("IFA_LOCAL", "10.244.1.5"), ("IFA_ADDRESS", "10.244.1.5")]
    r = rtmsg()
    r["family"], r["dst_len"], r["table"], r["proto"], r["scope"], r["type"] = 2, 0, 254, 3, 0, 1
    r["attrs"] = [("RTA_TABLE", 254), ("RTA_OIF", 2), ("RTA_GATEWAY", "10.244.1.1")]
    m = ifinfmsg()
    m["index"] = 9
    m["attrs"] = [("IFLA_MASTER", 4)]
    u = ifinfmsg()
    u["index"], u["flags"], u["change"] = 9, 1, 1
    v = ifinfmsg()
    v["attrs"] = [("IFLA_IFNAME", "veth1234"), ("IFLA_ADDRESS", "0a:00:00:00:00:01"), ("IFLA_LINKINFO", {"attrs": [
        ("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": [
            ("IFLA_IFNAME", "eth0"), ("IFLA_ADDRESS", "0a:00:00:00:00:02"), ("IFLA_NET_NS_FD", 7)]})]})]})]
    create = rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
    assert fake.sent == [_pyroute2_bytes(a, rtnl.RTM_NEWADDR, f | create, 1),
                         _pyroute2_bytes(r, rtnl.RTM_NEWROUTE, f | create, 2),
                         _pyroute2_bytes(m, rtnl.RTM_SETLINK, f, 3),
                         _pyroute2_bytes(u, rtnl.RTM_SETLINK, f, 4),
                         _pyroute2_bytes(v, rtnl.RTM_NEWLINK, f | create, 5)]
