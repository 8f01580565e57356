"""Aligned terminal tables (rich) with one number format everywhere.

Integers get thousands separators (``1,234,567``), floats four decimals (``0.9712``) or, from
1,000 on, one (``12,345.6``); a missing value (``None`` or NaN) is ``—``. Numeric columns are
right-aligned. Tables print as plain text without colour when stdout is not a terminal, so piped
output stays greppable.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MISSING = "—"


def format_cell(value: Any) -> str:
    """One table cell: thousands separators for integers, fixed precision for floats."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v):
            return MISSING
        return f"{v:,.1f}" if abs(v) >= 1000 else f"{v:.4f}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def print_table(rows: Sequence[Mapping[str, Any]], *, title: str | None = None,
                right: Iterable[str] = (), file: Any = None) -> None:
    """Print ``rows`` (one mapping per row) as an aligned table; numeric columns right-aligned."""
    from rich.box import SIMPLE_HEAD
    from rich.console import Console
    from rich.table import Table

    out = file if file is not None else sys.stdout
    if not rows:
        print("(no rows)", file=out)
        return
    cols: list[str] = []
    for r in rows:
        cols += [str(c) for c in r if str(c) not in cols]
    right = set(right)
    table = Table(title=title, box=SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for c in cols:
        numeric = c in right or all(_is_number(r.get(c)) or r.get(c) is None for r in rows)
        table.add_column(c, justify="right" if numeric else "left", overflow="fold")
    for r in rows:
        table.add_row(*(format_cell(r.get(c)) for c in cols))
    tty = bool(getattr(out, "isatty", lambda: False)())
    console = Console(file=out, width=max(120, _width(table, cols, rows)), no_color=not tty,
                      highlight=False, force_terminal=tty, soft_wrap=False)
    console.print(table)
    if any(r.get(c) is None for r in rows for c in cols):
        print(f"{MISSING} = not measured or not applicable", file=out)


def _width(table: Any, cols: list[str], rows: Sequence[Mapping[str, Any]]) -> int:
    """Total width that fits every cell on one line (piped output is never wrapped)."""
    widths = [max(len(c), *(len(format_cell(r.get(c))) for r in rows)) for c in cols]
    return sum(widths) + 3 * len(cols) + 2


def times(ratio: float | None, smaller: str = "smaller", larger: str = "larger") -> str:
    """A ratio after/before in one unit everywhere: ``3.94x smaller``, ``1.20x larger``.

    For sizes pass after/before; for speed pass ``before/after`` with ``smaller="slower"``,
    ``larger="faster"`` (so ``2.00x faster``). ``None``/NaN/0 -> ``—``.
    """
    if ratio is None or not math.isfinite(float(ratio)) or ratio <= 0:
        return MISSING
    r = float(ratio)
    if math.isclose(r, 1.0, rel_tol=5e-3):
        return "1.00x (same)"
    return f"{1 / r:.2f}x {smaller}" if r < 1 else f"{r:.2f}x {larger}"
