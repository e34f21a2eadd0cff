"""Output formats: server-side Tables as aligned columns, and yaml/json/name/jsonpath.

Tables are printed the way kubectl prints them: column names upper-cased,
``priority: 1`` columns only with ``-o wide``, a NAMESPACE column first for
``-A`` (taken from each row's ``object.metadata``), ``kind/name`` in the
name column when several types are shown, cells printed as the server
computed them (the server owns Age and Status text), and Go's tabwriter
alignment (see ``tabwriter``). ``-w`` keeps the widths of the first table so
later rows line up under it.

Objects print as YAML or JSON with keys sorted (kubectl marshals Go maps,
which sorts them), JSON indented by four spaces, and several objects wrapped
in a ``v1 List``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, IO

import yaml

from .errors import CLIError
from .jsonpath import JSONPathError, Template, format_value
from .tabwriter import get_format

OBJECT_FORMATS = ("yaml", "json", "name", "jsonpath", "jsonpath-file", "custom-columns",
                  "custom-columns-file")
TABLE_FORMATS = ("", "wide")
ALLOWED = "custom-columns,custom-columns-file,json,jsonpath,jsonpath-file,name,wide,yaml"


@dataclass
class OutputSpec:
    format: str = ""      # "", wide, yaml, json, name, jsonpath, custom-columns
    template: str = ""    # for jsonpath / custom-columns

    @property
    def is_table(self) -> bool:
        return self.format in TABLE_FORMATS

    @property
    def wide(self) -> bool:
        return self.format == "wide"


def parse_output(value: str | None) -> OutputSpec:
    if not value:
        return OutputSpec()
    fmt, sep, template = value.partition("=")
    fmt = fmt.strip().lower()
    if fmt in ("jsonpath-file", "custom-columns-file"):
        try:
            with open(template, encoding="utf-8") as f:
                template = f.read().strip()
        except OSError as e:
            raise CLIError(f"error reading template {template}: {e}") from None
        fmt = fmt[: -len("-file")]
    if fmt in ("jsonpath", "custom-columns"):
        if not template:
            raise CLIError(f"{fmt} format specified but no template given")
        if fmt == "jsonpath":
            try:
                Template(template)
            except JSONPathError as e:
                raise CLIError(f"error parsing jsonpath {template}, {e}") from None
        return OutputSpec(fmt, template)
    if sep or fmt not in ("wide", "yaml", "json", "name"):
        raise CLIError(f'unable to match a printer suitable for the output format "{value}", '
                       f"allowed formats are: {ALLOWED}")
    return OutputSpec(fmt)


# ------------------------------------------------------------------ objects
def to_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True,
                          width=1 << 30)


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False) + "\n"


def as_list(objs: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": objs, "metadata": {"resourceVersion": ""}}


def print_objects(objs: list[dict], spec: OutputSpec, out: IO[str], single: bool,
                  name_of=None) -> None:
    """Print objects in an object format; ``single`` means one object was asked for by name.

    ``name_of(obj)`` gives the ``kind/name`` string for ``-o name``.
    """
    if spec.format == "name":
        for o in objs:
            out.write(name_of(o) + "\n")
        return
    doc: Any = objs[0] if single and len(objs) == 1 else as_list(objs)
    if spec.format == "yaml":
        out.write(to_yaml(doc))
    elif spec.format == "json":
        out.write(to_json(doc))
    elif spec.format == "jsonpath":
        out.write(Template(spec.template).render(doc))
    elif spec.format == "custom-columns":
        out.write(custom_columns(spec.template, objs))
    else:
        raise CLIError(f"output format {spec.format!r} is not an object format")


def parse_custom_columns(spec: str) -> list[tuple[str, Template]]:
    cols = []
    for part in spec.split(","):
        if ":" not in part:
            raise CLIError(f"unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>")
        header, expr = part.split(":", 1)
        expr = expr.strip()
        if not expr.startswith("{"):
            expr = "{" + (expr if expr.startswith(".") else "." + expr) + "}"
        try:
            cols.append((header, Template(expr)))
        except JSONPathError as e:
            raise CLIError(f"error parsing custom-columns {part}: {e}") from None
    return cols


def custom_columns(spec: str, objs: list[dict], no_headers: bool = False) -> str:
    cols = parse_custom_columns(spec)
    lines = [] if no_headers else ["\t".join(h for h, _ in cols)]
    for o in objs:
        lines.append("\t".join(t.render(o) or "<none>" for _, t in cols))
    return get_format("\n".join(lines) + "\n")


# ------------------------------------------------------------------ tables
@dataclass
class TableOptions:
    wide: bool = False
    namespace_column: bool = False
    kind_prefix: str = ""          # "pod": cells of the name column become "pod/NAME"
    no_headers: bool = False
    show_labels: bool = False
    label_columns: list[str] = field(default_factory=list)


def _cell(value: Any) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, str):
        # kubectl cuts a cell at its first line break and marks the cut.
        for i, ch in enumerate(value):
            if ch in "\n\r\f":
                return value[:i] + "..."
        return value.replace("\t", " ")
    return format_value(value)


def _row_meta(row: dict) -> dict:
    obj = row.get("object") or {}
    return obj.get("metadata") or {}


def table_rows(table: dict, opts: TableOptions, include_header: bool = True) -> tuple[list[str], list[list[str]]]:
    """(header cells, row cells) of a Table, with the options applied."""
    columns = table.get("columnDefinitions") or []
    shown = [i for i, c in enumerate(columns) if opts.wide or int(c.get("priority") or 0) == 0]
    name_col = next((i for i, c in enumerate(columns) if c.get("format") == "name"), None)
    header: list[str] = []
    if opts.namespace_column:
        header.append("NAMESPACE")
    header += [str(columns[i].get("name", "")).upper() for i in shown]
    header += [k.split("/")[-1].upper() for k in opts.label_columns]
    if opts.show_labels:
        header.append("LABELS")
    rows = []
    for row in table.get("rows") or []:
        cells = row.get("cells") or []
        md = _row_meta(row)
        line: list[str] = []
        if opts.namespace_column:
            line.append(md.get("namespace") or "")
        for i in shown:
            value = cells[i] if i < len(cells) else ""
            text = _cell(value)
            if opts.kind_prefix and i == name_col:
                text = f"{opts.kind_prefix}/{text}"
            line.append(text)
        labels = md.get("labels") or {}
        for k in opts.label_columns:
            line.append(labels.get(k, ""))
        if opts.show_labels:
            line.append(",".join(f"{k}={labels[k]}" for k in sorted(labels)) or "<none>")
        rows.append(line)
    return header, rows


def render_table(table: dict, opts: TableOptions) -> str:
    header, rows = table_rows(table, opts)
    lines = rows if opts.no_headers else [header] + rows
    if not lines:
        return ""
    return get_format("".join("\t".join(cells) + "\n" for cells in lines))


class RowPrinter:
    """Prints rows that arrive one by one (``get -w``) aligned under an initial table.

    The header is printed with the first rows, as kubectl does when a watch
    starts on an empty collection; later rows are padded to the widths seen
    so far, so they line up under the first table.
    """

    def __init__(self, out: IO[str], opts: TableOptions):
        self.out = out
        self.opts = opts
        self.widths: list[int] = []
        self.columns: list[dict] | None = None
        self.header_done = opts.no_headers

    def _remember(self, lines: list[list[str]]) -> None:
        for cells in lines:
            for i, c in enumerate(cells[:-1]):
                w = max(len(c) + 3, 6)
                if i >= len(self.widths):
                    self.widths.append(w)
                elif w > self.widths[i]:
                    self.widths[i] = w

    def print_rows(self, table: dict) -> None:
        """The rows of a Table; watch events' Tables may have null columnDefinitions after the first."""
        if table.get("columnDefinitions"):
            self.columns = table["columnDefinitions"]
        elif self.columns is not None:
            table = {**table, "columnDefinitions": self.columns}
        header, rows = table_rows(table, self.opts)
        lines = rows if self.header_done else [header] + rows
        if not rows:
            return
        self._remember(lines)
        for cells in lines:
            self._write(cells)
        self.header_done = True

    def _write(self, cells: list[str]) -> None:
        parts = []
        for i, c in enumerate(cells):
            if i < len(cells) - 1:
                w = self.widths[i] if i < len(self.widths) else 0
                parts.append(c.ljust(max(w, len(c) + 3, 6)))
            else:
                parts.append(c)
        self.out.write("".join(parts) + "\n")
        self.out.flush()
