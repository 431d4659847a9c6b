"""In-memory twins of Microsoft Graph and of the booking system, with the methods the sync flows call.

`GraphTwin` wraps the Graph simulator's Exchange model (room copies, declines, cancelled copies, recurrence) and
`BookingTwin` the booking simulator's `BookingStore`, in-process and without HTTP. Instead of sending them, they
record the notifications (room mailbox, event id) and reverse hooks (loan id) their changes cause. `World` wires
both to the real flows on a fresh SQLite database.
"""

from tests.twins.booking import BookingTwin
from tests.twins.faults import Faults, JobKilled
from tests.twins.graph import GraphTwin
from tests.twins.world import World

__all__ = ["BookingTwin", "Faults", "GraphTwin", "JobKilled", "World"]
