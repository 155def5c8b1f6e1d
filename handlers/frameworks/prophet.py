"""Prophet: ``model.json`` written by ``prophet.serialize.model_to_json``.

A request asks for a forecast either by horizon, ``{"periods": N, "freq": "D",
"include_history": false}`` (``"period"`` is an alias), or by explicit future dates with the
extra columns the model needs (regressors, ``cap``/``floor`` for logistic growth, seasonality
conditions): ``{"ds": [...], "temp": [...]}``, ``{"instances": [{"ds": ..., "temp": ...}]}``, a
list of such records, a CSV with a header row (``ds,temp``) or JSON Lines of records.

The answer has one record per date: ``ds`` (ISO date), ``yhat``, ``yhat_lower``, ``yhat_upper``,
as JSON records, CSV with a header row or JSON Lines. The intervals come from Prophet's own
sampling with the model's ``uncertainty_samples``, so they vary slightly between calls.
"""

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import orjson

from handlers.base import Framework, default_encode
from handlers.codecs import media
from handlers.codecs.records import json_value, jsonlines_records
from handlers.context import Context
from handlers.describe import short
from handlers.errors import BadInput, NotAcceptable, UnsupportedContentType

MODEL_FILE = "model.json"
MAX_PERIODS = 100_000
# Prophet draws ``uncertainty_samples`` paths for every date: about 32 bytes per date and sample
# at the peak (116 MB for 3,650 dates x 1,000 samples). Refuse forecasts that would need more
# than about 800 MB rather than let the worker be killed; fewer samples allow more dates.
MAX_SAMPLED_POINTS = 25_000_000
COLUMNS = ("ds", "yhat", "yhat_lower", "yhat_upper")
OFFERED = (media.JSON, media.CSV, media.JSONLINES)
# Keys model_to_json writes among its first ones; an XGBoost model never has them.
_HEAD_KEYS = (b'"growth"', b'"changepoint_range"', b'"seasonality_mode"')
_QUIET = {"cmdstanpy": logging.WARNING, "prophet": logging.WARNING, "prophet.plot": logging.CRITICAL}


# ---------------------------------------------------------------------------------- find and load


def _is_prophet_json(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            head = file.read(4096).lstrip()
    except OSError:
        return False
    return head.startswith(b"{") and b'"learner"' not in head and all(key in head for key in _HEAD_KEYS)


def find(model_dir: Path) -> Path | None:
    candidate = model_dir / MODEL_FILE
    if candidate.is_file() and _is_prophet_json(candidate):
        return candidate
    return None


def load(artifact: Path):
    from prophet.serialize import model_from_json

    return model_from_json(artifact.read_text(encoding="utf-8"))


def _quiet() -> None:
    for name, level in _QUIET.items():
        logging.getLogger(name).setLevel(level)


def setup(threads: int, fpmath_mode: str | None = None) -> None:
    # Prophet regrets a missing plotly at ERROR while importing (we never plot) and cmdstanpy
    # chats at INFO: quiet both before the import. Forecasts run in NumPy, whose thread count
    # the worker's environment already holds to its share.
    _quiet()
    import prophet.serialize  # noqa: F401
    from cmdstanpy.utils import get_logger

    get_logger()  # cmdstanpy configures its logger on first use: let it, then quiet it again
    _quiet()


# ---------------------------------------------------------------------------------- decode


@dataclass
class Horizon:
    periods: int
    freq: str = "D"
    include_history: bool = False


def _int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise BadInput(f"{name!r} must be a whole number")
    number = int(value)
    if not 1 <= number <= MAX_PERIODS:
        raise BadInput(f"{name!r} must be between 1 and {MAX_PERIODS}; got {number}")
    return number


def _horizon(value: dict) -> Horizon:
    if "periods" in value and "period" in value:
        raise BadInput("send \"periods\" or its alias \"period\", not both")
    key = "periods" if "periods" in value else "period"
    periods = _int(value[key], key)
    freq = value.get("freq", "D")
    if not isinstance(freq, str) or not freq.strip():
        raise BadInput("\"freq\" must be a pandas frequency string such as \"D\", \"h\" or \"MS\"")
    include_history = value.get("include_history", False)
    if not isinstance(include_history, bool):
        raise BadInput("\"include_history\" must be true or false")
    unknown = sorted(set(value) - {key, "freq", "include_history"})
    if unknown:
        raise BadInput(f"unexpected field(s) with \"{key}\": {', '.join(unknown)}")
    return Horizon(periods, freq.strip(), include_history)


def _frame(value, what: str):
    """Records (a list of objects) or columns (an object of lists) as a DataFrame with ``ds``."""
    import pandas as pd

    if isinstance(value, list):
        if not value:
            raise BadInput(f"{what} holds no records")
        if not all(isinstance(record, dict) for record in value):
            raise BadInput(f"{what} must be a list of objects such as {{\"ds\": \"2024-01-01\"}}")
        frame = pd.DataFrame.from_records(value)
    elif isinstance(value, dict):
        columns = {key: item if isinstance(item, list) else [item] for key, item in value.items()}
        if len({len(item) for item in columns.values()}) > 1:
            raise BadInput(f"the columns of {what} have different lengths")
        frame = pd.DataFrame(columns)
    else:
        raise BadInput(f"{what} must be records or columns with a \"ds\" field")
    return frame


def _decode_json(body: bytes):
    value = json_value(body)
    if isinstance(value, dict):
        if "periods" in value or "period" in value:
            return _horizon(value)
        for key in ("instances", "inputs"):
            if key in value:
                return _frame(value[key], f"{key!r}")
        if "ds" in value:
            return _frame(value, "the JSON body")
        raise BadInput(
            "send {\"periods\": N, \"freq\": \"D\"} or future dates as {\"ds\": [...]} "
            "or {\"instances\": [{\"ds\": ...}]}"
        )
    if isinstance(value, list):
        return _frame(value, "the JSON body")
    raise BadInput("the JSON body must be an object or a list of records")


def _decode_jsonlines(body: bytes):
    records = jsonlines_records(body)
    if len(records) == 1 and isinstance(records[0], dict) and ("periods" in records[0] or "period" in records[0]):
        return _horizon(records[0])
    return _frame(records, "the JSON Lines body")


def _decode_csv(body: bytes):
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body), skipinitialspace=True)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise BadInput(f"CSV body is not a table with a header row: {short(err)}") from None
    frame.columns = [str(column).strip() for column in frame.columns]
    return frame


def decode(body: bytes, content_type: str | None, context: Context):
    kind = media.media_type(content_type)
    if not body or not body.strip():
        raise BadInput("request body is empty")
    if kind == media.JSON:
        return _decode_json(body)
    if kind == media.JSONLINES:
        return _decode_jsonlines(body)
    if kind == media.CSV:
        return _decode_csv(body)
    shown = kind or "(none)"
    raise UnsupportedContentType(
        f"Content-Type {shown!r} is not supported by Prophet models; use one of {', '.join(OFFERED)}"
    )


# ---------------------------------------------------------------------------------- predict


def required_columns(model) -> list[str]:
    """The columns beside ``ds`` a future frame must carry for this model."""
    needed = list(model.extra_regressors)
    if model.growth == "logistic":
        needed.append("cap")
        if model.logistic_floor:
            needed.append("floor")
    for properties in model.seasonalities.values():
        condition = properties.get("condition_name")
        if condition:
            needed.append(condition)
    return needed


def _future(model, request):
    import pandas as pd

    if isinstance(request, Horizon):
        needed = required_columns(model)
        if needed:
            raise BadInput(
                f"this model needs {', '.join(needed)} for every future date: send explicit dates "
                f"with them, e.g. {{\"ds\": [...], \"{needed[0]}\": [...]}}"
            )
        try:
            return model.make_future_dataframe(
                periods=request.periods, freq=request.freq, include_history=request.include_history
            )
        except (ValueError, TypeError) as err:
            reason = str(err).split(". ")[0]
            raise BadInput(f"cannot build future dates with freq {request.freq!r}: {reason}") from None
    frame = request
    if not isinstance(frame, pd.DataFrame):  # a user's input_fn handed over something else
        frame = _frame(frame, "the input")
    if "ds" not in frame.columns:
        raise BadInput("the input has no \"ds\" column of dates")
    missing = [column for column in required_columns(model) if column not in frame.columns]
    if missing:
        raise BadInput(f"missing column(s) this model needs: {', '.join(missing)}")
    frame = frame.copy()
    try:
        frame["ds"] = pd.to_datetime(frame["ds"])
    except (ValueError, TypeError, OverflowError) as err:
        raise BadInput(f"\"ds\" holds something that is not a date: {short(err)}") from None
    if frame["ds"].isna().any():
        raise BadInput("\"ds\" has missing dates")
    if getattr(frame["ds"].dt, "tz", None) is not None:
        raise BadInput("\"ds\" dates must not carry a time zone")
    for column in required_columns(model):
        try:
            frame[column] = pd.to_numeric(frame[column])
        except (ValueError, TypeError):
            raise BadInput(f"column {column!r} must hold numbers") from None
        if frame[column].isna().any():
            raise BadInput(f"column {column!r} has missing values")
    return frame


def max_dates(model) -> int:
    """The most dates one forecast of ``model`` may cover (see MAX_SAMPLED_POINTS)."""
    return max(1, MAX_SAMPLED_POINTS // max(1, int(model.uncertainty_samples or 0)))


def predict(model, request, context=None):
    future = _future(model, request)
    limit = max_dates(model)
    if len(future) > limit:
        raise BadInput(
            f"this forecast covers {len(future)} dates; at most {limit} per request for this model "
            f"(uncertainty_samples={model.uncertainty_samples}): ask for fewer periods"
        )
    try:
        forecast = model.predict(future)
    except (ValueError, TypeError, KeyError) as err:
        raise BadInput(f"the model cannot forecast these dates: {err}") from None
    return forecast[[column for column in COLUMNS if column in forecast.columns]]


# ---------------------------------------------------------------------------------- encode


def _dates(series) -> list[str]:
    """ISO dates; ISO date-times when any date has a time of day."""
    if (series.dt.normalize() == series).all():
        return series.dt.strftime("%Y-%m-%d").tolist()
    return series.dt.strftime("%Y-%m-%dT%H:%M:%S").tolist()


def _records(forecast) -> list[dict]:
    columns = {name: forecast[name].to_numpy() for name in forecast.columns if name != "ds"}
    dates = _dates(forecast["ds"])
    return [
        {"ds": date, **{name: float(values[i]) for name, values in columns.items()}}
        for i, date in enumerate(dates)
    ]


def encode(forecast, accept: str | None, context: Context) -> tuple[bytes, str]:
    import pandas as pd

    if not isinstance(forecast, pd.DataFrame):  # a user's predict_fn returned its own answer
        return default_encode(forecast, accept, context)
    default = context.default_accept if context.default_accept in OFFERED else media.JSON
    kind = media.negotiate(accept, default, OFFERED)
    if kind not in OFFERED:
        raise NotAcceptable(f"a forecast cannot be written as {kind}; available: {', '.join(OFFERED)}")
    if kind == media.CSV:
        table = forecast.copy()
        table["ds"] = _dates(forecast["ds"])
        return table.to_csv(index=False, float_format="%.10g").encode(), kind
    records = _records(forecast)
    if kind == media.JSONLINES:
        return b"".join(orjson.dumps(record) + b"\n" for record in records), kind
    return orjson.dumps(records), kind


# A loaded model holds its history and parameters as arrays: measured at 1.0x its JSON text
# (179 KB of RSS per 176 KB model.json, 100 loads). Forecasts allocate per request on top
# (bounded by MAX_SAMPLED_POINTS). A worker with Prophet, pandas and NumPy imported: ~110 MB.
FRAMEWORK = Framework(
    name="prophet",
    find=find,
    load=load,
    predict=predict,
    decode=decode,
    encode=encode,
    memory_factor=1.5,
    worker_bytes=120 * 2**20,
    imports=("numpy", "pandas"),
    setup=setup,
    patterns=("model.json (Prophet)",),
)
