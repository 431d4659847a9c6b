"""The tenant's directory: users and room mailboxes (object ids, e-mail addresses) and the rooms of `/places`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from simulators.graph.errors import GraphError

WORKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]


@dataclass
class Mailbox:
    id: str  # the user object id (GUID) Graph uses in /users/{id}
    email: str
    display_name: str
    is_room: bool = False
    time_zone: str = "UTC"
    working_hours: dict[str, Any] = field(default_factory=dict)

    def user_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "mail": self.email,
            "userPrincipalName": self.email,
            "businessPhones": [],
            "givenName": None,
            "surname": None,
            "jobTitle": None,
            "officeLocation": None,
            "preferredLanguage": None,
            "mobilePhone": None,
        }

    def mailbox_settings_json(self) -> dict[str, Any]:
        working_hours = {
            "daysOfWeek": WORKDAYS,
            "startTime": "08:00:00.0000000",
            "endTime": "17:00:00.0000000",
            "timeZone": {"name": self.time_zone},
            **self.working_hours,
        }
        return {
            "archiveFolder": None,
            "timeZone": self.time_zone,
            "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
            "dateFormat": "yyyy-MM-dd",
            "timeFormat": "HH:mm",
            "userPurpose": "room" if self.is_room else "user",
            "automaticRepliesSetting": {"status": "disabled"},
            "language": {"locale": "en-US", "displayName": "English (United States)"},
            "workingHours": working_hours,
        }


@dataclass
class RoomPlace:
    """A room as `/places` lists it; its `id` is a place id, distinct from the mailbox's object id."""

    mailbox: Mailbox
    capacity: int | None = None
    building: str | None = None
    floor_number: int | None = None
    floor_label: str | None = None
    tags: list[str] = field(default_factory=list)
    address: dict[str, str] = field(default_factory=dict)
    phone: str | None = None
    nickname: str | None = None
    label: str | None = None
    booking_type: str = "standard"
    is_wheel_chair_accessible: bool = False
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    listed: bool = True  # False: hidden from the address list, so absent from /places (the mailbox still works)

    def json(self) -> dict[str, Any]:
        address = {"street": "", "city": "", "state": "", "countryOrRegion": "", "postalCode": ""}
        return {
            "@odata.type": "#microsoft.graph.room",
            "id": self.id,
            "emailAddress": self.mailbox.email,
            "displayName": self.mailbox.display_name,
            "address": {**address, **self.address},
            "geoCoordinates": None,
            "phone": self.phone,
            "nickname": self.nickname or self.mailbox.display_name,
            "label": self.label,
            "capacity": self.capacity,
            "building": self.building,
            "floorNumber": self.floor_number,
            "floorLabel": self.floor_label,
            "audioDeviceName": None,
            "videoDeviceName": None,
            "displayDeviceName": None,
            "isWheelChairAccessible": self.is_wheel_chair_accessible,
            "bookingType": self.booking_type,
            "tags": list(self.tags),
        }


@dataclass
class RoomList:
    """A room list (`microsoft.graph.roomList`): a distribution group of rooms, addressed in `/places` by its e-mail
    (its `id` is not stable in Graph). `rooms`: the member rooms' mailbox ids, in the order they were added."""

    email: str
    display_name: str
    rooms: list[str] = field(default_factory=list)
    address: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def json(self) -> dict[str, Any]:
        address = {"street": "", "city": "", "state": "", "countryOrRegion": "", "postalCode": ""}
        return {
            "@odata.type": "#microsoft.graph.roomList",
            "id": self.id,
            "displayName": self.display_name,
            "address": {**address, **self.address},
            "geoCoordinates": None,
            "phone": None,
            "emailAddress": self.email,
        }


class Directory:
    """Lookup by object id or e-mail, both case-insensitive as in Graph. Guarded by the tenant lock."""

    def __init__(self) -> None:
        self._by_id: dict[str, Mailbox] = {}
        self._by_email: dict[str, Mailbox] = {}
        self.rooms: dict[str, RoomPlace] = {}  # mailbox id → place, in insertion order (the /places order)
        self.room_lists: dict[str, RoomList] = {}  # lower-case e-mail → room list, in insertion order

    def add(self, mailbox: Mailbox) -> Mailbox:
        if mailbox.email.lower() in self._by_email:
            raise ValueError(f"{mailbox.email} already exists")
        self._by_id[mailbox.id.lower()] = mailbox
        self._by_email[mailbox.email.lower()] = mailbox
        return mailbox

    def add_room(self, place: RoomPlace) -> RoomPlace:
        self.add(place.mailbox)
        self.rooms[place.mailbox.id] = place
        return place

    def find(self, key: str) -> Mailbox | None:
        key = key.strip().lower()
        return self._by_id.get(key) or self._by_email.get(key)

    def require(self, key: str) -> Mailbox:
        mailbox = self.find(key)
        if mailbox is None:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.",
            )
        return mailbox

    def room(self, key: str) -> RoomPlace:
        mailbox = self.find(key)
        if mailbox is None or mailbox.id not in self.rooms:
            raise KeyError(f"no room {key}")
        return self.rooms[mailbox.id]

    def is_room(self, address: str) -> Mailbox | None:
        mailbox = self.find(address)
        return mailbox if mailbox is not None and mailbox.is_room else None

    def listed_rooms(self) -> list[RoomPlace]:
        return [place for place in self.rooms.values() if place.listed]

    def room_list(self, key: str) -> RoomList:
        """A room list by e-mail or id (case-insensitive), as `/places/{id}/microsoft.graph.roomlist/rooms` takes."""
        key = key.strip().lower()
        found = self.room_lists.get(key) or next((r for r in self.room_lists.values() if r.id.lower() == key), None)
        if found is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return found

    def rooms_of_list(self, key: str) -> list[RoomPlace]:
        """The listed rooms of a room list (a room hidden from the address list is not in /places either)."""
        rooms = self.room_list(key).rooms
        return [self.rooms[r] for r in rooms if r in self.rooms and self.rooms[r].listed]
