"""The host-local style IPAM on a temporary directory: leases, rotation, exhaustion, restarts, concurrency."""
from __future__ import annotations

import os
import threading

import pytest

from kubelet.cni.ipam import HostLocalIPAM, RangeConfig
from kubelet.cni.types import ERR_INVALID_CONFIG, ERR_TRY_AGAIN, CNIError


def make(tmp_path, subnet="10.244.1.0/24", name="net", **extra) -> HostLocalIPAM:
    return HostLocalIPAM.from_ipam(name, {"type": "host-local", "subnet": subnet, "dataDir": str(tmp_path), **extra})


def test_first_lease_skips_network_and_gateway_and_writes_host_local_format(tmp_path):
    ipam = make(tmp_path)
    lease, created = ipam.allocate("c1", "eth0")
    assert created and lease.address == "10.244.1.2/24" and str(lease.gateway) == "10.244.1.1"
    d = tmp_path / "networks" / "net"
    assert (d / "10.244.1.2").read_bytes() == b"c1\r\neth0"
    assert (d / "last_reserved_ip.0").read_text() == "10.244.1.2"


def test_allocate_is_idempotent_per_container_and_ifname(tmp_path):
    ipam = make(tmp_path)
    a, created = ipam.allocate("c1", "eth0")
    again, created_again = ipam.allocate("c1", "eth0")
    assert a == again and created and not created_again
    other, _ = ipam.allocate("c1", "net1")
    assert other.ip != a.ip
    assert len(ipam.leases()) == 2


def test_rotation_does_not_reuse_a_released_address_at_once(tmp_path):
    ipam = make(tmp_path)
    first, _ = ipam.allocate("c1", "eth0")
    assert ipam.release("c1") == [str(first.ip)]
    second, _ = ipam.allocate("c2", "eth0")
    assert second.ip == first.ip + 1


def test_exhaustion_is_a_clear_try_again_error_and_release_frees(tmp_path):
    ipam = make(tmp_path, subnet="10.9.0.0/29")  # .1 gateway, .2-.6 usable, .7 broadcast
    got = [str(ipam.allocate(f"c{i}", "eth0")[0].ip) for i in range(5)]
    assert got == [f"10.9.0.{i}" for i in range(2, 7)]
    with pytest.raises(CNIError) as ei:
        ipam.allocate("c9", "eth0")
    assert ei.value.code == ERR_TRY_AGAIN
    assert "no IP addresses available" in ei.value.msg and "10.9.0.0/29" in ei.value.details
    ipam.release("c3")
    assert str(ipam.allocate("c9", "eth0")[0].ip) == "10.9.0.5"


def test_wraps_around_after_the_last_address(tmp_path):
    ipam = make(tmp_path, subnet="10.9.0.0/29")
    for i in range(5):
        ipam.allocate(f"c{i}", "eth0")
    ipam.release("c0")
    ipam.release("c4")
    # The last reserved is .6, so the search wraps to .2 before reaching .6 again.
    assert str(ipam.allocate("n1", "eth0")[0].ip) == "10.9.0.2"
    assert str(ipam.allocate("n2", "eth0")[0].ip) == "10.9.0.6"


def test_custom_gateway_and_range(tmp_path):
    ipam = make(tmp_path, subnet="10.9.0.0/28", gateway="10.9.0.5", rangeStart="10.9.0.4", rangeEnd="10.9.0.6")
    got = [str(ipam.allocate(f"c{i}", "eth0")[0].ip) for i in range(2)]
    assert got == ["10.9.0.4", "10.9.0.6"]
    with pytest.raises(CNIError):
        ipam.allocate("c3", "eth0")


def test_ranges_form_is_accepted(tmp_path):
    ipam = HostLocalIPAM.from_ipam("n", {"ranges": [[{"subnet": "10.7.0.0/24"}]], "dataDir": str(tmp_path)})
    assert ipam.allocate("c", "eth0")[0].address == "10.7.0.2/24"


def test_restart_sees_existing_leases(tmp_path):
    make(tmp_path).allocate("c1", "eth0")
    restarted = make(tmp_path)
    assert restarted.lookup("c1", "eth0").address == "10.244.1.2/24"
    assert restarted.allocate("c1", "eth0")[1] is False
    assert str(restarted.allocate("c2", "eth0")[0].ip) == "10.244.1.3"  # rotation state survived too


def test_release_is_idempotent_and_per_ifname(tmp_path):
    ipam = make(tmp_path)
    assert ipam.release("nobody") == []
    ipam.allocate("c1", "eth0")
    ipam.allocate("c1", "net1")
    assert ipam.release("c1", "net1") == ["10.244.1.3"]
    assert ipam.release("c1", "net1") == []
    assert list(ipam.leases()) == ["10.244.1.2"]
    assert make(tmp_path / "elsewhere").release("c1") == []  # directory never made


def test_concurrent_allocation_from_threads_and_two_instances(tmp_path):
    ipams = [make(tmp_path), make(tmp_path)]  # two "processes" sharing the directory
    results: dict[str, str] = {}
    errors = []
    barrier = threading.Barrier(20)

    def work(i: int) -> None:
        try:
            barrier.wait()
            lease, _ = ipams[i % 2].allocate(f"c{i}", "eth0")
            results[f"c{i}"] = str(lease.ip)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(set(results.values())) == 20
    on_disk = ipams[0].leases()
    assert {ip: cid for ip, (cid, _) in on_disk.items()} == {ip: cid for cid, ip in results.items()}


def test_concurrent_allocation_from_processes(tmp_path):
    pids = []
    for i in range(4):
        pid = os.fork()
        if pid == 0:  # child: allocate 5 addresses, exit
            code = 0
            try:
                ipam = make(tmp_path)
                for j in range(5):
                    ipam.allocate(f"p{i}-{j}", "eth0")
            except BaseException:  # noqa: BLE001
                code = 1
            os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    leases = make(tmp_path).leases()
    assert len(leases) == 20 and len({cid for cid, _ in leases.values()}) == 20


@pytest.mark.parametrize("ipam, why", [
    ({}, "no 'subnet'"),
    ({"subnet": "nonsense"}, "subnet"),
    ({"subnet": "fd00::/64"}, "IPv4"),
    ({"subnet": "10.0.0.0/31"}, "too small"),
    ({"subnet": "10.0.0.0/24", "gateway": "10.0.1.1"}, "outside"),
    ({"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.3"}, "after"),
    ({"subnet": "10.0.0.0/24", "routes": [{"gw": "1.1.1.1"}]}, "routes"),
    ({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.1.0/24"}]]}, "one range"),
])
def test_bad_ipam_config(ipam, why):
    with pytest.raises(CNIError) as ei:
        RangeConfig.from_ipam(ipam)
    assert ei.value.code == ERR_INVALID_CONFIG and why in str(ei.value)


def test_lease_owners_are_read_once_and_new_files_are_read(tmp_path, monkeypatch):
    """An allocation reads only the lease files it has not seen (by name and inode), not every lease."""
    import builtins

    from kubelet.cni import ipam as ipam_mod

    for i in range(30):
        make(tmp_path).allocate(f"c{i}", "eth0")
    d = tmp_path / "networks" / "net"
    opened: list[str] = []
    real_open = builtins.open

    def counting_open(path, *a, **k):
        if str(path).startswith(str(d)) and os.path.basename(str(path))[0].isdigit():
            opened.append(os.path.basename(str(path)))
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", counting_open)
    make(tmp_path).allocate("c30", "eth0")
    assert opened == []                                   # 30 leases known: none re-read
    # another process releases one lease and leases the same address to someone else
    (d / "10.244.1.5").unlink()
    with real_open(d / "10.244.1.5", "w") as f:
        f.write("someone-else\r\neth0")
    assert make(tmp_path).leases()["10.244.1.5"] == ("someone-else", "eth0")
    assert opened == ["10.244.1.5"]
    # a process that has never looked (a fresh cache) reads them all and finds the same owners
    ipam_mod._OWNERS.clear()
    assert make(tmp_path).leases()["10.244.1.7"] == ("c5", "eth0")
