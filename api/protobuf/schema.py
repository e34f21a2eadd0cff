"""The Kubernetes protobuf schema: message classes from kubectl 1.33's own descriptors.

`k8s-1.33.binpb.gz` is a FileDescriptorSet of every k8s.io/api and
k8s.io/apimachinery `generated.proto`, taken out of the kubectl 1.33 binary by
api/protobuf/extract.py (its docstring says how to refresh it). Loading it
into a descriptor pool gives one message class per Kubernetes type, parsed and
serialized by the `protobuf` package's C implementation (upb).

Besides the classes, the codec needs one fact per field that the wire format
does not carry: whether Go holds it as a value or a pointer. The extractor
kept `(gogoproto.nullable) = false` (extension 65001) on value fields; this
module reads it back with a one-field probe message of the same number (the
protobuf library parses it; no hand-written wire reader) and exposes the set.

Loading takes ~60 ms and ~10 MB, so it happens once, on the first protobuf
body (or at server start, `load()`), not at import.
"""
from __future__ import annotations

import gzip
import os
import threading

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s-1.33.binpb.gz")
KUBECTL_VERSION = "1.33"          # the kubectl the schema file was extracted from

_probe_cls = None


def _probe():
    """A message whose one field has gogoproto.nullable's number: FieldOptions bytes parse into it."""
    global _probe_cls
    if _probe_cls is None:
        fd = descriptor_pb2.FileDescriptorProto(name="pocketkube/nullable_probe.proto", package="pocketkube.probe")
        m = fd.message_type.add(name="NullableProbe")
        m.field.add(name="nullable", number=65001, type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                    label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(fd)
        _probe_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("pocketkube.probe.NullableProbe"))
    return _probe_cls


def nullable_option(field_options: bytes) -> bool | None:
    """The (gogoproto.nullable) value in serialized FieldOptions; None when it is not set."""
    p = _probe().FromString(field_options)
    return p.nullable if p.HasField("nullable") else None


class Schema:
    """A descriptor pool of the Kubernetes files, its message classes and the value (non-pointer) fields."""

    def __init__(self, path: str = SCHEMA_FILE):
        with open(path, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(gzip.decompress(f.read()))
        self.pool = descriptor_pool.DescriptorPool()
        # (message full name, field name) of fields Go holds by value: their zero means "unset".
        self.value_fields: set[tuple[str, str]] = set()
        for fdp in fds.file:
            prefix = fdp.package
            for m in fdp.message_type:
                self._scan(prefix, m)
            self.pool.Add(fdp)
        self.files = [f.name for f in fds.file]
        self._classes: dict[str, type] = {}
        self._lock = threading.Lock()

    def _scan(self, prefix: str, m: descriptor_pb2.DescriptorProto) -> None:
        full = f"{prefix}.{m.name}"
        for f in m.field:
            if f.HasField("options") and nullable_option(f.options.SerializeToString()) is False:
                self.value_fields.add((full, f.name))
        for n in m.nested_type:
            self._scan(full, n)

    def has(self, full_name: str) -> bool:
        try:
            self.pool.FindMessageTypeByName(full_name)
            return True
        except KeyError:
            return False

    def message_class(self, full_name: str) -> type:
        """The generated class of one message type (KeyError when the schema has no such message)."""
        cls = self._classes.get(full_name)
        if cls is None:
            with self._lock:
                cls = self._classes.get(full_name)
                if cls is None:
                    cls = message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))
                    self._classes[full_name] = cls
        return cls


_schema: Schema | None = None
_schema_lock = threading.Lock()


def load() -> Schema:
    """The schema of this tree, loaded once per process."""
    global _schema
    if _schema is None:
        with _schema_lock:
            if _schema is None:
                _schema = Schema()
    return _schema
