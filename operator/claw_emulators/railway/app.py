"""HTTP face of the emulator: the GraphQL endpoint with Railway's auth, rate limits and
injected faults, the admin API, the per-domain health endpoint, and the request log.

Order of checks for a GraphQL request, as a client meets them on Railway: edge faults
(latency, 5xx), body parsing, auth, the token's rate budget (one HTTP request counts once,
however many aliased fields it carries), throttling, then GraphQL validation and execution.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import urllib.parse
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from aiohttp import web
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    execute_sync,
    parse,
    validate,
)

from claw_emulators.railway.faults import fault_from_mapping, fingerprint
from claw_emulators.railway.oauth import OAuthEndpoint
from claw_emulators.railway.ratelimit import RateTier, Verdict, parse_tier
from claw_emulators.railway.schema import RequestContext, executable_schema
from claw_emulators.railway.state import ApiError, RailwayState

log = logging.getLogger(__name__)

GRAPHQL_PATH = "/graphql/v2"
OAUTH_TOKEN_PATH = "/oauth/token"
THROTTLE_MESSAGE = "You're doing that too quickly. Please try again later."


@dataclass
class RequestRecord:
    """One GraphQL request as the emulator saw it. Never holds a token or variable values."""

    seq: int
    time: float
    token: str | None  # fingerprint
    operation_name: str | None
    root_fields: list[str]
    status: int
    error: (
        str | None
    )  # validation, auth, not_found, invalid, rate_limited, throttled, http_error, bad_request

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _root_fields(document: DocumentNode, operation_name: str | None) -> list[str]:
    """Field names (not aliases) at the top of the chosen operation."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        op for op in operations if operation_name is None or (op.name and op.name.value == operation_name)
    ]
    if not chosen:
        return []

    def walk(selection_set: SelectionSetNode) -> list[str]:
        names: list[str] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                names.append(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                names += walk(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
                names += walk(fragments[selection.name.value].selection_set)
        return names

    return walk(chosen[0].selection_set)


@lru_cache(maxsize=512)
def _prepare(query: str) -> tuple[DocumentNode | None, list[dict[str, Any]]]:
    """Parse and validate once per distinct document: clients send the same few documents
    over and over, and for a wide fleet read this is most of the cost of a request."""
    try:
        document = parse(query)
    except GraphQLError as syntax_error:
        return None, [dict(syntax_error.formatted)]
    return document, [dict(problem.formatted) for problem in validate(executable_schema(), document)]


def _classify(errors: list[dict[str, Any]]) -> str:
    messages = [str(error.get("message", "")) for error in errors]
    if any(message == "Not Authorized" for message in messages):
        return "auth"
    if any("not found" in message.lower() for message in messages):
        return "not_found"
    return "invalid"


class EmulatorApp:
    """Owns the aiohttp application over one `RailwayState`."""

    def __init__(self, state: RailwayState) -> None:
        self.state = state
        self.oauth = OAuthEndpoint(state)
        self.requests: list[RequestRecord] = []
        self._seq = 0
        self.app = web.Application()
        self.app.add_routes(
            [
                web.post(GRAPHQL_PATH, self.graphql),
                web.post(OAUTH_TOKEN_PATH, self.oauth_token),
                web.post("/_admin/oauth/apps", self.admin_add_oauth_app),
                web.post("/_admin/oauth/grants", self.admin_issue_oauth_grant),
                web.post("/_admin/usage", self.admin_set_usage),
                web.get("/healthz", self.healthz),
                web.get("/_admin/state", self.admin_state),
                web.get("/_admin/requests", self.admin_requests),
                web.get("/_admin/faults", self.admin_faults),
                web.post("/_admin/faults", self.admin_add_faults),
                web.delete("/_admin/faults", self.admin_clear_faults),
                web.post("/_admin/tokens", self.admin_add_token),
                web.post("/_admin/reset", self.admin_reset),
                web.post("/_admin/crash", self.admin_crash),
                web.get("/_domains/{domain}{path:.*}", self.domain_health),
            ]
        )

    def reset(self) -> None:
        self.state.clear()
        self.state.faults.clear()
        self.requests.clear()

    # ---- GraphQL ------------------------------------------------------------------------

    def _record(
        self,
        token_fp: str | None,
        operation: str | None,
        fields: list[str],
        status: int,
        error: str | None,
    ) -> None:
        self._seq += 1
        self.requests.append(
            RequestRecord(self._seq, self.state.clock(), token_fp, operation, fields, status, error)
        )

    async def graphql(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        raw_token = header[7:].strip() if header[:7].lower() == "bearer " else None
        token_fp = fingerprint(raw_token) if raw_token else None
        faults = self.state.faults.request_faults(token_fp)
        operation: str | None = None
        fields: list[str] = []

        def reply(
            status: int, body: Any, error: str | None, headers: dict[str, str] | None = None
        ) -> web.Response:
            self._record(token_fp, operation, fields, status, error)
            return web.json_response(body, status=status, headers=headers)

        for fault in faults:
            if fault.kind == "latency":
                await asyncio.sleep(fault.seconds)
        for fault in faults:
            if fault.kind == "http_error":
                self._record(token_fp, None, [], fault.status, "http_error")
                return web.Response(status=fault.status, text=f"upstream error ({fault.status})")

        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return reply(400, {"errors": [{"message": "Request body is not valid JSON"}]}, "bad_request")
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return reply(
                400, {"errors": [{"message": "Request body must have a 'query' string"}]}, "bad_request"
            )
        operation = body.get("operationName") if isinstance(body.get("operationName"), str) else None
        variables = body.get("variables") or {}
        document, problems = _prepare(body["query"])
        if document is None:
            return reply(200, {"errors": problems}, "validation")
        fields = _root_fields(document, operation)

        token = self.state.token(raw_token)
        if token is None or any(f.kind == "invalid_token" for f in faults):
            return reply(200, {"data": None, "errors": [{"message": "Not Authorized"}]}, "auth")

        verdict: Verdict = token.budget.take(self.state.clock())
        limit_headers = verdict.headers()
        if not verdict.allowed:
            return reply(429, {"errors": [{"message": "Rate limit exceeded"}]}, "rate_limited", limit_headers)
        for fault in faults:
            if fault.kind == "throttle":
                if fault.mode == "http":
                    retry = {**limit_headers, "Retry-After": str(max(1, round(fault.seconds)))}
                    return reply(429, {"errors": [{"message": "Rate limit exceeded"}]}, "throttled", retry)
                return reply(
                    200, {"data": None, "errors": [{"message": THROTTLE_MESSAGE}]}, "throttled", limit_headers
                )

        if problems:
            return reply(200, {"errors": problems}, "validation", limit_headers)
        result = execute_sync(
            executable_schema(),
            document,
            context_value=RequestContext(self.state, token),
            variable_values=variables if isinstance(variables, dict) else None,
            operation_name=operation,
        )
        payload: dict[str, Any] = {"data": result.data}
        error_kind = None
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
            error_kind = _classify(payload["errors"])
            # ApiErrors are Railway's answers; anything else is an emulator bug worth a trace.
            for problem in result.errors:
                cause = problem.original_error
                if cause is not None and not isinstance(cause, ApiError | GraphQLError):
                    log.error("resolver bug at %s", problem.path, exc_info=cause)
        return reply(200, payload, error_kind, limit_headers)

    # ---- OAuth ----------------------------------------------------------------------------

    async def oauth_token(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        basic: tuple[str, str] | None = None
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return web.json_response({"error": "invalid_client"}, status=401)
            basic = (urllib.parse.unquote(user), urllib.parse.unquote(password))
        status, body = self.oauth.token_request(form, basic)
        return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})

    async def admin_add_oauth_app(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("clientId"), str):
            raise web.HTTPBadRequest(text="expected {'clientId': ..., 'clientSecret': ..., 'workspace': ...}")
        secret = body.get("clientSecret")
        app = self.oauth.add_app(
            body["clientId"],
            str(secret) if secret is not None else None,
            str(body.get("workspace", "ws-platform")),
            str(body.get("tier", "hobby")),
        )
        return web.json_response({"clientId": app.client_id, "workspace": app.workspace})

    async def admin_issue_oauth_grant(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict) or body.get("clientId") not in self.oauth.apps:
            raise web.HTTPBadRequest(text="expected {'clientId': ...} naming a registered OAuth app")
        return web.json_response(self.oauth.issue(str(body["clientId"])))

    # ---- admin ----------------------------------------------------------------------------

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def admin_state(self, request: web.Request) -> web.Response:
        reveal = request.query.get("reveal", "").lower() in {"1", "true", "yes"}
        return web.json_response(self.state.to_json(reveal_values=reveal))

    async def admin_requests(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return web.json_response({"requests": [r.to_json() for r in self.requests if r.seq > since]})

    async def admin_crash(self, request: web.Request) -> web.Response:
        """`{"project": NAME}`: the running deployment of that project crashes now."""
        body = await _json_body(request)
        name = body.get("project") if isinstance(body, dict) else None
        if not isinstance(name, str):
            raise web.HTTPBadRequest(text='expected {"project": "<project name>"}')
        dep = self.state.crash(name)
        if dep is None:
            raise web.HTTPNotFound(text=f"no running deployment in project {name}")
        return web.json_response({"deploymentId": dep.id, "crashedAt": self.state.clock()})

    async def admin_faults(self, _request: web.Request) -> web.Response:
        return web.json_response({"faults": [f.to_json() for f in self.state.faults.faults]})

    async def admin_add_faults(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        items = body.get("faults", [body]) if isinstance(body, dict) else body
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise web.HTTPBadRequest(text="expected a fault object, a list of them, or {'faults': [...]}")
        try:
            faults = [fault_from_mapping(item) for item in items]
        except (ValueError, TypeError) as error:
            raise web.HTTPBadRequest(text=str(error)) from None
        added = [self.state.faults.add(fault).to_json() for fault in faults]
        return web.json_response({"faults": added})

    async def admin_clear_faults(self, request: web.Request) -> web.Response:
        removed = self.state.faults.clear(request.query.get("kind"))
        return web.json_response({"removed": removed})

    async def admin_add_token(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("token"), str) or not body["token"]:
            raise web.HTTPBadRequest(text="expected {'token': ..., 'workspace': ..., 'tier': ...}")
        try:
            if "per_hour" in body:
                # Custom numbers, for tests that need a small budget.
                per_second = body.get("per_second")
                tier = RateTier(
                    "custom", int(body["per_hour"]), None if per_second is None else int(per_second)
                )
            else:
                tier = parse_tier(str(body.get("tier", "hobby")))
        except (ValueError, TypeError) as error:
            raise web.HTTPBadRequest(text=str(error)) from None
        entry = self.state.add_token(
            body["token"],
            str(body.get("workspace", "ws-platform")),
            workspaces=[str(w) for w in body.get("workspaces", [])],
            tier=tier,
        )
        return web.json_response(entry.to_json())

    async def admin_set_usage(self, request: web.Request) -> web.Response:
        """{"serviceId": ..., "values": {"CPU_USAGE": 0.5, ...}} sets what `metrics` reports
        for a service; {"projectId": ..., "estimated": {...}} what `estimatedUsage` reports
        (units in telemetry.UsageBook)."""
        body = await _json_body(request)
        try:
            if isinstance(body, dict) and isinstance(body.get("serviceId"), str):
                self.state.usage.set_service(body["serviceId"], dict(body.get("values") or {}))
            elif isinstance(body, dict) and isinstance(body.get("projectId"), str):
                self.state.usage.set_estimate(body["projectId"], dict(body.get("estimated") or {}))
            else:
                raise ValueError("expected {'serviceId', 'values'} or {'projectId', 'estimated'}")
        except (ValueError, TypeError) as error:
            raise web.HTTPBadRequest(text=str(error)) from None
        return web.json_response(
            {"services": self.state.usage.services, "estimates": self.state.usage.estimates}
        )

    async def admin_reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def domain_health(self, request: web.Request) -> web.Response:
        healthy = self.state.domain_healthy(request.match_info["domain"])
        if healthy is None:
            return web.Response(status=404, text="Not Found")
        if not healthy:
            return web.Response(status=503, text="Application failed to respond")
        return web.json_response({"ok": True, "path": request.match_info["path"] or "/"})


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="body is not JSON") from None
