"""The ``xnat-dicom-mappings`` command line: extract mapped values from DICOM files."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from . import catalogue
from .errors import TagSyntaxError
from .grouping import extract_paths
from .rules import CONFLICT_POLICIES, FIELD_TYPES, Rule, json_type_name
from .tags import parse_tag

#: Exit status for bad arguments and for a rules file that cannot be used.
EXIT_USAGE = 2


class RulesFileError(Exception):
    """A rules file that cannot be read or contains an invalid rule."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xnat-dicom-mappings",
        description="Apply XNAT custom DICOM mappings to DICOM files and print the values as JSON.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    extract = commands.add_parser(
        "extract",
        help="print the session fields and scan parameters that the rules give for PATH...",
        description=(
            "Group DICOM files into sessions (StudyInstanceUID) and scans "
            "(SeriesInstanceUID), apply the rules and print JSON. Exits with 0 "
            "whenever it ran, whatever problems the files have."
        ),
    )
    extract.add_argument("--mappings", required=True, metavar="RULES.json",
                         help="JSON array of rules in the API's format")
    extract.add_argument("--project", metavar="P",
                         help="project ID whose rules apply besides the site rules")
    extract.add_argument("--session-type", metavar="T",
                         help="session xsi type, such as xnat:mrSessionData; by default "
                              "it comes from the study's modalities")
    extract.add_argument("--indent", type=int, default=2,
                         help="JSON indentation in spaces (default: 2)")
    extract.add_argument("-v", "--verbose", action="store_true",
                         help="log the per-session summary and each problem to stderr")
    extract.add_argument("paths", nargs="+", metavar="PATH",
                         help="DICOM files, folders (searched recursively) or zip archives")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    try:
        rules = load_rules(args.mappings)
    except RulesFileError as exc:
        print(f"xnat-dicom-mappings: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    if args.session_type is not None and args.session_type not in catalogue.SESSION_TYPES:
        known = ", ".join(sorted(catalogue.SESSION_TYPES))
        print(f"xnat-dicom-mappings: error: --session-type {args.session_type!r} is not a session "
              f"xsi type; use one of {known}", file=sys.stderr)
        return EXIT_USAGE

    missing = [path for path in args.paths if not os.path.exists(path)]
    if missing:
        print(f"xnat-dicom-mappings: error: no such file or folder: {', '.join(missing)}",
              file=sys.stderr)
        return EXIT_USAGE

    output = extract_paths(rules, args.paths, project=args.project,
                           session_type=args.session_type)
    json.dump(output, sys.stdout, indent=args.indent if args.indent > 0 else None,
              ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


def load_rules(path: str) -> list[Rule]:
    """Read and check a rules file; raise :class:`RulesFileError` naming the rule and the fix."""
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except OSError as exc:
        raise RulesFileError(f"cannot read the rules file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RulesFileError(f"the rules file {path} is not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise RulesFileError(
            f"the rules file {path} is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}"
        ) from exc

    # An export bundle of the API ({"format": ..., "rules": [...]}) is read as its rules.
    if isinstance(data, dict) and isinstance(data.get("rules"), list):
        data = data["rules"]
    if not isinstance(data, list):
        raise RulesFileError(
            f"the rules file {path} must contain a JSON array of rules (the body of "
            f"GET /xapi/dicom_mappings) or an export bundle, not a JSON {json_type_name(data)}"
        )
    return [_check_rule(entry, number, path) for number, entry in enumerate(data, 1)]


def _check_rule(entry, number: int, path: str) -> Rule:
    where = f"{path}: rule {number}"
    if not isinstance(entry, dict):
        raise RulesFileError(f"{where} must be a JSON object, not a JSON {json_type_name(entry)}")
    name = entry.get("fieldName")
    if isinstance(name, str) and name:
        where += f" ({name})"

    for key in ("fieldName", "fieldType", "dicomTag", "schemaElement"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise RulesFileError(f"{where}: {key} is missing or empty; give it as a string")

    field_type = entry["fieldType"].lower()
    if field_type not in FIELD_TYPES:
        raise RulesFileError(
            f"{where}: fieldType {entry['fieldType']!r} is not valid; use one of "
            f"{', '.join(FIELD_TYPES)}"
        )

    try:
        parse_tag(entry["dicomTag"])
    except TagSyntaxError as exc:
        raise RulesFileError(f"{where}: {exc}") from exc

    scope = str(entry.get("scope") or "site").strip().lower()
    if scope not in ("site", "project"):
        raise RulesFileError(f"{where}: scope {entry.get('scope')!r} is not valid; use Site or Project")
    if scope == "project" and not entry.get("scopeObjectId"):
        raise RulesFileError(f"{where}: a Project rule needs scopeObjectId, the project ID")

    policy = entry.get("conflictPolicy") or "unique"
    if policy not in CONFLICT_POLICIES:
        raise RulesFileError(
            f"{where}: conflictPolicy {policy!r} is not valid; use one of {', '.join(CONFLICT_POLICIES)}"
        )

    schema_element = entry["schemaElement"]
    if schema_element in catalogue.ABSTRACT_TYPES:
        raise RulesFileError(
            f"{where}: schemaElement {schema_element!r} is an abstract type that no session or "
            "scan has; use a concrete type such as xnat:mrSessionData or xnat:mrScanData"
        )
    return Rule.from_json(entry)


if __name__ == "__main__":
    sys.exit(main())
