"""Rooms at scale: N rooms imported and subscribed, and the renewal pass over their N subscriptions.

The real bridge (`roombridge serve` + worker processes on PostgreSQL + Redis, or the embedded default) imports the
rooms of a simulated tenant whose Graph takes `--latency` per request (and, inside `$batch`, per item) and enforces
its throttling (4 concurrent requests per mailbox, 429 + Retry-After beyond). The figure is the time from
`POST /api/integrations` (which starts the import) to the N-th subscription existing in the simulator, and the peak
RSS of each bridge process.

The baseline, run against an identical fresh simulator in the same run, is the raw cost of the same Graph work with
no bridge logic: the same `/places` pages listed, then one subscription POST per room (`--baseline-concurrency` in
flight; the validation handshake answered by a bare Starlette route). The renewal pass: every subscription made due,
one `renew_subscription` job per subscription enqueued at once (as the scheduler does), until all are renewed; its
baseline is one raw PATCH per subscription through the same simulator. Sizes and baseline/product alternate over
`--rounds` rounds; the medians are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import ssl
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from simulators.processes import run_bridge, wait_for
from simulators.sandbox import Sandbox
from simulators.server import ServerThread

PG_ADMIN = os.environ.get("ROOMBRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("ROOMBRIDGE_TEST_REDIS", "redis://127.0.0.1:6379/0")
LIFETIME = timedelta(minutes=10_080 - 60)
DEADLINE_S = 3600  # a generous bound on one import: the figure is measured, not asserted


def tenant_rooms(n: int) -> list[dict[str, Any]]:
    zones = ["Romance Standard Time", "GMT Standard Time", "Pacific Standard Time", "UTC"]
    return [dict(email=f"room-{i:05d}@contoso.com", display_name=f"Room {i:05d}", capacity=4 + i % 20,
                 building=f"B{i % 40}", floor_number=i % 12, tags=["visio"] if i % 3 == 0 else [],
                 time_zone=zones[i % len(zones)]) for i in range(n)]


def start_sandbox(n: int, latency: float) -> Sandbox:
    sb = Sandbox.start(rooms=tenant_rooms(n))
    sb.graph.latency = latency
    return sb


# --- the baseline: the same Graph work, no bridge ---------------------------------------------------------------------


class Validator:
    """A bare Starlette route that answers Graph's validation handshake (what any subscriber must do)."""

    def __init__(self) -> None:
        async def receive(request: Request) -> Response:
            return PlainTextResponse(request.query_params.get("validationToken", ""))

        self.server = ServerThread(Starlette(routes=[Route("/hook", receive, methods=["POST"])])).start()
        self.url = f"{self.server.base_url}/hook"

    def stop(self) -> None:
        self.server.stop()


def _token(conf: dict[str, Any], context: ssl.SSLContext) -> str:
    r = httpx.post(conf["token_url"], verify=context, timeout=30,
                   data={"grant_type": "client_credentials", "client_id": conf["client_id"],
                         "client_secret": conf["client_secret"], "scope": "https://graph.microsoft.com/.default"})
    r.raise_for_status()
    return str(r.json()["access_token"])


async def _send(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response:
    """One request, sent again when the server closed an idle keep-alive connection under it (uvicorn's 5 s
    keep-alive against the client's pool) or a create failed its validation handshake: the bridge retries those
    too."""
    for attempt in range(5):
        try:
            response = await client.request(method, url, **kw)
        except httpx.TransportError:
            if attempt == 4:
                raise
            continue
        if response.status_code == 400 and b"ValidationError" in response.content and attempt < 4:
            continue  # the validation handshake timed out on a loaded machine: Graph's advice is to try again
        return response.raise_for_status()
    raise AssertionError("unreachable")


async def _raw(conf: dict[str, Any], hook: str) -> dict[str, float]:
    """List every /places page, then POST one subscription per room, then PATCH each once: seconds of each part."""
    context = ssl.create_default_context(cafile=conf["ca_file"])
    headers = {"Authorization": f"Bearer {_token(conf, context)}"}
    concurrency, graph = conf["concurrency"], conf["graph"]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(verify=context, headers=headers, timeout=120, limits=limits) as client:
        t0 = time.monotonic()
        emails: list[str] = []
        url: str | None = f"{graph}/places/microsoft.graph.room"
        while url:
            page = (await _send(client, "GET", url)).json()
            emails += [r["emailAddress"] for r in page["value"]]
            url = page.get("@odata.nextLink")
        gate = asyncio.Semaphore(concurrency)
        expires = (datetime.now(UTC) + LIFETIME).strftime("%Y-%m-%dT%H:%M:%SZ")

        async def subscribe(email: str) -> str:
            async with gate:
                r = await _send(client, "POST", f"{graph}/subscriptions", json={
                    "changeType": "created,updated,deleted", "notificationUrl": hook, "lifecycleNotificationUrl": hook,
                    "resource": f"/users/{email}/events", "expirationDateTime": expires, "clientState": "x" * 64})
                return str(r.json()["id"])

        ids = list(await asyncio.gather(*(subscribe(e) for e in emails)))
        imported = time.monotonic() - t0
        assert len(ids) == conf["rooms"], f"baseline subscribed {len(ids)} of {conf['rooms']}"

        async def renew(sid: str) -> None:
            async with gate:
                await _send(client, "PATCH", f"{graph}/subscriptions/{sid}", json={"expirationDateTime": expires})

        t0 = time.monotonic()
        await asyncio.gather(*(renew(s) for s in ids))
        return {"import_s": imported, "renew_s": time.monotonic() - t0}


def _raw_child(conf: dict[str, Any], results: Any) -> None:
    """The baseline's client and its webhook route, in a process of their own (as the bridge's processes are)."""
    validator = Validator()
    try:
        results.put(asyncio.run(_raw(conf, validator.url)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        results.put({"error": repr(e)})
    finally:
        validator.stop()


def baseline(n: int, args: argparse.Namespace) -> dict[str, float]:
    sb = start_sandbox(n, args.latency)
    try:
        conf = {"token_url": f"{sb.graph.base_url}/{sb.tenant_id}/oauth2/v2.0/token", "client_id": sb.client_id,
                "client_secret": sb.client_secret, "ca_file": str(sb.ca.ca_file), "graph": sb.graph.graph_base_url,
                "concurrency": args.baseline_concurrency, "rooms": n}
        spawn = multiprocessing.get_context("spawn")
        results = spawn.Queue()
        child = spawn.Process(target=_raw_child, args=(conf, results))
        child.start()
        got = results.get(timeout=DEADLINE_S)
        child.join(timeout=60)
        if "error" in got:
            raise RuntimeError(f"baseline failed: {got['error']}")
        got["cpu_s_simulators"] = _cpu_s(os.getpid())
        return dict(got)
    finally:
        sb.stop()


# --- RoomBridge -------------------------------------------------------------------------------------------------------


def product(n: int, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    database, drop = _database(args.stack, workdir)
    namespace = f"rbbench-{uuid.uuid4().hex[:8]}"
    sb = start_sandbox(n, args.latency)
    try:
        with run_bridge(sb, workdir, database, REDIS if args.stack == "redis" else None, workers=args.workers,
                        extra_env={"WORKER_THREADS": str(args.threads), "REDIS_NAMESPACE": namespace}) as bridge:
            subs = sb.graph.backend.subscriptions
            sb.graph.stats.reset()
            t0 = time.monotonic()
            r = bridge.api("POST", "/api/integrations", json=sb.integration(ignore_tags=[]))
            r.raise_for_status()
            wait_for(lambda: len(subs.active()) >= n and _stored_subscriptions(database) >= n, DEADLINE_S,
                     f"{n} subscriptions", interval=0.5)
            imported = time.monotonic() - t0
            stats = sb.graph.stats
            out = {"import_s": imported, "graph_requests": float(sum(stats.requests.values())),
                   "batch_items": float(stats.batch_items), "throttled_429": float(stats.throttled),
                   "max_in_flight_per_mailbox": float(max(stats.max_in_flight.values(), default=0))}
            if args.stack == "redis" and not args.no_renewal:
                out["renew_s"] = _renewal_pass(database, namespace, n)
            for i, p in enumerate(bridge.processes):
                out[f"peak_rss_mb_{i}"] = _peak_rss_mb(p.pid)
                out[f"cpu_s_{i}"] = _cpu_s(p.pid)
            out["cpu_s_simulators"] = _cpu_s(os.getpid())
            return out
    finally:
        sb.stop()
        drop()


def _stored_subscriptions(database: str) -> int:
    """Active subscriptions the bridge has stored (a subscription counts once Graph has it and the bridge knows it)."""
    query = "SELECT count(*) FROM subscription WHERE status = 'active'"
    if database.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database.removeprefix("sqlite:///")) as conn:
            try:
                return int(conn.execute(query).fetchone()[0])
            except sqlite3.OperationalError:  # not migrated yet
                return 0
    with psycopg.connect(database) as pg:
        row = pg.execute(query).fetchone()
    return int(row[0]) if row else 0


def _renewal_pass(database: str, namespace: str, n: int) -> float:
    """Every subscription made due, then one renewal job each, as the scheduler enqueues them: seconds until all
    are renewed."""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("UPDATE subscription SET created_at = created_at - interval '8 days', renewed_at = NULL")
        ids = [row[0] for row in conn.execute("SELECT id FROM subscription WHERE status = 'active'")]
    assert len(ids) == n, f"{len(ids)} active subscriptions, expected {n}"
    broker = RedisBroker(url=REDIS, namespace=namespace)  # type: ignore[no-untyped-call]
    broker.declare_queue("admin")
    t0 = time.monotonic()
    started = datetime.now(UTC)
    for sid in ids:
        broker.enqueue(Message(queue_name="admin", actor_name="renew_subscription", args=(sid, False), kwargs={},
                               options={}))
    broker.close()

    def renewed() -> bool:
        with psycopg.connect(database) as conn:
            row = conn.execute("SELECT count(*) FROM subscription WHERE renewed_at >= %s", (started,)).fetchone()
        return row is not None and row[0] >= n

    wait_for(renewed, DEADLINE_S, f"{n} renewals", interval=0.5)
    return time.monotonic() - t0


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _database(stack: str, workdir: Path) -> tuple[str, Callable[[], None]]:
    if stack == "embedded":
        return f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.db'}", lambda: None
    name = f"rb_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}", drop


# --- renewal pass only (`--renewal-only`) -----------------------------------------------------------------------------


def _seed_graph(sb: Sandbox, n: int, hook: str) -> list[str]:
    """N live subscriptions, one per room, put straight into the simulated Graph (no import, no handshake): the
    renewal pass alone can then be measured at 10,000 without importing 10,000 rooms first."""
    from simulators.graph.subscriptions import Subscription as GraphSubscription
    from simulators.graph.subscriptions import _key

    backend = sb.graph.backend
    tenant, subs = backend.tenant, backend.subscriptions
    ids = []
    with tenant.lock:
        expires = tenant.clock.now() + timedelta(days=6)
        for place in list(tenant.directory.rooms.values())[:n]:
            sub = GraphSubscription(
                id=str(uuid.uuid4()), resource=f"/users/{place.mailbox.id}/events", mailbox_id=place.mailbox.id,
                change_type="created,updated,deleted", notification_url=hook, lifecycle_url=hook,
                expiration=expires, client_state="x" * 64, application_id=sb.client_id, creator_id=sb.client_id)
            subs._items[sub.id] = sub  # noqa: SLF001 - a benchmark's seed
            subs._by_key[_key(sub)] = sub.id  # noqa: SLF001
            ids.append(sub.id)
    assert len(ids) == n, f"the simulator has {len(ids)} rooms, {n} wanted"
    return ids


def _seed_bridge(sb: Sandbox, database: str, ids: list[str]) -> None:
    """The integration, its rooms and their subscriptions (the ones `_seed_graph` made) in the bridge's database,
    as an import would have left them; created a week ago, so that every one is due."""
    from sqlalchemy import create_engine
    from sqlmodel import Session

    from app.platform.crypto import SecretBox, digest
    from app.platform.models import Integration, Room, Subscription
    from simulators.processes import DEFAULT_SECRET_KEY

    box = SecretBox(DEFAULT_SECRET_KEY)
    body = sb.integration(ignore_tags=[])
    backend = sb.graph.backend
    subs = backend.subscriptions._items  # noqa: SLF001
    engine = create_engine(database)
    try:
        with Session(engine) as s:
            integration = Integration(
                name=body["name"], enabled=True, tenant_domain=body["tenant_domain"], tenant_id=body["tenant_id"],
                client_id=body["client_id"], client_secret_enc=box.encrypt(body["client_secret"]),
                booking_base_url=body["booking_base_url"], booking_api_key_enc=box.encrypt(body["booking_api_key"]),
                hook_secret_enc=box.encrypt("bench-hook-secret"), default_store_id=body["default_store_id"])
            s.add(integration)
            s.flush()
            week_ago = datetime.now(UTC) - timedelta(days=7)
            for sid in ids:
                mailbox = backend.tenant.directory.find(subs[sid].mailbox_id)
                assert mailbox is not None
                room = Room(integration_id=integration.id, email=mailbox.email.lower(), name=mailbox.display_name,
                            mailbox_id=mailbox.id)
                s.add(room)
                s.flush()
                s.add(Subscription(id=sid, integration_id=integration.id, room_id=room.id,
                                   client_state_digest=digest("x" * 64), resource=subs[sid].resource,
                                   expires_at=subs[sid].expiration, created_at=week_ago))
            s.commit()
    finally:
        engine.dispose()


async def _raw_renew(conf: dict[str, Any], ids: list[str]) -> dict[str, float]:
    context = ssl.create_default_context(cafile=conf["ca_file"])
    headers = {"Authorization": f"Bearer {_token(conf, context)}"}
    concurrency, graph = conf["concurrency"], conf["graph"]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    expires = (datetime.now(UTC) + LIFETIME).strftime("%Y-%m-%dT%H:%M:%SZ")
    async with httpx.AsyncClient(verify=context, headers=headers, timeout=120, limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)

        async def renew(sid: str) -> None:
            async with gate:
                await _send(client, "PATCH", f"{graph}/subscriptions/{sid}", json={"expirationDateTime": expires})

        t0 = time.monotonic()
        await asyncio.gather(*(renew(s) for s in ids))
        return {"renew_s": time.monotonic() - t0}


def _raw_renew_child(conf: dict[str, Any], ids: list[str], results: Any) -> None:
    try:
        results.put(asyncio.run(_raw_renew(conf, ids)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        results.put({"error": repr(e)})


def renewal_baseline(n: int, args: argparse.Namespace) -> dict[str, float]:
    """One raw PATCH per seeded subscription, `--baseline-concurrency` in flight, from a process of its own."""
    sb = start_sandbox(n, args.latency)
    try:
        ids = _seed_graph(sb, n, "https://127.0.0.1:9/unused")
        conf = {"token_url": f"{sb.graph.base_url}/{sb.tenant_id}/oauth2/v2.0/token", "client_id": sb.client_id,
                "client_secret": sb.client_secret, "ca_file": str(sb.ca.ca_file), "graph": sb.graph.graph_base_url,
                "concurrency": args.baseline_concurrency}
        spawn = multiprocessing.get_context("spawn")
        results = spawn.Queue()
        child = spawn.Process(target=_raw_renew_child, args=(conf, ids, results))
        child.start()
        got = results.get(timeout=DEADLINE_S)
        child.join(timeout=60)
        if "error" in got:
            raise RuntimeError(f"baseline failed: {got['error']}")
        return dict(got)
    finally:
        sb.stop()


def renewal_product(n: int, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """N subscriptions seeded (Graph and database, no import), then the bridge's renewal pass (`_renewal_pass`)."""
    database, drop = _database("redis", workdir)
    namespace = f"rbbench-{uuid.uuid4().hex[:8]}"
    sb = start_sandbox(n, args.latency)
    try:
        with run_bridge(sb, workdir, database, REDIS, workers=args.workers,
                        extra_env={"WORKER_THREADS": str(args.threads), "REDIS_NAMESPACE": namespace}) as bridge:
            ids = _seed_graph(sb, n, f"{bridge.base_url}/graph/notifications")
            _seed_bridge(sb, database, ids)
            sb.graph.stats.reset()
            cpu0 = [_cpu_s(p.pid) for p in bridge.processes]
            out = {"renew_s": _renewal_pass(database, namespace, n)}
            stats = sb.graph.stats
            out["graph_requests"] = float(sum(stats.requests.values()))
            out["throttled_429"] = float(stats.throttled)
            for i, p in enumerate(bridge.processes):
                out[f"peak_rss_mb_{i}"] = _peak_rss_mb(p.pid)
                out[f"cpu_s_{i}"] = _cpu_s(p.pid) - cpu0[i]
            return out
    finally:
        sb.stop()
        drop()


def renewal_main(sizes: list[int], args: argparse.Namespace, workdir: Path) -> int:
    print(f"renewal pass only: sizes {sizes}, {args.rounds} round(s); N subscriptions seeded straight into the "
          f"simulated Graph and the bridge's database (no import), all due; PostgreSQL + Redis, {args.workers} "
          f"workers × {args.threads} threads; Graph latency {args.latency * 1000:.0f} ms per request; baseline = one "
          f"raw PATCH per subscription, {args.baseline_concurrency} in flight; logs in {workdir}")
    results: dict[int, dict[str, list[dict[str, float]]]] = {n: {"baseline": [], "product": []} for n in sizes}
    for round_no in range(args.rounds):
        for n in sizes:
            order = ["baseline", "product"] if round_no % 2 == 0 else ["product", "baseline"]
            for kind in order if not args.no_baseline else ["product"]:
                got = renewal_baseline(n, args) if kind == "baseline" else renewal_product(n, args, workdir)
                results[n][kind].append(got)
                print(f"  round {round_no + 1} {n:>6} subscriptions {kind:<9}"
                      + "  ".join(f"{k}={v:.1f}" for k, v in got.items()), flush=True)
    print()
    print(f"{'subscriptions':>13} {'renew s':>9} {'baseline s':>11} {'ratio':>7} {'s/1,000':>8}")
    for n in sizes:
        ren = statistics.median(r["renew_s"] for r in results[n]["product"])
        bren = statistics.median([r["renew_s"] for r in results[n]["baseline"]] or [float("nan")])
        print(f"{n:>13} {ren:>9.1f} {bren:>11.1f} {ren / bren:>7.2f} {ren / n * 1000:>8.1f}")
    return 0


# --- the command ------------------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench rooms", description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", default="100,1000,10000", help="comma-separated sizes (default 100,1000,10000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size; the median is printed")
    parser.add_argument("--stack", choices=["redis", "embedded"], default="redis",
                        help="redis: PostgreSQL + Redis with worker processes (default); embedded: SQLite, one process")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the Graph simulator takes per request")
    parser.add_argument("--baseline-concurrency", type=int, default=32,
                        help="subscription POSTs / PATCHes the baseline keeps in flight")
    parser.add_argument("--no-renewal", action="store_true", help="skip the renewal pass")
    parser.add_argument("--no-baseline", action="store_true",
                        help="the bridge only (e.g. a 10,000-room import at a quiet moment); no ratio is printed")
    parser.add_argument("--renewal-only", action="store_true",
                        help="only the renewal pass, over N subscriptions seeded with no import (PostgreSQL + Redis)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.rooms.split(",") if s.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="roombridge-bench-"))
    if args.renewal_only:
        return renewal_main(sizes, args, workdir)
    print(f"rooms: sizes {sizes}, {args.rounds} round(s); stack={args.stack}"
          + (f", {args.workers} worker processes × {args.threads} threads" if args.stack == "redis" else "")
          + f"; Graph latency {args.latency * 1000:.0f} ms per request, 4 concurrent per mailbox (429 beyond)")
    print(f"baseline = the same /places pages listed + one subscription POST per room (then one PATCH per "
          f"subscription), {args.baseline_concurrency} in flight, no bridge logic; logs in {workdir}")
    results: dict[int, dict[str, list[dict[str, float]]]] = {n: {"baseline": [], "product": []} for n in sizes}
    for round_no in range(args.rounds):
        for n in sizes:
            order = ["baseline", "product"] if round_no % 2 == 0 else ["product", "baseline"]
            for kind in order if not args.no_baseline else ["product"]:
                got = baseline(n, args) if kind == "baseline" else product(n, args, workdir)
                results[n][kind].append(got)
                print(f"  round {round_no + 1} {n:>6} rooms {kind:<9}"
                      + "  ".join(f"{k}={v:.1f}" for k, v in got.items()), flush=True)

    def median(rows: list[dict[str, float]], key: str) -> float:
        values = [r[key] for r in rows if key in r]
        return statistics.median(values) if values else float("nan")

    print()
    print(f"{'rooms':>7} {'import s':>10} {'baseline s':>11} {'ratio':>7} {'s/1,000':>8} {'renew s':>9} "
          f"{'baseline s':>11} {'ratio':>7} {'peak RSS MB (per process)':>28}")
    ok = True
    for n in sizes:
        p, b = results[n]["product"], results[n]["baseline"]
        imp, bimp = median(p, "import_s"), median(b, "import_s")
        ren, bren = median(p, "renew_s"), median(b, "renew_s")
        rss = [max(r[k] for r in p if k in r) for k in sorted({k for r in p for k in r if k.startswith("peak_rss")})]
        print(f"{n:>7} {imp:>10.1f} {bimp:>11.1f} {imp / bimp:>7.2f} {imp / n * 1000:>8.1f} {ren:>9.1f} "
              f"{bren:>11.1f} {ren / bren:>7.2f} {' / '.join(f'{v:.0f}' for v in rss):>28}")
        if n >= 10_000:
            ok = ok and imp <= 300
        ok = ok and all(v <= 300 for v in rss)
    print("target (10,000 rooms imported and subscribed ≤ 300 s, peak RSS ≤ 300 MB per process):",
          "met" if ok else "NOT met")
    return 0 if ok else 1
