"""HTTP layer: thin handlers that parse, check and hand over (no business rule inside a route)."""
