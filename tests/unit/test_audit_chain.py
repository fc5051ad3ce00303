"""The audit hash chain: verification finds the first entry that does not hold; appending continues the chain."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.audit import handlers
from services.audit.commands import AppendToAuditLog
from services.audit.domain import GENESIS_HASH, ChainCheck, ChainLink, chain_hash
from services.audit.models import NewEntry
from services.audit.reports.facts import LoggedEvent
from shared.clock import FixedClock
from shared.events import MalformedEvent, ReceivedEvent, canonical_json, envelope

AT = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)


def cloudevent(n: int, *, event_id: uuid.UUID | None = None, site: str = "downtown") -> dict[str, Any]:
    return envelope(
        event_id=event_id or uuid.UUID(int=n),
        source="/rcc/checkin",
        type_="checkin.visitor_checked_in" if n % 2 else "checkin.visitor_checked_out",
        time=AT + timedelta(minutes=n),
        subject=str(uuid.UUID(int=1000 + n)),
        site_id=site,
        data={"visit_id": str(uuid.UUID(int=1000 + n)), "purpose": "drop_in", "place": "Café"},
        dataschema="/rcc/schemas/checkin.visitor_checked_in/v1",
        classification="sensitive",
        sequence=n,
    )


def build_chain(count: int) -> list[ChainLink]:
    links = []
    head = GENESIS_HASH
    for sequence in range(1, count + 1):
        ce = cloudevent(sequence)
        body = canonical_json(ce)
        link_hash = chain_hash(head, body)
        links.append(ChainLink(sequence, head, link_hash, body.decode(), ce["type"], ce["siteid"], ce["id"]))
        head = link_hash
    return links


def check(links: list[ChainLink]) -> ChainCheck:
    result = ChainCheck()
    result.feed(links)
    return result


# chain_hash


def test_chain_hash_is_sha256_over_previous_hash_newline_body() -> None:
    body = b'{"a":1}'
    assert chain_hash(GENESIS_HASH, body) == hashlib.sha256(GENESIS_HASH.encode() + b"\n" + body).hexdigest()
    assert chain_hash("f" * 64, body) != chain_hash(GENESIS_HASH, body)


# ChainCheck on an intact chain


def test_intact_chain_is_ok_with_the_last_hash_as_head() -> None:
    links = build_chain(5)

    result = check(links)

    assert result.ok
    assert result.first_bad_sequence is None
    assert result.entries == 5
    assert result.head_hash == links[-1].hash


def test_empty_chain_is_ok_at_genesis() -> None:
    result = check([])
    assert result.ok
    assert result.entries == 0
    assert result.head_hash == GENESIS_HASH


def test_chain_fed_in_chunks_is_checked_as_one() -> None:
    links = build_chain(7)
    result = ChainCheck()
    for start in range(0, 7, 3):
        result.feed(links[start : start + 3])
    assert result.ok
    assert result.entries == 7
    assert result.head_hash == links[-1].hash


# Tampering: the first entry that does not hold is reported


def tampered(links: list[ChainLink], index: int, **changes: Any) -> list[ChainLink]:
    copy = list(links)
    copy[index] = replace(copy[index], **changes)
    return copy


def flip_one_byte(text: str) -> str:
    at = text.index("drop_in")
    return text[:at] + "Drop_in" + text[at + 7 :]


@pytest.mark.parametrize("index", [0, 2, 5])
def test_one_changed_body_byte_is_found(index: int) -> None:
    links = build_chain(6)
    result = check(tampered(links, index, body=flip_one_byte(links[index].body)))
    assert not result.ok
    assert result.first_bad_sequence == index + 1


def test_a_changed_stored_hash_is_found() -> None:
    links = build_chain(5)
    result = check(tampered(links, 2, hash="a" * 64))
    assert result.first_bad_sequence == 3


def test_a_changed_prev_hash_is_found() -> None:
    links = build_chain(5)
    result = check(tampered(links, 3, prev_hash=links[1].hash))
    assert result.first_bad_sequence == 4


def test_a_rehashed_body_still_breaks_the_next_link() -> None:
    # Someone edits entry 2 and recomputes its hash: entry 2 holds, but entry 3 no longer points at it.
    links = build_chain(4)
    body = flip_one_byte(links[1].body)
    result = check(tampered(links, 1, body=body, hash=chain_hash(links[1].prev_hash, body.encode())))
    assert result.first_bad_sequence == 3


@pytest.mark.parametrize(
    "column",
    [
        {"type": "checkin.member_erased"},
        {"site_id": "uptown"},
        {"event_id": str(uuid.UUID(int=999))},
    ],
)
def test_a_column_that_disagrees_with_the_hashed_body_is_found(column: dict[str, str]) -> None:
    links = build_chain(4)
    result = check(tampered(links, 1, **column))
    assert result.first_bad_sequence == 2


def test_a_body_that_is_not_canonical_is_found() -> None:
    # Same JSON, spaced out, hashed correctly: still not the bytes the chain is defined over.
    links = build_chain(3)
    spaced = json.dumps(json.loads(links[1].body), indent=1)
    prev = links[1].prev_hash
    result = check(tampered(links, 1, body=spaced, hash=chain_hash(prev, spaced.encode())))
    assert result.first_bad_sequence == 2


def test_a_body_that_is_not_json_is_found() -> None:
    links = build_chain(3)
    prev = links[2].prev_hash
    result = check(tampered(links, 2, body="not json", hash=chain_hash(prev, b"not json")))
    assert result.first_bad_sequence == 3


def test_two_swapped_entries_are_found() -> None:
    links = build_chain(5)
    swapped = [links[0], links[2], links[1], links[3], links[4]]
    result = check(swapped)
    assert result.first_bad_sequence == 3  # the entry that arrived out of place


def test_two_entries_with_swapped_contents_are_found() -> None:
    # Sequence numbers stay in place, the rest of entries 2 and 3 trade places.
    links = build_chain(5)
    second = replace(links[2], sequence=2)
    third = replace(links[1], sequence=3)
    result = check([links[0], second, third, links[3], links[4]])
    assert result.first_bad_sequence == 2


def test_a_gap_in_sequence_is_found() -> None:
    links = build_chain(5)
    result = check([links[0], links[1], links[3], links[4]])
    assert result.first_bad_sequence == 4


def test_a_renumbered_sequence_is_found() -> None:
    # The sequence column is not hashed: hashes all still link up, only the numbering is off.
    links = build_chain(5)
    result = check(tampered(links, 2, sequence=7))
    assert result.first_bad_sequence == 7


def test_a_chain_that_does_not_start_at_one_is_found() -> None:
    links = [replace(link, sequence=link.sequence + 1) for link in build_chain(3)]
    result = check(links)
    assert result.first_bad_sequence == 2


def test_a_deleted_last_entry_leaves_a_shorter_intact_chain() -> None:
    # Truncation at the end cannot be seen from the chain alone; the head hash is what reveals it.
    links = build_chain(5)
    result = check(links[:4])
    assert result.ok
    assert result.head_hash != links[-1].hash


def test_only_the_first_bad_entry_is_reported() -> None:
    links = build_chain(6)
    broken = tampered(tampered(links, 1, hash="b" * 64), 4, hash="c" * 64)
    result = check(broken)
    assert result.first_bad_sequence == 2
    assert result.entries == 6


# append_to_audit_log against a fake AuditUnitOfWork


class FakeAuditRepository:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    async def lock_chain_and_read_head(self) -> tuple[int, str]:
        if not self.rows:
            return 0, GENESIS_HASH
        last = self.rows[-1]
        return last["sequence"], last["hash"]

    async def recorded_ids(self, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        recorded = {row["event_id"] for row in self.rows}
        return {event_id for event_id in event_ids if event_id in recorded}

    async def append(self, entries: list[NewEntry]) -> None:
        self.rows.extend(asdict(entry) for entry in entries)

    def chain(self) -> list[ChainLink]:
        """The links as AuditRepository.links reads them back (event_id column is a UUID)."""
        return [
            ChainLink(r["sequence"], r["prev_hash"], r["hash"], r["body"], r["type"], r["site_id"], str(r["event_id"]))
            for r in self.rows
        ]

    async def links(self, chunk_rows: int) -> AsyncIterator[list[ChainLink]]:
        chain = self.chain()
        for start in range(0, len(chain), chunk_rows):
            yield chain[start : start + chunk_rows]


class FakeProjector:
    def __init__(self) -> None:
        self.batches: list[list[LoggedEvent]] = []

    async def apply(self, events: list[LoggedEvent]) -> None:
        self.batches.append(list(events))


class FakeAuditUnitOfWork:
    def __init__(self) -> None:
        self.audit = FakeAuditRepository()
        self.projector = FakeProjector()


def received(n: int, **kwargs: Any) -> ReceivedEvent:
    return ReceivedEvent.from_body(canonical_json(cloudevent(n, **kwargs)))


async def append(uow: FakeAuditUnitOfWork, events: list[ReceivedEvent], clock: FixedClock):
    return await handlers.append_to_audit_log(AppendToAuditLog(events), uow=uow, clock=clock)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(AT + timedelta(hours=1))


async def test_append_starts_the_chain_at_genesis(clock: FixedClock) -> None:
    uow = FakeAuditUnitOfWork()

    result = await append(uow, [received(1), received(2), received(3)], clock)

    assert (result.appended, result.duplicates, result.head_sequence) == (3, 0, 3)
    rows = uow.audit.rows
    assert [r["sequence"] for r in rows] == [1, 2, 3]
    assert rows[0]["prev_hash"] == GENESIS_HASH
    assert rows[0]["body"] == canonical_json(cloudevent(1)).decode()
    assert rows[0]["recorded_at"] == clock.now()
    assert rows[1]["event_id"] == uuid.UUID(int=2)
    assert rows[1]["type"] == "checkin.visitor_checked_out"
    assert rows[1]["site_id"] == "downtown"
    assert rows[1]["time"] == AT + timedelta(minutes=2)
    assert check(uow.audit.chain()).ok


async def test_append_projects_exactly_the_events_it_appended_as_parsed_on_arrival(clock: FixedClock) -> None:
    uow = FakeAuditUnitOfWork()
    await append(uow, [received(1)], clock)
    batch = [received(1), received(2), received(2), received(3)]

    await append(uow, batch, clock)
    await append(uow, [received(3)], clock)  # nothing appended: nothing projected

    assert [[event.event_id for event in events] for events in uow.projector.batches] == [
        [uuid.UUID(int=1)],
        [uuid.UUID(int=2), uuid.UUID(int=3)],
    ]
    projected = uow.projector.batches[1]
    assert [(e.type, e.site_id, e.time) for e in projected] == [
        (batch[1].type, batch[1].site_id, batch[1].time),
        (batch[3].type, batch[3].site_id, batch[3].time),
    ]
    # The data the consumer parsed, not a parse of the stored body again.
    assert projected[0].data is batch[1].data and projected[1].data is batch[3].data


async def test_append_skips_duplicates_in_the_batch_and_already_recorded_events(clock: FixedClock) -> None:
    uow = FakeAuditUnitOfWork()
    await append(uow, [received(1), received(2)], clock)
    head_before = uow.audit.rows[-1]["hash"]

    result = await append(uow, [received(2), received(3), received(3), received(1), received(4)], clock)

    assert (result.appended, result.duplicates, result.head_sequence) == (2, 3, 4)
    rows = uow.audit.rows
    assert [r["sequence"] for r in rows] == [1, 2, 3, 4]
    assert [r["event_id"] for r in rows] == [uuid.UUID(int=n) for n in (1, 2, 3, 4)]
    assert rows[2]["prev_hash"] == head_before
    chain = check(uow.audit.chain())
    assert chain.ok
    assert chain.entries == 4
    assert chain.head_hash == rows[-1]["hash"]


async def test_a_batch_of_only_duplicates_appends_nothing(clock: FixedClock) -> None:
    uow = FakeAuditUnitOfWork()
    await append(uow, [received(1)], clock)

    result = await append(uow, [received(1), received(1)], clock)

    assert (result.appended, result.duplicates, result.head_sequence) == (0, 2, 1)
    assert len(uow.audit.rows) == 1


async def test_append_continues_from_an_existing_head(clock: FixedClock) -> None:
    uow = FakeAuditUnitOfWork()
    for n in range(1, 6):
        await append(uow, [received(n)], clock)

    chain = check(uow.audit.chain())

    assert chain.ok
    assert [r["sequence"] for r in uow.audit.rows] == [1, 2, 3, 4, 5]
    assert all(r["prev_hash"] == p["hash"] for p, r in zip(uow.audit.rows, uow.audit.rows[1:], strict=False))


async def test_verify_audit_log_reads_the_chain_in_chunks(clock: FixedClock) -> None:
    uow = FakeAuditUnitOfWork()
    await append(uow, [received(n) for n in range(1, 8)], clock)

    result = await handlers.verify_audit_log(uow, chunk_rows=3)  # type: ignore[arg-type]

    assert result.ok
    assert result.entries == 7
    assert result.head_hash == uow.audit.rows[-1]["hash"]


async def test_verify_audit_log_reports_a_tampered_row(clock: FixedClock) -> None:
    uow = FakeAuditUnitOfWork()
    await append(uow, [received(n) for n in range(1, 6)], clock)
    uow.audit.rows[3]["body"] = flip_one_byte(uow.audit.rows[3]["body"])

    result = await handlers.verify_audit_log(uow, chunk_rows=2)  # type: ignore[arg-type]

    assert not result.ok
    assert result.first_bad_sequence == 4


async def test_an_event_id_in_a_non_canonical_spelling_is_refused_before_it_can_reach_the_chain() -> None:
    # The audit log files an entry by its id (a UUID column, read back lower case) and hashes the body as
    # received; an id spelled otherwise would later read as tampering, so such a message is malformed.
    upper = cloudevent(1, event_id=uuid.UUID("6f1c2a52-8d4e-4c1a-9a57-2b0d7e1f3c11"))
    upper["id"] = "6F1C2A52-8D4E-4C1A-9A57-2B0D7E1F3C11"
    with pytest.raises(MalformedEvent, match="lowercase"):
        ReceivedEvent.from_body(canonical_json(upper))
