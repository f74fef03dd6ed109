"""The app server's REST API against its own OpenAPI document (schemathesis)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app_server.api import openapi_document
from app_server.retry import RetryPolicy
from app_server.server import ServerConfig, start
from fake_providers.apns.lab import build_lab
from simulator.core.http import MemoryTransport

pytestmark = pytest.mark.live

KEY = "schema-key"
schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API on a loopback port, served from its own loop in a thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}
    db = Path(tmp_path_factory.mktemp("api")) / "app.db"

    async def serve() -> None:
        lab = build_lab(seed=3)
        cfg = ServerConfig(api_key=KEY, port=0, db=str(db), retry=RetryPolicy(max_attempts=1))
        holder["server"] = await start(cfg, apns=MemoryTransport(lab.production.handle,
                                                                 latency=0.0))
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield holder["server"].url
    asyncio.run_coroutine_threadsafe(holder["server"].close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_api_conforms_to_its_openapi_document(case, base_url: str) -> None:
    response = case.call(base_url=base_url, headers={"X-API-Key": KEY})
    case.validate_response(response)
