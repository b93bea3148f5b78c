"""Property tests of the rule import: the store equals the bundle, or is unchanged when rejected.

Hypothesis draws a stored state and a bundle from a small space of rules, so
that bundles often match, update, duplicate and contradict stored rules. The
bundle's values come in the spellings that clients send (lowercase scope,
every tag form, schema elements in any letter case). The store keeps their
canonical forms. The tag parser and the converters have their own property
tests in test_tags.py and test_convert.py.

``XDM_STRESS=1`` (``make stress``) raises the examples per database.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps import ADMIN, API, create_test_app

STRESS = os.environ.get("XDM_STRESS") == "1"

EXAMPLES = 400 if STRESS else 60

#: Input spellings of each tag, with the canonical form the store keeps.
TAG_FORMS = {
    "0x00101030": ["0x00101030", "00101030", "(0010,1030)", "0010,1030", "PatientWeight"],
    "0x00101020": ["0X00101020", "PatientSize", "(0010,1020)"],
    "0x00280030[1]": ["PixelSpacing[1]", "0x00280030[1]"],
    '(0019,"SIEMENS MR HEADER",0C)': ['(0019,"SIEMENS MR HEADER",0C)'],
}
SCHEMA_FORMS = {
    "xnat:mrSessionData": ["xnat:mrSessionData", "XNAT:MRSESSIONDATA", "xnat:mrsessiondata"],
    "xnat:ctSessionData": ["xnat:ctSessionData"],
}
SCOPE_FORMS = {"Site": ["Site", "site", "SITE"], "Project": ["Project", "project"]}
PROJECTS = ["ProjectA", "ProjectB"]
FIELD_NAMES = ["weight", "height", "spacing"]


@st.composite
def rule_inputs(draw) -> tuple[dict, tuple]:
    """Draw a rule body as a client sends it, and its canonical content."""
    scope = draw(st.sampled_from(sorted(SCOPE_FORMS)))
    tag = draw(st.sampled_from(sorted(TAG_FORMS)))
    schema_element = draw(st.sampled_from(sorted(SCHEMA_FORMS)))
    project = draw(st.sampled_from(PROJECTS)) if scope == "Project" else None
    field_name = draw(st.sampled_from(FIELD_NAMES))
    field_type = draw(st.sampled_from(["float", "string"]))
    policy = draw(st.sampled_from(["unique", "max"]))

    body = {
        "scope": draw(st.sampled_from(SCOPE_FORMS[scope])),
        "fieldName": field_name,
        "fieldType": field_type.upper() if draw(st.booleans()) else field_type,
        "dicomTag": draw(st.sampled_from(TAG_FORMS[tag])),
        "schemaElement": draw(st.sampled_from(SCHEMA_FORMS[schema_element])),
        "conflictPolicy": policy,
    }
    if project is not None:
        body["scopeObjectId"] = project
    if draw(st.booleans()):
        body["id"] = draw(st.integers(min_value=0, max_value=50))
    return body, (scope, project, field_name, field_type, tag, schema_element, policy)


#: A bundle entry that the schema rejects, so the whole import must be rejected.
INVALID_RULES = [
    {"scope": "Everywhere", "fieldName": "weight", "fieldType": "float", "dicomTag": "PatientWeight",
     "schemaElement": "xnat:mrSessionData"},
    {"scope": "Site", "fieldName": "Weight!", "fieldType": "float", "dicomTag": "PatientWeight",
     "schemaElement": "xnat:mrSessionData"},
    {"scope": "Project", "scopeObjectId": "NoSuchProject", "fieldName": "weight", "fieldType": "float",
     "dicomTag": "PatientWeight", "schemaElement": "xnat:mrSessionData"},
    {"scope": "Site", "fieldName": "weight", "fieldType": "float", "dicomTag": "PixelData",
     "schemaElement": "xnat:mrSessionData"},
    {"scope": "Site", "fieldName": "weight", "fieldType": "float", "dicomTag": "PatientWeight",
     "schemaElement": "xnat:imageSessionData"},
]

bundles = st.tuples(
    st.lists(rule_inputs(), max_size=6),
    st.lists(rule_inputs(), max_size=6),
    st.sampled_from(["merge", "replace"]),
    st.one_of(st.none(), st.sampled_from(INVALID_RULES)),
    st.booleans(),
)


def stored_content(client) -> dict[int, tuple]:
    response = client.get(API, headers=ADMIN)
    assert response.status_code == 200
    keys = ("scope", "scopeObjectId", "fieldName", "fieldType", "dicomTag", "schemaElement", "conflictPolicy")
    return {rule["id"]: tuple(rule[key] for key in keys) for rule in response.get_json()}


def history_total(client) -> int:
    response = client.get(f"{API}/history", query_string={"pageSize": 1}, headers=ADMIN)
    return int(response.headers["X-Total-Count"])


def unique_by_keys(rules: list[tuple[dict, tuple]]) -> list[dict]:
    """Keep the rules that collide with no earlier one on either unique key."""
    fields, tags, kept = set(), set(), []
    for body, canonical in rules:
        scope, project, field_name, _type, tag, schema_element, _policy = canonical
        place = (schema_element, scope, project)
        if place + (field_name,) in fields or place + (tag,) in tags:
            continue
        fields.add(place + (field_name,))
        tags.add(place + (tag,))
        kept.append(body)
    return kept


def seed(client, bodies: list[dict]) -> None:
    """Replace the stored rules with ``bodies``, emptying the store first."""
    for bundle in ([], bodies):
        response = client.post(f"{API}/import", query_string={"mode": "replace"}, json=bundle, headers=ADMIN)
        assert response.status_code == 200, response.get_json()


@pytest.fixture
def client(db_url):
    with tempfile.TemporaryDirectory(prefix="xdm-properties-") as folder:
        app = create_test_app(folder, db_url=db_url)
        yield app.test_client()
        app.extensions["dicom_mappings"].close()


def test_import_is_all_or_nothing(client):
    outcomes = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(bundles)
    def check(drawn):
        initial, bundle, mode, invalid, dry_run = drawn
        seed(client, unique_by_keys(initial))
        before = stored_content(client)
        history_before = history_total(client)

        bodies = [body for body, _ in bundle]
        if invalid is not None:
            bodies.append(invalid)
        response = client.post(f"{API}/import", query_string={"mode": mode, "dryRun": str(dry_run).lower()},
                               json=bodies, headers=ADMIN)
        after = stored_content(client)

        assert response.status_code in (200, 400, 409), response.get_json()
        outcomes["dry run" if dry_run and response.status_code == 200 else response.status_code] += 1
        if response.status_code != 200 or dry_run:
            assert after == before
            assert history_total(client) == history_before
            return

        assert invalid is None
        expected = {canonical for _, canonical in bundle}
        if mode == "replace":
            assert set(after.values()) == expected
        else:
            assert expected <= set(after.values())
            untouched = set(before) - {entry["id"] for entry in response.get_json()["update"]}
            assert all(after[rule_id] == before[rule_id] for rule_id in untouched)
        assert len(set(after.values())) == len(after)

        summary = response.get_json()["summary"]
        changes = summary["create"] + summary["update"] + summary["delete"]
        assert history_total(client) == history_before + changes

    check()
    # The drawn bundles reach both branches: applied and rejected.
    assert outcomes[200] > 0
    assert outcomes[400] > 0
    print(f"\nimport outcomes over {sum(outcomes.values())} bundles: {dict(outcomes)}")


def test_dry_run_predicts_import(client):
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(bundles)
    def check(drawn):
        initial, bundle, mode, _invalid, _dry_run = drawn
        seed(client, unique_by_keys(initial))
        bodies = [body for body, _ in bundle]

        planned = client.post(f"{API}/import", query_string={"mode": mode, "dryRun": "true"},
                              json=bodies, headers=ADMIN)
        applied = client.post(f"{API}/import", query_string={"mode": mode}, json=bodies, headers=ADMIN)

        assert planned.status_code == applied.status_code
        if applied.status_code == 200:
            assert planned.get_json()["summary"] == applied.get_json()["summary"]
            assert planned.get_json()["unchanged"] == applied.get_json()["unchanged"]

    check()
