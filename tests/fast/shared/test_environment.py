"""The workers' math environment and the variables that set it: oneDNN's fpmath mode under both
of its names, thread counts, and bad values stopping start-up with the variable named."""

import pytest

from server.config import ConfigError, Settings, fpmath_mode
from server.shared.environment import worker_environment


def test_fast_math_switch_sets_both_fpmath_names():
    given = {"MODEL_SERVER_BF16_FASTMATH": "true"}
    env = worker_environment(3, fpmath_mode(given), given)
    assert env["DNNL_DEFAULT_FPMATH_MODE"] == env["ONEDNN_DEFAULT_FPMATH_MODE"] == "BF16"
    assert env["TF_NUM_INTRAOP_THREADS"] == env["OMP_NUM_THREADS"] == "3"
    assert env["TF_NUM_INTEROP_THREADS"] == "1"


@pytest.mark.parametrize("given, expected", [
    ({}, None),
    ({"DNNL_DEFAULT_FPMATH_MODE": "BF16"}, "BF16"),  # the arm64 image's default
    ({"ONEDNN_DEFAULT_FPMATH_MODE": "bf16"}, "BF16"),
    ({"DNNL_DEFAULT_FPMATH_MODE": "BF16", "ONEDNN_DEFAULT_FPMATH_MODE": "STRICT"}, "STRICT"),  # oneDNN's order
    ({"DNNL_DEFAULT_FPMATH_MODE": "BF16", "MODEL_SERVER_BF16_FASTMATH": "false"}, "STRICT"),
    ({"MODEL_SERVER_BF16_FASTMATH": "true"}, "BF16"),
])
def test_fpmath_names_are_copied_to_each_other(given, expected):
    env = worker_environment(1, fpmath_mode(given), given)
    assert env.get("DNNL_DEFAULT_FPMATH_MODE") == expected
    assert env.get("ONEDNN_DEFAULT_FPMATH_MODE") == expected
    assert fpmath_mode(given) == expected


def test_explicit_thread_variables_win():
    env = worker_environment(4, None, {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "2"})
    assert env["TF_NUM_INTRAOP_THREADS"] == env["TF_NUM_INTEROP_THREADS"] == "2"


@pytest.mark.parametrize("name, value", [
    ("MODEL_SERVER_BF16_FASTMATH", "maybe"),
    ("DNNL_DEFAULT_FPMATH_MODE", "fast"),
    ("ONEDNN_DEFAULT_FPMATH_MODE", "bf32"),
    ("MODEL_SERVER_ACCEL_REPORT", "sometimes"),
])
def test_bad_values_stop_startup_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_settings_defaults():
    settings = Settings.from_env({})
    assert settings.accel_report is False and settings.fpmath_mode is None
    settings = Settings.from_env({"MODEL_SERVER_ACCEL_REPORT": "true", "MODEL_SERVER_BF16_FASTMATH": "TRUE"})
    assert settings.accel_report is True and settings.fpmath_mode == "BF16"


# ------------------------------------------------------------------ the startup log line
