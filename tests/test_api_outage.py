"""A PostgreSQL outage: 503 with a JSON body, nothing half-written, recovery without restart.

The engine reaches PostgreSQL through a TCP proxy in the test, so stopping the
proxy cuts the database off the way a failed server or network does, while the
server itself keeps serving the other tests.
"""

from __future__ import annotations

import socket
import threading

import pytest
import sqlalchemy as sa

from apps import ADMIN, API, create_test_app, rule_json

pytestmark = pytest.mark.postgres


class TcpProxy:
    """Forward 127.0.0.1:<port> to a target; stop() drops every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener is not None:
            # On Linux close() alone does not wake a thread blocked in accept(),
            # and the socket keeps listening; shutdown() does wake it.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def proxy(pg_url):
    url = sa.engine.make_url(pg_url)
    proxy = TcpProxy(url.host, url.port or 5432)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def app(tmp_path, pg_url, proxy):
    url = sa.engine.make_url(pg_url).set(port=proxy.port)
    app = create_test_app(tmp_path, db_url=url.render_as_string(hide_password=False),
                          DICOM_MAPPINGS_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 3}})
    yield app
    app.extensions["dicom_mappings"].close()


def test_outage_gives_503_then_recovers(app, proxy):
    client = app.test_client()
    created = client.post(API, json=rule_json(), headers=ADMIN).get_json()

    proxy.stop()
    listed = client.get(API, headers=ADMIN)
    written = client.post(API, json=rule_json(fieldName="height", dicomTag="PatientSize"), headers=ADMIN)
    proxy.start()
    recovered = client.get(API, headers=ADMIN)

    assert listed.status_code == 503
    assert listed.get_json()["status"] == 503
    assert listed.headers["Retry-After"]
    assert "Traceback" not in listed.get_data(as_text=True)
    assert written.status_code == 503
    assert recovered.status_code == 200
    assert [rule["id"] for rule in recovered.get_json()] == [created["id"]]


def test_outage_mid_write_leaves_nothing(app, proxy):
    client = app.test_client()
    client.get(API, headers=ADMIN)
    engine = app.extensions["dicom_mappings"].engine

    # Cut the database off after the rule row is inserted and before its
    # history row is: the transaction must leave neither behind.
    def cut_before_history(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO xdm_rule_history"):
            proxy.stop()

    sa.event.listen(engine, "before_cursor_execute", cut_before_history)
    try:
        response = client.post(API, json=rule_json(), headers=ADMIN)
    finally:
        sa.event.remove(engine, "before_cursor_execute", cut_before_history)
    proxy.start()

    assert response.status_code == 503
    assert client.get(API, headers=ADMIN).get_json() == []
    assert client.get(API + "/history", headers=ADMIN).get_json() == []
    assert client.post(API, json=rule_json(), headers=ADMIN).status_code == 201


def test_outage_before_first_use_recovers(app, proxy):
    client = app.test_client()

    proxy.stop()
    first = client.get(API, headers=ADMIN)
    proxy.start()
    second = client.get(API, headers=ADMIN)

    assert first.status_code == 503
    assert second.status_code == 200


def test_outage_in_archive_hook_raises_store_unavailable(app, proxy):
    from xnat_dicom_mappings.errors import StoreUnavailable

    ext = app.extensions["dicom_mappings"]
    app.test_client().get(API, headers=ADMIN)

    proxy.stop()
    with pytest.raises(StoreUnavailable):
        ext.rules()
    proxy.start()

    assert ext.rules() == []
