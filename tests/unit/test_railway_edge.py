"""Railway's edge: requests name the operator in the query string, and an HTML 429/403
page (Cloudflare, no JSON, no rate-limit headers) is throttling that pauses the token."""

from __future__ import annotations

import httpx
import pytest

from claw_operator.railway.budget import RateBudget
from claw_operator.railway.client import EDGE_BLOCK_SECONDS
from claw_operator.railway.errors import RailwayAuthError, RailwayRateLimitedError
from tests.unit.railway_fakes import FakeRailway, VirtualTime, make_client, ok

EDGE_PAGE = "<!DOCTYPE html><html><title>Access denied | Error 1015</title><body>rate limited</body></html>"


async def test_every_request_carries_the_source_query() -> None:
    urls: list[httpx.URL] = []
    fake = FakeRailway(default=ok({"projectDelete": True}))
    inner = fake.transport()

    async def spy(request: httpx.Request) -> httpx.Response:
        urls.append(request.url)
        return await inner.handle_async_request(request)

    async with make_client(fake) as client:
        client._http._transport = httpx.MockTransport(spy)  # record what goes on the wire
        await client.delete_project("p1")
    assert urls and all(url.params.get("source") == "claw-operator" for url in urls)


@pytest.mark.parametrize("status", [403, 429])
async def test_an_html_page_from_the_edge_is_throttling_and_pauses_the_token(status: int) -> None:
    time = VirtualTime()
    budget = RateBudget(rps=None, rph=None, clock=time.clock, sleep=time.sleep)
    page = httpx.Response(status, text=EDGE_PAGE, headers={"Content-Type": "text/html"})
    async with make_client(FakeRailway(script=[page]), time, budget=budget, max_retries=0) as client:
        with pytest.raises(RailwayRateLimitedError) as caught:
            await client.delete_project("p1")
    assert caught.value.retry_after is not None and caught.value.retry_after >= EDGE_BLOCK_SECONDS
    assert budget.paused_until >= time.now + EDGE_BLOCK_SECONDS - 1


async def test_a_json_403_stays_an_auth_error() -> None:
    refused = httpx.Response(403, json={"errors": [{"message": "Not Authorized"}]})
    async with make_client(FakeRailway(script=[refused]), max_retries=0) as client:
        with pytest.raises(RailwayAuthError):
            await client.delete_project("p1")
