"""SAGEMAKER_SUBMIT_DIRECTORY: the code the SageMaker Python SDK delivers beside the model.

``SKLearnModel``, ``XGBoostModel``, ``PyTorchModel`` and ``MultiDataModel`` upload the entry point
as ``sourcedir.tar.gz`` and set ``SAGEMAKER_SUBMIT_DIRECTORY=s3://.../sourcedir.tar.gz`` with
``SAGEMAKER_PROGRAM=script.py``; local mode passes a directory or a ``file://`` path. The front
fetches it once, before any worker starts (``prepare``), into a local directory that the workers
get through ``WorkerConfig.submit_dir``: every model without a ``code/<program>`` of its own is
served by that code (its ``requirements.txt`` installed as a model's own would be).

S3 goes through boto3: credentials from its usual chain, the region and endpoint from the
settings (AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL). Archives are
cached under the packages directory by URL and ETag (by path, size and mtime for local files),
and unpacked only if no member escapes the target: absolute names, ``..``, links pointing out,
devices and FIFOs are refused.

A failure names the variable. In single-model mode it stops the server at start (the platform
shows the container's last log line when the endpoint fails to start, which is sooner and
clearer than a /ping that never turns healthy); in multi-model mode the server starts and every
LoadModel of a model that would need the code fails with the message (``shared_code``).
"""

import dataclasses
import hashlib
import logging
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from handlers.base import code_for
from handlers.errors import ModelLoadError, ServingError
from server.config import ConfigError, Settings

log = logging.getLogger("submit_dir")
VARIABLE = "SAGEMAKER_SUBMIT_DIRECTORY"


class FetchError(ServingError):
    """The code cannot be had: a ``ServingError`` whose status is what a LoadModel needing it answers."""

    status = 400


def prepare(settings: Settings) -> Settings:
    """``settings`` with the fetched directory (``submit_dir``), or in multi-model mode the failure
    (``submit_error``); in single-model mode a failure is a ``ConfigError``."""
    url = settings.submit_directory_url
    if not url:
        return settings
    try:
        where = on_model_dir(url, settings.model_dir)
        local = fetch(where, settings.packages_root / "sourcedir", settings.aws_region, settings.s3_endpoint_url)
        if not (local / settings.program).is_file():
            raise FetchError(f"holds no {settings.program} (SAGEMAKER_PROGRAM)")
    except FetchError as err:
        message = f"{VARIABLE}={url}: {err}"
        if not settings.multi_model:
            raise ConfigError(message) from None
        log.error("%s; models without code/ of their own will fail to load", message)
        return dataclasses.replace(settings, submit_error=(err.status, message))
    log.info("%s=%s: serving models without code/ with %s from %s", VARIABLE, url, settings.program, local)
    return dataclasses.replace(settings, submit_dir=local)


PLATFORM_MODEL_DIR = PurePosixPath("/opt/ml/model")


def on_model_dir(url: str, model_dir: Path) -> str:
    """``url`` with the platform's model mount read as this server's model directory.

    A model the SDK repacked (``PyTorchModel``, or any with network isolation) carries its code in
    ``code/`` and gets ``SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code``: the platform's path for
    "inside the model", wherever MODEL_SERVER_MODEL_DIR has put the model (a local endpoint's
    instance directory, say)."""
    path = PurePosixPath(url.removeprefix("file://"))
    if "://" in url.removeprefix("file://") or not path.is_relative_to(PLATFORM_MODEL_DIR):
        return url
    return str(model_dir / path.relative_to(PLATFORM_MODEL_DIR))


def shared_code(settings: Settings, model_dir: Path) -> Path | None:
    """The shared code for ``model_dir`` (None when it has its own ``code/`` or there is none);
    raises the fetch's failure for a model that would have needed it."""
    if code_for(model_dir, settings.program) is not None:
        return None
    if settings.submit_error is not None:
        status, message = settings.submit_error
        raise ModelLoadError(message, status)
    return settings.submit_dir


def fetch(url: str, cache: Path, region: str | None = None, endpoint: str | None = None) -> Path:
    """A local directory holding the code ``url`` names (an S3 object, a file:// or plain path to
    a tar.gz, or a directory)."""
    if url.startswith("s3://"):
        return _from_s3(url, cache, region, endpoint)
    if "://" in url and not url.startswith("file://"):
        raise FetchError("expected s3://bucket/key (a tar.gz), file://path or a local path")
    path = Path(url.removeprefix("file://")).absolute()
    if path.is_dir():
        return path
    if not path.is_file():
        raise FetchError("no such file or directory", 404)
    stat = path.stat()
    return _unpacked(f"{path}\n{stat.st_size}\n{stat.st_mtime_ns}", cache, lambda target: shutil.copyfile(path, target))


def _from_s3(url: str, cache: Path, region: str | None, endpoint: str | None) -> Path:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not bucket or not key or key.endswith("/"):
        raise FetchError("expected s3://bucket/key naming one object (sourcedir.tar.gz)")
    config = Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})
    client = boto3.client("s3", region_name=region, endpoint_url=endpoint, config=config)
    try:
        etag = client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        return _unpacked(f"{url}\n{etag}", cache, lambda target: client.download_file(bucket, key, str(target)))
    except ClientError as err:
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = err.response.get("Error", {}).get("Code", "")
        if status == 404 or code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            raise FetchError("no such object (or bucket) in S3", 404) from None
        if status == 403 or code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise FetchError(f"access denied by S3 ({code}): the role needs s3:GetObject on it", 403) from None
        raise FetchError(f"S3 answered {status} {code}", 502) from None
    except NoCredentialsError:
        raise FetchError("no AWS credentials found (environment, config files or instance role)", 403) from None
    except BotoCoreError as err:
        raise FetchError(f"S3 cannot be reached: {err}", 502) from None


def _unpacked(identity: str, cache: Path, download: Callable[[Path], object]) -> Path:
    """The directory an archive unpacks to, cached by ``identity``; ``download(path)`` writes it."""
    target = cache / hashlib.sha256(identity.encode()).hexdigest()[:24]
    done = target.with_name(target.name + ".complete")
    if done.is_file() and target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as scratch:
        archive, partial = Path(scratch) / "sourcedir.tar.gz", Path(scratch) / "code"
        download(archive)
        unpack(archive, partial)
        partial.rename(target)
    done.touch()
    return target


def unpack(archive: Path, target: Path) -> None:
    """Unpack a tar archive (any compression) into ``target``, refusing every member that could
    land outside it or is not a plain file, directory or link inside."""
    target.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check(member)
            tar.extractall(target, members, filter="data")  # the standard library's own checks as well
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise FetchError(f"is not a readable tar.gz archive ({err})") from None
    except OSError as err:
        raise FetchError(f"cannot be unpacked ({err.strerror or err})", 500) from None


def _inside(path: PurePosixPath) -> bool:
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return False
    return not path.is_absolute()


def _check(member: tarfile.TarInfo) -> None:
    name = PurePosixPath(member.name)
    if not _inside(name):
        raise FetchError(f"archive member {member.name!r} would land outside the code directory")
    if member.issym() and not _inside(name.parent / member.linkname):
        raise FetchError(f"archive member {member.name!r} links outside the code directory ({member.linkname})")
    if member.islnk() and not _inside(PurePosixPath(member.linkname)):
        raise FetchError(f"archive member {member.name!r} links outside the code directory ({member.linkname})")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise FetchError(f"archive member {member.name!r} is a device or other special file")

