"""schemathesis against /openapi.json: every operation, bounded examples, two checks: no
server error, and every answer matches the documented schema.

In process over WSGI (the same app gunicorn runs). ``FUZZ_EXAMPLES`` sets the examples per
operation (10 here; ``make bench-robustness`` runs more).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from service.app import create_app
from tests.factories import make_classifier, make_regressor

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "artifacts"
    make_regressor(root)
    make_classifier(root)
    app = create_app({"artifacts_dir": root, "reload_interval": 0, "log_level": "WARNING"})
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


def test_api_never_errors_and_answers_as_documented(api):
    # schemathesis' own pytest plugin does not load under pytest 9: drive Hypothesis here.
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15
    failures = {}
    calls: list[int] = []
    for operation, model in [(op, m) for op in operations for m in ("housing", "mnist")
                             if "{name}" in op.path or m == "housing"]:
        # any path parameters; and, on a real model and version, valid bodies and bodies
        # that break the schema
        real = {k: v for k, v in {"name": model, "version": "1"}.items()
                if "{" + k + "}" in operation.path}
        strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
        for mode in GenerationMode:
            strategies.append(operation.as_strategy(mode, path_parameters=real))

        @given(case=st.one_of(strategies))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            calls.append(case.call_and_validate(
                checks=[not_a_server_error, response_schema_conformance]).status_code)

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure
            failures[f"{operation.label} ({model})"] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    assert len(calls) >= len(operations) * min(EXAMPLES, 5)
    assert {200, 400} <= set(calls), sorted(set(calls))
