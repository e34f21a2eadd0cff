"""The official `kubernetes` Python client against a real server: list, create, patch, delete, watch."""
from __future__ import annotations

import threading

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client as k8s, watch  # noqa: E402


@pytest.fixture
def v1(server):
    cfg = k8s.Configuration()
    cfg.host = server.url
    api = k8s.ApiClient(cfg)
    yield k8s.CoreV1Api(api)
    api.close()


def body(name):
    return {"metadata": {"name": name, "labels": {"app": "py"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}


def test_list_create_patch_delete(v1):
    assert v1.list_namespaced_pod("default").items == []
    p = v1.create_namespaced_pod("default", body("py-1"))
    assert p.metadata.name == "py-1" and p.metadata.uid
    model = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="py-2"),
                      spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="busybox")]))
    assert v1.create_namespaced_pod("default", model).metadata.name == "py-2"
    pods = v1.list_namespaced_pod("default", label_selector="app=py")
    assert [x.metadata.name for x in pods.items] == ["py-1"]
    p = v1.patch_namespaced_pod("py-1", "default", {"metadata": {"labels": {"patched": "yes"}}})
    assert p.metadata.labels["patched"] == "yes"
    d = v1.delete_namespaced_pod("py-1", "default")
    assert d.metadata.name == "py-1"
    with pytest.raises(k8s.ApiException) as e:
        v1.read_namespaced_pod("py-1", "default")
    assert e.value.status == 404
    with pytest.raises(k8s.ApiException) as e:
        v1.create_namespaced_pod("default", body("py-2"))
    assert e.value.status == 409
    assert any(n.metadata.name == "default" for n in v1.list_namespace().items)
    svcs = v1.list_namespaced_service("default")
    assert svcs.items[0].spec.cluster_ip == "10.96.0.1"


def test_watch_stream(v1):
    seen = []
    done = threading.Event()

    def run():
        w = watch.Watch()
        for ev in w.stream(v1.list_namespaced_pod, "default", timeout_seconds=5):
            seen.append((ev["type"], ev["object"].metadata.name))
            if len(seen) >= 3:
                w.stop()
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    import time
    time.sleep(0.5)
    v1.create_namespaced_pod("default", body("pw"))
    v1.patch_namespaced_pod("pw", "default", {"metadata": {"labels": {"x": "1"}}})
    v1.delete_namespaced_pod("pw", "default")
    assert done.wait(10)
    assert seen == [("ADDED", "pw"), ("MODIFIED", "pw"), ("DELETED", "pw")]


def test_watch_reconnects_across_server_timeouts(tmp_path):
    """Watch.stream without timeout_seconds: when the server ends the watch (after --min-request-timeout),
    the client reconnects from the last resourceVersion it saw; nothing is lost or repeated."""
    import time

    from tests.conftest import ApiServer

    s = ApiServer(str(tmp_path), extra_args=["--min-request-timeout", "1"]).start()
    cfg = k8s.Configuration()
    cfg.host = s.url
    api = k8s.ApiClient(cfg)
    v1 = k8s.CoreV1Api(api)
    try:
        seen = []
        done = threading.Event()
        w = watch.Watch()

        def run():
            rv = v1.list_namespaced_pod("default").metadata.resource_version
            for ev in w.stream(v1.list_namespaced_pod, "default", resource_version=rv):
                seen.append((ev["type"], ev["object"].metadata.name))
                if len(seen) >= 6:
                    w.stop()
            done.set()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        time.sleep(0.5)
        for i in range(3):
            v1.create_namespaced_pod("default", body(f"r{i}"))
            time.sleep(2.5)          # longer than the server's watch lifetime (1-2 s): a reconnect in between
            v1.delete_namespaced_pod(f"r{i}", "default")
        assert done.wait(20), seen
        assert seen == [("ADDED", "r0"), ("DELETED", "r0"), ("ADDED", "r1"), ("DELETED", "r1"),
                        ("ADDED", "r2"), ("DELETED", "r2")]
    finally:
        api.close()
        s.stop()
