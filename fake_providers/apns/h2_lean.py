"""Cheaper ``h2`` for many short streams: an HPACK encoder for headers whose values are
new in every request (ids, paths), and stream counting that is not a scan per stream.

``hpack``'s encoder Huffman-codes every value and adds every header it has not
seen to the dynamic table. For an APNs request or answer most of the header block
is a fresh ``apns-id`` and a token's ``:path``: indexing them only evicts the
headers that do repeat, and Huffman coding them costs more CPU on both ends than
the bytes it saves on loopback. :class:`LeanEncoder` writes those as literals
without indexing (RFC 7541 6.2.2) and every value uncompressed; the other headers
are indexed as before. A decoder reads the same header list either way.

``h2`` counts a connection's open streams by scanning every stream it holds (and
drops the closed ones) each time a stream opens; :class:`CheapStreamCount` answers
from the number it holds while that is under the limit, and scans only once that
number has grown by the open streams of the last scan plus 64.
"""

from __future__ import annotations

from collections.abc import Iterable

from hpack import Encoder
from hpack.hpack import encode_integer
from hpack.table import HeaderTable

# header names whose value is new in (nearly) every request or answer
UNIQUE_VALUES = frozenset((b":path", b"apns-id", b"apns-unique-id", b"apns-expiration"))
_STATIC_NAME: dict[bytes, int] = {}
for _i, (_name, _) in enumerate(HeaderTable.STATIC_TABLE, 1):
    _STATIC_NAME.setdefault(_name, _i)


def literal_not_indexed(name: bytes, value: bytes) -> bytes:
    """RFC 7541 6.2.2: a literal field without indexing, no Huffman coding."""
    idx = _STATIC_NAME.get(name)
    if idx is not None:
        head = bytes(encode_integer(idx, 4))  # the static table's name, 4-bit prefix 0000
    else:
        head = b"\x00" + bytes(encode_integer(len(name), 7)) + name
    return head + bytes(encode_integer(len(value), 7)) + value


class LeanEncoder(Encoder):
    """``hpack.Encoder`` that never indexes :data:`UNIQUE_VALUES` and never Huffman-codes.

    Header table size changes the peer asks for are still sent first, as ``hpack``
    does; a header marked sensitive (a ``NeverIndexedHeaderTuple`` or a third item
    True) keeps its never-indexed form."""

    def encode(self, headers: Iterable[tuple[bytes | str, bytes | str]]  # type: ignore[override]
               | Iterable[tuple[bytes | str, bytes | str, bool]], huffman: bool = True) -> bytes:
        parts: list[bytes] = []
        if self.table_size_changes:
            parts.append(self._encode_table_size_change())
        add = self.add
        for header in headers:
            name, value = header[0], header[1]
            if type(name) is not bytes:
                name = name.encode("utf-8") if isinstance(name, str) else bytes(name)
            if type(value) is not bytes:
                value = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            sensitive = (len(header) > 2 and bool(header[2])) or \
                getattr(header, "indexable", True) is False
            if sensitive:
                parts.append(add((name, value), True, False))
            elif name in UNIQUE_VALUES:
                parts.append(literal_not_indexed(name, value))
            else:
                parts.append(add((name, value), False, False))
        return b"".join(parts)


class CheapStreamCount:
    """Mixin for ``h2.connection.H2Connection``: the same limit decisions, fewer scans.

    ``h2`` compares the open count with SETTINGS_MAX_CONCURRENT_STREAMS only; any
    number of held streams (open or closed) below both the limit and the next scan's
    mark gives the same decision as the exact count, which never exceeds it. The
    scan still drops closed streams, so at most ``2 * open + 64`` are held."""

    _scan_at = 64
    streams: dict[int, object]

    def _cheap(self, inbound: bool) -> int:
        cls = super()
        limit = (self.local_settings if inbound else self.remote_settings  # type: ignore[attr-defined]
                 ).max_concurrent_streams
        held = len(self.streams)
        if held < self._scan_at and held < limit:
            return held
        count = (cls.open_inbound_streams if inbound  # type: ignore[misc]
                 else cls.open_outbound_streams)
        self._scan_at = 2 * count + 64
        return count

    @property
    def open_inbound_streams(self) -> int:
        return self._cheap(True)

    @property
    def open_outbound_streams(self) -> int:
        return self._cheap(False)
