"""The media types the AWS toolkits name (the same strings as ``handlers.codecs``)."""

from handlers import codecs

JSON = codecs.JSON
CSV = codecs.CSV
NPY = codecs.NPY
OCTET_STREAM = "application/octet-stream"
ANY = "*/*"
UTF8_TYPES = [JSON, CSV]
