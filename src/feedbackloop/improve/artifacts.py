"""Content-addressed artifacts: a model version's file, stored under its SHA-256.

An :class:`ArtifactStore` keeps files at ``<root>/sha256/<first two hex>/<hash>``, where the
root is a local folder (by default ``<data_dir>/artifacts``) or any fsspec URL
(``s3://bucket/models``, ``memory://...``). Storing the same bytes twice stores them once;
reading checks the hash again, so a file changed or truncated after registration is an
error, never a silently different model.

A folder (what an external training command may write) is stored as a tar archive with
sorted members and zeroed times, owners and modes, so the same files give the same hash.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, Conflict, InvalidInput, NotFound

__all__ = ["Artifact", "ArtifactStore", "default_root", "sha256_bytes", "tar_folder"]


@dataclass(frozen=True)
class Artifact:
    sha256: str
    uri: str
    size: int


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_folder(folder: Path) -> bytes:
    """A reproducible tar of ``folder``: members sorted, times, owners and modes fixed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix()):
            rel = path.relative_to(folder).as_posix()
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif path.is_file():
                data = path.read_bytes()
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def default_root() -> str:
    """``<data_dir>/artifacts`` from the settings (FEEDBACKLOOP_DATA_DIR), absolute."""
    from ..settings import load_settings

    return str((load_settings().data_dir / "artifacts").resolve())


class ArtifactStore:
    """Files by SHA-256 under a root folder or fsspec URL."""

    def __init__(self, root: str | Path | None = None) -> None:
        import fsspec

        self.root = str(root) if root is not None else default_root()
        if not self.root:
            raise InvalidInput("the artifact root must be a folder or an fsspec URL",
                               field="artifact_root")
        try:
            self.fs, self.base = fsspec.core.url_to_fs(self.root)
        except (ValueError, ImportError) as exc:
            raise ConfigurationError(f"cannot use the artifact root {self.root!r}: {exc}",
                                     setting="artifact_root") from exc

    def _path(self, digest: str) -> str:
        return f"{self.base.rstrip('/')}/sha256/{digest[:2]}/{digest}"

    def put(self, source: bytes | str | Path) -> Artifact:
        """Store bytes, a file or a folder (as a reproducible tar); its hash and URI."""
        if isinstance(source, bytes):
            data = source
        else:
            path = Path(source)
            if path.is_dir():
                data = tar_folder(path)
            elif path.is_file():
                data = path.read_bytes()
            else:
                raise NotFound(f"no artifact file or folder at {path}", field="artifact")
        digest = sha256_bytes(data)
        target = self._path(digest)
        uri = self.fs.unstrip_protocol(target)
        if not self.fs.exists(target):
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            temp = f"{target}.{os.getpid()}.tmp"
            self.fs.pipe_file(temp, data)
            self.fs.mv(temp, target)
        return Artifact(digest, uri, len(data))


def fetch(uri: str, expected: str, *, version: str = "") -> bytes:
    """The bytes at ``uri``, checked against the expected SHA-256. A missing file is
    NotFound and a mismatch Conflict, both naming the version and the expected hash."""
    import fsspec

    who = f"model version {version}" if version else "artifact"
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        data: Any = fs.cat_file(path)
    except FileNotFoundError:
        raise NotFound(f"the artifact of {who} is missing: no file at {uri} (expected "
                       f"sha256 {expected})", field="artifact", version=version,
                       expected_sha256=expected, uri=uri) from None
    except (OSError, ValueError, ImportError) as exc:
        raise NotFound(f"the artifact of {who} cannot be read from {uri} (expected sha256 "
                       f"{expected}): {exc}", field="artifact", version=version,
                       expected_sha256=expected, uri=uri) from exc
    actual = sha256_bytes(bytes(data))
    if actual != expected:
        raise Conflict(f"the artifact of {who} at {uri} does not match its hash: expected "
                       f"sha256 {expected}, found {actual}", field="artifact",
                       version=version, expected_sha256=expected, actual_sha256=actual)
    return bytes(data)
