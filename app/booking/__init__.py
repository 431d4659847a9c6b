"""Booking-system side of the bridge: the Booking API v1 contract and the client the bridge uses."""
