"""Booking-side tests: the contract, the client against the simulated booking system, reverse hooks, signing."""
