"""`pocketkube up` prerequisite checks through the FakeSystem seam: each problem names its exact fix,
and nothing is changed before they pass."""
from __future__ import annotations

import argparse
import os

from deploy import prereq, up
from deploy.state import Settings, save_state
from deploy.system import FakeSystem, Result

MUTATING = ("ip netns add", "ip link add", "ip addr", "ip route add", "iptables -w -t nat -A", "-I FORWARD", "sysctl")


def settings(tmp_path, **kw) -> Settings:
    return Settings(data_dir=str(tmp_path / "pk"), **kw)


def test_all_good_means_no_problems(tmp_path):
    assert prereq.check_all(FakeSystem(networks=["192.0.2.0/24"]), settings(tmp_path)) == []


def test_not_root_is_the_only_problem_reported_and_names_sudo(tmp_path):
    probs = prereq.check_all(FakeSystem(euid=1000), settings(tmp_path))
    assert len(probs) == 1 and "root" in probs[0].what and "sudo pocketkube up" in probs[0].fix


def test_missing_tools_name_the_apt_get_line(tmp_path):
    fs = FakeSystem()
    fs.tools -= {"iptables", "iptables-restore", "nsenter", "openssl"}
    fixes = {p.fix for p in prereq.check_all(fs, settings(tmp_path))}
    assert "pocketkube install (or: apt-get install -y iptables)" in fixes
    assert "pocketkube install (or: apt-get install -y util-linux)" in fixes
    assert "pocketkube install (or: apt-get install -y openssl)" in fixes


def test_egress_also_needs_sysctl(tmp_path):
    fs = FakeSystem()
    assert prereq.check_tools(fs, egress=False) == []
    assert [p.fix for p in prereq.check_tools(fs, egress=True)] == ["pocketkube install (or: apt-get install -y procps)"]


def test_missing_packages_is_what_install_installs():
    from deploy import install

    fs = FakeSystem(tools={"ip", "unshare", "nsenter", "openssl", "sysctl"})       # a fresh Debian: no iptables,
    assert prereq.missing_packages(fs) == ["iptables", "conntrack", "gcc", "libc6-dev"]   # conntrack, compiler
    assert install.install_commands(["iptables"]) == [
        ["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "iptables"]]
    everything = FakeSystem(tools=set(prereq.TOOLS) | {"sysctl", "cc"}, paths={"/usr/lib/x86_64-linux-gnu/libc.a"})
    assert prereq.missing_packages(everything) == [] and install.install_commands([]) == []
    assert prereq.missing_packages(FakeSystem(tools=set(prereq.TOOLS) | {"sysctl", "cc"})) == ["libc6-dev"]


def test_install_runs_apt_get_once_for_everything_missing(capsys):
    from deploy import install

    class Fresh(FakeSystem):
        def which(self, tool):
            return None if tool in self.missing else f"/usr/bin/{tool}"

    fs = Fresh(paths={"/usr/lib/x86_64-linux-gnu/libc.a"})
    fs.missing = {"iptables", "iptables-save", "iptables-restore", "conntrack"}
    ran = []

    def run(argv, env):
        ran.append(argv)
        if argv[1] == "install":
            fs.missing = set()
        return Result(0)

    assert install.install(fs, run=run) == 0
    assert ran[1][-2:] == ["iptables", "conntrack"] and env_ok(ran)
    assert install.install(fs, run=run) == 0 and len(ran) == 2          # nothing left to do
    assert "nothing to do" in capsys.readouterr().out
    fs.missing = {"openssl"}
    assert install.install(fs, dry_run=True, run=run) == 0 and len(ran) == 2
    assert "apt-get install -y -qq --no-install-recommends openssl" in capsys.readouterr().out


def env_ok(ran) -> bool:
    return ran[0] == ["apt-get", "update", "-qq"]


def test_no_network_namespaces(tmp_path):
    fs = FakeSystem(paths=set())
    probs = prereq.check_all(fs, settings(tmp_path))
    assert any("network namespaces" in p.what and "CONFIG_NET_NS" in p.fix for p in probs)
    fs = FakeSystem(responses={"unshare --net": Result(1, "", "unshare: unshare failed: Operation not permitted")})
    probs = prereq.check_all(fs, settings(tmp_path))
    assert any("Operation not permitted" in p.what and "NET_ADMIN" in p.fix for p in probs)


def test_node_network_overlap_suggests_a_free_one(tmp_path):
    fs = FakeSystem(networks=["100.64.0.0/24", "100.64.0.1/32", "100.64.1.0/24"])
    probs = prereq.check_all(fs, settings(tmp_path))
    assert len(probs) == 1
    assert "overlaps 100.64.0.0/24 already" in probs[0].what          # the /32 inside it is not repeated
    assert probs[0].fix == "pick a free one: pocketkube up --node-network 100.64.2.0/24"


def test_host_route_overlap_suggests_no_host_routes(tmp_path):
    fs = FakeSystem(networks=["10.96.0.0/16"])
    probs = prereq.check_all(fs, settings(tmp_path))
    assert len(probs) == 1 and "service CIDR" in probs[0].what and "--no-host-routes" in probs[0].fix
    assert prereq.check_all(fs, settings(tmp_path, host_routes=False)) == []


def test_port_in_use(tmp_path):
    fs = FakeSystem(busy_ports={("0.0.0.0", 6443)})
    probs = prereq.check_all(fs, settings(tmp_path))
    assert len(probs) == 1 and "port 6443" in probs[0].what and "--port 6444" in probs[0].fix


def test_leftovers_of_an_old_cluster_say_down_first(tmp_path):
    s = settings(tmp_path)
    fs = FakeSystem(paths={"/proc/self/ns/net", f"/run/netns/{s.netns}"},
                    responses={f"ip link show dev {s.host_if}": Result(1)})
    probs = prereq.check_all(fs, s)
    assert any(p.fix == f"run pocketkube down --data-dir {s.data_dir} first" for p in probs)


def test_bad_flag_values_are_problems(tmp_path):
    probs = prereq.check_all(FakeSystem(), settings(tmp_path, node_network="100.64.0.0/31"))
    assert any("--node-network" in p.what for p in probs)


def _args(tmp_path, *extra) -> argparse.Namespace:
    a = up.build_parser().parse_args(["--data-dir", str(tmp_path / "pk"), *extra])
    a.data_dir = os.path.abspath(a.data_dir)
    return a


def test_up_with_problems_changes_nothing(tmp_path, capsys):
    fs = FakeSystem(networks=["100.64.0.0/24"], busy_ports={("127.0.0.1", 6443)})
    assert up.up(fs, _args(tmp_path)) == 1
    text = capsys.readouterr().out
    assert "nothing was changed" in text and "--node-network" in text and "--port" in text
    assert not any(m in line for line in fs.lines() for m in MUTATING)
    assert not os.path.exists(tmp_path / "pk" / "state.json")


def test_up_on_a_running_cluster_says_so_and_resumes_a_partly_running_one(tmp_path, capsys, monkeypatch):
    s = settings(tmp_path)
    save_state(s)
    lay = s.layout
    procs = {}
    keys = up.expected_processes(s)
    for i, key in enumerate(keys):
        path = lay.runtime_pid("node-1") if key.endswith("/runtime") else lay.pidfile(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f"{1000 + i}\n")
        procs[1000 + i] = f"python -m deploy.cli {key} --kubeconfig {lay.data_dir}/x"
    fs = FakeSystem(procs=procs)
    assert up.up(fs, _args(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "already running" in out and f"export KUBECONFIG={lay.kubeconfig}" in out
    assert fs.commands == []
    # the API server was kill -9'd and nothing restarted it: start only what is missing
    del fs.procs[1000 + keys.index("apiserver")]
    seen = {}

    class FakeLauncher(up.Launcher):
        def run(self):
            seen["running"] = dict(self.running)

    monkeypatch.setattr(up, "Launcher", FakeLauncher)
    assert up.up(fs, _args(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "partly running; starting what is missing (apiserver)" in out
    assert "apiserver" not in seen["running"] and "node-1/kubelet" in seen["running"]
    assert not any(m in line for line in fs.lines() for m in MUTATING)


def test_a_reused_pid_is_not_ours(tmp_path):
    s = settings(tmp_path)
    os.makedirs(s.layout.path("run"))
    with open(s.layout.pidfile("apiserver"), "w") as f:
        f.write("4242\n")
    fs = FakeSystem(procs={4242: "/usr/sbin/sshd -D"})
    assert prereq.running_components(fs, s) == {}
