"""What resource types the server has, learned from legacy discovery.

kubectl invents nothing: ``po``, ``svc`` and ``all`` work only because the
server's discovery documents list those short names and categories. pkctl
does the same instead of trusting its own copy of ``api.resources``: it asks
``/api``, ``/api/v1``, ``/apis`` and each ``/apis/G/V`` once per invocation
(plain ``application/json``, the legacy form every server answers), builds
``ResourceType`` values from the answers, and resolves names against them.
So a pkctl older than the server still sees new resources, and pointing it at
a real cluster works.

Name resolution follows kubectl: ``TYPE[.VERSION][.GROUP]`` matched against
plurals, singular names and kinds (case-insensitive) first, then short names;
a category (``all``) expands to every resource that lists it.
"""
from __future__ import annotations

from dataclasses import dataclass

from api.resources import ResourceType
from client.errors import ApiError, NotFound

from .errors import CLIError


@dataclass(frozen=True)
class Discovered:
    rt: ResourceType
    preferred: bool  # from the group's preferred version


def unknown_type(name: str) -> CLIError:
    return CLIError(f'the server doesn\'t have a resource type "{name}"')


def _rt_from(group: str, version: str, entry: dict) -> ResourceType:
    verbs = tuple(entry.get("verbs") or ())
    return ResourceType(
        group=group, version=version, kind=entry.get("kind") or "", plural=entry["name"],
        namespaced=bool(entry.get("namespaced")), short_names=tuple(entry.get("shortNames") or ()),
        categories=tuple(entry.get("categories") or ()), verbs=verbs,
        singular=(entry.get("singularName") or entry.get("kind", "")).lower(),
        list_kind=(entry.get("kind") or "") + "List",
    )


def parse_resource_list(group: str, version: str, doc: dict) -> list[ResourceType]:
    """Top-level resources of one ``APIResourceList`` (subresources like ``pods/log`` skipped)."""
    out = []
    for entry in doc.get("resources") or []:
        name = entry.get("name") or ""
        if not name or "/" in name or not entry.get("kind"):
            continue
        out.append(_rt_from(group, version, entry))
    return out


class Discovery:
    """Lazily fetched, once per pkctl run."""

    def __init__(self, client):
        self.client = client
        self._all: list[Discovered] | None = None

    # ------------------------------------------------------------ fetching
    def _get(self, path: str) -> dict | None:
        try:
            return self.client.request("GET", path)
        except NotFound:
            return None

    def all(self) -> list[Discovered]:
        if self._all is not None:
            return self._all
        found: list[Discovered] = []
        core = self._get("/api") or {}
        for version in core.get("versions") or []:
            doc = self._get(f"/api/{version}")
            if doc:
                found += [Discovered(rt, version == (core.get("versions") or [None])[0])
                          for rt in parse_resource_list("", version, doc)]
        groups = self._get("/apis") or {}
        for g in groups.get("groups") or []:
            name = g.get("name") or ""
            preferred = (g.get("preferredVersion") or {}).get("version")
            for v in g.get("versions") or []:
                version = v.get("version")
                if not version:
                    continue
                try:
                    doc = self._get(f"/apis/{name}/{version}")
                except ApiError:
                    continue  # one broken group must not break every command
                if doc:
                    found += [Discovered(rt, version == preferred or preferred is None)
                              for rt in parse_resource_list(name, version, doc)]
        self._all = found
        return found

    def preferred(self) -> list[ResourceType]:
        return [d.rt for d in self.all() if d.preferred]

    # ------------------------------------------------------------ resolving
    def resolve(self, name: str) -> ResourceType:
        """One resource type by any of its names; CLIError if the server lacks it."""
        rt = self.try_resolve(name)
        if rt is None:
            raise unknown_type(name)
        return rt

    def try_resolve(self, name: str) -> ResourceType | None:
        n = name.strip().lower()
        if not n:
            return None
        resource, version, group = n, None, None
        if "." in n:
            resource, rest = n.split(".", 1)
            first, _, after = rest.partition(".")
            candidates = self.all()
            # TYPE.VERSION.GROUP when the first part is one of the group's versions.
            if after and any(d.rt.version == first and d.rt.group == after for d in candidates):
                version, group = first, after
            elif any(d.rt.version == rest and d.rt.group == "" for d in candidates):
                version, group = rest, ""
            else:
                group = rest
        pool = [d for d in self.all()
                if (group is None or d.rt.group == group) and (version is None or d.rt.version == version)]
        pool.sort(key=lambda d: not d.preferred)
        for d in pool:
            if resource in (d.rt.plural, d.rt.singular, d.rt.kind.lower()):
                return d.rt
        for d in pool:
            if resource in d.rt.short_names:
                return d.rt
        return None

    def category(self, name: str) -> list[ResourceType]:
        n = name.lower()
        seen: set[tuple[str, str]] = set()
        out = []
        for d in self.all():
            if d.preferred and n in d.rt.categories and (d.rt.group, d.rt.plural) not in seen:
                seen.add((d.rt.group, d.rt.plural))
                out.append(d.rt)
        return out

    def expand(self, name: str) -> list[ResourceType]:
        """A TYPE argument: one resource, or every member of a category such as ``all``."""
        rt = self.try_resolve(name)
        if rt is not None:
            return [rt]
        members = self.category(name)
        if members:
            return members
        raise unknown_type(name)

    def for_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for d in self.all():
            if d.rt.group == group and d.rt.version == version and d.rt.kind == kind:
                return d.rt
        return None
