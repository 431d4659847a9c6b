"""Simulated booking system (SPEC §10): Booking API v1 over HTTP, signed reverse hooks, fault injection."""

from simulators.booking.hooks import HookDelivery
from simulators.booking.simulator import BookingSimulator
from simulators.booking.state import ApiError, BookingStats

__all__ = ["ApiError", "BookingSimulator", "BookingStats", "HookDelivery"]
