"""The local endpoint for tests: one per test module, driven by real boto3 clients.

Every client (sagemaker, sagemaker-runtime, s3, sns, sqs) gets the same ``endpoint_url``, as a
user's script would; nothing is mocked (S3 and SNS are moto's server behind the port). Stopping
it checks that every instance it started is gone with it.
"""

import pytest

from harness.local_endpoint import LocalEndpointProcess


def local_endpoint(*args: str):
    """A module-scoped fixture: one local endpoint (started with ``args``) for a test module."""

    @pytest.fixture(scope="module")
    def local(tmp_path_factory):
        endpoint = LocalEndpointProcess(tmp_path_factory.mktemp("local-endpoint"), *args)
        yield endpoint
        _, alive = endpoint.stop(grace=60)
        assert not alive, f"processes left behind: {[p.pid for p in alive]}"

    return local
