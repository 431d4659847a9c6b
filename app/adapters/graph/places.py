"""Graph reads kept beside the gateway (plain JSON through `GraphGateway.get_json` / `paged_json`): room lists for
sites (issue 11.7) and the client secret's end date for the expiry alert (issue 11.8).

- `GET /places/microsoft.graph.roomlist` lists the tenant's room lists (`emailAddress`, `displayName`, `id`; the id
  is not stable in Graph, so lists are addressed by e-mail);
- `GET /places/{room list e-mail}/microsoft.graph.roomlist/rooms` lists one list's rooms (room objects as `/places`
  has them), paged like every `/places` collection;
- `GET /applications(appId='{client id}')?$select=passwordCredentials` reports the app registration's secrets with
  their `endDateTime` and `hint` (the secret's first three characters). It needs Application.Read.All, which the
  bridge does not require: a 403 means Graph does not report it to us.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from app.adapters.graph.errors import GraphAuthError, GraphNotFound


class JsonReader(Protocol):
    async def get_json(self, what: str, path: str) -> Any: ...

    def paged_json(self, what: str, path: str) -> Any: ...  # an async iterator of pages (lists of dicts)


@dataclass(frozen=True)
class RoomList:
    email: str  # lower case
    name: str


async def room_lists(graph: JsonReader) -> list[RoomList]:
    """Every room list of the tenant."""
    found: list[RoomList] = []
    async for page in graph.paged_json("list room lists", "/places/microsoft.graph.roomlist"):
        for item in page:
            email = item.get("emailAddress")
            if isinstance(email, str) and email:
                found.append(RoomList(email.lower(), str(item.get("displayName") or email)))
    return found


async def rooms_of_list(graph: JsonReader, list_email: str) -> set[str]:
    """The e-mails (lower case) of the rooms of one room list; GraphNotFound when Graph has no such list."""
    path = f"/places/{quote(list_email, safe='@')}/microsoft.graph.roomlist/rooms"
    members: set[str] = set()
    async for page in graph.paged_json("list rooms of a room list", path):
        members.update(e.lower() for item in page if isinstance(e := item.get("emailAddress"), str) and e)
    return members


@dataclass(frozen=True)
class Sites:
    """The rooms the integration's room lists hold (`rooms`), and the configured lists Graph does not know
    (`missing`: a typo or a renamed list; the caller deactivates nothing then)."""

    rooms: frozenset[str]
    missing: tuple[str, ...]


def _wanted(configured: list[str], known: list[RoomList]) -> tuple[list[str], list[str]]:
    """Configured lists (e-mail or display name, case-insensitive) → (e-mails of the lists found, names missing)."""
    by_key: dict[str, str] = {}
    for room_list in known:
        by_key.setdefault(room_list.email, room_list.email)
        by_key.setdefault(room_list.name.strip().casefold(), room_list.email)
    found: list[str] = []
    missing: list[str] = []
    for name in configured:
        email = by_key.get(name.strip().lower()) or by_key.get(name.strip().casefold())
        if email is None:
            missing.append(name)
        elif email not in found:
            found.append(email)
    return found, missing


async def site_rooms(graph: JsonReader, configured: list[str]) -> Sites:
    """The rooms of the configured room lists (each named by its e-mail address or its display name)."""
    found, missing = _wanted(configured, await room_lists(graph))
    rooms: set[str] = set()
    for email in found:
        try:
            rooms |= await rooms_of_list(graph, email)
        except GraphNotFound:  # removed between the two reads
            missing.append(email)
    return Sites(frozenset(rooms), tuple(missing))


async def secret_end(graph: JsonReader, client_id: str, secret: str) -> datetime | None:
    """When the integration's client secret ends, as Graph reports it; None when Graph does not report it (no
    Application.Read.All: 403; the application object not readable: 404; no end date).

    An app registration may hold several secrets: the one in use is recognised by its `hint` (its first three
    characters). Without a matching hint, the secret that ends last is taken (the bridge may be using it)."""
    path = f"/applications(appId='{quote(client_id, safe='')}')?$select=passwordCredentials"
    try:
        app = await graph.get_json("read application", path)
    except (GraphAuthError, GraphNotFound) as e:
        if isinstance(e, GraphAuthError) and e.status == 401:
            raise
        return None
    credentials = [c for c in (app or {}).get("passwordCredentials") or [] if isinstance(c, dict)]
    ends: list[tuple[bool, datetime]] = []
    for credential in credentials:
        end = _instant(credential.get("endDateTime"))
        if end is not None:
            hint = credential.get("hint")
            ends.append((isinstance(hint, str) and bool(hint) and secret.startswith(hint), end))
    if not ends:
        return None
    ours = [end for matches, end in ends if matches]
    return max(ours) if ours else max(end for _matches, end in ends)


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
