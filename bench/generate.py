"""Synthetic MR sessions written from pydicom's MR_small.dcm.

Every file keeps MR_small's public header and 64 x 64 pixel data. It also
gets what a Siemens MR file carries: a ``SIEMENS MR HEADER`` private block in
groups 0019 and 0051, and a ``SIEMENS CSA HEADER`` block in group 0029 with
the CSA image and series headers as large OB values. A shared functional
group sequence is added as well.

Each file has its own SOP Instance UID, instance number and slice position.
Each series has its own Series Instance UID and acquisition parameters, so
scan-level rules see one value per scan.
"""

from __future__ import annotations

import copy
import struct
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

SIEMENS_MR_HEADER = "SIEMENS MR HEADER"
SIEMENS_CSA_HEADER = "SIEMENS CSA HEADER"

#: Siemens' B_value, element 0C of the SIEMENS MR HEADER block that the
#: template reserves at (0019,0010), so the block's elements are (0019,10xx).
B_VALUE_TAG = 0x0019100C

#: Sizes of the two CSA blobs, in bytes. NOTE: these are estimates of what
#: syngo MR writes, and no real Siemens file was measured for them. The
#: series header is the larger one because it embeds the ASCII protocol.
CSA_IMAGE_HEADER_BYTES = 12_000
CSA_SERIES_HEADER_BYTES = 60_000

#: Files per series in a generated session; the last series may be shorter.
FILES_PER_SERIES = 500

#: The UID root of generated UIDs (pydicom's own root).
UID_PREFIX = "1.2.826.0.1.3680043.8.498."


@dataclass(frozen=True)
class SeriesSpec:
    """One generated series: its identity and the values its scan-level rules read."""

    scan_id: str
    series_instance_uid: str
    series_number: int
    description: str
    repetition_time: str
    echo_time: str
    flip_angle: str
    b_value: str
    pixel_spacing: tuple[str, str]


@dataclass(frozen=True)
class SessionFiles:
    """The files of a generated session, grouped by series in generation order."""

    series: tuple[SeriesSpec, ...]
    paths: tuple[tuple[Path, ...], ...]  # paths[i] are the files of series[i]

    @property
    def file_count(self) -> int:
        return sum(len(paths) for paths in self.paths)

    def first(self, count: int) -> list[tuple[SeriesSpec, list[Path]]]:
        """Return the first ``count`` files, grouped by series, in generation order."""
        groups = []
        remaining = count
        for spec, paths in zip(self.series, self.paths):
            if remaining <= 0:
                break
            selected = list(paths[:remaining])
            groups.append((spec, selected))
            remaining -= len(selected)
        if remaining > 0:
            raise ValueError(f"asked for {count} files but only {self.file_count} were generated")
        return groups


def mr_small_path() -> str:
    """Return the path of pydicom's MR_small.dcm, which ships inside pydicom itself."""
    path = get_testdata_file("MR_small.dcm", download=False)
    if path is None:
        raise FileNotFoundError("pydicom's MR_small.dcm is missing; reinstall pydicom")
    return str(path)


def csa2_blob(target_bytes: int, label: str) -> bytes:
    """Build a CSA2 header ("SV10" format) of about ``target_bytes`` bytes.

    The layout is the one that ``nibabel.nicom.csareader.read`` parses. It
    starts with "SV10", 4 unused bytes, the tag count and 77. Each tag has a
    64-byte name, VM, VR, syngo data type, item count and 77. Each item has
    four int32 values, the second of which is the item's length, and then its
    text padded to 4 bytes. The last tag holds a long ASCII protocol, as a
    series header does.
    """
    tags = [
        ("EchoLinePosition", "IS", "128"),
        ("EchoColumnPosition", "IS", "128"),
        ("SliceMeasurementDuration", "DS", "286752.50000000"),
        ("ImaCoilString", "LO", "HEA;HEP"),
        ("BandwidthPerPixelPhaseEncode", "FD", "21.80800000"),
        ("SequenceMask", "UL", "134217728"),
    ]
    protocol_line = f"### ASCCONV BEGIN ### {label} sKSpace.lBaseResolution = 256\n"
    used = 16 + sum(84 + 16 + ((len(value) + 3) // 4) * 4 for _, _, value in tags)
    padding_length = max(0, target_bytes - used - 84 - 16)
    protocol = (protocol_line * (padding_length // len(protocol_line) + 1))[:padding_length]
    tags.append(("MrPhoenixProtocol", "UN", protocol))

    parts = [b"SV10", b"\x04\x03\x02\x01", struct.pack("<2I", len(tags), 77)]
    for name, vr, value in tags:
        encoded = value.encode("ascii")
        parts.append(name.encode("ascii").ljust(64, b"\x00"))
        parts.append(struct.pack("<i", 1))
        parts.append(vr.encode("ascii").ljust(4, b"\x00"))
        parts.append(struct.pack("<3i", 3, 1, 77))
        parts.append(struct.pack("<4i", len(encoded), len(encoded), 77, len(encoded)))
        parts.append(encoded + b"\x00" * (-len(encoded) % 4))
    blob = b"".join(parts)
    return blob + b"\x00" * (len(blob) % 2)


def series_specs(count: int) -> list[SeriesSpec]:
    """Return ``count`` series whose acquisition parameters differ from one to the next."""
    specs = []
    for index in range(count):
        specs.append(
            SeriesSpec(
                scan_id=str(index + 1),
                series_instance_uid=generate_uid(UID_PREFIX),
                series_number=index + 1,
                description=f"ep2d_diff_b{(index % 4) * 500}",
                repetition_time=f"{3000 + 100 * index:.1f}",
                echo_time=f"{80 + index % 7:.2f}",
                flip_angle=str(90 - index % 3 * 5),
                b_value=str((index % 4) * 500),
                pixel_spacing=(f"{1.25 + 0.25 * (index % 2):.4f}", f"{1.25 + 0.25 * (index % 2):.4f}"),
            )
        )
    return specs


def session_template() -> Dataset:
    """Return MR_small with the session-wide additions that every generated file shares."""
    ds = pydicom.dcmread(mr_small_path())
    ds.StudyInstanceUID = generate_uid(UID_PREFIX)
    ds.StudyDescription = "BRAIN^DIFFUSION"
    ds.ProtocolName = "ep2d_diff_mddw_20"
    ds.SequenceName = "*ep_b0"
    ds.MagneticFieldStrength = "3"
    ds.BodyPartExamined = "HEAD"
    ds.StationName = "AWP45123"
    ds.ManufacturerModelName = "Prisma_fit"
    ds.ReceiveCoilName = "HeadNeck_64"
    ds.TransmitCoilName = "Body"
    ds.InPlanePhaseEncodingDirection = "COL"
    ds.PercentPhaseFieldOfView = "100"
    ds.SAR = "0.12345678"
    ds.dBdt = "0"
    ds.PixelBandwidth = "1860"

    request = Dataset()
    request.RequestedProcedureID = "RP0001"
    request.ScheduledProcedureStepID = "SPS0001"
    ds.RequestAttributesSequence = Sequence([request])

    mr_header = ds.private_block(0x0019, SIEMENS_MR_HEADER, create=True)
    if mr_header.get_tag(0x0C) != B_VALUE_TAG:
        raise RuntimeError("MR_small.dcm already has a private block in group 0019")
    mr_header.add_new(0x08, "CS", "IMAGE NUM 4")
    mr_header.add_new(0x09, "LO", "1.0")
    mr_header.add_new(0x0B, "DS", "7400")
    mr_header.add_new(0x0D, "CS", "DIRECTIONAL")
    mr_header.add_new(0x0F, "SH", "Fast")
    mr_header.add_new(0x11, "SH", "No")
    mr_header.add_new(0x12, "SL", [0, 0, -1650])
    mr_header.add_new(0x13, "SL", [0, 0, -1650])
    mr_header.add_new(0x14, "IS", ["0", "0", "0"])
    mr_header.add_new(0x15, "FD", [-1.52, 4.33, 27.1])
    mr_header.add_new(0x17, "DS", "0")
    mr_header.add_new(0x18, "IS", "2800")
    mr_header.add_new(0x28, "FD", 21.808)

    csa = ds.private_block(0x0029, SIEMENS_CSA_HEADER, create=True)
    csa.add_new(0x08, "CS", "IMAGE NUM 4")
    csa.add_new(0x09, "LO", "20100114")
    csa.add_new(0x10, "OB", csa2_blob(CSA_IMAGE_HEADER_BYTES, "image"))
    csa.add_new(0x18, "CS", "MR")
    csa.add_new(0x19, "LO", "20100114")
    csa.add_new(0x20, "OB", csa2_blob(CSA_SERIES_HEADER_BYTES, "series"))
    ds.add_new(0x00290011, "LO", "SIEMENS MEDCOM HEADER2")
    ds.add_new(0x00291160, "LO", "com")

    mr_header_51 = ds.private_block(0x0051, SIEMENS_MR_HEADER, create=True)
    mr_header_51.add_new(0x08, "CS", "IMAGE NUM 4")
    mr_header_51.add_new(0x09, "LO", "1.0")
    mr_header_51.add_new(0x0A, "LO", "TA 06:08")
    mr_header_51.add_new(0x0B, "SH", "128p*128")
    mr_header_51.add_new(0x0C, "LO", "FoV 230*230")
    mr_header_51.add_new(0x0E, "LO", "Tra>Cor(-0.3)")
    mr_header_51.add_new(0x0F, "LO", "HEA;HEP")
    mr_header_51.add_new(0x11, "LO", "p2")
    mr_header_51.add_new(0x13, "SH", "+LPH")
    mr_header_51.add_new(0x16, "LO", "p2 M/DIS2D")
    mr_header_51.add_new(0x17, "SH", "SL 3.0")
    mr_header_51.add_new(0x19, "LO", "A1/PFP/FS")
    return ds


def apply_series(ds: Dataset, spec: SeriesSpec) -> None:
    """Write the series' identity and acquisition parameters into ``ds``."""
    ds.SeriesInstanceUID = spec.series_instance_uid
    ds.SeriesNumber = spec.series_number
    ds.SeriesDescription = spec.description
    ds.RepetitionTime = spec.repetition_time
    ds.EchoTime = spec.echo_time
    ds.FlipAngle = spec.flip_angle
    # NOTE: pydicom 3.0.2 caches private blocks, and a deep copy's cached block
    # still points to the original dataset, so the tag is set directly here.
    ds.add_new(B_VALUE_TAG, "IS", spec.b_value)

    pixel_measures = Dataset()
    pixel_measures.PixelSpacing = list(spec.pixel_spacing)
    pixel_measures.SliceThickness = "3"
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([pixel_measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])


def apply_instance(ds: Dataset, number: int) -> None:
    """Give ``ds`` its own SOP Instance UID, instance number and slice position."""
    uid = generate_uid(UID_PREFIX)
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.InstanceNumber = number
    z = -60.0 + 3.0 * ((number - 1) % 40)
    ds.ImagePositionPatient = ["-115", "-115", f"{z:.4f}"]
    ds.SliceLocation = f"{z:.4f}"


def write_session(directory: Path, file_count: int, files_per_series: int = FILES_PER_SERIES) -> SessionFiles:
    """Write a session of ``file_count`` files into ``directory`` and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    series_count = max(1, -(-file_count // files_per_series))
    specs = series_specs(series_count)
    template = session_template()

    all_paths = []
    written = 0
    for spec in specs:
        ds = copy.deepcopy(template)
        apply_series(ds, spec)
        series_dir = directory / f"series{spec.series_number:03d}"
        series_dir.mkdir(exist_ok=True)

        paths = []
        in_series = min(files_per_series, file_count - written)
        for number in range(1, in_series + 1):
            apply_instance(ds, number)
            path = series_dir / f"IM{number:05d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        written += in_series
        all_paths.append(tuple(paths))

    return SessionFiles(series=tuple(specs), paths=tuple(all_paths))
