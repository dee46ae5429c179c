"""The worker pool's wire protocol (pure, stdlib only; shipped beside the pool worker).

A connection carries frames: a 5-byte header (body length, big-endian ``uint32``; kind,
``uint8``) then the body. Before anything else both sides prove they hold the pool's
secret, as ``multiprocessing.connection`` does: the listener sends a random challenge, the
worker answers with an HMAC of it, the listener says WELCOME or FAILURE; then the worker
challenges the listener the same way. Until both answers check out, frames are at most
``HANDSHAKE_LIMIT`` bytes and nothing is unpickled. The HMAC covers a role prefix so one
side's answer can never be replayed as the other's.

After the handshake, task and result messages are batches of records: each record is a
task id and a few byte strings (a pickled call, a pickled outcome, captured output).
"""

from __future__ import annotations

import hmac
import secrets
import struct
from collections.abc import Iterable, Sequence
from typing import ClassVar

__all__ = [
    "CHALLENGE_SIZE",
    "HANDSHAKE_LIMIT",
    "HEADER",
    "MAX_FRAME",
    "Frame",
    "FrameReader",
    "Kind",
    "ProtocolError",
    "Record",
    "answer",
    "check_answer",
    "encode",
    "new_challenge",
    "new_secret",
    "pack_function",
    "pack_records",
    "unpack_function",
    "unpack_records",
]

HEADER = struct.Struct("!IB")  # body length, kind
_RECORD = struct.Struct("!QH")  # task id, number of parts
_PART = struct.Struct("!I")  # length of one part
_FUNCTION = struct.Struct("!I")  # function id

CHALLENGE_SIZE = 32
HANDSHAKE_LIMIT = 1024  # bytes of a frame's body while not authenticated
MAX_FRAME = 0xFFFFFFFF  # the most a header can say (4 GiB - 1)
_DIGEST = "sha256"
_ROLE_WORKER = b"slurm_magics-pool-worker:"
_ROLE_LISTENER = b"slurm_magics-pool-listener:"


class Kind:
    """Message kinds (one byte on the wire)."""

    CHALLENGE = 1  # body: random bytes to sign
    ANSWER = 2  # body: HMAC of the challenge
    WELCOME = 3  # the answer was right
    FAILURE = 4  # the answer was wrong; the connection closes
    HELLO = 10  # worker -> listener, JSON: worker name, host, pid, SLURM job id
    FUNCTION = 11  # listener -> worker: function id + the function pickled once
    TASKS = 12  # listener -> worker: records (task id, [function id, pickled (args, kwargs)])
    RESULTS = 13  # worker -> listener: records (task id, [pickled outcome, stdout, stderr])
    CANCEL = 14  # listener -> worker: records (task id, []) to drop or interrupt
    RELEASE = 15  # worker -> listener: records of tasks given back unstarted
    HEARTBEAT = 16  # either way, empty: "still here"
    SHUTDOWN = 17  # listener -> worker: finish nothing more and exit
    NAMES: ClassVar[dict[int, str]] = {
        1: "CHALLENGE",
        2: "ANSWER",
        3: "WELCOME",
        4: "FAILURE",
        10: "HELLO",
        11: "FUNCTION",
        12: "TASKS",
        13: "RESULTS",
        14: "CANCEL",
        15: "RELEASE",
        16: "HEARTBEAT",
        17: "SHUTDOWN",
    }


class ProtocolError(Exception):
    """The peer sent something this protocol does not allow (or failed the handshake)."""


Frame = tuple[int, bytes]  # (kind, body)
Record = tuple[int, Sequence[bytes]]  # (task id, parts)


def encode(kind: int, body: bytes = b"") -> bytes:
    """One frame: header and body."""
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"a {len(body)}-byte message is over the {MAX_FRAME}-byte limit")
    return HEADER.pack(len(body), kind) + body


class FrameReader:
    """Cuts a byte stream into frames (sans I/O: feed it what the socket gave).

    ``limit`` caps a body's size; it starts at ``HANDSHAKE_LIMIT`` so an unauthenticated
    peer cannot make us allocate much, and is raised with ``authenticated()``.
    """

    def __init__(self, limit: int = HANDSHAKE_LIMIT) -> None:
        self.limit = limit
        self._buffer = bytearray()

    def authenticated(self, limit: int = MAX_FRAME) -> None:
        """Allow frames of up to ``limit`` bytes from now on."""
        self.limit = limit

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the frames now complete (raises ProtocolError)."""
        self._buffer += data
        frames: list[Frame] = []
        start = 0
        while len(self._buffer) - start >= HEADER.size:
            length, kind = HEADER.unpack_from(self._buffer, start)
            if length > self.limit:
                raise ProtocolError(
                    f"a {Kind.NAMES.get(kind, kind)} frame of {length} bytes is over the "
                    f"{self.limit}-byte limit"
                )
            end = start + HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append((kind, bytes(self._buffer[start + HEADER.size : end])))
            start = end
        del self._buffer[:start]
        return frames

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)


# -- the handshake ----------------------------------------------------------------------
def new_secret() -> bytes:
    """A fresh per-pool secret (32 random bytes)."""
    return secrets.token_bytes(32)


def new_challenge() -> bytes:
    """Random bytes for the peer to sign."""
    return secrets.token_bytes(CHALLENGE_SIZE)


def _role(worker: bool) -> bytes:
    return _ROLE_WORKER if worker else _ROLE_LISTENER


def answer(secret: bytes, challenge: bytes, *, worker: bool) -> bytes:
    """The HMAC a worker (``worker=True``) or the listener sends back for ``challenge``."""
    return hmac.new(secret, _role(worker) + challenge, _DIGEST).digest()


def check_answer(secret: bytes, challenge: bytes, response: bytes, *, worker: bool) -> bool:
    """Whether ``response`` is the right answer to ``challenge`` (constant-time compare)."""
    if len(challenge) != CHALLENGE_SIZE:
        return False
    return hmac.compare_digest(answer(secret, challenge, worker=worker), response)


# -- batches of records ----------------------------------------------------------------
def pack_records(records: Iterable[Record]) -> bytes:
    """Many (task id, parts) records in one body."""
    chunks: list[bytes] = []
    for task_id, parts in records:
        chunks.append(_RECORD.pack(task_id, len(parts)))
        for part in parts:
            chunks.append(_PART.pack(len(part)))
            chunks.append(part)
    return b"".join(chunks)


def unpack_records(body: bytes) -> list[tuple[int, list[bytes]]]:
    """The records of a body made by ``pack_records`` (raises ProtocolError if cut)."""
    records: list[tuple[int, list[bytes]]] = []
    view = memoryview(body)
    offset = 0
    try:
        while offset < len(body):
            task_id, count = _RECORD.unpack_from(view, offset)
            offset += _RECORD.size
            parts: list[bytes] = []
            for _ in range(count):
                (length,) = _PART.unpack_from(view, offset)
                offset += _PART.size
                if offset + length > len(body):
                    raise ProtocolError("a record's part runs past the end of its message")
                parts.append(bytes(view[offset : offset + length]))
                offset += length
            records.append((task_id, parts))
    except struct.error as error:
        raise ProtocolError(f"a batch of records is cut short: {error}") from None
    return records


def pack_function(function_id: int, pickled: bytes) -> bytes:
    """A FUNCTION body: the id tasks refer to it by, then the pickled function."""
    return _FUNCTION.pack(function_id) + pickled


def unpack_function(body: bytes) -> tuple[int, bytes]:
    """(function id, pickled function) of a FUNCTION body."""
    if len(body) < _FUNCTION.size:
        raise ProtocolError(f"a FUNCTION message of {len(body)} bytes has no function id")
    (function_id,) = _FUNCTION.unpack_from(body)
    return function_id, body[_FUNCTION.size :]
