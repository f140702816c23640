"""`speaker-memory`: the command line. Settings come from the environment (SPEAKER_MEMORY_*);
flags given here override them. Logs go to stderr; stdout carries only results (or, for
`mcp`, only the protocol)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import ValidationError

from memory.errors import SpeakerMemoryError
from server.cli_commands import Command, add_commands
from server.cli_live import LivePrinter
from server.cli_progress import follow
from tools.settings import Settings

if TYPE_CHECKING:
    from tools.job_queue import JobHandle

log = logging.getLogger("speaker_memory")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        print(f"error: {_setting_errors(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        code: int = args.run(args, settings)
        return code
    except SpeakerMemoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, help="database, inbox and caches "
                        "(env SPEAKER_MEMORY_DATA_DIR; default ./data)")
    common.add_argument("--whisper-model", help="tiny.en (default) or base, both bundled")
    common.add_argument("--device", choices=["auto", "cpu", "cuda"])
    common.add_argument("--log-level", help="DEBUG, INFO (default), WARNING, ERROR")

    parser = argparse.ArgumentParser(
        prog="speaker-memory",
        description="Speaker memory for AI agents: who said what, across every recording.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    roots = argparse.ArgumentParser(add_help=False)
    roots.add_argument("--allowed-root", action="append", dest="allowed_roots", type=Path,
                       metavar="DIR", help="folder tool 'path' arguments may point into "
                       "(repeatable; replaces the default: DATA_DIR/inbox and the start folder)")

    mcp = sub.add_parser("mcp", parents=[common, roots],
                         help="serve MCP over stdio (Claude Desktop)")
    mcp.set_defaults(run=run_mcp)

    serve = sub.add_parser("serve", parents=[common, roots],
                           help="serve /mcp (Streamable HTTP), /api/v1 and /healthz")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument("--token", help="bearer token required on every route "
                       "(env SPEAKER_MEMORY_TOKEN; required off loopback)")
    serve.add_argument("--allowed-host", action="append", dest="allowed_hosts",
                       metavar="HOST", help="extra Host header accepted (repeatable)")
    serve.add_argument("--allowed-origin", action="append", dest="allowed_origins",
                       metavar="ORIGIN", help="web page origin besides the server's own that "
                       "may call it, e.g. https://notes.example.com (repeatable)")
    serve.set_defaults(run=run_serve)

    process = sub.add_parser("process", parents=[common],
                             help="process an audio file and print its transcript (process_audio)")
    process.add_argument("file", type=Path)
    process.add_argument("--title")
    process.add_argument("--num-speakers", type=int)
    process.add_argument("--language")
    process.add_argument("--format", choices=["txt", "json", "srt", "vtt", "rttm"],
                         default="txt", help="what to print (default: txt)")
    process.set_defaults(run=run_process)

    enroll = sub.add_parser("enroll", parents=[common],
                            help="learn a voice from a clean clip of one person (enroll_speaker)")
    enroll.add_argument("name")
    enroll.add_argument("file", type=Path)
    enroll.set_defaults(run=run_enroll)

    rebuild = sub.add_parser(
        "rebuild-profiles", parents=[common],
        help="give every speaker a profile of the current voice model from stored audio "
        "(progress on stderr; Ctrl-C stops after the current speaker, run it again to continue; "
        "rebuild_voice_profiles)")
    rebuild.set_defaults(run=run_rebuild)

    delete = sub.add_parser(
        "delete-conversation", parents=[common],
        help="delete a conversation for good (final: no undo), with its transcript, the voice "
        "samples learnt from it and the server's copy of uploaded audio")
    delete.add_argument("conversation_id", type=int, metavar="ID")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(run=run_delete_conversation)

    # listen's --device is the microphone: its own flags, without the compute --device.
    listen_common = argparse.ArgumentParser(add_help=False)
    for action in common._actions:
        if action.dest not in ("device", "help"):
            listen_common._add_action(action)
    listen = sub.add_parser(
        "listen", parents=[listen_common],
        help="transcribe this machine's microphone live, with speaker names; Ctrl-C stops and "
        "finalises (start_listening, get_live_transcript, stop_listening; the live extra)")
    listen.add_argument("--device", dest="input_device", metavar="DEVICE",
                        help="input device name or index (see --list-devices); default: the "
                        "default microphone")
    listen.add_argument("--list-devices", action="store_true",
                        help="list the input devices and exit")
    listen.add_argument("--title")
    listen.set_defaults(run=run_listen)

    export = sub.add_parser("export", parents=[common], help="back up the memory to JSON")
    export.add_argument("backup", type=Path)
    export.set_defaults(run=run_export)

    worker = sub.add_parser(
        "worker", parents=[common],
        help="take processing jobs from the shared queue until stopped (needs "
        "SPEAKER_MEMORY_JOB_QUEUE=procrastinate and a PostgreSQL DATABASE_URL; run any number, "
        "on any machine that mounts the shared audio store)")
    worker.add_argument("--queue", action="append", dest="queues", metavar="NAME",
                        help="queue to take jobs from (repeatable; default: "
                        "SPEAKER_MEMORY_JOB_QUEUE_NAME). A GPU worker: --device cuda --queue gpu, "
                        "with the API servers' JOB_QUEUE_NAME=gpu")
    worker.add_argument("--name", help="this worker's name in the queue's records "
                        "(default: host-pid)")
    worker.set_defaults(run=run_worker)

    imp = sub.add_parser("import", parents=[common],
                         help="restore a JSON backup into an empty memory")
    imp.add_argument("backup", type=Path)
    imp.set_defaults(run=run_import)

    migrate = sub.add_parser(
        "migrate-store", parents=[common],
        help="copy the SQLite memory into an empty PostgreSQL (pgvector) database, every row "
        "checked; the SQLite file is left as it is")
    migrate.add_argument("--to", required=True, metavar="URL",
                         help="postgresql+psycopg://user:password@host/database")
    migrate.add_argument("--from", dest="source", type=Path, metavar="FILE",
                         help="the SQLite file (default: DATA_DIR/speaker_memory.db)")
    migrate.set_defaults(run=run_migrate_store)

    # The other MCP tools, one command each (server/cli_commands.py).
    add_commands(sub, [common], run_tool_command)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Environment first, then flags that were given."""
    overrides: dict[str, Any] = {}
    for name in ("data_dir", "whisper_model", "device", "log_level", "host", "port", "token",
                 "allowed_hosts", "allowed_origins", "allowed_roots", "language"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def _setting_errors(exc: ValidationError) -> str:
    """Pydantic's errors as one line each, without its links."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: "
        f"{str(error['msg']).removeprefix('Value error, ')}"
        for error in exc.errors())


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _app(settings: Settings) -> Any:
    from tools.context import App

    return App(settings)


def _backends_missing(settings: Settings) -> bool:
    """True (after saying why on stderr) when a configured optional backend or a default
    model file is not installed."""
    from memory.errors import MissingExtra, ModelUnavailable
    from tools.pipeline import check_optional_backends

    try:
        check_optional_backends(settings)
    except (MissingExtra, ModelUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return True
    return False


# ---------------------------------------------------------------- commands

def run_mcp(args: argparse.Namespace, settings: Settings) -> int:
    import anyio

    from server.mcp_server import build_server

    if _backends_missing(settings):
        return 2
    from tools.rebuild import start_in_background

    with _app(settings) as app:
        server = build_server(app)
        # Speakers without a profile of the voice model get one, in the background.
        start_in_background(app)
        # stdio_server diverts fd 1 to stderr while serving: stray prints miss the protocol.
        anyio.run(server.run_stdio_async)
    return 0


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from inference.device import cuda_available
    from tools.procrastinate_queue import ProcessingWorker

    if settings.job_queue != "procrastinate":
        print("error: a worker takes jobs from the shared queue: set "
              "SPEAKER_MEMORY_JOB_QUEUE=procrastinate (and DATABASE_URL) on the workers and "
              "the API servers", file=sys.stderr)
        return 2
    if settings.device == "cuda" and not cuda_available():
        # It would take GPU jobs and run them on the CPU, many times slower.
        print("error: --device cuda, but torch sees no GPU on this machine", file=sys.stderr)
        return 2
    if _backends_missing(settings):
        return 2
    with _app(settings) as app:
        worker = ProcessingWorker(app)
        queues = args.queues or [settings.job_queue_name]
        print(f"speaker-memory worker: taking jobs from {', '.join(queues)}", file=sys.stderr)
        asyncio.run(worker.run(queues, args.name))
    return 0


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from server.connections import with_deadline
    from server.http import create_http_app
    from server.security import UnsafeBind, check_bind

    try:
        check_bind(settings.host, settings.token)
    except UnsafeBind as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if _backends_missing(settings):
        return 2
    with _app(settings) as app:
        http_app = create_http_app(app)
        print(f"speaker-memory: MCP at http://{_url_host(settings.host)}:{settings.port}/mcp "
              f"(data in {settings.data_dir.resolve()})", file=sys.stderr)
        uvicorn.run(http_app, host=settings.host, port=settings.port,
                    log_level=settings.log_level.lower(), lifespan="on",
                    http=with_deadline(settings.header_timeout_seconds))
    return 0


def run_process(args: argparse.Namespace, settings: Settings) -> int:
    from tools import exports, processing
    from tools.inputs import local_audio

    with _app(settings) as app:
        audio = local_audio(args.file)
        options = processing.ProcessOptions(title=args.title, num_speakers=args.num_speakers,
                                            language=args.language)
        summary = anyio.run(processing.process_audio, app, audio, options, _follow_here)
        print(summary.message, file=sys.stderr)
        if summary.status != "done":
            return 1
        exported = exports.export_conversation(app, summary.conversation_id, args.format)
        sys.stdout.write(exported.content)
    return 0


def run_enroll(args: argparse.Namespace, settings: Settings) -> int:
    from tools.identity import enroll_speaker
    from tools.inputs import local_audio

    with _app(settings) as app:
        result = anyio.run(enroll_speaker, app, args.name, local_audio(args.file), _follow_here)
        print(result.message)
    return 0


def run_listen(args: argparse.Namespace, settings: Settings) -> int:
    from inference.microphone import list_devices
    from tools import live

    if args.list_devices:
        for device in list_devices():
            mark = " (default)" if device.default else ""
            print(f"{device.index}: {device.name} ({device.channels} ch){mark}")
        return 0
    device = args.input_device
    index: str | int | None = int(device) if device is not None and device.isdigit() \
        else device
    with _app(settings) as app:
        started = live.start_microphone(app, index, args.title)
        session = live.session_of(app, started.conversation_id)
        print(f"Listening (conversation {started.conversation_id}); Ctrl-C stops.",
              file=sys.stderr)
        printer = LivePrinter(sys.stdout)
        for event in session.subscribe(printer):
            printer(event)
        try:
            while not session.finished.wait(timeout=0.5):
                pass
        except KeyboardInterrupt:
            print("\nStopping: finalising the recording...", file=sys.stderr)
        summary = anyio.run(live.stop_listening, app, started.conversation_id, _follow_here)
        print(summary.message, file=sys.stderr)
    return 0 if summary.status == "done" else 1


async def _follow_here(job: JobHandle) -> None:
    """The CLI follows a job to its end, its progress on stderr."""
    await anyio.to_thread.run_sync(follow, job, sys.stderr)


def run_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from tools import rebuild

    with _app(settings) as app:
        job = rebuild.start_rebuild(app)
        try:
            follow(job, sys.stderr)
        except KeyboardInterrupt:
            job.cancel.set()
            print("stopping after the current speaker...", file=sys.stderr)
            follow(job, sys.stderr)
        status = rebuild.rebuild_status(app)
        print(status.message)
    return {"done": 0, "cancelled": 130}.get(status.status, 1)


def run_delete_conversation(args: argparse.Namespace, settings: Settings) -> int:
    from tools.deletion import delete_conversation

    if not args.yes:
        if not sys.stdin.isatty():
            print("error: deleting a conversation is final; add --yes to confirm",
                  file=sys.stderr)
            return 2
        answer = input(f"Delete conversation {args.conversation_id} for good? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return 1
    with _app(settings) as app:
        print(delete_conversation(app, args.conversation_id).message)
    return 0


def run_tool_command(args: argparse.Namespace, settings: Settings) -> int:
    """A command of server/cli_commands.py: the tool's text, or its result with --json; a
    refused call exits with 2 and the message the MCP tool gives."""
    from tools.errors import explain

    command: Command = args.tool_command
    with _app(settings) as app:
        try:
            result = command.call(app, args)
        except SpeakerMemoryError as exc:
            print(f"error: {explain(app, exc)}", file=sys.stderr)
            return 2
    print(result.model_dump_json(indent=2) if args.json else command.text(result))
    return 0


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    with _app(settings) as app:
        app.memory.export_json(args.backup)
    print(f"backup written to {args.backup}", file=sys.stderr)
    return 0


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    if not args.backup.is_file():
        print(f"error: no backup file at {args.backup}", file=sys.stderr)
        return 1
    with _app(settings) as app:
        app.memory.import_json(args.backup)
    print(f"restored {args.backup} into {settings.db_path}", file=sys.stderr)
    return 0


def run_migrate_store(args: argparse.Namespace, settings: Settings) -> int:
    from tools.store_migration import migrate_store

    print(migrate_store(settings, args.to, args.source).message)
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


if __name__ == "__main__":
    sys.exit(main())
