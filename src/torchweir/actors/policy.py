"""When to cut a batch: a pure, synchronous policy with the clock passed in.

The async shell (:mod:`torchweir.actors.actor`) only asks two questions of it: "is there a
batch now?" (:meth:`BatchPolicy.take`) and "when should I ask again?"
(:meth:`BatchPolicy.deadline`). Keeping the decision here, free of the event loop, is
what lets property tests check it exhaustively without sleeping.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol, TypeVar


class Arrival(Protocol):
    """Anything queued: it only has to say when it arrived (clock seconds)."""

    @property
    def arrived(self) -> float: ...


T = TypeVar("T", bound=Arrival)


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """Cut FIFO batches of at most ``max_batch`` items.

    A batch is cut as soon as any of these holds:

    * ``max_batch`` items are queued (the batch is full);
    * nothing is in flight upstream that could still join (``upstream == 0``): waiting
      would only add latency, since no item can arrive in-process;
    * the oldest item has waited ``timeout`` seconds.

    Args:
        max_batch: the largest batch a kernel may receive (torchpipe's ``max``).
        timeout: seconds the oldest item may wait for batch-mates (torchpipe's
            ``batching_timeout``, which configs give in milliseconds).
    """

    max_batch: int = 1
    timeout: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int):
            raise TypeError(f"max_batch must be an int, got {self.max_batch!r}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if not self.timeout >= 0:  # also rejects NaN
            raise ValueError(f"timeout must be >= 0 seconds, got {self.timeout!r}")

    def take(
        self, queue: deque[T], now: float, upstream: int = 0, share: int = 1
    ) -> list[T] | None:
        """Pop and return the next batch, or ``None`` if it should wait.

        Args:
            queue: the mailbox contents, oldest first; popped from the left.
            now: the current clock time in seconds.
            upstream: how many requests are in flight upstream and could still arrive.
            share: how many idle instances the queue will be spread over. A batch then
                takes only its fair part, ``ceil(len(queue) / share)``, so that 64 queued
                images go to 8 idle decoders as 8 x 8 rather than 64 x 1.
        """
        if not queue:
            return None
        size = len(queue)
        if size < self.max_batch and upstream > 0 and now < queue[0].arrived + self.timeout:
            return None
        count = min(size, self.max_batch, -(-size // max(share, 1)))
        return [queue.popleft() for _ in range(count)]

    def deadline(self, queue: deque[T]) -> float | None:
        """The clock time at which the oldest queued item must go, or ``None`` if empty."""
        return queue[0].arrived + self.timeout if queue else None
