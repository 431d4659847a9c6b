"""OpenAPI 3.1 at /api/openapi.json (issue 10.1): every /api route is in the document, and Schemathesis, run against
the ASGI app in-process on SQLite and on PostgreSQL, finds no 5xx, no response outside the document and no accepted
request the document forbids.

Half of the generated positive cases have their `{id}` replaced by a real integration (or journal entry) seeded
before the run, so that the handlers behind the 404 are exercised too. The integration points Graph, Entra ID and the
booking system at closed local ports: test-connection answers (fast) with every check failed, never a 5xx.
"""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlmodel import Session
from starlette.routing import Route
from starlette.testclient import TestClient

from app.platform.crypto import SecretBox
from app.platform.migrate import upgrade
from app.platform.models import JournalEntry
from app.sync.integrations import IntegrationCreate, new_integration
from app.web.app import create_app
from app.web.openapi import OPERATIONS, document
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, make_settings

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLOSED = "https://127.0.0.1:9"  # discard port: nothing listens, connections are refused at once
SEEDED: dict[str, str] = {}
_turn = itertools.count()
EXAMPLES = 20  # per operation and mode: bounded (the suite runs it on both databases)


def _app(database_url: str):
    upgrade(database_url)
    app = create_app(make_settings(database_url, graph_base_url=f"{CLOSED}/v1.0", graph_authority_host=CLOSED),
                     run_worker=False)
    from sqlalchemy import create_engine

    engine = create_engine(database_url)
    data = IntegrationCreate.model_validate(dict(
        name="Seeded", tenant_domain="contoso.com", tenant_id="11111111-2222-3333-4444-555555555555",
        client_id="66666666-7777-8888-9999-000000000000", client_secret="s", booking_base_url=CLOSED,
        booking_api_key="k", default_store_id="store-1", enabled=False))
    integration, _ = new_integration(data, SecretBox(SECRET_KEY))
    with Session(engine, expire_on_commit=False) as s:
        s.add(integration)
        s.commit()
        entry = JournalEntry(integration_id=integration.id, direction="booking_to_outlook", action="gave_up",
                             status="error", message="seeded", loan_id="ln_1")
        s.add(entry)
        s.commit()
        SEEDED.update(integration=integration.id, entry=entry.id)
    engine.dispose()
    return app


def _fuzz(operation, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.generate], derandomize=True, database=None)
    def run(case) -> None:
        if mode == GenerationMode.POSITIVE and case.path_parameters and "id" in case.path_parameters \
                and next(_turn) % 2 == 0:
            seeded = "entry" if case.path.startswith("/api/journal/") else "integration"
            case.path_parameters["id"] = SEEDED[seeded]
        # positive_data_acceptance is left out: the document cannot say everything the validators check (a GUID's
        # hexadecimal digits, a block that divides a day): a valid-looking body may rightly be a 422.
        case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])

    run()


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_schemathesis_finds_nothing(db: str, request: pytest.FixtureRequest, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'rb.db'}" if db == "sqlite" else request.getfixturevalue("pg_url")
    api = schemathesis.openapi.from_asgi("/api/openapi.json", _app(url))
    failures: list[str] = []
    operations = [result.ok() for result in api.get_all_operations()]
    # Schemathesis leaves out the document's own route.
    assert {(o.method.upper(), o.path) for o in operations} == set(OPERATIONS) - {("GET", "/api/openapi.json")}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode == GenerationMode.NEGATIVE and not operation.body and not operation.query \
                    and not operation.path_parameters:
                continue  # nothing to negate
            try:
                _fuzz(operation, mode)
            except Exception as e:  # noqa: BLE001 - collected: one report for every operation
                inner = "; ".join(str(x)[:2000] for x in getattr(e, "exceptions", ()))  # hypothesis' Flaky names them
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {e} {inner}")
    assert not failures, "\n\n".join(failures)


def test_every_api_route_is_in_the_document(sqlite_url) -> None:
    upgrade(sqlite_url)
    app = create_app(make_settings(sqlite_url), run_worker=False)
    served = {(method, route.path) for route in app.routes if isinstance(route, Route)
              and route.path.startswith("/api") for method in (route.methods or set()) - {"HEAD"}}
    documented = {(method, path) for path, ops in document()["paths"].items() for method in
                  (m.upper() for m in ops)}
    assert served == documented == set(OPERATIONS)
    with TestClient(app) as client:
        r = client.get("/api/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer",
                                                               "description": "the ADMIN_TOKEN setting"}
    create = doc["paths"]["/api/integrations"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/IntegrationCreate"}
    # The request schema is the validating model's own: a field added to the model is in the document.
    assert set(IntegrationCreate.model_fields) == set(doc["components"]["schemas"]["IntegrationCreate"]["properties"])
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "401" in op["responses"] or path == "/api/openapi.json", (method, path)
            assert op["responses"]["503"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}
