"""Attachment storage behind a small interface; the filesystem is the default."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from abc import ABC, abstractmethod
from pathlib import Path

from core.errors import NotFound

_KEY = re.compile(r"^[0-9a-f]{64}$")


class AttachmentStore(ABC):
    """Content-addressed blobs: the same bytes are stored once, under their SHA-256."""

    @abstractmethod
    async def put(self, data: bytes) -> str:
        """Store `data` and return its key."""

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The bytes stored under `key`; NotFound if there are none."""

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove the bytes stored under `key`; whether there were any.

        Keys are shared by every record holding the same bytes: the caller makes sure that
        no record references `key` any more (see core/privacy.py)."""


class FilesystemStore(AttachmentStore):
    """Blobs as files under `root`, fanned out by the first hex digits of their key."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise NotFound("no such attachment")
        return self.root / key[:2] / key[2:4] / key

    async def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, self._path(key), data)
        return key

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write aside, then rename: a reader never sees half a file.
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(path)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise NotFound("no such attachment") from None

    async def delete(self, key: str) -> bool:
        return await asyncio.to_thread(self._unlink, self._path(key))

    @staticmethod
    def _unlink(path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True


class MemoryStore(AttachmentStore):
    """In-memory blobs, for tests and tools that keep nothing."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        self.blobs[key] = data
        return key

    async def get(self, key: str) -> bytes:
        try:
            return self.blobs[key]
        except KeyError:
            raise NotFound("no such attachment") from None

    async def delete(self, key: str) -> bool:
        if not _KEY.match(key):
            raise NotFound("no such attachment")
        return self.blobs.pop(key, None) is not None
