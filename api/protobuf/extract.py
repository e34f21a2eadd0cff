"""Make the protobuf schema file from a kubectl binary: `python -m api.protobuf.extract [KUBECTL]`.

The field numbers and types of every Kubernetes object are facts of the API,
written in the `generated.proto` files of k8s.io/api and k8s.io/apimachinery.
Every Go binary built from them (kubectl included) carries each file as a
gzipped FileDescriptorProto (the `fileDescriptor_…` byte slices of the
generated Go code). This tool finds them by scanning the binary for gzip
members, keeps the `k8s.io/…` files, and writes them as one gzipped
FileDescriptorSet, dependencies first, for api/protobuf/schema.py to load.

The descriptors name fields as the proto files do, which is almost always the
JSON name (go-to-protobuf names them after the json tags) but not quite: a
Go struct embedded with `json:",inline"` (Probe's handler, Volume's
volumeSource, the LocalObjectReference of a ConfigMapKeySelector) has a
proto field of its own and no JSON name, and a few fields differ
(BoundObjectReference `uID` is JSON `uid`, IngressClassParametersReference
`aPIGroup` is `apiGroup`). Those facts are in the binary too, as the Go struct
tags `json:"…" protobuf:"…,N,…,name=…"` that encoding/json reads; each
(field number, proto name) pair maps to one JSON name in kubectl 1.33 (the
tool fails if a newer one breaks that). The JSON name goes into the
descriptor's own `json_name`; an inline embed gets the empty name.

Of the gogoproto options the files were compiled with, only one matters to a
decoder: `(gogoproto.nullable) = false` (extension 65001) marks a field that
is a plain value in Go, not a pointer. Go marshals such a field even when it
holds its zero value, and the JSON encoder leaves it out (omitempty), so the
decoder must drop its zero to produce the object the JSON path produces. That
option is kept on the fields that carry it; every other option (Go names, Go
casts, marshaler switches) and the import of gogo.proto are removed, so the
schema loads into a plain descriptor pool.

To refresh for a newer kubectl: run this against it, write the file under a
new name (`--out api/protobuf/k8s-1.NN.binpb.gz`), point schema.SCHEMA_FILE at
it, and run tests/unit/test_protobuf*.py (a served kind whose message went
missing fails there).
"""
from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import sys
import zlib

from google.protobuf import descriptor_pb2

from api.protobuf.schema import nullable_option

GZIP_MAGIC = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"   # what Go's compress/gzip writes (no name, no mtime)
GOGO = "github.com/gogo/protobuf/gogoproto/gogo.proto"
NOT_NULLABLE = b"\xc8\xde\x1f\x00"                   # field 65001 (gogoproto.nullable), varint 0
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s-1.33.binpb.gz")


def scan(data: bytes) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """Every k8s.io FileDescriptorProto embedded in a binary, by file name."""
    found: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    i = data.find(GZIP_MAGIC)
    while i >= 0:
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[i:i + (4 << 20)])
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        except Exception:  # noqa: BLE001 - most gzip-looking bytes are not a descriptor
            fd = None
        if fd is not None and fd.name.startswith("k8s.io/") and fd.name.endswith(".proto") and fd.package:
            found.setdefault(fd.name, fd)
        i = data.find(GZIP_MAGIC, i + 1)
    return found


TAG = re.compile(rb'json:"([^"]*)" protobuf:"([^"]*)"')


class Tags:
    """The JSON names of proto fields, from the struct tags in the binary."""

    def __init__(self, data: bytes):
        self.names: dict[tuple[int, str], str] = {}
        self.inline: set[tuple[int, str]] = set()
        self.unnamed_inline: set[int] = set()       # `json:",inline" protobuf:"bytes,1,req"` (no name=)
        for j, p in set(TAG.findall(data)):
            jparts = j.decode().split(",")
            pparts = p.decode().split(",")
            if len(pparts) < 2 or not pparts[1].isdigit():
                continue
            num = int(pparts[1])
            name = next((x[5:] for x in pparts if x.startswith("name=")), None)
            inline = "inline" in jparts[1:]
            if name is None:
                if inline:
                    self.unnamed_inline.add(num)
                continue
            if inline:
                self.inline.add((num, name))
            elif jparts[0] not in ("", "-"):
                old = self.names.setdefault((num, name), jparts[0])
                if old != jparts[0]:
                    raise SystemExit(f"extract: field {name} = {num} has two JSON names ({old}, {jparts[0]})")

    def json_name(self, f: descriptor_pb2.FieldDescriptorProto, embedded: bool) -> str:
        key = (f.number, f.name)
        if key in self.inline or (embedded and key not in self.names and f.number in self.unnamed_inline):
            return ""
        return self.names.get(key, f.name)


def _customname(opts: descriptor_pb2.FieldOptions) -> str | None:
    """(gogoproto.customname), the Go field name: an embedded struct's is its type's name."""
    b = opts.SerializeToString()
    i = b.find(b"\xe2\xde\x1f")                     # field 65004, length-delimited
    if i < 0 or i + 4 > len(b):
        return None
    return b[i + 4:i + 4 + b[i + 3]].decode(errors="replace")


def _strip_message(m: descriptor_pb2.DescriptorProto, tags: Tags) -> None:
    map_entry = m.options.map_entry
    m.ClearField("options")
    if map_entry:
        m.options.map_entry = True
    for f in m.field:
        keep = nullable_option(f.options.SerializeToString()) is False
        embedded = f.type_name.rsplit(".", 1)[-1] == _customname(f.options)
        f.json_name = tags.json_name(f, embedded)
        f.ClearField("options")
        if keep:
            f.options.MergeFromString(NOT_NULLABLE)
    for n in m.nested_type:
        _strip_message(n, tags)


def strip(fd: descriptor_pb2.FileDescriptorProto, tags: Tags) -> descriptor_pb2.FileDescriptorProto:
    out = descriptor_pb2.FileDescriptorProto()
    out.CopyFrom(fd)
    deps = [d for d in out.dependency if d != GOGO]
    del out.dependency[:]
    out.dependency.extend(deps)
    go_package = out.options.go_package
    out.ClearField("options")
    out.options.go_package = go_package
    out.ClearField("source_code_info")
    for m in out.message_type:
        _strip_message(m, tags)
    return out


def ordered(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> list[descriptor_pb2.FileDescriptorProto]:
    """Dependencies before dependents (a descriptor pool needs them in that order)."""
    out: list[descriptor_pb2.FileDescriptorProto] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in files:
            return
        seen.add(name)
        for d in files[name].dependency:
            visit(d)
        out.append(files[name])

    for name in sorted(files):
        visit(name)
    return out


def default_kubectl() -> str | None:
    """kubectl.1.33 on PATH or beside the dispatching kubectl (where this machine keeps it)."""
    found = shutil.which("kubectl.1.33")
    if found:
        return found
    disp = shutil.which("kubectl")
    if disp:
        beside = os.path.join(os.path.dirname(os.path.realpath(disp)), "kubectl.1.33")
        if os.path.exists(beside):
            return beside
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kubectl", nargs="?", default=None, help="the binary to read (default: kubectl.1.33 on PATH or beside kubectl)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ns = ap.parse_args(argv)
    path = ns.kubectl or default_kubectl()
    if not path:
        print("extract: no kubectl binary given and none on PATH", file=sys.stderr)
        return 2
    with open(os.path.realpath(path), "rb") as f:
        data = f.read()
    found = scan(data)
    tags = Tags(data)
    if not found:
        print(f"extract: {path} embeds no k8s.io protobuf descriptors", file=sys.stderr)
        return 1
    files = {n: strip(fd, tags) for n, fd in found.items()}
    missing = sorted({d for fd in files.values() for d in fd.dependency if d not in files})
    if missing:
        print(f"extract: dependencies not found in {path}: {', '.join(missing)}", file=sys.stderr)
        return 1
    fds = descriptor_pb2.FileDescriptorSet()
    fds.file.extend(ordered(files))
    with open(ns.out, "wb") as out:   # no name, mtime 0: the same binary gives the same bytes
        out.write(gzip.compress(fds.SerializeToString(deterministic=True), compresslevel=9, mtime=0))
    print(f"extract: {len(files)} files from {path} -> {ns.out} ({os.path.getsize(ns.out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
