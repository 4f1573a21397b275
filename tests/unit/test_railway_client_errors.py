"""Error classification, the wire format, and secrecy of the Railway client."""

from __future__ import annotations

import traceback
from typing import Any

import httpx
import pytest

from claw_operator.railway.accounting import Outcome
from claw_operator.railway.errors import (
    RailwayAuthError,
    RailwayError,
    RailwayInvalidError,
    RailwayNotFoundError,
    RailwayRateLimitedError,
    RailwayRetryableError,
)
from tests.fixtures.common import canary
from tests.unit.railway_fakes import TOKEN, FakeRailway, gql_error, make_client, ok

CLASSIFICATION: list[tuple[str, httpx.Response | Exception, type[RailwayError], Outcome]] = [
    ("not-authorized-in-200", gql_error("Not Authorized"), RailwayAuthError, Outcome.AUTH),
    ("http-401", httpx.Response(401, text="nope"), RailwayAuthError, Outcome.AUTH),
    ("http-403", httpx.Response(403), RailwayAuthError, Outcome.AUTH),
    ("not-found", gql_error("Project not found"), RailwayNotFoundError, Outcome.NOT_FOUND),
    (
        "throttled-in-200",
        gql_error("You're doing that too quickly"),
        RailwayRateLimitedError,
        Outcome.RATE_LIMITED,
    ),
    (
        "rate-limit-text",
        gql_error("Rate limit exceeded, slow down"),
        RailwayRateLimitedError,
        Outcome.RATE_LIMITED,
    ),
    (
        "http-429",
        httpx.Response(429, headers={"Retry-After": "7"}),
        RailwayRateLimitedError,
        Outcome.RATE_LIMITED,
    ),
    ("http-500", httpx.Response(500), RailwayRetryableError, Outcome.RETRYABLE),
    (
        "http-502",
        httpx.Response(502, text="<html>bad gateway</html>"),
        RailwayRetryableError,
        Outcome.RETRYABLE,
    ),
    ("http-503", httpx.Response(503), RailwayRetryableError, Outcome.RETRYABLE),
    ("http-504", httpx.Response(504), RailwayRetryableError, Outcome.RETRYABLE),
    (
        "not-json-200",
        httpx.Response(200, text="<html>proxy</html>"),
        RailwayRetryableError,
        Outcome.RETRYABLE,
    ),
    ("connect-error", httpx.ConnectError("refused"), RailwayRetryableError, Outcome.RETRYABLE),
    ("connect-timeout", httpx.ConnectTimeout("slow"), RailwayRetryableError, Outcome.RETRYABLE),
    ("read-timeout", httpx.ReadTimeout("slow"), RailwayRetryableError, Outcome.RETRYABLE),
    ("dropped", httpx.RemoteProtocolError("peer closed"), RailwayRetryableError, Outcome.RETRYABLE),
    (
        "validation-400",
        gql_error('Cannot query field "nope" on type "Project".', status=400),
        RailwayInvalidError,
        Outcome.INVALID,
    ),
    ("other-graphql-error", gql_error("Problem processing request"), RailwayInvalidError, Outcome.INVALID),
    ("http-400-no-body", httpx.Response(400), RailwayInvalidError, Outcome.INVALID),
    ("http-404-html", httpx.Response(404, text="<html>"), RailwayInvalidError, Outcome.INVALID),
]


@pytest.mark.parametrize(
    ("answer", "expected", "outcome"),
    [case[1:] for case in CLASSIFICATION],
    ids=[case[0] for case in CLASSIFICATION],
)
async def test_classification(
    answer: httpx.Response | Exception, expected: type[RailwayError], outcome: Outcome
) -> None:
    fake = FakeRailway(script=[answer])
    async with make_client(fake, max_retries=0) as client:
        with pytest.raises(RailwayError) as caught:
            await client.get_project("p1")
    # Exact type: a RateLimited where a plain Retryable is expected would be a wrong class.
    assert type(caught.value) is expected
    assert caught.value.operation == "Project"
    assert client.accounting.count("Project", outcome) == 1
    if isinstance(answer, Exception):
        assert caught.value.__cause__ is answer, "httpx's exception is chained, not swallowed"


async def test_retry_after_is_read_from_429() -> None:
    fake = FakeRailway(script=[httpx.Response(429, headers={"Retry-After": "7"})])
    async with make_client(fake, max_retries=0) as client:
        with pytest.raises(RailwayRateLimitedError) as caught:
            await client.get_project("p1")
    assert caught.value.retry_after == 7.0
    assert caught.value.status_code == 429


async def test_retry_after_as_http_date() -> None:
    # make_client's wall clock is 1_700_000_000 = Tue, 14 Nov 2023 22:13:20 GMT.
    fake = FakeRailway(script=[httpx.Response(429, headers={"Retry-After": "Tue, 14 Nov 2023 22:13:50 GMT"})])
    async with make_client(fake, max_retries=0) as client:
        with pytest.raises(RailwayRateLimitedError) as caught:
            await client.get_project("p1")
    assert caught.value.retry_after == 30.0


async def test_request_wire_format() -> None:
    fake = FakeRailway(script=[ok({"projectDelete": True})])
    async with make_client(fake) as client:
        assert await client.delete_project("p1") is True
    (sent,) = fake.sent
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.operation == "ProjectDelete"
    assert sent.variables == {"id": "p1"}
    assert "projectDelete(id: $id)" in sent.query


async def test_mixed_errors_most_severe_wins() -> None:
    answer = httpx.Response(
        200, json={"data": None, "errors": [{"message": "Service not found"}, {"message": "Not Authorized"}]}
    )
    async with make_client(FakeRailway(script=[answer]), max_retries=0) as client:
        with pytest.raises(RailwayAuthError):
            await client.get_project("p1")


async def test_unexpected_response_shape_is_invalid_without_echo() -> None:
    secret = canary("shape")
    answer = ok({"project": {"id": 1, "name": secret, "environments": "wrong"}})
    async with make_client(FakeRailway(script=[answer])) as client:
        with pytest.raises(RailwayInvalidError) as caught:
            await client.get_project("p1")
    assert secret not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def _echo_everything(token: str) -> Any:
    """A server that echoes the token and every variable back in its errors, the worst
    case of Railway's validation messages."""

    def respond(body: dict[str, Any]) -> httpx.Response:
        echoed = repr(body["variables"])
        return httpx.Response(
            200,
            json={
                "errors": [
                    {"message": f'Variable "$input" got invalid value {echoed}; Expected type "String"'},
                    {"message": f"Project {body['variables']} not found for {token}"},
                ]
            },
        )

    return respond


def _everything_said(error: BaseException) -> str:
    return "\n".join(
        [str(error), repr(error), getattr(error, "message", ""), *traceback.format_exception(error)]
    )


async def test_no_secret_in_exception_text() -> None:
    token = canary("token")
    value = canary("variable-value")
    fake = FakeRailway(default=_echo_everything(token))
    async with make_client(fake, token=token, max_retries=0) as client:
        with pytest.raises(RailwayError) as caught:
            await client.upsert_variables(
                project_id="p", environment_id="e", service_id="s", variables={"OPENAI_API_KEY": value}
            )
        text = _everything_said(caught.value)
        assert token not in text and value not in text
        assert "VariableCollectionUpsert" in text, "the operation name stays, so the error is still useful"

        # The same canaries through a 5xx page and a network error.
        fake.default = httpx.Response(502, text=f"upstream said {value} {token}")
        with pytest.raises(RailwayRetryableError) as caught:
            await client.create_service(project_id="p", environment_id="e", name="n", variables={"K": value})
        text = _everything_said(caught.value)
        assert token not in text and value not in text

        fake.default = httpx.ConnectError("connection refused")
        with pytest.raises(RailwayRetryableError) as caught:
            await client.upsert_variables(
                project_id="p", environment_id="e", service_id="s", variables={"K": value}
            )
        text = _everything_said(caught.value)
        assert token not in text and value not in text


async def test_long_messages_are_cut() -> None:
    fake = FakeRailway(script=[gql_error("x" * 5000)])
    async with make_client(fake) as client:
        with pytest.raises(RailwayInvalidError) as caught:
            await client.get_project("p1")
    assert len(caught.value.message) < 400
