"""The HTTP side: a threading http.server speaking the Synchroteam API v3 contract, and `Emulator`."""

from __future__ import annotations

import base64
import binascii
import email.utils
import hmac
import math
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .data import LIST_ONLY, RESOURCES, TenantSpec
from .faults import (
    DEFAULT_QUOTA,
    HOLD_LIMIT_SECONDS,
    TOO_MANY,
    Fault,
    FaultQueue,
    Quota,
    RateLimiter,
    Window,
)
from .protocol import (
    HTML,
    JSON,
    PREFIX,
    ROUTE,
    BadRequest,
    dump,
    firewall_page,
    list_params,
)
from .store import TenantStore


@dataclass
class RequestRecord:
    """One request as the emulator saw it."""

    tenant: str | None
    method: str
    path: str
    resource: str | None
    action: str | None
    params: dict[str, str]
    status: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SynchroteamEmulator/3"
    wbufsize = -1  # buffer header + body, one flush per response (no Nagle/delayed-ACK stall)
    disable_nagle_algorithm = True
    server: _Server
    before_reply: Callable[[int], None] = staticmethod(lambda status: None)  # set per request by Emulator._handle
    # the tenant's clock (UTC), set per request by Emulator._handle: the `Date` header
    server_clock: Callable[[], datetime] | None = None

    def date_time_string(self, timestamp: float | None = None) -> str:
        """`Date` follows the tenant clock (the one that stamps `dateModified`), frozen or not."""
        if timestamp is None and self.server_clock is not None:
            return email.utils.format_datetime(self.server_clock(), usegmt=True)
        return super().date_time_string(timestamp)

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.server.conns.add(self.connection)

    def finish(self) -> None:
        self.server.conns.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - silence per-request logging
        pass

    def do_GET(self) -> None:
        self.server.emulator._handle(self, "GET")

    def do_HEAD(self) -> None:
        self.server.emulator._handle(self, "HEAD")

    def _other(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.emulator._handle(self, self.command)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _other

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests get JSON too (http.server would answer HTML)."""
        body = dump({"message": message or HTTPStatus(code).phrase})
        self.send_response(code, message)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Quota-Remaining", str(DEFAULT_QUOTA))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def reply(
        self,
        status: int,
        body: bytes,
        headers: Iterable[tuple[str, str]],
        content_type: str = JSON,
        retry_after: int | None = None,
    ) -> None:
        """Send one answer; `headers` are the extra ones (X-Quota-Remaining..., cookies), repeats allowed."""
        self.before_reply(status)  # log first: a client may inspect the log as soon as it has the answer
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, emulator: Emulator) -> None:
        self.emulator = emulator
        self.conns: set[socket.socket] = set()
        super().__init__(addr, _Handler)


class Emulator:
    """Local Synchroteam API v3 on 127.0.0.1 serving one or more tenants."""

    def __init__(self, specs: list[TenantSpec], host: str = "127.0.0.1", port: int = 0) -> None:
        self._stores = {s.domain: TenantStore(s) for s in specs}
        self.host = host
        self._port = port
        self.faults = FaultQueue()
        self._rate = RateLimiter()
        self._quota = Quota()
        self._ignored: dict[str, frozenset[str]] = {}  # resource -> lowercased query names it drops
        self._lean: frozenset[str] = frozenset()
        self._firewall: int | None = None
        self._requests: list[RequestRecord] = []
        self._req_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Emulator:
        if self._server is None:
            self._server = _Server((self.host, self._port), self)
            self._port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="synchroteam-emulator",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        for conn in list(server.conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}/Api/v3"

    # -- control -----------------------------------------------------------------------
    def tenant(self, domain: str) -> TenantStore:
        return self._stores[domain]

    @property
    def tenants(self) -> list[TenantStore]:
        return list(self._stores.values())

    def set_rate_limit(
        self,
        limit: int | None,
        *,
        retry_after: bool = True,
        window_seconds: float = 60.0,
        fixed: bool = False,
        headers: bool = False,
        message: str = TOO_MANY,
    ) -> None:
        """`limit` requests per window per tenant (None = no limit), then 429 `{"message": message}`.

        The window slides over the last `window_seconds`, or with fixed=True starts at the tenant's first
        request after its previous window ended. headers=True puts X-RateLimit-Limit/-Remaining/-Reset and
        X-Quota-Limit on every answer to a known tenant; retry_after=False leaves Retry-After off the 429s.
        """
        self._rate.configure(
            limit, retry_after=retry_after, window_seconds=window_seconds, fixed=fixed, headers=headers, message=message
        )

    def ignore_filters(self, resource: str, *names: str) -> None:
        """List requests of `resource` act as if the query parameters `names` were absent (no names = none).

        As an ASP.NET API does with a parameter it does not know: neither validated nor applied.
        """
        lowered = frozenset(n.lower() for n in names)  # ASP.NET binds query names case-insensitively
        if lowered:
            self._ignored[resource.lower()] = lowered
        else:
            self._ignored.pop(resource.lower(), None)

    def set_firewall(self, status: int | None = 403) -> None:
        """Answer every request with an Imperva Incapsula HTML page of this status (None = off)."""
        self._firewall = status

    def set_lean_lists(self, *resources: str) -> None:
        """List rows of these resources come without `lines` (details keep them); no resources = off."""
        self._lean = frozenset(r.lower() for r in resources)

    def set_no_activity_list(self, on: bool = True, *, tenant: str | None = None) -> None:
        """`activity/list` answers 404 "Not found", as an unknown resource does, on `tenant` (None = every tenant).

        The endpoint is only inferred from the docs: a tenant's API may not have it.
        """
        for store in self.tenants if tenant is None else [self.tenant(tenant)]:
            store.no_activity_list = on

    def set_daily_quota(self, domain: str, quota: int) -> None:
        self._quota.set(domain, quota)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._req_lock:
            return list(self._requests)

    def request_count(
        self, *, tenant: str | None = None, resource: str | None = None, action: str | None = None
    ) -> int:
        return sum(
            1
            for r in self.requests
            if (tenant is None or r.tenant == tenant)
            and (resource is None or r.resource == resource)
            and (action is None or r.action == action)
        )

    def clear_requests(self) -> None:
        with self._req_lock:
            self._requests.clear()

    # -- request handling --------------------------------------------------------------
    def _authenticate(self, header: str | None) -> tuple[TenantStore | None, str | None]:
        """(store if credentials are right, domain named in the header if it is a known tenant)."""
        if not header or not header[:6].lower() == "basic ":
            return None, None
        try:
            user, _, key = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None, None
        store = self._stores.get(user)
        if store is None:
            return None, None
        ok = hmac.compare_digest(key.encode(), store.api_key.encode())
        return (store if ok else None), user

    def _handle(self, h: _Handler, method: str) -> None:
        url = urlsplit(h.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        route = ROUTE.match(url.path)
        resource, action = (route.group(1).lower(), route.group(2).lower()) if route else (None, None)
        store, named = self._authenticate(h.headers.get("Authorization"))
        domain = store.domain if store else None
        quota_of = store.domain if store else named
        logged = False

        def log(status: int) -> None:
            nonlocal logged
            if not logged:
                logged = True
                with self._req_lock:
                    self._requests.append(RequestRecord(domain, method, url.path, resource, action, params, status))

        h.before_reply = log
        h.server_clock = store.utc_now if store else None
        try:
            if self._firewall is not None:  # the firewall stands in front of everything, faults included
                self._firewall_reply(h, self._firewall)
            else:
                self._respond(h, method, url.path, params, store, resource, action, quota_of)
        except Exception:  # a bug here must still answer (JSON 500) and keep serving
            traceback.print_exc()
            if not logged:
                h.reply(500, dump({"message": "Internal server error"}), [("X-Quota-Remaining", str(DEFAULT_QUOTA))])

    def _firewall_reply(self, h: _Handler, status: int) -> int:
        body, headers = firewall_page()
        h.reply(status, body, headers, HTML)
        return status

    def _api_headers(self, tenant: str | None, left: int, window: Window | None = None) -> list[tuple[str, str]]:
        """X-Quota-Remaining; with rate headers on and a known tenant, X-Quota-Limit and X-RateLimit-*.

        `window` is the one the request was counted in; None = the window as it stands (not counted).
        """
        headers = [("X-Quota-Remaining", str(left))]
        if tenant is None or not self._rate.headers:
            return headers
        window = window or self._rate.peek(tenant)
        if window is None:
            return headers
        return headers + [
            ("X-Quota-Limit", str(self._quota.total(tenant))),
            ("X-RateLimit-Limit", str(window.limit)),
            ("X-RateLimit-Remaining", str(window.remaining)),
            ("X-RateLimit-Reset", str(window.reset)),
        ]

    def _respond(
        self,
        h: _Handler,
        method: str,
        path: str,
        params: dict[str, str],
        store: TenantStore | None,
        resource: str | None,
        action: str | None,
        quota_of: str | None,
    ) -> int:
        """Faults, then auth, quota, rate limit, routing, and the answer; returns the status sent."""
        left = self._quota.remaining(quota_of) if quota_of else DEFAULT_QUOTA
        window: Window | None = None  # the rate window this request was counted in, once it is
        fault = self.faults.take(store.domain if store else None, resource, action)
        if fault is not None:
            if fault.hold is not None:
                fault.hold.wait(HOLD_LIMIT_SECONDS)
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status is not None:
                headers = self._api_headers(quota_of, left) if fault.api_headers else []
                return self._fault_reply(h, fault, headers + fault.headers)

        def error(status: int, message: str, retry: int | None = None, **extra) -> int:
            h.reply(
                status,
                dump({"message": message, **extra}),
                self._api_headers(quota_of, left, window),
                retry_after=retry,
            )
            return status

        if not PREFIX.match(path):
            return error(404, "Not found")
        if store is None:
            return error(401, "Invalid domain or API key")
        if left <= 0:
            return error(429, "Daily quota exceeded")
        window = self._rate.admit(store.domain)
        if window is not None and not window.admitted:
            retry = max(1, math.ceil(window.wait)) if self._rate.retry_after else None
            return error(429, self._rate.message, retry)
        spent = self._quota.spend(store.domain)
        if spent is None:
            return error(429, "Daily quota exceeded")
        left = spent
        if resource not in RESOURCES or self._unknown(store, resource, action):
            return error(404, "Not found")
        if not store.serves(resource):
            return error(404, f"Resource '{resource}' is not available")
        if method not in ("GET", "HEAD"):
            return error(405, "Method not allowed")
        if action == "details":
            rid = params.get("id", "").strip()
            if not rid:
                return error(400, "The request is invalid.", errors=["id is required"])
            rec = store.details(resource, rid)
            if rec is None:
                return error(404, "Record not found")
            h.reply(200, dump(rec), self._api_headers(quota_of, left, window))
            return 200
        try:
            page, size, filters = list_params(self._heeded(resource, params))
        except BadRequest as bad:
            return error(400, "The request is invalid.", errors=bad.errors)
        total, rows = store.list_page(resource, page, size, filters)
        if resource in self._lean:
            rows = [{k: v for k, v in r.items() if k != "lines"} for r in rows]
        h.reply(
            200,
            dump({"page": page, "pageSize": size, "records": len(rows), "recordsTotal": total, "data": rows}),
            self._api_headers(quota_of, left, window),
        )
        return 200

    @staticmethod
    def _unknown(store: TenantStore, resource: str, action: str | None) -> bool:
        """Answered as an unknown path: a details endpoint the resource lacks, activity/list on a tenant without."""
        return (action == "details" and resource in LIST_ONLY) or (resource == "activity" and store.no_activity_list)

    def _heeded(self, resource: str, params: dict[str, str]) -> dict[str, str]:
        """The query without the parameters this resource is set to ignore (the log keeps what was sent)."""
        ignored = self._ignored.get(resource)
        if not ignored:
            return params
        return {k: v for k, v in params.items() if k.lower() not in ignored}

    def _fault_reply(self, h: _Handler, fault: Fault, headers: list[tuple[str, str]]) -> int:
        status = fault.status
        assert status is not None  # a fault without a status only delays the answer
        if fault.body is not None:
            body = fault.body.encode("utf-8")
        elif status == 429:
            body = dump({"message": "Too many requests"})
        else:
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Error"
            body = dump({"message": phrase})
        retry = None if fault.retry_after is None else max(0, math.ceil(fault.retry_after))
        h.reply(status, body, headers, fault.content_type or JSON, retry)
        return status
