"""``model_udf``: a model as a column function on a DataFrame and in SQL, answering what the
Predictor answers; rows the service refuses give null."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from model import Predictor
from service.batch.spark import model_udf
from tests.factories import HOUSING_FEATURES, random_housing, random_images


def reference(path, x: np.ndarray) -> np.ndarray:
    with threadpool_limits(1):
        return Predictor.from_artifact(path).predict(x)


def test_housing_udf_on_columns_and_in_sql(spark, spark_artifacts):
    x = random_housing(40, seed=21)
    rows = [(i, *map(float, row)) for i, row in enumerate(x)]
    rows[3] = (3, None, *rows[3][2:])  # a null feature: a null answer
    df = spark.createDataFrame(rows, ["id", *HOUSING_FEATURES])
    price = model_udf(spark, spark_artifacts / "housing" / "1")
    got = {r["id"]: r["price"] for r in
           df.withColumn("price", price(*HOUSING_FEATURES)).select("id", "price").collect()}
    expected = reference(spark_artifacts / "housing" / "1", x)
    assert got[3] is None
    keep = [i for i in range(40) if i != 3]
    np.testing.assert_allclose([got[i] for i in keep], expected[keep], rtol=1e-5, atol=1e-6)

    spark.udf.register("house_price", price)
    df.createOrReplaceTempView("houses")
    sql = spark.sql(f"SELECT id, house_price({', '.join(HOUSING_FEATURES)}) AS p FROM houses "
                    "WHERE id < 3 ORDER BY id").collect()
    np.testing.assert_allclose([r["p"] for r in sql], expected[:3], rtol=1e-5, atol=1e-6)


def test_digits_udf_on_an_array_column(spark, spark_artifacts):
    images = random_images(12, seed=22)
    rows = [(i, img.ravel().tolist()) for i, img in enumerate(images)]
    rows[5] = (5, [1] * 100)  # the wrong length: null
    df = spark.createDataFrame(rows, "id long, pixels array<int>")
    digit = model_udf(spark, spark_artifacts / "mnist" / "1")
    got = {r["id"]: r["digit"] for r in
           df.select("id", digit("pixels").alias("digit")).collect()}
    expected = reference(spark_artifacts / "mnist" / "1", images)
    assert got[5] is None
    for i in (0, 1, 11):
        assert got[i]["label"] == int(expected[i].argmax())
        np.testing.assert_allclose(got[i]["probabilities"], expected[i], rtol=1e-5, atol=1e-6)
