"""Walk the whole job over real HTTP: mappings defined, real DICOM archived, values shown.

Starts the reference host on a free 127.0.0.1 port with an SQLite database in
a temporary data folder, then as the administrator: creates a project and a
custom variable, PUTs XNAT-style mapping rules, uploads a zip of DICOM files
that ship with pydicom, prints each archived session's fields, scan
parameters and problems, and stops the host. Exits with status 1 when a
step fails. Run it with ``make demo`` or ``.venv/bin/python examples/demo.py``.
"""

from __future__ import annotations

import argparse
import io
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.xnat_host.client import HostClient, Response  # noqa: E402

PROJECT = "DEMO"

#: DICOM files shipped with pydicom: an MR study, a CT study from a GE scanner,
#: and two instances of one series of a third (CT) study.
DICOM_FILES = ("MR_small.dcm", "CT_small.dcm", "693_UNCR.dcm", "693_UNCI.dcm")

#: The custom variable defined in the project. The study date rule has none,
#: so the plugin's warning about it shows in the output.
CUSTOM_VARIABLE = ("xnat:mrSessionData", "weight", "float")


def _rule(schema_element: str, field_name: str, field_type: str, dicom_tag: str) -> dict:
    # The shape that XNAT 1.8's admin UI sends, without "id": a new rule.
    return {
        "scope": "Project",
        "scopeObjectId": PROJECT,
        "fieldName": field_name,
        "fieldType": field_type,
        "dicomTag": dicom_tag,
        "schemaElement": schema_element,
    }


#: Session rules for MR and CT sessions, scan rules for MR and CT scans. The
#: last rule reads Table Speed [mm/rotation] from GE's private block
#: "GEMS_ACQU_01" in group 0019, found by its private creator in each file.
MAPPINGS = [
    *(
        _rule(session_type, name, field_type, tag)
        for session_type in ("xnat:mrSessionData", "xnat:ctSessionData")
        for name, field_type, tag in (("weight", "float", "0x00101030"),
                                      ("studydate", "date", "(0008,0020)"))
    ),
    _rule("xnat:mrScanData", "pixelspacing", "string", "PixelSpacing"),
    _rule("xnat:mrScanData", "tr", "float", "0x00180080"),
    _rule("xnat:mrScanData", "te", "float", "0x00180081"),
    _rule("xnat:mrScanData", "slicethickness", "float", "0x00180050"),
    _rule("xnat:ctScanData", "pixelspacing", "string", "PixelSpacing"),
    _rule("xnat:ctScanData", "slicethickness", "float", "0x00180050"),
    _rule("xnat:ctScanData", "tablespeed", "float", '(0019,"GEMS_ACQU_01",23)'),
]


class StepFailed(Exception):
    """A step of the walk-through did not return the expected response."""


def build_zip(names=DICOM_FILES) -> bytes:
    """Return a zip of pydicom's test files plus one text file that the host must skip."""
    from pydicom.data import get_testdata_file

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            path = get_testdata_file(name, download=False)
            if path is None:
                raise StepFailed(f"{name} is not installed with pydicom or pydicom-data; "
                                 "run `make venv` to install the test extra")
            archive.write(path, f"study/{name}")
        archive.writestr("study/README.txt", "Not DICOM: the importer reports and skips this file.\n")
    return buffer.getvalue()


class RunningHost:
    """The reference host in a child process, started with ``--port 0``."""

    def __init__(self, data_dir: Path, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "examples.xnat_host", "--host", "127.0.0.1", "--port", "0",
             "--data-dir", str(data_dir)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log,
        )
        self.base_url = self._wait_for_address(timeout=60)

    def _wait_for_address(self, timeout: float) -> str:
        # The host prints "Serving on http://127.0.0.1:PORT/" once it listens.
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.process.stdout],
                         daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2).decode("utf-8", "replace").strip()
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if line.startswith("Serving on "):
                return line.removeprefix("Serving on ").rstrip("/")

        self.stop()
        raise StepFailed(f"the host did not start within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def wait_until_ready(client: HostClient, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/data/projects").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise StepFailed(f"the host did not respond to GET /data/projects within {timeout:.0f} s")


def expect(response: Response, statuses: tuple[int, ...], step: str) -> Response:
    if response.status not in statuses:
        raise StepFailed(f"{step}: HTTP {response.status}: {response.body.decode('utf-8', 'replace')[:2000]}")
    return response


def define_project(client: HostClient) -> None:
    expect(client.put_json(f"/data/projects/{PROJECT}", {"name": "DICOM mappings demo"}),
           (200, 201), f"create project {PROJECT}")
    print(f"Project {PROJECT} created.")

    session_type, name, field_type = CUSTOM_VARIABLE
    expect(client.put_json(f"/data/projects/{PROJECT}/custom_variables/{session_type}/{name}",
                           {"type": field_type}),
           (200, 201), "define the custom variable")
    print(f"Custom variable {name} ({field_type}) defined for {session_type}.")


def put_mappings(client: HostClient) -> None:
    print("\nMapping rules:")
    for rule in MAPPINGS:
        stored = expect(client.put_json("/xapi/dicom_mappings/update", rule), (200,),
                        f"PUT rule {rule['schemaElement']} {rule['fieldName']}").json()
        print(f"  #{stored['id']:<3} {stored['schemaElement']:<20} {stored['fieldName']:<15} "
              f"{stored['fieldType']:<7} {stored['dicomTag']}")
        for warning in stored.get("warnings", []):
            print(f"      warning: {warning}")




def import_dicom(client: HostClient) -> list[dict]:
    archive = build_zip()
    print(f"\nUploading a zip of {len(DICOM_FILES)} DICOM files and one text file "
          f"({len(archive)} bytes) to /data/services/import ...")
    result = expect(client.import_zip(PROJECT, archive), (200,), "import the zip").json()
    for skipped in result.get("skipped", []):
        print(f"  skipped {skipped['path']}: {skipped['reason']}")
    if not result.get("sessions"):
        raise StepFailed("the import archived no session")
    return result["sessions"]


def print_session(client: HostClient, summary: dict) -> None:
    session = expect(client.get(f"{summary['uri']}?format=json"), (200,),
                     f"GET {summary['uri']}").json()
    print(f"\nSession {session['id']}  label {session['label']}  {session['xsiType']}")
    print(f"  StudyInstanceUID {session['studyInstanceUid']}")
    _print_values("fields", session["fields"], indent="  ")

    for scan in session["scans"]:
        print(f"  scan {scan['id']}  {scan['xsiType']}")
        _print_values("parameters", scan["parameters"], indent="    ")

    if not session["problems"]:
        print("  problems: none")
        return
    print("  problems:")
    for problem in session["problems"]:
        where = f"scan {problem['scanId']}" if problem.get("scanId") else "session"
        print(f"    {problem['kind']:<9} {where}, {problem.get('fieldName')} "
              f"{problem.get('dicomTag')}: {problem.get('detail')}")


def _print_values(title: str, values: dict, indent: str) -> None:
    if not values:
        print(f"{indent}{title}: none")
        return
    print(f"{indent}{title}:")
    width = max(len(name) for name in values)
    for name, value in values.items():
        print(f"{indent}  {name:<{width}}  {value}")


def run(keep_data: bool) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="xnat-host-demo-"))
    host = None
    try:
        host = RunningHost(data_dir, data_dir / "host.log")
        print(f"Reference host running at {host.base_url} (data in {data_dir})")
        client = HostClient(host.base_url, os.environ.get("XNAT_HOST_ADMIN_USERNAME", "admin"),
                            os.environ.get("XNAT_HOST_ADMIN_PASSWORD", "admin"))
        wait_until_ready(client)

        define_project(client)
        put_mappings(client)
        for summary in import_dicom(client):
            print_session(client, summary)
    except (StepFailed, OSError) as exc:
        print(f"\nDemo failed: {exc}", file=sys.stderr)
        if host is not None:
            print(f"Host log: {host.log_path}", file=sys.stderr)
            keep_data = True
        return 1
    finally:
        if host is not None:
            host.stop()
            print("\nHost stopped.")
        if keep_data:
            print(f"Data folder kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-data", action="store_true",
                        help="keep the temporary data folder (database, DICOM files, host log)")
    return run(parser.parse_args(argv).keep_data)


if __name__ == "__main__":
    sys.exit(main())
