"""Entra ID's client-credentials flow, as far as MSAL (azure-identity) needs it, and the bearer check of /v1.0.

Tokens are opaque random strings, valid for `TOKEN_LIFETIME_S` of real time (not the simulator clock, so tests that
move the clock forward don't invalidate the tokens MSAL caches).
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulators.graph.errors import GraphError
from simulators.graph.stats import GraphStats

TOKEN_LIFETIME_S = 3599


@dataclass(frozen=True)
class AppRegistration:
    client_id: str
    secret: str
    service_principal_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # subscriptions' creatorId
    # What an admin can get wrong in Entra ID (issue 10, test-connection): an expired secret, admin consent not
    # granted, an application permission not given (Graph answers 403 to the calls that need it).
    secret_expired: bool = False
    consented: bool = True
    denied: frozenset[str] = frozenset()
    # When the secret ends, as `GET /applications(appId='…')` reports it in `passwordCredentials` (None: two years
    # after registration, Entra's default). Reading it needs Application.Read.All (deny it for the 403 path).
    secret_end: datetime | None = None
    registered_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def application_json(self) -> dict[str, object]:
        """The application object, with the one password credential of its secret (never the secret itself)."""
        end = self.secret_end or self.registered_at.replace(year=self.registered_at.year + 2)
        return {
            "id": self.object_id,
            "appId": self.client_id,
            "displayName": "RoomBridge",
            "passwordCredentials": [{
                "customKeyIdentifier": None,
                "displayName": "roombridge",
                "endDateTime": end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "hint": self.secret[:3],
                "keyId": str(uuid.uuid5(uuid.NAMESPACE_OID, self.client_id)),
                "secretText": None,
                "startDateTime": self.registered_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }],
        }


# The application permission each Graph call of the simulator needs (a denied one answers 403).
def permission_of(kind: str, method: str) -> str | None:
    if kind == "places":
        return "Place.Read.All"
    if kind == "mailboxSettings":
        return "MailboxSettings.Read"
    if kind == "applications":
        return "Application.Read.All"
    if kind in ("events", "event", "calendarView", "delta", "instances", "cancel", "decline"):
        return "Calendars.Read" if method == "GET" else "Calendars.ReadWrite"
    return None


class TokenIssuer:
    def __init__(self, tenant_id: str, domain: str, stats: GraphStats | None = None) -> None:
        self.tenant_names = {tenant_id.lower(), domain.lower()}
        self._stats = stats
        self._apps: dict[str, AppRegistration] = {}
        self._tokens: dict[str, tuple[AppRegistration, float]] = {}
        self._lock = threading.Lock()

    def register(self, client_id: str, secret: str) -> AppRegistration:
        with self._lock:
            app = self._apps[client_id] = AppRegistration(client_id, secret)
            return app

    def app(self, client_id: str) -> AppRegistration | None:
        with self._lock:
            return self._apps.get(client_id)

    def apps(self) -> list[AppRegistration]:
        with self._lock:
            return list(self._apps.values())

    def change(self, client_id: str, **what: object) -> None:
        """Change an app registration (`secret_expired`, `consented`, `denied`, `secret_end`), as an admin would in
        Entra ID.
        Tokens already issued stay valid (as Entra's do until they expire); `denied` applies to every call at once."""
        with self._lock:
            self._apps[client_id] = replace(self._apps[client_id], **what)  # type: ignore[arg-type]
            self._tokens = {token: (self._apps[client_id] if app.client_id == client_id else app, until)
                            for token, (app, until) in self._tokens.items()}

    def revoke_all(self) -> None:
        with self._lock:
            self._tokens.clear()

    def issue(self, client_id: str, secret: str) -> str:
        with self._lock:
            app = self._apps.get(client_id)
            if app is None:
                raise _EntraError(
                    400,
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{client_id}' was not found in the directory.",
                )
            if not secrets.compare_digest(app.secret, secret):
                raise _EntraError(401, "invalid_client", 7000215, "Invalid client secret provided.")
            if app.secret_expired:
                raise _EntraError(401, "invalid_client", 7000222,
                                  f"The provided client secret keys for app '{client_id}' are expired.")
            if not app.consented:
                raise _EntraError(400, "invalid_grant", 65001,
                                  "The user or administrator has not consented to use the application.")
            token = secrets.token_urlsafe(48)
            self._tokens[token] = (app, time.monotonic() + TOKEN_LIFETIME_S)
        if self._stats is not None:
            self._stats.add("tokens_issued")
        return token

    def authenticate(self, headers: Headers) -> AppRegistration:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        with self._lock:
            entry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if entry is None or entry[1] < time.monotonic():
            message = "Access token is empty." if not token else "Access token validation failure. Invalid audience."
            raise GraphError(401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": "Bearer"})
        return entry[0]


class _EntraError(Exception):
    """Entra's OAuth error body (`error`, `error_description`, `error_codes`), not Graph's."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description

    def response(self) -> JSONResponse:
        trace_id = str(uuid.uuid4())
        return JSONResponse(
            {
                "error": self.error,
                "error_description": f"AADSTS{self.code}: {self.description} Trace ID: {trace_id}",
                "error_codes": [self.code],
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
                "trace_id": trace_id,
                "correlation_id": str(uuid.uuid4()),
                "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
            },
            status_code=self.status,
        )


def auth_routes(issuer: TokenIssuer) -> list[Route]:
    def check_tenant(tenant: str) -> None:
        if tenant.lower() not in issuer.tenant_names:
            raise _EntraError(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")

    async def openid_configuration(request: Request) -> JSONResponse:
        tenant = request.path_params["tenant"]
        try:
            check_tenant(tenant)
        except _EntraError as error:
            return error.response()
        base = f"{str(request.base_url).rstrip('/')}/{tenant}"
        return JSONResponse(
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "tenant_region_scope": "EU",
            }
        )

    async def token(request: Request) -> JSONResponse:
        # Parsed by hand: Starlette's request.form() needs python-multipart, which the product doesn't depend on.
        form = {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
        try:
            check_tenant(request.path_params["tenant"])
            if form.get("grant_type") != "client_credentials":
                raise _EntraError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
            scopes = str(form.get("scope") or "").split()
            if not any(scope.endswith("/.default") for scope in scopes):
                raise _EntraError(400, "invalid_scope", 1002012, "The provided value for scope is not valid.")
            access_token = issuer.issue(str(form.get("client_id") or ""), str(form.get("client_secret") or ""))
        except _EntraError as error:
            return error.response()
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_S,
                "ext_expires_in": TOKEN_LIFETIME_S,
                "access_token": access_token,
            }
        )

    return [
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
    ]
