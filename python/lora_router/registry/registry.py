"""The adapter registry: which adapters should be loaded where, and the loop that makes it so.

Desired state: the config's adapters that have a ``path``, and those registered at run time
through the admin API. Each adapter lives on ``min_replicas`` replicas at least, its homes in
the core's placement order (``home_order``, the same rendezvous ranking the data plane
uses); the data plane may spread it further under load and loads it on demand where a request
needs it.

The reconcile loop compares that with what the replicas serve (the core's view, refreshed by
its health loop from each replica's ``/v1/models`` and ``/metrics``) and loads what is
missing: after a replica restarts, its run-time adapters come back. Replicas with run-time
updating off are left with what they serve statically.

Versions: registering a new path under an existing name loads it under a new vLLM name
(``name--v2``), flips the name to it once loaded (a plan rebuild, atomic for requests), then
drains the old version (no request in flight for it) and unloads it everywhere. vLLM's
``load_inplace`` is never used: its prefix cache is keyed by name and would serve the old
weights' KV. Unloading only removes the name from vLLM's API (the weights stay until LRU
eviction), which the core's slot model already counts.

Run-time state (adapters registered through the admin API, new versions, drains) is a record
in the shared store (the core's ``store_*``): in this process, or in Redis for a fleet of
routers, where every router applies every other's changes (``apply_remote``) and a restarted
router reads them back. Every write is a compare-and-swap against the value this router last
saw, so two routers never overwrite each other's changes unseen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import _native
from ..config import LoadedConfig
from ..config.checks import outside_roots
from ..config.plan import adapter_path

log = logging.getLogger("lora_router.registry")

VERSION_SEPARATOR = "--v"

DRAIN_GRACE_S = 5.0
"""A draining version is unloaded no sooner than this after its drain began, so routers that
learn of the change a moment later have stopped sending it requests."""


class RegistryError(Exception):
    """A registration the registry refuses or could not carry out: an HTTP status, a message,
    and the request field at fault."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def unavailable(e: Exception) -> RegistryError:
    return RegistryError(
        503, f"The shared state store is unavailable ({e}); nothing was changed. Retry once it is back."
    )


@dataclass
class Version:
    number: int
    served_name: str
    path: str
    state: str = "loading"
    """loading -> active -> draining -> (gone)"""
    drain_started: float = 0.0
    drain_deadline: float = 0.0
    """Both unix times (shared by the fleet's routers)."""

    def drain(self, timeout: float) -> None:
        now = time.time()
        self.state, self.drain_started, self.drain_deadline = "draining", now, now + timeout


@dataclass
class AdapterRecord:
    name: str
    base: str
    source: str
    """``config`` or ``runtime``."""
    min_replicas: int = 1
    max_replicas: int | None = None
    versions: list[Version] = field(default_factory=list)
    removing: bool = False
    last_error: str | None = None
    config_path: str | None = None
    """The path the config gives (config adapters)."""
    raw: str | None = None
    """The record as the shared store last held it (None: not there)."""

    def shared(self) -> bool:
        """Whether it has state the config alone does not give."""
        return self.source == "runtime" or self.removing or any(v.number > 1 for v in self.versions)

    def to_record(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "base": self.base,
                "source": self.source,
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "removing": self.removing,
                "versions": [
                    {
                        "number": v.number,
                        "served_name": v.served_name,
                        "path": v.path,
                        "state": v.state,
                        "drain_started": v.drain_started,
                        "drain_deadline": v.drain_deadline,
                    }
                    for v in self.versions
                ],
            },
            sort_keys=True,
        )

    @classmethod
    def from_record(cls, raw: str, config: AdapterRecord | None) -> AdapterRecord:
        """A record another router wrote; a config adapter keeps what its config says."""
        r = json.loads(raw)
        versions = [Version(**v) for v in r["versions"]]
        rec = cls(r["name"], r["base"], r["source"], r["min_replicas"], r["max_replicas"], versions, r["removing"])
        if config is not None and config.source == "config":
            rec.source, rec.config_path = "config", config.config_path
        rec.raw = raw
        return rec

    def current(self) -> Version | None:
        active = [v for v in self.versions if v.state == "active"]
        return active[-1] if active else None

    def plan_entry(self) -> dict[str, Any]:
        v = self.current()
        assert v is not None
        return {
            "name": self.name,
            "served_name": v.served_name,
            "path": v.path,
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "max_concurrency": None,
        }

    def to_json(self, replicas: list[dict[str, Any]], homes: list[str]) -> dict[str, Any]:
        def loaded_on(served: str) -> list[str]:
            return [r["name"] for r in replicas if served in r.get("registered", {})]

        return {
            "name": self.name,
            "base_model": self.base,
            "source": self.source,
            "state": "draining" if self.removing else (self.current().state if self.current() else "loading"),
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "homes": homes[: self.min_replicas],
            "placement_order": homes,
            "versions": [
                {
                    "version": v.number,
                    "served_name": v.served_name,
                    "path": v.path,
                    "state": v.state,
                    "loaded_on": loaded_on(v.served_name),
                    "requests_in_flight": sum(r.get("inflight", {}).get(v.served_name, 0) for r in replicas),
                }
                for v in self.versions
            ],
            "last_error": self.last_error,
        }


def declared(loaded: LoadedConfig) -> dict[str, tuple[str, int, Any]]:
    """The config's adapters: name -> (base model, index in its loras, the entry)."""
    return {lo.name: (base, j, lo) for base, m in loaded.config.models.items() for j, lo in enumerate(m.loras)}


def config_record(loaded: LoadedConfig, base: str, lo: Any) -> AdapterRecord:
    path = adapter_path(loaded, lo.path)
    versions = [Version(1, lo.name, path, "active")] if path else []
    return AdapterRecord(lo.name, base, "config", lo.min_replicas, lo.max_replicas, versions, config_path=path)


class Registry:
    def __init__(self, loaded: LoadedConfig, rebuild: Callable[[], None]):
        self.loaded = loaded
        self._rebuild = rebuild
        self.native: Any = None
        self.records: dict[str, AdapterRecord] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        c = loaded.config
        p = c.placement
        self.load_timeout, self.interval, self.drain_timeout = (
            p.load_timeout_s,
            p.reconcile_interval_s,
            p.drain_timeout_s,
        )
        for name, (base, _, lo) in declared(loaded).items():
            self.records[name] = config_record(loaded, base, lo)

    async def reconfigure(self, loaded: LoadedConfig) -> None:
        """A reloaded config: its new adapters join, those it dropped drain and are unloaded,
        replica counts follow it. A changed path is refused: that is a new version, which the
        admin API registers (or a restart). Raises ConfigError before changing anything."""
        from ..config import ConfigError, Problem

        async with self._lock:
            wanted = declared(loaded)
            problems = []
            for name, (base, j, lo) in wanted.items():
                rec = self.records.get(name)
                path = adapter_path(loaded, lo.path)
                if rec is not None and rec.source == "config" and path != rec.config_path:
                    problems.append(
                        Problem(
                            f"model_config.{base}.loras[{j}].path",
                            "changed; register the new path through the admin API (a new version), or restart",
                        )
                    )
            if problems:
                raise ConfigError(loaded.file, problems)
            self.loaded = loaded
            for name, (base, _, lo) in wanted.items():
                rec = self.records.get(name)
                if rec is None or rec.source != "config":
                    self.records[name] = config_record(loaded, base, lo)
                else:
                    rec.min_replicas, rec.max_replicas = lo.min_replicas, lo.max_replicas
            for rec in self.records.values():
                if rec.source == "config" and rec.name not in wanted and not rec.removing:
                    rec.removing = True
                    for v in rec.versions:
                        v.drain(self.drain_timeout)

    # --- what the plan needs (called under the router's lock, from any thread) ---------------

    def current(self, name: str) -> Version | None:
        rec = self.records.get(name)
        return rec.current() if rec is not None else None

    def served_adapters(self) -> dict[str, str]:
        """Every adapter requests can reach now (config and run time) -> its base model."""
        return {r.name: r.base for r in self.records.values() if not r.removing}

    def runtime_adapters(self, base: str) -> list[AdapterRecord]:
        return [
            r
            for r in self.records.values()
            if r.source == "runtime" and r.base == base and not r.removing and r.current() is not None
        ]

    # --- state of the replicas -------------------------------------------------------------

    def replicas(self) -> list[dict[str, Any]]:
        return json.loads(self.native.replicas()) if self.native is not None else []

    async def _load(self, endpoint: str, served: str, path: str) -> None:
        await asyncio.to_thread(self.native.load_adapter, endpoint, served, path, self.load_timeout)

    async def _unload(self, endpoint: str, served: str) -> None:
        await asyncio.to_thread(self.native.unload_adapter, endpoint, served, self.load_timeout)

    async def _place(self, rec: AdapterRecord, v: Version, replicas: list[dict[str, Any]]) -> list[str]:
        """Makes ``v`` served on its homes: the first ``min_replicas`` healthy replicas in home
        order that serve it or can load it. A home that is down is stood in for by the next
        one, and gets the adapter back when it returns (copies elsewhere stay until vLLM's
        LRU evicts them). Returns the reasons of the replicas that refused, if too few serve it."""
        from .. import _native

        by_name = {r["name"]: r for r in replicas}
        placed = 0
        reasons: list[str] = []
        for endpoint in self.native.home_order(rec.name, rec.base):
            if placed >= rec.min_replicas:
                break
            r = by_name.get(endpoint)
            if r is None or not r["healthy"] or not r["synced"]:
                continue
            if v.served_name in r["registered"]:
                placed += 1
                continue
            if r["runtime_updates"] == "off":
                reasons.append(f"{endpoint}: run-time adapter loading is off (VLLM_ALLOW_RUNTIME_LORA_UPDATING)")
                continue
            try:
                await self._load(endpoint, v.served_name, v.path)
                placed += 1
            except _native.AdapterError as e:
                status, message = e.args
                reasons.append(f"{endpoint}: " + (f"{status} {message}" if status else f"unreachable: {message}"))
        if placed < rec.min_replicas and not reasons:
            reasons.append("not enough healthy replicas of its base model")
        return reasons if placed < rec.min_replicas else []

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Reconciles every ``reconcile_interval_s`` (and when woken) until cancelled."""
        while True:
            done = False
            try:
                done = await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the loop must outlive any one failure
                log.warning("adapter reconcile failed: %s: %s", type(e).__name__, e)
            try:
                # Until every healthy replica has been read once, look again soon.
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval if done else min(self.interval, 0.25))
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    async def reconcile(self) -> bool:
        """One pass; False if it waited for the replicas' first sync instead."""
        async with self._lock:
            replicas = self.replicas()
            if not replicas or not all(r["synced"] for r in replicas if r["healthy"]):
                return False
            for rec in list(self.records.values()):
                v = rec.current()
                if v is not None and not rec.removing:
                    reasons = await self._place(rec, v, replicas)
                    error = "; ".join(reasons) or None
                    if error and error != rec.last_error:
                        log.warning("adapter %s is not loaded on %d replicas: %s", rec.name, rec.min_replicas, error)
                    rec.last_error = error
                await self._drain(rec, replicas)
        return True

    async def _drain(self, rec: AdapterRecord, replicas: list[dict[str, Any]]) -> None:
        """Unloads versions that are draining once no request for them is in flight here and
        no replica reports one running (or the drain timeout passed); forgets a removed
        adapter once nothing of it is left."""
        now = time.time()
        before = len(rec.versions)
        for v in [v for v in rec.versions if v.state == "draining"]:
            busy = any(
                r["inflight"].get(v.served_name, 0) or v.served_name in r.get("reported_active", []) for r in replicas
            )
            if now < v.drain_deadline and (busy or now < v.drain_started + DRAIN_GRACE_S):
                continue
            holders = [r["name"] for r in replicas if r["healthy"] and v.served_name in r["registered"]]
            failed = False
            for endpoint in holders:
                try:
                    await self._unload(endpoint, v.served_name)
                except Exception as e:
                    failed = True
                    log.warning("unloading %s from %s: %s", v.served_name, endpoint, e)
            if not failed:
                rec.versions.remove(v)
                log.info("adapter %s: version %d (%s) unloaded", rec.name, v.number, v.served_name)
        if len(rec.versions) == before:
            return
        gone = rec.removing and not rec.versions
        try:
            # Another router may have finished the same drain first: then nothing is written,
            # and its record arrives as an event.
            await asyncio.to_thread(self._save, rec, gone)
        except RegistryError as e:
            log.debug("adapter %s: the drained state was not saved: %s", rec.name, e.message)
        if gone:
            self._forget(rec.name)

    # --- the shared store ------------------------------------------------------------------

    def _save(self, rec: AdapterRecord, delete: bool = False) -> None:
        """Writes ``rec`` to the shared store over the value this router last saw (runs on a
        worker thread). Raises RegistryError: 409 if another router changed it meanwhile, 503
        if the store cannot be reached."""
        value = None if delete else rec.to_record()
        try:
            done = self.native.store_swap("adapters", rec.name, rec.raw, value)
        except _native.StoreUnavailable as e:
            raise unavailable(e) from None
        if not done:
            raise RegistryError(
                409, f"The adapter `{rec.name}` was changed by another router at the same moment; retry.", "name"
            )
        rec.raw = value

    def _forget(self, name: str) -> None:
        """Drops run-time state: a config adapter goes back to what its config says."""
        self.records.pop(name, None)
        wanted = declared(self.loaded)
        if name in wanted:
            base, _, lo = wanted[name]
            self.records[name] = config_record(self.loaded, base, lo)

    def export(self) -> list[tuple[str, str]]:
        """Every record with run-time state, as the store holds them."""
        return [(r.name, r.to_record()) for r in self.records.values() if r.shared()]

    async def apply_remote(self, records: list[tuple[str, str | None]], complete: bool) -> bool:
        """Records other routers wrote (``None``: deleted); with ``complete``, every record
        there is. Returns whether anything changed."""
        changed = False
        async with self._lock:
            for name, raw in records:
                rec = self.records.get(name)
                if raw is None:
                    if rec is not None and rec.raw is not None:
                        self._forget(name)
                        changed = True
                    continue
                if rec is not None and rec.raw == raw:
                    continue
                try:
                    self.records[name] = AdapterRecord.from_record(raw, rec)
                except (ValueError, KeyError, TypeError) as e:
                    log.warning("adapter %s: ignoring a record this router cannot read: %s", name, e)
                    continue
                changed = True
            if complete:
                present = {name for name, raw in records if raw is not None}
                for name in [n for n, r in self.records.items() if r.raw is not None and n not in present]:
                    self._forget(name)
                    changed = True
        if changed:
            self.wake()
        return changed

    # --- the admin API's operations ---------------------------------------------------------

    def describe(self, rec: AdapterRecord, replicas: list[dict[str, Any]]) -> dict[str, Any]:
        homes = self.native.home_order(rec.name, rec.base) if self.native is not None else []
        return rec.to_json(replicas, homes)

    def list(self) -> list[dict[str, Any]]:
        replicas = self.replicas()
        return [self.describe(r, replicas) for r in self.records.values()]

    def get(self, name: str) -> dict[str, Any]:
        rec = self.records.get(name)
        if rec is None:
            raise RegistryError(404, f"No adapter named `{name}` is registered.", "name")
        return self.describe(rec, self.replicas())

    def _check_new(self, name: str, path: str, base: str, min_replicas: int, max_replicas: int | None) -> None:
        c = self.loaded.config
        if base not in c.models:
            raise RegistryError(404, f"The base model `{base}` is not declared in the config.", "base_model")
        if name in c.models or name in c.routing.virtual_models:
            raise RegistryError(409, f"`{name}` is the name of a base model or a virtual model.", "name")
        rec = self.records.get(name)
        if rec is not None and rec.base != base:
            raise RegistryError(409, f"An adapter named `{name}` exists on the base model `{rec.base}`.", "name")
        if rec is not None and rec.removing:
            raise RegistryError(409, f"The adapter `{name}` is being unregistered; try again once it is gone.", "name")
        if rec is not None and any(v.path == path and v.state != "draining" for v in rec.versions):
            raise RegistryError(409, f"The adapter `{name}` is already registered with this path.", "name")
        if max_replicas is not None and max_replicas < min_replicas:
            raise RegistryError(400, "max_replicas is below min_replicas.", "max_replicas")
        why = outside_roots(path, c.adapter_roots, self.loaded.base_dir)
        if why:
            raise RegistryError(400, f"The path is not allowed: {why}.", "path")

    async def register(
        self, name: str, path: str, base: str, min_replicas: int = 1, max_replicas: int | None = None
    ) -> dict[str, Any]:
        """Loads the adapter (or a new version of it) on ``min_replicas`` replicas, then makes
        it the one requests get. Raises RegistryError."""
        async with self._lock:
            self._check_new(name, path, base, min_replicas, max_replicas)
            rec = self.records.get(name)
            fresh = rec is None
            if rec is None:
                rec = AdapterRecord(name, base, "runtime", min_replicas, max_replicas)
            number = max((v.number for v in rec.versions), default=0) + 1
            served = name if number == 1 else f"{name}{VERSION_SEPARATOR}{number}"
            v = Version(number, served, path)
            rec.versions.append(v)
            if fresh:
                self.records[name] = rec
            replicas = self.replicas()
            reasons = await self._place(rec, v, replicas)
            if reasons:
                await self._roll_back(rec, v, fresh)
                status = 503 if all("run-time adapter loading is off" in r for r in reasons) else 502
                raise RegistryError(
                    status,
                    f"The adapter `{name}` could not be loaded on {min_replicas} replica(s): {'; '.join(reasons)}",
                )
            before = [(old, old.state, old.drain_started, old.drain_deadline) for old in rec.versions if old is not v]
            for old in rec.versions:
                if old is not v and old.state == "active":
                    old.drain(self.drain_timeout)
            v.state = "active"
            if fresh:
                rec.min_replicas, rec.max_replicas = min_replicas, max_replicas
            try:
                await asyncio.to_thread(self._save, rec)
            except RegistryError:
                for old, state, started, deadline in before:
                    old.state, old.drain_started, old.drain_deadline = state, started, deadline
                await self._roll_back(rec, v, fresh)
                raise
            rec.last_error = None
            await asyncio.to_thread(self._rebuild)
            log.info("adapter %s: version %d (%s) from %s is live", name, number, served, path)
            result = self.describe(rec, self.replicas())
        self.wake()
        return result

    async def _roll_back(self, rec: AdapterRecord, v: Version, fresh: bool) -> None:
        for r in self.replicas():
            if v.served_name in r["registered"]:
                try:
                    await self._unload(r["name"], v.served_name)
                except Exception as e:
                    log.warning("rolling back %s on %s: %s", v.served_name, r["name"], e)
        rec.versions.remove(v)
        if fresh:
            self.records.pop(rec.name, None)

    async def unregister(self, name: str) -> dict[str, Any]:
        """Stops routing to the adapter at once; its requests in flight finish, then it is
        unloaded everywhere (the reconcile loop). Raises RegistryError."""
        async with self._lock:
            rec = self.records.get(name)
            if rec is None:
                raise RegistryError(404, f"No adapter named `{name}` is registered.", "name")
            if rec.source == "config":
                raise RegistryError(
                    409, f"The adapter `{name}` is declared in the config; remove it there and reload.", "name"
                )
            if not rec.removing:
                before = [(v, v.state, v.drain_started, v.drain_deadline) for v in rec.versions]
                rec.removing = True
                for v in rec.versions:
                    v.drain(self.drain_timeout)
                try:
                    await asyncio.to_thread(self._save, rec)
                except RegistryError:
                    rec.removing = False
                    for v, state, started, deadline in before:
                        v.state, v.drain_started, v.drain_deadline = state, started, deadline
                    raise
                await asyncio.to_thread(self._rebuild)
                log.info("adapter %s: unregistered, draining", name)
            result = self.describe(rec, self.replicas())
        self.wake()
        return result
