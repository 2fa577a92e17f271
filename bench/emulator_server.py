"""The product's emulator in a process of its own, with exact record counts and a control channel on stdin.

    python -m bench.emulator_server --specs '[{"domain": "...", "api_key": "...", "counts": {...}, "seed": 1}]'

Prints one JSON line when serving ({"base_url": ..., "build_s": ...}), then answers one JSON command per stdin
line with one JSON line on stdout (see `Control`). Stops on `{"cmd": "quit"}`, EOF or SIGTERM. Running the
emulator apart keeps its memory (hundreds of MB at these scales) out of the sync's peak RSS, and its CPU on
the other core.

Only the product's public emulator API is used (Emulator, TenantStore.edit/add/list_page/set_clock), plus a
timestamp per logged request (the request log is swapped for a list that stamps each append).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from synchroteam_emulator import Emulator, TenantSpec

DAILY_QUOTA = 1_000_000_000


class TimedList(list):
    """The emulator's request log, with the monotonic time of each append (appends happen under its lock)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Any) -> None:  # noqa: D401 - list API
        self.times.append(time.monotonic())
        super().append(item)

    def clear(self) -> None:
        self.times.clear()
        super().clear()


class Control:
    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        self.log = TimedList()
        emulator._requests = self.log  # noqa: SLF001 - the one hook: timestamps for rates

    def handle(self, cmd: dict[str, Any]) -> Any:
        name = cmd.pop("cmd")
        return getattr(self, f"cmd_{name}")(**cmd)

    def cmd_ping(self) -> str:
        return "pong"

    def cmd_stats(self, reset: bool = False, times: bool = False) -> dict[str, Any]:
        """Requests since the last reset: counts per (tenant, resource, action, status), first/last times, and
        with `times` the time of every answered request."""
        with self.emu._req_lock:  # noqa: SLF001
            records, stamps = list(self.log), list(self.log.times)
            if reset:
                self.log.clear()
        by = Counter((r.tenant, r.resource, r.action, r.status) for r in records)
        # list calls with pageSize=1: the product's `row_count_matches_api` asset check reads recordsTotal so
        counting = Counter(
            (r.tenant, r.resource) for r in records if r.action == "list" and r.params.get("pageSize") == "1"
        )
        ok_times = [t for r, t in zip(records, stamps) if r.status == 200]
        return {
            "n": len(records),
            "by": [[*key, n] for key, n in sorted(by.items(), key=lambda kv: tuple(map(str, kv[0])))],
            "page_size_1": [[*key, n] for key, n in sorted(counting.items(), key=lambda kv: tuple(map(str, kv[0])))],
            "not_ok_positions": [
                [i, r.status, r.params.get("pageSize")] for i, r in enumerate(records) if r.status != 200
            ][:50],
            "t_first": stamps[0] if stamps else None,
            "t_last": stamps[-1] if stamps else None,
            "ok_first": ok_times[0] if ok_times else None,
            "ok_last": ok_times[-1] if ok_times else None,
            "now": time.monotonic(),
            **({"ok_times": ok_times} if times else {}),
        }

    def cmd_clear(self) -> None:
        self.emu.clear_requests()

    def cmd_set_rate_limit(self, per_minute: int | None, retry_after: bool = True, **window: Any) -> None:
        """`per_minute` requests a sliding minute, or `window` (window_seconds, fixed, headers, message) as
        `Emulator.set_rate_limit` takes it."""
        self.emu.set_rate_limit(per_minute, retry_after=retry_after, **window)

    def cmd_count(self, tenant: str, resource: str, filters: dict[str, str]) -> int:
        total, _ = self.emu.tenant(tenant).list_page(resource, 1, 1, filters)
        return total

    def cmd_counts(self) -> dict[str, dict[str, int]]:
        return {
            store.domain: {res: store.list_page(res, 1, 1, {})[0] for res in store.spec.counts}
            for store in self.emu.tenants
        }

    def cmd_mutate(
        self, start: str, minutes: int, fraction: float, add_share: float, seed: int, resources: dict[str, list[str]]
    ) -> dict[str, Any]:
        """Change `fraction` of each resource's records, at random minutes in (start, start + minutes]:
        (1 - add_share) of them edits of existing records (dateModified bumped to that minute), the rest new
        records created then. The tenant clock ends frozen at start + minutes."""
        rng = random.Random(seed)
        t0 = datetime.fromisoformat(start)
        end = t0 + timedelta(minutes=minutes)
        out: dict[str, dict[str, dict[str, int]]] = {}
        for domain, names in resources.items():
            store = self.emu.tenant(domain)
            for res in names:
                total, _ = store.list_page(res, 1, 1, {})
                n = max(1, round(total * fraction))
                n_add = round(n * add_share)
                ids = [row["id"] for row in _all_rows(store, res)]
                picked = rng.sample(ids, n - n_add)
                for rid in picked:
                    store.edit(res, rid, modified_at=t0 + timedelta(minutes=rng.randint(1, minutes)))
                for _ in range(n_add):
                    store.set_clock(t0 + timedelta(minutes=rng.randint(1, minutes)))
                    store.add(res)
                out.setdefault(domain, {})[res] = {"edited": n - n_add, "added": n_add}
            store.set_clock(end)
        return {"changed": out, "end": end.isoformat(sep=" ")}

    def cmd_set_daily_quota(self, quota: int = DAILY_QUOTA) -> None:
        for store in self.emu.tenants:
            self.emu.set_daily_quota(store.domain, quota)

    def cmd_clock(self) -> dict[str, str]:
        """Each tenant's clock (local time, to the minute), frozen where a timeline set it or following real time."""
        return {store.domain: store.now().isoformat(sep=" ") for store in self.emu.tenants}

    def cmd_set_clock(self, local: str) -> None:
        for store in self.emu.tenants:
            store.set_clock(datetime.fromisoformat(local))


def _all_rows(store, resource: str) -> list[dict]:
    total, _ = store.list_page(resource, 1, 1, {})
    _, rows = store.list_page(resource, 1, total, {})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", required=True, help="JSON list of TenantSpec fields")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    specs = [TenantSpec(**spec) for spec in json.loads(args.specs)]
    emu = Emulator(specs, port=args.port)
    for spec in specs:  # the default daily quota (100,000) is below one full sync of 100k jobs and their details
        emu.set_daily_quota(spec.domain, DAILY_QUOTA)
    control = Control(emu)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    out = sys.stdout
    with emu:
        out.write(json.dumps({"base_url": emu.base_url, "build_s": round(time.monotonic() - started, 2)}) + "\n")
        out.flush()
        for line in sys.stdin:
            if stop.is_set():
                break
            line = line.strip()
            if not line:
                continue
            cmd = json.loads(line)
            if cmd.get("cmd") == "quit":
                out.write(json.dumps({"ok": True, "result": None}) + "\n")
                out.flush()
                break
            try:
                reply = {"ok": True, "result": control.handle(cmd)}
            except Exception as exc:  # report, keep serving
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
