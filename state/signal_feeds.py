"""Institutions' signal feeds in Redis: what the feed stage writes and the API delivers.

Layout (renaming a key is a migration; an institution's keys share its hash tag, so the
script that adds to a feed runs on one node of a Redis Cluster):

    <prefix>:signals:v1:feed:{<institution>}                STREAM  one entry per signal:
                                                            field "s" the signal JSON, "a" the
                                                            authorization ids it came under
    <prefix>:signals:v1:seen:{<institution>}:<id>:<state>   STRING  the feed has this transition
    <prefix>:signals:v1:offsets                             HASH    partition -> next offset
    <prefix>:signals:v1:open:{<enterprise>}                 HASH    rule -> the JSON of its
                                                            open episode's `raised` signal

An entry's stream id is the cursor a reader resumes from. A transition the feed already has
(the same episode id and state, published again after a crash or a replay) is not added
again: the marker and the entry are written by one script. Entries and markers are kept
``retention_days``.

The open episodes are what an institution granted monitoring later is given first: a
lender that starts watching a firm whose inflows stopped a week ago hears of it at once,
not at the next transition.

A stream waiting for its institution's next signal holds no Redis connection: Redis
announces every write to a feed (the API's invalidation listener, state/tracking.py, tracks
the feeds' prefix), and :class:`FeedWakeups` wakes the streams waiting on that feed, which
then read it. Only while the listener is not live does a stream block in XREAD on a
connection of its own, as every stream once did (one connection per open stream).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from state.redis_client import RedisClient

__all__ = ["FeedEntry", "FeedWakeups", "SignalFeeds"]

# The scripts are sent whole (EVAL; Redis keeps them compiled) rather than by their SHA:
# redis-py does not pipeline EVALSHA to a Redis Cluster, and a replica promoted by a
# failover would not know the SHA.

# KEYS: feed, seen marker. ARGV: signal JSON, authorization ids, marker TTL (s), min id.
_ADD = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  return redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[4], '*', 's', ARGV[1], 'a', ARGV[2])
end
return false
"""


# KEYS: open episodes. ARGV: rule, episode id. Closes the rule's episode if it is that one
# (a signal read again after a newer episode of the rule opened leaves the newer one).
_CLOSE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw and cjson.decode(raw)['id'] == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class FeedEntry:
    cursor: str
    signal: bytes  # the JSON published on credit.signals
    authorizations: tuple[str, ...]  # under which the institution was given it


class FeedWakeups:
    """The streams waiting on each feed, woken when Redis announces a write to it.

    Fed by an invalidation listener (``changed``, ``set_live``). A stream registers before
    it reads the feed, so a write after that read is always announced to it; a write before
    it is in what it read (at worst it wakes once for nothing).
    """

    def __init__(self, feed_prefix: str) -> None:
        self.feed_prefix = feed_prefix
        self._prefix = feed_prefix.encode()
        self._waiting: dict[bytes, set[asyncio.Event]] = {}
        self.live = False

    def changed(self, keys: list[bytes] | None) -> None:
        if keys is None:
            self._wake_all()
            return
        for key in keys:
            if key.startswith(self._prefix):
                for event in self._waiting.get(key, ()):
                    event.set()

    def set_live(self, live: bool) -> None:
        self.live = live
        self._wake_all()  # announcements may have been missed: every stream reads again

    @contextlib.contextmanager
    def waiting(self, key: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        waiters = self._waiting.setdefault(key.encode(), set())
        waiters.add(event)
        try:
            yield event
        finally:
            waiters.discard(event)
            if not waiters:
                del self._waiting[key.encode()]

    def _wake_all(self) -> None:
        for waiters in self._waiting.values():
            for event in waiters:
                event.set()


class SignalFeeds:
    def __init__(self, redis: RedisClient, prefix: str, retention_days: int) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:signals:v1:"
        self._retention_s = retention_days * 86_400
        self.offsets_key = f"{self._prefix}offsets"
        self.feed_prefix = f"{self._prefix}feed:"
        # set by the API, whose invalidation listener announces the feeds' writes
        self.wakeups: FeedWakeups | None = None

    def open_key(self, enterprise_id: str) -> str:
        return f"{self._prefix}open:{{{enterprise_id}}}"

    async def track_open(self, signals: Sequence[tuple[str, str, str, str, bytes]]) -> None:
        """Keep each enterprise's open episodes: (enterprise, rule, episode id, state, JSON)
        in the order published; a `raised` opens, any other state closes its episode."""
        pipe = self._redis.pipeline(transaction=False)
        for enterprise_id, rule, signal_id, state, raw in signals:
            if state == "raised":
                pipe.hset(self.open_key(enterprise_id), rule, raw)
            else:
                pipe.eval(_CLOSE, 1, self.open_key(enterprise_id), rule, signal_id)
        if signals:
            await pipe.execute()

    async def open_episodes(self, enterprise_id: str) -> list[bytes]:
        """The `raised` signals of the enterprise's open episodes."""
        raw = await self._redis.hvals(self.open_key(enterprise_id))
        return sorted(cast(list[bytes], raw))

    def feed_key(self, institution: str) -> str:
        return f"{self.feed_prefix}{{{institution}}}"

    def _seen_key(self, institution: str, signal_id: str, state: str) -> str:
        return f"{self._prefix}seen:{{{institution}}}:{signal_id}:{state}"

    async def offsets(self) -> dict[int, int]:
        raw = await self._redis.hgetall(self.offsets_key)
        return {int(p): int(o) for p, o in cast(dict[bytes, bytes], raw).items()}

    async def add(
        self,
        deliveries: Sequence[tuple[str, str, str, bytes, tuple[str, ...]]],
        next_offsets: dict[int, int],
        now_ms: int,
    ) -> int:
        """Add (institution, signal id, state, JSON, authorization ids) to the feeds, then
        advance the partitions' offsets; returns how many were new."""
        min_id = str(now_ms - self._retention_s * 1000)
        pipe = self._redis.pipeline(transaction=False)
        for institution, signal_id, state, raw, authorizations in deliveries:
            pipe.eval(
                _ADD,
                2,
                self.feed_key(institution),
                self._seen_key(institution, signal_id, state),
                raw,
                ",".join(authorizations),
                self._retention_s,
                min_id,
            )
        results = await pipe.execute() if deliveries else []
        if next_offsets:
            await self._redis.hset(
                self.offsets_key, mapping={str(p): o for p, o in next_offsets.items()}
            )
        return sum(1 for r in results if r)

    async def read(self, institution: str, after: str | None, count: int) -> list[FeedEntry]:
        """Entries after the cursor ``after`` (None: from the oldest kept), oldest first."""
        start = "-" if after is None else f"({after}"
        raw = await self._redis.xrange(self.feed_key(institution), start, "+", count=count)
        return [_entry(entry) for entry in cast(list[Any], raw)]

    async def wait(
        self, institution: str, after: str, count: int, block_ms: int
    ) -> list[FeedEntry]:
        """Entries after the cursor ``after`` ("$": new ones only), waiting up to
        ``block_ms`` for one: on an announcement of the feed's writes while they are live
        (no connection held meanwhile), else blocked in XREAD."""
        wakeups = self.wakeups
        if wakeups is not None and wakeups.live and after != "$":
            with wakeups.waiting(self.feed_key(institution)) as written:
                entries = await self.read(institution, after, count)
                if entries:
                    return entries
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(written.wait(), block_ms / 1000)
            return await self.read(institution, after, count)
        raw = await self._redis.xread(
            {self.feed_key(institution): after}, count=count, block=block_ms
        )
        if not raw:
            return []
        return [_entry(entry) for entry in cast(list[Any], raw)[0][1]]

    async def last_cursor(self, institution: str) -> str:
        """The newest entry's cursor ("0-0" for an empty feed)."""
        raw = await self._redis.xrevrange(self.feed_key(institution), "+", "-", count=1)
        return _entry(cast(list[Any], raw)[0]).cursor if raw else "0-0"


def _entry(entry: Any) -> FeedEntry:
    cursor, fields = entry
    authorizations = fields.get(b"a", b"").decode()
    return FeedEntry(
        cursor.decode() if isinstance(cursor, bytes) else cursor,
        fields[b"s"],
        tuple(a for a in authorizations.split(",") if a),
    )
