"""pkctl output: Go-tabwriter alignment, server Tables, object formats, JSONPath, error lines."""
from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import httpx
import pytest
import yaml

from api.tables import table_for
from client.errors import ConnectionFailed, Invalid, ServiceUnavailable, Unauthorized, error_from_status
from client.kubeconfig import ConfigError
from pkctl.errors import CLIError, format_api_error, format_error, host_port
from pkctl.jsonpath import JSONPathError, Template, render
from pkctl.printers import (RowPrinter, TableOptions, custom_columns, parse_output, print_objects,
                            render_table, to_json, to_yaml)
from pkctl.tabwriter import describe_format, format_lines, get_format

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def pod(name, ns="default", phase="Running", ip="10.244.0.5", node="n1", labels=None, age_s=300):
    created = datetime.fromtimestamp(NOW.timestamp() - age_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}, "creationTimestamp": created},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": phase, "podIP": ip,
                       "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0,
                                              "state": {"running": {}}}]}}


# ------------------------------------------------------------------ tabwriter
def test_tabwriter_matches_kubectl_get_layout():
    text = get_format("NAME\tSTATUS\tAGE\ndefault\tActive\t5d\nkube-system\tActive\t5d\n")
    assert text == ("NAME          STATUS   AGE\n"
                    "default       Active   5d\n"
                    "kube-system   Active   5d\n")


def test_tabwriter_min_width_and_blocks():
    # minwidth 6 pads short columns; the last cell of a line is never padded
    assert get_format("A\tB\n") == "A     B\n"
    # describe: a line without a tab ends the block, so the two blocks align separately
    text = describe_format("Name:\tweb\nService Account:\tdefault\nContainers:\n  c:\n    Image:\tx\n    Port:\t80\n")
    assert text == ("Name:             web\n"
                    "Service Account:  default\n"
                    "Containers:\n"
                    "  c:\n"
                    "    Image:  x\n"
                    "    Port:   80\n")


def test_tabwriter_nested_columns_follow_go():
    # Lines with more cells start an inner block; the outer column is shared.
    text = format_lines("a\tb\tc\naaaa\tb\nx\n", minwidth=0, padding=1)
    assert text == "a    b c\naaaa b\nx\n"


# ------------------------------------------------------------------ tables
def test_table_hides_priority_columns_unless_wide():
    t = table_for("Pod", [pod("web"), pod("db", phase="Pending", ip="", node="")], NOW)
    text = render_table(t, TableOptions())
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split() == ["web", "1/1", "Running", "0", "5m"]
    wide = render_table(t, TableOptions(wide=True)).splitlines()
    assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert "10.244.0.5" in wide[1] and "n1" in wide[1]


def test_table_namespace_kind_labels_and_no_headers():
    t = table_for("Pod", [pod("web", ns="team-a", labels={"app": "web", "tier": "fe"})], NOW)
    text = render_table(t, TableOptions(namespace_column=True, kind_prefix="pod", show_labels=True,
                                        label_columns=["app"]))
    header, row = text.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "APP", "LABELS"]
    assert row.split() == ["team-a", "pod/web", "1/1", "Running", "0", "5m", "web", "app=web,tier=fe"]
    assert render_table(t, TableOptions(no_headers=True)).startswith("web ")


def test_table_cells_are_cut_at_newlines_and_none_shown():
    t = {"columnDefinitions": [{"name": "Name", "format": "name"}, {"name": "Message"}, {"name": "X"}],
         "rows": [{"cells": ["a", "line one\nline two", None]}]}
    row = render_table(t, TableOptions()).splitlines()[1]
    assert "line one..." in row and "line two" not in row and row.endswith("<none>")


def test_row_printer_keeps_the_first_tables_widths():
    out = io.StringIO()
    p = RowPrinter(out, TableOptions())
    first = table_for("Pod", [pod("a-long-pod-name")], NOW)
    p.print_rows(first)
    later = table_for("Pod", [pod("b", phase="Pending")], NOW)
    later["columnDefinitions"] = None  # as in watch events after the first
    p.print_rows(later)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[2].index("Pending") == lines[0].index("STATUS") == lines[1].index("Running")


def test_row_printer_prints_header_with_first_rows_only():
    out = io.StringIO()
    p = RowPrinter(out, TableOptions())
    p.columns = table_for("Pod", [], NOW)["columnDefinitions"]
    p.print_rows({"rows": []})
    assert out.getvalue() == ""
    t = table_for("Pod", [pod("x")], NOW)
    t["columnDefinitions"] = None
    p.print_rows(t)
    assert out.getvalue().splitlines()[0].startswith("NAME")


# ------------------------------------------------------------------ object formats
def test_parse_output():
    assert parse_output("").is_table and parse_output("wide").wide
    assert parse_output("jsonpath={.a}").template == "{.a}"
    assert parse_output("custom-columns=N:.metadata.name").format == "custom-columns"
    with pytest.raises(CLIError, match='unable to match a printer suitable for the output format "xml"'):
        parse_output("xml")
    with pytest.raises(CLIError, match="no template"):
        parse_output("jsonpath=")


def test_yaml_json_name_and_list_wrapping():
    objs = [pod("a"), pod("b")]
    out = io.StringIO()
    print_objects(objs, parse_output("yaml"), out, single=False)
    doc = yaml.safe_load(out.getvalue())
    assert doc["kind"] == "List" and [i["metadata"]["name"] for i in doc["items"]] == ["a", "b"]
    out = io.StringIO()
    print_objects(objs[:1], parse_output("json"), out, single=True)
    assert json.loads(out.getvalue())["metadata"]["name"] == "a"
    assert out.getvalue().startswith('{\n    "apiVersion"')  # four spaces, keys sorted
    out = io.StringIO()
    print_objects(objs, parse_output("name"), out, single=False, name_of=lambda o: "pod/" + o["metadata"]["name"])
    assert out.getvalue() == "pod/a\npod/b\n"
    out = io.StringIO()
    print_objects(objs, parse_output("jsonpath={.items[*].metadata.name}"), out, single=False)
    assert out.getvalue() == "a b"
    assert to_yaml({"b": 1, "a": "x" * 200}).startswith("a: " + "x" * 200)  # never folded
    assert to_json({"b": 1, "a": 2}).index('"a"') < to_json({"b": 1, "a": 2}).index('"b"')


def test_custom_columns():
    text = custom_columns("NAME:.metadata.name,IP:.status.podIP,NODE:{.spec.nodeName},X:.missing",
                          [pod("web"), pod("db", ip="10.0.0.9")])
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "IP", "NODE", "X"]
    assert lines[1].split() == ["web", "10.244.0.5", "n1", "<none>"]


# ------------------------------------------------------------------ jsonpath
DATA = {"kind": "List", "items": [
    {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}},
     "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "n": 3}},
    {"metadata": {"name": "b"}, "status": {"phase": "Pending", "n": 10}}]}


@pytest.mark.parametrize("template,expected", [
    ("{.items[*].metadata.name}", "a b"),
    ("{.items[0].metadata.name}", "a"),
    ("{.items[-1].metadata.name}", "b"),
    ("{.items[0:1].metadata.name}", "a"),
    ('{range .items[*]}{.metadata.name}{"\\t"}{.status.phase}{"\\n"}{end}', "a\tRunning\nb\tPending\n"),
    ('{.items[?(@.status.phase=="Running")].metadata.name}', "a"),
    ("{.items[?(@.status.n>5)].metadata.name}", "b"),
    ("{.items[?(@.status.conditions)].metadata.name}", "a"),
    ('{.items[0].status.conditions[?(@.type=="Ready")].status}', "True"),
    ("{.items[0].metadata.labels.app\\.kubernetes\\.io/name}", "x"),
    ("{.items[0].metadata['name']}", "a"),
    ("{..phase}", "Running Pending"),
    ("name={.items[1].metadata.name}!", "name=b!"),
    ("{.items[0].missing}", ""),
    ("{.kind}", "List"),
    ("{.items[1].status}", '{"n":10,"phase":"Pending"}'),
])
def test_jsonpath(template, expected):
    assert render(template, DATA) == expected


def test_jsonpath_errors():
    for bad in ("{.items[*", "{range .items[*]}{.a}", "{end}"):
        with pytest.raises(JSONPathError):
            Template(bad)


# ------------------------------------------------------------------ errors
def test_server_errors_read_like_kubectl():
    nf = error_from_status({"kind": "Status", "code": 404, "reason": "NotFound", "message": 'pods "x" not found'})
    assert format_error(nf) == 'Error from server (NotFound): pods "x" not found'
    assert format_api_error(nf, context='error when creating "p.yaml": ') == \
        'Error from server (NotFound): error when creating "p.yaml": pods "x" not found'
    inv = Invalid('Pod "bad" is invalid: spec.containers: Required value', code=422, reason="Invalid",
                  details={"kind": "Pod", "name": "bad",
                           "causes": [{"field": "spec.containers", "message": "Required value"}]})
    assert format_error(inv) == 'The Pod "bad" is invalid: spec.containers: Required value'
    inv.details["causes"].append({"field": "metadata.name", "message": "Invalid value"})
    assert format_error(inv) == ('The Pod "bad" is invalid: [spec.containers: Required value, '
                                 'metadata.name: Invalid value]')
    assert format_error(Unauthorized("Unauthorized", code=401)) == \
        "error: You must be logged in to the server (Unauthorized)"
    su = ServiceUnavailable("pods/log needs a node agent", code=503, reason="ServiceUnavailable")
    assert format_error(su) == "Error from server (ServiceUnavailable): pods/log needs a node agent"
    assert format_error(CLIError("boom")) == "error: boom"
    assert format_error(ConfigError("no kubeconfig found")) == "error: no kubeconfig found"


def test_connection_errors_read_like_kubectl():
    try:
        try:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        except httpx.ConnectError as inner:
            raise ConnectionFailed("GET http://127.0.0.1:6443/api: cannot reach the API server: "
                                   "[Errno 111] Connection refused") from inner
    except ConnectionFailed as e:
        err = e
    assert format_error(err, "https://127.0.0.1:6443") == (
        "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?")
    other = ConnectionFailed("GET https://10.0.0.1/api: cannot reach the API server: timed out")
    assert format_error(other, "https://10.0.0.1") == "Unable to connect to the server: timed out"
    assert host_port("https://example.com") == "example.com:443"
    assert host_port("http://[::1]:8080") == "[::1]:8080"
