"""dramatiq's `RedisBroker.enqueue`, from the event loop (`redis.asyncio`): the intake's jobs reach Redis without a
thread-pool hop (issue 9.1), and several in one round trip.

The message is the one `actor.send_with_options(args=..., delay=...)` would write — same Redis message id, delay queue
(`<queue>.DQ`) and `eta` for a delayed job, the broker's `before_enqueue` / `after_enqueue` middleware (request id,
metrics) — stored by dramatiq's own `dispatch` Lua script with the broker's arguments, so a worker cannot tell the
two apart. One difference: the intake never asks for the script's occasional maintenance pass (requeueing the jobs
of dead workers), which the workers' own calls do (`MAINTENANCE_CHANCE`); the intake stays lean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name

from app.platform import aredis


@dataclass(frozen=True)
class Job:
    actor: dramatiq.Actor[Any, Any]
    args: tuple[str, ...]
    delay: int | None = None


class AsyncQueue:
    """Enqueue on `broker` (a `RedisBroker`) through `client` (the process's asyncio Redis)."""

    def __init__(self, broker: RedisBroker, client: aredis.Client) -> None:
        self.broker = broker
        self.client = client
        text = broker.scripts["dispatch"].script
        self._dispatch = aredis.Script.of(text if isinstance(text, (str, bytes)) else bytes(text))

    async def send(self, jobs: Sequence[Job]) -> list[BaseException | None]:
        """Enqueue the jobs in one round trip: for each, None once it is stored, or the error Redis answered it with.
        An unreachable Redis raises (`redis.exceptions.ConnectionError` / `TimeoutError`)."""
        if not jobs:
            return []
        prepared = [self._prepare(job) for job in jobs]
        calls = [aredis.Call(self._dispatch, [self.broker.namespace], self._args(queue, message))
                 for queue, message in prepared]
        replies = await self.client.run(calls)
        out: list[BaseException | None] = []
        for (_, message), job, reply in zip(prepared, jobs, replies, strict=True):
            if isinstance(reply, BaseException):
                out.append(reply)
                continue
            self.broker.emit_after("enqueue", message, job.delay)
            out.append(None)
        return out

    def _prepare(self, job: Job) -> tuple[str, dramatiq.Message[Any]]:
        """What `RedisBroker.enqueue` does before it writes: a fresh Redis message id, the delay queue and eta, the
        `before_enqueue` middleware."""
        message = job.actor.message_with_options(args=job.args)
        queue_name = message.queue_name
        message = message.copy(options={"redis_message_id": str(uuid4())})
        if job.delay is not None:
            queue_name = dq_name(queue_name)
            message = message.copy(queue_name=queue_name, options={"eta": current_millis() + job.delay})
        self.broker.emit_before("enqueue", message, job.delay)
        return queue_name, message

    def _args(self, queue_name: str, message: dramatiq.Message[Any]) -> list[str | int | bytes]:
        b = self.broker
        # dispatch(command, timestamp, queue, worker id, heartbeat timeout, dead message ttl, do maintenance,
        # max unpack size (used by the maintenance only), then the command's: message id, message data)
        return ["enqueue", current_millis(), queue_name, b.broker_id, b.heartbeat_timeout, b.dead_message_ttl, 0,
                1000, message.options["redis_message_id"], message.encode()]
