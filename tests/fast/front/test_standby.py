"""What keeps a standby worker warm (server/front/supervisor/standby.py, ``WarmPolicy``) and how its
variables parse, over a clock the test moves. The real-server counterparts are in
tests/test_standby.py."""

import subprocess
import sys

import pytest

from server.config import ConfigError, Settings
from server.front.supervisor.standby import WARM_ORDER, WarmPolicy
from server.shared.paths import PROJECT_ROOT

INSTALLED = ["onnx", "sklearn", "xgboost", "pytorch"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def policy(mode: str = "auto", listed: tuple[str, ...] = (), idle: float = 60.0, multi_model: bool = True) -> tuple[WarmPolicy, Clock]:
    clock = Clock()
    return WarmPolicy(mode, listed, idle, multi_model, clock), clock


def test_auto_warms_every_installed_framework_those_under_the_models_root_first():
    warm, _ = policy()
    assert warm.initial(INSTALLED, ["pytorch", "tensorflow"]) == ["pytorch", "onnx", "sklearn", "xgboost"]


def test_auto_stops_wanting_an_unused_framework_after_the_idle_time():
    warm, clock = policy(idle=60)
    warm.initial(INSTALLED, [])
    clock.now += 59
    assert warm.wanted("onnx", models=0)
    clock.now += 2
    assert not warm.wanted("onnx", models=0)
    assert not warm.wanted("tensorflow", models=0)  # never warmed, never used


def test_auto_keeps_a_framework_with_models_and_one_used_lately():
    warm, clock = policy(idle=60)
    warm.initial(INSTALLED, [])
    clock.now += 1000
    assert warm.wanted("sklearn", models=3)  # its standby is the spare of the workers holding them
    assert warm.replenish_after_start("xgboost", adopted=False)  # used again: warmed again
    clock.now += 59
    assert warm.wanted("xgboost", models=0)
    clock.now += 2
    assert not warm.wanted("xgboost", models=0)


def test_a_list_is_warm_for_good_and_none_is_never_warm():
    listed, clock = policy("list", ("sklearn", "xgboost"), idle=1)
    assert listed.initial(INSTALLED, ["pytorch"]) == ["sklearn", "xgboost"]
    clock.now += 10**6
    assert listed.wanted("sklearn", models=0) and not listed.wanted("pytorch", models=5)
    off, _ = policy("none")
    assert off.initial(INSTALLED, ["sklearn"]) == []
    assert not off.wanted("sklearn", models=5) and not off.replenish_after_start("sklearn", adopted=True)


def test_single_model_mode_warms_nothing_before_the_model_is_up():
    """/ping waits for the model's worker: no second import may compete with it. The model's
    framework gets its standby once loaded (``Standbys.loaded``), and again after a restart."""
    for mode, listed in (("auto", ()), ("list", ("sklearn",))):
        warm, _ = policy(mode, listed, multi_model=False)
        assert warm.initial(INSTALLED, []) == []
        assert not warm.replenish_after_start("sklearn", adopted=False)
        assert warm.replenish_after_start("sklearn", adopted=True)


def test_idle_standbys_are_looked_for_often_enough_for_a_short_idle_time():
    assert policy(idle=2)[0].check_seconds() == 0.5
    assert policy(idle=3600)[0].check_seconds() == 30


def test_installed_frameworks_are_found_without_importing_them():
    """The front looks them up at start: it must import none of them (in a fresh interpreter)."""
    probe = ("import sys; from server.front.supervisor.standby import installed; found = installed(); "
             "print(' '.join(found)); print(' '.join(sorted({'sklearn', 'pandas', 'tensorflow', 'torch', 'xgboost'} & set(sys.modules))))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    found, imported = (done.stdout.splitlines() + ["", ""])[:2]
    assert set(found.split()) <= set(WARM_ORDER) and "sklearn" in found.split(), done.stderr
    assert imported == ""


def test_warm_variables():
    assert (Settings.from_env({}).warm_mode, Settings.from_env({}).warm_idle_seconds) == ("auto", 600.0)
    settings = Settings.from_env({"MODEL_SERVER_WARM_FRAMEWORKS": " SKlearn, xgboost,sklearn ",
                                  "MODEL_SERVER_WARM_IDLE_SECONDS": "2.5"})
    assert (settings.warm_mode, settings.warm_frameworks, settings.warm_idle_seconds) == ("list", ("sklearn", "xgboost"), 2.5)
    assert Settings.from_env({"MODEL_SERVER_WARM_FRAMEWORKS": "none"}).warm_mode == "none"


@pytest.mark.parametrize("name, value", [
    ("MODEL_SERVER_WARM_FRAMEWORKS", "sklearn,caffe"),
    ("MODEL_SERVER_WARM_FRAMEWORKS", ","),
    ("MODEL_SERVER_WARM_IDLE_SECONDS", "0"),
    ("MODEL_SERVER_WARM_IDLE_SECONDS", "soon"),
])
def test_bad_warm_values_stop_startup_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
