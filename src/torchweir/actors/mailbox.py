"""A node's bounded FIFO of tokens, the weir in front of its kernel.

Admission is bounded by ``capacity`` (the node's ``max_queue``): :meth:`Mailbox.put`
waits for room, :meth:`Mailbox.put_nowait` raises :class:`Overloaded`. Hops inside the
graph use :meth:`Mailbox.deliver`, which never refuses a token that was already admitted
(nothing is lost); the upstream actor instead holds back new batches while this mailbox
is full, so the bound still limits memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from torchweir.actors.clock import Clock
from torchweir.actors.policy import BatchPolicy
from torchweir.actors.request import Token
from torchweir.errors import Overloaded, RuntimeClosed


def _ignore(count: int) -> None:
    """Default arrival hook: nobody listens."""


class Mailbox:
    """Bounded FIFO of :class:`Token` for one node.

    Args:
        node: the node's name, for error messages.
        capacity: the most tokens admitted by ``put``/``put_nowait`` (``max_queue``).
        clock: stamps each token's arrival, which the batch policy's deadline uses.
    """

    def __init__(self, node: str, capacity: int, clock: Clock) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"node {node!r}: max_queue must be an int >= 1, got {capacity!r}")
        self.node = node
        self.capacity = capacity
        self.queue: deque[Token] = deque()
        self.on_arrival: Callable[[int], None] = _ignore
        self._clock = clock
        self._putters: deque[asyncio.Future[None]] = deque()
        self._closed: RuntimeClosed | None = None

    def __len__(self) -> int:
        return len(self.queue)

    def full(self) -> bool:
        """Whether an admission now would have to wait (or be rejected)."""
        return len(self.queue) >= self.capacity

    def has_waiters(self) -> bool:
        """Whether callers are waiting in :meth:`put` (a newcomer queues behind them)."""
        putters = self._putters
        while putters and putters[0].cancelled():
            putters.popleft()
        return bool(putters)

    def put_nowait(self, token: Token) -> None:
        """Admit ``token`` now.

        Raises:
            Overloaded: the mailbox holds ``capacity`` tokens.
            RuntimeClosed: the mailbox was closed.
        """
        if self._closed is not None:
            raise self._closed
        if self.full():
            raise Overloaded(self.node, self.capacity)
        self._append(token)

    async def put(self, token: Token) -> None:
        """Admit ``token``, waiting (first come, first served) while the mailbox is full."""
        if self._closed is not None:
            raise self._closed
        if self.full() or self.has_waiters():
            await self._wait_turn()
        self._append(token)
        if not self.full():
            self._wake_putters()  # room may remain for the next in line

    async def _wait_turn(self) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._putters.append(waiter)
        if not self.full():
            self._wake_putters()  # room already: let the line move (maybe us)
        while True:
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_putters()  # we were woken, then cancelled: pass the turn on
                raise
            if self._closed is not None:
                raise self._closed
            if not self.full():
                return
            waiter = loop.create_future()  # lost the race for the room: keep our place
            self._putters.appendleft(waiter)

    def deliver(self, tokens: list[Token]) -> None:
        """Accept tokens handed on from an upstream node, regardless of capacity."""
        now = self._clock.now()
        for token in tokens:
            token.arrived = now
        self.queue.extend(tokens)
        self.on_arrival(len(tokens))

    def take(
        self, policy: BatchPolicy, now: float, upstream: int, share: int = 1
    ) -> list[Token] | None:
        """Cut the next batch per ``policy``; room it frees goes to waiting putters."""
        batch = policy.take(self.queue, now, upstream, share)
        if batch is not None and self._putters:
            self._wake_putters()
        return batch

    def close(self, error: RuntimeClosed) -> None:
        """Refuse further admissions and wake every waiting putter to raise ``error``."""
        self._closed = error
        while self._putters:
            waiter = self._putters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _append(self, token: Token) -> None:
        token.arrived = self._clock.now()
        self.queue.append(token)
        self.on_arrival(1)

    def _wake_putters(self) -> None:
        room = self.capacity - len(self.queue)
        while room > 0 and self._putters:
            waiter = self._putters.popleft()
            if not waiter.done():  # cancelled waiters are skipped here, lazily
                waiter.set_result(None)
                room -= 1
