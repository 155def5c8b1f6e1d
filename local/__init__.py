"""A local SageMaker endpoint: the platform's side of the hosting contract, on one port.

``python -m local serve --port 8080`` answers the ``sagemaker`` control plane, the
``sagemaker-runtime`` data plane, and (through moto, behind the same port) S3, SNS and SQS, so
that a boto3 script written for AWS runs here with one ``endpoint_url`` for every client. The
instances behind an endpoint are processes running this repository's server exactly as the
platform runs the image (``serve`` with the platform's variables, the model unpacked into a
directory of each instance's own).
"""
