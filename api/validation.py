"""Kubernetes-style validation of wire objects, returning field causes.

The API server answers an invalid object with 422 and a list of
``details.causes``; kubectl rebuilds its "The Pod "x" is invalid: ..." text
from them, and controllers written against real clusters match on the field
paths. So every check here produces exactly what Kubernetes produces: the
cause type (``FieldValueRequired``, ``FieldValueInvalid``, ...), the message
text of ``field.Error`` (``Invalid value: "Bad_Name": a lowercase RFC 1123
subdomain ...``) and the field path (``spec.containers[0].ports[1].containerPort``).
The rules and their wording are taken from k8s.io/apimachinery's
``util/validation`` and ``pkg/apis/core/validation``; where this module
departs from Kubernetes it says so next to the rule.

Objects arrive as decoded JSON, not as Go structs, so a field may hold any
JSON type. Kubernetes would fail such a body while decoding; here a value of
the wrong type becomes a ``FieldValueTypeInvalid`` cause (worded like the
errors of a CRD's OpenAPI schema) and validation of that subtree stops, so no
input can make this module raise.

Validation runs after defaulting (see api/defaults.py), as in Kubernetes:
fields that defaulting always fills (restartPolicy, ports' protocol, ...)
are reported as ``Required value`` only if a caller skipped defaulting.

Public API: the string checks (``is_dns1123_subdomain`` and friends, each
returning a list of error strings, empty when valid), the name functions
used for ``metadata.name``, ``validate_object_meta``, ``validate(kind, obj)``
and ``validate_update(kind, new, old)``.
"""
from __future__ import annotations

import copy
import ipaddress
import json
import re
from fractions import Fraction
from typing import Any, Callable, Iterable

from api import resources as R
from api.quantity import parse_quantity, canonical_quantity

Cause = dict  # {"reason": ..., "message": ..., "field": ...}
NameFn = Callable[[str, bool], list]

NODE_PORT_RANGE = (30000, 32767)
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
MAX_INT32 = 2**31 - 1
CLIENT_IP_AFFINITY_MAX_SECONDS = 86400
EVENT_REASON_MAX = 128
EVENT_MESSAGE_MAX = 1024
KUBELET_PORT = 10250

PROTOCOLS = ("SCTP", "TCP", "UDP")  # sorted, as Kubernetes lists a set
RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS = ("Equal", "Exists")
PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
HTTP_SCHEMES = ("HTTP", "HTTPS")
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
ENV_FIELD_PATHS = (
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
    "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
)
RESOURCE_FIELD_REFS = (
    "limits.cpu", "limits.ephemeral-storage", "limits.memory",
    "requests.cpu", "requests.ephemeral-storage", "requests.memory",
)
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI", "fc",
    "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "projected",
    "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
)
POD_MUTABLE_FIELDS = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds`"
)
FIELD_IMMUTABLE = "field is immutable"


# ------------------------------------------------------------------ string checks
# Ports of k8s.io/apimachinery/pkg/util/validation: each returns a list of
# human-readable problems, empty when the value is valid.

def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    # Kubernetes joins examples as "'a',  or 'b', " (sic: two spaces).
    ex = "".join((" or " if i else "") + f"'{e}', " for i, e in enumerate(examples))
    return f"{msg} (e.g. {ex}regex used for validation is '{fmt}')"


def _max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def _inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_WILDCARD_SUBDOMAIN_FMT = "\\*\\." + _DNS1123_SUBDOMAIN_FMT
_ENV_VAR_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_HTTP_HEADER_FMT = "[-A-Za-z0-9]+"

_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_QNAME_RE = re.compile(_QNAME_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_WILDCARD_SUBDOMAIN_RE = re.compile(_WILDCARD_SUBDOMAIN_FMT)
_ENV_VAR_NAME_RE = re.compile(_ENV_VAR_NAME_FMT)
_CONFIG_KEY_RE = re.compile(_CONFIG_KEY_FMT)
_HTTP_HEADER_RE = re.compile(_HTTP_HEADER_FMT)
_PORT_NAME_CHARSET_RE = re.compile("[-a-z0-9]+")

_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                      "and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                          "'-' or '.', and must start and end with an alphanumeric character")
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                      "start with an alphabetic character, and end with an alphanumeric character")
_QNAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', "
              "and must start and end with an alphanumeric character")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character")
_WILDCARD_SUBDOMAIN_MSG = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
                           "which must consist of lower case alphanumeric characters, '-' or '.' "
                           "and end with an alphanumeric character")
_ENV_VAR_NAME_MSG = ("a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
                     "or '.', and must not start with a digit")
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
_CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def is_dns1123_label(s: str) -> list[str]:
    errs = []
    if len(s) > 63:
        errs.append(_max_len_error(63))
    if not _DNS1123_LABEL_RE.fullmatch(s):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(s):
            errs.append("must not contain dots")
        else:
            errs.append(_regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(s: str) -> list[str]:
    errs = []
    if len(s) > 253:
        errs.append(_max_len_error(253))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(s):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(s: str) -> list[str]:
    errs = []
    if len(s) > 63:
        errs.append(_max_len_error(63))
    if not _DNS1035_LABEL_RE.fullmatch(s):
        errs.append(_regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_wildcard_dns1123_subdomain(s: str) -> list[str]:
    errs = []
    if len(s) > 253:
        errs.append(_max_len_error(253))
    if not _WILDCARD_SUBDOMAIN_RE.fullmatch(s):
        errs.append(_regex_error(_WILDCARD_SUBDOMAIN_MSG, _WILDCARD_SUBDOMAIN_FMT, "*.example.com"))
    return errs


def is_qualified_name(s: str) -> list[str]:
    """Label keys, annotation keys, finalizers: ``[prefix/]name``."""
    errs = []
    parts = s.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len_error(63))
    if not _QNAME_RE.fullmatch(name):
        errs.append("name part " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(s: str) -> list[str]:
    errs = []
    if len(s) > 63:
        errs.append(_max_len_error(63))
    if not _LABEL_VALUE_RE.fullmatch(s):
        errs.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_ip(s: str) -> list[str]:
    """An IPv4 or IPv6 address (no zone suffix, no leading zeros)."""
    if not isinstance(s, str) or "%" in s:
        return [_IP_MSG]
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return [_IP_MSG]
    return []


def is_ipv4(s: str) -> bool:
    try:
        return isinstance(s, str) and ipaddress.ip_address(s).version == 4
    except ValueError:
        return False


def is_cidr(s: str) -> list[str]:
    """A CIDR like Go's net.ParseCIDR accepts (host bits may be set)."""
    if not isinstance(s, str) or "/" not in s or "%" in s:
        return [_CIDR_MSG]
    try:
        ipaddress.ip_network(s, strict=False)
    except ValueError:
        return [_CIDR_MSG]
    return []


def _is_int(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool)


def is_valid_port(n: int) -> list[str]:
    if not _is_int(n) or not 1 <= n <= 65535:
        return [_inclusive_range_error(1, 65535)]
    return []


def is_valid_port_name(s: str) -> list[str]:
    """IANA_SVC_NAME: at most 15 of [-a-z0-9], at least one letter, no '--', no leading/trailing '-'."""
    errs = []
    if len(s) > 15:
        errs.append(_max_len_error(15))
    if not _PORT_NAME_CHARSET_RE.fullmatch(s):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", s):
        errs.append("must contain at least one letter (a-z)")
    if "--" in s:
        errs.append("must not contain consecutive hyphens")
    if s and (s[0] == "-" or s[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _has_chdir_prefix(s: str) -> list[str]:
    if s == ".":
        return ["must not be '.'"]
    if s == "..":
        return ["must not be '..'"]
    if s.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_env_var_name(s: str) -> list[str]:
    errs = []
    if not _ENV_VAR_NAME_RE.fullmatch(s):
        errs.append(_regex_error(_ENV_VAR_NAME_MSG, _ENV_VAR_NAME_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    return errs + _has_chdir_prefix(s)


def is_config_map_key(s: str) -> list[str]:
    errs = []
    if len(s) > 253:
        errs.append(_max_len_error(253))
    if not _CONFIG_KEY_RE.fullmatch(s):
        errs.append(_regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    return errs + _has_chdir_prefix(s)


def is_http_header_name(s: str) -> list[str]:
    if not _HTTP_HEADER_RE.fullmatch(s):
        return [_regex_error("a valid HTTP header must consist of alphanumeric characters or '-'",
                             _HTTP_HEADER_FMT, "X-Header-Name")]
    return []


# ------------------------------------------------------------------ name functions
# Like Kubernetes' ValidateNameFunc: (name, prefix) -> problems. With prefix=True
# the value is a generateName, which may end in '-' because a suffix follows.

def _mask_trailing_dash(name: str) -> str:
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def name_is_dns_subdomain(name: str, prefix: bool = False) -> list[str]:
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def validate_path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """The loosest rule: anything that can be one URL path segment."""
    errs = []
    if not prefix and name in (".", ".."):
        errs.append(f"may not be '{name}'")
    for bad in ("/", "%"):
        if bad in name:
            errs.append(f"may not contain '{bad}'")
    return errs


# ------------------------------------------------------------------ causes
def _go_value(v: Any) -> str:
    """Render a bad value the way field.Error does (%q for strings, %v for numbers)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "[]string{" + ", ".join(json.dumps(x, ensure_ascii=False) for x in v) + "}"
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


def _cause(reason: str, field: str, message: str) -> Cause:
    return {"reason": reason, "message": message, "field": field}


def required(field: str, detail: str = "") -> Cause:
    return _cause("FieldValueRequired", field, "Required value" + (f": {detail}" if detail else ""))


def invalid(field: str, value: Any, detail: str) -> Cause:
    return _cause("FieldValueInvalid", field, f"Invalid value: {_go_value(value)}" + (f": {detail}" if detail else ""))


def not_supported(field: str, value: Any, supported: Iterable[str]) -> Cause:
    values = ", ".join(json.dumps(s) for s in supported)
    return _cause("FieldValueNotSupported", field, f"Unsupported value: {_go_value(value)}: supported values: {values}")


def duplicate(field: str, value: Any) -> Cause:
    return _cause("FieldValueDuplicate", field, f"Duplicate value: {_go_value(value)}")


def forbidden(field: str, detail: str) -> Cause:
    return _cause("FieldValueForbidden", field, "Forbidden" + (f": {detail}" if detail else ""))


def too_long(field: str, limit: int) -> Cause:
    unit = "byte" if limit == 1 else "bytes"
    return _cause("FieldValueTooLong", field, f"Too long: may not be more than {limit} {unit}")


def not_found(field: str, value: Any) -> Cause:
    return _cause("FieldValueNotFound", field, f"Not found: {_go_value(value)}")


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def type_invalid(field: str, value: Any, expected: str) -> Cause:
    """A value of the wrong JSON type, worded like a CRD schema error."""
    actual = _json_type(value)
    return _cause("FieldValueTypeInvalid", field,
                  f'Invalid value: "{actual}": {field} in body must be of type {expected}: "{actual}"')


class _Errs(list):
    """Collects causes; the getters read a field and report a wrong JSON type.

    A missing field and an explicit null are the same thing (Go's zero value);
    a getter then returns the zero value too, so the checks read like
    Kubernetes' own (``if len(ctr.Image) == 0 ...``).
    """

    def obj(self, parent: dict, key: str, path: str) -> dict:
        v = parent.get(key)
        if v is None:
            return {}
        if not isinstance(v, dict):
            self.append(type_invalid(path, v, "object"))
            return {}
        return v

    def arr(self, parent: dict, key: str, path: str) -> list:
        v = parent.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            self.append(type_invalid(path, v, "array"))
            return []
        return v

    def string(self, parent: dict, key: str, path: str) -> str:
        v = parent.get(key)
        if v is None:
            return ""
        if not isinstance(v, str):
            self.append(type_invalid(path, v, "string"))
            return ""
        return v

    def integer(self, parent: dict, key: str, path: str) -> int | None:
        v = parent.get(key)
        if v is None:
            return None
        if not _is_int(v):
            self.append(type_invalid(path, v, "integer"))
            return None
        return v

    def boolean(self, parent: dict, key: str, path: str) -> bool:
        v = parent.get(key)
        if v is None:
            return False
        if not isinstance(v, bool):
            self.append(type_invalid(path, v, "boolean"))
            return False
        return v

    def objects(self, parent: dict, key: str, path: str) -> list[tuple[str, dict]]:
        """(path, element) for each element of an array of objects."""
        out = []
        for i, v in enumerate(self.arr(parent, key, path)):
            p = f"{path}[{i}]"
            if isinstance(v, dict):
                out.append((p, v))
            else:
                self.append(type_invalid(p, v, "object"))
        return out

    def str_map(self, parent: dict, key: str, path: str) -> dict[str, str]:
        """A map of string to string (labels, annotations, selectors)."""
        m = self.obj(parent, key, path)
        out = {}
        for k, v in m.items():
            if isinstance(v, str):
                out[k] = v
            else:
                self.append(type_invalid(f"{path}[{k}]", v, "string"))
        return out

    def strings(self, parent: dict, key: str, path: str) -> list[str]:
        out = []
        for i, v in enumerate(self.arr(parent, key, path)):
            if isinstance(v, str):
                out.append(v)
            else:
                self.append(type_invalid(f"{path}[{i}]", v, "string"))
        return out

    # -- checks shared by many kinds
    def msgs(self, path: str, value: Any, messages: list[str]) -> None:
        self.extend(invalid(path, value, m) for m in messages)

    def dns_label(self, path: str, value: str) -> None:
        self.msgs(path, value, is_dns1123_label(value))

    def dns_subdomain(self, path: str, value: str) -> None:
        self.msgs(path, value, is_dns1123_subdomain(value))

    def labels(self, parent: dict, key: str, path: str) -> None:
        for k, v in self.str_map(parent, key, path).items():
            self.msgs(path, k, is_qualified_name(k))
            self.msgs(path, v, is_valid_label_value(v))

    def nonnegative(self, parent: dict, key: str, path: str) -> None:
        v = self.integer(parent, key, path)
        if v is not None and v < 0:
            self.append(invalid(path, v, "must be greater than or equal to 0"))

    def one_of(self, path: str, value: str, supported: tuple[str, ...]) -> None:
        if not value:
            self.append(required(path))
        elif value not in supported:
            self.append(not_supported(path, value, supported))

    def port_num_or_name(self, parent: dict, key: str, path: str) -> None:
        v = parent.get(key)
        if _is_int(v):
            self.msgs(path, v, is_valid_port(v))
        elif isinstance(v, str):
            self.msgs(path, v, is_valid_port_name(v))
        elif v is None:
            self.msgs(path, 0, is_valid_port(0))
        else:
            self.append(type_invalid(path, v, "integer or string"))


# ------------------------------------------------------------------ object meta
def _byte_len(s: str) -> int:
    return len(s.encode(errors="surrogatepass"))  # JSON may carry lone surrogates


def validate_object_meta(meta: dict, namespaced: bool | None, name_fn: NameFn = name_is_dns_subdomain) -> list[Cause]:
    """metadata checks shared by every kind (apimachinery's ValidateObjectMeta).

    ``namespaced=None`` means "unknown kind": the namespace is then neither
    required nor forbidden. Unlike Kubernetes, a missing name is accepted when
    generateName is set, because the server fills the name in before it
    validates and callers may validate earlier.
    """
    e = _Errs()
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        return [type_invalid("metadata", meta, "object")]
    name = e.string(meta, "name", "metadata.name")
    generate_name = e.string(meta, "generateName", "metadata.generateName")
    if generate_name:
        e.msgs("metadata.generateName", generate_name, name_fn(generate_name, True))
    if name:
        e.msgs("metadata.name", name, name_fn(name, False))
    elif not generate_name:
        e.append(required("metadata.name", "name or generateName is required"))

    namespace = e.string(meta, "namespace", "metadata.namespace")
    if namespaced:
        if not namespace:
            e.append(required("metadata.namespace"))
        else:
            e.msgs("metadata.namespace", namespace, is_dns1123_label(namespace))
    elif namespaced is False and namespace:
        e.append(forbidden("metadata.namespace", "not allowed on this type"))

    e.nonnegative(meta, "generation", "metadata.generation")
    e.labels(meta, "labels", "metadata.labels")

    annotations = e.str_map(meta, "annotations", "metadata.annotations")
    for k in annotations:
        # Annotation keys are qualified names, except that case does not matter.
        e.msgs("metadata.annotations", k, is_qualified_name(k.lower()))
    size = sum(_byte_len(k) + _byte_len(v) for k, v in annotations.items())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        e.append(too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE_LIMIT))

    # Kubernetes reports owner reference problems without the list index.
    controller = ""
    for _, ref in e.objects(meta, "ownerReferences", "metadata.ownerReferences"):
        p = "metadata.ownerReferences"
        api_version = e.string(ref, "apiVersion", f"{p}.apiVersion")
        kind = e.string(ref, "kind", f"{p}.kind")
        if not api_version or api_version.endswith("/"):
            e.append(invalid(f"{p}.apiVersion", api_version, "version must not be empty"))
        if not kind:
            e.append(invalid(f"{p}.kind", kind, "must not be empty"))
        ref_name = e.string(ref, "name", f"{p}.name")
        if not ref_name:
            e.append(invalid(f"{p}.name", ref_name, "must not be empty"))
        uid = e.string(ref, "uid", f"{p}.uid")
        if not uid:
            e.append(invalid(f"{p}.uid", uid, "must not be empty"))
        if e.boolean(ref, "controller", f"{p}.controller"):
            if controller:
                e.append(invalid(p, meta["ownerReferences"],
                                 "Only one reference can have Controller set to true. Found \"true\" in references "
                                 f"for {controller} and {kind}/{ref_name}"))
            else:
                controller = f"{kind}/{ref_name}"

    finalizers = e.strings(meta, "finalizers", "metadata.finalizers")
    for f in finalizers:
        e.msgs("metadata.finalizers", f, is_qualified_name(f))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        e.append(invalid("metadata.finalizers", finalizers,
                         "finalizer orphan and foregroundDeletion cannot be both set"))
    return list(e)


def _meta_update(new_meta: Any, old_meta: Any) -> list[Cause]:
    new_meta = new_meta if isinstance(new_meta, dict) else {}
    old_meta = old_meta if isinstance(old_meta, dict) else {}
    causes = []
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if (new_meta.get(key) or None) != (old_meta.get(key) or None):
            causes.append(invalid(f"metadata.{key}", new_meta.get(key) or "", FIELD_IMMUTABLE))
    if old_meta.get("deletionTimestamp"):
        old_f = old_meta.get("finalizers") if isinstance(old_meta.get("finalizers"), list) else []
        new_f = new_meta.get("finalizers") if isinstance(new_meta.get("finalizers"), list) else []
        extra = sorted({f for f in new_f if isinstance(f, str)} - {f for f in old_f if isinstance(f, str)})
        if extra:
            causes.append(forbidden("metadata.finalizers",
                                    "no new finalizers can be added if the object is being deleted, "
                                    f"found new finalizers {_go_value(extra)}"))
    return causes


# ------------------------------------------------------------------ quantities & resources
def _quantity(e: _Errs, path: str, value: Any) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        e.append(type_invalid(path, value, "string"))
        return None
    try:
        q = parse_quantity(value)
    except ValueError as err:
        e.append(invalid(path, value if isinstance(value, str) else str(value), str(err)))
        return None
    if q < 0:
        e.append(invalid(path, canonical_quantity(value), "must be greater than or equal to 0"))
    return q


def _is_extended_resource(name: str) -> bool:
    if "/" not in name or "kubernetes.io/" in name or name.startswith("requests."):
        return False
    return not is_qualified_name("requests." + name)


def _resource_name(e: _Errs, path: str, name: str) -> None:
    msgs = is_qualified_name(name)
    e.msgs(path, name, msgs)
    if msgs:
        return
    if "/" not in name:
        if name not in STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            e.append(invalid(path, name, "must be a standard resource for containers"))
    elif "kubernetes.io/" not in name and not _is_extended_resource(name):
        e.append(invalid(path, name, "doesn't follow extended resource name standard"))


def _overcommit_allowed(name: str) -> bool:
    return ("/" not in name or "kubernetes.io/" in name) and not name.startswith("hugepages-")


def _container_resources(e: _Errs, res: dict, path: str) -> None:
    parsed: dict[str, dict[str, tuple[Any, Fraction]]] = {"limits": {}, "requests": {}}
    for part in ("limits", "requests"):
        for name, value in e.obj(res, part, f"{path}.{part}").items():
            p = f"{path}.{part}[{name}]"
            _resource_name(e, p, name)
            q = _quantity(e, p, value)
            if q is None:
                continue
            if not _overcommit_allowed(name) and q.denominator != 1:
                e.append(invalid(p, canonical_quantity(value), "must be an integer"))
            parsed[part][name] = (value, q)
    limits = parsed["limits"]
    for name, (value, q) in parsed["requests"].items():
        if name in limits:
            lim_value, lim = limits[name]
            if not _overcommit_allowed(name) and q != lim:
                e.append(invalid(f"{path}.requests", canonical_quantity(value),
                                 f"must be equal to {name} limit of {canonical_quantity(lim_value)}"))
            elif q > lim:
                e.append(invalid(f"{path}.requests", canonical_quantity(value),
                                 f"must be less than or equal to {name} limit of {canonical_quantity(lim_value)}"))
        elif not _overcommit_allowed(name):
            e.append(required(f"{path}.limits", "Limit must be set for non overcommitable resources"))


# ------------------------------------------------------------------ pods
def _probe_handler(e: _Errs, h: dict, path: str, kinds: tuple[str, ...]) -> None:
    """Exactly one handler (exec, httpGet, tcpSocket, grpc or sleep) must be set."""
    count = 0
    for kind in kinds:
        if h.get(kind) is None:
            continue
        p = f"{path}.{kind}"
        if count:
            e.append(forbidden(p, "may not specify more than 1 handler type"))
            continue
        count += 1
        action = e.obj(h, kind, p)
        if kind == "exec":
            if not e.strings(action, "command", f"{p}.command"):
                e.append(required(f"{p}.command"))
        elif kind == "httpGet":
            if not e.string(action, "path", f"{p}.path"):
                e.append(required(f"{p}.path"))
            e.port_num_or_name(action, "port", f"{p}.port")
            scheme = e.string(action, "scheme", f"{p}.scheme")
            if scheme not in HTTP_SCHEMES:
                e.append(not_supported(f"{p}.scheme", scheme, HTTP_SCHEMES))
            for _, header in e.objects(action, "httpHeaders", f"{p}.httpHeaders"):
                hname = e.string(header, "name", f"{p}.httpHeaders")
                e.msgs(f"{p}.httpHeaders", hname, is_http_header_name(hname))
        elif kind == "tcpSocket":
            e.port_num_or_name(action, "port", f"{p}.port")
        elif kind == "grpc":
            port = e.integer(action, "port", f"{p}.port")
            e.msgs(f"{p}.port", port or 0, is_valid_port(port or 0))
        elif kind == "sleep":
            secs = e.integer(action, "seconds", f"{p}.seconds")
            if secs is not None and secs < 0:
                e.append(invalid(f"{p}.seconds", secs, "must be greater than or equal to 0"))
    if count == 0:
        e.append(required(path, "must specify a handler type"))


def _probe(e: _Errs, probe: dict, path: str, success_must_be_one: bool) -> None:
    _probe_handler(e, probe, path, ("exec", "httpGet", "tcpSocket", "grpc"))
    e.nonnegative(probe, "initialDelaySeconds", f"{path}.initialDelaySeconds")
    for key in ("timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        v = e.integer(probe, key, f"{path}.{key}")
        if v is not None and v < 1:
            e.append(invalid(f"{path}.{key}", v, "must be greater than or equal to 1"))
    success = probe.get("successThreshold")
    if success_must_be_one and _is_int(success) and success > 1:
        e.append(invalid(f"{path}.successThreshold", success, "must be 1"))
    grace = e.integer(probe, "terminationGracePeriodSeconds", f"{path}.terminationGracePeriodSeconds")
    if grace is not None and grace <= 0:
        e.append(invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than 0"))


def _env_field_path(e: _Errs, ref: dict, path: str) -> None:
    api_version = e.string(ref, "apiVersion", f"{path}.apiVersion")
    field_path = e.string(ref, "fieldPath", f"{path}.fieldPath")
    if not api_version:
        e.append(required(f"{path}.apiVersion"))
        return
    if not field_path:
        e.append(required(f"{path}.fieldPath"))
        return
    if api_version != "v1":
        e.append(invalid(f"{path}.fieldPath", field_path,
                         f"error converting fieldPath: unsupported pod version: {api_version}"))
        return
    m = re.fullmatch(r"(metadata\.(?:labels|annotations))\['(.*)'\]", field_path)
    if m:
        key = m.group(2).lower() if m.group(1).endswith("annotations") else m.group(2)
        e.msgs(path, key, is_qualified_name(key))
    elif "[" in field_path:
        e.append(invalid(path, field_path.split("[", 1)[0], "does not support subscript"))
    elif field_path not in ENV_FIELD_PATHS:
        e.append(not_supported(f"{path}.fieldPath", field_path, sorted(ENV_FIELD_PATHS)))


def _key_selector(e: _Errs, sel: dict, path: str) -> None:
    name = e.string(sel, "name", f"{path}.name")
    if not name:
        e.append(required(f"{path}.name"))
    else:
        e.dns_subdomain(f"{path}.name", name)
    key = e.string(sel, "key", f"{path}.key")
    if not key:
        e.append(required(f"{path}.key"))
    else:
        e.msgs(f"{path}.key", key, is_config_map_key(key))


def _env(e: _Errs, ctr: dict, path: str) -> None:
    for p, var in e.objects(ctr, "env", f"{path}.env"):
        name = e.string(var, "name", f"{p}.name")
        if not name:
            e.append(required(f"{p}.name"))
        else:
            e.msgs(f"{p}.name", name, is_env_var_name(name))
        value = e.string(var, "value", f"{p}.value")
        if var.get("valueFrom") is None:
            continue
        vp = f"{p}.valueFrom"
        src = e.obj(var, "valueFrom", vp)
        sources = 0
        if src.get("fieldRef") is not None:
            sources += 1
            _env_field_path(e, e.obj(src, "fieldRef", f"{vp}.fieldRef"), f"{vp}.fieldRef")
        if src.get("resourceFieldRef") is not None:
            sources += 1
            rp = f"{vp}.resourceFieldRef"
            ref = e.obj(src, "resourceFieldRef", rp)
            resource = e.string(ref, "resource", f"{rp}.resource")
            if not resource:
                e.append(required(f"{rp}.resource"))
            elif resource not in RESOURCE_FIELD_REFS and \
                    not resource.startswith(("limits.hugepages-", "requests.hugepages-")):
                e.append(not_supported(f"{rp}.resource", resource, RESOURCE_FIELD_REFS))
            if ref.get("divisor") is not None:
                _quantity(e, f"{rp}.divisor", ref["divisor"])
        for kind in ("configMapKeyRef", "secretKeyRef"):
            if src.get(kind) is not None:
                sources += 1
                _key_selector(e, e.obj(src, kind, f"{vp}.{kind}"), f"{vp}.{kind}")
        if sources == 0:
            e.append(invalid(vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                     "`configMapKeyRef` or `secretKeyRef`"))
        elif value:
            e.append(invalid(vp, "", "may not be specified when `value` is not empty"))
        elif sources > 1:
            e.append(invalid(vp, "", "may not have more than one field specified at a time"))
    for p, src in e.objects(ctr, "envFrom", f"{path}.envFrom"):
        prefix = e.string(src, "prefix", f"{p}.prefix")
        if prefix:
            e.msgs(f"{p}.prefix", prefix, is_env_var_name(prefix))
        refs = [k for k in ("configMapRef", "secretRef") if src.get(k) is not None]
        if not refs:
            e.append(invalid(p, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif len(refs) > 1:
            e.append(invalid(p, "", "may not have more than one field specified at a time"))
        for k in refs:
            ref_name = e.string(e.obj(src, k, f"{p}.{k}"), "name", f"{p}.{k}.name")
            if not ref_name:
                e.append(required(f"{p}.{k}.name"))
            else:
                e.dns_subdomain(f"{p}.{k}.name", ref_name)


def _container_ports(e: _Errs, ctr: dict, path: str) -> None:
    names: set[str] = set()
    for p, port in e.objects(ctr, "ports", f"{path}.ports"):
        name = e.string(port, "name", f"{p}.name")
        if name:
            msgs = is_valid_port_name(name)
            if msgs:
                e.msgs(f"{p}.name", name, msgs)
            elif name in names:
                e.append(duplicate(f"{p}.name", name))
            else:
                names.add(name)
        cport = e.integer(port, "containerPort", f"{p}.containerPort")
        if port.get("containerPort") is None or cport == 0:
            e.append(required(f"{p}.containerPort"))
        elif cport is not None:
            e.msgs(f"{p}.containerPort", cport, is_valid_port(cport))
        hport = e.integer(port, "hostPort", f"{p}.hostPort")
        if hport:
            e.msgs(f"{p}.hostPort", hport, is_valid_port(hport))
        e.one_of(f"{p}.protocol", e.string(port, "protocol", f"{p}.protocol"), PROTOCOLS)
        host_ip = e.string(port, "hostIP", f"{p}.hostIP")
        if host_ip:
            e.msgs(f"{p}.hostIP", host_ip, is_ip(host_ip))


def _container(e: _Errs, ctr: dict, path: str, volumes: set[str], init: bool) -> None:
    name = e.string(ctr, "name", f"{path}.name")
    if not name:
        e.append(required(f"{path}.name"))
    else:
        e.dns_label(f"{path}.name", name)
    image = e.string(ctr, "image", f"{path}.image")
    if not image:
        e.append(required(f"{path}.image"))
    elif image != image.strip():
        e.append(invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    e.strings(ctr, "command", f"{path}.command")
    e.strings(ctr, "args", f"{path}.args")
    e.string(ctr, "workingDir", f"{path}.workingDir")
    _container_ports(e, ctr, path)
    _env(e, ctr, path)
    _container_resources(e, e.obj(ctr, "resources", f"{path}.resources"), f"{path}.resources")

    restart = e.string(ctr, "restartPolicy", f"{path}.restartPolicy")
    sidecar = init and restart == "Always"
    if restart:
        if not init:
            e.append(forbidden(f"{path}.restartPolicy", "may not be set for non-init containers"))
        elif restart != "Always":
            e.append(not_supported(f"{path}.restartPolicy", restart, ("Always",)))
    for probe_kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        p = f"{path}.{probe_kind}"
        if ctr.get(probe_kind) is None:
            continue
        if init and not sidecar:
            e.append(forbidden(p, "may not be set for init containers without restartPolicy=Always"))
            continue
        _probe(e, e.obj(ctr, probe_kind, p), p, probe_kind != "readinessProbe")
    lifecycle = e.obj(ctr, "lifecycle", f"{path}.lifecycle")
    for hook in ("postStart", "preStop"):
        if lifecycle.get(hook) is not None:
            p = f"{path}.lifecycle.{hook}"
            _probe_handler(e, e.obj(lifecycle, hook, p), p, ("exec", "httpGet", "tcpSocket", "sleep"))

    policy = e.string(ctr, "imagePullPolicy", f"{path}.imagePullPolicy")
    e.one_of(f"{path}.imagePullPolicy", policy, PULL_POLICIES)
    msg_policy = e.string(ctr, "terminationMessagePolicy", f"{path}.terminationMessagePolicy")
    e.one_of(f"{path}.terminationMessagePolicy", msg_policy, TERMINATION_MESSAGE_POLICIES)

    mount_paths: set[str] = set()
    for p, mnt in e.objects(ctr, "volumeMounts", f"{path}.volumeMounts"):
        vname = e.string(mnt, "name", f"{p}.name")
        if not vname:
            e.append(required(f"{p}.name"))
        elif vname not in volumes:
            e.append(not_found(f"{p}.name", vname))
        mpath = e.string(mnt, "mountPath", f"{p}.mountPath")
        if not mpath:
            e.append(required(f"{p}.mountPath"))
        elif mpath in mount_paths:
            e.append(invalid(f"{p}.mountPath", mpath, "must be unique"))
        else:
            mount_paths.add(mpath)


def _volumes(e: _Errs, spec: dict) -> set[str]:
    names: set[str] = set()
    for p, vol in e.objects(spec, "volumes", "spec.volumes"):
        name = e.string(vol, "name", f"{p}.name")
        if not name:
            e.append(required(f"{p}.name"))
        else:
            e.dns_label(f"{p}.name", name)
            if name in names:
                e.append(duplicate(f"{p}.name", name))
            names.add(name)
        sources = [k for k in VOLUME_SOURCES if vol.get(k) is not None]
        if not sources:
            e.append(required(p, "must specify a volume type"))
        for extra in sources[1:]:
            e.append(forbidden(f"{p}.{extra}", "may not specify more than 1 volume type"))
        if not sources:
            continue
        kind = sources[0]
        sp = f"{p}.{kind}"
        src = e.obj(vol, kind, sp)
        if kind == "emptyDir":
            medium = e.string(src, "medium", f"{sp}.medium")
            if medium not in ("", "Memory", "HugePages") and not medium.startswith("HugePages-"):
                e.append(not_supported(f"{sp}.medium", medium, ("", "Memory", "HugePages")))
            if src.get("sizeLimit") is not None:
                _quantity(e, f"{sp}.sizeLimit", src["sizeLimit"])
        # the one field each common source cannot do without
        must_have = {"hostPath": "path", "configMap": "name", "secret": "secretName",
                     "persistentVolumeClaim": "claimName"}.get(kind)
        if must_have and not e.string(src, must_have, f"{sp}.{must_have}"):
            e.append(required(f"{sp}.{must_have}"))
        mode = e.integer(src, "defaultMode", f"{sp}.defaultMode")
        if mode is not None and not 0 <= mode <= 0o777:
            e.append(invalid(f"{sp}.defaultMode", mode, "must be a number between 0 and 0777 (octal), both inclusive"))
    return names


def _tolerations(e: _Errs, spec: dict, path: str = "spec.tolerations") -> None:
    for p, tol in e.objects(spec, "tolerations", path):
        key = e.string(tol, "key", f"{p}.key")
        if key:
            e.msgs(f"{p}.key", key, is_qualified_name(key))
        op = e.string(tol, "operator", f"{p}.operator")
        value = e.string(tol, "value", f"{p}.value")
        effect = e.string(tol, "effect", f"{p}.effect")
        if not key and op != "Exists":
            e.append(invalid(f"{p}.operator", op, "operator must be Exists when `key` is empty, "
                                                  "which means \"match all values and all keys\""))
        if e.integer(tol, "tolerationSeconds", f"{p}.tolerationSeconds") is not None and effect != "NoExecute":
            e.append(invalid(f"{p}.effect", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("", "Equal"):
            msgs = is_valid_label_value(value)
            if msgs:
                e.append(invalid(f"{p}.operator", value, ";".join(msgs)))
        elif op == "Exists":
            if value:
                e.append(invalid(f"{p}.operator", tol, "value must be empty when `operator` is 'Exists'"))
        else:
            e.append(not_supported(f"{p}.operator", op, TOLERATION_OPERATORS))
        if effect and effect not in TAINT_EFFECTS:
            e.append(not_supported(f"{p}.effect", effect, TAINT_EFFECTS))


def _dns_config(e: _Errs, spec: dict, dns_policy: str) -> None:
    if spec.get("dnsConfig") is None:
        if dns_policy == "None":
            e.append(required("spec.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None"))
        return
    cfg = e.obj(spec, "dnsConfig", "spec.dnsConfig")
    nameservers = e.strings(cfg, "nameservers", "spec.dnsConfig.nameservers")
    if dns_policy == "None" and not nameservers:
        e.append(required("spec.dnsConfig.nameservers",
                          "must provide at least one DNS nameserver when `dnsPolicy` is None"))
    if len(nameservers) > 3:
        e.append(invalid("spec.dnsConfig.nameservers", nameservers, "must not have more than 3 nameservers"))
    for i, ns in enumerate(nameservers):
        e.msgs(f"spec.dnsConfig.nameservers[{i}]", ns, is_ip(ns))
    searches = e.strings(cfg, "searches", "spec.dnsConfig.searches")
    if len(searches) > 32:
        e.append(invalid("spec.dnsConfig.searches", searches, "must not have more than 32 search paths"))
    for i, s in enumerate(searches):
        if s != ".":
            e.dns_subdomain(f"spec.dnsConfig.searches[{i}]", s.removesuffix("."))
    for p, opt in e.objects(cfg, "options", "spec.dnsConfig.options"):
        if not e.string(opt, "name", f"{p}.name"):
            e.append(required(f"{p}.name", "Option.Name must not be empty"))


def _pod_spec(e: _Errs, spec: dict) -> None:
    volumes = _volumes(e, spec)
    containers = e.objects(spec, "containers", "spec.containers")
    inits = e.objects(spec, "initContainers", "spec.initContainers")
    if spec.get("containers") in (None, []):
        e.append(required("spec.containers"))
    seen: set[str] = set()
    for (p, ctr), init in [(c, True) for c in inits] + [(c, False) for c in containers]:
        _container(e, ctr, p, volumes, init)
        name = ctr.get("name")
        if isinstance(name, str) and name:
            if name in seen:
                e.append(duplicate(f"{p}.name", name))
            seen.add(name)

    host_network = e.boolean(spec, "hostNetwork", "spec.hostNetwork")
    host_ports: set[str] = set()
    for p, ctr in containers:
        for i, port in enumerate(ctr.get("ports") if isinstance(ctr.get("ports"), list) else []):
            if not isinstance(port, dict):
                continue
            hport, cport = port.get("hostPort") or 0, port.get("containerPort") or 0
            if host_network and hport != cport:
                e.append(invalid(f"{p}.ports[{i}].containerPort", cport,
                                 "must match `hostPort` when `hostNetwork` is true"))
            if _is_int(hport) and hport:
                key = f"{port.get('hostIP') or ''}/{port.get('protocol') or 'TCP'}/{hport}"
                if key in host_ports:
                    e.append(duplicate(f"{p}.ports[{i}].hostPort", key))
                host_ports.add(key)

    e.one_of("spec.restartPolicy", e.string(spec, "restartPolicy", "spec.restartPolicy"), RESTART_POLICIES)
    dns_policy = e.string(spec, "dnsPolicy", "spec.dnsPolicy")
    e.one_of("spec.dnsPolicy", dns_policy, DNS_POLICIES)
    _dns_config(e, spec, dns_policy)
    e.nonnegative(spec, "terminationGracePeriodSeconds", "spec.terminationGracePeriodSeconds")
    deadline = e.integer(spec, "activeDeadlineSeconds", "spec.activeDeadlineSeconds")
    if deadline is not None and not 1 <= deadline <= MAX_INT32:
        e.append(invalid("spec.activeDeadlineSeconds", deadline, _inclusive_range_error(1, MAX_INT32)))
    e.labels(spec, "nodeSelector", "spec.nodeSelector")
    _tolerations(e, spec)
    for key in ("hostname", "subdomain"):
        v = e.string(spec, key, f"spec.{key}")
        if v:
            e.dns_label(f"spec.{key}", v)
    for key in ("nodeName", "serviceAccountName", "schedulerName", "priorityClassName"):
        v = e.string(spec, key, f"spec.{key}")
        if v:
            e.dns_subdomain(f"spec.{key}", v)
    e.integer(spec, "priority", "spec.priority")
    preemption = e.string(spec, "preemptionPolicy", "spec.preemptionPolicy")
    if preemption and preemption not in ("Never", "PreemptLowerPriority"):
        e.append(not_supported("spec.preemptionPolicy", preemption, ("Never", "PreemptLowerPriority")))
    for key in ("hostPID", "hostIPC", "enableServiceLinks", "automountServiceAccountToken", "shareProcessNamespace"):
        e.boolean(spec, key, f"spec.{key}")
    e.obj(spec, "securityContext", "spec.securityContext")
    e.obj(spec, "affinity", "spec.affinity")


def _pod_status(e: _Errs, status: dict) -> None:
    for key in ("podIP", "hostIP"):
        ip = e.string(status, key, f"status.{key}")
        if ip:
            e.msgs(f"status.{key}", ip, is_ip(ip))
    for key in ("podIPs", "hostIPs"):
        for p, item in e.objects(status, key, f"status.{key}"):
            ip = e.string(item, "ip", f"{p}.ip")
            e.msgs(f"{p}.ip", ip, is_ip(ip))
    e.string(status, "phase", "status.phase")
    e.objects(status, "conditions", "status.conditions")


def _validate_pod(e: _Errs, pod: dict) -> None:
    _pod_spec(e, e.obj(pod, "spec", "spec"))
    _pod_status(e, e.obj(pod, "status", "status"))


# ------------------------------------------------------------------ services
def _validate_service(e: _Errs, svc: dict) -> None:
    spec = e.obj(svc, "spec", "spec")
    svc_type = e.string(spec, "type", "spec.type")
    cluster_ip = e.string(spec, "clusterIP", "spec.clusterIP")
    cluster_ips = e.strings(spec, "clusterIPs", "spec.clusterIPs")
    headless = cluster_ip == "None" or (not cluster_ip and cluster_ips[:1] == ["None"])
    ports = e.objects(spec, "ports", "spec.ports")

    e.one_of("spec.type", svc_type, SERVICE_TYPES)
    if spec.get("ports") in (None, []) and not headless and svc_type != "ExternalName":
        e.append(required("spec.ports"))

    # cluster IPs: "", "None" or an IPv4 address; clusterIPs[0] follows clusterIP.
    if svc_type == "ExternalName":
        if cluster_ip:
            e.append(forbidden("spec.clusterIP", "may not be set for ExternalName services"))
        elif cluster_ips:
            e.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        cname = e.string(spec, "externalName", "spec.externalName").removesuffix(".")
        if not cname:
            e.append(required("spec.externalName"))
        else:
            e.dns_subdomain("spec.externalName", cname)
    else:
        addresses = [("spec.clusterIP", cluster_ip)] + [(f"spec.clusterIPs[{i}]", v) for i, v in enumerate(cluster_ips)]
        for path, ip in addresses:
            if not ip or ip == "None":
                continue
            msgs = is_ip(ip)
            if msgs:
                e.msgs(path, ip, msgs)
            elif not is_ipv4(ip):
                e.append(invalid(path, ip, "expected an IPv4 value as indicated by `ipFamilies[0]`"))
        if cluster_ip and cluster_ips and cluster_ips[0] != cluster_ip:
            e.append(invalid("spec.clusterIPs", cluster_ips, "first value must match `clusterIP`"))
        if len(cluster_ips) > 1:
            e.append(invalid("spec.clusterIPs", cluster_ips, "may only hold up to 1 values"))
        if headless and svc_type in ("NodePort", "LoadBalancer"):
            e.append(invalid("spec.clusterIP", "None", f"may not be set to 'None' for {svc_type} services"))

    names: set[str] = set()
    seen_ports: set[tuple] = set()
    seen_node_ports: set[tuple] = set()
    for p, port in ports:
        name = e.string(port, "name", f"{p}.name")
        if len(ports) > 1 and not name:
            e.append(required(f"{p}.name"))
        elif name:
            e.dns_label(f"{p}.name", name)
            if name in names:
                e.append(duplicate(f"{p}.name", name))
            names.add(name)
        number = e.integer(port, "port", f"{p}.port")
        e.msgs(f"{p}.port", number or 0, is_valid_port(number or 0))
        protocol = e.string(port, "protocol", f"{p}.protocol")
        e.one_of(f"{p}.protocol", protocol, PROTOCOLS)
        e.port_num_or_name(port, "targetPort", f"{p}.targetPort")
        app_protocol = e.string(port, "appProtocol", f"{p}.appProtocol")
        if app_protocol:
            e.msgs(f"{p}.appProtocol", app_protocol, is_qualified_name(app_protocol))
        if svc_type == "LoadBalancer" and number == KUBELET_PORT:
            e.append(invalid(p, number, f"may not expose port {KUBELET_PORT} externally since it is used by kubelet"))
        key = (protocol, number)
        if key in seen_ports:
            e.append(duplicate(p, {"port": number, "protocol": protocol}))
        seen_ports.add(key)

        node_port = e.integer(port, "nodePort", f"{p}.nodePort")
        if node_port:
            if svc_type in ("ClusterIP", "ExternalName"):
                e.append(forbidden(f"{p}.nodePort", f"may not be used when `type` is '{svc_type}'"))
            elif not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
                lo, hi = NODE_PORT_RANGE
                e.append(invalid(f"{p}.nodePort", node_port,
                                 f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}"))
            elif (protocol, node_port) in seen_node_ports:
                e.append(duplicate(f"{p}.nodePort", node_port))
            seen_node_ports.add((protocol, node_port))

    e.labels(spec, "selector", "spec.selector")

    affinity = e.string(spec, "sessionAffinity", "spec.sessionAffinity")
    e.one_of("spec.sessionAffinity", affinity, SESSION_AFFINITIES)
    cp = "spec.sessionAffinityConfig"
    if affinity == "ClientIP":
        why = "when session affinity type is ClientIP"
        cfg = e.obj(spec, "sessionAffinityConfig", cp)
        client = e.obj(cfg, "clientIP", f"{cp}.clientIP")
        timeout = e.integer(client, "timeoutSeconds", f"{cp}.clientIP.timeoutSeconds")
        if spec.get("sessionAffinityConfig") is None:
            e.append(required(cp, why))
        elif isinstance(spec["sessionAffinityConfig"], dict) and cfg.get("clientIP") is None:
            e.append(required(f"{cp}.clientIP", why))
        elif isinstance(cfg.get("clientIP"), dict) and client.get("timeoutSeconds") is None:
            e.append(required(f"{cp}.clientIP.timeoutSeconds", why))
        elif timeout is not None and not 0 < timeout <= CLIENT_IP_AFFINITY_MAX_SECONDS:
            e.append(invalid(f"{cp}.clientIP.timeoutSeconds", timeout,
                             f"must be greater than 0 and less than {CLIENT_IP_AFFINITY_MAX_SECONDS}"))
    elif affinity == "None" and spec.get("sessionAffinityConfig") is not None:
        e.append(forbidden(cp, "must not be set when session affinity is None"))

    for i, ip in enumerate(e.strings(spec, "externalIPs", "spec.externalIPs")):
        e.msgs(f"spec.externalIPs[{i}]", ip, is_ip(ip))

    external = svc_type in ("NodePort", "LoadBalancer") or (svc_type == "ClusterIP" and bool(spec.get("externalIPs")))
    etp = e.string(spec, "externalTrafficPolicy", "spec.externalTrafficPolicy")
    if external:
        e.one_of("spec.externalTrafficPolicy", etp, TRAFFIC_POLICIES)
    elif etp:
        e.append(invalid("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services"))
    itp = e.string(spec, "internalTrafficPolicy", "spec.internalTrafficPolicy")
    if svc_type != "ExternalName":
        e.one_of("spec.internalTrafficPolicy", itp, TRAFFIC_POLICIES)
    elif itp and itp not in TRAFFIC_POLICIES:
        e.append(not_supported("spec.internalTrafficPolicy", itp, TRAFFIC_POLICIES))

    # This cluster is single-stack IPv4.
    for i, fam in enumerate(e.strings(spec, "ipFamilies", "spec.ipFamilies")):
        if fam not in ("IPv4", "IPv6"):
            e.append(not_supported(f"spec.ipFamilies[{i}]", fam, ("IPv4", "IPv6")))
        elif fam == "IPv6":
            e.append(invalid(f"spec.ipFamilies[{i}]", fam, "not configured on this cluster"))
    policy = e.string(spec, "ipFamilyPolicy", "spec.ipFamilyPolicy")
    if policy and policy not in IP_FAMILY_POLICIES:
        e.append(not_supported("spec.ipFamilyPolicy", policy, IP_FAMILY_POLICIES))
    elif policy == "RequireDualStack":
        e.append(invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services"))


# ------------------------------------------------------------------ endpoints, nodes, events, leases
def _validate_endpoints(e: _Errs, ep: dict) -> None:
    for p, subset in e.objects(ep, "subsets", "subsets"):
        addresses = e.objects(subset, "addresses", f"{p}.addresses")
        not_ready = e.objects(subset, "notReadyAddresses", f"{p}.notReadyAddresses")
        if not addresses and not not_ready:
            e.append(required(p, "must specify `addresses` or `notReadyAddresses`"))
        # Unlike Kubernetes, loopback addresses are allowed: the built-in
        # default/kubernetes endpoints point at an API server on 127.0.0.1.
        for ap, addr in addresses + not_ready:
            ip = e.string(addr, "ip", f"{ap}.ip")
            if not ip:
                e.append(required(f"{ap}.ip"))
            else:
                e.msgs(f"{ap}.ip", ip, is_ip(ip))
            hostname = e.string(addr, "hostname", f"{ap}.hostname")
            if hostname:
                e.dns_label(f"{ap}.hostname", hostname)
            node = e.string(addr, "nodeName", f"{ap}.nodeName")
            if node:
                e.dns_subdomain(f"{ap}.nodeName", node)
        ports = e.objects(subset, "ports", f"{p}.ports")
        for pp, port in ports:
            name = e.string(port, "name", f"{pp}.name")
            if len(ports) > 1 and not name:
                e.append(required(f"{pp}.name"))
            elif name:
                e.dns_label(f"{pp}.name", name)
            number = e.integer(port, "port", f"{pp}.port")
            e.msgs(f"{pp}.port", number or 0, is_valid_port(number or 0))
            e.one_of(f"{pp}.protocol", e.string(port, "protocol", f"{pp}.protocol"), PROTOCOLS)
            app_protocol = e.string(port, "appProtocol", f"{pp}.appProtocol")
            if app_protocol:
                e.msgs(f"{pp}.appProtocol", app_protocol, is_qualified_name(app_protocol))


def _validate_node(e: _Errs, node: dict) -> None:
    spec = e.obj(node, "spec", "spec")
    cidr = e.string(spec, "podCIDR", "spec.podCIDR")
    if cidr:
        e.msgs("spec.podCIDR", cidr, is_cidr(cidr))
    for i, c in enumerate(e.strings(spec, "podCIDRs", "spec.podCIDRs")):
        e.msgs(f"spec.podCIDRs[{i}]", c, is_cidr(c))
    e.boolean(spec, "unschedulable", "spec.unschedulable")
    seen: set[tuple[str, str]] = set()
    for p, taint in e.objects(spec, "taints", "spec.taints"):
        key = e.string(taint, "key", f"{p}.key")
        e.msgs(f"{p}.key", key, is_qualified_name(key))
        value = e.string(taint, "value", f"{p}.value")
        msgs = is_valid_label_value(value)
        if msgs:
            e.append(invalid(f"{p}.value", value, ";".join(msgs)))
        effect = e.string(taint, "effect", f"{p}.effect")
        e.one_of(f"{p}.effect", effect, TAINT_EFFECTS)
        if (key, effect) in seen:
            c = duplicate(p, taint)
            c["message"] += ": taints must be unique by key and effect pair"
            e.append(c)
        seen.add((key, effect))
    status = e.obj(node, "status", "status")
    for part in ("capacity", "allocatable"):
        for name, value in e.obj(status, part, f"status.{part}").items():
            _quantity(e, f"status.{part}[{name}]", value)
    for p, addr in e.objects(status, "addresses", "status.addresses"):
        e.string(addr, "address", f"{p}.address")
        e.string(addr, "type", f"{p}.type")


def _validate_event(e: _Errs, ev: dict) -> None:
    involved = ev.get("involvedObject")
    if not involved:
        e.append(required("involvedObject"))
    elif not isinstance(involved, dict):
        e.append(type_invalid("involvedObject", involved, "object"))
    else:
        md = ev.get("metadata") if isinstance(ev.get("metadata"), dict) else {}
        namespace = md.get("namespace") or ""
        inv_ns = e.string(involved, "namespace", "involvedObject.namespace")
        # Events about cluster-scoped objects (nodes) live in "default".
        if (inv_ns and inv_ns != namespace) or (not inv_ns and namespace not in ("", "default")):
            e.append(invalid("involvedObject.namespace", inv_ns, "does not match event.namespace"))
    reason = e.string(ev, "reason", "reason")
    if len(reason) > EVENT_REASON_MAX:
        e.append(invalid("reason", "", f"can have at most {EVENT_REASON_MAX} characters"))
    message = e.string(ev, "message", "message")
    if len(message) > EVENT_MESSAGE_MAX:
        e.append(invalid("message", "", f"can have at most {EVENT_MESSAGE_MAX} characters"))
    e.string(ev, "type", "type")
    count = e.integer(ev, "count", "count")
    if count is not None and count < 0:
        e.append(invalid("count", count, "must be greater than or equal to 0"))
    e.obj(ev, "source", "source")


def _validate_lease(e: _Errs, lease: dict) -> None:
    spec = e.obj(lease, "spec", "spec")
    duration = e.integer(spec, "leaseDurationSeconds", "spec.leaseDurationSeconds")
    if duration is not None and duration <= 0:
        e.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = e.integer(spec, "leaseTransitions", "spec.leaseTransitions")
    if transitions is not None and transitions < 0:
        e.append(invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    for key in ("holderIdentity", "acquireTime", "renewTime"):
        e.string(spec, key, f"spec.{key}")


# ------------------------------------------------------------------ ingresses
def _ingress_host(e: _Errs, path: str, host: str) -> None:
    is_an_ip_address = not is_ip(host)
    if is_an_ip_address:
        e.append(invalid(path, host, "must be a DNS name, not an IP address"))
    if "*" in host:
        e.msgs(path, host, is_wildcard_dns1123_subdomain(host))
    else:
        e.dns_subdomain(path, host)


def _ingress_backend(e: _Errs, backend: dict, path: str) -> None:
    has_resource, has_service = backend.get("resource") is not None, backend.get("service") is not None
    if has_resource and has_service:
        e.append(invalid(path, "", "cannot set both resource and service backends"))
    elif has_resource:
        ref = e.obj(backend, "resource", f"{path}.resource")
        for key in ("kind", "name"):
            if not e.string(ref, key, f"{path}.resource.{key}"):
                e.append(required(f"{path}.resource.{key}"))
    elif has_service:
        sp = f"{path}.service"
        svc = e.obj(backend, "service", sp)
        name = e.string(svc, "name", f"{sp}.name")
        if not name:
            e.append(required(f"{sp}.name"))
        else:
            e.msgs(f"{sp}.name", name, is_dns1035_label(name))
        port = e.obj(svc, "port", f"{sp}.port")
        port_name = e.string(port, "name", f"{sp}.port.name")
        number = e.integer(port, "number", f"{sp}.port.number")
        if port_name and number:
            e.append(invalid(path, "", "cannot set both port name & port number"))
        elif port_name:
            e.msgs(f"{sp}.port.name", port_name, is_valid_port_name(port_name))
        elif number:
            e.msgs(f"{sp}.port.number", number, is_valid_port(number))
        else:
            e.append(required(path, "port name or number is required"))
    else:
        e.append(invalid(path, "", "resource or service backend is required"))


def _validate_ingress(e: _Errs, ing: dict) -> None:
    spec = e.obj(ing, "spec", "spec")
    rules = e.objects(spec, "rules", "spec.rules")
    if not rules and spec.get("defaultBackend") is None:
        e.append(invalid("spec", [], "either `defaultBackend` or `rules` must be specified"))
    if spec.get("defaultBackend") is not None:
        _ingress_backend(e, e.obj(spec, "defaultBackend", "spec.defaultBackend"), "spec.defaultBackend")
    for p, rule in rules:
        host = e.string(rule, "host", f"{p}.host")
        if host:
            _ingress_host(e, f"{p}.host", host)
        if rule.get("http") is None:
            continue
        hp = f"{p}.http"
        http = e.obj(rule, "http", hp)
        paths = e.objects(http, "paths", f"{hp}.paths")
        if not paths:
            e.append(required(f"{hp}.paths"))
        for pp, item in paths:
            path_type = e.string(item, "pathType", f"{pp}.pathType")
            path = e.string(item, "path", f"{pp}.path")
            if not path_type:
                e.append(required(f"{pp}.pathType", "pathType must be specified"))
                continue
            if path_type in ("Exact", "Prefix"):
                if not path.startswith("/"):
                    e.append(invalid(f"{pp}.path", path, "must be an absolute path"))
                for seq in ("//", "/./", "/../", "%2f", "%2F"):
                    if seq in path:
                        e.append(invalid(f"{pp}.path", path, f"must not contain '{seq}'"))
                for suffix in ("/..", "/."):
                    if path.endswith(suffix):
                        e.append(invalid(f"{pp}.path", path, f"cannot end with '{suffix}'"))
            elif path_type == "ImplementationSpecific":
                if path and not path.startswith("/"):
                    e.append(invalid(f"{pp}.path", path, "must be an absolute path"))
            else:
                e.append(not_supported(f"{pp}.pathType", path_type, PATH_TYPES))
            _ingress_backend(e, e.obj(item, "backend", f"{pp}.backend"), f"{pp}.backend")
    for p, tls in e.objects(spec, "tls", "spec.tls"):
        for i, host in enumerate(e.strings(tls, "hosts", f"{p}.hosts")):
            if "*" in host:
                e.msgs(f"{p}.hosts[{i}]", host, is_wildcard_dns1123_subdomain(host))
            else:
                e.dns_subdomain(f"{p}.hosts[{i}]", host)
        secret = e.string(tls, "secretName", f"{p}.secretName")
        if secret:
            e.dns_subdomain(f"{p}.secretName", secret)
    class_name = e.string(spec, "ingressClassName", "spec.ingressClassName")
    if class_name:
        e.dns_subdomain("spec.ingressClassName", class_name)


# ------------------------------------------------------------------ namespaces, bindings
def _validate_namespace(e: _Errs, ns: dict) -> None:
    spec = e.obj(ns, "spec", "spec")
    for f in e.strings(spec, "finalizers", "spec.finalizers"):
        msgs = is_qualified_name(f)
        e.msgs("spec.finalizers", f, msgs)
        if not msgs and "/" not in f and f not in STANDARD_FINALIZERS:
            e.append(invalid("spec.finalizers", f,
                             "name is neither a standard finalizer name nor is it fully qualified"))


def _validate_binding(e: _Errs, binding: dict) -> None:
    target = e.obj(binding, "target", "target")
    kind = e.string(target, "kind", "target.kind")
    if kind and kind != "Node":
        e.append(not_supported("target.kind", kind, ("Node", "<empty>")))
    if not e.string(target, "name", "target.name"):
        e.append(required("target.name"))


# ------------------------------------------------------------------ dispatch
_KINDS: dict[str, tuple[bool, NameFn, Callable[[_Errs, dict], None]]] = {
    "Namespace": (False, name_is_dns_label, _validate_namespace),
    "Pod": (True, name_is_dns_subdomain, _validate_pod),
    "Service": (True, name_is_dns1035_label, _validate_service),
    "Endpoints": (True, name_is_dns_subdomain, _validate_endpoints),
    "Node": (False, name_is_dns_subdomain, _validate_node),
    "Event": (True, name_is_dns_subdomain, _validate_event),
    "Lease": (True, name_is_dns_subdomain, _validate_lease),
    "Ingress": (True, name_is_dns_subdomain, _validate_ingress),
    "Binding": (True, name_is_dns_subdomain, _validate_binding),
}


def validate(kind: str, obj: dict) -> list[Cause]:
    """All causes for a new object of ``kind``; empty when it is valid.

    Unknown kinds get metadata checks only, with names that must be one URL
    path segment (namespace required iff the resource table says so).
    """
    if not isinstance(obj, dict):
        return [type_invalid("<root>", obj, "object")]
    if kind in _KINDS:
        namespaced, name_fn, check = _KINDS[kind]
    else:
        rt = next((r for r in R.ALL if r.kind == kind), None)
        namespaced, name_fn, check = (rt.namespaced if rt else None), validate_path_segment_name, None
    e = _Errs(validate_object_meta(obj.get("metadata"), namespaced, name_fn))
    if check is not None:
        check(e, obj)
    return list(e)


# ------------------------------------------------------------------ updates
def _normalized(v: Any) -> Any:
    """Drop JSON values Go would decode to a zero value, so `"x": ""` equals a missing x."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            x = _normalized(x)
            if x is None or x == "" or x is False or x == [] or x == {}:
                continue
            out[k] = x
        return out
    if isinstance(v, list):
        return [_normalized(x) for x in v]
    return v


def _diff(old: Any, new: Any, path: str, out: list[str], limit: int = 5) -> None:
    if len(out) >= limit or old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            _diff(old.get(k), new.get(k), f"{path}.{k}", out, limit)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            _diff(a, b, f"{path}[{i}]", out, limit)
    else:
        out.append(f"  {path}: {_go_value(old)} -> {_go_value(new)}")


def _toleration_key(t: Any) -> Any:
    if not isinstance(t, dict):
        return t
    return {k: t.get(k) or "" for k in ("key", "operator", "value", "effect")}


def _pod_update(new: dict, old: dict) -> list[Cause]:
    new_spec, old_spec = new.get("spec"), old.get("spec")
    if not isinstance(new_spec, dict) or not isinstance(old_spec, dict):
        return []
    causes: list[Cause] = []
    munged = copy.deepcopy(new_spec)
    for key in ("containers", "initContainers"):
        n, o = munged.get(key) or [], old_spec.get(key) or []
        if not isinstance(n, list) or not isinstance(o, list):
            continue
        if len(n) != len(o):
            causes.append(forbidden(f"spec.{key}", "pod updates may not add or remove containers"))
            return causes
        for nc, oc in zip(n, o):
            if isinstance(nc, dict) and isinstance(oc, dict):
                nc.pop("image", None)
                if "image" in oc:
                    nc["image"] = oc["image"]

    deadline, old_deadline = new_spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds")
    if _is_int(deadline):
        if _is_int(old_deadline) and old_deadline < deadline:
            causes.append(invalid("spec.activeDeadlineSeconds", deadline,
                                  "must be less than or equal to previous value"))
    elif deadline is None and old_deadline is not None:
        causes.append(invalid("spec.activeDeadlineSeconds", None,
                              "must not update from a positive integer to nil value"))

    # Existing tolerations stay (only their tolerationSeconds may change); new ones may be added.
    new_tols, old_tols = new_spec.get("tolerations"), old_spec.get("tolerations")
    new_keys = [_toleration_key(t) for t in new_tols] if isinstance(new_tols, list) else []
    if isinstance(old_tols, list) and any(_toleration_key(t) not in new_keys for t in old_tols):
        causes.append(forbidden("spec.tolerations",
                                "existing toleration can not be modified except its tolerationSeconds"))

    # Deliberately wider than Kubernetes, which only lets a negative grace period become 1.
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        munged.pop(key, None)
        if key in old_spec:
            munged[key] = old_spec[key]
    a, b = _normalized(old_spec), _normalized(munged)
    if a != b:
        lines: list[str] = []
        _diff(a, b, "spec", lines)
        causes.append(forbidden("spec", f"pod updates may not change fields other than {POD_MUTABLE_FIELDS}\n"
                                + "\n".join(lines)))
    return causes


def _at(obj: Any, path: str) -> Any:
    """The value at a cause's field path ("spec.ports[0].nodePort"), or None."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            i = int(part[1:-1])
            obj = obj[i] if isinstance(obj, list) and i < len(obj) else None
        else:
            obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


_TYPE_DEPENDENT_FIELDS = re.compile(
    r"spec\.(clusterIPs?|externalTrafficPolicy|sessionAffinityConfig|ipFamilies|ipFamilyPolicy|"
    r"internalTrafficPolicy|ports\[\d+\]\.nodePort)(\[\d+\])?$")


def _service_update(new: dict, old: dict, causes: list[Cause]) -> list[Cause]:
    new_spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
    old_spec = old.get("spec") if isinstance(old.get("spec"), dict) else {}
    new_type, old_type = new_spec.get("type"), old_spec.get("type")
    if new_type != old_type:
        # Kubernetes drops fields the new type does not use when they were left
        # unchanged (the registry releases the clusterIP and node ports); don't
        # fail the type change over them.
        causes = [c for c in causes if not (
            _TYPE_DEPENDENT_FIELDS.match(c["field"]) and c["reason"] in ("FieldValueForbidden", "FieldValueInvalid")
            and _at(new, c["field"]) == _at(old, c["field"]))]
    if "ExternalName" in (new_type, old_type):
        return causes
    # An empty clusterIP on update means "keep the allocated one" (the registry copies it).
    old_ip, new_ip = old_spec.get("clusterIP"), new_spec.get("clusterIP")
    if old_ip and new_ip and new_ip != old_ip:
        causes.append(invalid("spec.clusterIP", new_ip, FIELD_IMMUTABLE))
    old_ips, new_ips = old_spec.get("clusterIPs"), new_spec.get("clusterIPs")
    if isinstance(old_ips, list) and isinstance(new_ips, list) and new_ips:
        for i, ip in enumerate(old_ips):
            if i < len(new_ips) and new_ips[i] != ip:
                causes.append(invalid(f"spec.clusterIPs[{i}]", new_ips, "may not change once set"))
    return causes


def _node_update(new: dict, old: dict) -> list[Cause]:
    new_spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
    old_spec = old.get("spec") if isinstance(old.get("spec"), dict) else {}
    causes = []
    msg = "node updates may not change podCIDR except from \"\" to valid"
    if old_spec.get("podCIDR") and new_spec.get("podCIDR") != old_spec["podCIDR"]:
        causes.append(forbidden("spec.podCIDR", msg))
    if old_spec.get("podCIDRs") and new_spec.get("podCIDRs") != old_spec["podCIDRs"]:
        causes.append(forbidden("spec.podCIDRs", msg))
    if old_spec.get("providerID") and new_spec.get("providerID") != old_spec["providerID"]:
        causes.append(forbidden("spec.providerID", "node updates may not change providerID except from \"\" to valid"))
    return causes


def validate_update(kind: str, new: dict, old: dict) -> list[Cause]:
    """Causes for replacing ``old`` with ``new``: validate(new) plus what may not change."""
    causes = validate(kind, new)
    if not isinstance(new, dict) or not isinstance(old, dict):
        return causes
    causes += _meta_update(new.get("metadata"), old.get("metadata"))
    if kind == "Pod":
        causes += _pod_update(new, old)
    elif kind == "Service":
        causes = _service_update(new, old, causes)
    elif kind == "Node":
        causes += _node_update(new, old)
    return causes


__all__ = [
    "Cause", "NODE_PORT_RANGE", "duplicate", "forbidden", "invalid", "is_cidr", "is_config_map_key",
    "is_dns1035_label", "is_dns1123_label", "is_dns1123_subdomain", "is_env_var_name", "is_http_header_name",
    "is_ip", "is_ipv4", "is_qualified_name", "is_valid_label_value", "is_valid_port", "is_valid_port_name",
    "is_wildcard_dns1123_subdomain", "name_is_dns1035_label", "name_is_dns_label", "name_is_dns_subdomain",
    "not_found", "not_supported", "required", "too_long", "type_invalid", "validate", "validate_object_meta",
    "validate_path_segment_name", "validate_update",
]
