"""The broker's storage is formatted with a cluster id the storage tool accepts."""

from __future__ import annotations

import base64
import uuid

import pytest

from workbench.stack import kafka


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 makes URL-safe base64 start with "-", which the tool would take for an option.
    drawn = iter([uuid.UUID(bytes=b"\xf8" + b"\x01" * 15), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))

    found = kafka._cluster_id()

    assert not found.startswith("-")
    assert base64.urlsafe_b64decode(found + "==") == b"\x01" * 16
