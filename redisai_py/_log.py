"""Forwards Python `logging` records to the Redis log through the shim."""

from __future__ import annotations

import logging

_LEVELS = (
    (logging.WARNING, "warning"),
    (logging.INFO, "notice"),
    (logging.DEBUG, "verbose"),
)


class RedisLogHandler(logging.Handler):
    """A logging handler whose records end up in the redis-server log file."""

    def emit(self, record: logging.LogRecord) -> None:
        import _redisai_shim  # built into the shim; exists only inside redis-server

        level = next((name for floor, name in _LEVELS if record.levelno >= floor), "debug")
        try:
            _redisai_shim.log(level, self.format(record))
        except Exception:  # a log line must never take a request down
            self.handleError(record)
