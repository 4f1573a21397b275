"""The Railway GraphQL client: typed async methods over httpx.

Every request goes through `_request()`, which owns the cross-cutting rules:
- the per-token rate budget (`budget.py`), one slot per HTTP request;
- error classification into `errors.py` types (HTTP status and GraphQL errors alike);
- retries with backoff and the idempotency rule (`retry.py`);
- accounting of every request (`accounting.py`);
- Railway's edge: the URL carries `?source=claw-operator` (the edge throttles bare URLs
  hard), and a non-JSON 429/403 page from the edge is rate limiting, not a refusal;
- priorities (`budget.Priority`): reads of the fleet pass their own, everything else is
  urgent; a context variable lets the engine learn which objects a pass mutated;
- secrecy: exception messages carry the operation name, the HTTP status and Railway's
  own message with every request value (and the token) scrubbed out, because Railway's
  validation messages can echo variable values back. httpx's exceptions are chained as
  the cause but never formatted into our messages.
The documents themselves live in `documents.py`, so a contract test can check them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, NoReturn, Self, TypeVar

import httpx
import pydantic_core
from pydantic import BaseModel, TypeAdapter, ValidationError

from claw_operator.railway import documents
from claw_operator.railway.accounting import Accounting, Outcome
from claw_operator.railway.budget import DEFAULT_RPH, DEFAULT_RPS, Priority, RateBudget, budget_for
from claw_operator.railway.errors import (
    RailwayAuthError,
    RailwayError,
    RailwayInvalidError,
    RailwayNotFoundError,
    RailwayRateLimitedError,
    RailwayRetryableError,
)
from claw_operator.railway.project_index import ProjectIndex, oldest
from claw_operator.railway.retry import Backoff, should_retry
from claw_operator.railway.types import (
    ConfigureResult,
    Deployment,
    EstimatedUsage,
    LogLine,
    MetricSeries,
    Project,
    Service,
    ServiceInstanceRef,
    ServiceInstanceState,
    TemplateService,
    WorkspaceUsage,
)
from claw_operator.support import metrics
from claw_operator.support.redact import REDACTED, redact

ModelT = TypeVar("ModelT", bound=BaseModel)

PROJECTS_PAGE_SIZE = 100
SOURCE_QUERY = {"source": "claw-operator"}
# Cloudflare's 1015 page can block a client for minutes: stay away at least this long.
EDGE_BLOCK_SECONDS = 60.0
# A 429 without Retry-After still pauses every caller of the token for a moment.
DEFAULT_RETRY_AFTER = 1.0

# Operations sent by the current task that change Railway (names), when a caller listens:
# the engine sets a list around one reconcile pass to learn whether it mutated anything.
MUTATIONS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("claw_mutations", default=None)
# Longest Railway error text we repeat; anything longer is more likely a dump than a sentence.
_MAX_MESSAGE = 300
# graphql-js coercion errors quote the offending value after these words.
_ECHOED_VALUE = re.compile(
    r"(got invalid value|Expected value of type|invalid value)\b.*", re.IGNORECASE | re.DOTALL
)


def classify_message(message: str) -> type[RailwayError]:
    """The error type of one GraphQL error message (shared/railway/README.md, "Errors")."""
    lowered = message.lower()
    if "you're doing that too quickly" in lowered or "rate limit" in lowered:
        return RailwayRateLimitedError
    if "not authorized" in lowered:
        return RailwayAuthError
    if "not found" in lowered:
        return RailwayNotFoundError
    return RailwayInvalidError


_OUTCOMES: dict[type[RailwayError], Outcome] = {
    RailwayRateLimitedError: Outcome.RATE_LIMITED,
    RailwayRetryableError: Outcome.RETRYABLE,
    RailwayAuthError: Outcome.AUTH,
    RailwayNotFoundError: Outcome.NOT_FOUND,
    RailwayInvalidError: Outcome.INVALID,
}

# When one response carries errors of several kinds, the first kind in this order
# decides: throttling is retried whole, auth stops everything, not-found is meaningful
# to callers only when nothing worse happened.
_SEVERITY: tuple[type[RailwayError], ...] = (
    RailwayRateLimitedError,
    RailwayAuthError,
    RailwayInvalidError,
    RailwayNotFoundError,
)


class _Failure(Exception):
    """One failed attempt: the error to raise, and whether Railway provably did not run it."""

    def __init__(self, error: RailwayError, *, provably_unexecuted: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.provably_unexecuted = provably_unexecuted


@dataclass
class _Response:
    data: dict[str, Any]
    # GraphQL errors that name a root field (alias), kept for callers that read
    # several independent fields and want to handle each failure on its own.
    field_errors: dict[str, list[str]] = field(default_factory=dict)


def _string_leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _string_leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _string_leaves(item)


def _parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After is seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _parse_reset(value: str, now: float) -> float | None:
    """X-RateLimit-Reset as seconds from now. Servers send either a Unix time (seconds or
    milliseconds) or a number of seconds to wait; magnitude tells them apart."""
    try:
        number = float(value)
    except ValueError:
        return None
    if number > 1e12:
        number /= 1000.0
    if number > 1e9:
        return max(0.0, number - now)
    return max(0.0, number)


def _format_datetime(moment: datetime) -> str:
    """Railway's DateTime: RFC 3339 in UTC. Naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _edges(connection: Any) -> list[Any]:
    if not isinstance(connection, Mapping):
        return []
    return [edge.get("node") for edge in connection.get("edges") or [] if isinstance(edge, Mapping)]


def _chunks(items: Sequence[ServiceInstanceRef], size: int) -> Iterator[Sequence[ServiceInstanceRef]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RailwayClient:
    """Typed access to Railway's GraphQL API for one token.

    `budget` defaults to the process-wide budget of this token (Pro tier limits); pass
    one to share it explicitly or to change the tier. `sleep`, `rng` and `wall_clock`
    exist for deterministic tests.
    """

    def __init__(
        self,
        *,
        url: str,
        token: str,
        budget: RateBudget | None = None,
        accounting: Accounting | None = None,
        batch_size: int = 50,
        max_retries: int = 6,
        timeout: float = 30.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._url = url
        self._token = token
        self._token_label = metrics.token_label(token)
        self._budget = budget if budget is not None else budget_for(token, rps=DEFAULT_RPS, rph=DEFAULT_RPH)
        self._accounting = accounting if accounting is not None else Accounting()
        self._batch_size = batch_size
        self._max_retries = max(0, max_retries)
        self._backoff = Backoff(base=backoff_base, maximum=backoff_max)
        self._sleep = sleep if sleep is not None else asyncio.sleep
        self._rng = rng if rng is not None else random.Random()
        self._wall_clock = wall_clock
        self._index = ProjectIndex(self.list_projects)
        self._http = httpx.AsyncClient(
            transport=transport,
            params=SOURCE_QUERY,
            # A small pool: httpx scans its connections on every request.
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            timeout=httpx.Timeout(timeout),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "claw-operator"},
            follow_redirects=False,
        )

    @property
    def accounting(self) -> Accounting:
        return self._accounting

    @property
    def budget(self) -> RateBudget:
        return self._budget

    @property
    def project_index(self) -> ProjectIndex:
        return self._index

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the one request path --------------------------------------------------------

    async def _request(
        self,
        operation: str,
        document: str,
        variables: dict[str, Any],
        *,
        idempotent: bool,
        field_errors: bool = False,
        priority: Priority = Priority.URGENT,
    ) -> _Response:
        """Send one document, retrying per the idempotency rule in retry.py.

        With `field_errors`, GraphQL errors that name a root field are returned to the
        caller instead of raised (only batches of independent reads want that)."""
        retry_number = 0
        mutations = MUTATIONS.get()
        if mutations is not None and operation not in documents.READ_OPERATIONS:
            mutations.append(operation)
        while True:
            try:
                return await self._attempt(
                    operation, document, variables, field_errors=field_errors, priority=priority
                )
            except _Failure as failure:
                error = failure.error
                retryable = should_retry(
                    error, idempotent=idempotent, provably_unexecuted=failure.provably_unexecuted
                )
                if not retryable or retry_number >= self._max_retries:
                    if isinstance(error, RailwayRetryableError) and not retryable:
                        # The caller must observe before trying again (adoption).
                        error.message += " (may have been applied; observe Railway before retrying)"
                    raise error from failure.__cause__
                retry_after = error.retry_after if isinstance(error, RailwayRetryableError) else None
                delay = self._backoff.delay(retry_number, self._rng, retry_after)
                self._accounting.record_retry(operation)
                retry_number += 1
                await self._sleep(delay)

    async def _attempt(
        self,
        operation: str,
        document: str,
        variables: dict[str, Any],
        *,
        field_errors: bool,
        priority: Priority,
    ) -> _Response:
        payload = {"query": document, "variables": variables, "operationName": operation}
        try:
            async with self._budget.slot(priority):
                response = await self._post(operation, payload, variables)
                self._observe_rate_headers(response)
            result = self._interpret(operation, response, variables, field_errors=field_errors)
        except _Failure as failure:
            self._accounting.record(operation, _outcome_of(failure.error))
            metrics.railway_failure(self._token_label, _outcome_of(failure.error).value)
            if isinstance(failure.error, RailwayRateLimitedError):
                self._budget.pause(failure.error.retry_after or DEFAULT_RETRY_AFTER)
            raise
        self._accounting.record(operation, Outcome.OK)
        metrics.set_rate_budget(self._token_label, *self._budget.hourly_budget())
        return result

    async def _post(
        self, operation: str, payload: dict[str, Any], variables: dict[str, Any]
    ) -> httpx.Response:
        try:
            return await self._http.post(self._url, json=payload)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # No connection was ever made for this request: Railway cannot have seen it.
            raise _Failure(
                RailwayRetryableError(
                    f"cannot connect to Railway ({type(exc).__name__})", operation=operation
                ),
                provably_unexecuted=True,
            ) from exc
        except httpx.TimeoutException as exc:
            raise _Failure(
                RailwayRetryableError(
                    f"Railway did not answer in time ({type(exc).__name__})", operation=operation
                )
            ) from exc
        except httpx.HTTPError as exc:
            # Dropped connections, protocol errors: the request may or may not have run.
            raise _Failure(
                RailwayRetryableError(
                    f"network error talking to Railway ({type(exc).__name__})", operation=operation
                )
            ) from exc

    def _observe_rate_headers(self, response: httpx.Response) -> None:
        remaining = response.headers.get("X-RateLimit-Remaining")
        reset = response.headers.get("X-RateLimit-Reset")
        if remaining is None or reset is None:
            return
        try:
            remaining_count = int(float(remaining))
        except ValueError:
            return
        reset_in = _parse_reset(reset, self._wall_clock())
        if reset_in is not None:
            self._budget.observe_server(remaining=remaining_count, reset_in=reset_in)

    def _interpret(
        self, operation: str, response: httpx.Response, variables: dict[str, Any], *, field_errors: bool
    ) -> _Response:
        status = response.status_code
        if status in (403, 429) and _is_edge_page(response):
            retry_after = _parse_retry_after(response.headers.get("Retry-After"), self._wall_clock())
            raise _Failure(
                RailwayRateLimitedError(
                    "rate limited by Railway's edge",
                    operation=operation,
                    status_code=status,
                    retry_after=max(retry_after or 0.0, EDGE_BLOCK_SECONDS),
                ),
                provably_unexecuted=True,
            )
        if status == 429:
            retry_after = _parse_retry_after(response.headers.get("Retry-After"), self._wall_clock())
            raise _Failure(
                RailwayRateLimitedError(
                    "rate limited by Railway",
                    operation=operation,
                    status_code=status,
                    retry_after=retry_after,
                ),
                provably_unexecuted=True,
            )
        if status >= 500:
            raise _Failure(
                RailwayRetryableError("Railway server error", operation=operation, status_code=status)
            )
        try:
            # pydantic's parser: a fleet read's answer is tens of KB, and this parses it in
            # about half the time json.loads takes.
            body = pydantic_core.from_json(response.content)
        except ValueError:
            # The JSON error holds the body (which may echo our variables): no chaining.
            body = None
        if not isinstance(body, Mapping):
            if status == 200:
                raise _Failure(
                    RailwayRetryableError(
                        "unreadable response from Railway", operation=operation, status_code=status
                    )
                )
            raise _Failure(self._status_error(operation, status))
        errors = [e for e in body.get("errors") or [] if isinstance(e, Mapping)]
        data = body.get("data")
        if not errors:
            if status >= 400:
                raise _Failure(self._status_error(operation, status))
            if not isinstance(data, Mapping):
                raise _Failure(
                    RailwayRetryableError(
                        "response from Railway has no data", operation=operation, status_code=status
                    )
                )
            return _Response(data=dict(data))

        per_field: dict[str, list[str]] = {}
        general: list[str] = []
        for error in errors:
            message = str(error.get("message") or "unknown error")
            path = error.get("path")
            if field_errors and isinstance(path, list) and path and isinstance(path[0], str):
                per_field.setdefault(path[0], []).append(message)
            else:
                general.append(message)
        # Throttling and auth refuse the whole request, even when reported on one field.
        fatal = [m for ms in per_field.values() for m in ms if classify_message(m) in _SEVERITY[:2]]
        if general or fatal:
            raise self._graphql_error(operation, general + fatal, status, variables, response)
        return _Response(data=dict(data) if isinstance(data, Mapping) else {}, field_errors=per_field)

    def _status_error(self, operation: str, status: int) -> RailwayError:
        if status in (401, 403):
            return RailwayAuthError("Not Authorized", operation=operation, status_code=status)
        return RailwayInvalidError("request refused by Railway", operation=operation, status_code=status)

    def _graphql_error(
        self,
        operation: str,
        messages: list[str],
        status: int,
        variables: dict[str, Any],
        response: httpx.Response,
    ) -> _Failure:
        kind = _most_severe(messages)
        text = "; ".join(dict.fromkeys(self._scrub(m, variables) for m in messages))
        if kind is RailwayRateLimitedError:
            retry_after = _parse_retry_after(response.headers.get("Retry-After"), self._wall_clock())
            return _Failure(
                RailwayRateLimitedError(
                    text, operation=operation, status_code=status, retry_after=retry_after
                ),
                provably_unexecuted=True,
            )
        return _Failure(kind(text, operation=operation, status_code=status))

    def _scrub(self, message: str, variables: Mapping[str, Any]) -> str:
        """Railway's message without the token or any value we sent."""
        message = _ECHOED_VALUE.sub(lambda m: f"{m.group(1)} {REDACTED}", message)
        message = redact(message, {self._token, *_string_leaves(variables)})
        if len(message) > _MAX_MESSAGE:
            message = message[:_MAX_MESSAGE] + "…"
        return message

    def _raise_field_errors(self, operation: str, messages: list[str], variables: dict[str, Any]) -> NoReturn:
        kind = _most_severe(messages)
        text = "; ".join(dict.fromkeys(self._scrub(m, variables) for m in messages))
        raise kind(text, operation=operation, status_code=200)

    async def _call(
        self,
        operation: str,
        variables: dict[str, Any],
        *,
        idempotent: bool,
        priority: Priority = Priority.URGENT,
    ) -> dict[str, Any]:
        """One static document from documents.py, named by its operation."""
        document = documents.STATIC_DOCUMENTS[operation]
        response = await self._request(
            operation, document, variables, idempotent=idempotent, priority=priority
        )
        return response.data

    @staticmethod
    def _parse(operation: str, model: type[ModelT], value: Any) -> ModelT:
        with _shape_of(operation, model.__name__):
            return model.model_validate(value)

    @classmethod
    def _project(cls, operation: str, node: Any) -> Project:
        if not isinstance(node, Mapping):
            raise RailwayInvalidError("unexpected response shape for Project", operation=operation)
        flattened = {
            **node,
            "environments": _edges(node.get("environments")),
            "services": _edges(node.get("services")),
        }
        return cls._parse(operation, Project, flattened)

    # -- projects ----------------------------------------------------------------------

    async def list_projects(self, workspace_id: str | None) -> list[Project]:
        projects: list[Project] = []
        after: str | None = None
        while True:
            data = await self._call(
                "Projects",
                {"workspaceId": workspace_id, "first": PROJECTS_PAGE_SIZE, "after": after},
                idempotent=True,
            )
            connection = data.get("projects") or {}
            projects += [self._project("Projects", node) for node in _edges(connection)]
            page = connection.get("pageInfo") or {}
            cursor = page.get("endCursor")
            # A server that says "more" without a new cursor would loop forever.
            if not page.get("hasNextPage") or not cursor or cursor == after:
                return projects
            after = cursor

    async def find_project(self, name: str, marker: str, workspace_id: str | None) -> Project | None:
        """The oldest project named `name` whose description carries `marker`, from the
        workspace's project index (project_index.py: listed once, not per lookup). A hit
        is read again: adoption is rare and needs the project's services as they are now,
        not as they were when the index learned of it."""
        found = await self._index.find(name, marker, workspace_id)
        if found is None:
            return None
        try:
            return await self.get_project(found.id)
        except RailwayNotFoundError:
            self._index.deleted(found.id)  # deleted behind our back: look again
            return await self._index.find(name, marker, workspace_id)

    async def scan_project(self, name: str, marker: str, workspace_id: str | None) -> Project | None:
        """The same lookup by listing the workspace now (no index)."""
        matches = [
            project
            for project in await self.list_projects(workspace_id)
            if project.name == name and marker in (project.description or "")
        ]
        return oldest(matches)

    async def get_project(self, project_id: str) -> Project:
        data = await self._call("Project", {"id": project_id}, idempotent=True)
        if data.get("project") is None:
            raise RailwayNotFoundError("Project not found", operation="Project")
        return self._project("Project", data["project"])

    async def create_project(self, *, name: str, description: str, workspace_id: str | None) -> Project:
        project_input: dict[str, Any] = {
            "name": name,
            "description": description,
            "defaultEnvironmentName": "production",
        }
        if workspace_id is not None:
            project_input["workspaceId"] = workspace_id
        try:
            data = await self._call("ProjectCreate", {"input": project_input}, idempotent=False)
        except RailwayRetryableError as exc:
            if not isinstance(exc, RailwayRateLimitedError):
                self._index.create_uncertain(name, workspace_id)
            raise
        project = self._project("ProjectCreate", data.get("projectCreate"))
        self._index.created(project, workspace_id)
        return project

    async def delete_project(self, project_id: str) -> bool:
        try:
            await self._call("ProjectDelete", {"id": project_id}, idempotent=True)
        except RailwayNotFoundError:
            self._index.deleted(project_id)
            return False
        self._index.deleted(project_id)
        return True

    # -- services ----------------------------------------------------------------------

    async def create_service(
        self,
        *,
        project_id: str,
        environment_id: str,
        name: str,
        variables: dict[str, str],
        branch: str | None = None,
    ) -> Service:
        # No source on purpose: a service with a source deploys at once, before its
        # settings, limits and domain exist. configure_service connects it last.
        service_input: dict[str, Any] = {
            "projectId": project_id,
            "environmentId": environment_id,
            "name": name,
            "variables": dict(variables),
        }
        if branch is not None:
            service_input["branch"] = branch
        data = await self._call("ServiceCreate", {"input": service_input}, idempotent=False)
        return self._parse("ServiceCreate", Service, data.get("serviceCreate"))

    async def get_template_service(
        self, *, project_id: str, environment_id: str, service_id: str
    ) -> TemplateService:
        data = await self._call(
            "TemplateService",
            {"projectId": project_id, "environmentId": environment_id, "serviceId": service_id},
            idempotent=True,
        )
        instance = data.get("serviceInstance")
        if instance is None:
            raise RailwayNotFoundError("ServiceInstance not found", operation="TemplateService")
        return self._parse(
            "TemplateService",
            TemplateService,
            {"serviceId": service_id, **instance, "variables": data.get("variables") or {}},
        )

    async def configure_service(
        self,
        *,
        environment_id: str,
        service_id: str,
        settings: dict[str, Any] | None,
        limits: dict[str, float] | None,
        create_domain: bool,
        source: dict[str, str] | None,
    ) -> ConfigureResult:
        """Settings, limits, domain and source of a new service in one request; the source
        (which triggers the first deployment) goes last. Not idempotent (it may create a
        domain and a deployment), so not retried after an ambiguous failure."""
        if not (settings or limits or create_domain or source):
            return ConfigureResult()
        variables: dict[str, Any] = {"environmentId": environment_id, "serviceId": service_id}
        if settings:
            variables["settings"] = dict(settings)
        if limits:
            variables["limits"] = {**limits, "environmentId": environment_id, "serviceId": service_id}
        if source:
            variables["source"] = {k: v for k, v in source.items() if k in ("image", "repo", "branch")}
        document = documents.service_configure(
            settings=bool(settings), limits=bool(limits), domain=create_domain, connect=bool(source)
        )
        response = await self._request("ServiceConfigure", document, variables, idempotent=False)
        domain = response.data.get("domain")
        return ConfigureResult(domain=domain.get("domain") if isinstance(domain, Mapping) else None)

    async def update_service_instance(
        self, *, environment_id: str, service_id: str, settings: dict[str, Any]
    ) -> None:
        await self._call(
            "ServiceInstanceUpdate",
            {"environmentId": environment_id, "serviceId": service_id, "input": dict(settings)},
            idempotent=True,
        )

    async def update_limits(
        self, *, environment_id: str, service_id: str, vcpus: float | None, memory_gb: float | None
    ) -> None:
        if vcpus is None and memory_gb is None:
            return
        limits_input: dict[str, Any] = {"environmentId": environment_id, "serviceId": service_id}
        if vcpus is not None:
            limits_input["vCPUs"] = vcpus
        if memory_gb is not None:
            limits_input["memoryGB"] = memory_gb
        await self._call("ServiceInstanceLimitsUpdate", {"input": limits_input}, idempotent=True)

    async def connect_source(
        self, *, service_id: str, image: str | None = None, repo: str | None = None, branch: str | None = None
    ) -> None:
        source = {k: v for k, v in (("image", image), ("repo", repo), ("branch", branch)) if v is not None}
        await self._call("ServiceConnect", {"id": service_id, "input": source}, idempotent=True)

    # -- variables and domains -----------------------------------------------------------

    async def get_variables(self, *, project_id: str, environment_id: str, service_id: str) -> dict[str, str]:
        data = await self._call(
            "Variables",
            {"projectId": project_id, "environmentId": environment_id, "serviceId": service_id},
            idempotent=True,
        )
        return _variables_map("Variables", data.get("variables"))

    async def upsert_variables(
        self,
        *,
        project_id: str,
        environment_id: str,
        service_id: str,
        variables: dict[str, str],
        replace: bool = False,
        skip_deploys: bool = False,
    ) -> None:
        upsert_input = {
            "projectId": project_id,
            "environmentId": environment_id,
            "serviceId": service_id,
            "variables": dict(variables),
            "replace": replace,
            "skipDeploys": skip_deploys,
        }
        await self._call("VariableCollectionUpsert", {"input": upsert_input}, idempotent=True)

    async def create_domain(self, *, environment_id: str, service_id: str) -> str:
        data = await self._call(
            "ServiceDomainCreate",
            {"input": {"environmentId": environment_id, "serviceId": service_id}},
            idempotent=False,
        )
        domain = data.get("serviceDomainCreate")
        if not isinstance(domain, Mapping) or not isinstance(domain.get("domain"), str):
            raise RailwayInvalidError(
                "unexpected response shape for ServiceDomain", operation="ServiceDomainCreate"
            )
        return str(domain["domain"])

    # -- deployments -------------------------------------------------------------------

    async def deploy(self, *, environment_id: str, service_id: str) -> str:
        data = await self._call(
            "ServiceInstanceDeploy",
            {"environmentId": environment_id, "serviceId": service_id},
            idempotent=False,
        )
        deployment_id = data.get("serviceInstanceDeployV2")
        if not isinstance(deployment_id, str):
            raise RailwayInvalidError(
                "unexpected response shape for a deployment id", operation="ServiceInstanceDeploy"
            )
        return deployment_id

    async def redeploy(self, deployment_id: str) -> Deployment:
        data = await self._call("DeploymentRedeploy", {"id": deployment_id}, idempotent=False)
        return self._parse("DeploymentRedeploy", Deployment, data.get("deploymentRedeploy"))

    async def restart(self, deployment_id: str) -> None:
        await self._call("DeploymentRestart", {"id": deployment_id}, idempotent=True)

    async def rollback(self, deployment_id: str) -> None:
        """Deploy `deployment_id`'s image and variables again; not retried blindly, since a
        retry after a lost answer would start a second rollback deployment."""
        data = await self._call("DeploymentRollback", {"id": deployment_id}, idempotent=False)
        if data.get("deploymentRollback") is not True:
            raise RailwayInvalidError("Railway did not accept the rollback", operation="DeploymentRollback")

    async def stop(self, deployment_id: str) -> None:
        await self._call("DeploymentStop", {"id": deployment_id}, idempotent=True)

    async def get_deployment(self, deployment_id: str) -> Deployment:
        data = await self._call("Deployment", {"id": deployment_id}, idempotent=True)
        if data.get("deployment") is None:
            raise RailwayNotFoundError("Deployment not found", operation="Deployment")
        return self._parse("Deployment", Deployment, data["deployment"])

    async def list_deployments(
        self, *, project_id: str, environment_id: str, service_id: str, first: int = 10
    ) -> list[Deployment]:
        data = await self._call(
            "Deployments",
            {
                "input": {"projectId": project_id, "environmentId": environment_id, "serviceId": service_id},
                "first": first,
            },
            idempotent=True,
        )
        return [self._parse("Deployments", Deployment, node) for node in _edges(data.get("deployments"))]

    async def deployment_logs(
        self, deployment_id: str, limit: int = 50
    ) -> tuple[list[LogLine], list[LogLine]]:
        data = await self._call(
            "DeploymentLogs", {"deploymentId": deployment_id, "limit": limit}, idempotent=True
        )
        build = [self._parse("DeploymentLogs", LogLine, line) for line in data.get("buildLogs") or []]
        deploy = [self._parse("DeploymentLogs", LogLine, line) for line in data.get("deploymentLogs") or []]
        return build, deploy

    async def metrics(
        self,
        *,
        project_id: str,
        environment_id: str,
        service_id: str,
        start: datetime,
        measurements: Sequence[str],
    ) -> list[MetricSeries]:
        data = await self._call(
            "Metrics",
            {
                "projectId": project_id,
                "environmentId": environment_id,
                "serviceId": service_id,
                "startDate": _format_datetime(start),
                "measurements": list(measurements),
            },
            idempotent=True,
            priority=Priority.BACKGROUND,
        )
        return [self._parse("Metrics", MetricSeries, series) for series in data.get("metrics") or []]

    async def workspace_usage(
        self,
        workspace_id: str,
        *,
        since: datetime,
        sample_rate_seconds: int,
        egress_since: datetime,
        egress_sample_rate_seconds: int,
    ) -> WorkspaceUsage:
        """Every service's usage in one workspace, one request (documents.WORKSPACE_USAGE)."""
        data = await self._call(
            "WorkspaceUsage",
            {
                "workspaceId": workspace_id,
                "since": _format_datetime(since),
                "sampleRateSeconds": sample_rate_seconds,
                "egressSince": _format_datetime(egress_since),
                "egressSampleRateSeconds": egress_sample_rate_seconds,
            },
            idempotent=True,
            priority=Priority.BACKGROUND,
        )
        return await _workspace_usage(data)

    async def project_workspaces(self, project_ids: Sequence[str]) -> dict[str, str]:
        """The workspace of each project, `batch_size` projects per request; projects
        Railway does not find (or shows without a workspace) are left out."""
        unique = list(dict.fromkeys(project_ids))
        found: dict[str, str] = {}
        for start in range(0, len(unique), self._batch_size):
            chunk = unique[start : start + self._batch_size]
            variables = {f"p{n}": project_id for n, project_id in enumerate(chunk)}
            response = await self._request(
                "ProjectWorkspaces",
                documents.project_workspaces(len(chunk)),
                variables,
                idempotent=True,
                field_errors=True,
                priority=Priority.BACKGROUND,
            )
            for messages in response.field_errors.values():
                if any(classify_message(m) is not RailwayNotFoundError for m in messages):
                    self._raise_field_errors("ProjectWorkspaces", messages, variables)
            for n, project_id in enumerate(chunk):
                node = response.data.get(f"w{n}")
                if isinstance(node, Mapping) and isinstance(node.get("workspaceId"), str):
                    found[project_id] = node["workspaceId"]
        return found

    # -- the fleet ---------------------------------------------------------------------

    async def observe_fleet(
        self,
        refs: Sequence[ServiceInstanceRef],
        *,
        with_variables: bool,
        priority: Priority = Priority.URGENT,
    ) -> dict[ServiceInstanceRef, ServiceInstanceState]:
        """Many service instances, `batch_size` per request (aliased root fields, which
        Railway counts as one request). A "not found" on one alias means that instance
        is gone (found=False); any other per-alias error is raised."""
        unique = list(dict.fromkeys(refs))
        states: dict[ServiceInstanceRef, ServiceInstanceState] = {}
        for chunk in _chunks(unique, self._batch_size):
            states.update(await self._observe_chunk(chunk, with_variables=with_variables, priority=priority))
        return states

    async def _observe_chunk(
        self, chunk: Sequence[ServiceInstanceRef], *, with_variables: bool, priority: Priority
    ) -> dict[ServiceInstanceRef, ServiceInstanceState]:
        states: dict[ServiceInstanceRef, ServiceInstanceState] = {}
        pending = list(chunk)
        # Both fields are non-null in Railway's schema, so one missing instance nulls the
        # whole `data` under GraphQL's null propagation: every error is still listed with
        # its alias, so ask again without the missing ones. Each round removes at least
        # one instance or finishes, so this ends.
        while pending:
            variables: dict[str, Any] = {}
            for n, ref in enumerate(pending):
                if with_variables:
                    variables[f"p{n}"] = ref.projectId
                variables[f"e{n}"] = ref.environmentId
                variables[f"s{n}"] = ref.serviceId
            document = documents.fleet_observe(len(pending), with_variables=with_variables)
            response = await self._request(
                "FleetObserve", document, variables, idempotent=True, field_errors=True, priority=priority
            )
            missing: set[int] = set()
            for alias, messages in response.field_errors.items():
                slot = _alias_slot(alias, len(pending))
                if slot is None or any(classify_message(m) is not RailwayNotFoundError for m in messages):
                    self._raise_field_errors("FleetObserve", messages, variables)
                missing.add(slot)
            for slot in missing:
                states[pending[slot]] = ServiceInstanceState(ref=pending[slot], found=False)
            retry: list[ServiceInstanceRef] = []
            found: list[dict[str, Any]] = []
            for n, ref in enumerate(pending):
                if n in missing:
                    continue
                instance = response.data.get(f"i{n}")
                if not isinstance(instance, Mapping) or (with_variables and f"v{n}" not in response.data):
                    retry.append(ref)
                    continue
                found.append(
                    _instance_fields(ref, instance, response.data.get(f"v{n}") if with_variables else None)
                )
            states.update((state.ref, state) for state in self._instance_states(found))
            if retry and not missing:
                # Data missing without an error naming it: the server broke its contract.
                raise RailwayInvalidError("incomplete fleet response", operation="FleetObserve")
            pending = retry
        return states

    @staticmethod
    def _instance_states(rows: list[dict[str, Any]]) -> list[ServiceInstanceState]:
        # One validation call for the whole batch: per-instance model construction was most
        # of the CPU of a steady fleet's polls.
        with _shape_of("FleetObserve", "a service instance"):
            return _INSTANCE_STATES.validate_python(rows)


@contextlib.contextmanager
def _shape_of(operation: str, what: str) -> Iterator[None]:
    """A response that does not validate is RailwayInvalidError, without pydantic's message:
    it quotes the input, which may hold variable values."""
    try:
        yield
    except ValidationError:
        raise RailwayInvalidError(f"unexpected response shape for {what}", operation=operation) from None


_INSTANCE_STATES = TypeAdapter(list[ServiceInstanceState])
_SERIES = TypeAdapter(list[MetricSeries])
_ESTIMATES = TypeAdapter(list[EstimatedUsage])
# A workspace of 10,000 services answers about 25 MB of series (half a million samples):
# parsed this many series at a time, letting the event loop run between slices (one
# validation of the whole answer held it for seconds).
USAGE_SLICE = 250


async def _workspace_usage(data: Mapping[str, Any]) -> WorkspaceUsage:
    parts: dict[str, list[Any]] = {}
    for name, adapter in (("usage", _SERIES), ("egress", _SERIES), ("estimated", _ESTIMATES)):
        items = data.get(name) or []
        if not isinstance(items, list):
            raise RailwayInvalidError(f"unexpected response shape for {name}", operation="WorkspaceUsage")
        parsed: list[Any] = []
        for start in range(0, len(items), USAGE_SLICE):
            with _shape_of("WorkspaceUsage", name):
                parsed += adapter.validate_python(items[start : start + USAGE_SLICE])
            await asyncio.sleep(0)
        parts[name] = parsed
    return WorkspaceUsage(**parts)


def _instance_fields(ref: ServiceInstanceRef, instance: Mapping[str, Any], variables: Any) -> dict[str, Any]:
    """One aliased serviceInstance (and its variables) as ServiceInstanceState's fields."""
    domains = instance.get("domains") or {}
    return {
        "ref": ref,
        "found": True,
        "latestDeployment": instance.get("latestDeployment") or None,
        "domains": [
            d["domain"]
            for d in domains.get("serviceDomains") or []
            if isinstance(d, Mapping) and isinstance(d.get("domain"), str)
        ],
        "source": instance.get("source") or None,
        "healthcheckPath": instance.get("healthcheckPath"),
        "numReplicas": instance.get("numReplicas"),
        "region": instance.get("region"),
        "variables": _variables_map("FleetObserve", variables) if variables is not None else None,
    }


def _is_edge_page(response: httpx.Response) -> bool:
    """Railway's edge answers throttling with an HTML page and no rate-limit headers; the
    API itself always answers JSON."""
    content_type = response.headers.get("Content-Type", "").lower()
    if "json" in content_type:
        return False
    return "html" in content_type or response.content.lstrip()[:1] == b"<"


def _alias_slot(alias: str, count: int) -> int | None:
    """'i12' or 'v12' -> 12, when it names a slot of this request."""
    if len(alias) < 2 or alias[0] not in "iv" or not alias[1:].isdigit():
        return None
    slot = int(alias[1:])
    return slot if slot < count else None


def _most_severe(messages: Iterable[str]) -> type[RailwayError]:
    kinds = {classify_message(m) for m in messages}
    return next((kind for kind in _SEVERITY if kind in kinds), RailwayInvalidError)


def _outcome_of(error: RailwayError) -> Outcome:
    # _OUTCOMES lists RailwayRateLimitedError before its base class RailwayRetryableError.
    return next((outcome for kind, outcome in _OUTCOMES.items() if isinstance(error, kind)), Outcome.INVALID)


def _variables_map(operation: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RailwayInvalidError("unexpected response shape for variables", operation=operation)
    return {str(k): "" if v is None else str(v) for k, v in value.items()}
