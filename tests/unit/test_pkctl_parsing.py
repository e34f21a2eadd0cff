"""pkctl argument parsing: pflag-style booleans, durations, TYPE/NAME grammar, manifests."""
from __future__ import annotations

import io
import json
import textwrap

import pytest

from api.resources import ResourceType
from pkctl.discovery import Discovery, parse_resource_list
from pkctl.errors import CLIError
from pkctl.flags import normalize_bools, parse_bool, parse_duration, parse_key_values
from pkctl.main import build_parser, parse_args
from pkctl.resources import kind_prefix, object_name, read_manifests, resolve_targets, split_type_args


def parse(*argv):
    return parse_args(build_parser(), list(argv))


# ------------------------------------------------------------------ flags
@pytest.mark.parametrize("text,seconds", [("30s", 30), ("1m", 60), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200),
                                          ("45", 45), ("0", 0), ("1.5s", 1.5)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1x", "m1", "1m3"])
def test_parse_duration_rejects(text):
    with pytest.raises(Exception):
        parse_duration(text)


def test_parse_bool_and_key_values():
    assert parse_bool("false") is False and parse_bool("TRUE") is True and parse_bool("1") is True
    with pytest.raises(Exception):
        parse_bool("maybe")
    assert parse_key_values("a=1,b=x=y") == {"a": "1", "b": "x=y"}
    with pytest.raises(Exception):
        parse_key_values("novalue")


def test_normalize_bools_never_swallows_the_next_word():
    bools = {"-f", "--follow", "-i", "-t", "--wait"}
    assert normalize_bools(["-f", "web"], bools) == ["-f=true", "web"]
    assert normalize_bools(["-it", "web"], bools) == ["-i=true", "-t=true", "web"]
    assert normalize_bools(["--wait=false", "--follow"], bools) == ["--wait=false", "--follow=true"]
    assert normalize_bools(["-ojson", "-1"], bools) == ["-ojson", "-1"]


def test_parser_bool_flags_behave_like_pflag():
    a = parse("logs", "-f", "web")
    assert a.follow is True and a.pod == "web"
    a = parse("delete", "pod", "x", "--wait=false", "--timeout=5s")
    assert a.wait is False and a.timeout == 5 and a.types == ["pod", "x"]
    a = parse("delete", "pod", "x")
    assert a.wait is True and a.timeout == 60
    a = parse("exec", "-it", "web")
    assert a.stdin is True and a.tty is True
    a = parse("get", "pods", "-A", "-w", "-o", "wide")
    assert a.all_namespaces and a.watch and a.output == "wide"


def test_global_flags_before_or_after_the_command():
    a = parse("-n", "kube-system", "--server", "http://x:1", "get", "pods")
    assert a.namespace == "kube-system" and a.server == "http://x:1"
    a = parse("get", "pods", "-n", "other", "-s", "http://y:2", "--request-timeout", "3s")
    assert a.namespace == "other" and a.server == "http://y:2" and a.request_timeout == 3
    a = parse("--token", "abc", "get", "pods")
    assert a.token == "abc"


def test_flags_between_positionals():
    a = parse("label", "pods", "--all", "env=test", "--overwrite")
    assert a.items == ["pods", "env=test"] and a.all and a.overwrite
    a = parse("get", "pods", "-o", "wide", "web", "db")
    assert a.types == ["pods", "web", "db"] and a.output == "wide"
    a = parse("logs", "-f", "web", "main")
    assert (a.pod, a.container_arg, a.follow) == ("web", "main", True)


def test_usage_errors_are_cli_errors():
    with pytest.raises(CLIError) as e:
        parse("get", "--bogus")
    assert "unrecognized arguments" in e.value.message
    with pytest.raises(CLIError) as e:
        parse("frobnicate", "pods")
    assert e.value.message.startswith('unknown command "frobnicate" for "pkctl"')


def test_main_splits_dashdash(capsys):
    from pkctl.main import main
    out, err = io.StringIO(), io.StringIO()
    rc = main(["run", "web", "--image=busybox", "--dry-run=client", "-o", "json", "--command", "--",
               "sh", "-c", "echo -n hi"], stdout=out, stderr=err)
    assert rc == 0, err.getvalue()
    pod = json.loads(out.getvalue())
    assert pod["spec"]["containers"][0]["command"] == ["sh", "-c", "echo -n hi"]
    assert pod["metadata"]["labels"] == {"run": "web"}
    rc = main(["get", "pods", "--", "x"], stdout=out, stderr=err)
    assert rc == 1 and "unexpected arguments after --" in err.getvalue()


# ------------------------------------------------------------------ TYPE/NAME
def test_split_type_args():
    assert split_type_args(["pods"]) == [("pods", [])]
    assert split_type_args(["pods", "a", "b"]) == [("pods", ["a", "b"])]
    assert split_type_args(["pods,svc", "a"]) == [("pods", ["a"]), ("svc", ["a"])]
    assert split_type_args(["pod/a", "pod/b", "svc/c"]) == [("pod", ["a", "b"]), ("svc", ["c"])]
    with pytest.raises(CLIError, match="no need to specify a resource type"):
        split_type_args(["pods", "pod/a"])
    with pytest.raises(CLIError):
        split_type_args(["pod/"])


CORE = {"groupVersion": "v1", "resources": [
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"],
     "shortNames": ["po"], "categories": ["all"]},
    {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
    {"name": "services", "singularName": "service", "namespaced": True, "kind": "Service", "verbs": ["get"],
     "shortNames": ["svc"], "categories": ["all"]},
    {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node", "verbs": ["get"],
     "shortNames": ["no"]},
    {"name": "events", "singularName": "event", "namespaced": True, "kind": "Event", "verbs": ["get"],
     "shortNames": ["ev"]},
]}
NET = {"groupVersion": "networking.k8s.io/v1", "resources": [
    {"name": "ingresses", "singularName": "ingress", "namespaced": True, "kind": "Ingress", "verbs": ["get"],
     "shortNames": ["ing"]}]}
EVENTS_K8S = {"groupVersion": "events.k8s.io/v1", "resources": [
    {"name": "events", "singularName": "event", "namespaced": True, "kind": "Event", "verbs": ["get"],
     "shortNames": ["ev"]}]}


class FakeDiscoveryClient:
    def __init__(self):
        self.calls = []

    def request(self, method, path, **kw):
        self.calls.append(path)
        docs = {
            "/api": {"versions": ["v1"]},
            "/api/v1": CORE,
            "/apis": {"groups": [
                {"name": "networking.k8s.io", "versions": [{"groupVersion": "networking.k8s.io/v1", "version": "v1"}],
                 "preferredVersion": {"version": "v1"}},
                {"name": "events.k8s.io", "versions": [{"groupVersion": "events.k8s.io/v1", "version": "v1"}],
                 "preferredVersion": {"version": "v1"}}]},
            "/apis/networking.k8s.io/v1": NET,
            "/apis/events.k8s.io/v1": EVENTS_K8S,
        }
        return docs[path]


@pytest.fixture
def discovery():
    return Discovery(FakeDiscoveryClient())


def test_discovery_resolves_like_kubectl(discovery):
    assert discovery.resolve("po").plural == "pods"
    assert discovery.resolve("Pod").plural == "pods"
    assert discovery.resolve("pod").plural == "pods"
    assert discovery.resolve("ing").group == "networking.k8s.io"
    assert discovery.resolve("ingresses.networking.k8s.io").kind == "Ingress"
    assert discovery.resolve("ingress.v1.networking.k8s.io").version == "v1"
    assert discovery.resolve("events").group == ""  # the core group wins, as in kubectl
    assert discovery.resolve("events.events.k8s.io").group == "events.k8s.io"
    with pytest.raises(CLIError, match='the server doesn\'t have a resource type "foo"'):
        discovery.resolve("foo")
    assert [r.plural for r in discovery.expand("all")] == ["pods", "services"]
    assert discovery.for_kind("networking.k8s.io/v1", "Ingress").plural == "ingresses"
    assert discovery.for_kind("apps/v1", "Deployment") is None
    assert discovery.client.calls.count("/api/v1") == 1  # fetched once per run


def test_subresources_are_not_resource_types():
    names = [r.plural for r in parse_resource_list("", "v1", CORE)]
    assert "pods/log" not in names and "pods" in names


def test_resolve_targets(discovery):
    ts = resolve_targets(["pods,svc", "web"], discovery)
    assert [(t.rt.plural, t.names) for t in ts] == [("pods", ["web"]), ("services", ["web"])]
    ts = resolve_targets(["all"], discovery)
    assert [t.rt.plural for t in ts] == ["pods", "services"]


def test_names_for_output():
    ing = ResourceType("networking.k8s.io", "v1", "Ingress", "ingresses", True)
    pod = ResourceType("", "v1", "Pod", "pods", True)
    assert kind_prefix(ing) == "ingress.networking.k8s.io"
    assert object_name(pod, "web") == "pod/web"


# ------------------------------------------------------------------ manifests
def test_manifests_multi_document_list_and_directory(tmp_path):
    (tmp_path / "a.yaml").write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: a}
        ---
        # an empty document is skipped
        ---
        apiVersion: v1
        kind: List
        items:
        - {apiVersion: v1, kind: Service, metadata: {name: s1}}
        - {apiVersion: v1, kind: Service, metadata: {name: s2}}
        """))
    (tmp_path / "b.json").write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}}))
    (tmp_path / "notes.txt").write_text("not a manifest")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.yml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: c}\n")
    names = [m.obj["metadata"]["name"] for m in read_manifests([str(tmp_path)])]
    assert names == ["a", "s1", "s2", "b"]
    names = [m.obj["metadata"]["name"] for m in read_manifests([str(tmp_path)], recursive=True)]
    assert names == ["a", "s1", "s2", "b", "c"]
    ms = read_manifests(["-"], stdin=io.StringIO("apiVersion: v1\nkind: Pod\nmetadata: {name: d}\n"))
    assert ms[0].source == "STDIN" and ms[0].obj["metadata"]["name"] == "d"


def test_manifest_errors(tmp_path):
    with pytest.raises(CLIError, match='the path ".*nope.yaml" does not exist'):
        read_manifests([str(tmp_path / "nope.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("metadata: {name: x}\n")
    with pytest.raises(CLIError, match=r"error validating .*\[apiVersion not set, kind not set\]"):
        read_manifests([str(bad)])
    bad.write_text("a: [unclosed\n")
    with pytest.raises(CLIError, match="error parsing"):
        read_manifests([str(bad)])
    empty = tmp_path / "empty.yaml"
    empty.write_text("---\n")
    with pytest.raises(CLIError, match="no objects passed to create"):
        read_manifests([str(empty)], verb="create")
