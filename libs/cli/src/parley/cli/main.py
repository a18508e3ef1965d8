"""``parley``: the one command of the platform.

parley run              chat with an assistant: all services in one process (the embedded default)
parley serve SERVICE    run one service as its own process (distributed mode)
parley train            train the NLU model of an assistant project
parley validate         check an assistant project and print file:line problems
parley flows show       a project's flows as Mermaid diagrams (Mermaid, Markdown or HTML)
parley test             run a project's conversation tests against the whole assistant
parley chat             terminal chat with a running gateway
parley keys             create, list and revoke tenants' API keys of the gateway
parley stack up|down    every service as its own process on this machine (needs `make infra-up`)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from pathlib import Path

from parley.core.errors import ConfigurationError, ParleyError

SERVICES = ("nlu", "dialog", "generator", "context", "gateway")
DEFAULT_PROJECT = Path("examples/order-support")


def _cmd_run(args: argparse.Namespace) -> int:
    from parley.cli.embedded import EmbeddedStack  # noqa: PLC0415 - heavy imports only for this command
    from parley.core.lifecycle import run_until_signal  # noqa: PLC0415
    from parley.core.logging import configure_logging  # noqa: PLC0415
    from parley.core.telemetry import setup_tracing  # noqa: PLC0415
    from parley.gateway.settings import GatewaySettings  # noqa: PLC0415

    configure_logging(service="parley")
    setup_tracing("parley")
    gateway = GatewaySettings().model_copy(update={"http_host": args.host, "http_port": args.port})
    stack = EmbeddedStack(project_dir=args.project, gateway_settings=gateway)

    async def start() -> None:
        await stack.start()
        print(
            f"\n  Parley is running: open {stack.url}/ to chat, or run `parley chat --url {stack.url}`.\n"
            f"  API docs: {stack.url}/docs   Stop: Ctrl+C\n",
            flush=True,
        )

    asyncio.run(run_until_signal(start, stack.stop))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"parley.{args.service}.app")
    asyncio.run(module.serve())
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from parley.nlu.app import train_command  # noqa: PLC0415

    path = train_command(args.project, args.output)
    print(f"model saved to {path}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from parley.core.project import ProjectError, load_project  # noqa: PLC0415

    try:
        project = load_project(args.project_dir or args.project)
    except ProjectError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        for warning in exc.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    for warning in project.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    warnings = f" ({len(project.warnings)} warnings)" if project.warnings else ""
    print(
        f"{project.assistant.name}: {len(project.nlu.intents)} intents, {len(project.flows.flows)} flows, "
        f"{len(project.flows.slots)} slots, {len(project.responses.responses)} responses, "
        f"{len(project.tools.tools)} tools — valid{warnings}"
    )
    return 0


def _cmd_flows_show(args: argparse.Namespace) -> int:
    from parley.core.flow_diagram import flows_to_mermaid, to_html, to_markdown, to_mermaid  # noqa: PLC0415
    from parley.core.project import ProjectError, load_project  # noqa: PLC0415

    try:
        project = load_project(args.project)
    except ProjectError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    flows = project.flows.flows
    if args.flow is not None:
        if args.flow not in flows:
            print(
                f"parley: no flow {args.flow!r} in {args.project} (flows: {', '.join(flows)})",
                file=sys.stderr,
            )
            return 1
        flows = {args.flow: flows[args.flow]}
    title = f"{project.assistant.name}: flows"
    if args.format == "mermaid":
        name = next(iter(flows))
        text = to_mermaid(name, flows[name], project) if len(flows) == 1 else flows_to_mermaid(flows, project)
    elif args.format == "markdown":
        text = to_markdown(flows, project, title=title)
    else:
        text = to_html(flows, project, title=title)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out} ({len(flows)} flow{'s' if len(flows) != 1 else ''}, {args.format})")
    return 0


def _cmd_test(args: argparse.Namespace) -> int:
    from parley.cli.convtest import test_command  # noqa: PLC0415 - starts the whole assistant

    return test_command(
        args.project,
        args.files,
        junit=args.junit,
        pattern=args.k,
        verbose=args.verbose,
        turn_timeout_s=args.timeout,
    )


def _cmd_eval_nlu(args: argparse.Namespace) -> int:
    from parley.nlu.evaluation.runner import eval_command  # noqa: PLC0415

    report = eval_command(args.project, args.test, args.out, folds=args.folds)
    print(f"report: {report} (and {report.with_suffix('.html')})")
    return 0


def _cmd_import_rasa(args: argparse.Namespace) -> int:
    from parley.nlu.data.rasa import import_rasa_nlu, write_project_nlu  # noqa: PLC0415

    warnings: list[str] = []
    data = import_rasa_nlu(args.source, warnings=warnings)
    nlu = write_project_nlu(data, args.out)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"wrote {args.out}: {len(nlu.intents)} intents, {len(nlu.entities)} entities"
        + (f", {len(warnings)} warnings" if warnings else "")
    )
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    from parley.gateway.chat_client import run_chat  # noqa: PLC0415

    api_key = args.api_key or os.environ.get("PARLEY_API_KEY") or None
    asyncio.run(run_chat(args.url, user=args.user, api_key=api_key))
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    from parley.gateway.keys_admin import run  # noqa: PLC0415

    return run(args)


def _add_chat_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``parley chat``."""
    chat = sub.add_parser("chat", help="terminal chat with a running gateway")
    chat.add_argument("--url", default="http://127.0.0.1:8080")
    chat.add_argument("--user", default="anonymous")
    chat.add_argument(
        "--api-key",
        default=None,
        help="the tenant's API key when the gateway requires one (or PARLEY_API_KEY)",
    )
    chat.set_defaults(func=_cmd_chat)


def _add_keys_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``parley keys create|list|revoke``."""
    keys = sub.add_parser(
        "keys",
        help="create, list and revoke tenants' API keys (PARLEY_GATEWAY_AUTH=api_key)",
        description="API keys of the gateway, kept (hashed) in PostgreSQL: PARLEY_DATABASE_URL or "
        "--database-url. See docs/gateway.md, Authentication.",
    )
    from parley.gateway.keys_admin import add_arguments  # noqa: PLC0415

    add_arguments(keys)
    keys.set_defaults(func=_cmd_keys)


def _cmd_stack(args: argparse.Namespace) -> int:
    from parley.cli.stack import Stack, StackConfig, read_env_file, stop_detached  # noqa: PLC0415
    from parley.core.infra import default_data_dir  # noqa: PLC0415

    run_dir = Path(".local/stack")
    if args.action == "down":
        stopped = stop_detached(run_dir)
        print("stopped: " + (", ".join(stopped) or "nothing was running"))
        return 0
    env = {**read_env_file(default_data_dir() / "infra.env"), **os.environ}
    missing = [k for k in ("PARLEY_KAFKA_BOOTSTRAP", "PARLEY_DATABASE_URL") if not env.get(k)]
    if missing:
        raise ConfigurationError(f"{', '.join(missing)} not set: run `make infra-up` first (or export them)")
    config = StackConfig(
        kafka_bootstrap=env["PARLEY_KAFKA_BOOTSTRAP"],
        database_url=env["PARLEY_DATABASE_URL"],
        project_dir=args.project.resolve(),
        run_dir=run_dir,
        model_dir=Path(".local/models").resolve(),
    )
    stack = Stack(config)
    for name in ("context", "nlu", "dialog", "generator", "gateway"):
        print(f"starting {name} ...", flush=True)
        stack.start_service(name, detach=True)
    print(
        f"all services up; gateway on {config.gateway_url}; logs in {run_dir}/; stop with `make stack-down`"
    )
    return 0


def _add_test_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``parley test``."""
    test = sub.add_parser(
        "test",
        help="run conversation tests (YAML) against the whole assistant in this process",
        description="Run conversation tests (docs/dialog.md) against the assistant: real NLU model, "
        "context on PostgreSQL, dialog, generator. Exit status 1 when a conversation fails.",
    )
    test.add_argument(
        "project", nargs="?", type=Path, default=DEFAULT_PROJECT, help="assistant project folder"
    )
    test.add_argument("files", nargs="*", type=Path, help="test files or folders (default: PROJECT/tests)")
    test.add_argument("--junit", type=Path, default=None, help="also write a JUnit XML report here")
    test.add_argument("-k", default=None, metavar="TEXT", help="only conversations whose file::name has TEXT")
    test.add_argument("-v", "--verbose", action="store_true", help="show the transcript of passing ones too")
    test.add_argument("--timeout", type=float, default=90.0, help="seconds one turn may take (default 90)")
    test.set_defaults(func=_cmd_test)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="parley", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="all services in one process, with the web chat")
    run.add_argument("--project", type=Path, default=DEFAULT_PROJECT, help="assistant project folder")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8080)
    run.set_defaults(func=_cmd_run)

    serve = sub.add_parser("serve", help="run one service as its own process")
    serve.add_argument("service", choices=SERVICES)
    serve.set_defaults(func=_cmd_serve)

    train = sub.add_parser("train", help="train the NLU model of a project")
    train.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    train.add_argument("--output", type=Path, default=Path(".local/models"))
    train.set_defaults(func=_cmd_train)

    validate = sub.add_parser("validate", help="check a project; print file:line problems")
    validate.add_argument(
        "project_dir", nargs="?", type=Path, default=None, metavar="PROJECT", help="assistant project folder"
    )
    validate.add_argument("--project", type=Path, default=DEFAULT_PROJECT, help=argparse.SUPPRESS)
    validate.set_defaults(func=_cmd_validate)

    flows = sub.add_parser("flows", help="inspect a project's flows")
    flows_sub = flows.add_subparsers(dest="what", required=True)
    show = flows_sub.add_parser("show", help="flows as Mermaid diagrams (Mermaid text, Markdown or HTML)")
    show.add_argument(
        "project", type=Path, nargs="?", default=DEFAULT_PROJECT, help="assistant project folder"
    )
    show.add_argument("--flow", default=None, help="only this flow (default: all)")
    show.add_argument(
        "--format",
        choices=("mermaid", "markdown", "html"),
        default="mermaid",
        help="mermaid: flowchart text (all flows as subgraphs); markdown: a ```mermaid block per flow "
        "(renders on GitHub/GitLab); html: a self-contained page embedding the Mermaid source",
    )
    show.add_argument("--out", type=Path, default=None, help="write here instead of standard output")
    show.set_defaults(func=_cmd_flows_show)

    _add_test_parser(sub)

    ev = sub.add_parser("eval", help="evaluate an assistant's models and write a report with plots")
    ev_sub = ev.add_subparsers(dest="what", required=True)
    ev_nlu = ev_sub.add_parser("nlu", help="intent accuracy, macro-F1, OOS, slot F1, calibration, confusions")
    ev_nlu.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    ev_nlu.add_argument("--test", type=Path, default=None, help="held-out examples (nlu.yml format)")
    ev_nlu.add_argument("--folds", type=int, default=5, help="cross-validation folds when no --test is given")
    ev_nlu.add_argument("--out", type=Path, default=Path(".local/reports/nlu"), help="report folder")
    ev_nlu.set_defaults(func=_cmd_eval_nlu)

    imp = sub.add_parser("import", help="import training data from another framework")
    imp_sub = imp.add_subparsers(dest="framework", required=True)
    rasa = imp_sub.add_parser("rasa", help="a Rasa 3.x nlu.yml (file or folder) → a Parley nlu.yml")
    rasa.add_argument("source", type=Path, help="Rasa nlu.yml file or a folder of them")
    rasa.add_argument("--out", type=Path, required=True, help="the Parley nlu.yml to write")
    rasa.set_defaults(func=_cmd_import_rasa)

    _add_chat_parser(sub)

    _add_keys_parser(sub)

    stack = sub.add_parser("stack", help="every service as its own process on this machine")
    stack.add_argument("action", choices=("up", "down"))
    stack.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    stack.set_defaults(func=_cmd_stack)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status. Our errors print as one readable line, not a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ParleyError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
