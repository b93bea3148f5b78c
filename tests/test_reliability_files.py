"""Hostile files through the archive hook: truncated, flipped, oversized, nested and fake DICOM.

The hook (``DicomMappings.extract_session``) must never raise because of a
file, must not hang, must report every file it cannot read and must still
extract the files it can. Each hostile file is run through the hook on its
own, under ``tracemalloc`` and a wall-clock hang guard, so the bounds below
are checked per file:

* memory: at most ``MAX_TRACED_BYTES_PER_FILE`` of Python allocations at the
  peak of one file's extraction (the files here are at most 40 KiB);
* time: ``HANG_GUARD_SECONDS`` per file, a guard against endless loops and
  not a performance target.

Mutated files are given to the hook as ``io.BytesIO`` objects. The defect
with huge declared lengths in files read from a path has its own tests
below, so that the seeded mutations do not depend on it.

``XDM_STRESS=1`` (``make stress``) scales the counts up: every truncation
offset, thousands of byte flips and a session of 10,000 files.
"""

from __future__ import annotations

import io
import os
import random
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from xnat_dicom_mappings.extractor import PROBLEM_KINDS, ExtractionResult, ScanInput
from xnat_dicom_mappings.grouping import UnsafeArchive, UploadTooLarge, extract_uploads
from xnat_dicom_mappings.rules import Rule

from apps import ADMIN, API, create_test_app, rule_json
from conftest import testdata as installed_file
from dicom_bytes import EXPLICIT_LITTLE, IMPLICIT_LITTLE, dataset_bytes, encode_element, file_meta

STRESS = os.environ.get("XDM_STRESS") == "1"

#: Peak of traced Python allocations while the hook handles one small file.
MAX_TRACED_BYTES_PER_FILE = 16 * 1024 * 1024

#: Wall-clock guard per file against a hang; generous, never a speed target.
HANG_GUARD_SECONDS = 10.0

#: Real files that the mutations start from, with the session type of each.
SOURCE_FILES = {
    "MR_small.dcm": ("xnat:mrSessionData", "xnat:mrScanData"),
    "CT_small.dcm": ("xnat:ctSessionData", "xnat:ctScanData"),
    "MR_small_implicit.dcm": ("xnat:mrSessionData", "xnat:mrScanData"),
    "MR_small_bigendian.dcm": ("xnat:mrSessionData", "xnat:mrScanData"),
}

#: Truncation offsets per file: every offset in stress mode, else a step of this many bytes.
TRUNCATION_STEP = 1 if STRESS else 97

#: Number of byte-flipped variants per source file.
FLIPPED_FILES = 2500 if STRESS else 60

#: Files in the large session, and how many of them are hostile.
SESSION_FILES = 10_000 if STRESS else 400
HOSTILE_EVERY = 20

RULES = [
    # Session fields.
    {"fieldName": "weight", "fieldType": "float", "dicomTag": "PatientWeight", "kind": "session"},
    {"fieldName": "patient", "fieldType": "string", "dicomTag": "PatientName", "kind": "session"},
    {"fieldName": "study-date", "fieldType": "date", "dicomTag": "StudyDate", "kind": "session"},
    # Scan parameters: plain, a value index, a private tag by its creator and a sequence path.
    {"fieldName": "spacing", "fieldType": "string", "dicomTag": "PixelSpacing", "kind": "scan"},
    {"fieldName": "spacing-row", "fieldType": "float", "dicomTag": "PixelSpacing[1]", "kind": "scan"},
    {"fieldName": "thickness", "fieldType": "float", "dicomTag": "SliceThickness", "kind": "scan"},
    {"fieldName": "gems-private", "fieldType": "string", "dicomTag": '(0009,"GEMS_IDEN_01",01)', "kind": "scan"},
    {"fieldName": "other-id", "fieldType": "string",
     "dicomTag": "OtherPatientIDsSequence[0].PatientID", "kind": "scan"},
]

_UNDEFINED = 0xFFFFFFFF


# -- the app and the hook ----------------------------------------------------------


@pytest.fixture(scope="module")
def mappings(tmp_path_factory):
    """The extension of a test host whose rules map every RULES entry for MR and CT."""
    folder = tmp_path_factory.mktemp("hostile-files")
    app = create_test_app(folder, db_url=f"sqlite:///{folder / 'rules.sqlite3'}", projects=None)
    client = app.test_client()
    for level, types in (("session", ("xnat:mrSessionData", "xnat:ctSessionData")),
                         ("scan", ("xnat:mrScanData", "xnat:ctScanData"))):
        for schema_element in types:
            for entry in RULES:
                if entry["kind"] != level:
                    continue
                body = rule_json(fieldName=entry["fieldName"], fieldType=entry["fieldType"],
                                 dicomTag=entry["dicomTag"], schemaElement=schema_element)
                response = client.post(API, json=body, headers=ADMIN)
                assert response.status_code == 201, response.get_json()
    ext = app.extensions["dicom_mappings"]
    yield ext
    ext.close()


def run_hook(ext, source_name: str, files: list, *, good_files: list | None = None) -> tuple[ExtractionResult, int, float]:
    """Run the hook on one scan of ``files`` (plus a second scan of ``good_files``).

    Returns the result, the traced peak in bytes and the elapsed seconds. The
    hook must return: any exception fails the calling test.
    """
    session_type, scan_type = SOURCE_FILES[source_name]
    scans = [ScanInput("1", scan_type, files)]
    if good_files:
        scans.append(ScanInput("2", scan_type, good_files))

    tracemalloc.start()
    started = time.monotonic()
    try:
        result = ext.extract_session(project=None, session_type=session_type, scans=scans,
                                     session_id=f"hostile/{source_name}")
        elapsed = time.monotonic() - started
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak, elapsed


def check_bounds(peak: int, elapsed: float, label: str) -> None:
    assert peak <= MAX_TRACED_BYTES_PER_FILE, f"{label}: {peak} bytes traced at the peak"
    assert elapsed < HANG_GUARD_SECONDS, f"{label}: the hook took {elapsed:.1f} s"


def check_result_shape(result: ExtractionResult) -> None:
    for problem in result.problems:
        assert problem.kind in PROBLEM_KINDS
        assert problem.detail
    for entry in result.unreadable:
        assert set(entry) == {"path", "reason"}
        assert entry["reason"]


def reference(ext, name: str) -> ExtractionResult:
    result, _peak, _elapsed = run_hook(ext, name, [installed_file(name)])
    assert not result.unreadable
    return result


def named(data: bytes, name: str) -> io.BytesIO:
    stream = io.BytesIO(data)
    stream.name = name
    return stream


# -- real files truncated -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SOURCE_FILES))
def test_truncated_files_never_give_wrong_values(mappings, name):
    whole = Path(installed_file(name)).read_bytes()
    intact = reference(mappings, name)
    offsets = sorted(set(range(0, len(whole), TRUNCATION_STEP)) | {1, 127, 128, 131, 132, 140, len(whole) - 1})

    reported = 0
    for offset in offsets:
        label = f"{name}[:{offset}]"
        result, peak, elapsed = run_hook(mappings, name, [named(whole[:offset], label)])

        check_bounds(peak, elapsed, label)
        check_result_shape(result)
        if result.unreadable:
            reported += 1
            assert result.unreadable[0]["path"] == label
            assert result.fields == {}
            assert result.parameters == {}
            continue

        # A file cut after the last element the rules need reads in full. A
        # value it gives must be the intact file's value, never a fragment.
        for field_name, text in result.fields.items():
            assert intact.fields.get(field_name) == text, f"{label}: {field_name}={text!r}"
        for field_name, text in result.parameters.get("1", {}).items():
            assert intact.parameters["1"].get(field_name) == text, f"{label}: {field_name}={text!r}"

    assert reported > 0


@pytest.mark.parametrize("name", sorted(SOURCE_FILES))
def test_truncated_file_beside_good_file(mappings, name):
    whole = Path(installed_file(name)).read_bytes()
    intact = reference(mappings, name)

    # Cuts inside the file meta group, which every source file reads in full.
    for offset in (0, 60, 132, 136, 141):
        label = f"{name}[:{offset}]"
        result, peak, elapsed = run_hook(mappings, name, [named(whole[:offset], label)],
                                         good_files=[installed_file(name)])

        check_bounds(peak, elapsed, label)
        assert [entry["path"] for entry in result.unreadable] == [label]
        assert result.parameters.get("2") == intact.parameters["1"]


@pytest.mark.parametrize("name, offset", [
    # Inside the value of (0008,0008) ImageType, which no rule requests.
    ("MR_small.dcm", 350),
    # Inside the 8-byte header of (0008,0012) InstanceCreationDate.
    ("MR_small.dcm", 370),
])
def test_cut_inside_element_is_reported(mappings, name, offset):
    whole = Path(installed_file(name)).read_bytes()
    label = f"{name}[:{offset}]"

    result, _peak, _elapsed = run_hook(mappings, name, [named(whole[:offset], label)],
                                       good_files=[installed_file(name)])

    assert [entry["path"] for entry in result.unreadable] == [label]


def test_non_ascii_name_without_character_set(mappings):
    # Found by the byte flips of make stress; ISO_IR 100 bytes with no (0008,0005) are common.
    data = preamble_and_meta() + dataset_bytes([(0x00100010, "PN", "M\u00fcller^Hans".encode("latin-1"))])

    result, _peak, _elapsed = run_hook(mappings, "MR_small.dcm", [named(data, "latin1.dcm")])

    assert result.fields["patient"] == "M\u00fcller^Hans"
    assert any(problem.kind == "repaired" for problem in result.problems)


# -- random byte flips ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SOURCE_FILES))
def test_byte_flips_never_raise(mappings, name):
    whole = Path(installed_file(name)).read_bytes()
    intact = reference(mappings, name)
    generator = random.Random(f"flips-{name}")
    # The header sits in the first bytes; flips in pixel data test nothing.
    header_end = min(len(whole), 4096)

    unreadable = 0
    for variant in range(FLIPPED_FILES):
        data = bytearray(whole)
        for _ in range(generator.randint(1, 8)):
            position = generator.randrange(header_end)
            data[position] ^= 1 << generator.randrange(8)
        label = f"{name}#flip{variant}"

        result, peak, elapsed = run_hook(mappings, name, [named(bytes(data), label)],
                                         good_files=[installed_file(name)])

        check_bounds(peak, elapsed, label)
        check_result_shape(result)
        assert result.parameters.get("2") == intact.parameters["1"], label
        unreadable += bool(result.unreadable)

    assert unreadable < FLIPPED_FILES


# -- crafted headers: huge lengths, deep nesting ------------------------------------------


def preamble_and_meta(syntax: str = EXPLICIT_LITTLE) -> bytes:
    return b"\x00" * 128 + b"DICM" + file_meta(syntax)


def huge_length_file(vr: str = "UT") -> bytes:
    """An MR file whose PatientWeight declares a length of almost 4 GiB but contains 2 bytes."""
    head = preamble_and_meta() + dataset_bytes([(0x00100010, "PN", b"Doe^Jane")])
    element = struct.pack("<HH2sHL", 0x0010, 0x1030, vr.encode(), 0, 0xFFFFFFF0) + b"72"
    return head + element


def huge_length_implicit_file() -> bytes:
    head = preamble_and_meta(IMPLICIT_LITTLE) + dataset_bytes([(0x00100010, "PN", b"Doe^Jane")], implicit=True)
    return head + struct.pack("<HHL", 0x0010, 0x1030, 0xFFFFFFF0) + b"72"


def nested_sequence(depth: int, tag: int = 0x00081140) -> bytes:
    """An undefined-length sequence whose single item nests another one, ``depth`` levels deep."""
    group, element = tag >> 16, tag & 0xFFFF
    start = struct.pack("<HH2sHL", group, element, b"SQ", 0, _UNDEFINED)
    item = struct.pack("<HHL", 0xFFFE, 0xE000, _UNDEFINED)
    item_end = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
    sequence_end = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)

    inner = b""
    for _ in range(depth):
        inner = item + start + inner + sequence_end + item_end
    return start + inner + sequence_end


def nested_file(depth: int) -> bytes:
    head = preamble_and_meta() + dataset_bytes([(0x00100010, "PN", b"Doe^Jane")], identity=False)
    tail = dataset_bytes([(0x00101030, "DS", b"72")], identity=False)
    return head + nested_sequence(depth) + tail


@pytest.mark.parametrize("vr", ["UT", "OB", "UN"])
def test_huge_declared_length_in_memory(mappings, vr):
    label = f"huge-{vr}.dcm"
    result, peak, elapsed = run_hook(mappings, "MR_small.dcm", [named(huge_length_file(vr), label)],
                                     good_files=[installed_file("MR_small.dcm")])

    check_bounds(peak, elapsed, label)
    assert [entry["path"] for entry in result.unreadable] == [label]
    assert "4294967280 bytes announced" in result.unreadable[0]["reason"]
    assert result.parameters["2"]["thickness"] == "0.8"


@pytest.mark.parametrize("builder", [huge_length_file, huge_length_implicit_file], ids=["explicit", "implicit"])
def test_huge_declared_length_from_path(mappings, tmp_path, builder):
    path = tmp_path / "huge.dcm"
    path.write_bytes(builder())

    result, peak, elapsed = run_hook(mappings, "MR_small.dcm", [str(path)])

    assert [entry["path"] for entry in result.unreadable] == [str(path)]
    check_bounds(peak, elapsed, str(path))


def test_shallow_nesting_reads(mappings):
    result, peak, elapsed = run_hook(mappings, "MR_small.dcm", [named(nested_file(8), "nested8.dcm")])

    check_bounds(peak, elapsed, "nested8.dcm")
    assert result.unreadable == []
    assert result.fields["weight"] == "72.0"


@pytest.mark.parametrize("depth", [400, 5000])
def test_deep_nesting_is_reported(mappings, depth):
    label = f"nested{depth}.dcm"

    result, peak, elapsed = run_hook(mappings, "MR_small.dcm", [named(nested_file(depth), label)],
                                     good_files=[installed_file("MR_small.dcm")])

    check_bounds(peak, elapsed, label)
    assert [entry["path"] for entry in result.unreadable] == [label]
    assert result.parameters["2"]["thickness"] == "0.8"


# -- files that are not DICOM ---------------------------------------------------------------


def not_dicom_files() -> dict[str, bytes]:
    generator = random.Random("not-dicom")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inner.dcm", Path(installed_file("MR_small.dcm")).read_bytes())
    return {
        "empty.dcm": b"",
        "one-byte.dcm": b"\x00",
        "text.dcm": b"Patient weight: 72 kg\nStudy date: 2024-01-02\n" * 20,
        "json.dcm": b'{"PatientWeight": 72, "StudyDate": "20240102"}',
        "png.dcm": b"\x89PNG\r\n\x1a\n" + bytes(generator.randrange(256) for _ in range(600)),
        "pdf.dcm": b"%PDF-1.4\n" + bytes(generator.randrange(256) for _ in range(600)),
        "zip.dcm": buffer.getvalue(),
        "gzip-garbage.dcm": b"\x1f\x8b\x08\x00" + bytes(generator.randrange(256) for _ in range(300)),
        "preamble-only.dcm": b"\x00" * 128 + b"DICM",
        "zeros.dcm": bytes(4096),
        "random.dcm": bytes(generator.randrange(256) for _ in range(4096)),
        "html.dcm": b"<!doctype html><html><body>not an image</body></html>",
    }


@pytest.mark.parametrize("name", sorted(not_dicom_files()))
def test_not_dicom_named_dcm_is_reported(mappings, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(not_dicom_files()[name])

    result, peak, elapsed = run_hook(mappings, "MR_small.dcm", [str(path)],
                                     good_files=[installed_file("MR_small.dcm")])

    check_bounds(peak, elapsed, name)
    assert [entry["path"] for entry in result.unreadable] == [str(path)]
    assert result.parameters["2"]["thickness"] == "0.8"
    assert result.fields["weight"] == "80.0"


# -- one large session ---------------------------------------------------------------------


def session_file(number: int) -> bytes:
    elements = [
        (0x00080018, "UI", f"1.2.826.0.1.3680043.8.498.2.{number}".encode()),
        (0x00100010, "PN", b"Doe^Jane"),
        (0x00101030, "DS", b"72.5"),
        (0x00180050, "DS", b"1.25"),
        (0x00200013, "IS", str(number).encode()),
        (0x00280030, "DS", b"0.5\\0.5"),
    ]
    return preamble_and_meta() + dataset_bytes(elements)


def hostile_session_file(number: int) -> bytes:
    good = session_file(number)
    kinds = [
        # Cut inside the value of (0002,0010), which lies at bytes 152 to 172.
        lambda: good[: 155 + number % 10],
        lambda: b"not a DICOM file " * 10,
        lambda: b"",
        lambda: b"\x00" * 128 + b"DICM",
        lambda: bytes(random.Random(number).randrange(256) for _ in range(512)),
    ]
    return kinds[(number // HOSTILE_EVERY) % len(kinds)]()


def test_large_session_loses_no_file(tmp_path):
    folder = tmp_path / "session"
    folder.mkdir()
    app = create_test_app(tmp_path, db_url=f"sqlite:///{tmp_path / 'rules.sqlite3'}")
    client = app.test_client()
    for body in (
        rule_json(fieldName="weight", fieldType="float", dicomTag="PatientWeight"),
        rule_json(fieldName="instances", fieldType="integer", dicomTag="InstanceNumber",
                  schemaElement="xnat:mrScanData", conflictPolicy="all"),
        rule_json(fieldName="thickness", fieldType="float", dicomTag="SliceThickness",
                  schemaElement="xnat:mrScanData"),
    ):
        assert client.post(API, json=body, headers=ADMIN).status_code == 201

    good, hostile = [], []
    for number in range(1, SESSION_FILES + 1):
        path = folder / f"{number:05d}.dcm"
        if number % HOSTILE_EVERY == 0:
            path.write_bytes(hostile_session_file(number))
            hostile.append(str(path))
        else:
            path.write_bytes(session_file(number))
            good.append(number)
    files = sorted(str(path) for path in folder.iterdir())

    ext = app.extensions["dicom_mappings"]
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = ext.extract_session(project=None, session_type="xnat:mrSessionData",
                                     scans=[ScanInput("1", "xnat:mrScanData", files)],
                                     session_id="large-session")
        elapsed = time.monotonic() - started
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        ext.close()

    # Headers of every file stay in memory until the values are combined, so
    # the bound grows with the file count: 64 KiB per file is far above what
    # a header of a few elements needs.
    assert peak <= 8 * 1024 * 1024 + 64 * 1024 * len(files), f"{peak} bytes traced at the peak"
    assert elapsed < HANG_GUARD_SECONDS * len(files) / 100, f"{elapsed:.1f} s for {len(files)} files"

    assert sorted(entry["path"] for entry in result.unreadable) == sorted(hostile)
    assert result.fields == {"weight": "72.5"}
    assert result.parameters["1"]["thickness"] == "1.25"
    instance_numbers = {int(text) for text in result.parameters["1"]["instances"].split("\\")}
    assert instance_numbers == set(good)


# -- uploads: zip bombs and member paths --------------------------------------------------


def zip_of(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def lying_zip(real_bytes: int, declared_bytes: int) -> bytes:
    """A zip whose one member declares ``declared_bytes`` but inflates to ``real_bytes``."""
    data = bytearray(zip_of({"bomb.dcm": bytes(real_bytes)}))
    real = struct.pack("<L", real_bytes)
    declared = struct.pack("<L", declared_bytes)
    # The uncompressed size sits at offset 22 of the local header and 24 of the central entry.
    assert data[22:26] == real
    data[22:26] = declared
    central = data.rindex(b"PK\x01\x02")
    assert data[central + 24:central + 28] == real
    data[central + 24:central + 28] = declared
    return bytes(data)


TRAVERSAL_NAMES = ["../escape.dcm", "a/../../escape.dcm", "/tmp/escape.dcm", "..\\escape.dcm",
                   "C:/escape.dcm", "C:\\escape.dcm", "./../escape.dcm", "a\\..\\..\\escape.dcm"]


@pytest.mark.parametrize("name", TRAVERSAL_NAMES)
def test_upload_member_path_traversal(name):
    upload = zip_of({name: Path(installed_file("MR_small.dcm")).read_bytes()})

    with pytest.raises(UnsafeArchive, match="leaves the archive"):
        extract_uploads([], [("upload.zip", upload)])


def test_upload_zip_bomb_ratio():
    upload = zip_of({"zeros.dcm": bytes(64 * 1024 * 1024)})
    assert len(upload) < 128 * 1024

    tracemalloc.start()
    try:
        with pytest.raises(UnsafeArchive, match="zip bomb"):
            extract_uploads([], [("bomb.zip", upload)])
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


def test_upload_many_small_members_hit_byte_limit():
    # Each member stays under the ratio check's 1 MiB floor; the total is what must stop them.
    upload = zip_of({f"part{index}.dcm": bytes(1000 * 1000) for index in range(40)})

    with pytest.raises(UnsafeArchive, match="more than 20000000 bytes"):
        extract_uploads([], [("bomb.zip", upload)], max_bytes=20_000_000)


def test_upload_lying_sizes_read_no_more_than_declared():
    upload = lying_zip(real_bytes=64 * 1024 * 1024, declared_bytes=1000)
    rule = Rule(id=1, scope="Site", scope_object_id=None, field_name="weight", field_type="float",
                dicom_tag="0x00101030", schema_element="xnat:mrSessionData")

    tracemalloc.start()
    try:
        output = extract_uploads([rule], [("lying.zip", upload), ("good.dcm", session_file(1))])
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 16 * 1024 * 1024
    assert [entry["path"] for entry in output["unreadable"]] == ["lying.zip/bomb.dcm"]
    assert [session["fields"] for session in output["sessions"]] == [{"weight": "72.5"}]


def test_upload_file_count_limit():
    uploads = [(f"f{index}.dcm", session_file(index)) for index in range(6)]

    with pytest.raises(UploadTooLarge, match="more than 5 files"):
        extract_uploads([], uploads, max_files=5)


# -- the reference host's import ----------------------------------------------------------


@pytest.fixture
def host_client(tmp_path):
    from examples.xnat_host import create_app

    app = create_app(tmp_path / "data", {"TESTING": True,
                                         "HOST_DATABASE_URL": f"sqlite:///{tmp_path / 'host.sqlite3'}"})
    client = app.test_client()
    assert client.put("/data/projects/P1", headers=ADMIN).status_code == 201
    yield app, client
    app.extensions["xnat_host"].engine.dispose()


def post_import(client, body: bytes):
    return client.post("/data/services/import?PROJECT_ID=P1", data=body,
                       headers={**ADMIN, "Content-Type": "application/zip"})


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


@pytest.mark.parametrize("name", ["./../escape.dcm", "a\\..\\..\\escape.dcm", "C:\\escape.dcm",
                                  "\\\\server\\share\\escape.dcm", "..", "a/b/../../../escape.dcm"])
def test_host_import_member_path_traversal(host_client, tmp_path, name):
    app, client = host_client
    before = set(files_under(tmp_path))

    response = post_import(client, zip_of({name: Path(installed_file("MR_small.dcm")).read_bytes()}))

    assert response.status_code == 400
    assert "leaves the target folder" in response.get_json()["message"]
    assert set(files_under(tmp_path)) - before <= {tmp_path / "data" / "archive.sqlite3"}


def test_host_import_lying_zip_sizes(host_client):
    app, client = host_client
    upload = lying_zip(real_bytes=64 * 1024 * 1024, declared_bytes=1000)

    tracemalloc.start()
    try:
        response = post_import(client, upload)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 400
    assert peak < 32 * 1024 * 1024
    assert files_under(app.extensions["xnat_host"].data_dir) == [
        app.extensions["xnat_host"].data_dir / "secret_key"
    ] or not (app.extensions["xnat_host"].data_dir / "archive").exists()


def test_host_import_many_members_under_ratio_floor(tmp_path):
    from examples.xnat_host import create_app

    app = create_app(tmp_path / "data", {"TESTING": True, "HOST_IMPORT_MAX_UNPACKED_BYTES": 20_000_000,
                                         "HOST_DATABASE_URL": f"sqlite:///{tmp_path / 'host.sqlite3'}"})
    client = app.test_client()
    client.put("/data/projects/P1", headers=ADMIN)

    response = post_import(client, zip_of({f"part{index}.dcm": bytes(1000 * 1000) for index in range(40)}))

    assert response.status_code == 400
    assert "zip bomb" in response.get_json()["message"]
    app.extensions["xnat_host"].engine.dispose()


def test_host_import_skips_hostile_members(host_client):
    app, client = host_client
    members = {f"good{number}.dcm": session_file(number) for number in range(1, 4)}
    members.update({f"bad/{name}": data for name, data in not_dicom_files().items()})
    members["bad/nested.dcm"] = nested_file(8)
    members["bad/truncated.dcm"] = session_file(9)[:150]

    response = post_import(client, zip_of(members))

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    skipped = {entry["path"] for entry in body["skipped"]}
    assert skipped == {name for name in members if name.startswith("bad/")}
    assert len(body["sessions"]) == 1
    assert body["sessions"][0]["scans"] == ["4"]


# -- the preview upload ------------------------------------------------------------------


@pytest.fixture
def preview_client(tmp_path):
    app = create_test_app(tmp_path, db_url=f"sqlite:///{tmp_path / 'rules.sqlite3'}")
    client = app.test_client()
    body = rule_json(fieldName="weight", dicomTag="PatientWeight")
    assert client.post(API, json=body, headers=ADMIN).status_code == 201
    yield client
    app.extensions["dicom_mappings"].close()


def post_preview(client, files: dict[str, bytes]):
    data = {"files": [(io.BytesIO(content), name) for name, content in files.items()]}
    return client.post(f"{API}/preview", data=data, headers=ADMIN, content_type="multipart/form-data")


@pytest.mark.parametrize("name", TRAVERSAL_NAMES)
def test_preview_zip_path_traversal(preview_client, name):
    upload = zip_of({name: Path(installed_file("MR_small.dcm")).read_bytes()})

    response = post_preview(preview_client, {"upload.zip": upload})

    assert response.status_code == 400
    assert "leaves the archive" in response.get_json()["message"]


def test_preview_zip_bomb(preview_client):
    response = post_preview(preview_client, {"bomb.zip": zip_of({"zeros.dcm": bytes(64 * 1024 * 1024)})})

    assert response.status_code == 400
    assert "zip bomb" in response.get_json()["message"]


def test_preview_reports_hostile_files(preview_client):
    # zip.dcm is a real zip of a DICOM file, which the preview opens, so it is left out here.
    files = {name: data for name, data in not_dicom_files().items() if name != "zip.dcm"}
    files["good.dcm"] = session_file(1)
    files["truncated.dcm"] = session_file(2)[:160]

    response = post_preview(preview_client, files)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert {entry["path"] for entry in body["unreadable"]} == set(files) - {"good.dcm"}
    assert [session["fields"] for session in body["sessions"]] == [{"weight": "72.5"}]


def test_preview_deep_nesting_is_reported(preview_client):
    response = post_preview(preview_client, {"nested.dcm": nested_file(5000), "good.dcm": session_file(1)})

    assert response.status_code == 200
    assert [entry["path"] for entry in response.get_json()["unreadable"]] == ["nested.dcm"]
