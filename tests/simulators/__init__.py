"""Graph simulator tests: auth, directory, events, recurrence, delta, batch, subscriptions, throttling, the real SDK."""
