"""How an instance's container is started: as a process of this checkout, or as the built image.

The process runner is exercised end to end by every other module of tests/local_endpoint; the docker
runner needs a container engine this machine lacks, so its command line is checked here: the
image run with ``serve``, the platform's variables (the user's Environment winning), the port
published on loopback only, the model directories mounted where the platform mounts them, and
the local endpoint's address (its S3) as a container reaches this machine.
"""

import sys

from local.instances import IMAGE_MODEL_DIR, IMAGE_MODELS_ROOT, ContainerSpec, build_instance

SPEC = ContainerSpec(hostname="primary", image="sagemaker-model-server:dev-amd64", model_data_url=None,
                     multi_model=True, environment={"SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS": "120"})
PLATFORM = {"SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS": "3600", "AWS_ENDPOINT_URL": "http://127.0.0.1:8080",
            "AWS_ACCESS_KEY_ID": "local"}


def test_docker_runner_runs_the_image_as_the_platform_does(tmp_path):
    (container,) = build_instance("AllTraffic-0", "ep", "AllTraffic", tmp_path, [SPEC], PLATFORM, "docker").containers
    argv = container.argv
    assert argv[:3] == ["docker", "run", "--rm"] and argv[-2:] == [SPEC.image, "serve"]
    assert argv[argv.index("-p") + 1] == f"127.0.0.1:{container.port}:{container.port}"
    variables = [argv[i + 1] for i, item in enumerate(argv) if item == "-e"]
    assert f"SAGEMAKER_BIND_TO_PORT={container.port}" in variables
    assert "SAGEMAKER_MULTI_MODEL=true" in variables
    assert f"SAGEMAKER_SAFE_PORT_RANGE={container.port}-{container.port}" in variables
    assert "SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS=120" in variables  # the user's Environment wins
    assert "SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS=3600" not in variables
    assert "AWS_ENDPOINT_URL=http://host.docker.internal:8080" in variables  # loopback is the container's own
    assert argv[argv.index("--add-host") + 1] == "host.docker.internal:host-gateway"
    mounts = [argv[i + 1] for i, item in enumerate(argv) if item == "-v"]
    assert mounts == [f"{container.model_dir}:{IMAGE_MODEL_DIR}:ro", f"{container.models_root}:{IMAGE_MODELS_ROOT}"]
    assert str(container.models_url_root) == IMAGE_MODELS_ROOT  # LoadModel urls as the container sees them


def test_process_runner_runs_this_checkouts_server(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "someone-elses")  # this shell's AWS configuration is not the instance's
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-of-this-shell")
    specs = [SPEC, ContainerSpec("second", "x", None, False, {})]
    first, second = build_instance("i-0", "ep", "v", tmp_path, specs, PLATFORM).containers
    assert "AWS_PROFILE" not in first.env and first.env["AWS_ACCESS_KEY_ID"] == "local"
    assert first.env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:8080"
    assert first.argv == [sys.executable, "-m", "server", "serve"]
    assert first.env["MODEL_SERVER_MODELS_ROOT"] == str(first.models_root) == str(first.models_url_root)
    assert first.env["SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS"] == "120"
    assert second.env["SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS"] == "3600"
    assert second.env["SAGEMAKER_MULTI_MODEL"] == "false"
    low, high = map(int, first.env["SAGEMAKER_SAFE_PORT_RANGE"].split("-"))
    assert low <= first.port <= high and low <= second.port <= high and first.port != second.port
