"""Serve the reference host: ``python -m examples.xnat_host --port 8080 --data-dir DIR``."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys

from werkzeug.serving import make_server

from .app import create_app

log = logging.getLogger("examples.xnat_host")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.xnat_host",
        description="Serve the XNAT reference host with the DICOM mappings plugin.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="loopback address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080,
                        help="TCP port; 0 picks a free one and prints it (default: 8080)")
    parser.add_argument("--data-dir", required=True,
                        help="folder for stored DICOM files, the SQLite database and the secret key")
    parser.add_argument("--database-url", default=None,
                        help="SQLAlchemy URL of the database shared by host and plugin "
                             "(default: SQLite file archive.sqlite3 in the data folder)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # The seeded accounts have well-known passwords, so the server listens on
    # loopback addresses only.
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"error: --host {args.host} is not a loopback address. This reference host "
              "has default passwords, so bind a loopback address such as 127.0.0.1.", file=sys.stderr)
        return 2

    app = create_app(args.data_dir, {"HOST_DATABASE_URL": args.database_url})
    server = make_server(args.host, args.port, app, threaded=True)

    def stop(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)

    # This line is the start signal that examples/demo.py waits for.
    print(f"Serving on http://{args.host}:{server.server_port}/", flush=True)
    log.info("serving on http://%s:%d/ (Ctrl+C stops)", args.host, server.server_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
