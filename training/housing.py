"""Train the Boston-housing price regressor: an ensemble of small MLPs on quantile inputs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from model import MeanSquaredError, Sequential, ensemble
from model.preprocessing import Pipeline, QuantileNormal, TargetScaler

from .architectures import housing_member
from .datasets import FEATURES, TARGET, housing_split, load_housing
from .errors import DataError
from .loop import FitConfig, History, fit, history_summary
from .report import curves_png, regression_metrics
from .run import (
    TrainOptions,
    TrainResult,
    build_optimizer,
    in_memory_predictor,
    save,
    training_record,
)

NAME = "housing"
DEFAULTS: dict[str, Any] = {
    "epochs": 300, "batch_size": 32, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
    "patience": 30, "min_epochs": 20, "members": 8, "hidden": [64, 64], "n_quantiles": 50,
    "val_fraction": 0.15, "log_target": True,
}


@dataclass
class HousingModel:
    """A fitted ensemble with the preprocessing it was trained with."""

    network: Sequential
    pipeline: Pipeline
    target: TargetScaler
    histories: list[History]

    def manifest_part(self) -> dict[str, Any]:
        return {
            "task": "regression",
            "input": {"name": "features", "features": list(FEATURES),
                      "description": "13 Boston-housing census-tract features, UCI order"},
            "output": {"name": TARGET, "unit": "$1000s",
                       "description": "median value of owner-occupied homes"},
            "preprocessing": {"input": self.pipeline.get_config(),
                              "target": self.target.get_config()},
        }


def fit_ensemble(x: np.ndarray, y: np.ndarray, train_rows: np.ndarray, val_rows: np.ndarray,
                 hp: dict[str, Any], seed: int, progress: bool | None = None,
                 threads: int | None = None) -> HousingModel:
    """Fit preprocessing on ``train_rows`` and an ensemble of ``hp["members"]`` MLPs.

    x: (n, 13) raw features, y: (n,) MEDV. Members differ in initialisation and batch order;
    each stops early on the shared validation rows and keeps its best epoch.
    """
    pipeline = Pipeline([QuantileNormal(n_quantiles=hp["n_quantiles"])]).fit(x[train_rows])
    target = TargetScaler.fitted(y[train_rows], log=hp["log_target"])
    x_train = pipeline.transform(x[train_rows])
    y_train = target.transform(y[train_rows])[:, None]
    x_val = pipeline.transform(x[val_rows])
    y_val = target.transform(y[val_rows])[:, None]

    def val_rmse(out: np.ndarray) -> float:
        return regression_metrics(target.inverse(out[:, 0]), y[val_rows])["rmse"]

    nets, histories = [], []
    steps = -(-len(x_train) // hp["batch_size"])
    for k in range(hp["members"]):
        member_seed = seed * 1000 + k
        net = Sequential(housing_member(tuple(hp["hidden"])), input_shape=(len(FEATURES),))
        net.build(seed=member_seed)
        config = FitConfig(epochs=hp["epochs"], batch_size=hp["batch_size"],
                           patience=hp["patience"] or None, seed=member_seed,
                           min_epochs=hp["min_epochs"], progress=progress,
                           threads=threads,
                           desc=f"housing member {k + 1}/{hp['members']}")
        histories.append(fit(net, build_optimizer(hp, steps), MeanSquaredError(), x_train,
                             y_train, x_val, y_val, config, val_rmse, "rmse",
                             higher_is_better=False))
        nets.append(net)
    return HousingModel(ensemble(nets), pipeline, target, histories)


def train(options: TrainOptions, members: int | None = None) -> TrainResult:
    """Fit the default housing model on ``options.data`` and save it as a new version.

    Protocol (DESIGN.md): the first 80% of rows in file order are the training part, of which
    a seeded 15% slice validates; the last 20% is the test set. Input quantiles and the
    (log) target scaling are fitted on the training slice only.
    """
    started = time.time()
    hp = options.resolved(DEFAULTS)
    if members is not None:
        hp["members"] = members
    data = load_housing(options.data)
    try:
        split = housing_split(len(data.y), val_fraction=hp["val_fraction"], seed=options.seed)
    except ValueError as exc:
        raise DataError(options.data, str(exc)) from None
    fitted = fit_ensemble(data.X, data.y, split.train, split.val, hp, options.seed,
                          options.progress, options.threads)
    network, histories = fitted.network, fitted.histories
    y_val = data.y[split.val]

    manifest = fitted.manifest_part()
    predictor = in_memory_predictor(manifest, network)
    metrics = {
        "validation": regression_metrics(predictor.predict(data.X[split.val]), y_val),
        "test": regression_metrics(predictor.predict(data.X[split.test]), data.y[split.test]),
    }
    manifest["metrics"] = metrics
    manifest["training"] = training_record(
        hp, options, started,
        data={"file": str(options.data), "sha256": data.sha256, "rows": len(data.y),
              "protocol": "first 80% of rows (file order) train, a seeded slice of it "
                          "validates; last 20% test"},
        samples={"train": int(split.train.size), "validation": int(split.val.size),
                 "test": int(split.test.size)},
        members=[history_summary(h) for h in histories],
    )
    curves = curves_png(histories, "rmse", f"housing: {hp['members']} ensemble members")
    return TrainResult(save(options, NAME, network, manifest, curves), metrics)
