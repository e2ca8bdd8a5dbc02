"""``edge112 board ...`` and ``edge112 sim board``: the board from a technician's side.

``board blink``: every LED fast for N seconds, to find the box in a rack.
When the gateway runs, it holds the pins (gpiod lines have one owner), so
the command asks the daemon instead: it writes ``locate.request`` (the
seconds) beside the status file, and the daemon's main loop picks it up
within one tick (at most 5 s). ``board set`` drives one output (wiring
checks, gateway stopped). ``board status`` shows which backend ``auto``
picks and why, the pins, and the LEDs the running gateway shows.
``sim board`` watches and scripts a simulated board through its state file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from firmware_py.backends.simulated import inputs_path
from firmware_py.board import Board, BoardError, open_board, resolve_auto
from gateway.config import Config, ConfigError, load_config
from gateway.status import LOCATE_REQUEST, read_status, staleness

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _config(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as error:
        print(f"edge112: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def _open(config: Config) -> Board:
    return open_board(config.board, degrade=False)


def _live_status(config: Config) -> tuple[Path, dict[str, object]] | None:
    found = read_status(config.outbox.path)
    if found is None or staleness(found[1]) is not None:
        return None
    return found


def cmd_blink(args: argparse.Namespace) -> int:
    config = _config(args.config)
    live = _live_status(config)
    if live is not None:
        request = live[0].with_name(LOCATE_REQUEST)
        try:
            request.write_text(f"{args.seconds}\n")
        except OSError as error:
            print(
                f"edge112: cannot ask the gateway ({request}: {error.strerror}); run as root "
                "or a member of the edge112 group",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        print(f"asked the running gateway to blink every LED for {args.seconds:g} s")
        return EXIT_OK
    try:
        board = _open(config)
    except BoardError as error:
        print(f"edge112: {error}", file=sys.stderr)
        return EXIT_FAILURE
    from firmware_py.leds import BoardView, LedController

    controller = LedController(board, BoardView)
    controller.locate(args.seconds)
    print(f"blinking every LED on {board.describe()} for {args.seconds:g} s (Ctrl-C stops)")
    try:
        controller.start()
        time.sleep(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
        board.close()
    return EXIT_OK


def cmd_set(args: argparse.Namespace) -> int:
    config = _config(args.config)
    try:
        board = _open(config)
    except BoardError as error:
        print(f"edge112: {error} (is the gateway running? it holds the pins)", file=sys.stderr)
        return EXIT_FAILURE
    try:
        if args.pulse:
            held = board.pulse(args.name, args.pulse)
            print(f"{args.name}: active for {held:.2f} s, released")
        else:
            board.set(args.name, args.state == "on")
            print(f"{args.name}: {args.state} on {board.describe()}; press Enter to release")
            if sys.stdin.isatty():
                input()
    except (KeyError, ValueError) as error:
        print(f"edge112: {error}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        board.close()
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    config = _config(args.config)
    settings = config.board
    chosen, why = (settings.backend, "configured")
    if settings.backend == "auto":
        chosen, why = ("none", "no pins configured") if not settings.pins else resolve_auto()
    live = _live_status(config)
    shown: dict[str, object] = {}
    if live is not None:
        board_status = live[1].get("board")
        if isinstance(board_status, dict):
            shown = dict(board_status.get("leds", {}))
    document = {
        "backend": settings.backend,
        "chosen": chosen,
        "why": why,
        "pins": [
            {
                "name": p.name,
                "pin": p.pin,
                "active_low": p.active_low,
                "direction": "input" if p.is_input else "output",
                "shown": shown.get(p.name),
            }
            for p in settings.pins
        ],
        "modems": [
            {"line": m.line, "model": m.model, "usb_port": m.usb_port} for m in settings.modems
        ],
        "gateway_running": live is not None,
    }
    if args.json:
        print(json.dumps(document, indent=2))
        return EXIT_OK
    print(f"backend   {settings.backend} -> {chosen} ({why})")
    print(f"gateway   {'running' if live else 'not running'}")
    for pin in document["pins"]:  # type: ignore[attr-defined]
        low = " active-low" if pin["active_low"] else ""
        now = f"  now: {pin['shown']}" if pin["shown"] else ""
        print(f"  {pin['name']:24} GPIO {pin['pin']:<4} {pin['direction']}{low}{now}")
    for modem in settings.modems:
        print(f"  modem {modem.line}: {modem.model}, USB port {modem.usb_port or '-'}")
    return EXIT_OK


def cmd_sim_board(args: argparse.Namespace) -> int:
    state = Path(args.state)
    if args.press or args.release:
        wanted: dict[str, bool] = {}
        path = inputs_path(state)
        try:
            wanted = json.loads(path.read_text())
        except (OSError, ValueError):
            wanted = {}
        for name in args.press or []:
            wanted[name] = True
        for name in args.release or []:
            wanted[name] = False
        path.write_text(json.dumps(wanted))
        print(f"inputs now {wanted} ({path})")
        if not args.watch:
            return EXIT_OK
    last = None
    while True:
        try:
            snapshot = json.loads(state.read_text())
        except (OSError, ValueError):
            print(f"edge112: no simulated board state at {state} yet", file=sys.stderr)
            if not args.watch:
                return EXIT_FAILURE
            snapshot = None
        if snapshot is not None and snapshot != last:
            outputs = snapshot.get("outputs", {})
            lamps = "  ".join(f"{name}:{'●' if lit else '○'}" for name, lit in outputs.items())
            inputs = "  ".join(
                f"{n}:{'pressed' if v else '-'}" for n, v in snapshot.get("inputs", {}).items()
            )
            print(f"{lamps}  {inputs}".rstrip(), flush=True)
            last = snapshot
        if not args.watch:
            return EXIT_OK
        time.sleep(0.05)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    board = commands.add_parser("board", help="the board: LEDs, pins, modem power").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    blink = board.add_parser("blink", help="blink every LED (find the box in a rack)")
    blink.add_argument("--config", required=True)
    blink.add_argument("--seconds", type=float, default=30.0)
    blink.set_defaults(func=cmd_blink)
    setter = board.add_parser("set", help="drive one output (wiring check; gateway stopped)")
    setter.add_argument("--config", required=True)
    setter.add_argument("name", help="a pin name from [board.pins], e.g. led_ready")
    setter.add_argument("state", choices=["on", "off"], nargs="?", default="on")
    setter.add_argument("--pulse", type=float, help="hold it active this many seconds, then off")
    setter.set_defaults(func=cmd_set)
    status = board.add_parser("status", help="backend (and why), pins, LEDs shown now")
    status.add_argument("--config", required=True)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)


def register_sim(sim: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sim.add_parser("board", help="watch or script a simulated board (its state file)")
    parser.add_argument("--state", required=True, help="[board] state_file of the gateway")
    parser.add_argument("--press", action="append", metavar="INPUT", help="press an input")
    parser.add_argument("--release", action="append", metavar="INPUT", help="release it")
    parser.add_argument("--watch", action="store_true", help="keep printing changes")
    parser.set_defaults(func=cmd_sim_board)
