"""The YAML lab file ``pushlab up --config`` reads: what the command line says, and more.

.. code-block:: yaml

    devices: 10
    android: 0.3
    apps: [com.example.chat]
    app_server: none
    register:
      url: http://127.0.0.1:9000/devices
      body: {deviceId: "{device}", pushToken: "{token}", os: "{platform}"}

A mistake is one ``file:line: field: reason`` line (:class:`LabFileError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simulator.live.registrar import FIELDS, render


class LabFileError(ValueError):
    """``file:line: field: reason``, ready to print."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterSpec(_Strict):
    url: str | None = None
    body: dict[str, Any] | None = Field(None, description="JSON body template; {device}, "
                                        "{platform}, {app}, {token}, {user}, {provider}")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL")
        return value

    @field_validator("body")
    @classmethod
    def _placeholders(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                render(value, dict.fromkeys(FIELDS, "x"))
            except (KeyError, ValueError, IndexError) as exc:
                raise ValueError(f"unknown placeholder {exc}; use "
                                 + ", ".join("{" + f + "}" for f in FIELDS)) from None
        return value


class LabFileSpec(_Strict):
    devices: int | None = Field(None, ge=1, le=100_000)
    android: float | None = Field(None, ge=0, le=1)
    apps: list[str] | None = None
    broker: str | None = None
    app_server: Literal["builtin", "none"] | None = None
    port_base: int | None = Field(None, ge=1024, le=65_000)
    register_: RegisterSpec | None = Field(None, alias="register")


def read_lab_file(path: Path) -> LabFileSpec:
    """The lab file's settings, or :class:`LabFileError` naming the line."""
    from simulator.scenario_yaml import compose, line_of

    def fail(line: int | None, reason: str, field: str = "") -> LabFileError:
        where = f"{path}:{line}" if line else str(path)
        return LabFileError(f"{where}: {field + ': ' if field else ''}{reason}")

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(None, f"cannot read: {exc}") from None
    node, data = compose(text, fail)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise fail(1, "a mapping of settings (devices, apps, register, ...)")
    try:
        return LabFileSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        reason = first["msg"].removeprefix("Value error, ")
        raise fail(line_of(node, loc), reason, ".".join(str(p) for p in loc)) from None
