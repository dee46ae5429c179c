"""The pool's wire protocol: framing, the HMAC handshake's answers, batches of records."""

from __future__ import annotations

import pytest

from slurm_magics.core import pool_protocol as protocol
from slurm_magics.core.pool_protocol import Kind


def test_frames_survive_any_split_of_the_stream() -> None:
    stream = b"".join(
        [
            protocol.encode(Kind.HELLO, b'{"worker": "w"}'),
            protocol.encode(Kind.HEARTBEAT),
            protocol.encode(Kind.RESULTS, b"x" * 300),
        ]
    )
    for step in (1, 2, 5, 7, 64, len(stream)):
        reader = protocol.FrameReader()
        frames = []
        for start in range(0, len(stream), step):
            frames += reader.feed(stream[start : start + step])
        assert frames == [
            (Kind.HELLO, b'{"worker": "w"}'),
            (Kind.HEARTBEAT, b""),
            (Kind.RESULTS, b"x" * 300),
        ]
        assert reader.pending == 0


def test_a_big_frame_is_refused_from_its_header_before_authentication() -> None:
    reader = protocol.FrameReader()
    header = protocol.HEADER.pack(10_000_000, Kind.TASKS)  # the body never has to arrive
    with pytest.raises(protocol.ProtocolError, match="TASKS frame of 10000000 bytes"):
        reader.feed(header)
    reader = protocol.FrameReader()
    reader.authenticated()
    assert reader.feed(header) == []  # allowed once authenticated; waits for the body
    assert reader.pending == protocol.HEADER.size


def test_answers_check_only_with_the_secret_and_the_right_role() -> None:
    secret, challenge = protocol.new_secret(), protocol.new_challenge()
    good = protocol.answer(secret, challenge, worker=True)
    assert protocol.check_answer(secret, challenge, good, worker=True)
    assert not protocol.check_answer(protocol.new_secret(), challenge, good, worker=True)
    # a worker's answer replayed as the listener's (a reflection) does not pass
    assert not protocol.check_answer(secret, challenge, good, worker=False)
    assert not protocol.check_answer(secret, protocol.new_challenge(), good, worker=True)
    assert not protocol.check_answer(secret, b"short", good, worker=True)
    assert not protocol.check_answer(secret, challenge, b"", worker=True)


def test_records_round_trip_and_cut_batches_are_errors() -> None:
    records = [(0, [b"call"]), (2**40, [b"", b"out", b"err" * 1000]), (7, [])]
    body = protocol.pack_records(records)
    assert protocol.unpack_records(body) == [(i, list(parts)) for i, parts in records]
    assert protocol.unpack_records(b"") == []
    with pytest.raises(protocol.ProtocolError):
        protocol.unpack_records(body[:-1])
    with pytest.raises(protocol.ProtocolError):
        protocol.unpack_records(body[:5])


def test_function_bodies() -> None:
    assert protocol.unpack_function(protocol.pack_function(42, b"pickled")) == (42, b"pickled")
    with pytest.raises(protocol.ProtocolError, match="no function id"):
        protocol.unpack_function(b"ab")
