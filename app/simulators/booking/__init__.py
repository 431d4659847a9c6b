"""Simulated booking system (SPEC §10): Booking API v1 over HTTP, signed reverse hooks, fault injection."""

from app.simulators.booking.hooks import HookDelivery
from app.simulators.booking.simulator import BookingSimulator
from app.simulators.booking.state import ApiError, BookingStats

__all__ = ["ApiError", "BookingSimulator", "BookingStats", "HookDelivery"]
