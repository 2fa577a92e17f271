"""Serve the demo tenants: `python -m synchroteam_emulator --port 8765 --scale 1 --seed 1 [API habits]`."""

from __future__ import annotations

import argparse
import signal
import threading
import time

from .data import TenantSpec
from .env import tenant_env
from .habits import (
    add_api_habit_arguments,
    apply_api_habits,
    check_api_habits,
    describe_api_habits,
)
from .server import Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synchroteam_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the demo record counts")
    parser.add_argument("--seed", type=int, default=1, help="seed of the main tenant (HEC uses seed + 1)")
    add_api_habit_arguments(parser)
    args = parser.parse_args(argv)
    check_api_habits(parser, args)

    main_spec, hec_spec = TenantSpec.demo_main(args.scale), TenantSpec.demo_hec(args.scale)
    main_spec.seed, hec_spec.seed = args.seed, args.seed + 1
    started = time.monotonic()
    emu = Emulator([main_spec, hec_spec], host=args.host, port=args.port)
    apply_api_habits(emu, args)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with emu:
        print(f"Synchroteam emulator on {emu.base_url} (data built in {time.monotonic() - started:.1f}s)")
        for name, spec in (("synchroteam", main_spec), ("synchroteam_hec", hec_spec)):
            print(f"  {spec.domain}: " + ", ".join(f"{k}={v}" for k, v in spec.counts.items()))
            for variable, value in tenant_env(emu.base_url, {name: spec}).items():
                print(f"export {variable}={value}")
        for habit in describe_api_habits(args):
            print(f"  API habit: {habit}")
        print("Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    print("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
