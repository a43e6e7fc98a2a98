"""The exceptions redisai_py raises: one tree, whose text is what the client sees.

The shim turns any of these into an error reply whose text is `str(exc)`,
unchanged: RedisAI sends some texts with the `ERR ` prefix and some without
(raw backend messages, for example), and clients compare them exactly, so the
prefix is part of the message and never added by the shim. RedisAI also puts
an error on one line by turning every newline and carriage return into a
space; the constructor does that here, once, for every error.
"""

from __future__ import annotations

__all__ = ["RedisAIError", "BackendError", "BackendLoadError"]


def one_line(text: str) -> str:
    """`text` with every newline and carriage return replaced by a space, as RedisAI replies."""
    return text.replace("\r", " ").replace("\n", " ")


class RedisAIError(Exception):
    """An error whose `str()` is the exact text of the client's error reply."""

    def __init__(self, reply: str) -> None:
        super().__init__(one_line(reply))

    @property
    def reply(self) -> str:
        """The reply text, with or without the `ERR ` prefix as RedisAI sends it."""
        return str(self.args[0])


class BackendError(RedisAIError, RuntimeError):
    """A backend could not create a model session, or a run failed.

    Adapters raise it from the framework's exception (`raise BackendError(...)
    from exc`), so the original stays on `__cause__` for the log while the
    client gets RedisAI's wording.
    """


class BackendLoadError(RedisAIError, RuntimeError):
    """The framework behind a backend cannot be imported (or the name is not a backend).

    The text says why, for the log; RedisAI's reply to a command that needed
    the backend is `ERR Could not load backend`, which the caller sends.
    """
