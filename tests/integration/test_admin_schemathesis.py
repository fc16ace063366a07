"""schemathesis against the live admin plane: every operation of the OpenAPI
document the running SBC serves, called with generated (valid and invalid)
inputs and the token, must never answer 5xx and must match its own schema.

The SBC runs on its own (module-scoped) policy copy: generated ``PUT
/policies/{file}`` bodies may replace a policy file, which is what that
operation is for.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from harness import SbcProcess
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.integration

TOKEN = "schemathesis-admin-token-32-chars-or-more"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def live_sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    process = SbcProcess(tmp_path_factory.mktemp("sbc-schemathesis"), admin_token=TOKEN)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def live_schema(live_sbc: SbcProcess) -> schemathesis.BaseSchema:
    # The document is the one the running SBC serves (behind the token).
    return schemathesis.openapi.from_url(
        f"{live_sbc.admin_url}/openapi.json", headers=AUTH, wait_for_schema=15.0
    )


def test_no_server_error_and_responses_match_the_schema(
    live_schema: schemathesis.BaseSchema,
) -> None:
    """Each operation in turn; hypothesis drives the cases (schemathesis's pytest
    plugin is not used: it reaches into pytest internals that pytest 9 lacks)."""
    operations = [result.ok() for result in live_schema.get_all_operations()]
    assert len(operations) >= 15, "the live schema lost operations"

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same cases every run: a failure is reproducible
            database=None,
        )
        def call(case: schemathesis.Case) -> None:
            response = case.call(headers=AUTH, timeout=10.0)
            case.validate_response(
                response,
                checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
            )

        call()
