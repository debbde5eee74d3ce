"""Remote mode: predict through a running service's KServe V1 endpoint.

The version is pinned at start (the one the service serves then, or ``--version``), so a
rollout during the run cannot mix versions in one output. The model's Signature comes from
the V2 model metadata, so rows are screened locally with the service's own checks and only
good rows are sent. One ``requests.Session`` is shared by the worker threads (its
connection pool holds one connection per worker). Connection errors, timeouts and 429, 502,
503 and 504 answers are retried with exponential backoff; a 413 or a "too many instances"
400 halves the request and remembers the smaller size.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import orjson
import requests
from requests.adapters import HTTPAdapter

from model.interface import ModelInterface, Prediction

from ..core.auth import client_headers
from ..core.signature import interface_from_metadata
from .errors import ServiceFailure, UsageError

RETRY_STATUS = frozenset({429, 502, 503, 504})
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


class RemoteModel:
    """A model version served at ``url``; ``predict`` posts V1 requests."""

    def __init__(self, url: str, name: str, version: str | None, *, timeout: float,
                 retries: int, workers: int, max_rows: int, backoff: float = 0.5,
                 max_backoff: float = 8.0) -> None:
        self.url = url.rstrip("/")
        self.name = name
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_rows = max_rows
        self.session = requests.Session()
        self.session.headers.update(client_headers())  # SERVICE_AUTH_TOKEN[_FILE], if set
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, workers))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        where = f"/versions/{version}" if version is not None else ""
        status = self._get(f"/v1/models/{name}{where}", "the model status")
        try:
            self.version = int(status["version"])
        except (KeyError, TypeError, ValueError):
            raise ServiceFailure(f"{self.url}/v1/models/{name}{where} did not name the version "
                                 f"it serves: {orjson.dumps(status).decode()[:200]}") from None
        meta = self._get(f"/v2/models/{name}/versions/{self.version}", "the model metadata")
        try:
            self.interface: ModelInterface = interface_from_metadata(meta)
        except ValueError as exc:
            raise ServiceFailure(f"{self.url}: the metadata of {name} version {self.version} "
                                 f"does not describe its inputs ({exc}); is it a "
                                 "numpy-model-server?") from None
        self.predict_url = f"{self.url}/v1/models/{name}/versions/{self.version}:predict"

    # -- HTTP ----------------------------------------------------------------------------
    def _request(self, method: str, url: str, body: bytes | None = None) -> requests.Response:
        """The answer, after retrying connection errors, timeouts and RETRY_STATUS."""
        headers = {"Content-Type": "application/json"} if body is not None else None
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = self.session.request(method, url, data=body, headers=headers,
                                            timeout=(min(self.timeout, 10.0), self.timeout))
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    raise ServiceFailure(f"{url}: no answer after {self.retries + 1} attempts "
                                         f"({type(exc).__name__}: {exc})") from None
                self._sleep(attempt, None)
                continue
            if resp.status_code in RETRY_STATUS and not last:
                self._sleep(attempt, resp.headers.get("Retry-After"))
                continue
            return resp
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.max_backoff, self.backoff * 2 ** attempt)
        if retry_after is not None and retry_after.isdigit():
            delay = min(self.max_backoff, float(retry_after))
        time.sleep(delay * random.uniform(0.8, 1.0))

    def _get(self, path: str, what: str) -> dict[str, Any]:
        resp = self._request("GET", self.url + path)
        if resp.status_code == 404:
            raise UsageError(f"{self.url}: {_error(resp)['error']}")
        if resp.status_code != 200:
            raise ServiceFailure(f"{self.url}{path}: cannot read {what}: HTTP "
                                 f"{resp.status_code}: {_error(resp)['error']}")
        body = _json(resp)
        if not isinstance(body, dict):
            raise ServiceFailure(f"{self.url}{path}: {what} is not a JSON object")
        return body

    # -- prediction ----------------------------------------------------------------------
    def predict(self, x: np.ndarray) -> tuple[Prediction, dict[int, Any]]:
        """Outputs for the rows of x (float32, screened) the service accepted, and
        {index: details} of those it refused."""
        n = len(x)
        classification = self.interface.task == "classification"
        classes = len(self.interface.labels or ())
        out = np.empty((n, classes) if classification else n, np.float32)
        labels = np.empty(n, np.int64)
        refused: dict[int, Any] = {}
        flat = x.reshape(n, -1)
        # non-negative whole numbers (pixels) go as integers: fewer bytes, the same float32
        # values (-0.0 would not survive, hence signbit)
        if not np.signbit(flat).any() and flat.max() < 2 ** 24 and \
                np.array_equal(flat, np.rint(flat)):
            flat = flat.astype(np.int32)
        todo = [np.arange(start, min(start + self.max_rows, n))
                for start in range(0, n, self.max_rows)]
        while todo:
            index = todo.pop(0)
            todo[:0] = self._post(flat, index, out, labels, refused)
        keep = np.ones(n, bool)
        keep[list(refused)] = False
        arrays = (out[keep], labels[keep]) if classification else (out[keep],)
        return Prediction(arrays), refused

    def _post(self, flat: np.ndarray, index: np.ndarray, out: np.ndarray, labels: np.ndarray,
              refused: dict[int, Any]) -> list[np.ndarray]:
        """Send rows ``index`` once; fill ``out``/``labels`` or ``refused``. Returns the
        parts still to send (halves after a size refusal, the rest after refused rows)."""
        body = orjson.dumps({"instances": flat[index]}, option=_NUMPY)
        resp = self._request("POST", self.predict_url, body)
        if resp.status_code == 200:
            self._fill(resp, index, out, labels)
            return []
        error = _error(resp)
        if _too_large(resp.status_code, error):
            if len(index) == 1:
                refused[int(index[0])] = [f"the service refused the instance: {error['error']}"]
                return []
            half = (len(index) + 1) // 2
            self.max_rows = min(self.max_rows, half)
            return [index[:half], index[half:]]
        bad = _instance_details(error) if resp.status_code == 400 else {}
        if bad and all(0 <= i < len(index) for i in bad):
            for i, details in bad.items():
                refused[int(index[i])] = details
            return [np.delete(index, sorted(bad))] if len(bad) < len(index) else []
        raise ServiceFailure(f"{self.predict_url}: HTTP {resp.status_code}: {error['error']}")

    def _fill(self, resp: requests.Response, index: np.ndarray, out: np.ndarray,
              labels: np.ndarray) -> None:
        body = _json(resp)
        predictions = body.get("predictions") if isinstance(body, dict) else None
        if not isinstance(predictions, list) or len(predictions) != len(index) or \
                str(body.get("model_version")) != str(self.version):
            raise ServiceFailure(f"{self.predict_url}: unexpected answer for {len(index)} "
                                 f"instances: {resp.text[:200]}")
        try:
            if out.ndim == 2:
                probs_name, label_name = self.interface.output_names
                out[index] = np.asarray([p[probs_name] for p in predictions], np.float32)
                labels[index] = [p[label_name] for p in predictions]
            else:
                out[index] = np.asarray(predictions, np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceFailure(f"{self.predict_url}: unexpected predictions ({exc})") from None


def _json(resp: requests.Response) -> Any:
    try:
        return orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        raise ServiceFailure(f"{resp.url}: HTTP {resp.status_code} with a body that is not "
                             f"JSON: {resp.text[:200]!r}") from None


def _error(resp: requests.Response) -> dict[str, Any]:
    """The service's {"error", "details"} answer (or a stand-in for a foreign one)."""
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return {"error": body["error"], "details": body.get("details") or {}}
    return {"error": f"HTTP {resp.status_code} {resp.reason}: {resp.text[:200]!r}",
            "details": {}}


def _too_large(status: int, error: dict[str, Any]) -> bool:
    """413, or a 400 about the instance count (SERVICE_MAX_INSTANCES)."""
    if status == 413:
        return True
    messages = error["details"].get("instances") if isinstance(error["details"], dict) else None
    return status == 400 and isinstance(messages, list) and any(
        isinstance(m, str) and m.startswith("Too many instances") for m in messages)


def _instance_details(error: dict[str, Any]) -> dict[int, Any]:
    """{index: details} of the instances a 400 names, if it names any."""
    details = error["details"]
    named = details.get("instances") if isinstance(details, dict) else None
    if not isinstance(named, dict):
        return {}
    try:
        return {int(k): v for k, v in named.items()}
    except ValueError:
        return {}
