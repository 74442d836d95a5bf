"""Integer and float support ops of the ``bnn`` dialect (see docs/ops.md)."""

from __future__ import annotations

SUPPORT_OPS: list = []
