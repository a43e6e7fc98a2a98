"""Before/after views of a server's keyspace, for the end of every
bad-input story: the server still answers and nothing stored has changed."""

from __future__ import annotations

import redis


def snapshot(client: redis.Redis) -> dict[bytes, bytes]:
    """Every key with its DUMP payload (type, encoding and exact content)."""
    return {key: client.dump(key) for key in client.keys("*")}


def assert_intact(client: redis.Redis, before: dict[bytes, bytes]) -> None:
    assert client.ping() is True
    assert snapshot(client) == before
