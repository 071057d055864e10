"""`cds-service serve`: run the app under gunicorn (the production server); `cds-service migrate`: bring the
database schema up to date (the app also does it at start-up unless CDS_MIGRATE_ON_START=0)."""
from __future__ import annotations

import argparse
import os
import sys

GUNICORN_CONFIG = "python:cds_service.gunicorn_conf"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cds-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the CDS Hooks endpoints with gunicorn")
    serve.add_argument("--bind", default=os.environ.get("CDS_BIND", "127.0.0.1:8080"))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("CDS_WORKERS", "2")))
    migrate = sub.add_parser("migrate", help="create or upgrade the database schema (Alembic), then exit")
    migrate.add_argument("--database-url", default=os.environ.get("CDS_DATABASE_URL") or None,
                         help="SQLAlchemy URL (default: CDS_DATABASE_URL, else the SQLite file under instance/)")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        return _migrate(args.database_url)
    if args.command == "serve":
        os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONFIG, "--bind", args.bind,
                                   "--workers", str(args.workers), "--access-logfile", "-", "cds_service:create_app()"])
    return 0


def _migrate(url: str | None) -> int:
    from flask import Flask

    from . import db

    url = url or db.default_url(Flask("cds_service", instance_relative_config=True))
    engine = db.make_engine(url)
    revision = db.migrate(engine)
    engine.dispose()
    print(f"database schema at revision {revision} ({engine.url.render_as_string(hide_password=True)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
