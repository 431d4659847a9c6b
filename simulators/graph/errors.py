"""Graph error responses: `{"error": {"code", "message", "innerError"}}` as Microsoft Graph shapes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from starlette.responses import JSONResponse


class GraphError(Exception):
    """Raised anywhere in the simulator; the route layer turns it into a Graph error response."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        inner: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.inner = inner or {}  # extra innerError fields (throttling responses carry code/status/message there)

    def response(self, request_id: str | None = None) -> JSONResponse:
        request_id = request_id or str(uuid.uuid4())
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": request_id,
                    **self.inner,
                },
            }
        }
        return JSONResponse(body, status_code=self.status, headers={"request-id": request_id, **self.headers})


def not_found_item() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def invalid_request(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidRequest", message)
