"""The account plans. Plain names, importable without the server's dependencies (the `gengate`
command offers them as choices before it knows whether the server extra is installed)."""

from __future__ import annotations

PLANS = ("free", "pro", "enterprise", "dev")
