"""Changes of access state, as the API makes them: append a command to the access log, then
wait for the access stage's answer.

The log (one partition) orders every change, so two API processes changing the same
authorization at once are decided one after the other, by the same rules, in the order the
broker took them. The answer is the entity as changed, or the refusal.
"""

from __future__ import annotations

import asyncio

import msgspec

from engine.access.commands import Command, Entity, encode_command, entity_key
from engine.api.access_view import AccessView
from engine.api.errors import ApiError
from engine.api.producer import AsyncProducer, DeliveryError
from engine.events.topics import ACCESS_LOG_TOPIC
from state.access import decode_entity

__all__ = ["AccessLog"]


class _Answer(msgspec.Struct):
    ok: bool
    kind: str = ""
    entity: msgspec.Raw = msgspec.Raw(b"null")
    status: int = 0
    code: str = ""
    message: str = ""


_answers = msgspec.json.Decoder(_Answer)


class AccessLog:
    def __init__(self, producer: AsyncProducer, view: AccessView, timeout: float) -> None:
        self._producer = producer
        self.view = view
        self._timeout = timeout

    async def submit(self, command: Command) -> Entity:
        """The entity the command produced; ApiError with the refusal otherwise."""
        await self._append(command)
        raw = await self.view.wait_result(command.id, self._timeout)
        entity = _entity(command, raw, self._timeout)
        self.view.forget(entity_key(entity))  # this process reads its own change at once
        return entity

    async def submit_many(self, commands: list[Command]) -> list[Entity | ApiError]:
        """Each command's entity or refusal, the commands appended together (provisioning)."""
        await asyncio.gather(*(self._append(command) for command in commands))
        answers = await self.view.wait_results([c.id for c in commands], self._timeout)
        results: list[Entity | ApiError] = []
        for command, raw in zip(commands, answers, strict=True):
            try:
                entity = _entity(command, raw, self._timeout)
                self.view.forget(entity_key(entity))
                results.append(entity)
            except ApiError as exc:
                results.append(exc)
        return results

    async def _append(self, command: Command) -> None:
        try:
            await self._producer.send(ACCESS_LOG_TOPIC, None, encode_command(command), 0)
        except DeliveryError as exc:
            raise ApiError(
                503, "access_log_unavailable", "the access log is not reachable; nothing changed"
            ) from exc


def _entity(command: Command, raw: bytes | None, timeout: float) -> Entity:
    if raw is None:
        raise ApiError(
            503,
            "not_applied_yet",
            f"the change is logged (request {command.id}) but was not applied within "
            f"{timeout:.0f} s; it takes effect when the access stage applies it",
        )
    answer = _answers.decode(raw)
    if not answer.ok:
        raise ApiError(answer.status, answer.code, answer.message)
    return decode_entity(answer.kind, bytes(answer.entity))
