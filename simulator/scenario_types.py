"""The building blocks scenario models share: strict models, durations, network kinds.

They live apart from :mod:`simulator.scenario` so that :mod:`simulator.actions`
(which the scenario's timeline is built from) can use them too.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from simulator.durations import parse_duration


def duration(value: object) -> float:
    """``"90s"``, ``"2h"``, ``1.5`` ... as seconds."""
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(duration)]
# constraints before the validator, so the JSON Schema says "minimum"
Period = Annotated[float, Field(ge=1.0, description="at least 1s"), BeforeValidator(duration)]
InterfaceKind = Literal["wifi", "lte", "3g", "5g"]
ProviderName = Literal["apns", "fcm", "webpush"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
