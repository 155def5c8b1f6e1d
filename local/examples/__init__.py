"""Runnable examples: each is a plain boto3 script that runs against the local endpoint
(``AWS_ENDPOINT_URL=http://127.0.0.1:8080``) and, with that variable unset, against AWS."""
