"""Actors: batching policy, mailboxes, instance threads and routing (no public names)."""
