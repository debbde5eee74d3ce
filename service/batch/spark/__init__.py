"""The batch scorer on Apache Spark: ``python -m service.batch --engine spark`` (``job``) and
``model_udf`` for a DataFrame or SQL (``udf``), both thin over the local engine's reading
(``inputs.arrow_batches``) and scoring (``scoring.score_chunk``); ``worker`` is what runs in
Spark's Python workers, ``artifact`` how the model reaches them, ``paths`` how datasets are
put in place. Needs the ``spark`` extra (pyspark) and Java 17 or later."""

from .udf import model_udf

__all__ = ["model_udf"]
