"""Record-level quarantine: a record that cannot be loaded as it is goes to `<schema>._rejected_records`.

Rows are written by the entity's own dlt resource (a table variant), so they land in the same load as the data
and the cursor: a record is either loaded or quarantined, never silently dropped. One row per entity and record
id, merged: `attempts` counts the loads that failed; after the first sighting and two automatic re-reads by id
(`AUTOMATIC_ATTEMPTS`) the row stays `unresolved` with its reason; a re-read that loads moves it to `resolved`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

REJECTED_TABLE = "_rejected_records"
AUTOMATIC_ATTEMPTS = 3  # the first sighting, then two automatic re-reads
OPEN, UNRESOLVED, RESOLVED = "open", "unresolved", "resolved"

MISSING_ID = "missing_id"
BAD_DATE_MODIFIED = "bad_date_modified"
TYPE_MISMATCH = "type_mismatch"
NOT_FOUND = "details_not_found"

ACTIONS = {
    MISSING_ID: "The API sent a record without an id; report it to Synchroteam support with the payload.",
    BAD_DATE_MODIFIED: "Open the record in Synchroteam and save it again so it gets a valid modification date.",
    TYPE_MISMATCH: "Correct the named field in Synchroteam (a number or date field holds text).",
    NOT_FOUND: "The record was listed but its details answer 404: it was probably deleted; nothing to fix if so.",
}

# The hints of the `_rejected_records` table variant (`Quarantine.items`)
REJECTED_TABLE_HINTS: dict[str, Any] = {
    "table_name": REJECTED_TABLE,
    "write_disposition": "merge",
    "primary_key": ["entity", "record_id"],
    "columns": {
        "payload": {"data_type": "text"},
        "record_id": {"data_type": "text", "nullable": False},
        "resolved_at": {"data_type": "timestamp"},
        "first_seen": {"data_type": "timestamp"},
        "last_seen": {"data_type": "timestamp"},
    },
}


@dataclass(frozen=True)
class Rejection:
    record_id: str
    reason: str
    message: str
    payload: dict[str, Any]


def check_record(
    raw: dict[str, Any], normalised: dict[str, Any], unconverted: Sequence[tuple[str, Any]], dated: bool = True
) -> Rejection | None:
    """Why `normalised` cannot be loaded as it is, or None. `raw` is what the API sent (kept as the payload);
    `unconverted`: the fields `normalise_record` could not convert to their column's type; `dated`: the record
    must carry a `dateModified` (every entity but a lookup list)."""
    record_id = normalised.get("id")
    if record_id in (None, "", "None"):
        digest = hashlib.sha1(_dump(raw).encode()).hexdigest()[:12]
        return Rejection(f"no-id:{digest}", MISSING_ID, "The record has no id.", raw)
    modified = normalised.get("dateModified")
    if dated and not isinstance(modified, datetime):
        shown = "missing" if modified is None else f"{modified!r} is not a timestamp"
        return Rejection(str(record_id), BAD_DATE_MODIFIED, f"dateModified {shown}.", raw)
    if unconverted:
        path, value = unconverted[0]
        return Rejection(str(record_id), TYPE_MISMATCH, f"{path} = {value!r} does not fit its column type.", raw)
    return None


class Quarantine:
    """The quarantine rows one run writes for one entity, given the rows already stored for it."""

    def __init__(self, entity: str, run_id: str, now: datetime, stored: dict[str, dict[str, Any]]) -> None:
        self.entity, self.run_id, self.now = entity, run_id, now
        self.stored = stored
        self.rows: dict[str, dict[str, Any]] = {}

    def pending(self, include_unresolved: bool = False) -> list[dict[str, Any]]:
        """Stored rows to re-read by id: open ones (and unresolved ones when asked), never id-less ones."""
        wanted = {OPEN, UNRESOLVED} if include_unresolved else {OPEN}
        return [row for row in self.stored.values() if row["status"] in wanted and row["reason"] != MISSING_ID]

    def reject(self, rejection: Rejection) -> None:
        # one attempt per run, however many times this run met the record (re-read by id, then listed)
        previous = self.stored.get(rejection.record_id) or {}
        attempts = int(previous.get("attempts") or 0) + 1
        status = UNRESOLVED if attempts >= AUTOMATIC_ATTEMPTS or rejection.reason == MISSING_ID else OPEN
        self.rows[rejection.record_id] = {
            # `id` too: the table variant inherits the entity table's non-null `id` column
            "id": f"{self.entity}:{rejection.record_id}",
            "entity": self.entity,
            "record_id": rejection.record_id,
            "reason": rejection.reason,
            "message": rejection.message,
            "action": ACTIONS[rejection.reason],
            "payload": _dump(rejection.payload),
            "run_id": self.run_id,
            "first_seen": previous.get("first_seen") or self.now,
            "last_seen": self.now,
            "attempts": attempts,
            "status": status,
            "resolved_at": None,
        }

    def loaded(self, record_id: str) -> None:
        """A record loaded: if it was quarantined, it leaves the quarantine."""
        previous = self.stored.get(record_id)
        if previous and previous["status"] != RESOLVED and record_id not in self.rows:
            self.rows[record_id] = {
                **previous,
                "run_id": self.run_id,
                "last_seen": self.now,
                "status": RESOLVED,
                "resolved_at": self.now,
            }

    def items(self) -> Any:
        """The rows to load, marked for the `_rejected_records` table; None when there are none."""
        rows = [{k: v for k, v in row.items() if v is not None} for row in self.rows.values()]
        if not rows:
            return None
        import dlt  # here, not at the top: the definitions import no dlt

        return dlt.mark.with_hints(rows, dlt.mark.make_hints(**REJECTED_TABLE_HINTS), create_table_variant=True)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows.values():
            if row["status"] != RESOLVED:
                counts[row["reason"]] = counts.get(row["reason"], 0) + 1
        return counts


def _dump(payload: dict[str, Any]) -> str:
    return json.dumps(payload, default=str, sort_keys=True, ensure_ascii=False)
