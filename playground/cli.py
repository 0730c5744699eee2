"""`python -m course playground`: find the course's checkpoints, load them, and serve the page on this machine.

This file is only the command's options and its start; it imports no torch and no web server until the command
runs, so that `python -m course --help` answers at once. The work is in checkpoints.py and server.py.
"""

from __future__ import annotations

import argparse
import errno
import socket
import textwrap
from pathlib import Path

from coursekit import CourseError, subcommand
from coursekit.settings import add_flags, add_run_flags, from_args

from .settings import DEFAULT_HOST, DEFAULT_PORT, Limits, port_number

DEFAULT_RUNS = Path("runs")  # where the main job (runs/course/) and the chapters' commands (runs/ch0N...) save
LOOPBACK = ("127.0.0.1", "localhost", "::1")


# The --help page. Its examples are shown as typed (one a line), so the description is wrapped here.
DESCRIPTION = textwrap.fill(
    "Start a web page on this machine for the models the course trained: the bigram (Chapter 1), the "
    "character-level GPT (Chapter 3), the pretrained GPT (Chapter 4), the instruction-tuned GPT and the "
    "classifier (Chapter 5). Type a prompt and watch each model's reply appear a token at a time; click a token "
    "to see the five tokens the model found most likely at that step; tick several models to see them side by "
    "side. It looks for checkpoints under runs/ (what `python -m course` and the chapters' commands write); "
    "--model adds others. It works offline and answers only this machine unless --host says otherwise. "
    "Ctrl-C stops it.", width=79)
EXAMPLES = [
    "python -m course --quick && python -m course playground    # a tiny set of models first, then the page",
    "python -m course playground --model runs/ch05/classify      # a folder of your own too",
    "python -m course playground --port 9000",
]


def add_playground_command(commands) -> None:
    """Add `playground` to the main job's subcommands (`commands`: what `add_subparsers` returned)."""
    p = subcommand(
        commands, "playground", run_playground, "talk to the models the course trained, in your browser",
        DESCRIPTION, examples=EXAMPLES)
    p.add_argument("--runs", type=Path, action="append", metavar="DIR",
                   help=f"a folder to search for checkpoints, three levels deep; may be given more than once "
                        f"(default: {DEFAULT_RUNS})")
    p.add_argument("--model", type=Path, action="append", metavar="DIR",
                   help="a checkpoint folder to offer besides those found; may be given more than once")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"the address to listen on (default: {DEFAULT_HOST}, this machine only); 0.0.0.0 lets "
                        f"other machines in; anyone who can reach it can then run the models")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                   help=f"the port to listen on, {port_number.describe()}; 0: any free one (default: {DEFAULT_PORT})")
    add_flags(p, Limits, title="limits (a request over one is refused with a one-line message)")
    add_run_flags(p, dtype=False, seed=False, progress=False, threads=True)


def run_playground(args: argparse.Namespace) -> None:
    limits = from_args(args, Limits())
    host = args.host.strip()
    exposed = host not in LOOPBACK
    sock = bind(host, args.port)  # first: a port in use is one line, before minutes of loading
    try:
        models = load_models(args.runs or [DEFAULT_RUNS], args.model or [], args.device, args.threads)
        from .server import LOCAL_HOSTS, create_app

        app = create_app(models, limits, hosts=None if exposed else LOCAL_HOSTS)
    except BaseException:
        sock.close()
        raise
    port = sock.getsockname()[1]
    if exposed:
        print(f"warning: --host {host} lets every machine that can reach this one use the playground: anyone there "
              f"can run the models on this computer (there is no password; the limits still apply)", flush=True)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    serve(app, sock, lambda: print(f"playground ready at http://{shown}:{port}/  (Ctrl-C stops it)", flush=True))


def load_models(roots: list[Path], given: list[Path], device: str, threads: int | None) -> dict:
    """Find and load every checkpoint; id -> loaded model. A found folder that cannot be loaded is skipped with a
    line; a --model folder that cannot be is a one-line error."""
    import torch

    from coursekit.runtime import pick_device

    from .checkpoints import find_checkpoints, load, model_ids

    found = find_checkpoints(roots, given, warn=lambda line: print(f"note: {line}", flush=True))
    if threads is not None:
        torch.set_num_threads(threads)
    device = pick_device(None if device == "auto" else device)
    named = {Path(g).resolve() for g in given}
    models = {}
    for model_id, f in zip(model_ids(found), found):
        try:
            models[model_id] = load(f, device)
        except Exception as e:  # a damaged or foreign file found on the way: skipped, with the reason
            reason = str(e).splitlines()[0][:300] if isinstance(e, CourseError) else f"{type(e).__name__}: {e}"
            if f.path.resolve() in named:
                raise CourseError(f"--model {f.shown}: cannot load it: {reason}") from None
            print(f"note: skipped {f.shown}: {reason}", flush=True)
            continue
        print(f"  {model_id:<22} {f.title:<36} {f.shown}  ({models[model_id].describe()})", flush=True)
    if not models:
        where = ", ".join(str(r) for r in roots)
        raise CourseError(f"no checkpoints found under {where}; train some first (`python -m course --quick` makes "
                          f"a set in under a minute), or give a folder with --model")
    print(f"{len(models)} model(s) on {device}", flush=True)
    return models


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port`, or a one-line CourseError saying why it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise CourseError(f"--host {host[:60]!r} is not an address of this machine ({e})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        hint = "; another program uses it: choose another with --port" if e.errno == errno.EADDRINUSE else ""
        raise CourseError(f"cannot listen on {host}:{port}: {e.strerror}{hint}") from None
    return sock


def serve(app, sock: socket.socket, on_ready) -> None:
    """Serve `app` on `sock` with uvicorn until Ctrl-C; `on_ready()` once it accepts connections."""
    make_server(app, on_ready).run(sockets=[sock])


def make_server(app, on_ready):
    """The uvicorn server of `app`, which calls `on_ready()` once it accepts connections (`.run(sockets=[...])`
    serves; setting `.should_exit` stops it: the tests run it in a thread)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if not self.should_exit:
                on_ready()

    # Quiet: the page is the interface; errors still print. A generation in progress gets 2 s to end at Ctrl-C.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    return Server(config)
