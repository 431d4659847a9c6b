"""Simulated Microsoft Graph (SPEC §10): Entra client credentials, places, users, events with Exchange's room
behaviour, subscriptions and notifications, calendarView delta, throttling and fault injection."""

from simulators.graph.delivery import DeliveryFaults
from simulators.graph.simulator import GraphSimulator
from simulators.graph.stats import GraphStats

__all__ = ["DeliveryFaults", "GraphSimulator", "GraphStats"]
