"""Small-cell suppression (no I/O): a count above 0 and below ``min_cell`` is withheld (primary), and so are enough
other counts that no withheld one follows from the shown ones (complementary), over every report of a range.

The identities a reader knows are in :func:`report_family`; :func:`withheld_cells` chooses the cells and
:class:`Suppressor` applies them to one report's counts. The audit handlers run the choice off the event loop
(services/audit/handlers.py, ``Withholder``)."""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from services.audit.reports.rules import NETWORK, PURPOSES, SUPPORT_TYPES
from shared.contracts.checkin import SUPPORT_TYPE_OF_PURPOSE


def suppressed(value: int, min_cell: int | None) -> bool:
    """A count is withheld when it is positive and below ``min_cell``; zero reveals no one and is kept."""
    return min_cell is not None and 0 < value < min_cell


# --- complementary suppression --------------------------------------------------------------------------------
#
# Withholding the small cells alone is undone by subtraction: a total minus the other cells of its breakdown is the
# withheld one. A report's counts are tied by identities ("total = sum of parts") within a report, between its
# breakdowns, between a site's figures and the network's, and between the daily series and the range's totals.
# Complementary suppression withholds more cells until no withheld cell is a linear function of the shown ones.

# A prime near 2**61: ranks of these 0/±1 systems over it are their ranks over the rationals.
_PRIME = 2**61 - 1

Cell = Hashable


@dataclass(frozen=True, slots=True)
class Identity:
    """``sum(totals) = sum(parts)``, true of the figures and known to every reader of the reports."""

    totals: tuple[Cell, ...]
    parts: tuple[Cell, ...]

    @property
    def cells(self) -> tuple[Cell, ...]:
        return (*self.totals, *self.parts)


def withheld_cells(values: Mapping[Cell, int], identities: Sequence[Identity], min_cell: int | None) -> set[Cell]:
    """The cells to withhold: the small ones (primary suppression), and then complements until no withheld cell can
    be worked out from the shown cells and the identities.

    The rule statistical agencies use: when an identity has exactly one withheld cell, its smallest shown cell
    (preferring a non-zero one, a part before the total) is withheld too. Rows that each withhold two cells can
    still give one away through other identities (x + y, y + z and x + z known fix all three), so the result is
    checked exactly, and while a withheld cell is still determined, the smallest shown cell of one of its
    identities is withheld as well.

    Cells no identity ties together cannot give each other away, so each connected part of the system is solved
    apart (one with no small cell withholds nothing), and in an order fixed by the order of ``values`` and
    ``identities``: the pattern of one part does not depend on the others, nor on the process's string hashing, so
    every report of the range, from any process, withholds the same cells of the parts it shares."""
    if min_cell is None:
        return set()
    system = _System(values, identities)
    hidden = {system.number[cell] for cell, value in values.items() if suppressed(value, min_cell)}
    for rows in system.components():
        if any(cell in hidden for row in rows for cell in system.rows[row]):
            _complete(system, rows, hidden)
    return {system.cells[cell] for cell in hidden}


class _System:
    """The identities over cells numbered in a fixed order: per identity, its cells and its row of coefficients
    (+1 for a total, -1 for a part, modulo _PRIME; a cell on both sides cancels)."""

    def __init__(self, values: Mapping[Cell, int], identities: Sequence[Identity]) -> None:
        self.cells: list[Cell] = list(dict.fromkeys([*values, *(cell for i in identities for cell in i.cells)]))
        self.number = number = {cell: n for n, cell in enumerate(self.cells)}
        # The cells of each identity, smallest first as complements are chosen: a non-zero one, then a part (the
        # sort is stable, and the parts come first).
        rank = [value if (value := values.get(cell, 0)) else math.inf for cell in self.cells]
        self.rows: list[list[int]] = []
        self.coefficients: list[dict[int, int]] = []
        for identity in identities:
            parts = [number[cell] for cell in identity.parts]
            totals = [number[cell] for cell in identity.totals]
            self.rows.append(sorted([*parts, *totals], key=rank.__getitem__))
            row = dict.fromkeys(parts, _PRIME - 1)
            if len(row) < len(parts):  # a part counted twice
                row = {}
                for cell in parts:
                    row[cell] = (row.get(cell, 0) - 1) % _PRIME
            for cell in totals:
                row[cell] = (row.get(cell, 0) + 1) % _PRIME
            self.coefficients.append({cell: coef for cell, coef in row.items() if coef})

    def components(self) -> list[list[int]]:
        """The identities grouped by connected part (two identities sharing a cell are connected)."""
        parent = list(range(len(self.cells)))

        def root(cell: int) -> int:
            while parent[cell] != cell:
                parent[cell] = parent[parent[cell]]
                cell = parent[cell]
            return cell

        for row in self.rows:
            for cell in row[1:]:
                a, b = root(row[0]), root(cell)
                if a != b:
                    parent[max(a, b)] = min(a, b)
        groups: dict[int, list[int]] = {}
        for n, row in enumerate(self.rows):
            if row:
                groups.setdefault(root(row[0]), []).append(n)
        return list(groups.values())


def _complete(system: _System, rows: list[int], hidden: set[int]) -> None:
    """Complementary suppression of one connected part of the system, adding to ``hidden``."""
    by_cell: dict[int, list[int]] = {}
    for row in rows:
        for cell in system.rows[row]:
            by_cell.setdefault(cell, []).append(row)
    hidden_in = {row: sum(cell in hidden for cell in system.rows[row]) for row in rows}
    # Cells are only ever added to ``hidden``, so each identity's smallest shown cell only moves forward in its
    # sorted cells: a cursor finds it in time linear in the identity over the whole run.
    cursor = dict.fromkeys(rows, 0)

    def smallest_shown(row: int) -> int | None:
        cells, at = system.rows[row], cursor[row]
        while at < len(cells) and cells[at] in hidden:
            at += 1
        cursor[row] = at
        return cells[at] if at < len(cells) else None

    pending = [row for row in rows if hidden_in[row] == 1]

    def withhold(cell: int) -> None:
        hidden.add(cell)
        for row in by_cell[cell]:
            hidden_in[row] += 1
            if hidden_in[row] == 1:
                pending.append(row)

    checked: dict[frozenset[int], set[int]] = {}
    while True:
        while pending:
            row = pending.pop()
            if hidden_in[row] == 1 and (complement := smallest_shown(row)) is not None:
                withhold(complement)
        exposed = _determined([system.coefficients[row] for row in rows], hidden, checked)
        if not exposed:
            return
        candidates = (smallest_shown(row) for cell in sorted(exposed) for row in by_cell[cell])
        complement = next((cell for cell in candidates if cell is not None), None)
        if complement is None:  # every identity around them is withheld whole; the rank says they are not fixed
            return
        withhold(complement)


def disclosed(identities: Sequence[Identity], hidden: set[Cell]) -> set[Cell]:
    """The withheld cells whose value follows from the identities once the shown cells are known."""
    system = _System({}, identities)
    numbers = {system.number[cell] for cell in hidden if cell in system.number}
    return {system.cells[cell] for cell in _determined(system.coefficients, numbers, {})}


def _determined(
    rows: Sequence[Mapping[int, int]], hidden: set[int], checked: dict[frozenset[int], set[int]]
) -> set[int]:
    """The withheld cells whose value follows from the identities (``rows`` of coefficients) once the shown cells
    are known.

    With the shown cells moved to the constant side, the identities are linear equations in the withheld ones. The
    equations split into connected parts, each decided apart (``checked`` remembers the parts already decided, by
    their cells, during one choice of complements). A part whose equations, as a graph of equations and cells, form
    a tree in which every equation has two withheld cells or more fixes none of them: set any one cell to 1 and
    walk the tree outwards, each equation balanced by one of its other cells, the rest 0. Any other part is
    brought to echelon form (modulo a large prime), and two random solutions of its homogeneous system are built by
    giving the free cells random values: a cell that is 0 in both is determined (a cell that is not would be 0 by
    chance with probability 2**-122)."""
    restricted = [{cell: coef for cell, coef in row.items() if cell in hidden} for row in rows]
    restricted = [row for row in restricted if row]
    parent: dict[int, int] = {}

    def root(cell: int) -> int:
        parent.setdefault(cell, cell)
        while parent[cell] != cell:
            parent[cell] = parent[parent[cell]]
            cell = parent[cell]
        return cell

    for row in restricted:
        first, *others = row
        for cell in others:
            a, b = root(first), root(cell)
            if a != b:
                parent[max(a, b)] = min(a, b)
    parts: dict[int, list[dict[int, int]]] = {}
    for row in restricted:
        parts.setdefault(root(next(iter(row))), []).append(row)
    determined: set[int] = set()
    for part in parts.values():
        cells = frozenset(cell for row in part for cell in row)
        if cells not in checked:
            entries = sum(len(row) for row in part)
            tree = entries == len(part) + len(cells) - 1 and all(len(row) >= 2 for row in part)
            checked[cells] = set() if tree else _fixed(part)
        determined |= checked[cells]
    return determined


def _fixed(rows: Sequence[Mapping[int, int]]) -> set[int]:
    """The unknowns of the homogeneous system ``rows`` that are 0 in every solution (see :func:`_determined`).

    An equation with an unknown that no other remaining equation has constrains nothing else: whatever values the
    others take, that unknown balances it. Such equations are set aside first, as long as there are any (most of a
    report's: each day's sites beside the network's), and only what is left is eliminated; the set-aside ones then
    give their unknown's value last, in reverse order."""
    remaining: dict[int, set[int]] = {}
    for n, row in enumerate(rows):
        for cell in row:
            remaining.setdefault(cell, set()).add(n)
    loose = [n for n, row in enumerate(rows) if any(len(remaining[cell]) == 1 for cell in row)]
    set_aside: list[tuple[int, Mapping[int, int]]] = []
    removed: set[int] = set()
    while loose:
        n = loose.pop()
        if n in removed:
            continue
        own = next((cell for cell in rows[n] if len(remaining[cell]) == 1), None)
        if own is None:
            continue
        removed.add(n)
        set_aside.append((own, rows[n]))
        for cell in rows[n]:
            remaining[cell].discard(n)
            if len(remaining[cell]) == 1:
                loose.append(next(iter(remaining[cell])))
    pivots: list[tuple[int, Mapping[int, int]]] = []
    pivot_rows: dict[int, dict[int, int]] = {}
    for row in sorted((row for n, row in enumerate(rows) if n not in removed), key=len):
        row = dict(row)
        while reducible := [cell for cell in row if cell in pivot_rows]:
            for cell in reducible:
                factor = row.pop(cell, 0)
                if not factor:
                    continue
                for other, coef in pivot_rows[cell].items():
                    if other != cell:
                        value = (row.get(other, 0) - factor * coef) % _PRIME
                        if value:
                            row[other] = value
                        else:
                            row.pop(other, None)
        if not row:
            continue
        pivot = min(row)
        inverse = pow(row[pivot], _PRIME - 2, _PRIME)
        normalized = {cell: coef * inverse % _PRIME for cell, coef in row.items()}
        pivots.append((pivot, normalized))
        pivot_rows[pivot] = normalized
    solved_last = [*reversed(pivots), *reversed(set_aside)]
    bound = {pivot for pivot, _ in solved_last}
    unknowns = set(remaining)
    chance = random.Random()  # seeded from the system's randomness
    solutions = []
    for _ in range(2):
        solution = {cell: chance.randrange(1, _PRIME) for cell in unknowns if cell not in bound}
        for pivot, row in solved_last:
            rest = sum(coef * solution[cell] for cell, coef in row.items() if cell != pivot)
            solution[pivot] = -rest * pow(row[pivot], _PRIME - 2, _PRIME) % _PRIME
        solutions.append(solution)
    return {cell for cell in unknowns if all(solution[cell] == 0 for solution in solutions)}


class Suppressor:
    """Applies ``min_cell`` to the counts of one report, withholding the cells in ``withheld`` too (complements
    chosen by :func:`withheld_cells`), and remembers whether it withheld any."""

    def __init__(self, min_cell: int | None, withheld: set[Cell] | None = None) -> None:
        self.min_cell = min_cell
        self.withheld = withheld or set()
        self.any = False

    def __call__(self, value: int, cell: Cell | None = None) -> int | None:
        if suppressed(value, self.min_cell) or (cell is not None and cell in self.withheld):
            self.any = True
            return None
        return value


# --- the figures a reader can put side by side --------------------------------------------------------------------

# Counts that add up from sites to the network (distinct people, peaks and active volunteers do not).
ADDITIVE = (
    "visits",
    "anonymous_visits",
    *(f"purpose_{p}" for p in PURPOSES),
    *(f"support_{t}" for t in SUPPORT_TYPES),
    "shifts_filled",
    "shifts_missed",
    "waitlist_promotions",
    "session_held",
    "session_attendance",
    "event_held",
    "event_registrations",
    "event_attendance",
)
DAILY_ADDITIVE = ("visits", "attendance")


def summary_cell(scope_key: str, name: str) -> Cell:
    return ("summary", scope_key, name)


def daily_cell(scope_key: str, name: str, day: date) -> Cell:
    return ("daily", scope_key, name, day)


def report_family(
    summaries: Mapping[str, Mapping[str, int]],
    daily: Mapping[str, Mapping[date, Mapping[str, int]]],
    members: Mapping[str, int],
    days: Sequence[date],
    own: str,
) -> tuple[dict[Cell, int], list[Identity]]:
    """Every count of the reports of one range that a reader can combine, and the identities that tie them.

    ``summaries``: per scope (each site and NETWORK) the ADDITIVE counts; ``daily``: per scope and day the
    DAILY_ADDITIVE counts and (for ``own``, the requested scope) ``new_members``; ``members``: for ``own``,
    ``unduplicated_members`` and ``new_members``. The summary and daily reports of every site and of the network,
    in JSON or CSV, show these cells; the pattern of withheld cells is computed over all of them, so the reports
    of one range and ``min_cell`` withhold consistently whichever of them are published together."""
    scopes = sorted(set(summaries) | set(daily) | {NETWORK, own})
    sites = [scope for scope in scopes if scope != NETWORK]
    values: dict[Cell, int] = {}
    identities: list[Identity] = []
    for scope in scopes:
        for name in ADDITIVE:
            values[summary_cell(scope, name)] = summaries.get(scope, {}).get(name, 0)
        for day in days:
            for name in DAILY_ADDITIVE:
                values[daily_cell(scope, name, day)] = daily.get(scope, {}).get(day, {}).get(name, 0)

        def cell(name: str, scope: str = scope) -> Cell:
            return summary_cell(scope, name)

        purposes = tuple(cell(f"purpose_{p}") for p in PURPOSES)
        identities.append(Identity((cell("visits"),), purposes))
        for support in SUPPORT_TYPES:
            mapped = tuple(cell(f"purpose_{p}") for p in PURPOSES if SUPPORT_TYPE_OF_PURPOSE[p] == support)
            identities.append(Identity((cell(f"support_{support}"),), mapped))
        unsupported = tuple(cell(f"purpose_{p}") for p in PURPOSES if SUPPORT_TYPE_OF_PURPOSE[p] is None)
        identities.append(Identity((cell("visits"),), (*(cell(f"support_{t}") for t in SUPPORT_TYPES), *unsupported)))
        identities.append(Identity((cell("visits"),), tuple(daily_cell(scope, "visits", day) for day in days)))
        identities.append(
            Identity(
                (cell("session_attendance"), cell("event_attendance")),
                tuple(daily_cell(scope, "attendance", day) for day in days),
            )
        )
    for name in ADDITIVE:
        identities.append(Identity((summary_cell(NETWORK, name),), tuple(summary_cell(site, name) for site in sites)))
    for day in days:
        for name in DAILY_ADDITIVE:
            identities.append(
                Identity((daily_cell(NETWORK, name, day),), tuple(daily_cell(site, name, day) for site in sites))
            )
    # New and returning members split the distinct members of the requested scope, and its new members are the
    # sum of its days' (neither adds up across sites).
    unduplicated, new = members["unduplicated_members"], members["new_members"]
    values[summary_cell(own, "unduplicated_members")] = unduplicated
    values[summary_cell(own, "new_members")] = new
    values[summary_cell(own, "returning_members")] = unduplicated - new
    identities.append(
        Identity(
            (summary_cell(own, "unduplicated_members"),),
            (summary_cell(own, "new_members"), summary_cell(own, "returning_members")),
        )
    )
    for day in days:
        values[daily_cell(own, "new_members", day)] = daily.get(own, {}).get(day, {}).get("new_members", 0)
    identities.append(
        Identity((summary_cell(own, "new_members"),), tuple(daily_cell(own, "new_members", day) for day in days))
    )
    return values, identities
