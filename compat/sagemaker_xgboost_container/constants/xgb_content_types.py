"""The XGBoost container's own media types (the same strings as ``handlers.codecs.media``)."""

from handlers.codecs import media

LIBSVM = media.LIBSVM
X_LIBSVM = "text/x-libsvm"
X_RECORDIO_PROTOBUF = media.RECORDIO
X_PARQUET = "application/x-parquet"
