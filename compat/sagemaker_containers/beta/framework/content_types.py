"""The media types the AWS toolkits name (the same strings as ``handlers.codecs.media``)."""

from handlers.codecs import media

JSON = media.JSON
CSV = media.CSV
NPY = media.NPY
OCTET_STREAM = "application/octet-stream"
ANY = "*/*"
UTF8_TYPES = [JSON, CSV]
