"""A local, faithful emulator of the Synchroteam REST API v3 (a real HTTP server on loopback)."""

from .data import TenantSpec
from .faults import Fault
from .habits import add_api_habit_arguments, apply_api_habits, check_api_habits
from .server import Emulator, RequestRecord
from .store import TenantStore

__all__ = [
    "Emulator",
    "Fault",
    "RequestRecord",
    "TenantSpec",
    "TenantStore",
    "add_api_habit_arguments",
    "apply_api_habits",
    "check_api_habits",
]
