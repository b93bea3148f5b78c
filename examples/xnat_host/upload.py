"""Receiving an uploaded zip safely: size limits, zip bombs and member paths.

Nothing here reads DICOM. :func:`unpack_upload` turns a request body into
plain files in a staging folder, or raises :class:`UploadRejected` with a
message that names the member and the limit.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

_CHUNK_BYTES = 1024 * 1024


class UploadRejected(Exception):
    """An upload that is rejected as a whole; ``status`` is the HTTP status to send."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class UploadLimits:
    """Limits on one import request; the host reads them from ``HOST_IMPORT_*`` keys."""

    #: Largest request body in bytes (413 above it).
    max_upload_bytes: int
    #: Largest total size of the members once unpacked, in bytes.
    max_unpacked_bytes: int
    #: Largest number of members, folders included.
    max_members: int
    #: Largest ratio of unpacked to packed size of one member. Only members
    #: larger than ``ratio_floor_bytes`` unpacked are checked, because tiny
    #: files of padding compress extremely well without being a threat.
    max_compression_ratio: float
    ratio_floor_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class UnpackedMember:
    """One regular file of the zip, written to ``path`` in the staging folder."""

    name: str
    path: Path
    size: int


def receive_body(stream: BinaryIO, content_length: int | None, limits: UploadLimits,
                 spool_dir: Path) -> BinaryIO:
    """Copy the request body into a temporary file, enforcing the upload size limit.

    The declared Content-Length is checked first, and the bytes actually read
    are counted as well, so a chunked body without a length is limited too.
    """
    limit = limits.max_upload_bytes
    if content_length is not None and content_length > limit:
        raise UploadRejected(_too_large(content_length, limit), status=413)

    body = tempfile.TemporaryFile(dir=spool_dir)
    received = 0
    while True:
        chunk = stream.read(_CHUNK_BYTES)
        if not chunk:
            break

        received += len(chunk)
        if received > limit:
            body.close()
            raise UploadRejected(_too_large(received, limit), status=413)
        body.write(chunk)

    if received == 0:
        body.close()
        raise UploadRejected("the request body is empty; send the zip archive as the body")

    body.seek(0)
    return body


def _too_large(size: int, limit: int) -> str:
    return (
        f"the upload of at least {size} bytes is larger than the limit of {limit} bytes; "
        "split the study into several zip files or raise HOST_IMPORT_MAX_UPLOAD_BYTES"
    )


def unpack_upload(body: BinaryIO, limits: UploadLimits, staging_dir: Path) -> list[UnpackedMember]:
    """Check every member of the zip in ``body`` and write the regular files to ``staging_dir``.

    Raises:
        UploadRejected: the body is not a zip, a member path is absolute or
            leaves the target folder, a member is a symbolic link or encrypted,
            or a count, size or compression-ratio limit is exceeded.
    """
    try:
        archive = zipfile.ZipFile(body)
    except zipfile.BadZipFile:
        raise UploadRejected(
            "the request body is not a zip archive; send a zip with Content-Type application/zip"
        ) from None

    with archive:
        members = archive.infolist()
        if len(members) > limits.max_members:
            raise UploadRejected(
                f"the zip has {len(members)} members, more than the limit of "
                f"{limits.max_members}; split it into several uploads"
            )

        files = [member for member in members if not member.is_dir()]
        for member in members:
            _check_member(member, limits)

        declared = sum(member.file_size for member in files)
        if declared > limits.max_unpacked_bytes:
            raise UploadRejected(
                f"the zip unpacks to {declared} bytes, more than the limit of "
                f"{limits.max_unpacked_bytes} bytes; it is rejected as a possible zip bomb"
            )

        return [_unpack_member(archive, member, index, limits, staging_dir)
                for index, member in enumerate(files)]


def _check_member(member: zipfile.ZipInfo, limits: UploadLimits) -> None:
    name = member.filename
    _check_member_path(name)

    mode = member.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UploadRejected(f"zip member {name!r} is a symbolic link; links are not accepted")

    if member.flag_bits & 0x1:
        raise UploadRejected(f"zip member {name!r} is encrypted; upload an unencrypted zip")

    if member.file_size > limits.ratio_floor_bytes:
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > limits.max_compression_ratio:
            raise UploadRejected(
                f"zip member {name!r} unpacks {ratio:.0f} times larger than it is packed, "
                f"more than the limit of {limits.max_compression_ratio:g}; "
                "it is rejected as a possible zip bomb"
            )


def _check_member_path(name: str) -> None:
    # Zip files written on Windows may use backslashes, so both separators count.
    normalised = name.replace("\\", "/")
    parts = PurePosixPath(normalised).parts
    escapes = (
        "\x00" in name
        or normalised.startswith("/")
        or (len(normalised) > 1 and normalised[1] == ":")
        or ".." in parts
    )
    if escapes:
        raise UploadRejected(
            f"zip member path {name!r} is absolute or leaves the target folder; "
            "member paths must be relative and must not contain '..'"
        )


def _unpack_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, index: int,
                   limits: UploadLimits, staging_dir: Path) -> UnpackedMember:
    # Staged files are named by position, never by the member path, so no
    # member name reaches the file system.
    target = staging_dir / f"{index:06d}.member"
    written = 0
    try:
        with archive.open(member) as source, open(target, "wb") as destination:
            while True:
                chunk = source.read(_CHUNK_BYTES)
                if not chunk:
                    break

                written += len(chunk)
                if written > member.file_size or written > limits.max_unpacked_bytes:
                    raise UploadRejected(
                        f"zip member {member.filename!r} unpacks to more bytes than its "
                        "header declares; it is rejected as a possible zip bomb"
                    )
                destination.write(chunk)
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        raise UploadRejected(f"zip member {member.filename!r} cannot be unpacked: {exc}") from exc

    return UnpackedMember(name=member.filename, path=target, size=written)


def remove_tree(path: Path) -> None:
    """Delete a staging or archive folder; a folder that is already gone is fine."""
    shutil.rmtree(path, ignore_errors=True)
