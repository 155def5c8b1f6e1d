"""Dynamic batching's pure parts: how inputs merge and predictions split (handlers/batching/), a
model's batching.json, and the server's variables."""

import numpy as np
import pytest

from handlers.batching import merge, rows
from handlers.batching import settings as batching
from handlers.errors import ModelLoadError
from server.config import ConfigError, Settings


def test_split_cuts_every_output_by_row_counts():
    prediction = {"label": np.arange(6), "probabilities": np.arange(12).reshape(6, 2)}
    parts = merge.split(prediction, [1, 3, 2])
    assert [part["label"].tolist() for part in parts] == [[0], [1, 2, 3], [4, 5]]
    assert parts[2]["probabilities"].tolist() == [[8, 9], [10, 11]]
    several = merge.split([np.arange(3), np.zeros((3, 2))], [2, 1])
    assert several[1][0].tolist() == [2] and several[1][1].shape == (1, 2)
    assert merge.split([{"a": 1}, {"a": 2}, {"a": 3}], [1, 2]) == [[{"a": 1}], [{"a": 2}, {"a": 3}]]


@pytest.mark.parametrize("prediction", [np.float64(1.0), np.arange(5), [1, 2], "text"])
def test_a_prediction_without_one_row_per_input_row_is_unsplittable(prediction):
    with pytest.raises(merge.Unsplittable):
        merge.split(prediction, [1, 3])


def test_only_inputs_of_one_kind_share_a_key():
    table = rows.table(np.ones((2, 4)), 4)
    assert table.count == 2
    assert table.key == rows.table(np.zeros(4), 4).key  # a bare row is a table of one
    assert table.key != rows.table(np.ones((2, 4), dtype=np.int64), 4).key
    assert rows.table({"a": np.ones((2, 4))}, 4) is None
    assert rows.arrays(np.ones(3), min_ndim=2) is None
    named = rows.arrays({"a": np.ones((2, 4)), "b": np.ones((2, 3))})
    assert named.count == 2 and named.key != rows.arrays({"a": np.ones((2, 4)), "b": np.ones((2, 2))}).key
    assert rows.arrays({"a": np.ones((2, 4)), "b": np.ones((3, 3))}) is None  # no common row count
    merged = merge.merge([{"a": np.ones((1, 2))}, {"a": np.zeros((2, 2))}])
    assert merged["a"].shape == (3, 2)


def test_batching_json_overrides_the_server_defaults(tmp_path):
    assert batching.settings(tmp_path, {"max_batch_size": 8, "max_delay_ms": 2}) == batching.BatchSettings(8, 2.0, None)
    (tmp_path / "batching.json").write_text('{"enabled": true, "max_delay_ms": 5}')
    assert batching.settings(tmp_path, {"max_batch_size": 8}) == batching.BatchSettings(8, 5, True)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1]", "must be an object"),
        ('{"max_batch_size": 0}', "'max_batch_size' must be a whole number"),
        ('{"max_batch_size": 2.5}', "'max_batch_size' must be a whole number"),
        ('{"max_delay_ms": -1}', "'max_delay_ms' must be a number"),
        ('{"enabled": "yes"}', '"enabled" must be true or false'),
        ('{"concurrency": 0}', "'concurrency' must be a whole number"),
        ('{"batch": 4}', "unknown key(s) batch"),
        ("{", "not valid JSON"),
    ],
)
def test_batching_json_errors_name_the_problem(tmp_path, text, message):
    (tmp_path / "batching.json").write_text(text)
    with pytest.raises(ModelLoadError) as caught:
        batching.settings(tmp_path)
    assert message in caught.value.message


def test_the_variables_set_every_model_s_defaults():
    settings = Settings.from_env({"MODEL_SERVER_BATCH_MAX_SIZE": "64", "MODEL_SERVER_BATCH_MAX_DELAY_MS": "2.5"})
    assert (settings.batch_max_size, settings.batch_max_delay_ms) == (64, 2.5)
    assert (Settings.from_env({}).batch_max_size, Settings.from_env({}).batch_max_delay_ms) == (32, 0.0)
    with pytest.raises(ConfigError, match="MODEL_SERVER_BATCH_MAX_SIZE"):
        Settings.from_env({"MODEL_SERVER_BATCH_MAX_SIZE": "0"})
    with pytest.raises(ConfigError, match="MODEL_SERVER_BATCH_MAX_DELAY_MS"):
        Settings.from_env({"MODEL_SERVER_BATCH_MAX_DELAY_MS": "soon"})
