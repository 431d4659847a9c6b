"""An integration's sync settings as a plain value the pure rules can take (no database, no secrets).

`app.sync.integrations.policy_of` builds it from the stored integration."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Literal

Direction = Literal["both", "outlook_to_booking", "booking_to_outlook"]
PrivateEvents = Literal["sync_hidden", "skip"]


@dataclass(frozen=True)
class Policy:
    integration_id: str
    domains: frozenset[str]
    default_user_email: str | None
    block_minutes: int = 15
    horizon_days: int = 180
    direction: Direction = "both"
    private_events: PrivateEvents = "sync_hidden"
    exclude_subjects: tuple[str, ...] = ()
    show_pending_as_tentative: bool = True

    def in_tenant(self, email: str) -> bool:
        return email.rpartition("@")[2].lower() in self.domains

    def excluded_subject(self, subject: str) -> str | None:
        """The first `exclude_subjects` pattern (`*` as joker, case-insensitive) matching `subject`."""
        for pattern in self.exclude_subjects:
            if fnmatch.fnmatchcase(subject.lower(), pattern.lower().replace("[", "[[]")):
                return pattern
        return None

    @property
    def outlook_to_booking(self) -> bool:
        return self.direction in ("both", "outlook_to_booking")

    @property
    def booking_to_outlook(self) -> bool:
        return self.direction in ("both", "booking_to_outlook")
