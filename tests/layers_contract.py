"""An import-linter contract type for allow-lists: "these packages import only that".

The layer rules (docs/design.md, style rule 11; pyproject.toml's
`[tool.importlinter]`) are all of one shape: a package may import itself and
a short list of others, nothing else of the project. import-linter's built-in
types are deny-lists (`forbidden`, `independence`, `layers`), so writing the
rules with them means naming every package a package must not import, a list
that silently stops being complete when a new top-level package appears; and
none of them can say "deploy may import `kubelet.main` but nothing else of the
kubelet". This contract states the allow-list instead.

`source_modules`: each is checked on its own, together with everything below
it, and may always import itself (so listing several sources also makes them
independent of one another). `allowed_modules`: what else each may import;
an entry allows that module and everything below it (`api` allows `api.meta`;
`kubelet.main` allows only itself). Only imports between the project's root
packages are checked (external packages are not in the graph), direct imports
only: every root package has a rule of its own, so an indirect path is made of
direct imports that are each checked where they are written. Imports inside
functions count like any other (grimp reads the whole module).
"""
from __future__ import annotations

from importlinter import Contract, ContractCheck, fields, output


def _within(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


class OnlyImportsContract(Contract):
    type_name = "only"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    allowed_modules = fields.ListField(subfield=fields.ModuleField(), required=False, default=[])

    def check(self, graph, verbose: bool) -> ContractCheck:
        allowed = [m.name for m in self.allowed_modules]
        violations = []
        for source in self.source_modules:
            if source.name not in graph.modules:
                raise ValueError(f"contract {self.name!r}: module {source.name} is not in the graph")
            importers = {source.name} | graph.find_descendants(source.name)
            for importer in sorted(importers):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    if _within(imported, [source.name]) or _within(imported, allowed):
                        continue
                    details = graph.get_import_details(importer=importer, imported=imported)
                    violations.append({
                        "importer": importer,
                        "imported": imported,
                        "lines": sorted(d["line_number"] for d in details),
                    })
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        allowed = ", ".join(m.name for m in self.allowed_modules) or "nothing else of the project"
        output.print_error(f"allowed besides itself: {allowed}", bold=False)
        output.new_line()
        for v in check.metadata["violations"]:
            lines = ", ".join(f"l.{n}" for n in v["lines"])
            output.print_error(f"-   {v['importer']} -> {v['imported']} ({lines})", bold=False)
        output.new_line()
