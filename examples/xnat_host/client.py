"""A minimal HTTP client for the reference host, on the standard library only.

The demo and the end-to-end tests use it to talk to a running host with
HTTP Basic credentials, as XNAT scripts do.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class HostClient:
    """Send requests to ``base_url`` as one user; every method returns a :class:`Response`.

    Error statuses are returned, not raised, so callers can check them.
    """

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 60.0):
        self.base_url = base_url.rstrip("/")
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._authorization = f"Basic {token}"
        self.timeout = timeout

    def request(self, method: str, path: str, *, body: bytes | None = None,
                json_body: Any = None, content_type: str | None = None) -> Response:
        headers = {"Authorization": self._authorization, "Accept": "application/json"}
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type

        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return Response(reply.status, dict(reply.headers), reply.read())
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, dict(error.headers), error.read())

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def put_json(self, path: str, payload: Any) -> Response:
        return self.request("PUT", path, json_body=payload)

    def import_zip(self, project: str, zip_bytes: bytes, **params: str) -> Response:
        """POST a zip to /data/services/import; ``params`` adds SUBJECT_ID or EXPT_LABEL."""
        query = urllib.parse.urlencode({"PROJECT_ID": project, **params})
        return self.request("POST", f"/data/services/import?{query}", body=zip_bytes,
                            content_type="application/zip")
