"""TorchScript scripts: compiled next to the data, able to call Redis and models.

A script's source is compiled as a TorchScript CompilationUnit whose global
names `torch`, `redis` and `redisAI` (matched case-insensitively, as RedisAI
does) resolve to op namespaces. Inside a script:

    redis.execute(cmd: str, *args: str) -> Any     a Redis command (replicated), run as the
                                                   ACL user that ran the script, checked first
    redis.asList(reply: Any) -> List[Any]          an array reply as a list
    redisAI.model_execute(key: str, inputs: List[Tensor], n: int) -> List[Tensor]

The ops are Python functions registered with torch.library; TorchScript runs
them with the GIL taken back, and the shim drops the GIL again before it
waits for the Redis lock. Entry points follow RedisAI's convention
`def fn(tensors: List[Tensor], keys: List[str], args: List[str])`; other
functions run in RedisAI's best-effort mode.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np

from redisai_py._errors import RedisAIError

# "RuntimeError: " (TorchScript may repeat it) before an op's own message.
_EXCEPTION_PREFIX = re.compile(r"^(?:[A-Za-z_.]*(?:Error|Exception): )+")

_ops_lock = threading.Lock()
_ops_registered = False
_libraries: list[Any] = []  # torch.library.Library objects must stay alive

ENTRY_SIGNATURE = "def {fn}(tensors: List[Tensor], keys: List[str], args: List[str])"


def _register_ops(run_model: Any) -> None:
    """Defines redis::execute, redis::asList and redisAI::model_execute once."""
    global _ops_registered
    with _ops_lock:
        if _ops_registered:
            return
        import torch

        import _redisai_shim  # type: ignore[import-not-found]

        redis_lib = torch.library.Library("redis", "DEF")
        # CONSERVATIVE: a call has side effects, so TorchScript must not drop
        # one whose result is unused (redis.execute("SET", ...)).
        redis_lib.define("execute(str cmd, str[] args) -> Any", alias_analysis="CONSERVATIVE")
        redis_lib.impl("execute", lambda cmd, args: _redisai_shim.call(cmd, args),
                       "CompositeExplicitAutograd")
        redis_lib.define("asList(Any reply) -> Any[]")
        redis_lib.impl("asList", lambda reply: list(reply) if isinstance(reply, (list, tuple)) else [reply],
                       "CompositeExplicitAutograd")

        ai_lib = torch.library.Library("redisAI", "DEF")
        ai_lib.define("model_execute(str key, Tensor[] inputs, int num_outputs) -> Tensor[]",
                      alias_analysis="CONSERVATIVE")
        ai_lib.impl("model_execute", lambda key, inputs, n: run_model(key, inputs, n),
                    "CompositeExplicitAutograd")
        _libraries.extend([redis_lib, ai_lib])
        _ops_registered = True


def _innermost_message(exc: BaseException) -> str:
    """TorchScript wraps an op's exception in its own traceback; the client
    wants the message the op raised, which is the text after the last
    'Error: ' of the last line that has one. (RedisAI sends the whole
    traceback; see docs/compatibility.md.) A message without such a line is
    sent whole: RedisAIError puts it on one line as RedisAI does, every
    newline a space and every other character kept."""
    text = str(exc)
    for line in reversed(text.splitlines()):
        match = _EXCEPTION_PREFIX.match(line.strip())
        if match:
            return line.strip()[match.end():]
    return text


class CompiledScript:
    """A script's functions, compiled once per stored script."""

    def __init__(self, source: str, device: str, entry_points: tuple[str, ...]) -> None:
        import torch

        self.device = device
        self.entry_points = entry_points
        names = {"torch": torch, "redis": torch.ops.redis, "redisai": torch.ops.redisAI}

        def resolve(name: str) -> Any:
            return names.get(name.lower())

        unit = torch.jit.CompilationUnit()
        if not source.endswith("\n"):
            source += "\n"  # the TorchScript parser needs the last line ended
        try:
            unit.define(source, rcb=resolve)
        except Exception as exc:
            # TorchScript's message as it is: RedisAI sends the compiler's text
            # with each newline made a space and all other characters kept.
            raise RedisAIError(str(exc)) from exc
        self._unit = unit
        for fn in entry_points:
            self._check_entry_point(fn)

    def _function(self, fn: str) -> Any:
        try:
            return self._unit.find_function(fn)
        except Exception:
            return None

    def _check_entry_point(self, fn: str) -> None:
        function = self._function(fn)
        if function is None:
            raise RedisAIError(f"Function {fn} does not exist in the given script.")
        params = function.schema.arguments
        if len(params) != 3:
            raise RedisAIError(f"Wrong number of inputs in function {fn}. Expected 3 but was {len(params)}")
        kinds = [str(p.type) for p in params]
        if kinds != ["List[Tensor]", "List[str]", "List[str]"]:
            raise RedisAIError(f"Wrong inputs type in function {fn}. Expected signature similar to: "
                               + ENTRY_SIGNATURE.format(fn=fn))

    def _best_effort_call(self, fn: str, tensors: list[Any]) -> Any:
        """RedisAI's mode for functions that are not declared entry points:
        Tensor parameters take the inputs in order, a List[Tensor] the rest."""
        function = self._function(fn)
        if function is None:
            raise RedisAIError(f"Function does not exist: {fn}")
        params = function.schema.arguments
        if len(params) > len(tensors):
            raise RedisAIError(f"Wrong number of inputs provided to function: {fn}")
        call_args: list[Any] = []
        for i, param in enumerate(params):
            kind = str(param.type)
            if kind == "Tensor":
                call_args.append(tensors[i])
            elif kind == "List[Tensor]":
                call_args.append(tensors[i:])
                break
            else:
                raise RedisAIError(f"Unsupported input type in function definition: {fn}")
        return function(*call_args)

    def run(self, fn: str, tensors: list[Any], keys: list[str], args: list[str], n_outputs: int) -> list[Any]:
        import torch

        try:
            if fn in self.entry_points:
                result = self._function(fn)(tensors, keys, args)
            else:
                result = self._best_effort_call(fn, tensors)
        except RedisAIError:
            raise
        except Exception as exc:
            raise RedisAIError(_innermost_message(exc)) from exc
        if n_outputs == 0:
            return []
        outputs = list(result) if isinstance(result, (list, tuple)) else [result]
        if not all(isinstance(o, torch.Tensor) for o in outputs):
            raise RedisAIError(f"Function returned non-tensor values{fn}")
        if len(outputs) != n_outputs:
            raise RedisAIError(f"Function returned unexpected number of outputs - {fn}")
        return [o.detach().contiguous().cpu().numpy() for o in outputs]

    def close(self) -> None:
        self._unit = None


def compile_script(source: str, device: str, entry_points: tuple[str, ...], run_model: Any) -> CompiledScript:
    """Compile a stored script; raises RedisAIError with RedisAI's messages."""
    _register_ops(run_model)
    if device.upper().startswith("GPU"):
        # The shim let through only "GPU" and "GPU:<digits>" (RAI_IsScriptDevice).
        # The script's own code decides where its tensors go; the device is
        # checked here so that one the machine lacks fails the store, as a model's does.
        from redisai_py.backends.torch import cuda_device

        _, _, index = device.partition(":")
        cuda_device(int(index) if index else -1)
    return CompiledScript(source, device, entry_points)


def tensors_of(arrays: list[np.ndarray]) -> list[Any]:
    """Torch tensors of the inputs. Copied, not viewed: a script may change
    a tensor in place, and the views are of tensors stored in Redis."""
    import torch

    if any(a.dtype == object for a in arrays):
        raise RedisAIError("ERR STRING tensors cannot be inputs of a TorchScript script")
    return [torch.tensor(a) for a in arrays]
