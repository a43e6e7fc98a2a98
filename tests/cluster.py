"""A real Redis Cluster for tests: primaries and replicas, the module on every node.

`Cluster(workdir).start()` starts 2 * primaries redis-server processes (the
module loaded with the same arguments everywhere) on free loopback ports
below 55535 whose cluster bus port (+10000) is free too, then joins them with
`redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes` and waits
until every node agrees the cluster is healthy and every replica is in sync.

Each node keeps its cluster config file (nodes.conf), log and data in its
own directory, so a node that was killed can be started again on the same
port and rejoins with its old identity. `cluster-node-timeout` is small
(2000 ms by default), so a primary that dies is failed over in seconds.
Nodes are stopped by PID, never by name.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from conftest import RedisServer, free_port

REDIS_CLI = "/usr/bin/redis-cli"


@dataclass(frozen=True)
class NodeView:
    """One line of CLUSTER NODES, as a live node sees the cluster."""

    node_id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None  # for a replica, the id of its primary
    link_state: str
    slots: tuple[tuple[int, int], ...]  # inclusive ranges

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return "fail" in self.flags or "fail?" in self.flags


def parse_cluster_nodes(text: str) -> dict[str, NodeView]:
    views: dict[str, NodeView] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@", 1)[0]
        slots: list[tuple[int, int]] = []
        for item in fields[8:]:
            if item.startswith("["):  # a slot being imported or migrated
                continue
            low, _, high = item.partition("-")
            slots.append((int(low), int(high or low)))
        views[fields[0]] = NodeView(
            node_id=fields[0],
            port=int(address.rsplit(":", 1)[1]),
            flags=frozenset(fields[2].split(",")),
            primary_id=None if fields[3] == "-" else fields[3],
            link_state=fields[7],
            slots=tuple(slots),
        )
    return views


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> float:
    """Polls until predicate() is true; returns the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return time.monotonic() - start
        except (redis.RedisError, OSError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")


class Cluster:
    """`primaries` primaries with `replicas` replicas each, on loopback."""

    def __init__(self, workdir: Path, module_args: list[str] | None = None,
                 server_args: list[str] | None = None, primaries: int = 3, replicas: int = 1,
                 node_timeout_ms: int = 2000) -> None:
        self.workdir = workdir
        self.replicas_per_primary = replicas
        self.node_timeout_ms = node_timeout_ms
        ports: list[int] = []
        while len(ports) < primaries * (1 + replicas):
            port = free_port(bus=True)
            if all(abs(port - p) not in (0, 10000) for p in ports):
                ports.append(port)
        self.nodes: list[RedisServer] = []
        for port in ports:
            node_dir = workdir / f"node-{port}"
            node_dir.mkdir(parents=True, exist_ok=True)
            args = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--cluster-node-timeout", str(node_timeout_ms),
                # Diskless full sync without the default 5 s wait for more replicas.
                "--repl-diskless-sync-delay", "0",
                *(server_args or []),
            ]
            self.nodes.append(RedisServer(node_dir, module_args or [], args, port=port))

    # ---- lifecycle

    def start(self, timeout: float = 60.0) -> Cluster:
        try:
            for node in self.nodes:
                node.start(wait=False)
            for node in self.nodes:
                node.wait_ready()
            self._create(timeout)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self, timeout: float) -> None:
        argv = [REDIS_CLI, "--cluster", "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas", str(self.replicas_per_primary), "--cluster-yes"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0 or "[OK] All 16384 slots covered" not in done.stdout:
            raise RuntimeError(f"redis-cli --cluster create failed ({done.returncode}):\n"
                               f"{done.stdout}\n{done.stderr}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def alive(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def kill(self, node: RedisServer) -> None:
        """SIGKILL by PID: the node dies without saving or saying goodbye."""
        assert node.proc is not None
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(10)

    def restart(self, node: RedisServer) -> None:
        """Starts a stopped node again on its port and dir (it keeps its nodes.conf)."""
        node.start()

    # ---- views

    def view(self, node: RedisServer | None = None) -> dict[str, NodeView]:
        """CLUSTER NODES as `node` (default: the first live node) sees it."""
        node = node or self.alive()[0]
        text = node.client(socket_timeout=5).execute_command("CLUSTER", "NODES")
        return parse_cluster_nodes(text.decode() if isinstance(text, bytes) else text)

    def node_at(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def primaries(self) -> list[RedisServer]:
        return [self.node_at(v.port) for v in self.view().values()
                if v.is_primary and not v.failed and v.slots]

    def replicas_of(self, primary: RedisServer) -> list[RedisServer]:
        views = self.view()
        primary_id = next(v.node_id for v in views.values() if v.port == primary.port)
        return [self.node_at(v.port) for v in views.values()
                if v.primary_id == primary_id and not v.failed]

    def primary_for_slot(self, slot: int) -> RedisServer:
        for v in self.view().values():
            if v.is_primary and not v.failed and any(lo <= slot <= hi for lo, hi in v.slots):
                return self.node_at(v.port)
        raise LookupError(f"no live primary serves slot {slot}")

    def primary_for(self, key: str | bytes) -> RedisServer:
        from redis.crc import key_slot

        return self.primary_for_slot(key_slot(key.encode() if isinstance(key, str) else key))

    def healthy(self) -> bool:
        """Every live node: cluster_state ok, all 16384 slots served, sees every
        live node connected with the role that node gives itself; every live
        replica in sync with its primary."""
        live_ports = {n.port for n in self.alive()}
        own: dict[int, tuple[bool, str | None]] = {}
        for node in self.alive():
            me = next(v for v in self.view(node).values() if "myself" in v.flags)
            own[node.port] = (me.is_primary, me.primary_id)
        for node in self.alive():
            client = node.client(socket_timeout=5)
            info = client.execute_command("CLUSTER", "INFO")
            info = info.decode() if isinstance(info, bytes) else info
            fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
            if fields.get("cluster_state") != "ok" or fields.get("cluster_slots_ok") != "16384":
                return False
            views = self.view(node)
            seen = {v.port for v in views.values() if not v.failed and
                    (v.link_state == "connected" or "myself" in v.flags)}
            if not live_ports <= seen:
                return False
            if any((v.is_primary, v.primary_id) != own[v.port] for v in views.values()
                   if v.port in own):
                return False
            replication = client.info("replication")
            if replication["role"] == "slave" and (replication.get("master_link_status") != "up"
                                                   or replication.get("master_sync_in_progress")):
                return False
        return True

    def wait_healthy(self, timeout: float = 60.0) -> float:
        return wait_for(self.healthy, timeout, "a healthy cluster", interval=0.1)

    # ---- clients

    def client(self, **kwargs: object) -> RedisCluster:
        """redis-py's RedisCluster, bootstrapped from every live node. Its
        socket timeout is 60 s, not redis-py's 5 s: on a busy box the first
        script run on a node (which imports TorchScript) can take longer, and
        redis-py would then send the run again."""
        from redis.cluster import ClusterNode

        kwargs.setdefault("socket_timeout", 60)
        startup = [ClusterNode("127.0.0.1", n.port) for n in self.alive()]
        return RedisCluster(startup_nodes=startup, **kwargs)

    def cli(self, *args: str | int, port: int | None = None, stdin: bytes | None = None,
            user: tuple[str, str] | None = None) -> str:
        """`redis-cli -c` against one node (it follows MOVED itself); stdout as text."""
        argv = [REDIS_CLI, "-c", "-h", "127.0.0.1", "-p", str(port or self.alive()[0].port)]
        if user is not None:
            argv += ["--user", user[0], "--pass", user[1], "--no-auth-warning"]
        if stdin is not None:
            argv.append("-x")
        argv += [str(a) for a in args]
        done = subprocess.run(argv, input=stdin, capture_output=True, timeout=30, check=False)
        return done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- node {n.port}\n{n.log()[-4000:]}" for n in self.nodes)
