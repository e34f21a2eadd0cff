"""The node fixture the kubelet issue owns: a node namespace running a real kubelet and its runtime.

Layout (docs/design.md "Network layout" and its safety rules)::

    host ns: API server on the host end of the node link, scheduler, controller-manager
    node ns pk-<tag>-node: kubelet + runtime (pods are pause processes whose netns the
        CNI plugin plugs into cni0), proxy (iptables in the node ns only)

The kubelet runs with ``nsenter --net=/run/netns/<node>``: only the network
namespace changes (``ip netns exec`` would also remount /sys and hide the
cgroup hierarchies the runtime puts pods in). Its cgroups live under
``pocketkube/test-<tag>`` so concurrent runs never meet.

Teardown, in order and even after failures: stop the kubelet; remove every
sandbox through the runtime (kills pause and containers, removes cgroups);
stop the runtime by the PID it wrote; kill anything still in the test's
cgroups; remove the cgroup directories; stop the other components; delete
the namespaces and the host end of the link. Afterwards nothing of the run
is left: no namespace, veth, process, cgroup or IP lease.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import time

import httpx

from api import resources as R
from client.rest import Client
from tests.conftest import free_port
from tests.e2e.conftest import Proc
from tests.e2e.netns import Node, in_ns, wait_until

class KubeletCluster:
    def __init__(self, node: Node, tmp: str, *, node_name: str = "node-1", proxy: bool = True,
                 cni_conf_dir: str | None = None, scheduler: bool = True, kubelet_extra: list[str] | None = None):
        self.node = node
        self.tmp = tmp
        self.node_name = node_name
        self.port = free_port()
        self.kubelet_port = free_port()
        self.url = f"http://{node.host_ip}:{self.port}"
        self.root = os.path.join(tmp, "kubelet")
        self.kubelet_extra = list(kubelet_extra or [])
        self.cgroup_root = f"pocketkube/test-{node.tag}"
        self.token_file = os.path.join(tmp, "kubelet-token")
        with open(self.token_file, "w") as f:
            f.write(f"kubelet-relay-{node.tag}\n")
        py = sys.executable
        self.apiserver = Proc([py, "-m", "deploy.cli", "apiserver", "--bind-address", node.host_ip,
                               "--port", str(self.port), "--data-dir", os.path.join(tmp, "data"),
                               "--kubelet-token-file", self.token_file], os.path.join(tmp, "apiserver.log"))
        self.scheduler = Proc([py, "-m", "deploy.cli", "scheduler", "--server", self.url],
                              os.path.join(tmp, "scheduler.log")) if scheduler else None
        self.cm = Proc([py, "-m", "deploy.cli", "controller-manager", "--server", self.url],
                       os.path.join(tmp, "controller-manager.log"))
        self.proxy = Proc(in_ns(node.ns, py, "-m", "deploy.cli", "proxy", "--node-name", node_name,
                                "--server", self.url, "--cluster-cidr", "10.244.0.0/16", "--min-sync-period", "0.1"),
                          os.path.join(tmp, "proxy.log")) if proxy else None
        kubelet_args = [py, "-m", "deploy.cli", "kubelet", "--node-name", node_name, "--server", self.url,
                        "--pod-cidr", node.pod_cidr, "--node-ip", node.node_ip, "--port", str(self.kubelet_port),
                        "--root-dir", self.root, "--cgroup-root", self.cgroup_root,
                        "--apiserver-token-file", self.token_file, *self.kubelet_extra]
        if cni_conf_dir:
            kubelet_args += ["--cni-conf-dir", cni_conf_dir]
        self.kubelet = Proc(["nsenter", f"--net=/run/netns/{node.ns}", "--", *kubelet_args],
                            os.path.join(tmp, "kubelet.log"))
        self.client: Client | None = None

    # ----------------------------------------------------------------- start
    def start(self) -> "KubeletCluster":
        self.apiserver.start()
        deadline = time.monotonic() + 30
        while True:
            if self.apiserver.proc.poll() is not None:
                raise RuntimeError("apiserver exited: " + self.apiserver.log()[-2000:])
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("apiserver not ready: " + self.apiserver.log()[-2000:])
            time.sleep(0.05)
        self.client = Client(server=self.url)
        for p in (self.cm, self.scheduler, self.proxy):
            if p is not None:
                p.start()
        self.start_kubelet()
        if self.proxy is not None:
            wait_until(lambda: "sync done" in self.proxy.log(), timeout=30, what="first proxy sync")
        return self

    def start_kubelet(self) -> None:
        self.kubelet.start()
        wait_until(lambda: self._node_ready() or self._kubelet_died(), timeout=60, interval=0.1,
                   what="node Ready")
        if self.kubelet.proc.poll() is not None:
            raise RuntimeError("kubelet exited: " + self.kubelet.log()[-3000:])

    def _kubelet_died(self) -> bool:
        return self.kubelet.proc is not None and self.kubelet.proc.poll() is not None

    def _node_ready(self) -> bool:
        try:
            node = self.client.get(R.NODES, self.node_name)
        except Exception:  # noqa: BLE001
            return False
        conds = (node.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds) and \
            "running" in self.kubelet.log()

    # ------------------------------------------------------------------ stop
    def runtime_pid(self) -> int | None:
        try:
            with open(os.path.join(self.root, "runtime", "runtime.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> list[str]:
        # the same teardown `pocketkube down` does (deploy.procs, kubelet.main), so the tests exercise it too
        from deploy.procs import kill_cgroup_tree
        from kubelet.main import remove_all_sandboxes, unmount_run_dir

        self.kubelet.stop()
        _, errors = remove_all_sandboxes(os.path.join(self.root, "runtime", "runtime.sock"))
        pid = self.runtime_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.05)
            except ProcessLookupError:
                pass
        errors += kill_cgroup_tree(self.cgroup_root)[1]
        errors += unmount_run_dir(os.path.join(self.root, "run"))[1]
        if self.client:
            self.client.close()
        for p in (self.proxy, self.scheduler, self.cm, self.apiserver):
            if p is not None:
                p.stop()
        return errors

    # --------------------------------------------------------------- helpers
    def pod(self, name: str, containers: list[dict], namespace: str = "default", **spec) -> dict:
        body = {"metadata": {"name": name, "namespace": namespace, **spec.pop("metadata", {})},
                "spec": {"containers": containers, "terminationGracePeriodSeconds": 2, **spec}}
        return self.client.create(R.PODS, body)

    def get_pod(self, name: str, namespace: str = "default") -> dict:
        return self.client.get(R.PODS, name, namespace)

    def wait_pod(self, name: str, pred, timeout: float = 30.0, what: str = "", namespace: str = "default") -> dict:
        def check():
            try:
                p = self.get_pod(name, namespace)
            except Exception:  # noqa: BLE001
                return None
            return p if pred(p) else None
        return wait_until(check, timeout=timeout, interval=0.1, what=what or f"pod {name}")

    def wait_running(self, name: str, timeout: float = 30.0, ready: bool = True, namespace: str = "default") -> dict:
        def ok(p):
            st = p.get("status") or {}
            if st.get("phase") != "Running":
                return False
            return not ready or any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or [])
        return self.wait_pod(name, ok, timeout, f"pod {name} Running{' and Ready' if ready else ''}", namespace)

    def delete_pod(self, name: str, namespace: str = "default", wait: bool = True, timeout: float = 60) -> None:
        self.client.delete(R.PODS, name, namespace)
        if wait:
            def gone():
                try:
                    self.get_pod(name, namespace)
                    return False
                except Exception:  # noqa: BLE001
                    return True
            wait_until(gone, timeout=timeout, interval=0.1, what=f"pod {name} deleted")

    def exec_in_pod(self, pod: dict, *cmd: str, timeout: float = 30.0):
        """Run a command in a pod's network namespace from the node (like a debug container)."""
        from kubelet.runtime.client import RuntimeClient
        rc = RuntimeClient(os.path.join(self.root, "runtime", "runtime.sock"))
        uid = pod["metadata"]["uid"]
        sb = next(s for s in rc.call("list_sandboxes")["items"] if s["pod"]["uid"] == uid and s["state"] == "ready")
        from tests.e2e.netns import run
        return run("nsenter", f"--net=/proc/{sb['pid']}/ns/net", "--", *cmd, check=False, timeout=timeout)


def fixture(tmp: str, **kw):
    """Context manager body for the pytest fixtures: node ns + cluster, always torn down."""
    node = Node()
    cluster = None
    try:
        node.setup()
        cluster = KubeletCluster(node, tmp, **kw)
        cluster.start()
        yield cluster
    finally:
        errors = cluster.stop() if cluster is not None else []
        errors += node.destroy()
        shutil.rmtree(os.path.join(tmp, "kubelet", "runtime", "containers"), ignore_errors=True)
        assert not errors, errors
        from nodeutil.mounts import mounts
        left = [p for p, _t in mounts() if p.startswith(os.path.realpath(tmp) + os.sep)]
        assert not left, f"mounts left behind: {left}"
