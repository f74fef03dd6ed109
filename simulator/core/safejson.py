"""JSON from strangers: a parse that refuses what would crash or stall the parser.

``json.loads`` raises ``RecursionError`` on a body nested a few thousand levels
deep and a bare ``ValueError`` on an integer longer than Python's int-to-str
limit (4,300 digits); neither is a ``JSONDecodeError``, so a server that
catches only that answers 500. :func:`loads` turns both, and every other
malformed body, into one :class:`JsonRejected` with a one-line reason, and
refuses nesting deeper than ``max_depth`` before parsing at all. Every HTTP
front end in the lab (the FCM look-alike, the admin APIs, the app server)
parses request bodies with it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted. Protocol-buffer JSON parsers stop at
100 by default; no push request comes near either (an FCM send nests about 6 deep)."""

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class JsonRejected(ValueError):
    """A body that is not acceptable JSON; ``str()`` is the one-line reason."""


def depth(body: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` in ``body``, strings skipped, without parsing."""
    deepest = level = 0
    for m in _TOKENS.finditer(body):
        c = m.group()
        if c in (b"[", b"{"):
            level += 1
            if level > deepest:
                deepest = level
        elif c in (b"]", b"}"):
            level -= 1
    return deepest


def loads(body: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``body``; raise :class:`JsonRejected` for anything that is not sane JSON.

    ``NaN`` and ``Infinity`` are refused too: they are not JSON (RFC 8259), though
    Python's parser takes them by default; so is a number too large for a double
    (``1e400``), which Python would silently turn into infinity.
    """
    raw = body.encode() if isinstance(body, str) else body
    # Fast path: a body with fewer brackets than the limit cannot nest deeper than it.
    if raw.count(b"[") + raw.count(b"{") > max_depth and depth(raw) > max_depth:
        raise JsonRejected(f"JSON nested deeper than {max_depth} levels")
    try:
        # json.loads(raw, ...) with these hooks builds a decoder each call: half its cost
        return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except json.JSONDecodeError as exc:
        raise JsonRejected(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise JsonRejected("invalid UTF-8") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise JsonRejected(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # int-to-str digit limit, NaN/Infinity, 1e400
        raise JsonRejected(str(exc).split(";")[0]) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)
