"""The event catalogue: type names, strictness, and no personal data in any payload."""

from __future__ import annotations

import re
import typing
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from shared.contracts import CATALOGUE, EventData, load_catalogue, register

TYPE_NAME = re.compile(r"^(?P<service>[a-z][a-z0-9]*)\.(?P<name>[a-z][a-z0-9]*(?:_[a-z0-9]+)*)$")
PERSONAL_WORDS = {"nickname", "name", "phone", "email", "address", "note", "notes"}

CONTRACTS = sorted(load_catalogue().items())


def test_catalogue_has_the_checkin_events() -> None:
    assert {
        "checkin.member_registered",
        "checkin.visitor_checked_in",
        "checkin.visitor_checked_out",
        "checkin.member_erased",
    } <= set(load_catalogue())


@pytest.mark.parametrize(("event_type", "cls"), CONTRACTS, ids=[t for t, _ in CONTRACTS])
def test_type_is_service_dot_snake_case_and_owned_by_that_service(event_type: str, cls: type[EventData]) -> None:
    match = TYPE_NAME.match(event_type)
    assert match is not None, event_type
    assert cls.event_type == event_type
    assert cls.__module__ == f"shared.contracts.{match['service']}"


@pytest.mark.parametrize(("event_type", "cls"), CONTRACTS, ids=[t for t, _ in CONTRACTS])
def test_contract_forbids_extra_fields(event_type: str, cls: type[EventData]) -> None:
    assert cls.model_config.get("extra") == "forbid"
    with pytest.raises(ValidationError) as raised:
        cls.model_validate({"nickname": "Sunny"})
    assert any(error["type"] == "extra_forbidden" for error in raised.value.errors())


def _field_names(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    """Field names of a model and of any model nested in its fields."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for arg in [field.annotation, *typing.get_args(field.annotation)]:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= _field_names(arg, seen)
    return names


@pytest.mark.parametrize(("event_type", "cls"), CONTRACTS, ids=[t for t, _ in CONTRACTS])
def test_no_field_is_personal_data(event_type: str, cls: type[EventData]) -> None:
    names = _field_names(cls)
    assert names, "a contract with no fields"
    offending = {n for n in names if set(n.split("_")) & PERSONAL_WORDS or n in PERSONAL_WORDS}
    assert not offending, f"{event_type} carries personal-data fields: {offending}"


@pytest.mark.parametrize(("event_type", "cls"), CONTRACTS, ids=[t for t, _ in CONTRACTS])
def test_dataschema_names_type_and_version(event_type: str, cls: type[EventData]) -> None:
    assert cls.dataschema() == f"/rcc/schemas/{event_type}/v{cls.version}"
    assert cls.classification in ("internal", "sensitive")
    assert cls.summary


def test_payloads_are_frozen() -> None:
    cls = load_catalogue()["checkin.member_erased"]
    payload = cls.model_validate({"member_id": "0b5e9f3e-6a7d-4f2b-8c1e-3d4a5b6c7d8e", "erased_at": datetime.now(UTC)})
    with pytest.raises(ValidationError):
        payload.member_id = None  # type: ignore[misc]


def test_registering_a_type_twice_is_refused() -> None:
    existing = CATALOGUE["checkin.member_erased"]

    class Again(EventData):
        event_type = "checkin.member_erased"

    with pytest.raises(ValueError, match="registered twice"):
        register(Again)
    assert CATALOGUE["checkin.member_erased"] is existing
