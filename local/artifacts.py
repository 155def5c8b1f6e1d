"""Model artifacts: fetch ``s3://bucket/key`` (from the S3 behind this endpoint) and unpack it.

The platform downloads ``model.tar.gz`` to the instance's storage and unpacks it where the
container expects it; so does this, with tar's ``data`` filter (no absolute paths, no links out
of the directory, no device files): an archive is user input.
"""

import shutil
import tarfile
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import boto3
from botocore.config import Config


class ArtifactError(Exception):
    """The artifact could not be fetched or unpacked; the message says which and why."""


def split_s3(url: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``; ArtifactError for anything else."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ArtifactError(f"{url[:200]} is not an s3:// url")
    return parsed.netloc, parsed.path.lstrip("/")


class Storage:
    """The S3 the endpoint reads models and async inputs from and writes outputs to."""

    def __init__(self, endpoint_url: str, region: str):
        self.endpoint_url = endpoint_url
        self.region = region
        options = dict(
            endpoint_url=endpoint_url, region_name=region, aws_access_key_id="local", aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 2}, s3={"addressing_style": "path"}),
        )
        self.s3 = boto3.client("s3", **options)
        self.sns = boto3.client("sns", **options)

    def download(self, url: str, target: Path) -> int:
        """Write the object at ``url`` to ``target``; returns its size."""
        bucket, key = split_s3(url)
        try:
            self.s3.download_file(bucket, key, str(target))
        except Exception as err:  # botocore's ClientError, or a connection failure
            raise ArtifactError(f"Could not download model data from {url}: {_reason(err)}") from None
        return target.stat().st_size

    def read(self, url: str) -> tuple[bytes, str | None]:
        """The object at ``url`` and its Content-Type."""
        bucket, key = split_s3(url)
        try:
            found = self.s3.get_object(Bucket=bucket, Key=key)
            body: bytes = found["Body"].read()
        except Exception as err:
            raise ArtifactError(f"Could not read {url}: {_reason(err)}") from None
        return body, found.get("ContentType")

    def write(self, url: str, body: bytes, content_type: str | None) -> None:
        bucket, key = split_s3(url)
        extra = {"ContentType": content_type} if content_type else {}
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)

    def fetch_model(self, url: str, target: Path) -> int:
        """Download ``model.tar.gz`` from ``url`` and unpack it into ``target`` (made empty first)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            archive = Path(scratch) / "model.tar.gz"
            size = self.download(url, archive)
            unpack(archive, target, url)
        return size


def unpack(archive: Path, target: Path, source: str) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as err:
        shutil.rmtree(target, ignore_errors=True)
        raise ArtifactError(f"Could not unpack the model data from {source}: {_reason(err)}") from None


def _reason(err: Exception) -> str:
    response = getattr(err, "response", None)
    if response:
        error = response.get("Error", {})
        return f"{error.get('Code', 'error')} {error.get('Message', '')}".strip()
    return type(err).__name__ if isinstance(err, OSError) else str(err)
