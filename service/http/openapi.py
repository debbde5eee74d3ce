"""The OpenAPI 3 document of the service, generated from the marshmallow schemas.

Built on request from the models loaded at that moment, so each model's instance and
tensor layout is described as it is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from model.interface import ModelInterface

from ..core import schemas
from ..core.registry import ServedModel
from ..core.signature import SERVER_VERSION, describe_instance, takes_pictures

_ERRORS = {
    "400": "Malformed JSON or invalid input (details point at the instance and field).",
    "404": "Unknown model, version or route.",
    "405": "Wrong method (see the Allow header).",
    "413": "Body larger than SERVICE_MAX_BODY_BYTES, or a picture of more than "
           "SERVICE_MAX_IMAGE_PIXELS pixels.",
    "415": "Body not sent as JSON.",
    "503": "Model or version not ready (its artifact failed to load; reason in details).",
}


def _instance_schema(sig: ModelInterface) -> dict[str, Any]:
    number = {"type": "number"}
    flat = {"type": "array", "items": number, "minItems": sig.input_size,
            "maxItems": sig.input_size}
    if sig.value_range is not None:
        number.update(minimum=sig.value_range[0], maximum=sig.value_range[1])
    if sig.features:
        return {"oneOf": [{"type": "object", "additionalProperties": False,
                           "required": list(sig.features),
                           "properties": {f: {"type": "number"} for f in sig.features}},
                          flat]}
    nested: dict[str, Any] = number
    for d in reversed(sig.input_shape):
        nested = {"type": "array", "items": nested, "minItems": d, "maxItems": d}
    variants = [flat, nested] if len(sig.input_shape) > 1 else [flat]
    if takes_pictures(sig):
        variants.append({"type": "object", "additionalProperties": False, "required": ["b64"],
                         "properties": {"b64": {"type": "string", "format": "byte",
                                                "description": "a PNG, JPEG, GIF, BMP or "
                                                               "WebP file in base64"}}})
    return {"oneOf": variants} if len(variants) > 1 else flat


def _responses(ok: str, schema: str | None, *codes: str) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": ok}}
    if schema:
        out["200"]["content"] = {"application/json": {"schema": schema}}
    for code in codes:
        out[code] = {"description": _ERRORS[code],
                     "content": {"application/json": {"schema": "ErrorResponse"}}}
    return out


def _params(*names: str) -> list[dict[str, Any]]:
    return [{"in": "path", "name": n, "required": True, "schema": {"type": "string"}}
            for n in names]


def build_spec(models: Mapping[str, ServedModel], max_instances: int) -> dict[str, Any]:
    """The OpenAPI 3.0 document as a dict."""
    spec = APISpec(title="numpy-model-server", version=SERVER_VERSION, openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()],
                   info={"description": "KServe V1 / TF Serving REST and the Open Inference "
                                        "Protocol (KServe V2) for NumPy models."})
    # Nested schemas first: apispec registers them itself when it meets them in a parent.
    for name in ("ErrorResponse", "ClassPrediction", "VersionStatus", "TFVersionStatus",
                 "RequestInput", "RequestOutput", "ResponseOutput", "TensorMetadata",
                 "V1PredictResponse", "V1ModelStatus", "V1ModelList", "InferenceRequest",
                 "InferenceResponse", "V2ModelMetadata", "V2ServerMetadata", "Readiness"):
        spec.components.schema(name, schema=getattr(schemas, name))
    spec.components.schema("V1PredictRequest",
                           schema=schemas.V1PredictRequest(max_instances=max_instances))
    request_variants = []
    for name, model in models.items():
        mv = model.latest
        if mv is None or mv.interface is None:
            continue
        spec.components.schema(f"{name}_instance", component=_instance_schema(mv.interface))
        spec.components.schema(f"{name}_predict_request", component={
            "allOf": [{"$ref": "#/components/schemas/V1PredictRequest"},
                      {"type": "object", "properties": {"instances": {
                          "type": "array", "minItems": 1, "maxItems": max_instances,
                          "items": {"$ref": f"#/components/schemas/{name}_instance"}}}}],
            "description": f"V1 request for model {name!r} "
                           f"({describe_instance(mv.interface)})."})
        request_variants.append({"$ref": f"#/components/schemas/{name}_predict_request"})
    predict_body = {"oneOf": request_variants} if request_variants else "V1PredictRequest"

    def json_body(schema: Any) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    picture_body = {"image/*": {"schema": {"type": "string", "format": "binary"}}}
    return_image = {"in": "query", "name": "return_image", "required": False,
                    "schema": {"type": "boolean"}, "description": "with an image/* body: "
                    "add the 28x28 picture the model saw to the prediction"}

    model_p, version_p = _params("name"), _params("name", "version")
    for suffix, params in (("", model_p), ("/versions/{version}", version_p)):
        spec.path(path=f"/v1/models/{{name}}{suffix}:predict", operations={"post": {
            "summary": "Predict (KServe V1 / TF Serving); digit models also take a "
                       "picture as the body", "parameters": [*params, return_image],
            "requestBody": {"required": True, "content": {
                **json_body(predict_body)["content"], **picture_body},
                "description": "JSON instances, or one picture file (digit models)"},
            "responses": _responses("Predictions", "V1PredictResponse",
                                    "400", "404", "405", "413", "415", "503")}})
        spec.path(path=f"/v1/models/{{name}}{suffix}", operations={"get": {
            "summary": "Model (version) status", "parameters": params,
            "responses": _responses("Ready", "V1ModelStatus", "404", "503")}})
        spec.path(path=f"/v2/models/{{name}}{suffix}", operations={"get": {
            "summary": "Model metadata: inputs and outputs", "parameters": params,
            "responses": _responses("Metadata", "V2ModelMetadata", "404", "503")}})
        spec.path(path=f"/v2/models/{{name}}{suffix}/ready", operations={"get": {
            "summary": "Model (version) readiness", "parameters": params,
            "responses": _responses("Ready", "Readiness", "404", "503")}})
        spec.path(path=f"/v2/models/{{name}}{suffix}/infer", operations={"post": {
            "summary": "Inference (Open Inference Protocol); binary tensor data accepted "
                       "with Inference-Header-Content-Length", "parameters": params,
            "requestBody": json_body("InferenceRequest"),
            "responses": _responses("Outputs", "InferenceResponse",
                                    "400", "404", "405", "413", "415", "503")}})
    spec.path(path="/", operations={"get": {
        "summary": "Server liveness (KServe V1): {\"status\": \"alive\"}",
        "responses": {"200": {"description": "Live", "content": {"application/json": {
            "schema": {"type": "object", "properties": {"status": {
                "type": "string", "enum": ["alive"]}}}}}}}}})
    spec.path(path="/v1/models", operations={"get": {
        "summary": "All models and their versions",
        "responses": _responses("Models", "V1ModelList")}})
    spec.path(path="/v2", operations={"get": {
        "summary": "Server metadata", "responses": _responses("Metadata", "V2ServerMetadata")}})
    spec.path(path="/v2/health/live", operations={"get": {
        "summary": "Liveness probe", "responses": _responses("Live", "Readiness")}})
    spec.path(path="/v2/health/ready", operations={"get": {
        "summary": "Readiness probe: at least one model is ready",
        "responses": _responses("Ready", "Readiness", "503")}})
    spec.path(path="/metrics", operations={"get": {
        "summary": "Prometheus metrics (all workers)",
        "responses": {"200": {"description": "Prometheus text format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}}}})
    spec.path(path="/openapi.json", operations={"get": {
        "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3 document",
                              "content": {"application/json": {
                                  "schema": {"type": "object"}}}}}}})
    return spec.to_dict()
