"""Admin JSON API (SPEC §2): bearer token, 422 naming each bad field with nothing saved, write-only secrets."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select
from starlette.testclient import TestClient

from app.platform.crypto import SecretBox
from app.platform.migrate import upgrade
from app.platform.models import Integration
from app.sync.runtime import current
from app.web.app import create_app
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, make_settings

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GRAPH_SECRET = "graph-client-secret-value"
BOOKING_KEY = "booking-api-key-value"


def body(**kw) -> dict:
    data = dict(name="Contoso HQ", tenant_domain="contoso.com", tenant_id="11111111-2222-3333-4444-555555555555",
                client_id="66666666-7777-8888-9999-000000000000", client_secret=GRAPH_SECRET,
                booking_base_url="https://booking.example.com", booking_api_key=BOOKING_KEY,
                default_store_id="store-1", ignore_tags="Hidden, Maintenance")
    data.update(kw)
    return data


@pytest.fixture
def client(database_url):
    settings = make_settings(database_url)
    upgrade(database_url)
    with TestClient(create_app(settings, run_worker=False), raise_server_exceptions=False) as c:
        yield c


def _count() -> int:
    with Session(current().engine) as s:
        return len(s.exec(select(Integration)).all())


def test_requires_the_admin_token(client) -> None:
    assert client.get("/api/integrations").status_code == 401
    assert client.get("/api/integrations", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.post("/api/integrations", json=body(), headers={"Authorization": "Basic " + ADMIN_TOKEN})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert _count() == 0


def test_create_shows_the_hook_secret_once_and_never_the_secrets(client) -> None:
    r = client.post("/api/integrations", json=body(), headers=AUTH)
    assert r.status_code == 201, r.text
    created = r.json()
    assert len(created["hook_secret"]) >= 32
    assert created["ignore_tags"] == ["hidden", "maintenance"]
    assert created["client_secret_set"] and created["booking_api_key_set"]
    fetched = client.get(f"/api/integrations/{created['id']}", headers=AUTH)
    listed = client.get("/api/integrations", headers=AUTH)
    for text in (r.text, fetched.text, listed.text):
        assert GRAPH_SECRET not in text and BOOKING_KEY not in text
    assert "hook_secret" not in fetched.json()
    # Stored encrypted, not in clear.
    with Session(current().engine) as s:
        row = s.get(Integration, created["id"])
        assert GRAPH_SECRET not in row.client_secret_enc
        assert SecretBox(SECRET_KEY).decrypt(row.client_secret_enc) == GRAPH_SECRET
        assert SecretBox(SECRET_KEY).decrypt(row.hook_secret_enc) == created["hook_secret"]


def test_bad_input_is_422_naming_each_field_and_saves_nothing(client) -> None:
    bad = body(tenant_domain="not a domain", client_id="nope", booking_base_url="http://booking.example.com",
               block_minutes=7, direction="sideways", default_user_email="x", unknown_field=1)
    r = client.post("/api/integrations", json=bad, headers=AUTH)
    assert r.status_code == 422
    fields = {f["field"] for f in r.json()["error"]["fields"]}
    assert {"tenant_domain", "client_id", "booking_base_url", "block_minutes", "direction",
            "default_user_email", "unknown_field"} <= fields
    assert GRAPH_SECRET not in r.text
    assert _count() == 0


def test_missing_fields_are_named(client) -> None:
    r = client.post("/api/integrations", json={"name": "x"}, headers=AUTH)
    assert r.status_code == 422
    assert {"tenant_domain", "client_secret", "booking_api_key"} <= {f["field"] for f in r.json()["error"]["fields"]}


@pytest.mark.parametrize("raw", [b"{", b"[1]", b'"x"'])
def test_malformed_body(client, raw) -> None:
    r = client.post("/api/integrations", content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code in (400, 422)
    assert _count() == 0


def test_patch_changes_only_given_fields_and_rejects_bad_ones_atomically(client) -> None:
    created = client.post("/api/integrations", json=body(), headers=AUTH).json()
    url = f"/api/integrations/{created['id']}"
    r = client.patch(url, json={"block_minutes": 30, "exclude_subjects": ["*private*"]}, headers=AUTH)
    assert r.status_code == 200 and r.json()["block_minutes"] == 30 and r.json()["name"] == "Contoso HQ"
    r = client.patch(url, json={"block_minutes": 60, "horizon_days": 0}, headers=AUTH)
    assert r.status_code == 422
    assert client.get(url, headers=AUTH).json()["block_minutes"] == 30


def test_rotate_hook_secret_and_delete(client) -> None:
    created = client.post("/api/integrations", json=body(), headers=AUTH).json()
    url = f"/api/integrations/{created['id']}"
    rotated = client.post(url + "/rotate-hook-secret", headers=AUTH).json()["hook_secret"]
    assert rotated != created["hook_secret"]
    assert client.delete(url, headers=AUTH).status_code == 204
    assert client.get(url, headers=AUTH).status_code == 404
    assert client.delete(url, headers=AUTH).status_code == 404


def test_unknown_integration_is_404_json(client) -> None:
    r = client.get("/api/integrations/nope/journal", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_ops_endpoints(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    assert "roombridge_notifications_total" in client.get("/metrics").text
