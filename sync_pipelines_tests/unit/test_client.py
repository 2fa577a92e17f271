"""The HTTP policy, against an httpx transport that plays the API (time is faked, so nothing sleeps)."""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from sync_pipelines.catalogue import TENANTS
from sync_pipelines.errors import (
    ApiUnavailable,
    AuthRejected,
    NotJsonResponse,
    QuotaSpent,
    RateLimited,
    RecordNotFound,
    ResourceNotFound,
    UnexpectedResponse,
)
from sync_pipelines.synchroteam import idset
from sync_pipelines.synchroteam.client import RetryPolicy, SynchroteamClient
from sync_pipelines.synchroteam.settings import TenantSettings
from sync_pipelines.synchroteam.throttle import Limits, RateWindow

SECRET = "0b6f1c2e-aaaa-bbbb-cccc-123456789abc"


class FakeTime:
    """One clock for monotonic time and the wall clock (an epoch instant, as `X-RateLimit-Reset` is)."""

    def __init__(self) -> None:
        self.now = 1_770_000_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def settings(tenant: str = "synchroteam", **overrides) -> TenantSettings:
    values = dict(
        tenant=TENANTS[tenant],
        base_url="https://ws.example.test/Api/v3",
        domain="acme",
        api_key=SECRET,
        timezone=ZoneInfo("Europe/Paris"),
    )
    values.update(overrides)
    return TenantSettings(**values)


def make_client(handler: Callable[[httpx.Request], httpx.Response], fake: FakeTime | None = None, **kw):
    fake = fake or FakeTime()
    return SynchroteamClient(
        kw.pop("settings", None) or settings(),
        transport=httpx.MockTransport(handler),
        sleep=fake.sleep,
        clock=fake.clock,
        wall_clock=fake.clock,
        rng=random.Random(7),
        **kw,
    )


SERVER_NOW = datetime(2026, 3, 2, 8, 30, 15, tzinfo=UTC)  # 09:30 in the tenant's zone (Paris)


def json_response(status: int, body, headers: dict[str, str] | None = None) -> httpx.Response:
    """An answer as a real server sends it, `Date` (the server's clock, SERVER_NOW) included."""
    base = {"X-Quota-Remaining": "5000", "Date": email.utils.format_datetime(SERVER_NOW, usegmt=True)}
    return httpx.Response(status, json=body, headers={**base, **(headers or {})})


def paged_api(records: list[dict], max_page_size: int = 100):
    """A list endpoint that clamps pageSize like Synchroteam does; returns (handler, calls)."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        page = int(request.url.params["page"])
        size = min(int(request.url.params["pageSize"]), max_page_size)
        chunk = records[(page - 1) * size : page * size]
        return json_response(
            200, {"page": page, "pageSize": size, "records": len(chunk), "recordsTotal": len(records), "data": chunk}
        )

    return handler, calls


def test_page_size_above_100_follows_the_size_the_server_used():
    records = [{"id": i} for i in range(1, 251)]
    handler, calls = paged_api(records)
    with make_client(handler) as client:
        got = [r["id"] for page in client.iter_pages("invoice", page_size=250) for r in page]
    assert got == list(range(1, 251))
    # 100 + 100 + 50, not one "short" page of 100 < 250; walked twice: rows without dateModified cannot tell
    # whether the list changed while it was walked
    assert len(calls) == 2 * 3


def test_records_total_not_divisible_by_page_size_reads_the_remainder_and_stops():
    records = [{"id": str(i)} for i in range(1, 38)]
    handler, calls = paged_api(records)
    with make_client(handler) as client:
        got = [r["id"] for page in client.iter_pages("job", page_size=10) for r in page]
    assert got == [str(i) for i in range(1, 38)]
    assert len(calls) == 2 * 4


def test_exact_multiple_of_page_size_stops_without_asking_for_an_empty_page():
    handler, calls = paged_api([{"id": i} for i in range(20)])
    with make_client(handler) as client:
        assert sum(len(p) for p in client.iter_pages("site", page_size=10)) == 20
    assert len(calls) == 2 * 2


@pytest.mark.parametrize("total", [True, False], ids=["recordsTotal", "no recordsTotal"])
def test_a_prefetching_walk_asks_for_the_next_page_while_the_caller_works_and_for_no_page_more(total):
    records = [{"id": i, "dateModified": "2026-03-01 08:00"} for i in range(1, 38)]
    handler, calls = paged_api(records)

    def api(request: httpx.Request) -> httpx.Response:
        response = handler(request)
        if not total:
            body = json.loads(response.content)
            del body["recordsTotal"]
            return json_response(200, body)
        return response

    with make_client(api) as client:
        plain = [r["id"] for page in client.iter_pages("invoice", page_size=10) for r in page]
    without_prefetch = [int(c.url.params["page"]) for c in calls]
    calls.clear()
    with make_client(api) as client:
        requested_while_working = []
        got = []
        for page in client.iter_pages("invoice", page_size=10, prefetch=True):
            asked = len(calls)
            deadline = time.monotonic() + 5
            while len(calls) == asked and time.monotonic() < deadline and len(got) + len(page) < len(records):
                time.sleep(0.001)  # the caller "working" on the page
            requested_while_working.append(len(calls) > asked)
            got.extend(r["id"] for r in page)
    assert got == plain == list(range(1, 38))
    assert requested_while_working[:3] == [True, True, True]
    assert requested_while_working[3] is False  # the last page of the first walk: nothing more to ask for then
    # the same requests as without prefetching: each page the walk needs (twice when the list cannot vouch for
    # itself), none beyond its end
    assert [int(c.url.params["page"]) for c in calls] == without_prefetch


def test_records_shifting_between_pages_are_yielded_once_by_id(id_storage):
    pages = {1: [{"id": 1}, {"id": 2}], 2: [{"id": 2}, {"id": 3}], 3: [{"id": 4}]}

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        return json_response(200, {"page": page, "pageSize": 2, "recordsTotal": 5, "data": pages[page]})

    with make_client(handler) as client:
        got = [r["id"] for page in client.iter_pages("customer", page_size=2) for r in page]
    assert got == [1, 2, 3, 4]


def test_records_without_an_id_are_all_yielded_and_the_given_set_holds_the_ids(id_storage):
    data = [{"id": 1}, {"name": "no id"}, {"id": None}, {"id": ""}, {"name": "no id either"}, {"id": 2}, {"id": 1}]
    with make_client(lambda r: json_response(200, {"page": 1, "pageSize": 100, "data": data})) as client:
        with idset.IdSet() as seen:
            got = [r for p in client.iter_pages("site", seen=seen) for r in p]
            assert sorted(seen) == ["1", "2"]
    assert got == data[:6]  # only the repeated id 1 is dropped: records without an id are not each other


def test_a_bare_array_instead_of_the_envelope_is_tolerated():
    with make_client(lambda r: json_response(200, [{"id": 1}, {"id": 2}])) as client:
        assert [r["id"] for p in client.iter_pages("site") for r in p] == [1, 2]


def test_429_with_retry_after_waits_exactly_that_long_then_succeeds():
    answers = iter([json_response(429, {"message": "slow down"}, {"Retry-After": "3"}), json_response(200, {"id": 9})])
    fake = FakeTime()
    with make_client(lambda r: next(answers), fake) as client:
        assert client.details("job", "9") == {"id": 9}
        assert client.stats.retries_429 == 1 and client.stats.requests == 2
    assert fake.sleeps == [pytest.approx(3.0)]


def test_429_without_retry_after_backs_off_exponentially_with_jitter():
    answers = iter([json_response(429, {"message": "slow down"})] * 4 + [json_response(200, {"id": 1})])
    fake = FakeTime()
    with make_client(lambda r: next(answers), fake, retry=RetryPolicy(rate_limit_base=1.0)) as client:
        client.details("invoice", "1")
    assert len(fake.sleeps) == 4
    for attempt, waited in enumerate(fake.sleeps):
        assert 0.5 * 2**attempt <= waited <= 2**attempt  # full range of the jitter band
    assert len({round(w / 2**i, 3) for i, w in enumerate(fake.sleeps)}) > 1  # jittered, not fixed


def test_the_backoff_after_a_429_that_says_nothing_starts_at_the_tenant_s_setting():
    answers = iter([json_response(429, {"message": "slow down"})] * 3 + [json_response(200, {"id": 1})])
    fake = FakeTime()
    with make_client(lambda r: next(answers), fake, settings=settings(rate_limit_backoff=0.25)) as client:
        client.details("invoice", "1")
    assert len(fake.sleeps) == 3
    for attempt, waited in enumerate(fake.sleeps):
        assert 0.125 * 2**attempt <= waited <= 0.25 * 2**attempt


def test_endless_429s_give_up_as_rate_limited_after_the_attempt_budget():
    calls = []

    def handler(request):
        calls.append(request)
        return json_response(429, {"message": "slow down"}, {"Retry-After": "1"})

    with make_client(handler, retry=RetryPolicy(max_attempts=4)) as client, pytest.raises(RateLimited) as err:
        client.details("invoice", "1")
    assert len(calls) == 4
    assert err.value.retryable and "gave up after 4 attempts" in str(err.value)


def test_a_retry_after_longer_than_the_run_waits_stops_at_once_without_asking_again():
    calls = []
    with (
        make_client(
            lambda r: calls.append(r) or json_response(429, {"message": "x"}, {"Retry-After": "3600"}),
            settings=settings(max_rate_wait=60),
        ) as client,
        pytest.raises(RateLimited, match="wait 60 min 00 s") as err,
    ):
        client.details("invoice", "1")
    assert len(calls) == 1 and "SYNCHROTEAM_MAX_RATE_WAIT_SECONDS" in str(err.value)
    assert not err.value.retryable  # a retry a minute later would meet the same wait


def test_wrong_api_key_is_not_retried_and_names_tenant_and_variables_but_not_the_key():
    calls = []

    def handler(request):
        calls.append(request)
        return json_response(401, {"message": "Invalid domain or API key"})

    with make_client(handler, settings=settings("synchroteam_hec")) as client, pytest.raises(AuthRejected) as err:
        list(client.iter_pages("invoice"))
    assert len(calls) == 1
    message = str(err.value)
    assert "'HEC'" in message and "SYNCHROTEAM_HEC_API_KEY" in message and "SYNCHROTEAM_HEC_DOMAIN" in message
    assert SECRET not in message and not err.value.retryable


def test_basic_auth_is_domain_and_key_in_standard_base64():
    seen = []
    with make_client(lambda r: seen.append(r.headers["Authorization"]) or json_response(200, {"id": 1})) as c:
        c.details("job", "1")
    assert seen == [httpx.BasicAuth("acme", SECRET)._auth_header]


def test_server_errors_are_retried_then_reported_as_api_unavailable():
    statuses = iter([500, 502, 503])
    with (
        make_client(
            lambda r: json_response(next(statuses), {"message": "oops"}), retry=RetryPolicy(max_attempts=3)
        ) as client,
        pytest.raises(ApiUnavailable, match=r"500, 502, 503"),
    ):
        client.details("job", "1")


def test_a_burst_of_server_errors_and_timeouts_is_absorbed():
    answers = iter(["timeout", 503, "ok"])

    def handler(request):
        answer = next(answers)
        if answer == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        if answer == 503:
            return json_response(503, {"message": "busy"})
        return json_response(200, {"id": 1})

    with make_client(handler) as client:
        assert client.details("job", "1") == {"id": 1}
        assert client.stats.retries_other == 2


def test_an_html_firewall_page_fails_at_once_as_not_json():
    calls = []
    page = httpx.Response(200, text="<html>Access denied</html>", headers={"Content-Type": "text/html"})
    with make_client(lambda r: calls.append(r) or page) as client:
        with pytest.raises(NotJsonResponse, match="text/html") as err:
            client.details("job", "1")
    assert len(calls) == 1 and not err.value.retryable and "firewall" in err.value.action


def test_a_truncated_json_body_is_retried_then_reported_as_unexpected_response():
    calls = []
    truncated = httpx.Response(200, content=b'{"page": 1, "data": [', headers={"Content-Type": "application/json"})
    with make_client(lambda r: calls.append(r) or truncated, retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(UnexpectedResponse, match="not valid JSON") as err:
            client.details("job", "1")
    assert len(calls) == 3 and err.value.retryable


@pytest.mark.parametrize(
    ("content", "content_type", "expected"),
    [
        # what only Python's own parser reads (the fast one refuses it): an integer beyond 64 bits, NaN
        (b'{"id": 18446744073709551616, "total": NaN}', "application/json", {"id": 2**64, "total": math.nan}),
        # UTF-16, which JSON allows
        ('{"id": 1, "name": "Bâtiment Été"}'.encode("utf-16"), "application/json; charset=utf-16", None),
    ],
)
def test_a_body_the_fast_json_parser_refuses_is_read_as_python_reads_it(content, content_type, expected):
    answer = httpx.Response(200, content=content, headers={"Content-Type": content_type})
    with make_client(lambda r: answer) as client:
        got = client.details("site", "1")
    if expected is None:
        assert got == {"id": 1, "name": "Bâtiment Été"}
    else:
        assert got["id"] == expected["id"] and math.isnan(got["total"])


def test_retry_after_on_a_503_is_honoured():
    answers = iter([json_response(503, {"message": "maintenance"}, {"Retry-After": "4"}), json_response(200, {})])
    fake = FakeTime()
    with make_client(lambda r: next(answers), fake) as client:
        client.details("job", "1")
    assert fake.sleeps == [pytest.approx(4.0)]


def test_details_of_an_unknown_id_raises_record_not_found():
    with make_client(lambda r: json_response(404, {"message": "Record not found"})) as client:
        with pytest.raises(RecordNotFound):
            client.details("job", "404")


def test_spent_daily_quota_is_not_retried():
    calls = []

    def handler(request):
        calls.append(request)
        return json_response(429, {"message": "Daily quota exceeded"}, {"X-Quota-Remaining": "0"})

    with make_client(handler) as client, pytest.raises(QuotaSpent):
        client.details("job", "1")
    assert len(calls) == 1


def test_quota_floor_stops_before_spending_the_last_requests():
    calls = []

    def handler(request):
        calls.append(request)
        return json_response(
            200,
            {"page": 1, "pageSize": 1, "recordsTotal": 10, "data": [{"id": len(calls)}]},
            {"X-Quota-Remaining": str(52 - len(calls))},
        )

    with make_client(handler, settings=settings(quota_floor=50)) as client, pytest.raises(QuotaSpent, match="floor"):
        list(client.iter_pages("job", page_size=1))
    assert len(calls) == 3  # remaining 51, 50, 49: stops once under the floor


def test_pacing_spaces_requests_to_the_configured_rate():
    fake = FakeTime()
    stamps = []

    def handler(request):
        stamps.append(fake.now)
        return json_response(200, {"id": 1})

    with make_client(handler, fake, settings=settings(requests_per_minute=120)) as client:
        for _ in range(21):
            client.details("job", "1")
    # 20 gaps of 0.5 s, plus the 2% margin: 120 requests take 61.2 s, not 60, so request 121 cannot land in
    # the first one's minute however their arrivals jitter
    assert stamps[-1] - stamps[0] == pytest.approx(20 * 60 / (120 * 0.98))


def test_a_429_without_a_known_limit_paces_the_rest_of_the_run_at_what_the_server_accepted():
    fake = FakeTime()
    stamps = []

    def handler(request):
        stamps.append(fake.now)
        # a limit of 30 a minute, the first minute's burst included
        return json_response(429 if len(stamps) == 31 else 200, {"id": 1})

    with make_client(handler, fake) as client:  # no SYNCHROTEAM_REQUESTS_PER_MINUTE
        for _ in range(40):
            client.details("job", "1")
        assert client.stats.retries_429 == 1
        assert client.stats.paced_per_minute == 30
    assert stamps[29] - stamps[0] == 0  # unpaced until the 429
    gaps = [b - a for a, b in zip(stamps[31:], stamps[32:])]
    assert gaps == [pytest.approx(60 / (30 * 0.98))] * len(gaps)


def test_429s_without_retry_after_wait_out_a_one_minute_window_before_giving_up():
    fake = FakeTime()
    with make_client(lambda r: json_response(429, {"message": "slow down"}), fake) as client:
        with pytest.raises(RateLimited):
            client.details("job", "1")
    assert sum(fake.sleeps) > 60  # the default policy outwaits a per-minute limit


def test_api_key_never_appears_in_error_reprs():
    with make_client(lambda r: json_response(401, {"message": "no"})) as client:
        with pytest.raises(AuthRejected) as err:
            client.details("job", "1")
        assert SECRET not in repr(err.value) and SECRET not in repr(client.settings)
    assert json.dumps({"m": str(err.value)}).find(SECRET) == -1


@pytest.fixture(params=["in memory", "spilled"])
def id_storage(request, monkeypatch) -> str:
    """Walks remember ids in a Python set, or (`spilled`) in SQLite from the second id on: the same answers."""
    if request.param == "spilled":
        monkeypatch.setattr(idset, "SPILL_AFTER", 1)
    return request.param


def test_a_list_that_changes_during_the_walk_is_walked_again_so_no_record_is_skipped(id_storage):
    def delete_the_first(records: list[dict]) -> None:
        del records[0]  # deleted while page 2 is asked: record 4 moves back to page 1, unseen

    handler, calls = changing_list_api(delete_the_first, at_call=2, count=7, dated=False)
    with make_client(handler) as client:
        got = [r["id"] for p in client.iter_pages("invoice", page_size=3) for r in p]
    assert sorted(got) == [1, 2, 3, 4, 5, 6, 7]  # 1 was read before it was deleted; 4 is not skipped
    assert len(got) == len(set(got))
    # recordsTotal fell during the first walk; the second found 4, and rows without dateModified cannot prove
    # the list held still, so a third confirms nothing else moved
    assert calls == [1, 2, 1, 2, 1, 2]


def changing_list_api(
    change: Callable[[list[dict]], None],
    at_call: int,
    size: int = 3,
    date: bool = True,
    count: int = 9,
    dated: bool = True,
):
    """A list of `count` records (ids from 1; `dated`: modified weeks before SERVER_NOW, else no dateModified)
    on which `change` acts as call `at_call` is answered; `date`: answers carry a `Date` header. Returns
    (handler, pages asked)."""
    records = [{"id": i, "dateModified": "2026-02-01 10:00"} if dated else {"id": i} for i in range(1, count + 1)]
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        calls.append(page)
        if len(calls) == at_call:
            change(records)
        body = {
            "page": page,
            "pageSize": size,
            "recordsTotal": len(records),
            "data": records[(page - 1) * size : page * size],
        }
        response = json_response(200, body)
        if not date:
            del response.headers["Date"]
        return response

    return handler, calls


def test_a_list_that_holds_still_is_walked_once():
    handler, calls = changing_list_api(lambda records: None, at_call=0)
    with make_client(handler) as client:
        got = [r["id"] for p in client.iter_pages("invoice", page_size=3) for r in p]
    assert got == list(range(1, 10))
    assert calls == [1, 2, 3]


def test_a_deletion_hidden_by_an_addition_is_seen_by_the_new_record_s_date_and_walked_again(id_storage):
    def delete_one_and_add_one(records: list[dict]) -> None:
        del records[0]  # record 4 slides back onto page 1, already read; recordsTotal stays 9
        records.append({"id": 10, "dateModified": "2026-03-02 09:30"})  # created now, by the server's clock

    handler, calls = changing_list_api(delete_one_and_add_one, at_call=2)
    with make_client(handler) as client:
        got = sorted(r["id"] for p in client.iter_pages("invoice", page_size=3) for r in p)
    assert got == list(range(1, 11))  # 4 is not skipped
    assert calls == [1, 2, 3, 1, 2, 3]  # on the second walk the new record is one the first listed: still


def test_an_old_record_listed_twice_means_the_list_moved_and_is_walked_again(id_storage):
    def move_first_to_the_end(records: list[dict]) -> None:
        records.append(records.pop(0))  # 1 reappears on page 3; 4 slides back onto page 1, already read

    handler, calls = changing_list_api(move_first_to_the_end, at_call=2)
    with make_client(handler) as client:
        got = sorted(r["id"] for p in client.iter_pages("invoice", page_size=3) for r in p)
    assert got == list(range(1, 10))
    assert calls == [1, 2, 3, 1, 2, 3]


def test_without_a_date_header_a_list_is_walked_again_until_nothing_new_appears():
    handler, calls = changing_list_api(lambda records: None, at_call=0, date=False)
    with make_client(handler) as client:
        got = [r["id"] for p in client.iter_pages("invoice", page_size=3) for r in p]
    assert got == list(range(1, 10))
    assert calls == [1, 2, 3, 1, 2, 3]  # no way to tell a still list from a changing one: one more look


def test_a_server_that_ignores_the_page_parameter_does_not_loop_forever():
    page = {"page": 1, "pageSize": 2, "recordsTotal": 10, "data": [{"id": 1}, {"id": 2}]}
    with make_client(lambda r: json_response(200, page)) as client:
        assert [r["id"] for p in client.iter_pages("job", page_size=2) for r in p] == [1, 2]


@pytest.mark.parametrize(
    "reset",
    [
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.ReadError("[Errno 104] Connection reset by peer"),
        httpx.ConnectError("connection refused"),
    ],
)
def test_a_connection_reset_mid_page_is_retried(reset):
    answers = iter([reset, json_response(200, {"page": 1, "pageSize": 100, "recordsTotal": 1, "data": [{"id": 1}]})])

    def handler(request):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with make_client(handler) as client:
        assert [r["id"] for p in client.iter_pages("invoice") for r in p] == [1]
        assert client.stats.retries_other == 1


def test_a_deletion_and_an_addition_that_keep_records_total_are_caught_too(id_storage):
    def delete_one_and_add_one(records: list[dict]) -> None:
        del records[0]  # 4 slides onto page 1, already read...
        records.append({"id": 8})  # ...and recordsTotal stays 7

    handler, calls = changing_list_api(delete_one_and_add_one, at_call=2, count=7, dated=False)
    with make_client(handler) as client:
        got = [r["id"] for p in client.iter_pages("invoice", page_size=3) for r in p]
    assert sorted(got) == list(range(1, 9))


def test_a_single_page_is_read_once():
    handler, calls = paged_api([{"id": i} for i in range(1, 6)])
    with make_client(handler) as client:
        assert len([r for p in client.iter_pages("invoice") for r in p]) == 5
    assert len(calls) == 1


# -- the API's own limits: X-RateLimit-*, X-Quota-* ---------------------------------------------------------------

QUOTA_SOUNDING = "API calls quota exceeded! maximum admitted 40 per 240s."


class FixedWindowApi:
    """A fixed window of `limit` requests per `seconds`, announced on every answer; its 429s carry no Retry-After
    and a message that speaks of a quota although the daily quota is far from spent. `now`: its clock."""

    def __init__(self, limit: int, seconds: float, now: Callable[[], float], used: int = 0) -> None:
        self.limit, self.seconds, self.now = limit, seconds, now
        self.start: float | None = now() if used else None
        self.used = used
        self.statuses: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            now = self.now()
            if self.start is None or now >= self.start + self.seconds:
                self.start, self.used = now, 0
            admitted = self.used < self.limit
            self.used += admitted
            self.statuses.append(200 if admitted else 429)
            headers = {
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.limit - self.used),
                "X-RateLimit-Reset": str(math.ceil(self.start + self.seconds)),
                "X-Quota-Limit": "50000",
                "X-Quota-Remaining": "48210",
            }
        if admitted:
            return json_response(200, {"id": 1}, headers)
        return json_response(429, {"message": QUOTA_SOUNDING}, headers)


def test_a_known_window_is_used_to_its_end_then_waited_out_without_a_single_429(caplog):
    fake = FakeTime()
    api = FixedWindowApi(40, 240, fake.clock)
    started = fake.now
    with caplog.at_level(logging.INFO), make_client(api, fake) as client:
        for _ in range(100):
            client.details("job", "1")
        assert client.stats.retries_429 == 0 and client.stats.requests == 100
        assert client.stats.rate_waits == 2 and client.stats.rate_limit == 40 and client.stats.quota_limit == 50000
        assert client.stats.rate_wait_seconds == pytest.approx(fake.now - started, abs=0.01)
    assert api.statuses == [200] * 100
    # 100 requests need three windows: two waits, each to a second after the window's announced reset
    assert fake.now - started == pytest.approx(2 * 241)
    waits = [r.getMessage() for r in caplog.records if "rate window to reset" in r.getMessage()]
    assert len(waits) == 2 and "waiting 4 min 01 s" in waits[0] and "40 requests are used" in waits[0]


def test_a_429_that_speaks_of_a_quota_waits_for_the_window_s_reset_when_the_daily_quota_is_not_spent(caplog):
    fake = FakeTime()
    api = FixedWindowApi(40, 240, fake.clock, used=40)  # another client spent this window a moment ago
    with caplog.at_level(logging.INFO), make_client(api, fake) as client:
        for _ in range(30):
            client.details("job", "1")
        assert client.stats.retries_429 == 1 and client.stats.quota_remaining == 48210
    assert api.statuses == [429] + [200] * 30
    assert fake.sleeps[0] == pytest.approx(241)  # to the announced reset, not a blind backoff
    [line] = [r.getMessage() for r in caplog.records if "rate window to reset" in r.getMessage()]
    assert "429" in line and "not the daily quota" in line


def test_retry_after_later_than_the_window_s_reset_wins():
    fake = FakeTime()
    api = FixedWindowApi(5, 60, fake.clock, used=5)
    answers = iter(
        [
            httpx.Response(
                429,
                json={"message": "x"},
                headers={
                    "Retry-After": "90",
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(math.ceil(fake.now + 60)),
                    "X-Quota-Remaining": "900",
                },
            )
        ]
    )
    with make_client(lambda r: next(answers, None) or api(r), fake) as client:
        client.details("job", "1")
    assert fake.sleeps == [pytest.approx(90)]


def test_a_window_resetting_later_than_the_bound_stops_the_run_as_rate_limited_not_retried():
    fake = FakeTime()
    api = FixedWindowApi(40, 3600, fake.clock, used=40)  # an hour-long window, spent
    with make_client(api, fake, settings=settings(max_rate_wait=600)) as client:
        with pytest.raises(RateLimited) as err:
            client.details("job", "1")
    assert api.statuses == [429] and fake.sleeps == []
    assert "wait 60 min 01 s" in str(err.value) and "SYNCHROTEAM_MAX_RATE_WAIT_SECONDS" in str(err.value)
    assert not err.value.retryable


def test_the_daily_quota_is_spent_only_when_x_quota_remaining_says_so_whatever_the_message():
    calls = []

    def handler(request):
        calls.append(request)
        return json_response(429, {"message": "Too many requests"}, {"X-Quota-Remaining": "0"})

    with make_client(handler) as client, pytest.raises(QuotaSpent) as err:
        client.details("job", "1")
    assert len(calls) == 1 and "midnight UTC" in str(err.value)


def test_clients_sharing_a_tenant_s_window_wait_instead_of_earning_a_429():
    fake = FakeTime()
    api = FixedWindowApi(10, 60, fake.clock)
    window = RateWindow(fake.clock)
    for _ in range(3):  # three steps of one run, one after the other, each with a client of its own
        with make_client(api, fake, window=window) as client:
            for _ in range(7):
                client.details("job", "1")
    assert api.statuses == [200] * 21


def test_details_threads_share_one_budget_and_earn_no_429():
    api = FixedWindowApi(12, 2, time.time)
    with SynchroteamClient(settings(), transport=httpx.MockTransport(api)) as client:
        threads = [threading.Thread(target=lambda: [client.details("job", "1") for _ in range(8)]) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert client.stats.requests == 32 and client.stats.rate_waits == 2
    assert api.statuses == [200] * 32


def test_429s_of_requests_in_flight_together_make_one_wait_not_a_blind_backoff():
    fake = FakeTime()
    window = RateWindow(fake.clock)
    spent = Limits(limit=40, remaining=0, reset=math.ceil(fake.now + 100), quota_remaining=900)
    for _ in range(3):  # three details threads took their turn before any answer came back: three 429s
        window.take()
    waits = []
    for _ in range(3):
        window.answered(spent)
        waits.append(window.hold(retry_after=None))
    assert waits == [pytest.approx(101), 0.0, 0.0]  # one wait for the window; the others join it, no backoff
    assert window.take().wait == pytest.approx(101)


def test_requests_per_minute_stays_a_ceiling_under_a_looser_window():
    fake = FakeTime()
    stamps = []
    api = FixedWindowApi(1000, 60, fake.clock)
    with make_client(
        lambda r: stamps.append(fake.now) or api(r), fake, settings=settings(requests_per_minute=60)
    ) as client:
        for _ in range(5):
            client.details("job", "1")
    assert stamps[-1] - stamps[0] == pytest.approx(4 * 60 / (60 * 0.98))


# -- answers that point the right way -------------------------------------------------------------------------

IMPERVA = (
    '<html style="height:100%"><head><META NAME="ROBOTS" CONTENT="NOINDEX, NOFOLLOW"><script>var x=1;</script>'
    "</head><body><iframe>Request unsuccessful. Incapsula incident ID: 1234000560078-90</iframe></body></html>"
)


@pytest.mark.parametrize("status", [403, 401, 200, 503])
def test_an_html_page_is_the_firewall_whatever_its_status_never_rejected_credentials(status):
    calls = []
    page = httpx.Response(status, text=IMPERVA, headers={"Content-Type": "text/html; charset=utf-8"})
    with make_client(lambda r: calls.append(r) or page) as client, pytest.raises(NotJsonResponse) as err:
        list(client.iter_pages("invoice"))
    message = str(err.value)
    assert len(calls) == 1 and not err.value.retryable
    assert f"HTTP {status}" in message and "firewall" in message and "not a rejected API key" in message
    assert "Request unsuccessful. Incapsula incident ID" in message and "var x" not in message


def test_a_json_403_is_rejected_credentials():
    with make_client(lambda r: json_response(403, {"message": "Forbidden"})) as client:
        with pytest.raises(AuthRejected, match="SYNCHROTEAM_API_KEY"):
            client.details("job", "1")


def test_a_404_on_a_list_says_the_api_has_no_such_resource_not_that_a_record_was_deleted():
    with make_client(lambda r: json_response(404, {"message": "Not found"})) as client:
        with pytest.raises(ResourceNotFound) as err:
            list(client.iter_pages("creditnote"))
    assert "no creditnote/list at https://ws.example.test/Api/v3" in str(err.value)
    assert "SYNCHROTEAM_BASE_URL" in err.value.action and "no record was deleted" in err.value.action
    assert not isinstance(err.value, RecordNotFound)
    # and how to switch the entity off, by its catalogue name, when the tenant's API has no such list
    assert "switch credit_notes off: leave it out of SYNCHROTEAM_ENTITIES" in err.value.action


def test_every_request_asks_for_json_with_both_headers():
    seen = []
    with make_client(lambda r: seen.append(r.headers) or json_response(200, {"id": 1})) as client:
        client.details("job", "1")
    assert seen[0]["Accept"] == "application/json" and seen[0]["Content-Type"] == "application/json"


def test_clients_share_one_tls_context_that_still_verifies_the_server(monkeypatch):
    contexts = []
    real_client = httpx.Client

    def recording(*args, **kwargs):
        contexts.append(kwargs.get("verify"))
        return real_client(*args, **kwargs)

    monkeypatch.setattr(httpx, "Client", recording)
    with SynchroteamClient(settings()), SynchroteamClient(settings("synchroteam_hec")):
        pass
    first, second = contexts
    assert isinstance(first, ssl.SSLContext) and first is second  # built once per process, not per step
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname  # sharing it weakens nothing
