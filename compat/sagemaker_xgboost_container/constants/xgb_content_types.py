"""The XGBoost container's own media types (the same strings as ``handlers.codecs``)."""

from handlers import codecs

LIBSVM = codecs.LIBSVM
X_LIBSVM = "text/x-libsvm"
X_RECORDIO_PROTOBUF = codecs.RECORDIO
X_PARQUET = "application/x-parquet"
