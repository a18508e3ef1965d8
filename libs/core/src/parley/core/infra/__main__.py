"""``python -m parley.core.infra up|down|status [--data-dir DIR]``: the local Kafka + PostgreSQL.

``up`` prints shell exports on stdout (progress goes to stderr), so
``eval "$(python -m parley.core.infra up)"`` configures the current shell. The same settings land in
``<data dir>/infra.env`` as ``KEY=value`` lines, which pydantic-settings' ``env_file``,
``docker --env-file`` and ``set -a; . infra.env`` all read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from parley.core.infra import InfraError, default_data_dir
from parley.core.infra.kafka import LocalKafka
from parley.core.infra.postgres import LocalPostgres

ENV_FILE = "infra.env"
EXIT_NOT_RUNNING = 3  # as `systemctl status`/LSB: "program is not running"


def _up(data_dir: Path) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    # PostgreSQL first: it takes a second, so a broken Kafka setup does not hide a working database.
    dsn = LocalPostgres(data_dir).start()
    bootstrap = LocalKafka(data_dir).start()
    settings = {"PARLEY_KAFKA_BOOTSTRAP": bootstrap, "PARLEY_DATABASE_URL": dsn}
    env_file = data_dir / ENV_FILE
    env_file.write_text(
        "# written by `python -m parley.core.infra up`; removed by `down`\n"
        + "".join(f"{key}={value}\n" for key, value in settings.items())
    )
    for key, value in settings.items():
        print(f"export {key}={value}")
    hint = 'eval "$(python -m parley.core.infra up)"'
    print(f"[parley-infra] settings also in {env_file}; apply them with: {hint}", file=sys.stderr)
    return 0


def _down(data_dir: Path) -> int:
    kafka_stopped = LocalKafka(data_dir).stop()
    postgres_stopped = LocalPostgres(data_dir).stop()
    (data_dir / ENV_FILE).unlink(missing_ok=True)
    print(f"kafka: {'stopped' if kafka_stopped else 'was not running'}")
    print(f"postgres: {'stopped' if postgres_stopped else 'was not running'}")
    return 0


def _status(data_dir: Path) -> int:
    kafka = LocalKafka(data_dir)
    postgres = LocalPostgres(data_dir)
    kafka_up = kafka.is_running()
    postgres_up = postgres.is_running()
    print(f"data dir: {data_dir}")
    if kafka_up:
        print(f"kafka: running (pid {kafka.pid}) PARLEY_KAFKA_BOOTSTRAP={kafka.bootstrap}")
    elif kafka.pid is not None:
        print(f"kafka: starting or stuck (pid {kafka.pid}, port not answering); log: {kafka.output_file}")
    else:
        print("kafka: stopped")
    if postgres_up:
        print(f"postgres: running (pid {postgres.pid}) PARLEY_DATABASE_URL={postgres.dsn}")
    elif postgres.pid is not None:
        print(f"postgres: starting or stuck (pid {postgres.pid}); log: {postgres.log_file}")
    else:
        print("postgres: stopped")
    return 0 if kafka_up and postgres_up else EXIT_NOT_RUNNING


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``make infra-up`` / ``make infra-down``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m parley.core.infra",
        description="Local Kafka (KRaft) + PostgreSQL on 127.0.0.1 without Docker.",
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the servers keep their data (default: $PARLEY_INFRA_DIR or <repo>/.local/infra)",
    )
    args = parser.parse_args(argv)
    try:
        data_dir = args.data_dir.expanduser().resolve() if args.data_dir else default_data_dir()
        commands = {"up": _up, "down": _down, "status": _status}
        return commands[args.command](data_dir)
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
