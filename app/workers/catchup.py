"""Catch-up: re-derive, from the two remote systems, every change whose job a queue may have lost.

A notification or a reverse hook is only a hint (the jobs re-read what it names), so a lost job loses no data: the
change is still in Graph and in the booking system. What is lost is the *reason to look*. The catch-up gives it back
with the two rounds reconciliation already has (SPEC §1.3):

- Outlook side: a calendarView delta round per active room, from the room's stored delta token. Graph reports every
  change made to the room's calendar since the token was issued, and the token is stored only after a round has
  applied all its changes, so every change a lost notification job named is in the next round.
- Booking side: a `changed_since` round per integration from the stored cursor (`loans_synced_at`, minus an
  overlap). Every reverse hook is sent for a change of a loan, and every change of a loan moves its `updated_at`:
  a loan whose hook job was lost is in the next round. The hook itself carries nothing more (the job re-reads the
  loan), so a hook needs no persisting of its own before its 202.

When it runs: at every start of the embedded mode (its queue is in memory, so whatever the previous process held
— after SIGKILL, or a SIGTERM whose drain ran out of time — is gone), and in scale-out whenever the active scheduler
finds Redis has lost its data (`RedisMarker` below). The rounds are jobs, idempotent like every job; when nothing
changed they cost one Graph request per room and one booking request per integration.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import redis
from sqlmodel import Session, col, select

from app.platform.logging import get_logger
from app.platform.models import Integration, Room
from app.sync import journal
from app.sync.integrations import policy_of
from app.sync.runtime import Runtime
from app.workers import actors

log = get_logger("roombridge.catchup")


@dataclass(frozen=True)
class CatchUp:
    rooms: int
    integrations: int


def catch_up(rt: Runtime, reason: str) -> CatchUp:
    """Enqueue a delta round for every active room and a booking-cursor round for every integration that syncs
    booking → Outlook (of enabled integrations). Raises if the queue cannot take them (the caller retries)."""
    with Session(rt.engine) as s:
        enabled = s.exec(select(Integration).where(col(Integration.enabled).is_(True))).all()
        ids = [i.id for i in enabled]
        rooms = s.exec(select(Room).where(col(Room.active).is_(True), col(Room.integration_id).in_(ids))).all() \
            if ids else []
        loans = [i.id for i in enabled if policy_of(i).booking_to_outlook]
        room_ids = [(r.id, r.integration_id) for r in rooms]
    for room_id, _ in room_ids:
        actors.reconcile_room.send(room_id)
    for integration_id in loans:
        actors.reconcile_loans.send(integration_id)
    with Session(rt.engine) as s:
        for integration_id in ids:
            n = sum(1 for _, i in room_ids if i == integration_id)
            journal.record(s, integration_id, "reconcile", "catch_up", "ok",
                           f"catch-up ({reason}): {n} rooms"
                           + (" and the loans changed since the last round" if integration_id in loans else "")
                           + " re-read")
        s.commit()
    log.info("catch-up enqueued", reason=reason, rooms=len(room_ids), loan_rounds=len(loans))
    return CatchUp(rooms=len(room_ids), integrations=len(ids))


class RedisMarker:
    """Detects that Redis lost data (restarted without persistence, flushed, restored from an older snapshot, failed
    over to a replica that lagged).

    A key only the active scheduler writes: a new random value at every check. Found missing, or holding another
    value than the one last written, Redis has lost (or rolled back) what it held since, queued jobs included: the
    scheduler runs the catch-up. A scheduler that has just become active adopts the value it finds (it wrote none
    yet); at the very first start the key is missing, and that catch-up is one harmless extra round. What Redis loses
    within one check interval of its last write goes unnoticed by the marker (the periodic reconciliation still
    recovers it): keep persistence on (docs/operations.md).
    """

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._redis = client
        self.key = f"{namespace}:bridge-marker"
        self._last: bytes | None = None

    def present(self) -> bool:
        return bool(self._redis.exists(self.key))

    def forget(self) -> None:
        """This process stops writing the key (its lease lapsed): the next check adopts whatever it finds."""
        self._last = None

    def check(self, rt: Runtime) -> bool:
        """True if Redis lost data (and the catch-up was enqueued). Raises if Redis is unreachable."""
        found = self._redis.get(self.key)
        lost = found is None or (self._last is not None and found != self._last)
        if lost:
            log.warning("Redis has lost its data (the bridge's marker key is missing or older than the last one "
                        "written): catching up", key=self.key, missing=found is None)
            catch_up(rt, "Redis lost its data")
        # Written only once the catch-up is enqueued: if that failed, the next check tries again.
        value = uuid.uuid4().hex.encode()
        self._redis.set(self.key, value)
        self._last = value
        return lost
