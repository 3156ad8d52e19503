"""Property-based run over the app's own OpenAPI schema (schemathesis, in-process ASGI,
authenticated): whatever a schema-valid or schema-breaking request holds, no 5xx."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_api_support import LICENCE, SteppingGenerator, api_settings, running_api, wav_bytes

EXAMPLES_PER_OPERATION = 15


@pytest.fixture(scope="module")
def api(tmp_path_factory, tiny_clap_folder):
    base = tmp_path_factory.mktemp("api-schema")
    with running_api(
        api_settings(base / "data", tiny_clap_folder, api_queue_size=64),
        orchestrator=SteppingGenerator(steps=1, step_s=0),
    ) as api:
        import json

        # something to find, so item routes do more than 404
        response = api.client.post(
            "/v1/catalogs/kit/items",
            files=[("files", ("tone.wav", wav_bytes(), "audio/wav"))],
            data={"licence": json.dumps(LICENCE)},
            headers=api.auth("acme"),
        )
        assert response.json()["counts"] == {"indexed": 1}
        yield api


def test_no_operation_answers_5xx(api):
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    headers = api.auth("acme")
    failures: list[str] = []
    seen: Counter[int] = Counter()
    for operation in operations:
        strategy = operation.as_strategy()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy, keyed=st.integers(0, 3))
        def check(case, keyed):
            # 3 in 4 carry the key, replacing whatever the security schemes generated
            if keyed:
                case.headers = {**(case.headers or {}), **headers}
                case.headers.pop("X-API-Key", None)
            response = case.call()
            seen[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} → {response.status_code}: "
                    f"{response.text[:300]} (body {case.body!r:.200})"
                )

        check()
    assert not failures, "\n".join(failures[:20])
    # it did reach past auth and validation, not only bounce off them
    assert sum(n for code, n in seen.items() if code < 300) >= 20, seen
    assert seen[401] and seen[422], seen
    # The job queue survived the barrage and the service still answers.
    assert api.client.get("/readyz").status_code == 200
