"""The pod spec's defaults and validation: containers, probes, env, volumes, tolerations, DNS.

A pod spec is not only the Pod's: every workload kind (ReplicaSet,
Deployment, DaemonSet, StatefulSet, Job) carries one in its pod template,
and Kubernetes defaults and validates the template exactly as it does a
pod. So the rules live here, apart from any one kind's strategy:
``default_pod_spec`` (Kubernetes' ``SetDefaults_PodSpec`` and friends: the
restart and DNS policies, the image pull policy derived from the tag, probe
timings, the pod's priority) and ``check_pod_spec`` (``ValidatePodSpec``,
with the causes api/validation.py describes), plus ``qos_class``.

Defaulting never raises and is idempotent; validation runs after it.
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from api.defaults import dicts, ensure_dict, set_default, sub, unset
from api.quantity import canonical_quantity, parse_quantity
from api.validation import (
    Errs, MAX_INT32, PROTOCOLS, TAINT_EFFECTS, duplicate, forbidden, inclusive_range_error, invalid,
    is_config_map_key, is_env_var_name, is_http_header_name, is_int, is_ip, is_qualified_name,
    is_valid_label_value, is_valid_port, is_valid_port_name, not_found, not_supported, quantity, required,
)

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
TOLERATION_OPERATORS = ("Equal", "Exists")
HTTP_SCHEMES = ("HTTP", "HTTPS")
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
DEFAULT_TERMINATION_GRACE_PERIOD = 30
DEFAULT_FILE_MODE = 0o644  # secret, configMap, downwardAPI and projected volumes
# Priority admission resolves these two built-in classes without a PriorityClass object.
SYSTEM_PRIORITIES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
VOLUME_SOURCES_WITH_MODE = ("secret", "configMap", "downwardAPI", "projected")

def image_pull_policy(image: str) -> str:
    """Always for ":latest" or an untagged image without a digest, else IfNotPresent."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]  # a registry's ":5000" is not a tag
    tag = last.rsplit(":", 1)[1] if ":" in last else ("" if digest else "latest")
    return "Always" if tag == "latest" else "IfNotPresent"


def _default_http_get(action: dict | None) -> None:
    if action is not None:
        set_default(action, "path", "/")
        set_default(action, "scheme", "HTTP")


def _default_probe(probe: dict | None) -> None:
    if probe is None:
        return
    for key, value in PROBE_DEFAULTS.items():
        set_default(probe, key, value, zero=(0,))
    _default_http_get(sub(probe, "httpGet"))


def _default_container(ctr: dict, host_network: bool) -> None:
    set_default(ctr, "terminationMessagePath", "/dev/termination-log")
    set_default(ctr, "terminationMessagePolicy", "File")
    if unset(ctr, "imagePullPolicy") and isinstance(ctr.get("image"), str):
        ctr["imagePullPolicy"] = image_pull_policy(ctr["image"])
    for port in dicts(ctr, "ports"):
        set_default(port, "protocol", "TCP")
        container_port = port.get("containerPort")
        if host_network and isinstance(container_port, int) and not isinstance(container_port, bool):
            set_default(port, "hostPort", container_port, zero=(0,))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(sub(ctr, key))
    lifecycle = sub(ctr, "lifecycle")
    for hook in ("postStart", "preStop"):
        handler = sub(lifecycle, hook) if lifecycle else None
        _default_http_get(sub(handler, "httpGet") if handler else None)
    for var in dicts(ctr, "env"):
        source = sub(var, "valueFrom")
        field_ref = sub(source, "fieldRef") if source else None
        if field_ref is not None:
            set_default(field_ref, "apiVersion", "v1")
    resources = ensure_dict(ctr, "resources")
    limits = sub(resources, "limits") if resources is not None else None
    if limits:
        # A limit without a request means "request exactly the limit".
        requests = ensure_dict(resources, "requests")
        if requests is not None:
            for name, value in limits.items():
                requests.setdefault(name, value)


def _default_volume(vol: dict) -> None:
    if not any(v is not None for k, v in vol.items() if k != "name"):
        vol["emptyDir"] = {}
    for kind in VOLUME_SOURCES_WITH_MODE:
        src = sub(vol, kind)
        if src is not None:
            set_default(src, "defaultMode", DEFAULT_FILE_MODE)
    host_path = sub(vol, "hostPath")
    if host_path is not None and host_path.get("type") is None:
        host_path["type"] = ""


def _positive_quantity(value: Any) -> Any:
    try:
        q = parse_quantity(value)
    except ValueError:
        return None
    return q if q > 0 else None


def qos_class(pod: dict) -> str:
    """Guaranteed, Burstable or BestEffort, by Kubernetes' rules (ComputePodQOS).

    Guaranteed: every container has CPU and memory limits, and requests equal
    limits. BestEffort: no container requests or limits CPU or memory.
    Anything else is Burstable. Expects requests already defaulted from limits.
    """
    spec = sub(pod, "spec") or {}
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for ctr in dicts(spec, "containers") + dicts(spec, "initContainers"):
        resources = sub(ctr, "resources") or {}
        for part, totals in (("requests", requests), ("limits", limits)):
            found = set()
            for name, value in (sub(resources, part) or {}).items():
                q = _positive_quantity(value) if name in ("cpu", "memory") else None
                if q is not None:
                    totals[name] = totals.get(name, 0) + q
                    found.add(name)
            if part == "limits" and found != {"cpu", "memory"}:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests.keys() == limits.keys() and all(requests[k] == limits[k] for k in requests):
        return "Guaranteed"
    return "Burstable"

def default_pod_spec(spec: dict) -> None:
    """Kubernetes' SetDefaults_PodSpec and its containers, probes and volumes (pods and pod templates)."""
    set_default(spec, "restartPolicy", "Always")
    set_default(spec, "terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD)
    set_default(spec, "dnsPolicy", "ClusterFirst")
    set_default(spec, "schedulerName", "default-scheduler")
    set_default(spec, "securityContext", {})
    set_default(spec, "enableServiceLinks", True)
    set_default(spec, "serviceAccountName", "default")
    if unset(spec, "priority"):
        class_name = spec.get("priorityClassName")
        spec["priority"] = SYSTEM_PRIORITIES.get(class_name, 0) if isinstance(class_name, str) else 0
    set_default(spec, "preemptionPolicy", "PreemptLowerPriority")
    host_network = spec.get("hostNetwork") is True
    for ctr in dicts(spec, "initContainers") + dicts(spec, "containers"):
        _default_container(ctr, host_network)
    for vol in dicts(spec, "volumes"):
        _default_volume(vol)

def _is_extended_resource(name: str) -> bool:
    if "/" not in name or "kubernetes.io/" in name or name.startswith("requests."):
        return False
    return not is_qualified_name("requests." + name)


def _resource_name(e: Errs, path: str, name: str) -> None:
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


def _container_resources(e: Errs, res: dict, path: str) -> None:
    parsed: dict[str, dict[str, tuple[Any, Fraction]]] = {"limits": {}, "requests": {}}
    for part in ("limits", "requests"):
        for name, value in e.obj(res, part, f"{path}.{part}").items():
            p = f"{path}.{part}[{name}]"
            _resource_name(e, p, name)
            q = quantity(e, p, value)
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
def _probe_handler(e: Errs, h: dict, path: str, kinds: tuple[str, ...]) -> None:
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


def _probe(e: Errs, probe: dict, path: str, success_must_be_one: bool) -> None:
    _probe_handler(e, probe, path, ("exec", "httpGet", "tcpSocket", "grpc"))
    e.nonnegative(probe, "initialDelaySeconds", f"{path}.initialDelaySeconds")
    for key in ("timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        v = e.integer(probe, key, f"{path}.{key}")
        if v is not None and v < 1:
            e.append(invalid(f"{path}.{key}", v, "must be greater than or equal to 1"))
    success = probe.get("successThreshold")
    if success_must_be_one and is_int(success) and success > 1:
        e.append(invalid(f"{path}.successThreshold", success, "must be 1"))
    grace = e.integer(probe, "terminationGracePeriodSeconds", f"{path}.terminationGracePeriodSeconds")
    if grace is not None and grace <= 0:
        e.append(invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than 0"))


def _env_field_path(e: Errs, ref: dict, path: str) -> None:
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


def _key_selector(e: Errs, sel: dict, path: str) -> None:
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


def _env(e: Errs, ctr: dict, path: str) -> None:
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
                quantity(e, f"{rp}.divisor", ref["divisor"])
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


def _container_ports(e: Errs, ctr: dict, path: str) -> None:
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


def _container(e: Errs, ctr: dict, path: str, volumes: set[str], init: bool) -> None:
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


def _volumes(e: Errs, spec: dict) -> set[str]:
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
                quantity(e, f"{sp}.sizeLimit", src["sizeLimit"])
        # the one field each common source cannot do without
        must_have = {"hostPath": "path", "configMap": "name", "secret": "secretName",
                     "persistentVolumeClaim": "claimName"}.get(kind)
        if must_have and not e.string(src, must_have, f"{sp}.{must_have}"):
            e.append(required(f"{sp}.{must_have}"))
        mode = e.integer(src, "defaultMode", f"{sp}.defaultMode")
        if mode is not None and not 0 <= mode <= 0o777:
            e.append(invalid(f"{sp}.defaultMode", mode, "must be a number between 0 and 0777 (octal), both inclusive"))
    return names


def _tolerations(e: Errs, spec: dict, path: str = "spec.tolerations") -> None:
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


def _dns_config(e: Errs, spec: dict, dns_policy: str) -> None:
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


def check_pod_spec(e: Errs, spec: dict) -> None:
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
            if is_int(hport) and hport:
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
        e.append(invalid("spec.activeDeadlineSeconds", deadline, inclusive_range_error(1, MAX_INT32)))
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
