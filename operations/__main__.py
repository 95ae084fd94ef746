"""`python -m operations`: operating the deployed stack, or the same on the local runtime.

    dead-letters list                 every dead-letter and rule-error queue, and a line per message in it
    dead-letters show                 each message in full: its kind, why it is there, how it would be redriven
    dead-letters redrive [--dry-run]  sends what can be back where it failed (--include-rejected: also what a
                                      function rejected as malformed, once a fix for it is deployed)
    sam-env-vars --out env.json       the environment `sam local invoke --env-vars` needs to run a function
                                      of cdk.out against the deployed stack

The deployed stack is --stack (default: the only stack in --assembly, cdk.out), in the account and region of
the environment's AWS credentials (or --profile, --region). `dead-letters ... --local SCENARIO` runs the same
command on the local runtime instead: it starts the app of --assembly there, plays SCENARIO
(events/scenarios/), runs the command, lets what it redrove run, and stops.
Exit status: 0 done; 1 a redrive failed; 2 the command cannot do it (it says why); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from local_runtime.assembly import load_stack
from local_runtime.errors import LocalRuntimeError
from operations.dead_letters import DeadLetter, DeadLetterQueue, show, summary
from operations.redrive import DeadLetters, RedriveReport
from operations.stack import OperationsError

EXIT_REDRIVE_FAILED = 1
EXIT_CANNOT = 2
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (OperationsError, LocalRuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT
    except (BotoCoreError, ClientError) as error:  # no credentials, no network, access denied...
        print(f"error: AWS refused or could not be reached: {error}", file=sys.stderr)
        return EXIT_CANNOT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    stack = argparse.ArgumentParser(add_help=False)
    stack.add_argument("--stack", help="the stack's name (default: the only stack in the assembly)")
    stack.add_argument("--assembly", type=Path, default=Path("cdk.out"), help="the cloud assembly (default: cdk.out)")
    stack.add_argument("--profile", help="the AWS profile (default: the environment's credentials)")
    stack.add_argument("--region", help="the stack's region (default: the environment's)")
    parser = argparse.ArgumentParser(
        prog="python -m operations", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    dead_letters = commands.add_parser("dead-letters", help="list, show and redrive the stack's dead letters")
    actions = dead_letters.add_subparsers(dest="action", required=True)
    queue = argparse.ArgumentParser(add_help=False, parents=[stack])
    queue.add_argument("--queue", help="only this queue: its construct path (Presence/DeadLetters), logical id or name")
    queue.add_argument(
        "--local", type=Path, metavar="SCENARIO", help="on the local runtime, after playing this scenario file"
    )
    listing = actions.add_parser("list", parents=[queue], help="the queues, and a line per message")
    listing.set_defaults(run=_list)
    showing = actions.add_parser("show", parents=[queue], help="every message in full")
    showing.add_argument("--message", action="append", default=[], help="only this message id (repeatable)")
    showing.set_defaults(run=_show)
    redrive = actions.add_parser("redrive", parents=[queue], help="send the messages back where they failed")
    redrive.add_argument("--message", action="append", default=[], help="only this message id (repeatable)")
    redrive.add_argument(
        "--include-rejected", action="store_true", help="also what a function rejected as malformed (after a fix)"
    )
    redrive.add_argument("--dry-run", action="store_true", help="say what would be redriven; change nothing")
    redrive.set_defaults(run=_redrive)

    env = commands.add_parser("sam-env-vars", parents=[stack], help="SAM's --env-vars file for the deployed stack")
    env.add_argument("--out", type=Path, help="the file to write (default: print it)")
    env.add_argument("--function", action="append", default=[], help="only this function (repeatable)")
    env.set_defaults(run=_sam_env_vars)
    return parser


def _list(args: argparse.Namespace) -> int:
    def listed(tool: DeadLetters) -> int:
        queues = tool.select(args.queue)
        print(f"{_stack_line(tool)}: {len(queues)} dead-letter queues")
        for dead_letters in queues:
            letters = tool.read(dead_letters)
            print(f"\n{_queue_line(dead_letters, letters)}")
            for letter in letters:
                print(f"  {summary(letter)}")
        return 0

    return _on_target(args, listed)


def _show(args: argparse.Namespace) -> int:
    def shown(tool: DeadLetters) -> int:
        print(_stack_line(tool))
        for dead_letters in tool.select(args.queue):
            letters = [x for x in tool.read(dead_letters) if not args.message or x.message.message_id in args.message]
            print(f"\n{_queue_line(dead_letters, letters)}")
            for letter in letters:
                print("\n".join(f"  {line}" for line in show(letter)))
        return 0

    return _on_target(args, shown)


def _redrive(args: argparse.Namespace) -> int:
    def redriven(tool: DeadLetters) -> int:
        print(f"{_stack_line(tool)}{': dry run, nothing changes' if args.dry_run else ''}")
        reports = [
            tool.redrive(q, dry_run=args.dry_run, include_rejected=args.include_rejected, message_ids=args.message)
            for q in tool.select(args.queue)
        ]
        for report in reports:
            _print_report(report)
        return EXIT_REDRIVE_FAILED if any(report.failed for report in reports) else 0

    return _on_target(args, redriven)


def _print_report(report: RedriveReport) -> None:
    print(f"\n{report.dead_letters.queue.name}: {_messages(len(report.outcomes))}")
    for outcome in report.outcomes:
        print(f"  {outcome.result}: {outcome.letter.message.message_id} ({outcome.letter.kind}): {outcome.detail}")
    if report.move_task is not None:
        print(f"  message move task {report.move_task.status}: {report.move_task.moved} messages moved")


def _stack_line(tool: DeadLetters) -> str:
    account = tool.stack.account
    return f"Stack {tool.stack.name} (account {account.account_id}, {account.region})"


def _queue_line(dead_letters: DeadLetterQueue, letters: list[DeadLetter]) -> str:
    queue = dead_letters.queue
    return f"{queue.name} ({queue.logical_id}): {_messages(len(letters))}\n  holds {dead_letters.holds}"


def _messages(count: int) -> str:
    return f"{count} message{'' if count == 1 else 's'}"


def _on_target(args: argparse.Namespace, command: Any) -> int:
    """Runs `command` on the deployed stack's dead letters, or on the local runtime's after the scenario."""
    if args.local is None:
        import boto3

        from operations.aws import AwsTargets
        from operations.stack import read_deployed

        session = boto3.Session(profile_name=args.profile, region_name=args.region)
        stack = read_deployed(session.client("cloudformation"), _stack_name(args))
        return int(command(DeadLetters(stack, session.client("sqs"), AwsTargets(session.client))))
    from local_runtime import LocalRuntime
    from local_runtime.report import describe_activity
    from local_runtime.scenario import load_scenario, run_scenario
    from operations.local import dead_letters

    steps = load_scenario(args.local)
    with LocalRuntime(args.assembly, stack=args.stack) as runtime:
        run_scenario(runtime, steps, lambda _: None)
        print(f"Local runtime: played {args.local} ({len(steps)} steps)\n")
        start = len(runtime.activities)
        code = int(command(dead_letters(runtime)))
        if args.run is _redrive and not args.dry_run:
            runtime.drain()
            print("\nWhat the redriven messages did:")
            for activity in runtime.activities[start:]:
                print("\n".join(f"  {line}" for line in describe_activity(activity)))
            print("\nThe dead-letter queues now:")
            tool = dead_letters(runtime)
            for queue in tool.select(args.queue):
                print(f"  {queue.queue.name}: {_messages(len(tool.read(queue)))}")
        return code


def _stack_name(args: argparse.Namespace) -> str:
    return args.stack or load_stack(args.assembly).name


def _sam_env_vars(args: argparse.Namespace) -> int:
    import boto3

    from operations.sam_env_vars import sam_env_vars
    from operations.stack import read_deployed

    template = load_stack(args.assembly, args.stack)
    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    cloudformation = session.client("cloudformation")
    deployed = read_deployed(cloudformation, template.name, template=json.loads(template.template_path.read_text()))
    variables = json.dumps(sam_env_vars(template, deployed, session.client, args.function), indent=2)
    if args.out is None:
        print(variables)
    else:
        args.out.write_text(variables + "\n")
        print(f"Wrote {args.out}: the environment of {len(json.loads(variables))} functions of {template.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
