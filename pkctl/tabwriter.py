"""A port of Go's text/tabwriter, the thing that makes kubectl's columns line up.

kubectl never computes column widths itself: ``get`` writes cells separated
by tabs into ``tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)`` and ``describe``
into ``NewWriter(out, 0, 8, 2, ' ', 0)``. The writer aligns a column only
within a *block* of consecutive lines that all have a cell in it, which is
why the ``Name:``/``Namespace:`` labels of ``describe`` align until the
first section heading. Reproducing the algorithm (rather than padding every
column to its global maximum) is what makes pkctl's output look like
kubectl's, line for line.

A cell is the text before a tab; the text after a line's last tab is not
part of any column and is never padded.
"""
from __future__ import annotations


def format_lines(text: str, minwidth: int = 0, padding: int = 1) -> str:
    """Align the tab-separated ``text`` (lines end with ``\\n``) like Go's tabwriter.

    Trailing whitespace produced by padding the cells of a line is kept, as
    Go does; callers print the result as is.
    """
    ends_with_newline = text.endswith("\n")
    lines = [line.split("\t") for line in text.split("\n")]
    if ends_with_newline:
        lines = lines[:-1]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts = []
            for j, cell in enumerate(cells):
                if j < len(cells) - 1 and j < len(widths):
                    parts.append(cell + " " * (widths[j] - len(cell)))
                elif j < len(cells) - 1:
                    parts.append(cell)
                else:
                    parts.append(cell)
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1:
                cells = lines[this]
                if column >= len(cells) - 1:
                    break
                w = len(cells[column]) + padding
                if w > width:
                    width = w
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    result = "\n".join(out)
    return result + "\n" if ends_with_newline and out else result


def get_format(text: str) -> str:
    """kubectl get's writer: minwidth 6, padding 3."""
    return format_lines(text, minwidth=6, padding=3)


def describe_format(text: str) -> str:
    """kubectl describe's writer: minwidth 0, padding 2."""
    return format_lines(text, minwidth=0, padding=2)
