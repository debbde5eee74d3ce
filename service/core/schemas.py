"""marshmallow schemas of every request and response, per protocol and per model, and
``load_envelope``, the one call that checks a request's structure with them.

Requests: the schemas check the structure (object, required and unknown keys, batch size,
tensor headers); the numbers inside ``instances`` and ``data`` are converted and checked by
``instances`` and ``tensors`` with NumPy in one pass, because per-number marshmallow work is
~1.7 ms per MNIST row. Per-model instance schemas describe one instance for the OpenAPI
document and give the per-field messages on the (rare) error path. Responses are built as
plain dicts and dumped with orjson; their schemas document them and the tests validate
answers against them.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields
from marshmallow.validate import Length, OneOf, Range

from .errors import InvalidRequest, first_message
from .jsonio import json_type, stringify_keys

#: V2 datatypes of the Open Inference Protocol; ``tensors`` accepts the numeric ones.
DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
             "INT64", "FP16", "FP32", "FP64", "BF16", "BYTES")


class StrictNumber(fields.Float):
    """A JSON number: rejects strings such as "1.5" (which Float would coerce), booleans,
    NaN and Infinity."""

    def _validated(self, value: Any) -> float:
        if type(value) is not int and type(value) is not float:
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Batch(fields.List):
    """A non-empty list of instances, at most ``max_instances`` long.

    The items are not deserialised one by one here (``instances`` converts them in one NumPy
    call); ``inner`` only documents them.
    """

    default_error_messages = {
        "empty": "No instances: send at least one.",
        "too_many": "Too many instances: {n} is more than the limit of {limit} "
                    "(SERVICE_MAX_INSTANCES); split the batch.",
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        if not value:
            raise self.make_error("empty")
        limit = getattr(self.parent, "max_instances", None)
        if limit is not None and len(value) > limit:
            raise self.make_error("too_many", n=len(value), limit=limit)
        return value


class StrictSchema(Schema):
    """Unknown keys are errors: a misspelt field must not be silently ignored."""

    class Meta:
        unknown = RAISE


# -- KServe V1 / TF Serving ----------------------------------------------------------------
class V1Parameters(StrictSchema):
    """Request options of V1 ``:predict``."""

    return_image = fields.Boolean(truthy={True}, falsy={False}, metadata={
        "description": "with pictures: each prediction also carries `image`, the 28x28 "
                       "pixels (0..255) the model saw"})


class V1PredictRequest(StrictSchema):
    """``POST /v1/models/{name}[/versions/{v}]:predict`` body."""

    instances = Batch(fields.Raw(metadata={"description": "one instance; see the model"}),
                      required=True, metadata={
                          "description": "The rows to predict, in one vectorised call.",
                          "minItems": 1})
    signature_name = fields.String(validate=OneOf(["serving_default"]), metadata={
        "description": "TF Serving clients may send it; only serving_default exists."})
    parameters = fields.Nested(V1Parameters, metadata={"description": "request options"})

    def __init__(self, *, max_instances: int = 1024, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_instances = max_instances


class ClassPrediction(Schema):
    """One classifier prediction."""

    label = fields.Integer(required=True, metadata={"description": "most probable class"})
    probabilities = fields.List(fields.Float(), required=True,
                                metadata={"description": "one per class, summing to 1"})


class V1PredictResponse(Schema):
    """Predictions in request order: numbers (regression) or ClassPrediction objects."""

    predictions = fields.List(fields.Raw(), required=True, metadata={
        "description": "a number per instance (regression, e.g. MEDV in $1000s) or a "
                       "ClassPrediction object per instance (classification)"})
    model_version = fields.String(required=True)


class VersionStatus(Schema):
    """One version of a model and whether it serves."""

    version = fields.String(required=True)
    ready = fields.Boolean(required=True)
    reason = fields.String(metadata={"description": "why it is not ready"})


class TFVersionStatus(Schema):
    """TensorFlow Serving's model status entry."""

    version = fields.String(required=True)
    state = fields.String(required=True, validate=OneOf(["AVAILABLE", "END"]))
    status = fields.Dict(required=True)


class V1ModelStatus(Schema):
    """``GET /v1/models/{name}``: readiness, served version, all versions."""

    name = fields.String(required=True)
    ready = fields.Boolean(required=True)
    version = fields.String(metadata={"description": "the version served by default"})
    versions = fields.List(fields.Nested(VersionStatus))
    model_version_status = fields.List(fields.Nested(TFVersionStatus))


class V1ModelList(Schema):
    """``GET /v1/models``."""

    models = fields.List(fields.Nested(V1ModelStatus), required=True)


# -- Open Inference Protocol (KServe V2) ---------------------------------------------------

class RequestInput(StrictSchema):
    """One input tensor; ``data`` is flat or nested row-major, or sent as binary data."""

    name = fields.String(required=True, validate=Length(min=1))
    shape = fields.List(fields.Integer(strict=True, validate=Range(min=0)), required=True,
                        validate=Length(min=1, max=8))
    datatype = fields.String(required=True, validate=OneOf(DATATYPES))
    parameters = fields.Dict(keys=fields.String(), values=fields.Raw(), metadata={
        "description": "binary_data_size (binary tensor extension) or content_type 'np'"})
    data = fields.Raw(metadata={"description": "numbers, flat or nested, row-major"})


class RequestOutput(StrictSchema):
    """A requested output; ``parameters.binary_data`` asks for binary tensor data."""

    name = fields.String(required=True, validate=Length(min=1))
    parameters = fields.Dict(keys=fields.String(), values=fields.Raw())


class InferenceRequest(StrictSchema):
    """``POST /v2/models/{name}[/versions/{v}]/infer`` body (or its JSON header)."""

    id = fields.String()
    # KServe's Python SDK (InferRequest.to_rest) sends the model's name, and may send its
    # version; they must name the model and version the URL addresses (checked by v2.py).
    model_name = fields.String(metadata={
        "description": "optional; if given, the model of the URL"})
    model_version = fields.String(metadata={
        "description": "optional; if given (not empty), the version the URL serves"})
    parameters = fields.Dict(keys=fields.String(), values=fields.Raw(), metadata={
        "description": "binary_data_output (bool) is the one supported parameter"})
    inputs = fields.List(fields.Nested(RequestInput), required=True, validate=Length(min=1))
    outputs = fields.List(fields.Nested(RequestOutput))


class ResponseOutput(Schema):
    """One output tensor."""

    name = fields.String(required=True)
    shape = fields.List(fields.Integer(), required=True)
    datatype = fields.String(required=True)
    parameters = fields.Dict()
    data = fields.List(fields.Raw())


class InferenceResponse(Schema):
    """The V2 inference answer."""

    model_name = fields.String(required=True)
    model_version = fields.String(required=True)
    id = fields.String()
    parameters = fields.Dict()
    outputs = fields.List(fields.Nested(ResponseOutput), required=True)


class TensorMetadata(Schema):
    """Name, datatype and shape (-1 for the batch dimension) of a model input or output."""

    name = fields.String(required=True)
    datatype = fields.String(required=True)
    shape = fields.List(fields.Integer(), required=True)


class V2ModelMetadata(Schema):
    """``GET /v2/models/{name}[/versions/{v}]``."""

    name = fields.String(required=True)
    versions = fields.List(fields.String())
    platform = fields.String(required=True)
    inputs = fields.List(fields.Nested(TensorMetadata), required=True)
    outputs = fields.List(fields.Nested(TensorMetadata), required=True)
    parameters = fields.Dict()


class V2ServerMetadata(Schema):
    """``GET /v2``."""

    name = fields.String(required=True)
    version = fields.String(required=True)
    extensions = fields.List(fields.String(), required=True)


class Readiness(Schema):
    """Health and readiness answers."""

    live = fields.Boolean()
    ready = fields.Boolean()
    name = fields.String()


class ErrorResponse(Schema):
    """Every error answer: a message and per-field details."""

    error = fields.String(required=True)
    details = fields.Dict(required=True, metadata={
        "description": 'e.g. {"instances": {"3": {"RM": ["Not a valid number."]}}}'})


# -- per model -------------------------------------------------------------------------------
def tabular_instance_schema(features: tuple[str, ...], name: str = "Instance") -> Schema:
    """Schema of one named-feature instance: every feature a number, no other keys."""
    cls = Schema.from_dict({f: StrictNumber(required=True) for f in features}, name=name)
    return cls(unknown=RAISE)


def array_field(shape: tuple[int, ...]) -> fields.Field:
    """Field of one instance given as nested lists of numbers of ``shape``."""
    field: fields.Field = StrictNumber()
    for d in reversed(shape):
        field = fields.List(field, validate=Length(equal=d))
    return field


def load_envelope(schema: Schema, obj: Any) -> dict[str, Any]:
    """Validate the request structure with marshmallow; InvalidRequest with its messages."""
    if not isinstance(obj, dict):
        raise InvalidRequest(f"the request body must be a JSON object, not "
                             f"{json_type(obj)}", {"_schema": ["Invalid input type."]})
    try:
        return schema.load(obj)
    except ValidationError as exc:
        details = stringify_keys(exc.messages)
        raise InvalidRequest(f"invalid request: {first_message(details)}", details) from None
