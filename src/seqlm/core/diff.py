"""What differs between two records of settings (params sections, fingerprints), said one way.

Both the checkpoint's refusal (``net.hidden_size (checkpoint 512, params 256)``) and the resumable
state's (``train.lr (saved 0.01, now 0.02)``) name each key whose value differs, nested sections
as dotted keys, long values shortened.
"""

from __future__ import annotations

from typing import Any

SHORT = 24  # characters of a value shown whole


def short(value: Any) -> str:
    """``repr(value)``, cut to its first 12 characters and an ellipsis when longer than 24."""
    text = repr(value)
    return text if len(text) <= SHORT else text[:12] + "…"


def differences(
    old: dict[str, Any], new: dict[str, Any], old_name: str = "saved", new_name: str = "now"
) -> list[str]:
    """Each key whose value differs, sorted, as ``key (OLD_NAME old, NEW_NAME new)``; a key whose
    values are both dicts is compared key by key (``section.key``)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{d}" for d in differences(a, b, old_name, new_name)]
        elif a != b:
            out.append(f"{key} ({old_name} {short(a)}, {new_name} {short(b)})")
    return out
