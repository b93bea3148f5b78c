"""RuleStore on SQLite and PostgreSQL: CRUD, uniqueness, versions, history and import."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from xnat_dicom_mappings.rules import PROJECT, SITE, Rule
from xnat_dicom_mappings.storage import (
    BundleError,
    RuleConflict,
    RuleFilter,
    RuleNotFound,
    RuleStore,
    StaleRule,
    create_engine,
)


@pytest.fixture
def store(db_url):
    engine = create_engine(db_url)
    store = RuleStore(engine)
    store.upgrade()
    yield store
    engine.dispose()


def site_rule(**changes) -> Rule:
    values = dict(scope=SITE, field_name="weight", field_type="float", dicom_tag="0x00101030",
                  schema_element="xnat:mrSessionData")
    values.update(changes)
    return Rule(**values)


def project_rule(project="ProjectA", **changes) -> Rule:
    return site_rule(scope=PROJECT, scope_object_id=project, **changes)


def test_upgrade_creates_prefixed_tables(store):
    names = set(sa.inspect(store.engine).get_table_names())

    assert {"xdm_rule", "xdm_rule_history", "xdm_alembic_version"} <= names
    assert store.current_revision() == store.head_revision()


def test_upgrade_twice_is_harmless(store):
    store.upgrade()

    assert store.current_revision() == store.head_revision()


def test_downgrade_to_base_drops_tables(store):
    store.downgrade("base")

    names = set(sa.inspect(store.engine).get_table_names())
    assert "xdm_rule" not in names
    assert store.current_revision() is None


def test_create_returns_stored_rule(store):
    stored = store.create(site_rule(), "admin")

    assert stored.id > 0
    assert stored.version == 1
    assert stored.created_by == "admin"
    assert stored.rule.scope_object_id is None
    assert store.get(stored.id) == stored


def test_create_ignores_given_id(store):
    stored = store.create(site_rule(id=999), "admin")

    assert stored.id != 999


def test_duplicate_site_tag_conflicts(store):
    first = store.create(site_rule(), "admin")

    with pytest.raises(RuleConflict, match=f"rule {first.id}") as caught:
        store.create(site_rule(field_name="other"), "admin")

    assert caught.value.existing_id == first.id
    assert caught.value.key == "dicomTag"


def test_duplicate_site_field_conflicts(store):
    first = store.create(site_rule(), "admin")

    with pytest.raises(RuleConflict) as caught:
        store.create(site_rule(dicom_tag="0x00101020"), "admin")

    assert caught.value.existing_id == first.id
    assert caught.value.key == "fieldName"


def test_unique_constraint_holds_for_site_rules(store):
    # Bypasses the store's own check: the database itself rejects the duplicate.
    store.create(site_rule(), "admin")
    row = {
        "scope": SITE, "project": "", "field_name": "weight", "field_type": "float",
        "dicom_tag": "0x00101030", "schema_element": "xnat:mrSessionData", "conflict_policy": "unique",
        "version": 1, "created_at": sa.func.now(), "created_by": "x", "updated_at": sa.func.now(), "updated_by": "x",
    }
    from xnat_dicom_mappings.models import rule_table

    with pytest.raises(sa.exc.IntegrityError):
        with store.engine.begin() as connection:
            connection.execute(rule_table.insert().values(**row))


def test_same_key_in_other_scope_is_allowed(store):
    store.create(site_rule(), "admin")
    store.create(project_rule("ProjectA"), "admin")
    store.create(project_rule("ProjectB"), "admin")
    store.create(site_rule(schema_element="xnat:ctSessionData"), "admin")

    stored, total = store.list()
    assert total == 4


def test_get_unknown_raises_not_found(store):
    with pytest.raises(RuleNotFound, match="mapping rule 42 does not exist"):
        store.get(42)


def test_replace_raises_version(store):
    stored = store.create(site_rule(), "admin")

    replaced = store.replace(stored.id, site_rule(field_type="string"), "other")

    assert replaced.version == 2
    assert replaced.rule.field_type == "string"
    assert replaced.updated_by == "other"
    assert replaced.created_by == "admin"


def test_replace_with_stale_version_raises(store):
    stored = store.create(site_rule(), "admin")
    store.replace(stored.id, site_rule(field_type="string"), "admin", expected_version=1)

    with pytest.raises(StaleRule) as caught:
        store.replace(stored.id, site_rule(field_type="integer"), "admin", expected_version=1)

    assert caught.value.current_version == 2
    assert store.get(stored.id).rule.field_type == "string"


def test_replace_unknown_raises_not_found(store):
    with pytest.raises(RuleNotFound):
        store.replace(7, site_rule(), "admin")


def test_replace_into_conflict_raises(store):
    first = store.create(site_rule(), "admin")
    second = store.create(site_rule(field_name="height", dicom_tag="0x00101020"), "admin")

    with pytest.raises(RuleConflict) as caught:
        store.replace(second.id, site_rule(field_name="weight", dicom_tag="0x00101020"), "admin")

    assert caught.value.existing_id == first.id


def test_replace_keeping_own_keys_is_no_conflict(store):
    stored = store.create(site_rule(), "admin")

    replaced = store.replace(stored.id, site_rule(conflict_policy="first"), "admin")

    assert replaced.rule.conflict_policy == "first"


def test_delete_returns_rule_and_keeps_history(store):
    stored = store.create(site_rule(), "admin")

    deleted = store.delete(stored.id, "remover")

    assert deleted == stored
    with pytest.raises(RuleNotFound):
        store.get(stored.id)
    entries, total = store.history(stored.id)
    assert total == 2
    assert [entry.action for entry in entries] == ["delete", "create"]
    assert entries[0].user == "remover"
    assert entries[0].before["fieldName"] == "weight"
    assert entries[0].after is None


def test_deleted_id_is_never_reused(store):
    first = store.create(site_rule(), "admin")
    store.delete(first.id, "admin")

    second = store.create(site_rule(field_name="spacing", dicom_tag="0x00280030"), "admin")

    assert second.id > first.id
    entries, total = store.history(second.id)
    assert total == 1
    assert entries[0].action == "create"


def test_delete_unknown_raises_not_found(store):
    with pytest.raises(RuleNotFound):
        store.delete(5, "admin")


def test_history_records_before_and_after(store):
    stored = store.create(site_rule(), "admin")
    store.replace(stored.id, site_rule(field_type="string"), "editor")

    entries, total = store.history(stored.id)

    assert total == 2
    update = entries[0]
    assert update.action == "update"
    assert update.user == "editor"
    assert update.before["fieldType"] == "float"
    assert update.after["fieldType"] == "string"
    assert update.after["version"] == 2
    assert update.timestamp.tzinfo is not None


def test_history_of_all_rules_is_paged(store):
    for index in range(5):
        store.create(site_rule(field_name=f"f{index}", dicom_tag=f"0x0010102{index}"), "admin")

    entries, total = store.history(offset=1, limit=2)

    assert total == 5
    assert len(entries) == 2
    assert entries[0].after["fieldName"] == "f3"


def test_list_filters(store):
    store.create(site_rule(), "admin")
    store.create(project_rule("ProjectA", field_name="height", dicom_tag="0x00101020"), "admin")
    store.create(site_rule(schema_element="xnat:ctScanData"), "admin")

    assert store.list(RuleFilter(scope=PROJECT))[1] == 1
    assert store.list(RuleFilter(project="ProjectA"))[1] == 1
    assert store.list(RuleFilter(schema_element="xnat:ctScanData"))[1] == 1
    assert store.list(RuleFilter(field_name="weight"))[1] == 2
    assert store.list(RuleFilter(dicom_tag="0x00101020"))[1] == 1


def test_list_pages_keep_total(store):
    for index in range(5):
        store.create(site_rule(field_name=f"f{index}", dicom_tag=f"0x0010102{index}"), "admin")

    page, total = store.list(offset=2, limit=2)

    assert total == 5
    assert [stored.rule.field_name for stored in page] == ["f2", "f3"]


def test_all_rules_returns_plain_rules(store):
    store.create(site_rule(), "admin")
    store.create(project_rule(field_name="height", dicom_tag="0x00101020"), "admin")

    rules = store.all_rules()

    assert [rule.scope_object_id for rule in rules] == [None, "ProjectA"]


def test_listener_called_after_commit(store):
    calls = []
    store.add_listener(lambda action, ids: calls.append((action, list(ids))))

    stored = store.create(site_rule(), "admin")
    store.replace(stored.id, site_rule(field_type="string"), "admin")
    store.delete(stored.id, "admin")

    assert calls == [("create", [stored.id]), ("update", [stored.id]), ("delete", [stored.id])]


def test_failed_write_calls_no_listener(store):
    store.create(site_rule(), "admin")
    calls = []
    store.add_listener(lambda action, ids: calls.append(action))

    with pytest.raises(RuleConflict):
        store.create(site_rule(), "admin")

    assert calls == []


def test_import_plan_changes_nothing(store):
    stored = store.create(site_rule(), "admin")

    plan = store.plan_import([site_rule(field_type="string"), project_rule()], "merge")

    assert [s.id for s, _ in plan.update] == [stored.id]
    assert len(plan.create) == 1
    assert store.get(stored.id).rule.field_type == "float"
    assert store.list()[1] == 1


def test_import_merge_creates_and_updates(store):
    stored = store.create(site_rule(), "admin")
    keep = store.create(site_rule(field_name="keep", dicom_tag="0x00100040"), "admin")

    plan = store.import_rules([site_rule(field_type="string"), project_rule()], "importer", "merge")

    assert len(plan.created) == 1
    assert store.get(stored.id).rule.field_type == "string"
    assert store.get(keep.id).version == 1
    assert store.list()[1] == 3


def test_import_replace_deletes_missing(store):
    store.create(site_rule(), "admin")
    missing_rule = store.create(site_rule(field_name="missing", dicom_tag="0x00100040"), "admin")

    plan = store.import_rules([site_rule()], "importer", "replace")

    assert [s.id for s in plan.delete] == [missing_rule.id]
    assert len(plan.unchanged) == 1
    with pytest.raises(RuleNotFound):
        store.get(missing_rule.id)


def test_import_matches_by_tag(store):
    stored = store.create(site_rule(), "admin")

    plan = store.import_rules([site_rule(field_name="weight_kg")], "importer", "merge")

    assert [s.id for s, _ in plan.update] == [stored.id]
    assert store.get(stored.id).rule.field_name == "weight_kg"


def test_import_duplicates_in_bundle_raise(store):
    with pytest.raises(BundleError) as caught:
        store.import_rules([site_rule(), site_rule(field_name="other")], "importer")

    assert "1" in caught.value.errors
    assert store.list()[1] == 0


def test_import_matching_two_stored_rules_raises(store):
    store.create(site_rule(), "admin")
    store.create(site_rule(field_name="height", dicom_tag="0x00101020"), "admin")

    with pytest.raises(BundleError, match="contradicts") as caught:
        store.import_rules([site_rule(field_name="height")], "importer")

    assert len(caught.value.existing_ids) == 2


def test_import_swap_of_tags_changes_nothing(store):
    first = store.create(site_rule(), "admin")
    second = store.create(site_rule(field_name="height", dicom_tag="0x00101020"), "admin")

    bundle = [
        project_rule(),
        site_rule(field_name="weight", dicom_tag="0x00101020"),
        site_rule(field_name="height", dicom_tag="0x00101030"),
    ]
    with pytest.raises(BundleError):
        store.import_rules(bundle, "importer")

    assert store.list()[1] == 2
    assert store.get(first.id).version == 1
    assert store.get(second.id).version == 1


def test_import_failing_midway_is_rolled_back(store):
    first = store.create(site_rule(), "admin")
    statements = []

    # The last create's history row fails after the update and the first
    # create have run inside the import's transaction.
    def fail_on_last_history_row(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO xdm_rule_history"):
            statements.append(statement)
            if len(statements) == 3:
                raise RuntimeError("simulated failure in the middle of an import")

    sa.event.listen(store.engine, "before_cursor_execute", fail_on_last_history_row)
    try:
        with pytest.raises(RuntimeError):
            store.import_rules(
                [site_rule(field_type="string"), project_rule(), project_rule("ProjectB")], "importer"
            )
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", fail_on_last_history_row)

    assert store.list()[1] == 1
    assert store.get(first.id).version == 1
    assert store.history()[1] == 1
