"""Prophet over real HTTP in multi-model mode: per-customer ``model.json`` files load without user
code, forecasts equal Prophet's own in-process forecasts, and each way of asking (horizon, the
``period`` alias, explicit dates, CSV, JSON Lines, history) and each bad request is answered."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import handlers
from handlers.codecs import media
from handlers.frameworks import prophet as prophet_handler
from handlers.frameworks import xgboost as xgboost_handler
from models.layout import model_dir

JSON = {"Content-Type": media.JSON}
CUSTOMERS = ("customer-0001", "customer-0002", "customer-0003")


def build_with_regressor(root):
    """A model with an extra regressor, which a bare horizon cannot feed."""
    from prophet import Prophet
    from prophet.serialize import model_to_json

    rng = np.random.default_rng(3)
    ds = pd.date_range("2023-01-01", periods=120, freq="D")
    temperature = rng.normal(15, 5, len(ds))
    frame = pd.DataFrame({"ds": ds, "temperature": temperature, "y": 100 + 4 * temperature + rng.normal(0, 2, len(ds))})
    model = Prophet(yearly_seasonality=False, uncertainty_samples=0)
    model.add_regressor("temperature")
    (model_dir(root, "customer-regressor") / "model.json").write_text(model_to_json(model.fit(frame)))


@pytest.fixture(scope="module")
def root(examples):
    root = examples("prophet")
    build_with_regressor(root)
    return root


@pytest.fixture(scope="module")
def server(start_module_server, root):
    server = start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    for customer in CUSTOMERS + ("customer-regressor",):
        server.load(customer, root / customer / "model")
    return server


@pytest.fixture(scope="module")
def local(root):
    """The same artifacts loaded in this process."""
    from prophet.serialize import model_from_json

    return {
        customer: model_from_json((root / customer / "model" / "model.json").read_text())
        for customer in CUSTOMERS + ("customer-regressor",)
    }


def invoke(server, name, body=None, headers=None, **kwargs):
    return server.client.post(f"/models/{name}/invoke", content=body, headers=headers or JSON, **kwargs)


def check_forecast(records, expected: pd.DataFrame):
    """Dates and yhat exactly as Prophet's own; the sampled interval close to Prophet's own."""
    got = pd.DataFrame(records)
    assert list(got.columns) == ["ds", "yhat", "yhat_lower", "yhat_upper"]
    assert got["ds"].tolist() == expected["ds"].dt.strftime("%Y-%m-%d").tolist()
    assert_allclose(got["yhat"], expected["yhat"], rtol=1e-9)
    assert (got["yhat_lower"] < got["yhat"]).all() and (got["yhat"] < got["yhat_upper"]).all()
    width = float((expected["yhat_upper"] - expected["yhat_lower"]).mean())
    assert_allclose(got["yhat_lower"], expected["yhat_lower"], atol=0.2 * width)
    assert_allclose(got["yhat_upper"], expected["yhat_upper"], atol=0.2 * width)


def test_model_json_is_prophet_and_never_xgboost(root, examples):
    directory = root / "customer-0001" / "model"
    framework, artifact = handlers.detect(directory)
    assert framework.name == "prophet" and artifact.name == "model.json"
    assert xgboost_handler.find(directory) is None
    xgboost_json = examples("xgboost") / "xgboost-regressor" / "model"
    assert prophet_handler.find(xgboost_json) is None
    assert handlers.detect(xgboost_json)[0].name == "xgboost"


def test_customers_load_without_user_code(server):
    listed = {model["modelName"] for model in server.client.get("/models").json()["models"]}
    assert set(CUSTOMERS) <= listed


@pytest.mark.parametrize("customer", CUSTOMERS)
def test_periods_match_in_process_forecast(server, local, customer):
    response = invoke(server, customer, json={"periods": 14})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    model = local[customer]
    expected = model.predict(model.make_future_dataframe(periods=14, include_history=False))
    check_forecast(response.json(), expected)


def test_customers_get_their_own_forecasts(server):
    answers = [invoke(server, c, json={"periods": 3}).json() for c in CUSTOMERS]
    assert len({tuple(round(r["yhat"], 6) for r in answer) for answer in answers}) == len(CUSTOMERS)


def test_period_alias_and_frequency(server, local):
    model = local["customer-0002"]
    response = invoke(server, "customer-0002", json={"period": 4, "freq": "W"})
    assert response.status_code == 200, response.text
    check_forecast(response.json(), model.predict(model.make_future_dataframe(periods=4, freq="W", include_history=False)))


def test_include_history(server, local):
    model = local["customer-0001"]
    response = invoke(server, "customer-0001", json={"periods": 5, "include_history": True})
    assert response.status_code == 200, response.text
    records = response.json()
    assert len(records) == len(model.history) + 5
    assert records[0]["ds"] == model.history["ds"].min().strftime("%Y-%m-%d")


@pytest.mark.parametrize("shape", ["columns", "instances", "records"])
def test_explicit_dates(server, local, shape):
    dates = ["2024-03-01", "2024-06-15", "2025-01-01"]
    body = {
        "columns": {"ds": dates},
        "instances": {"instances": [{"ds": d} for d in dates]},
        "records": [{"ds": d} for d in dates],
    }[shape]
    response = invoke(server, "customer-0003", json=body)
    assert response.status_code == 200, response.text
    model = local["customer-0003"]
    check_forecast(response.json(), model.predict(pd.DataFrame({"ds": pd.to_datetime(dates)})))


def test_csv_in_and_out(server, local):
    headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
    response = invoke(server, "customer-0001", b"ds\n2024-02-01\n2024-02-02\n", headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text.splitlines()[0] == "ds,yhat,yhat_lower,yhat_upper"
    table = pd.read_csv(io.StringIO(response.text))
    model = local["customer-0001"]
    expected = model.predict(pd.DataFrame({"ds": pd.to_datetime(["2024-02-01", "2024-02-02"])}))
    check_forecast(table.to_dict("records"), expected)


def test_jsonlines_in_and_out(server):
    headers = {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}
    response = invoke(server, "customer-0002", b'{"ds": "2024-02-01"}\n{"ds": "2024-02-05"}\n', headers)
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines() if line]
    assert [line["ds"] for line in lines] == ["2024-02-01", "2024-02-05"]


def test_regressor_needed_and_given(server, local):
    response = invoke(server, "customer-regressor", json={"periods": 3})
    assert response.status_code == 400
    assert "temperature" in response.json()["message"]
    response = invoke(server, "customer-regressor", json={"ds": ["2023-05-02", "2023-05-03"]})
    assert response.status_code == 400
    assert "temperature" in response.json()["message"]
    body = {"instances": [{"ds": "2023-05-02", "temperature": 20}, {"ds": "2023-05-03", "temperature": 10}]}
    response = invoke(server, "customer-regressor", json=body)
    assert response.status_code == 200, response.text
    model = local["customer-regressor"]
    expected = model.predict(pd.DataFrame({"ds": pd.to_datetime(["2023-05-02", "2023-05-03"]), "temperature": [20, 10]}))
    got = response.json()
    assert_allclose([r["yhat"] for r in got], expected["yhat"], rtol=1e-9)


@pytest.mark.parametrize("body,needle", [
    (b"{not json", "JSON"),
    (b'{"periods": 0}', "periods"),
    (b'{"periods": 1000000}', "periods"),
    (b'{"periods": 100000}', "at most"),
    (b'{"periods": "ten"}', "periods"),
    (b'{"periods": 3, "freq": "fortnightly"}', "freq"),
    (b'{"something": 1}', "periods"),
    (b'{"ds": ["not a date"]}', "ds"),
    (b"[1, 2, 3]", "ds"),
])
def test_bad_bodies_are_400_with_a_message(server, body, needle):
    response = invoke(server, "customer-0001", body)
    assert response.status_code == 400, response.text
    assert needle in response.json()["message"]
    assert "Traceback" not in response.text


def test_npy_is_not_acceptable(server):
    response = invoke(server, "customer-0001", json={"periods": 3}, headers={**JSON, "Accept": "application/x-npy"})
    assert response.status_code == 406
    response = invoke(server, "customer-0001", b'{"periods": 3}', {**JSON, "Content-Type": "application/x-npy"})
    assert response.status_code == 415
