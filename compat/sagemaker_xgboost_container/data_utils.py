"""The content-type names of the XGBoost container's data configuration. ``get_dmatrix`` reads
training channels: importable, but calling it says that this server does not train."""

from typing import Any, NoReturn

from sagemaker_xgboost_container.constants import xgb_content_types

CSV = "csv"
LIBSVM = "libsvm"
PARQUET = "parquet"
RECORDIO_PROTOBUF = "recordio-protobuf"

_NAMES = {
    LIBSVM: LIBSVM, xgb_content_types.LIBSVM: LIBSVM, xgb_content_types.X_LIBSVM: LIBSVM,
    CSV: CSV, "text/csv": CSV,
    PARQUET: PARQUET, xgb_content_types.X_PARQUET: PARQUET,
    RECORDIO_PROTOBUF: RECORDIO_PROTOBUF, xgb_content_types.X_RECORDIO_PROTOBUF: RECORDIO_PROTOBUF,
}


def get_content_type(content_type_cfg_val: str | None) -> str:
    """``csv``, ``libsvm``, ``parquet`` or ``recordio-protobuf`` for a channel's ContentType (None: libsvm)."""
    if content_type_cfg_val is None:
        return LIBSVM
    bare = content_type_cfg_val.split(";", 1)[0].strip().lower()
    if bare not in _NAMES:
        raise ValueError(f"{content_type_cfg_val} is not an accepted ContentType: 'csv', 'libsvm', 'text/csv', "
                         "'text/libsvm', 'text/x-libsvm', 'parquet', 'recordio-protobuf'.")
    return _NAMES[bare]


def get_dmatrix(*args: Any, **kwargs: Any) -> NoReturn:
    raise RuntimeError("sagemaker_xgboost_container.data_utils.get_dmatrix reads training channels; "
                       "this server serves inference only (see docs/compat.md)")
