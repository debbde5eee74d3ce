"""KServe V1 / TensorFlow Serving REST routes: decode ``instances``, ``DataPlane.predict``,
write ``predictions``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from flask import Blueprint, Response, request
from werkzeug.datastructures import MIMEAccept

from model.interface import ModelInterface, Prediction

from ..core import jsonio
from ..core.dataplane import DataPlane
from ..core.errors import InvalidRequest
from ..core.instances import instances_to_batch
from ..core.registry import ServedModel
from ..core.schemas import V1PredictRequest, load_envelope
from ..core.values import checked
from ..pictures import as_uint8, picture_images
from .body import read_body
from .pictures import b64_instances, is_picture_body, query_flag
from .routing import addressed

#: What ``GET /`` may answer, most preferred first when the client does not choose.
ROOT_TYPES = ("application/json", "text/html")


def json_response(obj: Any) -> Response:
    return Response(jsonio.dumps(obj), mimetype="application/json")


def model_status(model: ServedModel) -> dict[str, Any]:
    """``{"name", "ready", "version", "versions", "model_version_status"}`` of a model."""
    latest = model.latest
    out: dict[str, Any] = {"name": model.name, "ready": latest is not None}
    if latest is not None:
        out["version"] = str(latest.version)
    out["versions"] = [{"version": str(v), "ready": mv.ready,
                        **({} if mv.ready else {"reason": mv.error})}
                       for v, mv in model.versions.items()]
    out["model_version_status"] = [
        {"version": str(v), "state": "AVAILABLE" if mv.ready else "END",
         "status": {"error_code": "OK" if mv.ready else "UNAVAILABLE",
                    "error_message": mv.error or ""}}
        for v, mv in model.versions.items()]
    return out


def predictions(pred: Prediction, iface: ModelInterface) -> Any:
    """V1 ``predictions``: numbers (regression) or, for a classifier, one object per
    instance keyed by the interface's output names, label first."""
    if iface.task != "classification":
        return pred.values
    probs_name, label_name = iface.output_names
    probs = pred.probabilities
    return [{label_name: label, probs_name: probs[i]}
            for i, label in enumerate(pred.labels.tolist())]


def wants_page(accept: MIMEAccept) -> bool:
    """True if the client prefers a web page to JSON (a browser), by its Accept header.

    KServe's V1 liveness probe (``is_server_live``) and curl send ``*/*`` or nothing and
    get JSON; a browser's ``text/html, ..., */*;q=0.8`` asks for the page.
    """
    return accept.best_match(ROOT_TYPES, default=ROOT_TYPES[0]) == "text/html"


def with_images(preds: list[Any], images: np.ndarray) -> list[Any]:
    """Classifier predictions each with ``image``: the 28x28 uint8 pixels the model saw."""
    return [{**p, "image": img} for p, img in zip(preds, as_uint8(images), strict=True)]


def make_blueprint(dataplane: DataPlane,
                   page: Callable[[], Response] | None = None,
                   max_image_pixels: int = 16_000_000) -> Blueprint:
    """The V1 routes over ``dataplane``; ``page`` answers browsers at ``/`` when given;
    pictures above ``max_image_pixels`` are refused before decoding."""
    bp = Blueprint("v1", __name__)
    schema = V1PredictRequest(max_instances=dataplane.max_instances)

    @bp.get("/")
    def server_live() -> Response:
        """KServe V1 server liveness, as KServe's model server answers it; or the page."""
        if page is not None and wants_page(request.accept_mimetypes):
            return page()
        return json_response({"status": "alive"})

    @bp.get("/v1/models")
    def list_models() -> Response:
        return json_response({"models": [model_status(m) for m in dataplane.models()]})

    @bp.get("/v1/models/<model:name>")
    def status(name: str) -> Response:
        model = dataplane.model(name)
        dataplane.version(name)  # NotReady (503) when no version serves
        return json_response(model_status(model))

    @bp.get("/v1/models/<model:name>/versions/<version:version>")
    def version_status(name: str, version: str) -> Response:
        mv = dataplane.version(name, version)
        return json_response({"name": name, "ready": True, "version": str(mv.version)})

    @bp.post("/v1/models/<model:name>:predict")
    @bp.post("/v1/models/<model:name>/versions/<version:version>:predict")
    def predict(name: str, version: str | None = None) -> Response:
        """Instances as JSON (arrays, feature objects or ``{"b64": ...}`` pictures), or one
        picture as the raw body (``Content-Type: image/png``, ``image/jpeg``...)."""
        mv, record = addressed(dataplane, name, version)
        iface = mv.interface
        images = None
        if is_picture_body():
            body = read_body(picture_ok=True)
            want_image = query_flag("return_image")
            images = picture_images(iface, [(body, request.mimetype)],  # type: ignore[arg-type]
                                    [("body",)], max_image_pixels)
            record.instances = 1
        else:
            body = read_body()
            obj = jsonio.loads(body)
            req = load_envelope(schema, obj)
            instances = req["instances"]
            want_image = req.get("parameters", {}).get("return_image", False)
            record.instances = len(instances)
            texts = b64_instances(instances)
            if texts is not None:
                images = picture_images(iface, texts, [  # type: ignore[arg-type]
                    ("instances", str(i), "b64") for i in range(len(texts))], max_image_pixels)
        if want_image and images is None:
            raise InvalidRequest('return_image needs pictures: send instances {"b64": '
                                 '"<base64>"} or an image/* body', {"parameters": {
                                     "return_image": ["Only with picture instances."]}})
        if images is not None:
            x = checked(iface, images, ("instances",))  # type: ignore[arg-type]
        else:
            check = jsonio.may_hold_booleans(
                body, {k: v for k, v in obj.items() if k != "instances"})
            x = instances_to_batch(iface, instances, check)  # type: ignore[arg-type]
        preds = predictions(dataplane.predict(mv, x), iface)  # type: ignore[arg-type]
        if want_image and images is not None:
            preds = with_images(preds, images)
        return json_response({"predictions": preds, "model_version": record.version})

    return bp
