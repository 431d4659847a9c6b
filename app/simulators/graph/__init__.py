"""Simulated Microsoft Graph (SPEC §10): Entra client credentials, places, users, events with Exchange's room
behaviour, subscriptions and notifications, calendarView delta, throttling and fault injection."""

from .delivery import DeliveryFaults
from .simulator import GraphSimulator
from .stats import GraphStats

__all__ = ["DeliveryFaults", "GraphSimulator", "GraphStats"]
