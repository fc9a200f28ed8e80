"""Aligned plain-text tables for terminals and summary files."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def render_table(rows: Sequence[Sequence[object]], *, right: Collection[int] = (),
                 rule: bool = False) -> str:
    """Rows (the first is the header) as space-separated columns padded to their widest cell.

    right: column numbers aligned right in the body (numbers read best that way);
    rule: a line of dashes under the header.
    """
    cells = [[str(c) for c in row] for row in rows]
    if not cells:
        return ""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    out = []
    for n, row in enumerate(cells):
        out.append("  ".join(v.rjust(w) if i in right and n else v.ljust(w)
                             for i, (v, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if rule and n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
