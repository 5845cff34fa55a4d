"""Item kernels: one pure function per item of specs/products.toml.

``building_blocks`` holds the 95 items both products share, ``analytics`` the quarterly-only
ones, ``subject`` the quarterly report's query-record, dispute and statement items. Every
declared item has exactly one kernel and every kernel a declared item (checked when the API
starts and by a test).
"""

from engine.products.kernels import analytics, building_blocks, subject
from engine.products.kernels._base import KERNELS, Context, Value, elapsed_days

__all__ = ["KERNELS", "Context", "Value", "elapsed_days"]

del analytics, building_blocks, subject  # imported for their registrations
