"""Routing a finished batch: fail, settle, or hand tokens on to the next actors.

Runs on the loop thread, once per batch. Tokens move on as whole lists (one
``Mailbox.deliver`` per child), keeping the per-request cost of a hop to a few dict
operations. Between nodes the parent's ``result`` becomes the child's ``data``, as
torchpipe's default ``swap`` filter does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torchweir.actors.request import Token
from torchweir.actors.worker import Errors
from torchweir.errors import KernelError

if TYPE_CHECKING:
    from torchweir.actors.actor import Actor


def route(actor: Actor, batch: list[Token], errors: Errors) -> None:
    """Settle or forward every token of a batch that ``actor``'s kernel finished."""
    node = actor.name
    onward: list[Token] = []
    for i, token in enumerate(batch):
        job = token.job
        if errors is not None:
            error = errors[i]
            if error is not None:
                job.fail(error)
                continue
        if job.future.done():
            continue  # cancelled or failed on another branch meanwhile
        if "result" not in token.payload:
            job.fail(KernelError("kernel left no 'result' for this request", node=node))
        elif actor.children:
            onward.append(token)
        else:
            job.reach_leaf(node, token.payload)
    if onward:
        hand_on(onward, actor.children)


def hand_on(tokens: list[Token], children: list[Actor]) -> None:
    """Swap ``result`` into ``data`` and deliver to each child (fan-out copies the dict)."""
    for token in tokens:
        payload = token.payload
        payload["data"] = payload.pop("result")
    first, *others = children
    for child in others:
        copies = []
        for token in tokens:
            token.job.branches += 1
            copies.append(Token(token.job, dict(token.payload)))
        child.mailbox.deliver(copies)
    first.mailbox.deliver(tokens)
