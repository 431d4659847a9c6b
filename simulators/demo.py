"""`roombridge demo`: the real bridge (embedded mode) against a simulated tenant and booking system, and a short story.

Nothing to configure: a throw-away SQLite database, generated secrets, a test CA for the simulated Microsoft login.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx

from app.core.timezones import parse_graph_datetime
from app.platform.logging import configure_logging
from app.platform.migrate import upgrade
from app.platform.settings import load_settings
from app.web.app import create_app
from simulators.sandbox import Sandbox
from simulators.server import ServerThread, free_port

T = TypeVar("T")
PARIS = ZoneInfo("Europe/Paris")


def say(text: str = "") -> None:
    print(text, flush=True)


def _wait(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"the demo timed out waiting for {what}")


def _port(wanted: int) -> int:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", wanted))
        return wanted
    except OSError:
        return free_port()


def run_demo(port: int = 8000, keep_serving: bool = True) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="roombridge-demo-"))
    sandbox = Sandbox.start()
    # The bridge runs in this process: trust the sandbox's CA like a deployment trusts its corporate CA.
    os.environ.update({"SSL_CERT_FILE": str(sandbox.ca.ca_file), "REQUESTS_CA_BUNDLE": str(sandbox.ca.ca_file)})
    port = _port(port)
    admin_token = os.environ.get("ADMIN_TOKEN") or secrets.token_urlsafe(24)
    settings = load_settings(
        database_url=f"sqlite:///{workdir / 'roombridge.db'}", redis_url=None, admin_token=admin_token,
        secret_key=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(32),
        public_base_url=f"http://127.0.0.1:{port}", graph_base_url=sandbox.graph.graph_base_url,
        graph_authority_host=sandbox.graph.authority_host, log_format="console", log_level="warning",
    )
    configure_logging(settings.log_format, settings.log_level)
    upgrade(settings.database_url)
    server = ServerThread(create_app(settings), port=port).start()
    api = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=10)
    try:
        _story(sandbox, api)
        say()
        say(f"RoomBridge is serving on {server.base_url}  (admin token: {admin_token})")
        say(f"  try: curl -H 'Authorization: Bearer {admin_token}' {server.base_url}/api/integrations")
        if keep_serving:
            say("  Ctrl-C to stop.")
            stop = threading.Event()
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            stop.wait()
        return 0
    finally:
        api.close()
        # Keep-alive connections between the bridge and the simulators make uvicorn report a forced close at exit.
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        server.stop()
        sandbox.stop()


def _story(sandbox: Sandbox, api: httpx.Client) -> None:
    graph, booking = sandbox.graph, sandbox.booking
    say("RoomBridge demo: a simulated Microsoft 365 tenant (contoso.com) and a simulated booking system.")
    say(f"  Graph simulator   {graph.graph_base_url}  (OAuth over TLS with a throw-away test CA)")
    say(f"  Booking simulator {booking.base_url}")
    say()

    say("1. An admin creates the integration (rooms tagged 'maintenance' are not imported).")
    r = api.post("/api/integrations", json=sandbox.integration())
    r.raise_for_status()
    integration: dict[str, Any] = r.json()
    iid = integration["id"]
    say(f"   integration {iid} created; hook secret shown once: {integration['hook_secret'][:6]}…")

    subs = _wait(lambda: (lambda items: items if len(items) >= 2 else None)(
        api.get(f"/api/integrations/{iid}/subscriptions").json()["items"]), "rooms to be imported", 60)
    say("2. Rooms imported from Azure into the booking system, each with a Graph subscription:")
    for place in sorted(booking.places.values(), key=lambda p: p.email):
        say(f"   - {place.name:<20} {place.email:<28} capacity {place.capacity}, {place.building}, floor {place.floor}")
    say(f"   ({len(subs)} subscriptions; 'Atelier (travaux)' was skipped by its tag)")

    day = (datetime.now(PARIS) + timedelta(days=1)).date()
    start = datetime(day.year, day.month, day.day, 10, 7, tzinfo=PARIS)
    end = datetime(day.year, day.month, day.day, 11, 1, tzinfo=PARIS)
    say()
    say(f"3. Alice books Salle Jupiter in Outlook, {day:%a %d %b} 10:07–11:01 (Paris).")
    t0 = time.monotonic()
    meeting = graph.create_meeting("alice@contoso.com", "Point hebdo", start, end,
                                   rooms=["salle-jupiter@contoso.com"], time_zone="Romance Standard Time")
    loan = _wait(lambda: next(iter(booking.loans.values()), None), "the loan")
    say(f"   → loan {loan.number} in the booking system after {time.monotonic() - t0:.2f}s: "
        f"{loan.requester.name}, {loan.start.astimezone(PARIS):%H:%M}–{loan.end.astimezone(PARIS):%H:%M} "
        f"(15-minute blocks), {', '.join(i.name for i in loan.items)}, status '{loan.status}'")

    say()
    say("4. Alice cancels the meeting in Outlook.")
    t0 = time.monotonic()
    graph.cancel_event("alice@contoso.com", meeting["id"])
    _wait(lambda: booking.loan(loan.id).status == "cancelled", "the cancellation")
    say(f"   → loan {loan.number} cancelled after {time.monotonic() - t0:.2f}s")

    say()
    say("5. Bob books Salle Saturne in the booking system (status 'pending'); the booking system signs a reverse hook.")
    booking.set_hook_target(f"{api.base_url}/hooks/booking/{iid}", integration["hook_secret"])
    t0 = time.monotonic()
    start = datetime(day.year, day.month, day.day, 14, 0, tzinfo=PARIS)
    made = booking.create_loan({"email": "bob@contoso.com", "name": "Bob Durand"}, start, start + timedelta(hours=1),
                               places=["salle-saturne@contoso.com"], assets=["Vidéoprojecteur"], status="pending")
    event = _wait(lambda: next((e for e in graph.events("bob@contoso.com") if not e.get("isCancelled")), None),
                  "the Outlook meeting")
    rooms = ", ".join(a["emailAddress"]["address"] for a in event["attendees"] if a["type"] == "resource")
    say(f"   → in Bob's Outlook calendar after {time.monotonic() - t0:.2f}s: \"{event['subject']}\", "
        f"shown as {event['showAs']}, rooms: {rooms}")
    say("     (the room copies' notifications come back to the bridge and change nothing: no echo)")

    say()
    say("6. The loan is cancelled in the booking system.")
    t0 = time.monotonic()
    booking.cancel_loan(made.id)
    _wait(lambda: not [e for e in graph.events("bob@contoso.com") if not e.get("isCancelled")], "the deletion")
    say(f"   → the meeting is gone from Bob's calendar after {time.monotonic() - t0:.2f}s")

    say()
    say("7. Salle Jupiter is closed for maintenance in the booking system; Alice books it in Outlook anyway.")
    t0 = time.monotonic()
    start = datetime(day.year, day.month, day.day, 16, 0, tzinfo=PARIS)
    booking.block("salle-jupiter@contoso.com", start - timedelta(hours=1), start + timedelta(hours=3))
    refused = graph.create_meeting("alice@contoso.com", "Revue budget", start, start + timedelta(hours=1),
                                   rooms=["salle-jupiter@contoso.com"], time_zone="Romance Standard Time")
    declines = graph.backend.exchange.declines
    _wait(lambda: [d for d in declines if d[1] == refused["iCalUId"]], "the room's decline")
    answer = next(a["status"]["response"] for a in graph.event("alice@contoso.com", refused["id"])["attendees"]
                  if a["emailAddress"]["address"].lower() == "salle-jupiter@contoso.com")
    comment = next(d[2] for d in declines if d[1] == refused["iCalUId"])
    say(f"   → after {time.monotonic() - t0:.2f}s Alice's Outlook shows Salle Jupiter '{answer}', with its reply:")
    say(f"     \"{comment}\"")

    say()
    say("8. Bob's loan of Salle Saturne began half an hour ago; he brings the key back early.")
    now = datetime.now(PARIS)
    begun = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0) - timedelta(minutes=30)
    running = booking.create_loan({"email": "bob@contoso.com", "name": "Bob Durand"}, begun, begun + timedelta(hours=3),
                                  places=["salle-saturne@contoso.com"], status="approved")
    _wait(lambda: next((e for e in graph.events("bob@contoso.com")
                        if not e.get("isCancelled") and running.number in e["subject"]), None), "the loan's event")
    t0 = time.monotonic()
    booking.return_loan(running.id)
    shortened = _wait(lambda: next((e for e in graph.events("bob@contoso.com") if running.number in e["subject"]
                                    and _end_of(e) < begun + timedelta(hours=3)), None), "the shortened event")
    say(f"   → after {time.monotonic() - t0:.2f}s the meeting in Outlook ends at {_end_of(shortened):%H:%M} instead of "
        f"{begun + timedelta(hours=3):%H:%M}: Salle Saturne shows free for the rest of the slot")

    say()
    say("The journal of this run:")
    for entry in reversed(api.get(f"/api/integrations/{iid}/journal").json()["items"]):
        say(f"   [{entry['status']:<7}] {entry['direction']:<18} {entry['action']:<9} {entry['message']}")


def _end_of(event: dict[str, Any]) -> datetime:
    """A Graph event's end (as the simulator renders it: `dateTime` in `timeZone`) in Paris time."""
    return parse_graph_datetime(event["end"]["dateTime"], event["end"]["timeZone"]).astimezone(PARIS)


def main(argv: list[str] | None = None) -> int:
    """`roombridge-demo`: the bridge with a simulated tenant and booking system, and a scripted story."""
    import argparse

    parser = argparse.ArgumentParser(prog="roombridge-demo", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-wait", action="store_true", help="exit after the story instead of serving until Ctrl-C")
    args = parser.parse_args(argv)
    return run_demo(port=args.port, keep_serving=not args.no_wait)


if __name__ == "__main__":
    raise SystemExit(main())
