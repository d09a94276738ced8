"""Attachment storage: content-addressed, safe against path tricks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.errors import NotFound
from core.storage import AttachmentStore, FilesystemStore, MemoryStore


@pytest.fixture(params=["filesystem", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AttachmentStore:
    return FilesystemStore(tmp_path / "blobs") if request.param == "filesystem" else MemoryStore()


async def test_bytes_come_back_under_their_key(store: AttachmentStore) -> None:
    key = await store.put(b"%PDF-1.4 invoice")
    assert await store.get(key) == b"%PDF-1.4 invoice"
    assert await store.put(b"%PDF-1.4 invoice") == key


@pytest.mark.parametrize("key", ["../../etc/passwd", "0" * 63, "A" * 64, ""])
async def test_keys_that_are_not_digests_are_not_found(store: AttachmentStore, key: str) -> None:
    with pytest.raises(NotFound):
        await store.get(key)


async def test_unknown_key_is_not_found(store: AttachmentStore) -> None:
    with pytest.raises(NotFound):
        await store.get("ab" * 32)


async def test_deleted_bytes_are_gone_and_a_second_delete_says_so(store: AttachmentStore) -> None:
    key = await store.put(b"a passport scan")
    kept = await store.put(b"someone else's file")
    assert await store.delete(key) is True
    with pytest.raises(NotFound):
        await store.get(key)
    assert await store.delete(key) is False
    assert await store.get(kept) == b"someone else's file"
    with pytest.raises(NotFound):
        await store.delete("../../etc/passwd")


async def test_filesystem_store_leaves_no_partial_files(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    await store.put(b"x" * 10_000)
    files = await asyncio.to_thread(_files_under, tmp_path)
    assert len(files) == 1
    assert not files[0].name.endswith(".partial")


def _files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]
