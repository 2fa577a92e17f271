"""What the emulator's tests share."""

import httpx


def walk(api: httpx.Client, resource: str, **params) -> list[dict]:
    """Every row of `{resource}/list` with `params`, page after page until an empty one."""
    rows, page = [], 1
    while True:
        body = api.get(f"/{resource}/list", params={**params, "page": page}).json()
        rows += body["data"]
        if not body["data"]:
            return rows
        page += 1
