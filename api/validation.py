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

This module holds what every kind shares: the string checks
(``is_dns1123_subdomain`` and friends, each returning a list of error
strings, empty when valid), the name functions used for ``metadata.name``,
the cause constructors, the ``Errs`` collector with its typed getters, and
``validate_object_meta`` / ``meta_update``. The pod spec's rules live in
api/podspec.py, each kind's own rules in its strategy (api/kinds/).
"""
from __future__ import annotations

import ipaddress
import json
import re
from fractions import Fraction
from typing import Any, Callable, Iterable

from api.quantity import canonical_quantity, parse_quantity


Cause = dict  # {"reason": ..., "message": ..., "field": ...}
NameFn = Callable[[str, bool], list]

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
MAX_INT32 = 2**31 - 1
EVENT_REASON_MAX = 128
EVENT_MESSAGE_MAX = 1024

PROTOCOLS = ("SCTP", "TCP", "UDP")  # sorted, as Kubernetes lists a set
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
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


def inclusive_range_error(lo: int, hi: int) -> str:
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


def is_int(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool)


def is_valid_port(n: int) -> list[str]:
    if not is_int(n) or not 1 <= n <= 65535:
        return [inclusive_range_error(1, 65535)]
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
def go_value(v: Any) -> str:
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
    return _cause("FieldValueInvalid", field, f"Invalid value: {go_value(value)}" + (f": {detail}" if detail else ""))


def not_supported(field: str, value: Any, supported: Iterable[str]) -> Cause:
    values = ", ".join(json.dumps(s) for s in supported)
    return _cause("FieldValueNotSupported", field, f"Unsupported value: {go_value(value)}: supported values: {values}")


def duplicate(field: str, value: Any) -> Cause:
    return _cause("FieldValueDuplicate", field, f"Duplicate value: {go_value(value)}")


def forbidden(field: str, detail: str) -> Cause:
    return _cause("FieldValueForbidden", field, "Forbidden" + (f": {detail}" if detail else ""))


def too_long(field: str, limit: int) -> Cause:
    unit = "byte" if limit == 1 else "bytes"
    return _cause("FieldValueTooLong", field, f"Too long: may not be more than {limit} {unit}")


def too_large(field: str, limit: int) -> Cause:
    """A total size over its limit (ConfigMap and Secret data), in apimachinery's wording for totals."""
    return _cause("FieldValueTooLong", field, f"Too long: must have at most {limit} bytes")


def not_found(field: str, value: Any) -> Cause:
    return _cause("FieldValueNotFound", field, f"Not found: {go_value(value)}")


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


class Errs(list):
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
        if not is_int(v):
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
        if is_int(v):
            self.msgs(path, v, is_valid_port(v))
        elif isinstance(v, str):
            self.msgs(path, v, is_valid_port_name(v))
        elif v is None:
            self.msgs(path, 0, is_valid_port(0))
        else:
            self.append(type_invalid(path, v, "integer or string"))


# ------------------------------------------------------------------ object meta
def byte_len(s: str) -> int:
    return len(s.encode(errors="surrogatepass"))  # JSON may carry lone surrogates


def validate_object_meta(meta: dict, namespaced: bool | None, name_fn: NameFn = name_is_dns_subdomain) -> list[Cause]:
    """metadata checks shared by every kind (apimachinery's ValidateObjectMeta).

    ``namespaced=None`` means "unknown kind": the namespace is then neither
    required nor forbidden. Unlike Kubernetes, a missing name is accepted when
    generateName is set, because the server fills the name in before it
    validates and callers may validate earlier.
    """
    e = Errs()
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
    size = sum(byte_len(k) + byte_len(v) for k, v in annotations.items())
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


def meta_update(new_meta: Any, old_meta: Any) -> list[Cause]:
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
                                    f"found new finalizers {go_value(extra)}"))
    return causes


# ------------------------------------------------------------------ quantities & resources
def quantity(e: Errs, path: str, value: Any) -> Fraction | None:
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
