"""A partition's signal state, in the partition's own store (state/ledger.py lists the keys):

    E|<enterprise>           its state changed since its signals were evaluated (the ledger
                             writes it in the batch that commits the change)
    S|<enterprise>|<rule>    its open episode of a rule (JSON: id, start, evidence)
    G|<enterprise>           its episodes kept for the products, open and closed (JSON, as
                             the views hash's field "e" holds them: state/views.py); a
                             retracted one is removed, a closed one is kept until it ends
                             before the kept history (pruned with the months)
    _signals_day             the as-of day of the last sweep (every enterprise marked again)
    _signals_sweep           how far that sweep has marked: the last enterprise id, or absent
                             once it is done
    _signals_changelog       the offset of the partition's signal-state changelog a restore
                             resumes from (agents/signal_restore.py)

The markers make evaluation survive a crash: what was committed and not evaluated is still
marked when the partition is opened again. The evaluator removes an enterprise's marker in
the batch that stores the episodes it published. A sweep marks the partition's enterprises
a chunk at a time, each chunk's markers in the batch that moves its cursor: a partition of
millions of enterprise-months is never scanned in one go.

The kept episodes are what the quarterly report's signal items count (days of the quarter
under an episode of each rule): an episode opens on its start day and closes on the first
day after it on which the rule no longer held, judged when it was cleared (the as-of day of
its `cleared` signal, or earlier when the data showing the end came late); it covers the
days from the one to the day before the other (an open one, up to the pull's day).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from datetime import date

from engine import codec
from engine.periods import parse_month
from engine.signals.episodes import Episode, State, Transition
from engine.signals.timeline import STREAM_CLASSES, MonthDays
from state.horizon import Carry
from state.kv import KVStore
from state.ledger_types import carry_key, evaluate_key, month_key
from state.month import MonthAgg

__all__ = [
    "CHANGELOG_KEY",
    "SIGNALS_DAY_KEY",
    "SWEEP_KEY",
    "KeptEpisodes",
    "SignalState",
    "encode_kept",
    "encode_snapshot",
    "kept_after",
    "month_days",
]

SIGNALS_DAY_KEY = b"_signals_day"
SWEEP_KEY = b"_signals_sweep"
CHANGELOG_KEY = b"_signals_changelog"
_MARKERS = b"E|"
_KEPT = b"G|"

# (rule, the day it opened) -> the day it closed, None while it is open
KeptEpisodes = dict[tuple[str, date], date | None]


def encode_kept(kept: KeptEpisodes) -> bytes:
    """The kept episodes as stored and published: [[rule, opened, closed or null], ...], in
    the order they opened (then by rule), so that equal episodes encode equally."""
    return codec.dumps(_kept_rows(kept))


def _kept_rows(kept: KeptEpisodes) -> list[list[str | None]]:
    return [
        [rule, opened.isoformat(), None if closed is None else closed.isoformat()]
        for (rule, opened), closed in sorted(kept.items(), key=lambda e: (e[0][1], e[0][0]))
    ]


def _open_doc(episode: Episode) -> dict[str, object]:
    """An open episode as stored under ``S|`` (its rule is in the key)."""
    return {"id": episode.id, "start": episode.start.isoformat(), "evidence": episode.evidence}


def encode_snapshot(kept: KeptEpisodes, open_episodes: Mapping[str, Episode]) -> bytes:
    """An enterprise's record in the signal-state changelog: what ``G|`` and its ``S|`` keys
    hold once the judgement that wrote it is stored."""
    return codec.dumps(
        {
            "kept": _kept_rows(kept),
            "open": {rule: _open_doc(episode) for rule, episode in sorted(open_episodes.items())},
        }
    )


def decode_snapshot(raw: bytes) -> tuple[KeptEpisodes, dict[str, Episode]]:
    """A changelog record (:func:`encode_snapshot`): its kept and open episodes.
    ``ValueError`` when it is not one (the topic is written by the workers alone, but a
    record that cannot be read must not stop a partition's restore)."""
    try:
        doc = codec.loads(raw)
        kept = decode_kept(codec.dumps(doc["kept"]))
        open_episodes = {
            str(rule): Episode(
                str(item["id"]),
                str(rule),
                date.fromisoformat(item["start"]),
                dict(item["evidence"]),
            )
            for rule, item in doc["open"].items()
        }
    except (codec.DecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a signal-state snapshot: {type(exc).__name__}") from exc
    return kept, open_episodes


def decode_kept(raw: bytes) -> KeptEpisodes:
    return {
        (rule, date.fromisoformat(opened)): None if closed is None else date.fromisoformat(closed)
        for rule, opened, closed in codec.loads(raw)
    }


def kept_after(
    kept: KeptEpisodes,
    open_before: dict[str, Episode],
    changes: list[Transition],
    today: date,
) -> KeptEpisodes:
    """The kept episodes once ``changes`` (judged on ``today``) have happened: a raised one
    is open, a cleared one closed on the day its run ended (Transition.closed; ``today``
    when not given), a retracted one never was. An open episode
    not kept yet (stored before episodes were kept) is kept from its start."""
    result = dict(kept)
    for episode in open_before.values():
        result.setdefault((episode.rule, episode.start), None)
    for change in changes:
        key = (change.episode.rule, change.episode.start)
        if change.state == State.RAISED:
            result[key] = None
        elif change.state == State.CLEARED:
            result[key] = change.closed or today
        else:
            result.pop(key, None)
    return result


def month_days(agg: MonthAgg) -> MonthDays:
    """What the rules read of a month aggregate (MonthAgg.days rows: inflow, outflow,
    operating inflow, operating outflow, count). One pass over the days: a firm judged for
    the first time reads all its months, and this was a third of judging it."""
    first_booked: int | None = None
    op_in: dict[int, int] = {}
    op_out: dict[int, int] = {}
    all_in: dict[int, int] = {}
    all_out: dict[int, int] = {}
    for key, (inflow, outflow, operating_in, operating_out, count) in agg.days.items():
        day = int(key)
        if count and (first_booked is None or day < first_booked):
            first_booked = day
        if operating_in:
            op_in[day] = operating_in
        if operating_out:
            op_out[day] = operating_out
        if inflow:
            all_in[day] = inflow
        if outflow:
            all_out[day] = outflow
    marks: dict[str, dict[int, int]] = {}  # as transpose_marks gives them
    for key, amounts in agg.marks.items():
        day = int(key)
        for mark, (amount, _) in amounts.items():
            if amount:
                marks.setdefault(mark, {})[day] = amount
    return MonthDays(
        first_booked,
        op_in,
        op_out,
        {
            account: {int(d): last[2] for d, last in entry["days"].items()}
            for account, entry in agg.accounts.items()
        },
        frozenset(
            (cls, subtype)
            for key, (_, count) in agg.flows.items()
            for direction, cls, subtype, _ in [key.split("|")]
            if direction == "o" and cls in STREAM_CLASSES and count > 0
        ),
        _parties(agg, "TRADE|", nonzero=True),
        _parties(agg, "FIN_PARTNER|", nonzero=False),
        all_in,
        all_out,
        marks,
    )


def _parties(agg: MonthAgg, head: str, nonzero: bool) -> dict[str, int]:
    """Counterparty -> inflow of the month's parties of one class (MonthAgg.parties rows:
    inflow, outflow, count), those with no inflow left out when ``nonzero``."""
    return {
        key[len(head) :]: row[0]
        for key, row in agg.parties.items()
        if key.startswith(head) and (row[0] or not nonzero)
    }


def _episode_key(enterprise_id: str, rule: str) -> bytes:
    return f"S|{enterprise_id}|{rule}".encode()


def _kept_key(enterprise_id: str) -> bytes:
    return _KEPT + enterprise_id.encode()


class SignalState:
    def __init__(self, store: KVStore) -> None:
        self._store = store

    def marked(self) -> Iterator[str]:
        """The enterprises waiting for an evaluation."""
        for key, _ in self._store.scan_prefix(_MARKERS):
            yield key[len(_MARKERS) :].decode()

    def enterprises(self, after: str = "") -> Iterator[str]:
        """The enterprises with a month in the partition's state, in id order, after
        ``after`` (from the first when empty)."""
        last = after
        start = b"M|" + after.encode() + b"|\xff" if after else None  # past its months
        for key, _ in self._store.scan_prefix(b"M|", start):
            enterprise_id = key.split(b"|", 2)[1].decode()
            if enterprise_id != last:
                last = enterprise_id
                yield enterprise_id

    def months(self, enterprise_id: str) -> dict[int, MonthDays]:
        found = {}
        head = f"M|{enterprise_id}|".encode()
        for key, raw in self._store.scan_prefix(head):
            month = parse_month(key[len(head) :].decode())
            assert month is not None  # the ledger writes these keys
            found[month] = month_days(MonthAgg.decode(raw))
        return found

    def carried(self, enterprise_id: str) -> dict[str, int]:
        """Balances of the accounts whose last booking was pruned (state/horizon.py)."""
        raw = self._store.get(carry_key(enterprise_id))
        if raw is None:
            return {}
        return {account: balance for account, (_, balance) in Carry.decode(raw).accounts.items()}

    def month(self, enterprise_id: str, month: int) -> MonthDays | None:
        """One committed month's digest, or None when the month has no data."""
        raw = self._store.get(month_key(enterprise_id, month))
        return None if raw is None else month_days(MonthAgg.decode(raw))

    def episodes(self, enterprise_id: str) -> dict[str, Episode]:
        head = f"S|{enterprise_id}|".encode()
        found = {}
        for key, raw in self._store.scan_prefix(head):
            rule = key[len(head) :].decode()
            doc = codec.loads(raw)
            found[rule] = Episode(
                doc["id"], rule, date.fromisoformat(doc["start"]), doc["evidence"]
            )
        return found

    def kept(self, enterprise_id: str) -> KeptEpisodes:
        """The enterprise's kept episodes, open and closed."""
        raw = self._store.get(_kept_key(enterprise_id))
        return {} if raw is None else decode_kept(raw)

    def with_episodes(self) -> list[str]:
        """The enterprises with an open or a kept episode, in id order."""
        found = {key[len(_KEPT) :].decode() for key, _ in self._store.scan_prefix(_KEPT)}
        found.update(key.split(b"|", 2)[1].decode() for key, _ in self._store.scan_prefix(b"S|"))
        return sorted(found)

    def all_kept(self) -> Iterator[tuple[str, bytes]]:
        """Every enterprise's kept episodes, encoded (for a full republish of the views)."""
        for key, raw in self._store.scan_prefix(_KEPT):
            yield key[len(_KEPT) :].decode(), raw

    def prune_kept(self, horizon: date) -> dict[str, KeptEpisodes]:
        """Forget the episodes closed at or before ``horizon`` (the first day of the kept
        history: they cover no day of it); returns the enterprises whose episodes changed,
        with what they keep. One write batch, idempotent."""
        changes: dict[bytes, bytes | None] = {}
        pruned: dict[str, KeptEpisodes] = {}
        for key, raw in self._store.scan_prefix(_KEPT):
            kept = decode_kept(raw)
            left = {k: closed for k, closed in kept.items() if closed is None or closed > horizon}
            if left != kept:
                changes[key] = encode_kept(left) if left else None
                pruned[key[len(_KEPT) :].decode()] = left
        if changes:
            self._store.write(changes)
        return pruned

    def day(self) -> date | None:
        raw = self._store.get(SIGNALS_DAY_KEY)
        return None if raw is None else date.fromisoformat(raw.decode())

    def start_sweep(self, day: date) -> None:
        """Begin marking every enterprise for an evaluation on ``day`` (a new as-of day)."""
        self._store.write({SIGNALS_DAY_KEY: day.isoformat().encode(), SWEEP_KEY: b""})

    def sweep(self, count: int) -> list[str] | None:
        """Mark the next ``count`` enterprises of the sweep and return them; None when no
        sweep is under way."""
        cursor = self._store.get(SWEEP_KEY)
        if cursor is None:
            return None
        chunk = list(itertools.islice(self.enterprises(cursor.decode()), count))
        changes: dict[bytes, bytes | None] = {evaluate_key(e): b"" for e in chunk}
        changes[SWEEP_KEY] = chunk[-1].encode() if len(chunk) == count else None
        self._store.write(changes)
        return chunk

    def evaluated(
        self,
        episodes: dict[str, tuple[dict[str, Episode], dict[str, Episode]]],
        unmark: list[str],
        kept: dict[str, KeptEpisodes] | None = None,
    ) -> None:
        """Store each enterprise's open episodes (before, after), the kept episodes of those
        in ``kept`` (whose kept episodes changed), and clear the markers of ``unmark``, in
        one batch."""
        changes: dict[bytes, bytes | None] = {evaluate_key(e): None for e in unmark}
        for enterprise_id, episodes_kept in (kept or {}).items():
            changes[_kept_key(enterprise_id)] = (
                encode_kept(episodes_kept) if episodes_kept else None
            )
        for enterprise_id, (before, after) in episodes.items():
            for rule in before.keys() - after.keys():
                changes[_episode_key(enterprise_id, rule)] = None
            for rule, episode in after.items():
                if before.get(rule) != episode:
                    changes[_episode_key(enterprise_id, rule)] = codec.dumps(_open_doc(episode))
        if changes:
            self._store.write(changes)

    def changelog_offset(self) -> int:
        """Where the next restore from the signal-state changelog starts."""
        raw = self._store.get(CHANGELOG_KEY)
        return 0 if raw is None else int(raw)

    def restore(self, snapshots: Mapping[str, bytes | None], next_offset: int) -> list[str]:
        """Make each enterprise's open and kept episodes those of its last changelog record
        (None: a tombstone, none), mark it to be judged, and note ``next_offset``; one batch.
        Returns the enterprises whose record is not a snapshot (:func:`decode_snapshot`):
        their episodes stay as the state has them.

        The changelog is written before the state (agents/signals.py), so its last record
        of an enterprise is never older than what the state holds: applying it again is a
        no-op, and a restore may start anywhere before where the last one ended.
        """
        changes: dict[bytes, bytes | None] = {CHANGELOG_KEY: str(next_offset).encode()}
        malformed: list[str] = []
        for enterprise_id, raw in snapshots.items():
            try:
                kept, open_episodes = ({}, {}) if raw is None else decode_snapshot(raw)
            except ValueError:
                malformed.append(enterprise_id)
                continue
            for key, _ in self._store.scan_prefix(f"S|{enterprise_id}|".encode()):
                changes[key] = None
            changes[_kept_key(enterprise_id)] = encode_kept(kept) if kept else None
            changes[evaluate_key(enterprise_id)] = b""
            for rule, episode in open_episodes.items():
                changes[_episode_key(enterprise_id, rule)] = codec.dumps(_open_doc(episode))
        self._store.write(changes)
        return malformed
