"""`python -m local_runtime`: run the synthesized app on this machine.

    functions                              the functions, and why any cannot run here
    invoke <function> --event <file>       one invocation, as `sam local invoke` (logs, result, tables)
    publish <topic> --payload <json|@file> one message through the rules, then the functions
    scenario <file>                        a scenario (events/scenarios/), then the tables and queues
    show                                   what the runtime makes of the app: resources, event sources, rules
    authorize <authorizer> ...             a device connecting through a custom authorizer, as IoT decides it
    serve                                  a device endpoint on loopback: real MQTT devices drive the app

Every command takes --assembly (default cdk.out, which `make synth` writes) and --stack when the assembly
has several stacks. Exit status: 0 done; 1 the invoked function failed (or `authorize` denied, or a scenario's
message was accepted or rejected other than the scenario expects); 2 the runtime cannot do it (it says why:
something not emulated, an unknown name, queues that did not drain in time); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

from events import now_ms, resolve_times
from local_runtime.activity import Activity
from local_runtime.authorizers import Connection
from local_runtime.assembly import find_functions, load_stack, select_function
from local_runtime.errors import LocalRuntimeError, NotEmulated
from local_runtime.event_sources import DrainTimeout
from local_runtime.report import describe_activity, queues_report, startup_summary, summarise_logs, tables_report
from local_runtime.rules import NO_CLIENT
from local_runtime.runtime import DEFAULT_DRAIN_TIMEOUT_S, LocalRuntime
from local_runtime.scenario import load_scenario, outcome_lines, run_scenario

EXIT_FUNCTION_FAILED = 1
EXIT_CANNOT_RUN = 2
EXIT_INTERRUPTED = 130
Result = TypeVar("Result")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.monotonic()
    try:
        code = args.run(args)
    except LocalRuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        code = EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    print(f"\n{args.command} took {time.monotonic() - started:.1f} s")
    return code


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--assembly", type=Path, default=Path("cdk.out"), help="the cloud assembly folder (default: cdk.out)"
    )
    common.add_argument("--stack", help="the stack to run, when the assembly has several")
    parser = argparse.ArgumentParser(
        prog="python -m local_runtime", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("functions", parents=[common], help="list the functions and whether they run here")
    listing.set_defaults(run=_functions)

    invoke = commands.add_parser("invoke", parents=[common], help="invoke a function once with an event file")
    invoke.add_argument("function", help="friendly name (e.g. track_presence), logical id or CDK path")
    invoke.add_argument(
        "-e", "--event", type=Path, required=True, help="a JSON file (e.g. events/track_presence/connected.json)"
    )
    invoke.add_argument("--no-tables", action="store_true", help="do not print the tables afterwards")
    invoke.set_defaults(run=_invoke)

    publish = commands.add_parser("publish", parents=[common], help="publish one message to the rules, then drain")
    publish.add_argument("topic")
    publish.add_argument("--payload", required=True, help="the payload as text (JSON or not), or @file")
    publish.add_argument("--client-id", default=NO_CLIENT, help="the MQTT client publishing (clientid(); default n/a)")
    publish.add_argument("--principal", help="the publisher's principal (principal()): certificate id or thing name")
    publish.add_argument("--drain-timeout", type=float, default=DEFAULT_DRAIN_TIMEOUT_S, help="seconds (%(default)s)")
    publish.set_defaults(run=_publish)

    scenario = commands.add_parser("scenario", parents=[common], help="play a scenario file")
    scenario.add_argument("file", type=Path)
    scenario.add_argument(
        "--drain-timeout", type=float, default=DEFAULT_DRAIN_TIMEOUT_S, help="seconds per drain (%(default)s)"
    )
    scenario.set_defaults(run=_scenario)

    show = commands.add_parser("show", parents=[common], help="the resources, event sources and rules, as loaded")
    show.set_defaults(run=_show)

    connect = commands.add_parser(
        "authorize", parents=[common], help="connect through a custom authorizer, as IoT Core would decide it"
    )
    connect.add_argument("authorizer", help="the authorizer's name")
    connect.add_argument("--protocol", choices=("mqtt", "http", "websocket"), default="mqtt")
    connect.add_argument("--client-id", help="MQTT client ID")
    connect.add_argument("--username", help="MQTT username (IoT reads token and signature from its ?query)")
    connect.add_argument("--password", help="MQTT password")
    connect.add_argument("--header", action="append", default=[], metavar="NAME=VALUE", help="HTTP header (repeatable)")
    connect.add_argument("--query", default="", help="HTTP query string")
    connect.set_defaults(run=_authorize)

    serve = commands.add_parser(
        "serve", parents=[common], help="serve devices: MQTT over TLS (certificates, custom auth) and WebSocket"
    )
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    serve.add_argument("--mtls-port", type=int, default=8883, help="MQTT with client certificates (%(default)s)")
    serve.add_argument("--custom-auth-port", type=int, default=8443, help="MQTT with custom auth (%(default)s)")
    serve.add_argument("--websocket-port", type=int, default=8444, help="MQTT over WebSocket, custom auth (%(default)s)")
    serve.add_argument(
        "--folder", type=Path, default=Path(".local_runtime/endpoint"), help="where the endpoint keeps its CA and "
        "server certificate (default: %(default)s)"
    )
    serve.add_argument(
        "--crl", type=Path, action="append", default=[], metavar="FILE",
        help="a CA's CRL (DER or PEM) for the trust bucket, as on AWS, so activate_certificate can activate that "
        "CA's devices (JITR); repeatable",
    )
    serve.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C or SIGTERM)")
    serve.add_argument("--drain-timeout", type=float, default=DEFAULT_DRAIN_TIMEOUT_S, help="seconds (%(default)s)")
    serve.set_defaults(run=_serve)
    return parser


def _functions(args: argparse.Namespace) -> int:
    specs = find_functions(load_stack(args.assembly, args.stack))
    runnable = [spec for spec in specs if not spec.not_runnable]
    rows = [("name", "logical id", "handler", "runtime", "memory", "timeout")]
    for spec in runnable:
        memory, timeout = f"{spec.memory_mb} MB", f"{spec.timeout_s} s"
        rows.append((spec.name, spec.logical_id, spec.handler or "", spec.runtime or "", memory, timeout))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    print("Runnable here (python -m local_runtime invoke <name> --event <file>):")
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    not_runnable = [spec for spec in specs if spec.not_runnable]
    if not_runnable:
        print("Not runnable here:")
        for spec in not_runnable:
            print(f"  {spec.resource.label}: {spec.not_runnable}")
    print(f"Functions run on this machine's Python {sys.version.split()[0]}, whatever their runtime says.")
    return 0


def _invoke(args: argparse.Namespace) -> int:
    runtime = LocalRuntime(args.assembly, stack=args.stack)
    spec = select_function(runtime.function_specs, args.function)  # an unknown name fails before anything starts
    if spec.not_runnable:
        raise NotEmulated(f"Function {spec.resource.label} cannot run locally: {spec.not_runnable}")
    event = _read_json(args.event)
    with runtime:
        print(f"Invoking {spec.name} ({spec.logical_id}) with {args.event}")
        print(f"embedded AWS (moto) at {runtime.cloud.endpoint_url}")
        invocation = runtime.invoke(spec.logical_id, event)
        cold = f", cold start {invocation.init_ms:.0f} ms" if invocation.init_ms is not None else ""
        print(f"\n--- logs (request {invocation.request_id}: {invocation.duration_ms:.0f} ms{cold}) ---")
        print("\n".join(invocation.logs))
        print("\n--- error ---" if invocation.error else "\n--- result ---")
        print(json.dumps(invocation.error.as_json() if invocation.error else invocation.result, indent=2))
        if not args.no_tables:
            print(f"\n{tables_report(runtime)}")
    return EXIT_FUNCTION_FAILED if invocation.error else 0


def _publish(args: argparse.Namespace) -> int:
    payload = Path(args.payload[1:]).read_bytes() if args.payload.startswith("@") else args.payload.encode()
    with _event_flow_runtime(args) as runtime:
        print(startup_summary(runtime, with_event_flow=True) + "\n")
        print(f"publish {args.topic}")
        if not runtime.publish(args.topic, payload, args.client_id, args.principal):
            print(f"      no rule matches {args.topic}")
        _finish(runtime, runtime.drain)
        return 0


def _scenario(args: argparse.Namespace) -> int:
    steps = load_scenario(args.file)  # its relative times count from now, as it is played
    with _event_flow_runtime(args) as runtime:
        print(startup_summary(runtime, with_event_flow=True))
        print(f"\nScenario {args.file}: {len(steps)} steps")
        played = _finish(runtime, lambda: run_scenario(runtime, steps, print))
    print("\nOutcome of each message\n\n" + "\n".join(outcome_lines(played)))
    return 0 if played.passed else EXIT_FUNCTION_FAILED


def _show(args: argparse.Namespace) -> int:
    with LocalRuntime(args.assembly, stack=args.stack) as runtime:
        print(startup_summary(runtime, with_event_flow=True))
        print(f"\n{_final_state(runtime, 'Tables and queues, as created')}")
    return 0


def _authorize(args: argparse.Namespace) -> int:
    headers = dict(header.split("=", 1) for header in args.header if "=" in header)
    password = None if args.password is None else args.password.encode()
    connection = Connection(args.protocol, args.client_id, args.username, password, headers, args.query)
    with LocalRuntime(args.assembly, stack=args.stack) as runtime:
        decision = runtime.authorize(args.authorizer, connection)
        invocation = decision.invocation
        if invocation is not None:
            cold = f", cold start {invocation.init_ms:.0f} ms" if invocation.init_ms is not None else ""
            print(f"{invocation.function} ({invocation.duration_ms:.0f} ms{cold})")
            print("\n".join(f"    {line}" for line in summarise_logs(invocation.logs)))
            print(json.dumps(invocation.error.as_json() if invocation.error else invocation.result, indent=2))
    print(f"{'ALLOWED' if decision.allowed else 'DENIED'}: {decision.reason}")
    return 0 if decision.allowed else EXIT_FUNCTION_FAILED


def _serve(args: argparse.Namespace) -> int:
    from local_runtime.device_endpoint import DeviceEndpoint  # loads the broker only for this command
    from local_runtime.trust_material import put_crl

    with _event_flow_runtime(args) as runtime:
        print(startup_summary(runtime, with_event_flow=True))
        for crl in args.crl:
            ca_id = put_crl(runtime, crl.read_bytes())
            print(f"{crl}: the CRL of CA certificate {ca_id}, in the trust bucket")
        endpoint = DeviceEndpoint(
            runtime,
            args.folder,
            host=args.host,
            mtls_port=args.mtls_port,
            custom_auth_port=args.custom_auth_port,
            websocket_port=args.websocket_port,
        )
        with endpoint:
            print(f"\n{endpoint.summary()}", flush=True)
            try:
                if args.seconds is None:
                    while True:
                        time.sleep(3600)
                time.sleep(args.seconds)
            except KeyboardInterrupt:
                print("\nstopping: every device is disconnected (SERVER_INITIATED_DISCONNECT)")
        print(f"\n{_final_state(runtime)}")
    return 0


def _event_flow_runtime(args: argparse.Namespace) -> LocalRuntime:
    """A runtime that prints what the rules and functions do as they do it."""
    return LocalRuntime(args.assembly, stack=args.stack, observer=_printer(), drain_timeout_s=args.drain_timeout)


def _finish(runtime: LocalRuntime, play: Callable[[], Result]) -> Result:
    """Plays, then prints the final state, also when the queues did not drain in time."""
    try:
        result = play()
    except DrainTimeout:
        print(f"\n{_final_state(runtime)}")
        raise
    print(f"\n{_final_state(runtime)}")
    return result


def _final_state(runtime: LocalRuntime, title: str = "Final state") -> str:
    return f"{title}\n\n{tables_report(runtime)}\n\n{queues_report(runtime)}"


def _printer() -> Callable[[Activity], None]:
    def show(activity: Activity) -> None:
        for line in describe_activity(activity):
            print(f"      {line}")

    return show


def _read_json(path: Path) -> object:
    """The event with its relative times ({"$time": "-5m"}) resolved against now, as the tests load it."""
    try:
        return resolve_times(json.loads(path.read_text()), now_ms(), where=str(path))
    except (OSError, ValueError) as error:  # a RelativeTimeError is a ValueError
        raise LocalRuntimeError(f"Cannot read the event {path}: {error}") from None


def _stop_on_sigterm() -> None:
    """`kill` ends the command as Ctrl-C does: every `with` block stops its workers and server on the way out."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


if __name__ == "__main__":
    _stop_on_sigterm()
    sys.exit(main())
