"""The contract models and the published OpenAPI document agree with each other and with the simulator."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError
from starlette.routing import Route

from app.core import contract
from app.core.contract import HookPayload, Loan, LoanCreate, LoanPatch, PlaceUpsert, hook_type_for, utc_iso
from simulators.booking import BookingSimulator

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "booking-api.openapi.yaml"
MODELS: list[type[BaseModel]] = [
    contract.Requester, contract.LoanItem, contract.LoanItemRef, contract.Origin, contract.Loan, contract.LoanCreate,
    contract.LoanPatch, contract.CancelRequest, contract.WorkingHours, contract.PlaceUpsert, contract.Place,
    contract.AvailabilityResponse, contract.LoanPage, contract.HookPayload, contract.ErrorBody,
]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI.read_text())


def _object(schema: dict[str, Any], schemas: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Property names and required names of a component, following `allOf` and `$ref`."""
    if "$ref" in schema:
        return _object(schemas[schema["$ref"].rsplit("/", 1)[1]], schemas)
    props, required = set(schema.get("properties", {})), set(schema.get("required", []))
    for part in schema.get("allOf", []):
        more_props, more_required = _object(part, schemas)
        props |= more_props
        required |= more_required
    return props, required


def test_openapi_is_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")


def test_every_simulator_route_is_documented(spec: dict[str, Any]) -> None:
    sim = BookingSimulator()
    try:
        served = {(r.path, m.lower()) for r in sim.app.routes if isinstance(r, Route) for m in r.methods or ()}
    finally:
        sim.stop()
    served -= {(path, "head") for path, _ in served}  # Starlette adds HEAD to GET routes
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops if method != "parameters"}
    assert served == documented


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_schemas_match_the_models(spec: dict[str, Any], model: type[BaseModel]) -> None:
    schemas = spec["components"]["schemas"]
    props, required = _object(schemas[model.__name__], schemas)
    assert props == set(model.model_fields)
    assert {name for name, f in model.model_fields.items() if f.is_required()} <= required


def test_times_are_normalised_to_utc_with_an_offset() -> None:
    start = datetime(2030, 3, 4, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    loan = LoanCreate(requester={"email": "a@b.c", "name": "A"}, start=start, end=start + timedelta(hours=1),
                      store_id="s", items=[{"id": "pl_1"}])
    assert loan.model_dump(mode="json")["start"] == "2030-03-04T09:00:00+00:00"
    assert utc_iso(start) == "2030-03-04T09:00:00+00:00"
    with pytest.raises(ValueError):
        utc_iso(datetime(2030, 3, 4))
    with pytest.raises(ValidationError):
        LoanPatch(start=datetime(2030, 3, 4))


def test_place_floor_and_defaults() -> None:
    place = PlaceUpsert(email="room@contoso.com", name="Room", floor=3)
    assert place.floor == "3" and place.tags == [] and place.active is True
    with pytest.raises(ValidationError):
        PlaceUpsert(email="not-an-email", name="Room")


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    body = {"type": "loan.updated", "extra": 1, "loan": {
        "id": "ln_1", "number": "PR-1", "status": "approved", "requester": {"email": "a@b.c", "name": "A"},
        "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00+01:00", "store_id": "s", "url": "u",
        "items": [{"kind": "asset", "id": "as_1", "name": "Projector", "colour": "grey"}],
        "version": 2, "updated_at": "2030-01-01T09:00:00Z", "new_field": True}}
    hook = HookPayload.model_validate(body)
    assert hook.loan.end == hook.loan.start and hook.loan.origin is None and hook.loan.place_ids == []


@pytest.mark.parametrize(("status", "expected"), [
    ("new", "loan.updated"), ("approved", "loan.updated"), ("returned", "loan.updated"),
    ("cancelled", "loan.cancelled"), ("refused", "loan.refused"),
])
def test_hook_type_for(status: str, expected: str) -> None:
    loan = Loan(id="ln", number="PR-1", status=status, requester={"email": "a@b.c", "name": "A"},
                start="2030-01-01T10:00:00Z", end="2030-01-01T11:00:00Z", store_id="s", items=[], url="u",
                version=1, updated_at="2030-01-01T09:00:00Z")
    assert hook_type_for(loan) == expected


def test_status_sets_partition_the_statuses() -> None:
    assert contract.ACTIVE_STATUSES | contract.CLOSED_STATUSES == set(Loan.model_fields["status"].annotation.__args__)
    assert not contract.ACTIVE_STATUSES & contract.CLOSED_STATUSES
