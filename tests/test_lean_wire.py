"""The load path's lean wire pieces: the HTTP/1.1 response reader and the HPACK encoder."""

from __future__ import annotations

import uuid

import pytest
from hpack import Decoder, Encoder, NeverIndexedHeaderTuple

from fake_providers.apns.h2_lean import LeanEncoder
from simulator.load.http1 import HttpError, ResponseReader


def _feed_bytewise(reader: ResponseReader, data: bytes) -> list:
    out = []
    for i in range(len(data)):
        out += reader.feed(data[i:i + 1])
    return out


def test_reader_reads_sized_answers_in_any_split() -> None:
    wire = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\ncontent-length: 0\r\n\r\n")
    for answers in (ResponseReader().feed(wire), _feed_bytewise(ResponseReader(), wire)):
        assert answers == [(200, [(b"content-type", b"application/json"),
                                  (b"content-length", b"2")], b"{}"),
                           (503, [(b"retry-after", b"7"), (b"content-length", b"0")], b"")]


def test_reader_reads_chunked_and_until_close_and_skips_interim() -> None:
    wire = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n")
    reader = ResponseReader()
    assert _feed_bytewise(reader, wire) == [(200, [(b"transfer-encoding", b"chunked")],
                                             b"abcde")]
    assert reader.keep_alive
    reader = ResponseReader()
    assert reader.feed(b"HTTP/1.0 200 OK\r\n\r\nall of it") == []
    assert not reader.keep_alive
    assert reader.eof() == (200, [], b"all of it")
    closing = ResponseReader()
    closing.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert not closing.keep_alive


@pytest.mark.parametrize("wire", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n",
                                  b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                                  b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                                  b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_reader_refuses_what_is_not_http(wire: bytes) -> None:
    with pytest.raises(HttpError):
        ResponseReader().feed(wire)


def _request(i: int) -> list[tuple[str, str]]:
    return [(":method", "POST"), (":scheme", "https"), (":authority", "127.0.0.1:4000"),
            (":path", f"/3/device/{i:064x}"), ("apns-id", str(uuid.UUID(int=i))),
            ("apns-topic", "com.example.chat"), ("apns-push-type", "alert"),
            ("apns-priority", "10"), ("content-length", str(90 + i % 20))]


def test_lean_encoder_gives_the_decoder_the_same_headers() -> None:
    lean, decoder = LeanEncoder(), Decoder()
    for i in range(300):
        headers = _request(i)
        assert decoder.decode(lean.encode(headers)) == headers
    # ids and paths never reach the dynamic table: what repeats stays indexed
    names = {name for name, _ in lean.header_table.dynamic_entries}
    assert b"apns-id" not in names and b":path" not in names and b"apns-topic" in names
    assert len(lean.encode(_request(7))) < len(Encoder().encode(_request(7), huffman=False))


def test_lean_encoder_keeps_sensitive_headers_and_table_size_changes() -> None:
    lean, decoder = LeanEncoder(), Decoder()
    lean.header_table_size = 256  # as a peer's SETTINGS_HEADER_TABLE_SIZE sets it
    block = lean.encode([NeverIndexedHeaderTuple("authorization", "bearer x"),
                         ("apns-topic", "t")])
    decoded = decoder.decode(block)
    assert decoded == [("authorization", "bearer x"), ("apns-topic", "t")]
    assert isinstance(decoded[0], NeverIndexedHeaderTuple)
    assert decoder.header_table.maxsize == 256


def test_send_results_answer_as_the_model_dumps_them() -> None:
    from app_server.api import SendResultOut, _result
    from app_server.senders import SendResult

    for r in (SendResult("m", "t", 200, None, provider_msg_id="p"),
              SendResult("m", "t", 410, "Unregistered"),
              SendResult("m", "t", 0, "ReadTimeout", maybe_delivered=True, attempts=3),
              SendResult("m", "t", 200, None, canonical_token="new")):
        model = SendResultOut(msg_id=r.msg_id, token=r.token, status=r.status, reason=r.reason,
                              attempts=r.attempts, pruned=r.token_dead,
                              canonical_token=r.canonical_token,
                              provider_msg_id=r.provider_msg_id, outcome=r.outcome)
        assert list(_result(r).items()) == list(model.model_dump().items())


def test_cheap_stream_count_refuses_and_forgets_as_h2_does() -> None:
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import RemoteSettingsChanged
    from h2.exceptions import TooManyStreamsError

    from fake_providers.apns.h2_lean import CheapStreamCount

    class Cheap(CheapStreamCount, H2Connection):
        pass

    client = Cheap(H2Configuration(client_side=True))
    server = H2Connection(H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    server.update_settings({3: 10})  # SETTINGS_MAX_CONCURRENT_STREAMS
    events = client.receive_data(server.data_to_send())
    assert any(isinstance(e, RemoteSettingsChanged) for e in events)
    server.receive_data(client.data_to_send())
    headers = [(":method", "GET"), (":scheme", "https"), (":authority", "x"), (":path", "/")]
    for _round in range(30):  # 10 open at once, then all answered: over and over
        sids = []
        for _ in range(10):
            sid = client.get_next_available_stream_id()
            client.send_headers(sid, headers, end_stream=True)
            sids.append(sid)
        with pytest.raises(TooManyStreamsError):
            client.send_headers(client.get_next_available_stream_id(), headers)
        server.receive_data(client.data_to_send())
        for sid in sids:
            server.send_headers(sid, [(":status", "200")], end_stream=True)
        client.receive_data(server.data_to_send())
        assert client.open_outbound_streams <= 10
        assert len(client.streams) <= 2 * 10 + 64  # closed streams are still dropped


def test_sender_body_is_what_json_dumps_writes() -> None:
    import json

    from simulator.load.sender import Sender
    from simulator.load.worker import APP_ID

    sender = Sender("http://127.0.0.1:1", "key", 10, 1, phase=2)
    for seq, sent_at in ((0, 0.0), (12345, 1764777777.123456), (7, 1e-07)):
        assert sender.body(seq, sent_at) == json.dumps(
            {"title": "load", "body": f"message {seq}", "app": APP_ID,
             "data": {"seq": str(seq), "t": repr(sent_at), "ph": "2"}},
            separators=(",", ":")).encode()
