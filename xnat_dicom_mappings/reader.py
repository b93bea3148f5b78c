"""Header reading with early stop, private creators and functional groups.

:func:`read_header` reads the elements that a set of tag paths needs and
nothing else. Pixel data is never read, and elements outside the request
are skipped by seeking past them. Reading stops at the first element after
the last requested top-level tag. A file that ends inside an element
before that stop, or that nests sequences deeper than
:data:`MAX_SEQUENCE_DEPTH`, is unreadable. Values come out as the file
wrote them: text decoded with the file's SpecificCharacterSet and split on
``\\``, and the numbers of the binary VRs. pydicom's typing (DSfloat, IS, PersonName,
dates) is not applied.

The parts live in their own modules: :mod:`.elements` (the loop over
top-level elements), :mod:`.sequences` (undefined-length sequences),
:mod:`.charset` (character sets), :mod:`.values` (decoding values) and
:mod:`.encoding` (VRs and element headers). The names below stay importable
from here.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Iterable

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from .charset import (
    DEFAULT_CHARACTER_SET,
    SPECIFIC_CHARACTER_SET,
    CharacterSet,
    resolve_character_set,
)
from .elements import _read_elements
from .encoding import _KNOWN_VR_BYTES, _PLAUSIBLE_FIRST_GROUPS, ElementError, UnreadableFile, _tag_text
from .sequences import MAX_SEQUENCE_DEPTH, _parse_items
from .tags import TagPath, TagStep
from .values import (
    ElementValue,
    _character_set_of,
    _decode,
    _decode_raw,
    _creator_of,
    _get,
    _looks_like_sequence,
    _tags_of,
)

__all__ = [
    "MAX_SEQUENCE_DEPTH",
    "CharacterSet",
    "ElementError",
    "ElementValue",
    "Header",
    "ParseCache",
    "ReadPlan",
    "UnreadableFile",
    "read_header",
    "resolve_character_set",
]

#: (5200,9229) and (5200,9230): the functional groups of enhanced multi-frame objects.
SHARED_FUNCTIONAL_GROUPS = 0x52009229
PER_FRAME_FUNCTIONAL_GROUPS = 0x52009230

#: Tags that start bulk pixel data; reading always stops there.
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})

_IMPLICIT_LITTLE = "1.2.840.10008.1.2"
_EXPLICIT_BIG = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"


@dataclass
class ReadPlan:
    """Which top-level elements a read needs and where it may stop.

    ``tags`` are public top-level tags. ``private_offsets`` maps each odd
    group with a creator-anchored first step to the element offsets needed
    in that group. ``single_tags`` are one-step public paths, which may be
    looked up in the functional groups when absent at the top level.
    """

    tags: set[int] = field(default_factory=set)
    private_offsets: dict[int, set[int]] = field(default_factory=dict)
    single_tags: set[int] = field(default_factory=set)
    stop_after: int = 0

    @classmethod
    def for_paths(cls, paths: Iterable[TagPath], extra_tags: Iterable[int] = ()) -> "ReadPlan":
        """Build the plan for ``paths`` plus the plain tags ``extra_tags``."""
        plan = cls()
        plan.tags.add(SPECIFIC_CHARACTER_SET)
        plan.tags.update(int(tag) for tag in extra_tags)

        for path in paths:
            first = path.steps[0]
            if first.tag is None:
                plan.private_offsets.setdefault(first.private_group, set()).add(first.private_offset)
                continue
            plan.tags.add(first.tag)
            if _is_single_public(path):
                plan.single_tags.add(first.tag)

        stops = list(plan.tags) + [(group << 16) | 0xFFFF for group in plan.private_offsets]
        plan.stop_after = max(stops)
        if plan.single_tags:
            plan.tags.update({SHARED_FUNCTIONAL_GROUPS, PER_FRAME_FUNCTIONAL_GROUPS})
        return plan

    def wants(self, tag: int) -> bool:
        """Return True when the element ``tag`` must be read."""
        if tag in self.tags:
            return True
        offsets = self.private_offsets.get(tag >> 16)
        if offsets is None:
            return False
        element = tag & 0xFFFF
        return 0x0010 <= element <= 0x00FF or (element >= 0x1000 and (element & 0xFF) in offsets)

    def covers(self, path: TagPath) -> bool:
        """Return True when a header read with this plan contains the elements of ``path``."""
        first = path.steps[0]
        if first.tag is None:
            return first.private_offset in self.private_offsets.get(first.private_group, ())
        return first.tag in self.tags


def _is_single_public(path: TagPath) -> bool:
    """True for a path of one public step, with or without a value index."""
    step = path.steps[0]
    return len(path.steps) == 1 and step.tag is not None and (step.tag >> 16) % 2 == 0


class ParseCache:
    """Parsed sequence items and decoded values, shared by the headers of one session.

    The files of a series often carry the same bytes in the same element
    (a functional group sequence, a study description), so each distinct
    value is parsed or decoded once. Nothing changes a cached item or
    :class:`ElementValue`, so headers may share them. The cache keeps every
    entry until it is dropped: use one per session, not one per process.
    """

    def __init__(self):
        #: Items parsed from the bytes of a sequence, by (bytes, implicit VR, little endian).
        self.sequences: dict[tuple[bytes, bool, bool], list] = {}
        #: Decoded values of raw elements, by their bytes and everything else the decoding reads.
        self.values: dict[tuple, ElementValue] = {}

    def decode(self, element, charset: CharacterSet, location: str, container) -> ElementValue:
        """Return ``_decode(element, charset, location, container)``, decoding each distinct raw value once."""
        if not isinstance(element, RawDataElement) or not isinstance(element.value, bytes):
            return _decode(element, charset, location, container)

        tag = int(element.tag)
        key = (element.value, tag, element.VR, bool(element.is_little_endian), charset, location,
               _creator_of(container, tag))
        value = self.values.get(key)
        if value is None:
            value = _decode_raw(element, charset, location, key[-1])
            self.values[key] = value
        return value


class Header:
    """The elements read from one file or dataset, with lookups by tag path.

    ``name`` labels the file in problems; ``source`` is what was given to
    :func:`read_header`. ``cache`` is a :class:`ParseCache` that the
    headers of one session may share; by default each header has its own.
    """

    def __init__(self, root: Any, *, name: str, source: Any = None, plan: ReadPlan | None = None,
                 is_implicit_vr: bool = False, is_little_endian: bool = True,
                 cache: ParseCache | None = None):
        self.name = name
        self.source = source
        self._root = root
        self._plan = plan
        self._implicit = is_implicit_vr
        self._little = is_little_endian
        self.character_set = _character_set_of(root, DEFAULT_CHARACTER_SET)
        self._cache = ParseCache() if cache is None else cache

    def covers(self, path: TagPath) -> bool:
        """Return True when this header was read with every element ``path`` needs."""
        return self._plan is None or self._plan.covers(path)

    def lookup(self, path: TagPath) -> list[ElementValue]:
        """Return the values of ``path``; an empty list when the file does not have it.

        A one-step public path absent at the top level is looked up in the
        shared functional groups, then in the per-frame functional groups.
        From the per-frame groups, frames with the same values share one
        entry, so several entries mean the frames differ. Raises
        :class:`ElementError` for an element whose items cannot be parsed,
        and ValueError for a path that the read did not request.
        """
        if not self.covers(path):
            raise ValueError(
                f"the header of {self.name} was read without the elements of {path.canonical}; "
                "pass every tag path to read_header"
            )

        found = self._walk(self._root, path.steps, self.character_set)
        if found is not None:
            element, container, charset = found
            location = "top level" if len(path.steps) == 1 else "sequence item"
            return [self._cache.decode(element, charset, location, container)]

        if _is_single_public(path):
            return self._functional_group_lookup(path.steps[0])
        return []

    def text(self, tag: int) -> str | None:
        """Return a top-level element as one string without padding, or None when absent."""
        element = _get(self._root, tag)
        if element is None:
            return None
        try:
            value = _decode(element, self.character_set, "top level", self._root)
        except ElementError:
            return None
        return "\\".join(str(item) for item in value.values).strip(" \x00") or None

    # Walking paths

    def _walk(self, container, steps, charset):
        """Follow ``steps`` from ``container``; return (element, its container, charset) or None."""
        for position, step in enumerate(steps):
            tag = self._resolve(container, step, charset)
            if tag is None:
                return None
            element = _get(container, tag)
            if element is None:
                return None
            if position == len(steps) - 1:
                return element, container, charset

            items = self._sequence(element, tag)
            if step.item is None or step.item >= len(items):
                return None
            container = items[step.item]
            charset = _character_set_of(container, charset)
        return None

    def _resolve(self, container, step: TagStep, charset) -> int | None:
        """Return the tag of ``step`` in ``container``, finding a private creator's block."""
        if step.tag is not None:
            return step.tag

        group = step.private_group
        for block in range(0x10, 0x100):
            creator = _get(container, (group << 16) | block)
            if creator is None:
                continue
            value = _decode(creator, charset, "", container)
            text = "\\".join(str(item) for item in value.values).strip(" \x00")
            if text == step.private_creator:
                return step.private_tag(block)
        return None

    def _sequence(self, element, tag: int) -> list:
        """Return the items of a sequence element, parsing raw bytes once when needed."""
        value = element.value
        if isinstance(value, Sequence) or isinstance(value, list):
            return list(value)
        if isinstance(element, RawDataElement) and isinstance(value, bytes) and value:
            key = (value, bool(element.is_implicit_VR), bool(element.is_little_endian))
            items = self._cache.sequences.get(key)
            if items is None:
                items = _parse_items(element, tag)
                self._cache.sequences[key] = items
            return items
        if value is None or value == b"":
            return []
        raise ElementError(f"element {_tag_text(tag)} is not a sequence")

    def _functional_group_lookup(self, step: TagStep) -> list[ElementValue]:
        shared = _get(self._root, SHARED_FUNCTIONAL_GROUPS)
        if shared is not None:
            items = self._sequence(shared, SHARED_FUNCTIONAL_GROUPS)
            if items:
                found = self._find_in_group(items[0], step)
                if found is not None:
                    return [replace(found, location="shared functional groups")]

        per_frame = _get(self._root, PER_FRAME_FUNCTIONAL_GROUPS)
        if per_frame is None:
            return []

        by_values: dict[tuple, list[int]] = {}
        first_seen: dict[tuple, ElementValue] = {}
        for frame, item in enumerate(self._sequence(per_frame, PER_FRAME_FUNCTIONAL_GROUPS), 1):
            found = self._find_in_group(item, step)
            if found is None:
                continue
            key = (found.vr, found.values)
            by_values.setdefault(key, []).append(frame)
            first_seen.setdefault(key, found)

        results = []
        for key, frames in by_values.items():
            value = first_seen[key]
            results.append(replace(value, location="per-frame functional groups",
                                   frames=tuple(frames)))
        return results

    def _find_in_group(self, group_item, step: TagStep) -> ElementValue | None:
        """Search one functional group item: its public macro sequences, then the item itself."""
        charset = _character_set_of(group_item, self.character_set)
        for tag in _tags_of(group_item):
            if (tag >> 16) % 2 == 1 or tag == step.tag:
                continue
            element = _get(group_item, tag)
            if not _looks_like_sequence(element, tag):
                continue
            for macro in self._sequence(element, tag)[:1]:
                inner = _get(macro, step.tag)
                if inner is not None:
                    return _decode(inner, _character_set_of(macro, charset), "", macro)

        element = _get(group_item, step.tag)
        if element is not None:
            return _decode(element, charset, "", group_item)
        return None


# Reading files


def read_header(source, paths: Iterable[TagPath] = (), *, extra_tags: Iterable[int] = (),
                name: str | None = None, cache: ParseCache | None = None) -> Header:
    """Read the elements that ``paths`` and ``extra_tags`` need from one file.

    ``source`` is a path, an open binary file (read from its current
    position) or a pydicom Dataset, which is used as it is without reading
    anything again. Gzip-compressed files are opened transparently.
    ``cache`` is passed to :class:`Header`. Raises
    :class:`UnreadableFile` for a file that is missing, not DICOM, or whose
    header cannot be parsed, and TypeError for a source of another type.
    """
    if isinstance(source, Dataset):
        label = name or str(getattr(source, "filename", None) or "<dataset>")
        return Header(source, name=label, source=source, cache=cache)

    paths = list(paths)
    plan = ReadPlan.for_paths(paths, extra_tags)

    if isinstance(source, (str, os.PathLike)):
        label = name or os.fspath(source)
        try:
            with open(source, "rb") as stream:
                return _read_stream(stream, plan, label, source, cache)
        except OSError as exc:
            raise UnreadableFile(f"cannot open the file: {exc.strerror or exc}") from exc

    if hasattr(source, "read"):
        label = name or str(getattr(source, "name", None) or "<file object>")
        return _read_stream(source, plan, label, source, cache)

    raise TypeError(
        f"a DICOM source must be a path, a binary file or a pydicom Dataset, "
        f"not {type(source).__name__}"
    )


def _read_stream(stream: BinaryIO, plan: ReadPlan, label: str, source,
                 cache: ParseCache | None = None) -> Header:
    try:
        head = stream.read(2)
    except OSError as exc:
        raise UnreadableFile(f"cannot read the file: {exc}") from exc
    if not isinstance(head, bytes):
        raise TypeError(f"{label} is open in text mode; open DICOM files in binary mode ('rb')")

    if not stream.seekable():
        stream = io.BytesIO(head + stream.read())
    else:
        stream.seek(-len(head), io.SEEK_CUR)

    if head == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=stream, mode="rb")

    try:
        root, implicit, little = _parse(stream, plan)
    except UnreadableFile:
        raise
    except (EOFError, OSError, struct.error, ValueError, zlib.error, NotImplementedError,
            KeyError) as exc:
        raise UnreadableFile(f"the header cannot be parsed: {exc}") from exc
    return Header(root, name=label, source=source, plan=plan, is_implicit_vr=implicit,
                  is_little_endian=little, cache=cache)


def _parse(stream: BinaryIO, plan: ReadPlan) -> tuple[dict, bool, bool]:
    """Parse the file meta and the requested top-level elements of a dataset."""
    start = stream.tell()
    preamble = stream.read(132)
    has_preamble = len(preamble) == 132 and preamble[128:132] == b"DICM"
    if not has_preamble:
        stream.seek(start)

    transfer_syntax = None
    first = stream.read(8)
    stream.seek(-len(first), io.SEEK_CUR)
    if len(first) < 8:
        raise UnreadableFile("not a DICOM file: too short to hold a data element")

    size = _stream_size(stream)
    has_meta = struct.unpack("<H", first[:2])[0] == 0x0002
    if has_meta:
        meta = _read_elements(stream, False, True, lambda tag: True, lambda tag: tag >> 16 != 2,
                              check_first=not has_preamble, size=size)
        syntax = meta.get(0x00020010)
        if syntax is not None and isinstance(syntax.value, bytes):
            transfer_syntax = syntax.value.decode("latin-1").strip(" \x00")
    elif not has_preamble:
        _check_plausible_start(first)

    implicit, little = _encoding_for(transfer_syntax, stream)
    if transfer_syntax == _DEFLATED:
        stream = io.BufferedReader(InflatingStream(stream), buffer_size=64 * 1024)
        size = None

    state = {"stop": plan.stop_after, "extended": False}

    def stop(tag: int) -> bool:
        if tag in PIXEL_DATA_TAGS and tag > state["stop"]:
            return True
        if tag <= state["stop"]:
            return False
        missing = plan.single_tags - found.keys()
        if missing and not state["extended"]:
            state["extended"] = True
            state["stop"] = max(state["stop"], PER_FRAME_FUNCTIONAL_GROUPS)
            return tag > state["stop"]
        return True

    # Without a transfer syntax, only a preamble followed by file meta vouches
    # for the bytes. Otherwise, including a 'DICM' prefix with no file meta,
    # the dataset must start and continue like one.
    found: dict[int, Any] = {}
    check_dataset = transfer_syntax is None and not (has_preamble and has_meta)
    elements = _read_elements(stream, implicit, little, plan.wants, stop, into=found,
                              check_first=check_dataset, size=size)
    return elements, implicit, little


class InflatingStream(io.RawIOBase):
    """The dataset of a deflated file, inflated only as far as it is read.

    Inflating the whole dataset first would let a small file announce
    gigabytes of zeros (a deflate bomb). Here memory stays within a few
    chunks of :data:`INFLATE_CHUNK` bytes whatever the inflated size, and
    reading stops at the last requested tag as for any other file. Seeking
    forward inflates and discards; seeking back starts again from the
    beginning of the deflated data.
    """

    def __init__(self, source: BinaryIO):
        self._source = source
        self._start = source.tell()
        self._rewind()

    def _rewind(self) -> None:
        self._source.seek(self._start)
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._pending = b""
        self._pending_offset = 0  # bytes of _pending already returned
        self._position = 0
        self._finished = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def _inflate_more(self) -> None:
        """Replace the pending chunk, all of it returned, with the next inflated one."""
        data = self._inflater.unconsumed_tail or self._source.read(INFLATE_CHUNK)
        self._pending_offset = 0
        if not data:
            self._pending = self._inflater.flush()
            self._finished = True
            return

        self._pending = self._inflater.decompress(data, INFLATE_CHUNK)
        if self._inflater.eof:
            self._finished = True

    def readinto(self, buffer) -> int:
        while self._pending_offset == len(self._pending) and not self._finished:
            self._inflate_more()

        # An offset into the inflated chunk, instead of slicing off what was
        # returned, copies each inflated byte once rather than once per read.
        start = self._pending_offset
        count = min(len(buffer), len(self._pending) - start)
        buffer[:count] = self._pending[start:start + count]
        self._pending_offset += count
        self._position += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._position + offset
        elif whence == io.SEEK_END:
            target = None
        else:
            raise ValueError(f"invalid whence {whence}")

        if target is not None and target < self._position:
            self._rewind()
        scratch = bytearray(INFLATE_CHUNK)
        while target is None or self._position < target:
            wanted = INFLATE_CHUNK if target is None else min(INFLATE_CHUNK, target - self._position)
            if self.readinto(memoryview(scratch)[:wanted]) == 0:
                break
        return self._position


#: Bytes of deflated data read, and of inflated data produced, per step.
INFLATE_CHUNK = 1024 * 1024


def _stream_size(stream: BinaryIO) -> int | None:
    """Return the size in bytes of an in-memory or regular file, or None for other streams.

    Other streams are not asked because seeking to the end of a gzip file or
    a zip member decompresses all of it.
    """
    try:
        if isinstance(stream, io.BytesIO):
            with stream.getbuffer() as view:
                return view.nbytes
        raw = getattr(stream, "raw", stream)
        if isinstance(raw, io.FileIO):
            status = os.fstat(raw.fileno())
            if stat.S_ISREG(status.st_mode):
                return status.st_size
    except (OSError, ValueError):  # a closed or detached file
        return None
    return None


def _check_plausible_start(first: bytes) -> None:
    """Reject bytes that do not start like a DICOM dataset (no preamble, no file meta)."""
    group_le = struct.unpack("<H", first[:2])[0]
    group_be = struct.unpack(">H", first[:2])[0]
    if group_le in _PLAUSIBLE_FIRST_GROUPS or group_be in _PLAUSIBLE_FIRST_GROUPS:
        return
    raise UnreadableFile(
        "not a DICOM file: no 'DICM' prefix after a 128-byte preamble, and the first bytes "
        f"({first[:8].hex()}) are not the start of a DICOM data element"
    )


def _encoding_for(transfer_syntax: str | None, stream: BinaryIO) -> tuple[bool, bool]:
    """Return (implicit VR, little endian) from the transfer syntax or, without one, the bytes."""
    peek = stream.read(6)
    stream.seek(-len(peek), io.SEEK_CUR)
    valid_vr = len(peek) == 6 and peek[4:6] in _KNOWN_VR_BYTES

    if transfer_syntax is None:
        if not valid_vr:
            return True, True
        group = struct.unpack("<H", peek[:2])[0]
        return False, group < 0x0400

    if transfer_syntax == _IMPLICIT_LITTLE:
        # Some writers declare implicit VR and write explicit VR; pydicom checks the same way.
        return (not valid_vr), True
    if transfer_syntax == _EXPLICIT_BIG:
        return False, False
    if transfer_syntax == _DEFLATED:
        return False, True
    return (not valid_vr) if len(peek) == 6 else False, True
