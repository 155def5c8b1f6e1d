"""The account the local endpoint runs as, and the ARNs it names resources and log streams by.

The account is moto's default, so that ARNs from the SageMaker half and the S3/SNS/SQS half agree.
"""

ACCOUNT = "123456789012"


def arn(region: str, kind: str, name: str) -> str:
    """A SageMaker resource's ARN (``kind`` is ``model``, ``endpoint-config`` or ``endpoint``)."""
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:{kind}/{name.lower()}"


def log_stream_arn(region: str, endpoint: str, variant: str, instance: str) -> str:
    """Where the platform would have an instance's container logs (quoted by ModelError)."""
    return (
        f"arn:aws:logs:{region}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{endpoint}"
        f":log-stream:{variant}/{instance}"
    )
