"""The status page (issue 10.7) driven in real headless Chromium (Debian's `chromium` + `chromedriver`, through
Selenium): sign in, see the integration and its subscriptions, test the connection, see what a backfill from a date
covers before starting it, see an error entry, retry it and see it go through. A screenshot of the page with the
error is kept in docs/status-page.png.

Plus the page's guards without a browser: no session → sign-in, a wrong token → 401, a form without its CSRF token
→ 403 (nothing done).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app.platform.migrate import upgrade
from app.web.app import create_app
from app.workers import actors
from app.workers.broker import start_worker
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.test_rooms_import import JUPITER, Live, live_fixture  # noqa: F401 - fixture
from tests.test_worklist import ALICE, deny, error_of, link_of, slot, wait_for

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
# The screenshot kept in docs/ is refreshed on request (UPDATE_SCREENSHOT=1), so that a test run leaves the tree clean.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "status-page.png"


@pytest.fixture(name="stack_urls")
def embedded_only(tmp_path) -> tuple[str, None]:
    """The page is the same on both stacks; the browser test runs on the embedded default."""
    return f"sqlite:///{tmp_path / 'rb.db'}", None


@pytest.fixture
def browser() -> Iterator[object]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        message = "chromium and chromedriver are needed (apt-get install chromium chromium-driver; .ci/run does)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def test_sign_in_see_the_integration_retry_an_error_and_see_it_succeed(live: Live, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    live.import_and_subscribe()
    live.clear()
    worker = start_worker(live.broker, 2)
    try:
        driver.get(live.base_url + "/status")
        assert driver.current_url.endswith("/status/sign-in")
        driver.find_element(By.ID, "token").send_keys("not the token")
        driver.find_element(By.ID, "sign-in").click()
        assert "not the admin token" in driver.find_element(By.ID, "sign-in-error").text
        driver.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
        driver.find_element(By.ID, "sign-in").click()
        section = driver.find_element(By.ID, f"integration-{live.integration_id}")
        assert "Contoso (simulated)" in section.text
        assert JUPITER in section.find_element(By.CLASS_NAME, "subscriptions").text

        section.find_element(By.XPATH, ".//button[text()='Test connection']").click()
        assert "all checks passed" in driver.find_element(By.ID, "flash").text
        assert "token" in driver.find_element(By.CLASS_NAME, "connection").text

        # Backfill from a date: the page counts what it covers before the admin confirms.
        live.sandbox.graph.create_meeting(ALICE["email"], "Comité", *slot(3, 9), rooms=[JUPITER])
        since = f"{datetime.now(UTC) - timedelta(days=2):%Y-%m-%d}"
        section = driver.find_element(By.ID, f"integration-{live.integration_id}")
        form = section.find_element(By.CLASS_NAME, "backfill")
        driver.execute_script("arguments[0].value = arguments[1]", form.find_element(By.NAME, "since"), since)
        form.find_element(By.CLASS_NAME, "backfill-count").click()
        wait_for("the backfill's count", lambda: driver.find_elements(By.ID, "backfill-meetings"))
        assert driver.find_element(By.ID, "backfill-meetings").text == "1"
        assert driver.find_element(By.ID, "backfill-events").text == "1"
        assert driver.find_element(By.ID, "backfill-loans").text.isdigit()
        assert f"From {since}: 1 meeting(s)" in driver.find_element(By.ID, "backfill-summary").text
        assert live.count("reconcile_room") == 0  # counted, not started
        driver.find_element(By.ID, "backfill-start").click()
        flash = wait_for("the page after the confirmation", lambda: driver.find_elements(By.ID, "flash"))
        assert f"Backfill from {since} queued for 2 room(s)" in flash[0].text

        deny(live, "Calendars.ReadWrite")
        loan = live.sandbox.booking.create_loan(ALICE, *slot(5, 9), places=[JUPITER])
        actors.process_loan.send(live.integration_id, loan.id)
        failed = wait_for("the failure journaled", lambda: error_of(live, loan.id))
        driver.get(live.base_url + "/status")
        row = driver.find_element(By.ID, f"entry-{failed.id}")
        assert loan.id in row.text and "403" in row.text
        shot = DOCS_SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") else tmp_path / "status-page.png"
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1400, max(900, int(height) + 400))
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

        deny(live)  # the admin fixed the permission, then presses Retry
        row.find_element(By.CLASS_NAME, "retry").click()
        assert "Retry queued" in driver.find_element(By.ID, "flash").text

        def succeeded() -> bool:
            driver.get(live.base_url + "/status")
            return bool(driver.find_elements(By.ID, f"no-errors-{live.integration_id}"))

        wait_for("the error gone from the page", succeeded)
        link = link_of(live, loan.id)
        assert link is not None and link.organizer_event_id  # it went through: the event exists in Outlook
    finally:
        worker.stop()


@pytest.fixture
def client(sqlite_url) -> Iterator[TestClient]:
    upgrade(sqlite_url)
    with TestClient(create_app(make_settings(sqlite_url), run_worker=False), follow_redirects=False) as c:
        yield c


def test_the_page_needs_a_session_and_forms_their_csrf_token(client: TestClient) -> None:
    r = client.get("/status")
    assert r.status_code == 303 and r.headers["location"] == "/status/sign-in"
    r = client.get("/status/integrations/x/backfill?since=2026-01-01")  # the count needs a session too
    assert r.status_code == 303 and r.headers["location"] == "/status/sign-in"
    assert client.post("/status/sign-in", data={"token": "wrong"}).status_code == 401
    r = client.post("/status/sign-in", data={"token": ADMIN_TOKEN})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and ADMIN_TOKEN.lower() not in cookie
    page = client.get("/status")
    assert page.status_code == 200 and "No integration yet" in page.text
    # A forged form (no CSRF token, or another one) does nothing.
    assert client.post("/status/sign-out", data={}).status_code == 403
    assert client.post("/status/journal/x/retry", data={"csrf": "0" * 64}).status_code == 403
    client.cookies.clear()
    assert client.get("/status").status_code == 303
    client.cookies.set("roombridge_session", "1.forged", path="/status")
    assert client.get("/status").status_code == 303


def test_error_entries_show_the_meetings_subject_when_kept(client: TestClient) -> None:
    from sqlmodel import Session

    from app.platform.models import JournalEntry
    from app.sync.runtime import current
    from tests.helpers import seed_subscription

    integration, _, _ = seed_subscription(current().engine)
    with Session(current().engine) as s:
        s.add(JournalEntry(integration_id=integration.id, direction="outlook_to_booking", action="fail",
                           status="error", message="BookingUnavailable", ical_uid="uid-1", subject="Comité <b>x</b>"))
        s.add(JournalEntry(integration_id=integration.id, direction="outlook_to_booking", action="fail",
                           status="error", message="BookingUnavailable", ical_uid="uid-2"))
        s.commit()
    assert client.post("/status/sign-in", data={"token": ADMIN_TOKEN}).status_code == 303
    page = client.get("/status").text
    assert '<b class="subject">Comité &lt;b&gt;x&lt;/b&gt;</b>' in page  # shown, escaped
    assert page.count('class="subject"') == 1  # the entry without a kept subject shows none
    # The backfill's count page: a bad date is a 422, never a 500.
    r = client.get(f"/status/integrations/{integration.id}/backfill?since=nope")
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "since"
