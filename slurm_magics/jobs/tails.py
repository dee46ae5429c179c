"""Live output of running jobs: incremental tails by offset, ONE batched read per tick.

A display asks to follow files (``TailFollower.follow``): the whole new output of a chosen
task, or only the last line of each running task. Every ``interval`` seconds the follower
reads, for every followed file at once, only the bytes past what it already has: on
this machine in one thread hop, over SSH in one remote command (``stat`` + ``tail -c``
per file, base64-framed), so the cost per tick is one read whatever the number of files.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Sequence

from slurm_magics.jobs.engine import engine
from slurm_magics.transport import LocalTransport, Transport

__all__ = ["FULL_BYTES", "LAST_LINE_BYTES", "Tail", "TailFollower", "follower_for", "read_batch"]

log = logging.getLogger(__name__)

INTERVAL = 0.5  # seconds between batched reads
FULL_BYTES = 1 << 18  # at most this much new output per file and tick (followed task)
LAST_LINE_BYTES = 4096  # of the newest output, for the last line of each running task
KEEP_CHARS = 1 << 20  # of a followed file's text, kept for display

# One remote command for all files: per file "SIZE" then the new bytes in base64.
_BATCH_SCRIPT = r"""
while [ $# -gt 0 ]; do
  o=$1; m=$2; p=$3; shift 3
  s=$(stat -c %s -- "$p" 2>/dev/null || echo -1)
  echo "$s"
  if [ "$s" -gt "$o" ]; then
    if [ $((s - o)) -gt "$m" ]; then o=$((s - m)); fi
    tail -c +$((o + 1)) -- "$p" | head -c $((s - o)) | base64 | tr -d '\n'
  fi
  echo
done
"""

Request = tuple[str, int, int]  # (path, offset, at most this many bytes, the newest)


def _read_local(requests: Sequence[Request]) -> list[tuple[int, bytes]]:
    found = []
    for path, offset, most in requests:
        try:
            with open(path, "rb") as stream:
                size = os.fstat(stream.fileno()).st_size
                start = max(offset, size - most)
                stream.seek(start)
                data = stream.read(size - start) if size > offset else b""
        except FileNotFoundError:
            size, data = -1, b""
        found.append((size, data))
    return found


async def read_batch(transport: Transport, requests: Sequence[Request]) -> list[tuple[int, bytes]]:
    """(size, new bytes) of each file past its offset (the newest ``most`` bytes at most),
    size -1 for a missing file; one thread hop here, one command over other transports."""
    if not requests:
        return []
    if isinstance(transport, LocalTransport):
        return await asyncio.to_thread(_read_local, requests)
    argv = ["sh", "-c", _BATCH_SCRIPT, "sh"]
    for path, offset, most in requests:
        argv += [str(offset), str(most), path]
    result = (await transport.run(argv, timeout=30)).check()
    lines = result.stdout.split("\n")
    found = []
    for index in range(len(requests)):
        size_text, encoded = lines[2 * index], lines[2 * index + 1]
        found.append((int(size_text), base64.b64decode(encoded)))
    return found


@dataclasses.dataclass(eq=False)
class Tail:
    """What was read of one file so far."""

    path: str
    full: bool  # keep everything (a followed task) or only the last line
    offset: int = 0
    text: str = ""
    last_line: str = ""
    #: time.time() when new output last arrived
    updated_at: float | None = None
    decoder: codecs.IncrementalDecoder = dataclasses.field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )

    def add(self, size: int, data: bytes) -> bool:
        """Take a read's result; True if there was new output."""
        if size < 0 or not data:
            return False
        skipped = size - len(data) > self.offset
        self.offset = size
        chunk = self.decoder.decode(data)
        if skipped and not self.full:
            chunk = chunk.partition("\n")[2] if "\n" in chunk else chunk
        if self.full:
            self.text = (self.text + chunk)[-KEEP_CHARS:]
        lines = [line for line in chunk.replace("\r", "\n").split("\n") if line.strip()]
        if lines:
            self.last_line = lines[-1]
        self.updated_at = time.time()
        return True


class TailFollower:
    """Follows files on one transport; one batched read per tick for all of them."""

    def __init__(self, transport: Transport, interval: float = INTERVAL) -> None:
        self.transport = transport
        self.interval = interval
        self.reads = 0  # batched reads made (one per tick with anything followed)
        self._tails: dict[str, Tail] = {}
        self._task: asyncio.Task[None] | None = None

    def follow(self, path: str, *, full: bool) -> Tail:
        """Start following ``path`` (the same ``Tail`` when already followed; ``full``
        once asked is kept). Any thread."""
        tail = self._tails.get(path)
        if tail is None:
            tail = self._tails[path] = Tail(path, full)
        elif full and not tail.full:
            tail.full = True
        engine.spawn(self._start())
        return tail

    def unfollow(self, paths: Sequence[str]) -> None:
        """Stop following ``paths`` (their tails keep what they have)."""
        for path in paths:
            self._tails.pop(path, None)

    @property
    def followed(self) -> list[str]:
        return list(self._tails)

    async def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while self._tails:
            started = time.monotonic()
            try:
                await self.read_once()
            except Exception as error:  # a failed read is retried at the next tick
                log.warning("reading job output failed (%s); retrying", error)
            # ticks at a fixed rate: a slow read (SSH) does not stretch the interval
            await asyncio.sleep(max(self.interval - (time.monotonic() - started), 0.05))

    async def read_once(self) -> int:
        """One batched read of every followed file; returns how many had new output."""
        tails = list(self._tails.values())
        if not tails:
            return 0
        requests = [(t.path, t.offset, FULL_BYTES if t.full else LAST_LINE_BYTES) for t in tails]
        self.reads += 1
        results = await read_batch(self.transport, requests)
        return sum(tail.add(size, data) for tail, (size, data) in zip(tails, results, strict=True))

    async def stop(self) -> None:
        self._tails.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


_followers: dict[int, TailFollower] = {}


def follower_for(transport: Transport) -> TailFollower:
    """The one follower of a transport in this process."""
    follower = _followers.get(id(transport))
    if follower is None or follower.transport is not transport:
        follower = _followers[id(transport)] = TailFollower(transport)
    return follower
