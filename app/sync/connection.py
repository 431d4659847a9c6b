"""Test connection (issue 10.4): each thing the bridge needs from Entra ID, Graph and the booking system, tried once,
each answered ok / failed with what the admin should do about it.

Built on fresh clients (never the runtime's cached ones): a token MSAL cached before a secret expired or was revoked
would otherwise hide the failure. The result is kept as a journal entry (direction `connection`, action `test`, the
checks as JSON in its message) so that the status page shows the last one.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.identity.aio import ClientSecretCredential
from sqlmodel import Session, col, select

from app.adapters.booking.client import (
    BookingClient,
    BookingError,
    BookingNotFound,
    BookingRejected,
    BookingUnavailable,
)
from app.adapters.graph.errors import GraphAuthError, GraphError, GraphNotFound, GraphThrottled
from app.adapters.graph.gateway import GRAPH_SCOPE, GraphGateway
from app.core.graph import EventWrite, GraphRoom
from app.platform.db import session_scope
from app.platform.models import Integration, JournalEntry, Room
from app.platform.settings import DEFAULT_AUTHORITY_HOST
from app.sync import journal
from app.sync.runtime import Runtime

DIRECTION = "connection"
ACTION = "test"

# Entra ID's AADSTS codes an admin meets when setting up an app registration, and what to do about each.
ENTRA_ERRORS: dict[int, tuple[str, str]] = {
    7000215: ("the client secret is wrong",
              "copy the secret's Value (not its Secret ID) from Entra ID › App registrations › Certificates & "
              "secrets and save it as the integration's client_secret"),
    7000222: ("the client secret has expired",
              "create a new client secret (App registrations › Certificates & secrets › New client secret) and save "
              "it as the integration's client_secret"),
    90002: ("the tenant does not exist",
            "check tenant_id: the Directory (tenant) ID on the app registration's Overview page"),
    900023: ("the tenant id is not valid",
             "check tenant_id: the Directory (tenant) ID on the app registration's Overview page"),
    700016: ("the application is not registered in this tenant",
             "check client_id (Application (client) ID on the Overview page) and that the app is registered in "
             "this tenant"),
    65001: ("admin consent is missing",
            "an administrator must grant consent: App registrations › API permissions › Grant admin consent"),
    7000229: ("the application has no service principal in this tenant (consent missing)",
              "an administrator must grant consent: App registrations › API permissions › Grant admin consent"),
}

# The Graph application permissions, each with the call that proves it (SPEC §3, §6, §7; docs/setup.md).
PERMISSIONS = {
    "list_rooms": "Place.Read.All",
    "read_calendar": "Calendars.Read",
    "mailbox_settings": "MailboxSettings.Read",
    "write_event": "Calendars.ReadWrite",
}
_AADSTS = re.compile(r"AADSTS(\d+)")


@dataclass
class Check:
    name: str
    status: str  # ok | failed | skipped
    detail: str
    fix: str = ""


def explain_entra(message: str) -> tuple[str, str]:
    """(what happened, what to do) for an Entra ID error message carrying an AADSTS code."""
    found = _AADSTS.search(message)
    code = int(found.group(1)) if found else None
    if code in ENTRA_ERRORS:
        what, fix = ENTRA_ERRORS[code]
        return f"{what} (AADSTS{code})", fix
    return (f"Entra ID refused the credentials ({f'AADSTS{code}' if code else 'no error code'})",
            "check tenant_id, client_id and client_secret against the app registration")


def _graph_failure(name: str, e: GraphError) -> Check:
    permission = PERMISSIONS[name]
    if isinstance(e, GraphAuthError) and e.status == 403:
        return Check(name, "failed", f"Graph refused: the permission {permission} is missing ({e.code or 403})",
                     f"add the application permission {permission} (Microsoft Graph) under API permissions, "
                     "then Grant admin consent")
    if isinstance(e, GraphAuthError):
        return Check(name, "failed", f"Graph refused the token ({e.status})",
                     "run the test again; if it persists, check the app registration's credentials")
    if isinstance(e, GraphThrottled):
        return Check(name, "failed", "Graph is busy or unreachable", "try again in a minute")
    return Check(name, "failed", f"Graph answered {e.status or ''} {e.code or ''}".strip(),
                 "see docs/setup.md for the settings this call depends on")


async def _graph_checks(rt: Runtime, integration: Integration, secret: str, room: Room | None,
                        write: bool) -> list[Check]:
    authority = rt.settings.graph_authority_host
    credential = ClientSecretCredential(integration.tenant_id, integration.client_id, secret, authority=authority,
                                        disable_instance_discovery=authority != DEFAULT_AUTHORITY_HOST)
    checks: list[Check] = []
    try:
        try:
            await credential.get_token(GRAPH_SCOPE)
            checks.append(Check("token", "ok", "Entra ID issued a token for Microsoft Graph"))
        except ClientAuthenticationError as e:
            what, fix = explain_entra(str(e))
            checks.append(Check("token", "failed", what, fix))
        except (ServiceRequestError, OSError) as e:
            checks.append(Check("token", "failed", f"Entra ID cannot be reached ({type(e).__name__})",
                                "check the network path to login.microsoftonline.com"))
    finally:
        await credential.close()
    if checks[0].status != "ok":
        checks += [Check(name, "skipped", "no token") for name in PERMISSIONS]
        return checks
    gateway = GraphGateway(integration.tenant_id, integration.client_id, secret,
                           base_url=rt.settings.graph_base_url, authority_host=authority)
    try:
        try:
            pages = gateway.room_pages()
            first: list[GraphRoom] = await anext(pages, [])
            await pages.aclose()
            checks.append(Check("list_rooms", "ok", f"rooms listed ({len(first)} on the first page)"))
        except GraphError as e:
            checks.append(_graph_failure("list_rooms", e))
        if room is None:
            checks += [Check(name, "skipped", "no imported room yet: run Sync rooms, then test again")
                       for name in ("read_calendar", "mailbox_settings")]
        else:
            try:
                await gateway.find_event_by_ical_uid(room.email, "roombridge-connection-test")
                checks.append(Check("read_calendar", "ok", f"calendar of {room.email} read"))
            except GraphNotFound:
                checks.append(Check("read_calendar", "failed", f"{room.email} has no mailbox in Graph",
                                    "run Sync rooms: the room may have been removed"))
            except GraphError as e:
                checks.append(_graph_failure("read_calendar", e))
            try:
                await gateway.mailbox_settings(room.email)
                checks.append(Check("mailbox_settings", "ok", f"mailbox settings of {room.email} read"))
            except GraphError as e:
                checks.append(_graph_failure("mailbox_settings", e))
        checks.append(await _write_check(gateway, integration, write))
    finally:
        await gateway.close()
    return checks


async def _write_check(gateway: GraphGateway, integration: Integration, write: bool) -> Check:
    mailbox = integration.default_user_email
    if not write:
        return Check("write_event", "skipped", "not asked (it creates and deletes a probe event)")
    if not mailbox:
        return Check("write_event", "skipped", "no default_user_email set",
                     "set default_user_email: events of loans without an Outlook organiser are written there")
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    probe = EventWrite(subject="RoomBridge connection test (deleted at once)", body_html="", start=start,
                       end=start + timedelta(minutes=15), rooms=(), show_as="free",
                       transaction_id=f"roombridge-connection-test-{start:%Y%m%d%H}")
    try:
        event = await gateway.create_event(mailbox, probe)
        await gateway.delete_event(mailbox, event.id)
        return Check("write_event", "ok", f"probe event created and deleted in {mailbox}'s calendar")
    except GraphNotFound:
        return Check("write_event", "failed", f"{mailbox} has no mailbox in Graph",
                     "set default_user_email to a licensed user's address")
    except GraphError as e:
        return _graph_failure("write_event", e)


def _booking_checks(client: BookingClient) -> list[Check]:
    try:
        next(iter(client.changed_loans(datetime.now(UTC))), None)
    except BookingUnavailable as e:
        return [Check("booking_reachable", "failed", f"the booking system cannot be reached ({e.code})",
                      "check booking_base_url and that the booking system is up"),
                Check("booking_key", "skipped", "not reachable")]
    except BookingRejected as e:
        if e.status in (401, 403):
            return [Check("booking_reachable", "ok", "the booking system answered"),
                    Check("booking_key", "failed", f"the booking system refused the API key ({e.status})",
                          "create an API key in the booking system and save it as booking_api_key")]
        return [Check("booking_reachable", "ok", "the booking system answered"),
                Check("booking_key", "failed", f"the booking system refused the request ({e.status} {e.code})",
                      "check booking_base_url: it must end with the API root, before /v1")]
    except BookingError as e:
        return [Check("booking_reachable", "failed", f"the booking system answered {e.status} {e.code}",
                      "check booking_base_url"),
                Check("booking_key", "skipped", "not reachable")]
    return [Check("booking_reachable", "ok", "the booking system answered"),
            Check("booking_key", "ok", "the API key was accepted")]


STORE_NOT_FOUND = "store_not_found"  # the contract's error code for an unknown store (docs/booking-api.md)


def _store_check(client: BookingClient, store_id: str) -> Check:
    """`GET /v1/stores/{id}`: optional in the Booking API v1 (added later). A booking system without it answers a
    404 of another code (or 405): the check is skipped, saying why."""
    try:
        store = client.get_store(store_id)
    except BookingNotFound as e:
        if e.code == STORE_NOT_FOUND:
            return Check("default_store", "failed", f"the booking system has no store {store_id!r}",
                         "set default_store_id to the id of the store in which the rooms are booked")
        return _store_unchecked(store_id)
    except BookingRejected as e:
        if e.status == 405:
            return _store_unchecked(store_id)
        return Check("default_store", "failed", f"the booking system refused to show store {store_id!r} "
                     f"({e.status} {e.code})", "check that the API key may read this store")
    except BookingError as e:
        return Check("default_store", "failed", f"store {store_id!r} could not be read ({e.status or ''} {e.code})",
                     "try again; if it persists, check the booking system's GET /v1/stores/{id}")
    if store.get("active") is False:
        return Check("default_store", "failed", f"store {store_id!r} exists but is not active",
                     "activate the store in the booking system or set another default_store_id")
    name = store.get("name")
    return Check("default_store", "ok",
                 f"store {store_id!r} exists" + (f" ({name})" if isinstance(name, str) and name else ""))


def _store_unchecked(store_id: str) -> Check:
    return Check("default_store", "skipped",
                 f"cannot check store {store_id!r}: the booking system does not implement GET /v1/stores/{{id}} "
                 "(optional in the Booking API v1); the rooms import reports a refused store")


def check_connection(rt: Runtime, integration_id: str, *, write: bool = False) -> dict[str, Any]:
    """Run every check, keep the result in the journal, return it (not named test_…: pytest would collect it
    wherever it is imported into a test module)."""
    with Session(rt.engine) as s:
        integration = s.get(Integration, integration_id)
        if integration is None:
            raise LookupError(integration_id)
        room = s.exec(select(Room).where(col(Room.integration_id) == integration_id, col(Room.active))
                      .order_by(col(Room.email)).limit(1)).first()
    secret = rt.box.decrypt(integration.client_secret_enc)
    checks = rt.run(_graph_checks(rt, integration, secret, room, write))
    with BookingClient(integration.booking_base_url, rt.box.decrypt(integration.booking_api_key_enc)) as client:
        booking = _booking_checks(client)
        checks += booking
        if all(c.status == "ok" for c in booking):
            checks.append(_store_check(client, integration.default_store_id))
        else:
            checks.append(Check("default_store", "skipped", "the booking system did not accept the API key"
                                if booking[0].status == "ok" else "the booking system is not reachable"))
    ok = all(c.status != "failed" for c in checks)
    result = {"ok": ok, "at": datetime.now(UTC).isoformat(), "checks": [asdict(c) for c in checks]}
    with session_scope(rt.engine) as s:
        journal.record(s, integration_id, DIRECTION, ACTION, "ok" if ok else "failed", json.dumps(result))
    return result


def last_result(session: Session, integration_id: str) -> dict[str, Any] | None:
    """The last connection test of this integration, as `test_connection` returned it."""
    entry = session.exec(select(JournalEntry).where(col(JournalEntry.integration_id) == integration_id,
                                                    col(JournalEntry.direction) == DIRECTION)
                         .order_by(col(JournalEntry.at).desc()).limit(1)).first()
    if entry is None:
        return None
    try:
        value = json.loads(entry.message)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
