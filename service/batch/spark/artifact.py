"""How a model reaches Spark's executors: the driver zips the artifact's version folder and
adds it to the job as an archive (``SparkContext.addArchive``: a cluster's executors fetch it
from the driver and unpack it; a local folder cannot be added to a cluster's job as is),
each Python worker loads its copy once, checking the weights' sha256 as every loader does,
and keeps it for the tasks that follow."""

from __future__ import annotations

import atexit
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from threadpoolctl import threadpool_limits

from ..scoring import LocalModel

if TYPE_CHECKING:
    from pyspark import SparkContext


@dataclass(frozen=True)
class ShippedModel:
    """A model version added to a Spark job: what a worker needs to find and load it."""

    name: str
    version: int
    #: the archive's name among the job's files (unique per shipment): the folder it
    #: unpacks to on every executor
    file: str


def ship(sc: SparkContext, model: LocalModel) -> ShippedModel:
    """Add ``model``'s version folder to the job under a name no other shipment uses (two
    models' folders may both be called ``1``)."""
    name = f"{model.name}-{model.version}-{secrets.token_hex(4)}"
    staging = Path(tempfile.mkdtemp(prefix="spark-model-"))
    atexit.register(shutil.rmtree, staging, True)  # served to executors until the end
    archive = shutil.make_archive(str(staging / name), "zip", root_dir=model.path)
    sc.addArchive(archive)
    return ShippedModel(model.name, model.version, Path(archive).name)


_LOADED: dict[str, LocalModel] = {}


def worker_model(shipped: ShippedModel) -> LocalModel:
    """The model in this Python worker, loaded (and checked) on first use; from then on the
    worker runs one BLAS thread, like a service worker: Spark's parallelism is its tasks."""
    model = _LOADED.get(shipped.file)
    if model is None:
        from pyspark import SparkFiles

        threadpool_limits(1)
        model = LocalModel.folder(shipped.name, shipped.version,
                                  Path(SparkFiles.get(shipped.file)))
        _LOADED[shipped.file] = model
    return model
