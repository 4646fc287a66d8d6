"""The one text form of a record that is hashed, signed or kept as evidence: JSON with sorted
keys, no spaces, non-ASCII kept as UTF-8, and anything else JSON has no type for (times,
decimals) written as its `str`. Hashes stay the same only if this form never changes."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
