"""Header reading on pydicom's real files and on written edge cases."""

from __future__ import annotations

import gzip
import io
import os
import struct
import tracemalloc
import zlib

import pydicom
import pytest

from conftest import testdata as real_file
from dicom_bytes import EXPLICIT_LITTLE, dataset_bytes, encode_element, file_meta, write_dicom
from xnat_dicom_mappings.reader import (
    MAX_SEQUENCE_DEPTH,
    ElementError,
    UnreadableFile,
    read_header,
    resolve_character_set,
)
from xnat_dicom_mappings.tags import parse_tag

PIXEL_SPACING = parse_tag("PixelSpacing")
MR_VARIANTS = ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
               "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "zipMR.gz"]


def values(header, text):
    found = header.lookup(parse_tag(text))
    assert len(found) == 1
    return found[0].values


@pytest.mark.parametrize("name", MR_VARIANTS)
def test_mr_variants_pixel_spacing(name):
    header = read_header(real_file(name), [PIXEL_SPACING])
    assert values(header, "PixelSpacing") == ("0.3125", "0.3125 ")


@pytest.mark.parametrize("name", MR_VARIANTS)
def test_mr_variants_patient_name(name):
    header = read_header(real_file(name), [parse_tag("PatientName")])
    assert values(header, "PatientName") == ("CompressedSamples^MR1 ",)


def test_ct_private_creator_blocks():
    paths = [parse_tag(t) for t in ['(0019,"GEMS_ACQU_01",03)', '(0043,"GEMS_PARM_01",13)',
                                    '(0009,"GEMS_IDEN_01",27)']]
    header = read_header(real_file("CT_small.dcm"), paths)
    assert values(header, '(0019,"GEMS_ACQU_01",03)') == ("373.750000",)
    assert values(header, '(0043,"GEMS_PARM_01",13)') == (107, 21, 4, 2, 20)
    assert values(header, '(0009,"GEMS_IDEN_01",27)') == (862399669,)


def test_ct_wrong_creator_absent():
    path = parse_tag('(0019,"SIEMENS MR HEADER",03)')
    header = read_header(real_file("CT_small.dcm"), [path])
    assert header.lookup(path) == []


def test_big_endian_old_date():
    header = read_header(real_file("ExplVR_BigEnd.dcm"), [parse_tag("StudyDate")])
    assert values(header, "StudyDate") == ("1997.04.24",)


def test_binary_vr_numbers():
    header = read_header(real_file("rtdose.dcm"), [parse_tag("Rows"), parse_tag("BitsAllocated")])
    assert values(header, "Rows") == (10,)
    assert values(header, "BitsAllocated") == (32,)


def test_overlay_file_reads():
    header = read_header(real_file("examples_overlay.dcm"), [parse_tag("RepetitionTime")])
    assert values(header, "RepetitionTime") == ("5.53",)


def test_enhanced_ct_shared_groups():
    header = read_header(real_file("eCT_Supplemental.dcm"), [PIXEL_SPACING])
    found = header.lookup(PIXEL_SPACING)
    assert found[0].values == ("0.388672", "0.388672 ")
    assert found[0].location == "shared functional groups"


def test_enhanced_ct_per_frame_differs():
    path = parse_tag("ImagePositionPatient")
    found = read_header(real_file("eCT_Supplemental.dcm"), [path]).lookup(path)
    assert [item.frames for item in found] == [(1,), (2,)]
    assert found[0].values[2] == "-159.000 "


def test_enhanced_ct_explicit_path():
    path = parse_tag("SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SliceThickness")
    header = read_header(real_file("eCT_Supplemental.dcm"), [path])
    assert header.lookup(path)[0].values == ("10.0000 ",)


def test_enhanced_mr_without_groups():
    paths = [parse_tag("RepetitionTime"), parse_tag("MagneticFieldStrength")]
    header = read_header(real_file("emri_small.dcm"), paths)
    assert header.lookup(paths[0]) == []
    assert values(header, "MagneticFieldStrength") == ("3 ",)


def test_dataset_source_not_reread():
    dataset = pydicom.dcmread(real_file("MR_small.dcm"))
    header = read_header(dataset, [PIXEL_SPACING])
    assert header.source is dataset
    assert values(header, "PixelSpacing") == ("0.3125", "0.3125 ")


def test_dataset_typed_elements():
    dataset = pydicom.dcmread(real_file("MR_small.dcm"))
    dataset.PatientWeight = "72.50"
    assert dataset.PixelSpacing == [0.3125, 0.3125]  # pydicom converts the element here
    header = read_header(dataset, [PIXEL_SPACING, parse_tag("PatientWeight")])
    assert values(header, "PixelSpacing") == ("0.3125", "0.3125")
    assert values(header, "PatientWeight") == ("72.50",)


def test_open_binary_file():
    with open(real_file("MR_small.dcm"), "rb") as stream:
        header = read_header(stream, [PIXEL_SPACING])
    assert values(header, "PixelSpacing") == ("0.3125", "0.3125 ")


def test_bytes_io_source():
    with open(real_file("CT_small.dcm"), "rb") as stream:
        data = io.BytesIO(stream.read())
    header = read_header(data, [parse_tag("KVP")], name="upload.dcm")
    assert header.name == "upload.dcm"
    assert values(header, "KVP") == ("120 ",)


def test_stops_before_unrequested_tags():
    header = read_header(real_file("MR_small.dcm"), [parse_tag("PatientName")])
    with pytest.raises(ValueError, match="pass every tag path"):
        header.lookup(PIXEL_SPACING)


def test_text_file_unreadable(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("Dear colleague, the scans are attached.\n")
    with pytest.raises(UnreadableFile, match="not a DICOM file"):
        read_header(path, [PIXEL_SPACING])


def test_missing_file_unreadable(tmp_path):
    with pytest.raises(UnreadableFile, match="cannot open"):
        read_header(tmp_path / "absent.dcm", [PIXEL_SPACING])


def test_truncated_header_unreadable(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", [(0x00101030, "DS", b"68.5"),
                                            (0x00280030, "DS", b"0.5\\0.5")])
    data = open(path, "rb").read()
    (tmp_path / "cut.dcm").write_bytes(data[:-4])
    with pytest.raises(UnreadableFile, match="ends inside element"):
        read_header(tmp_path / "cut.dcm", [PIXEL_SPACING])


def test_text_mode_file_rejected(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x")
    with open(path) as stream, pytest.raises(TypeError, match="binary mode"):
        read_header(stream, [PIXEL_SPACING])


def test_wrong_source_type():
    with pytest.raises(TypeError, match="path, a binary file or a pydicom Dataset"):
        read_header(42, [PIXEL_SPACING])


@pytest.mark.parametrize(("raw", "encoding", "problem"), [
    (b"ISO_IR 100", "latin_1", False),
    (b"ISO_IR 192", "UTF8", False),
    (b"ISO-IR 100", "latin_1", True),
    (b"\x00ISO_IR 100", "latin_1", True),
    (b"ISO_IR 100\x00", "latin_1", False),
])
def test_character_set_terms(raw, encoding, problem):
    charset = resolve_character_set(raw)
    assert charset.encodings == (encoding,)
    assert (charset.problem is not None) == problem


def test_character_set_unknown():
    charset = resolve_character_set(b"Not Supplied")
    assert charset.encodings == ()
    assert "no known character set" in charset.problem


def test_utf8_name(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", [(0x00080005, "CS", b"ISO_IR 192"),
                                            (0x00100010, "PN", "Łukasz^Żółw".encode())])
    found = read_header(path, [parse_tag("PatientName")]).lookup(parse_tag("PatientName"))
    assert found[0].values == ("Łukasz^Żółw ",)
    assert found[0].repairs == ()


def test_wrong_declared_charset(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", [(0x00080005, "CS", b"ISO_IR 192"),
                                            (0x00100010, "PN", "Müller".encode("latin-1"))])
    found = read_header(path, [parse_tag("PatientName")]).lookup(parse_tag("PatientName"))
    assert found[0].values == ("Müller",)
    assert "not valid ISO_IR 192" in found[0].repairs[0]


def test_per_frame_conflict_written(tmp_path):
    from test_cases import _sequence
    from dicom_bytes import dataset_bytes

    def frame(value: bytes) -> bytes:
        timing = _sequence(0x00189112, [dataset_bytes([(0x00180081, "DS", value)], identity=False)])
        return dataset_bytes([timing], identity=False)

    per_frame = _sequence(0x52009230, [frame(b"10"), frame(b"10"), frame(b"20")])
    path = write_dicom(tmp_path / "a.dcm", [per_frame])
    found = read_header(path, [parse_tag("EchoTime")]).lookup(parse_tag("EchoTime"))
    assert [(item.values, item.frames) for item in found] == [(("10",), (1, 2)), (("20",), (3,))]


def test_non_ascii_without_character_set(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", [(0x00100010, "PN", "Müller^Hans".encode("latin-1"))])
    found = read_header(path, [parse_tag("PatientName")]).lookup(parse_tag("PatientName"))
    assert found[0].values == ("Müller^Hans ",)
    assert "no SpecificCharacterSet is given" in found[0].repairs[0]
    assert "ISO 8859-1" in found[0].repairs[0]


# Hostile headers: false lengths, cut files, deep nesting, bytes that are not DICOM.

UNDEFINED = 0xFFFFFFFF
WEIGHT = parse_tag("PatientWeight")
PATIENT_NAME = parse_tag("PatientName")


def part10(dataset: bytes) -> bytes:
    return b"\x00" * 128 + b"DICM" + file_meta(EXPLICIT_LITTLE) + dataset


def undefined_sequence(tag: int, items: list[bytes]) -> bytes:
    """An undefined-length SQ element of undefined-length items, explicit VR little endian."""
    body = b"".join(struct.pack("<HHL", 0xFFFE, 0xE000, UNDEFINED) + item
                    + struct.pack("<HHL", 0xFFFE, 0xE00D, 0) for item in items)
    header = struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, b"SQ", 0, UNDEFINED)
    return header + body + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)


def nested_sequences(depth: int) -> bytes:
    """ReferencedImageSequence nested ``depth`` levels; level N's item has ReferencedSOPInstanceUID N."""
    inner = b""
    for level in range(depth, 0, -1):
        uid = encode_element(0x00081155, "UI", str(level).encode())
        inner = undefined_sequence(0x00081140, [uid + inner])
    return inner


def source_of(data: bytes, tmp_path, kind: str):
    """Return ``data`` as the source kind: a path, a path to a gzip file, or a BytesIO."""
    if kind == "bytes":
        return io.BytesIO(data)
    path = tmp_path / "file.dcm"
    path.write_bytes(gzip.compress(data) if kind == "gzip" else data)
    return path


def huge_weight_file() -> bytes:
    """A file whose PatientWeight announces 4294967280 bytes and contains 2."""
    head = part10(dataset_bytes([(0x00100010, "PN", b"Doe^Jane")], identity=False))
    return head + struct.pack("<HH2sHL", 0x0010, 0x1030, b"UT", 0, 0xFFFFFFF0) + b"72"


@pytest.mark.parametrize("kind", ["path", "gzip", "bytes"])
def test_huge_declared_length_unreadable(tmp_path, kind):
    source = source_of(huge_weight_file(), tmp_path, kind)

    tracemalloc.start()
    try:
        with pytest.raises(UnreadableFile, match="4294967280 bytes announced from byte 200, 2 present"):
            read_header(source, [WEIGHT])
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A gzip file is read in pieces of 1 MiB; the other sources are checked against their size.
    assert peak < 4 * 1024 * 1024


def image_type_then_name() -> tuple[bytes, int]:
    """Return a file with ImageType, which the tests do not request, then PatientName, and where ImageType starts."""
    elements = [(0x00080008, "CS", b"ORIGINAL\\PRIMARY"), (0x00100010, "PN", b"Doe^Jane")]
    data = part10(dataset_bytes(elements, identity=False))
    return data, len(part10(b""))


@pytest.mark.parametrize("kind", ["path", "gzip", "bytes"])
def test_cut_inside_skipped_value(tmp_path, kind):
    data, image_type = image_type_then_name()
    cut = image_type + 8 + 5
    source = source_of(data[:cut], tmp_path, kind)

    with pytest.raises(UnreadableFile, match=rf"ends inside element \(0008,0008\), at byte {cut}:"):
        read_header(source, [PATIENT_NAME])


@pytest.mark.parametrize("kind", ["path", "gzip", "bytes"])
def test_cut_inside_element_header(tmp_path, kind):
    data, image_type = image_type_then_name()
    patient_name = image_type + 8 + 16
    source = source_of(data[:patient_name + 5], tmp_path, kind)

    expected = f"ends at byte {patient_name + 5}, inside the header of the data element that starts at byte {patient_name}"
    with pytest.raises(UnreadableFile, match=expected):
        read_header(source, [PATIENT_NAME])


def test_cut_after_requested_elements_reads(tmp_path):
    data, _image_type = image_type_then_name()
    image_type_path = parse_tag("ImageType")

    header = read_header(io.BytesIO(data[:-4]), [image_type_path])

    assert values(header, "ImageType") == ("ORIGINAL", "PRIMARY")


@pytest.mark.parametrize("kind", ["path", "gzip"])
def test_cut_inside_undefined_sequence(tmp_path, kind):
    data = part10(nested_sequences(3) + encode_element(0x00101030, "DS", b"72"))
    source = source_of(data[:len(data) - 30], tmp_path, kind)

    with pytest.raises(UnreadableFile, match=r"inside sequence \(0008,1140\) that starts at byte"):
        read_header(source, [WEIGHT])


def test_nesting_at_limit_reads():
    data = part10(nested_sequences(MAX_SEQUENCE_DEPTH) + encode_element(0x00101030, "DS", b"72"))
    second_level = parse_tag("ReferencedImageSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID")

    header = read_header(io.BytesIO(data), [second_level, WEIGHT])

    assert values(header, "PatientWeight") == ("72",)
    assert header.lookup(second_level)[0].values == ("2\x00",)


@pytest.mark.parametrize("requested", [True, False], ids=["requested", "skipped"])
def test_nesting_past_limit_unreadable(requested):
    data = part10(nested_sequences(MAX_SEQUENCE_DEPTH + 1) + encode_element(0x00101030, "DS", b"72"))
    paths = [WEIGHT]
    if requested:
        paths.append(parse_tag("ReferencedImageSequence[0].ReferencedSOPInstanceUID"))

    with pytest.raises(UnreadableFile, match=f"more than {MAX_SEQUENCE_DEPTH} levels deep"):
        read_header(io.BytesIO(data), paths)


def test_deep_defined_length_sequence_invalid():
    # The reader keeps a defined-length sequence unread, so the depth shows when a lookup parses it.
    inner = nested_sequences(3000)
    item = struct.pack("<HHL", 0xFFFE, 0xE000, len(inner)) + inner
    outer = struct.pack("<HH2sHL", 0x0008, 0x1140, b"SQ", 0, len(item)) + item
    data = part10(outer + encode_element(0x00101030, "DS", b"72"))
    inside = parse_tag("ReferencedImageSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID")

    header = read_header(io.BytesIO(data), [inside, WEIGHT])

    assert values(header, "PatientWeight") == ("72",)
    with pytest.raises(ElementError, match="nest sequences too deeply"):
        header.lookup(inside)


@pytest.mark.parametrize("data", [bytes(4096), b"\x00" * 128 + b"DICM" + bytes(4096)],
                         ids=["zeros", "prefix-then-zeros"])
def test_zero_bytes_unreadable(tmp_path, data):
    path = tmp_path / "zeros.dcm"
    path.write_bytes(data)

    with pytest.raises(UnreadableFile, match=r"not a DICOM file: the first data element would be \(0000,0000\)"):
        read_header(path, [PATIENT_NAME])


def test_raw_dataset_descending_tags_unreadable():
    name = encode_element(0x00100010, "PN", b"Doe^Jane", implicit=True)
    study_date = encode_element(0x00080020, "DA", b"20240102", implicit=True)

    with pytest.raises(UnreadableFile, match=r"element \(0008,0020\) at byte 16 follows element \(0010,0010\)"):
        read_header(io.BytesIO(name + study_date), [WEIGHT])


def test_raw_dataset_ascending_tags_reads():
    study_date = encode_element(0x00080020, "DA", b"20240102", implicit=True)
    name = encode_element(0x00100010, "PN", b"Doe^Jane", implicit=True)

    header = read_header(io.BytesIO(study_date + name), [PATIENT_NAME, WEIGHT])

    assert values(header, "PatientName") == ("Doe^Jane",)


# -- deflated transfer syntax -------------------------------------------------------

DEFLATED = "1.2.840.10008.1.2.1.99"


def write_deflated_bomb(path, blob_bytes: int) -> str:
    """Write a deflated file whose dataset contains a private OB of ``blob_bytes`` zeros.

    The file is about a thousandth of that size, because zeros deflate well.
    """
    head = dataset_bytes([(0x00080020, "DA", b"20200101"), (0x00090010, "LO", b"ACME")], identity=False)
    blob_header = struct.pack("<HH2sHL", 0x0009, 0x1001, b"OB", 0, blob_bytes)
    tail = dataset_bytes([(0x00100010, "PN", b"Doe^Jane")])

    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(path, "wb") as stream:
        stream.write(b"\x00" * 128 + b"DICM" + file_meta(DEFLATED))
        stream.write(deflater.compress(head + blob_header))
        chunk = bytes(1024 * 1024)
        for _ in range(blob_bytes // len(chunk)):
            stream.write(deflater.compress(chunk))
        stream.write(deflater.compress(tail))
        stream.write(deflater.flush())
    return str(path)


def test_deflated_real_file():
    path = real_file("image_dfl.dcm")
    expected = pydicom.dcmread(path, stop_before_pixels=True)

    header = read_header(path, [parse_tag("Rows"), parse_tag("Modality")])

    assert header.lookup(parse_tag("Rows"))[0].values == (expected.Rows,)
    assert header.lookup(parse_tag("Modality"))[0].values == (expected.Modality,)


def test_deflate_bomb_memory_bounded(tmp_path):
    path = write_deflated_bomb(tmp_path / "bomb.dcm", 64 * 1024 * 1024)
    assert os.path.getsize(path) < 1024 * 1024

    tracemalloc.start()
    try:
        header = read_header(path, [parse_tag("StudyDate"), parse_tag("PatientName")])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert header.lookup(parse_tag("StudyDate"))[0].values == ("20200101",)
    assert header.lookup(parse_tag("PatientName"))[0].values == ("Doe^Jane",)
    assert peak < 16 * 1024 * 1024
