"""The extension: configuration, default storage, migrations, CLI, blueprints and the archive hook."""

from __future__ import annotations

import ast
import logging
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from xnat_dicom_mappings import DicomMappings, config, signals
from xnat_dicom_mappings.commands import dicom_mappings
from xnat_dicom_mappings.errors import StoreUnavailable
from xnat_dicom_mappings.rules import Rule

from apps import ADMIN, API, create_test_app, rule_json
from conftest import testdata as dicom_file


def count_statements(engine):
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    return statements


# -- configuration ---------------------------------------------------------------


def test_every_config_key_is_documented():
    source = Path(config.__file__).read_text()
    lines = source.splitlines()
    keys = [node for node in ast.parse(source).body
            if isinstance(node, (ast.Assign, ast.AnnAssign))
            and getattr(getattr(node, "target", None) or node.targets[0], "id", "").startswith("DICOM_MAPPINGS_")]

    assert len(keys) == len(config.defaults())
    for node in keys:
        assert lines[node.lineno - 2].startswith("#:"), f"line {node.lineno} has no #: comment"


def test_extension_in_app_extensions(tmp_path):
    app = Flask(__name__, instance_path=str(tmp_path))
    ext = DicomMappings(app)

    assert app.extensions["dicom_mappings"] is ext
    assert app.config["DICOM_MAPPINGS_URL_PREFIX"] == "/xapi/dicom_mappings"


def test_init_app_later(tmp_path):
    ext = DicomMappings()
    app = Flask(__name__, instance_path=str(tmp_path))

    ext.init_app(app)

    assert ext.app is app


def test_one_instance_per_app(tmp_path):
    ext = DicomMappings(Flask(__name__, instance_path=str(tmp_path)))

    with pytest.raises(RuntimeError, match="one per app"):
        ext.init_app(Flask(__name__, instance_path=str(tmp_path)))


def test_options_win_over_app_config(tmp_path):
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config["DICOM_MAPPINGS_MAX_PAGE_SIZE"] = 10
    app.config["DICOM_MAPPINGS_CSRF_HEADER"] = "X-From-Config"

    ext = DicomMappings(app, max_page_size=20)

    assert ext.settings["DICOM_MAPPINGS_MAX_PAGE_SIZE"] == 20
    assert ext.settings["DICOM_MAPPINGS_CSRF_HEADER"] == "X-From-Config"


def test_unknown_option_raises():
    with pytest.raises(TypeError, match="unknown DicomMappings option 'max_pagesize'"):
        DicomMappings(max_pagesize=3)


def test_url_prefix_setting(tmp_path):
    app = create_test_app(tmp_path, DICOM_MAPPINGS_URL_PREFIX="/api/mappings")

    response = app.test_client().get("/api/mappings", headers=ADMIN)

    assert response.status_code == 200


# -- storage ---------------------------------------------------------------------


def test_default_sqlite_created_on_first_use(tmp_path):
    instance = tmp_path / "instance"
    app = create_test_app(instance)
    database = instance / config.DICOM_MAPPINGS_SQLITE_FILENAME

    assert not database.exists()
    app.test_client().post(API, json=rule_json(), headers=ADMIN)
    assert database.exists()
    app.extensions["dicom_mappings"].close()


def test_engine_option(tmp_path, db_url):
    engine = sa.create_engine(db_url)
    app = create_test_app(tmp_path, engine=engine)

    response = app.test_client().post(API, json=rule_json(), headers=ADMIN)

    assert response.status_code == 201
    assert "xdm_rule" in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_without_auto_migrate_answers_503_until_upgrade(tmp_path, db_url):
    app = create_test_app(tmp_path, db_url=db_url, DICOM_MAPPINGS_AUTO_MIGRATE=False)
    client = app.test_client()

    before = client.get(API, headers=ADMIN)
    result = app.test_cli_runner().invoke(dicom_mappings, ["db", "upgrade"])
    after = client.get(API, headers=ADMIN)

    assert before.status_code == 503
    assert result.exit_code == 0, result.output
    assert "revision 0001" in result.output
    assert after.status_code == 200
    app.extensions["dicom_mappings"].close()


def test_503_names_the_upgrade_command(tmp_path, db_url, caplog):
    app = create_test_app(tmp_path, db_url=db_url, DICOM_MAPPINGS_AUTO_MIGRATE=False)

    with caplog.at_level(logging.WARNING, logger="xnat_dicom_mappings"):
        app.test_client().get(API, headers=ADMIN)

    assert "flask dicom-mappings db upgrade" in caplog.text
    app.extensions["dicom_mappings"].close()


def test_cli_current(tmp_path, db_url):
    app = create_test_app(tmp_path, db_url=db_url)
    runner = app.test_cli_runner()

    empty = runner.invoke(dicom_mappings, ["db", "current"])
    runner.invoke(dicom_mappings, ["db", "upgrade"])
    current = runner.invoke(dicom_mappings, ["db", "current"])

    assert "no rule tables" in empty.output
    assert "0001 (head)" in current.output
    app.extensions["dicom_mappings"].close()


def test_cli_downgrade_to_base(tmp_path, db_url):
    app = create_test_app(tmp_path, db_url=db_url)
    runner = app.test_cli_runner()
    runner.invoke(dicom_mappings, ["db", "upgrade"])

    result = runner.invoke(dicom_mappings, ["db", "downgrade", "base"])

    assert result.exit_code == 0, result.output
    assert "xdm_rule" not in sa.inspect(app.extensions["dicom_mappings"].engine).get_table_names()
    app.extensions["dicom_mappings"].close()


def test_cli_without_extension():
    app = Flask(__name__)

    result = app.test_cli_runner().invoke(dicom_mappings, ["db", "current"])

    assert result.exit_code != 0
    assert "does not register the extension" in result.output


def test_alembic_version_table_is_own(tmp_path, db_url):
    app = create_test_app(tmp_path, db_url=db_url)
    app.test_cli_runner().invoke(dicom_mappings, ["db", "upgrade"])

    names = sa.inspect(app.extensions["dicom_mappings"].engine).get_table_names()

    assert "xdm_alembic_version" in names
    assert "alembic_version" not in names
    app.extensions["dicom_mappings"].close()


# -- blueprints ------------------------------------------------------------------


def test_admin_page_registered(tmp_path):
    app = create_test_app(tmp_path)

    rules = {rule.rule for rule in app.url_map.iter_rules()}

    assert "/admin/dicom-mappings/" in rules


def test_admin_page_can_be_disabled(tmp_path):
    app = create_test_app(tmp_path, DICOM_MAPPINGS_ADMIN_ENABLED=False)

    rules = {rule.rule for rule in app.url_map.iter_rules()}

    assert not any(rule.startswith("/admin/dicom-mappings") for rule in rules)


def test_api_can_be_disabled(tmp_path):
    app = create_test_app(tmp_path, DICOM_MAPPINGS_API_ENABLED=False)

    rules = {rule.rule for rule in app.url_map.iter_rules()}

    assert not any(rule.startswith(API) for rule in rules)


# -- the archive hook ------------------------------------------------------------


@pytest.fixture
def hook_app(tmp_path, db_url):
    app = create_test_app(tmp_path, db_url=db_url)
    client = app.test_client()
    client.post(API, json=rule_json(), headers=ADMIN)
    client.post(API, json=rule_json(schemaElement="xnat:mrScanData", fieldName="thickness",
                                    dicomTag="SliceThickness", scope="Project", scopeObjectId="ProjectA"), headers=ADMIN)
    yield app
    app.extensions["dicom_mappings"].close()


def mr_scans():
    from xnat_dicom_mappings.extractor import ScanInput

    return [ScanInput(id="1", xsi_type="xnat:mrScanData", files=[dicom_file("MR_small.dcm")])]


def extract(ext, project="ProjectA"):
    return ext.extract_session(project=project, session_type="xnat:mrSessionData", scans=mr_scans(), session_id="S1")


def test_extract_session_applies_rules(hook_app):
    result = extract(hook_app.extensions["dicom_mappings"])

    assert result.values == {"weight": 80.0}
    assert result.parameters == {"1": {"thickness": "0.8"}}


def test_extract_session_one_statement_cold_zero_warm(hook_app):
    ext = hook_app.extensions["dicom_mappings"]
    statements = count_statements(ext.engine)

    extract(ext)
    cold = len(statements)
    extract(ext)
    extract(ext, project="ProjectB")
    warm = len(statements) - cold

    assert cold == 1
    assert warm == 0


def test_rule_change_clears_cache(hook_app):
    ext = hook_app.extensions["dicom_mappings"]
    extract(ext)
    client = hook_app.test_client()

    client.post(API, json=rule_json(fieldName="patient_id", dicomTag="PatientID", fieldType="string"), headers=ADMIN)
    result = extract(ext)

    assert result.fields["patient_id"] == "4MR1"


def test_change_on_other_thread_clears_cache(hook_app):
    ext = hook_app.extensions["dicom_mappings"]
    extract(ext)
    rule_id = ext.store.list()[0][0].id

    worker = threading.Thread(target=ext.store.delete, args=(rule_id, "worker"))
    worker.start()
    worker.join()
    result = extract(ext)

    assert "weight" not in result.fields


def test_import_clears_cache(hook_app):
    ext = hook_app.extensions["dicom_mappings"]
    extract(ext)

    hook_app.test_client().post(API + "/import", query_string={"mode": "replace"}, json=[], headers=ADMIN)

    assert ext.rules() == []


def test_cache_expires_after_max_age(hook_app):
    ext = hook_app.extensions["dicom_mappings"]
    ext._cache.max_age = 0
    statements = count_statements(ext.engine)

    ext.rules()
    ext.rules()

    assert len(statements) == 2


def test_session_extracted_signal(hook_app):
    received = []

    def receiver(sender, **kwargs):
        received.append((sender, kwargs))

    signals.session_extracted.connect(receiver, hook_app)
    try:
        result = extract(hook_app.extensions["dicom_mappings"])
    finally:
        signals.session_extracted.disconnect(receiver, hook_app)

    assert received[0][0] is hook_app
    assert received[0][1]["result"] is result
    assert received[0][1]["session_id"] == "S1"


def test_failing_receiver_keeps_result(hook_app, caplog):
    received = []

    def broken(sender, **kwargs):
        raise RuntimeError("receiver broke")

    def working(sender, **kwargs):
        received.append(kwargs["result"])

    signals.session_extracted.connect(broken, hook_app)
    signals.session_extracted.connect(working, hook_app)
    try:
        with caplog.at_level(logging.ERROR, logger="xnat_dicom_mappings"):
            result = extract(hook_app.extensions["dicom_mappings"])
    finally:
        signals.session_extracted.disconnect(broken, hook_app)
        signals.session_extracted.disconnect(working, hook_app)

    assert result.fields
    assert received == [result]
    assert "receiver broke" in caplog.text


def test_rules_changed_signal(hook_app):
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    signals.rules_changed.connect(receiver, hook_app)
    try:
        hook_app.test_client().post(API, json=rule_json(fieldName="pid", dicomTag="PatientID"), headers=ADMIN)
    finally:
        signals.rules_changed.disconnect(receiver, hook_app)

    assert received[0]["action"] == "create"


def test_rules_are_plain_rules(hook_app):
    rules = hook_app.extensions["dicom_mappings"].rules()

    assert all(isinstance(rule, Rule) for rule in rules)
    assert len(rules) == 2


def test_store_unavailable_is_retried(tmp_path):
    app = create_test_app(tmp_path, db_url="postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1")
    ext = app.extensions["dicom_mappings"]

    with pytest.raises(StoreUnavailable):
        ext.rules()
    with pytest.raises(StoreUnavailable):
        ext.rules()
    ext.close()


def test_cache_keeps_expired_rules_when_store_down():
    from xnat_dicom_mappings.errors import StoreUnavailable
    from xnat_dicom_mappings.extension import RuleCache
    from xnat_dicom_mappings.rules import Rule

    rule = Rule(scope="Site", field_name="weight", field_type="float",
                dicom_tag="0x00101030", schema_element="xnat:mrSessionData", id=1)
    cache = RuleCache(max_age=0.0)
    assert cache.get(lambda: [rule]) == [rule]

    def unavailable():
        raise StoreUnavailable("database down")

    assert cache.get(unavailable) == [rule]


def test_cache_raises_when_store_down_and_empty():
    from xnat_dicom_mappings.errors import StoreUnavailable
    from xnat_dicom_mappings.extension import RuleCache

    def unavailable():
        raise StoreUnavailable("database down")

    with pytest.raises(StoreUnavailable, match="database down"):
        RuleCache().get(unavailable)
