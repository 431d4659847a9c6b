"""RoomBridge: keeps Microsoft 365 room calendars and a room-booking system in sync, both ways."""
