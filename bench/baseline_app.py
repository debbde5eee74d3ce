"""The issue's "minimal Flask + gunicorn" row: plain get_json, one forward pass, no checks.

Run: BASELINE_ARTIFACT=path/to/mnist/1 gunicorn -w 2 "bench.baseline_app:create_app()"
A yardstick for bench/serve_load.py only; it validates nothing and must never serve users.
"""

from __future__ import annotations

import os

import numpy as np
from flask import Flask, jsonify, request
from threadpoolctl import threadpool_limits

from model import Predictor


def create_app(artifact: str | None = None) -> Flask:
    threadpool_limits(1)
    predictor = Predictor.from_artifact(artifact or os.environ["BASELINE_ARTIFACT"])
    app = Flask(__name__)

    @app.post("/v1/models/<name>:predict")
    def predict(name: str):
        x = np.asarray(request.get_json()["instances"], dtype=np.float32)
        out = predictor.predict_checked(x.reshape(len(x), *predictor.input_shape))
        if predictor.task == "classification":
            return jsonify(predictions=[{"label": int(p.argmax()), "probabilities": p.tolist()}
                                        for p in out])
        return jsonify(predictions=out.tolist())

    return app
