"""An HTTP client for the REST API, shaped like what apps on a phone ask of their server.

It satisfies the devices' ``AppServerClient`` protocol (``register_token`` and
``poll``) structurally, so live mode can give it to simulated devices in place
of the in-process :class:`~app_server.service.AppServer`.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from app_server.api import API_KEY_HEADER


class AppServerHttpClient:
    """Talks to ``pushlab serve app-server`` (or :func:`app_server.api.make_app`)."""

    def __init__(self, base_url: str, api_key: str,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._session = session
        self._own = session is None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={API_KEY_HEADER: self.api_key})
        return self._session

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        headers = {API_KEY_HEADER: self.api_key}
        async with self._http().request(method, self.base_url + path, headers=headers,
                                        **kw) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def register_token(self, *, user: str | None, device_id: str, app_id: str,
                             platform: str, token: str) -> None:
        body = {"device": device_id, "app": app_id, "platform": platform, "token": token}
        if user is not None:  # omitted: the server keeps whoever is logged in
            body["user"] = user
        await self._call("POST", "/v1/tokens", json=body)

    async def poll(self, *, user: str | None, device_id: str, app_id: str) -> list[dict[str, Any]]:
        params = {"device": device_id, "app": app_id}
        if user is not None:
            params["user"] = user
        body = await self._call("GET", "/v1/poll", params=params)
        return list(body.get("items", []))

    async def login(self, device_id: str, user: str) -> None:
        await self._call("POST", "/v1/login", json={"device": device_id, "user": user})

    async def logout(self, device_id: str) -> None:
        await self._call("POST", "/v1/logout", json={"device": device_id})

    async def send_to_user(self, user: str, **note: Any) -> dict[str, Any]:
        return await self._call("POST", f"/v1/send/user/{user}", json=note)

    async def aclose(self) -> None:
        if self._session is not None and self._own:
            await self._session.close()
        self._session = None
