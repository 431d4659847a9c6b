"""`roombridge` command line: serve, worker, scheduler, migrate.

The demo is `roombridge-demo`, shipped with the simulators (product code never imports them)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from app.platform.settings import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as e:
        print(f"roombridge: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _logging(settings: Settings) -> None:
    from app.platform.logging import configure_logging

    configure_logging(settings.log_format, settings.log_level)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.platform.logging import get_logger
    from app.platform.migrate import upgrade
    from app.web.app import create_app, drain

    settings = _settings()
    _logging(settings)
    if settings.database_url.startswith("sqlite"):
        upgrade(settings.database_url)  # the embedded default must just work on a first run
    app = create_app(settings)

    class DrainingServer(uvicorn.Server):
        """uvicorn, with a graceful stop that drains first: on the first SIGTERM/SIGINT the app answers 503 to new
        webhooks and finishes the jobs it holds (app.web.app.drain); only then does uvicorn stop serving. A second
        signal stops at once, as uvicorn does."""

        drainer: threading.Thread | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.drainer is None and self.started and sig in (signal.SIGTERM, signal.SIGINT):
                # A signal handler must not block the event loop: drain in a thread, then exit.
                self.drainer = threading.Thread(target=self._drain_then_exit, args=(sig, frame), name="drain",
                                                daemon=True)
                self.drainer.start()
                return
            super().handle_exit(sig, frame)

        def _drain_then_exit(self, sig: int, frame: FrameType | None) -> None:
            try:
                drain(app)
            except Exception:  # noqa: BLE001 - whatever happens, the process must still stop
                get_logger("roombridge.web").exception("drain failed")
            finally:
                super().handle_exit(sig, frame)

    DrainingServer(uvicorn.Config(app, host=args.host, port=args.port, log_config=None, access_log=False,
                                  proxy_headers=True, lifespan="on")).run()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from app.platform.logging import get_logger
    from app.sync import runtime
    from app.workers.broker import bind, make_broker, start_worker

    settings = _settings()
    _logging(settings)
    if settings.embedded_queue:
        print("roombridge: worker needs REDIS_URL (without it, `roombridge serve` runs the jobs itself)",
              file=sys.stderr)
        return 2
    rt = runtime.Runtime(settings)
    runtime.install(rt)
    broker = bind(make_broker(settings))
    worker = start_worker(broker, args.threads or settings.worker_threads)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    get_logger("roombridge.worker").info("worker started", threads=args.threads or settings.worker_threads)
    stop.wait()
    worker.stop()
    broker.close()
    rt.close()
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from app.sync import runtime
    from app.workers.broker import bind, make_broker
    from app.workers.scheduler import LEASE_TTL, Scheduler

    settings = _settings()
    _logging(settings)
    if settings.embedded_queue:
        print("roombridge: scheduler needs REDIS_URL (without it, `roombridge serve` schedules the periodic jobs "
              "itself)", file=sys.stderr)
        return 2
    rt = runtime.Runtime(settings)
    runtime.install(rt)
    broker = bind(make_broker(settings))
    ttl = timedelta(seconds=args.lease_ttl) if args.lease_ttl else LEASE_TTL
    scheduler = Scheduler(rt, lease_ttl=ttl).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    scheduler.stop()
    broker.close()
    rt.close()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.platform.migrate import downgrade, upgrade

    settings = _settings()
    _logging(settings)
    if args.downgrade:
        downgrade(settings.database_url, args.downgrade)
    else:
        upgrade(settings.database_url, args.revision)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="roombridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="the HTTP service (and, without REDIS_URL, the jobs)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("worker", help="process jobs from Redis")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("scheduler", help="periodic jobs (room import, renewals, reconciliation); one active at a time")
    p.add_argument("--lease-ttl", type=float, default=0, help="seconds a dead scheduler blocks a standby (default 30)")
    p.set_defaults(func=cmd_scheduler)
    p = sub.add_parser("migrate", help="upgrade the database schema")
    p.add_argument("--revision", default="head")
    p.add_argument("--downgrade", metavar="REVISION", help="downgrade to REVISION instead (e.g. base)")
    p.set_defaults(func=cmd_migrate)
    from app.cli_admin import register  # status, journal, backfill (issue 10)

    register(sub, _settings)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
