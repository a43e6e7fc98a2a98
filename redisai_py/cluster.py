"""Placing models on a Redis Cluster: one model on every shard (and the copy
next to your data), or one model per tenant on the tenant's shard.

In Redis Cluster every key of one command must hash to the same slot, so a
model can only run on tensors in its own slot. To serve one model to data
spread over all shards, store a copy of it on every primary under a
hash-tagged name (`bert{7}`, `bert{0}`, ... one tag per shard), and, for a
data key, use the copy on the shard that holds that key, with the input and
output tensors named under the same tag:

    from redis.cluster import RedisCluster
    from redisai_py.cluster import colocated_key, model_key_for, store_model_on_every_shard

    rc = RedisCluster(host="127.0.0.1", port=7000)
    store_model_on_every_shard(rc, "bert", "ONNX", "CPU", blob)
    model = model_key_for(rc, "bert", "doc:42")          # on doc:42's shard
    inp, out = colocated_key(rc, "doc:42", "in:doc:42"), colocated_key(rc, "doc:42", "out:doc:42")
    rc.execute_command("AI.TENSORSET", inp, "FLOAT", 1, 4, "VALUES", 1, 2, 3, 4)
    rc.execute_command("AI.MODELEXECUTE", model, "INPUTS", 1, inp, "OUTPUTS", 1, out)

Scripts work the same way (`store_script_on_every_shard`; `model_key_for`
names a script's copy as well, it only appends the shard's tag), and so do
DAGs: a DAG whose LOAD/PERSIST keys are colocated keys runs on their shard,
and one that loads nothing names the shard with `ROUTING routing_tag_for(...)`:

    script = model_key_for(rc, "prep", "doc:42")
    rc.execute_command("AI.DAGEXECUTE", "ROUTING", routing_tag_for(rc, "doc:42"),
                       "|>", "AI.TENSORSET", "x", "FLOAT", 1, 4, "VALUES", 1, 2, 3, 4,
                       "|>", "AI.SCRIPTEXECUTE", script, "prep", "INPUTS", 1, "x", "OUTPUTS", 1, "y",
                       "|>", "AI.MODELEXECUTE", model, "INPUTS", 1, "y", "OUTPUTS", 1, "z",
                       "|>", "AI.TENSORGET", "z", "VALUES")

A shard's tag is the smallest decimal number whose slot (CRC16, as redis-py
computes it) that shard owns; it follows the slots, so after a failover the
promoted replica answers to the same names. After resharding, call
`store_model_on_every_shard` (and `store_script_on_every_shard`) again:
shards that gained a new tag get a copy. Needs redis-py (`pip install redis`).

Many tenants, one small model each (docs/model_sessions.md): a tenant's
model and its tensors share the `{tenant}` hash tag, so they live on one
shard and the cluster holds every shard's models under each shard's own
loaded-session budget. No copies: each model exists once.

    from redisai_py.cluster import store_tenant_model, tenant_key

    model = store_tenant_model(rc, "acme", "churn", "ONNX", "CPU", blob)   # churn{acme}
    inp, out = tenant_key("acme", "in"), tenant_key("acme", "out")         # in{acme}, out{acme}
    rc.execute_command("AI.TENSORSET", inp, "FLOAT", 1, 4, "VALUES", 1, 2, 3, 4)
    rc.execute_command("AI.MODELEXECUTE", model, "INPUTS", 1, inp, "OUTPUTS", 1, out)
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

__all__ = ["shard_tags", "shard_tag_for", "model_key_for", "colocated_key", "model_keys",
           "routing_tag_for", "store_model_on_every_shard", "delete_model_on_every_shard",
           "store_script_on_every_shard", "delete_script_on_every_shard",
           "tenant_key", "store_tenant_model", "delete_tenant_model"]

Key = str | bytes


def _slot(key: Key) -> int:
    return key_slot(key.encode() if isinstance(key, str) else key)


def _owner(cluster: RedisCluster, slot: int) -> str | None:
    """The name (host:port) of the primary serving `slot`, from the client's
    slot map (redis-py refreshes it on MOVED and after a node fails)."""
    nodes = cluster.nodes_manager.slots_cache.get(slot)
    return nodes[0].name if nodes else None


def _tag_of(cluster: RedisCluster, owner: str) -> str:
    """The smallest decimal number whose slot `owner` serves."""
    for number in range(10 * REDIS_CLUSTER_HASH_SLOTS):  # these numbers hit every slot
        tag = str(number)
        if _owner(cluster, _slot(tag)) == owner:
            return tag
    raise LookupError(f"{owner} serves no slot")


def shard_tags(cluster: RedisCluster) -> dict[str, str]:
    """{primary node name: its hash tag}, for every primary that serves slots."""
    owners = {nodes[0].name for nodes in cluster.nodes_manager.slots_cache.values() if nodes}
    return {owner: _tag_of(cluster, owner) for owner in sorted(owners)}


def shard_tag_for(cluster: RedisCluster, data_key: Key) -> str:
    """The hash tag of the shard that holds `data_key`."""
    slot = _slot(data_key)
    owner = _owner(cluster, slot)
    if owner is None:
        cluster.nodes_manager.initialize()
        owner = _owner(cluster, slot)
        if owner is None:
            raise LookupError(f"slot {slot} of {data_key!r} is not served by any node")
    return _tag_of(cluster, owner)


def _check_name(name: str) -> None:
    if "{" in name or "}" in name:
        raise ValueError(f"{name!r}: the name gets a hash tag appended, so it may not hold braces")


def model_key_for(cluster: RedisCluster, name: str, data_key: Key) -> str:
    """The key of model `name`'s copy on the shard that holds `data_key`."""
    _check_name(name)
    return f"{name}{{{shard_tag_for(cluster, data_key)}}}"


def colocated_key(cluster: RedisCluster, data_key: Key, name: str) -> str:
    """A key called `name` in the slot of the model copies for `data_key`'s shard:
    use it for the input and output tensors of AI.MODELEXECUTE."""
    _check_name(name)
    return f"{name}{{{shard_tag_for(cluster, data_key)}}}"


def routing_tag_for(cluster: RedisCluster, data_key: Key) -> str:
    """`{tag}` of `data_key`'s shard: the value for AI.DAGEXECUTE ... ROUTING."""
    return f"{{{shard_tag_for(cluster, data_key)}}}"


def model_keys(cluster: RedisCluster, name: str) -> list[str]:
    """Every shard's key for model `name`, one per primary."""
    _check_name(name)
    return [f"{name}{{{tag}}}" for tag in shard_tags(cluster).values()]


def _modelstore_args(backend: str, device: str, blob: bytes | Sequence[bytes], *, tag: str | None,
                     batchsize: int | None, minbatchsize: int | None, minbatchtimeout: int | None,
                     inputs: Sequence[str] | None, outputs: Sequence[str] | None,
                     warmup: int | None = None) -> list[object]:
    """AI.MODELSTORE's arguments after the key."""
    args: list[object] = [backend, device]
    if tag is not None:
        args += ["TAG", tag]
    if batchsize is not None:
        args += ["BATCHSIZE", batchsize]
        if minbatchsize is not None:
            args += ["MINBATCHSIZE", minbatchsize]
            if minbatchtimeout is not None:
                args += ["MINBATCHTIMEOUT", minbatchtimeout]
    if warmup is not None:
        args += ["WARMUP", warmup]
    if inputs is not None or outputs is not None:
        args += ["INPUTS", len(inputs or []), *(inputs or []),
                 "OUTPUTS", len(outputs or []), *(outputs or [])]
    chunks = [blob] if isinstance(blob, (bytes, bytearray, memoryview)) else list(blob)
    return [*args, "BLOB", *chunks]


def store_model_on_every_shard(cluster: RedisCluster, name: str, backend: str, device: str,
                               blob: bytes | Sequence[bytes], *, tag: str | None = None,
                               batchsize: int | None = None, minbatchsize: int | None = None,
                               minbatchtimeout: int | None = None,
                               inputs: Sequence[str] | None = None,
                               outputs: Sequence[str] | None = None) -> list[str]:
    """AI.MODELSTORE of one model on every primary; returns the keys stored.

    `blob` may be bytes or a sequence of chunks (each sent as one argument).
    The options are those of AI.MODELSTORE; INPUTS/OUTPUTS are for TF."""
    args = _modelstore_args(backend, device, blob, tag=tag, batchsize=batchsize, minbatchsize=minbatchsize,
                            minbatchtimeout=minbatchtimeout, inputs=inputs, outputs=outputs)
    keys = model_keys(cluster, name)
    for key in keys:
        cluster.execute_command("AI.MODELSTORE", key, *args)
    return keys


def _delete_on_every_shard(cluster: RedisCluster, name: str, command: str) -> int:
    deleted = 0
    for key in model_keys(cluster, name):
        if cluster.exists(key):
            cluster.execute_command(command, key)
            deleted += 1
    return deleted


def delete_model_on_every_shard(cluster: RedisCluster, name: str) -> int:
    """AI.MODELDEL of every shard's copy that exists; returns how many were deleted."""
    return _delete_on_every_shard(cluster, name, "AI.MODELDEL")


def store_script_on_every_shard(cluster: RedisCluster, name: str, device: str, source: str,
                                entry_points: Sequence[str], *, tag: str | None = None) -> list[str]:
    """AI.SCRIPTSTORE of one TorchScript script on every primary; returns the
    keys stored (named like `model_keys`: `name{tag}`, one per shard)."""
    args: list[object] = [device]
    if tag is not None:
        args += ["TAG", tag]
    args += ["ENTRY_POINTS", len(entry_points), *entry_points, "SOURCE", source]
    keys = model_keys(cluster, name)
    for key in keys:
        cluster.execute_command("AI.SCRIPTSTORE", key, *args)
    return keys


def delete_script_on_every_shard(cluster: RedisCluster, name: str) -> int:
    """AI.SCRIPTDEL of every shard's copy that exists; returns how many were deleted."""
    return _delete_on_every_shard(cluster, name, "AI.SCRIPTDEL")


# ---- one model per tenant, on the tenant's shard -------------------------------


def tenant_key(tenant: str, name: str) -> str:
    """`name{tenant}`: a key in the tenant's slot (its model, its tensors)."""
    _check_name(name)
    if not tenant or "{" in tenant or "}" in tenant:
        raise ValueError(f"{tenant!r}: a tenant is a non-empty hash tag without braces")
    return f"{name}{{{tenant}}}"


def store_tenant_model(cluster: RedisCluster, tenant: str, name: str, backend: str, device: str,
                       blob: bytes | Sequence[bytes], *, tag: str | None = None,
                       batchsize: int | None = None, minbatchsize: int | None = None,
                       minbatchtimeout: int | None = None, inputs: Sequence[str] | None = None,
                       outputs: Sequence[str] | None = None, warmup: int | None = None) -> str:
    """AI.MODELSTORE of `tenant`'s model `name` on the one shard that owns the
    tenant's slot; returns its key (`tenant_key(tenant, name)`). Options as
    `store_model_on_every_shard`, plus WARMUP."""
    key = tenant_key(tenant, name)
    cluster.execute_command("AI.MODELSTORE", key, *_modelstore_args(
        backend, device, blob, tag=tag, batchsize=batchsize, minbatchsize=minbatchsize,
        minbatchtimeout=minbatchtimeout, inputs=inputs, outputs=outputs, warmup=warmup))
    return key


def delete_tenant_model(cluster: RedisCluster, tenant: str, name: str) -> bool:
    """AI.MODELDEL of the tenant's model if it exists; whether it did."""
    key = tenant_key(tenant, name)
    if not cluster.exists(key):
        return False
    cluster.execute_command("AI.MODELDEL", key)
    return True
