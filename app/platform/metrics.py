"""Prometheus metrics (GET /metrics)."""

from prometheus_client import Counter

NOTIFICATIONS = Counter("roombridge_notifications_total", "Graph notification items received", ["kind", "outcome"])
HOOKS = Counter("roombridge_hooks_total", "Booking reverse hooks received", ["outcome"])
