"""HTTP tests of the local endpoint (``local/``), one module per behaviour, driven by real boto3 clients."""
