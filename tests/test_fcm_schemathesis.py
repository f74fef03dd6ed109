"""The FCM look-alike against its own OpenAPI document (schemathesis, every check)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from fake_providers.fcm.lab import build_fcm_lab
from fake_providers.fcm.openapi import openapi_document
from fake_providers.fcm.server import start_fcm_server

pytestmark = pytest.mark.live

PROJECT = "pushlab-demo"
# A well-formed token request can still carry a bad assertion, and a well-formed legacy
# send can name both "to" and "registration_ids": FCM answers those 400, so 400 counts as
# an acceptable answer to schema-valid data there (every other check keeps its defaults).
_SEMANTIC_400 = [{"include-path": path, "checks": {"positive_data_acceptance": {
    "expected-statuses": ["2xx", "400", "401", "403", "404"]}}}
    for path in ("/token", "/fcm/send")]
schema = schemathesis.openapi.from_dict(
    openapi_document(), config=SchemathesisConfig.from_dict({"operations": _SEMANTIC_400}))


@pytest.fixture(scope="module")
def fcm() -> Iterator[tuple[str, str]]:
    """The look-alike on a loopback port, in its own thread: (url, bearer)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}

    async def serve() -> None:
        lab = build_fcm_lab(7, project_id=PROJECT, wall_clock=time.time)
        holder["server"] = await start_fcm_server(lab.core)
        holder["bearer"] = lab.core.bearer_for_tests()
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield holder["server"].url, holder["bearer"]
    asyncio.run_coroutine_threadsafe(holder["server"].close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_the_served_document_is_the_one_tested(fcm: tuple[str, str]) -> None:
    url, _ = fcm
    assert httpx.get(url + "/admin/openapi.json").json() == openapi_document()


@schema.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_fcm_conforms_to_its_openapi_document(case, fcm: tuple[str, str]) -> None:
    url, bearer = fcm
    auth = f"key=pushlab-legacy-key-{PROJECT}" if case.path == "/fcm/send" else \
        f"Bearer {bearer}"
    headers = {"authorization": auth}
    response = case.call(base_url=url, headers=headers)
    case.validate_response(response, headers=headers)
