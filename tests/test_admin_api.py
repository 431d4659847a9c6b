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
    deleted = client.delete(url, headers=AUTH)
    assert deleted.status_code == 200 and deleted.json()["deleted"] == created["id"]
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


# --- issue 8.5: inputs that answered 500, and the API during an outage -------------------------------------------


def _deep_list(depth: int) -> bytes:
    return b'{"name": ' + b"[" * depth + b"]" * depth + b"}"


def _deep_object(depth: int) -> bytes:
    return b'{"name": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


@pytest.mark.parametrize("case", ["ignore_tags [[null, null]]", "ignore_tags [{}]", "ignore_tags [1, 'a']",
                                  "ignore_tags 101", "ignore_tags long", "exclude_subjects [[1]]",
                                  "nested list 20000", "nested list 50", "nested object 50", "NUL in name",
                                  "NUL in store id", "NUL in a key", "NUL in a tag"])
def test_inputs_that_answered_500_are_422_and_save_nothing(client, case: str) -> None:
    raw = {
        "ignore_tags [[null, null]]": {"ignore_tags": [[None, None]]},
        "ignore_tags [{}]": {"ignore_tags": [{}]},
        "ignore_tags [1, 'a']": {"ignore_tags": [1, "a"]},
        "ignore_tags 101": {"ignore_tags": [f"t{i}" for i in range(101)]},
        "ignore_tags long": {"ignore_tags": ["x" * 201]},
        "exclude_subjects [[1]]": {"exclude_subjects": [[1]]},
        "NUL in name": {"name": "Contoso\x00HQ"},
        "NUL in store id": {"default_store_id": "store\x00"},
        "NUL in a key": {"na\x00me": "x"},
        "NUL in a tag": {"ignore_tags": ["hidden\x00"]},
    }.get(case)
    import json

    content = {"nested list 20000": _deep_list(20000), "nested list 50": _deep_list(50),
               "nested object 50": _deep_object(50)}.get(case) or json.dumps(body(**raw)).encode()
    headers = {**AUTH, "Content-Type": "application/json"}
    r = client.post("/api/integrations", content=content, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid"
    assert _count() == 0
    created = client.post("/api/integrations", json=body(), headers=AUTH).json()
    url = f"/api/integrations/{created['id']}"
    patch = content if case.startswith("nested") else json.dumps(raw).encode()
    r = client.patch(url, content=patch, headers=headers)
    assert r.status_code == 422, r.text
    assert client.get(url, headers=AUTH).json() == {k: v for k, v in created.items() if k != "hook_secret"}


def test_ids_and_query_values_with_nul_are_4xx(client) -> None:
    created = client.post("/api/integrations", json=body(), headers=AUTH).json()
    for path in ("/api/integrations/%00", "/api/integrations/a%00b/journal", "/api/integrations/" + "x" * 37,
                 f"/api/integrations/{created['id']}%00/status"):
        r = client.get(path, headers=AUTH)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)
    assert client.patch("/api/integrations/%00", json={"name": "x"}, headers=AUTH).status_code == 404
    assert client.delete("/api/integrations/%00", headers=AUTH).status_code == 404
    for query in ("status=%00", "status=" + "x" * 100, "limit=" + "9" * 5000):
        r = client.get(f"/api/integrations/{created['id']}/journal?{query}", headers=AUTH)
        assert r.status_code == 422, (query, r.text)
    assert client.get(f"/api/integrations/{created['id']}/journal?status=error", headers=AUTH).status_code == 200


CLOSED_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _assert_503(r, code: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"].isdigit()
    assert r.json()["error"]["code"] == code


def _rows() -> list[Integration]:
    with Session(current().engine) as s:
        return list(s.exec(select(Integration)).all())


def test_redis_down_nothing_saved_without_its_rooms_import_and_no_duplicate_on_retry(database_url) -> None:
    """`POST /api/integrations` and `PATCH` answered 500 but committed, without the rooms import; a retrying client
    made a duplicate. Now: 503 + Retry-After, and the change is not kept."""
    upgrade(database_url)
    with TestClient(create_app(make_settings(database_url, CLOSED_REDIS), run_worker=False),
                    raise_server_exceptions=False) as c:
        for _attempt in range(3):  # a client that retries
            _assert_503(c.post("/api/integrations", json=body(enabled=True), headers=AUTH), "queue_unavailable")
        assert _rows() == []
        # A disabled integration needs no import: saved.
        created = c.post("/api/integrations", json=body(), headers=AUTH)
        assert created.status_code == 201
        url = f"/api/integrations/{created.json()['id']}"
        _assert_503(c.patch(url, json={"enabled": True, "name": "Renamed"}, headers=AUTH), "queue_unavailable")
        [row] = _rows()
        assert (row.enabled, row.name) == (False, "Contoso HQ")
        # A change that triggers no import is saved as usual.
        assert c.patch(url, json={"block_minutes": 30}, headers=AUTH).json()["block_minutes"] == 30
        with Session(current().engine) as s:  # enabled behind the API's back, to reach the enqueueing endpoints
            row = s.get(Integration, created.json()["id"])
            row.enabled = True
            s.add(row)
            s.commit()
        _assert_503(c.patch(url, json={"ignore_tags": ["x"]}, headers=AUTH), "queue_unavailable")
        assert c.get(url, headers=AUTH).json()["ignore_tags"] == ["hidden", "maintenance"]
        for action, payload in (("sync-rooms", None), ("reconcile", None), ("backfill", {"since": "2030-01-01"})):
            _assert_503(c.post(f"{url}/{action}", json=payload, headers=AUTH), "queue_unavailable")
        assert len(_rows()) == 1


def test_redis_down_then_back_the_retry_creates_exactly_one(database_url, redis_url) -> None:
    """Same database, first a bridge whose Redis is unreachable, then one whose Redis is up: one integration, and
    its rooms import is in the queue."""
    upgrade(database_url)
    with TestClient(create_app(make_settings(database_url, CLOSED_REDIS), run_worker=False),
                    raise_server_exceptions=False) as c:
        _assert_503(c.post("/api/integrations", json=body(enabled=True), headers=AUTH), "queue_unavailable")
    with TestClient(create_app(make_settings(database_url, redis_url), run_worker=False),
                    raise_server_exceptions=False) as c:
        r = c.post("/api/integrations", json=body(enabled=True), headers=AUTH)
        assert r.status_code == 201
        assert [row.id for row in _rows()] == [r.json()["id"]]
        from tests.helpers import queued

        assert [m["args"] for m in queued(c.app.state.broker, "import_rooms")] == [[r.json()["id"]]]


def test_postgresql_unreachable_answers_503(redis_url) -> None:
    settings = make_settings("postgresql://roombridge@127.0.0.1:1/nowhere", redis_url)
    with TestClient(create_app(settings, run_worker=False), raise_server_exceptions=False) as c:
        _assert_503(c.get("/api/integrations", headers=AUTH), "database_unavailable")
        _assert_503(c.post("/api/integrations", json=body(enabled=True), headers=AUTH), "database_unavailable")
        _assert_503(c.get(f"/api/integrations/{'1' * 36}/journal", headers=AUTH), "database_unavailable")
        _assert_503(c.post(f"/api/integrations/{'1' * 36}/reconcile", headers=AUTH), "database_unavailable")
        # Bad input is still answered as such without the database.
        assert c.post("/api/integrations", json={"name": "x\x00"}, headers=AUTH).status_code == 422


def test_retry_limit_per_integration_is_set_shown_refused_out_of_range_and_reset(client) -> None:
    created = client.post("/api/integrations", json=body(retry_limit=3), headers=AUTH)
    assert created.status_code == 201, created.text
    integration_id = created.json()["id"]
    assert created.json()["retry_limit"] == 3
    for bad in (-1, 101, "3", 2.5, True):
        r = client.patch(f"/api/integrations/{integration_id}", json={"retry_limit": bad}, headers=AUTH)
        assert r.status_code == 422, (bad, r.text)
        assert "retry_limit" in r.text
    assert client.get(f"/api/integrations/{integration_id}", headers=AUTH).json()["retry_limit"] == 3
    r = client.patch(f"/api/integrations/{integration_id}", json={"retry_limit": None}, headers=AUTH)
    assert r.status_code == 200 and r.json()["retry_limit"] is None  # back to the deployment's RETRY_LIMIT
