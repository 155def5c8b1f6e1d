"""IAM through the local endpoint: execution roles are accepted and not checked (local/iam.py).

What the SageMaker Python SDK 3.x's ModelBuilder asks before it creates a model: that the role is
allowed the actions it needs, and that it trusts SageMaker. Both must answer as for a usable role,
in IAM's own wire format (botocore parses them); a role created in moto is still moto's.
"""

import json

from tests.local_endpoint.support import local_endpoint

local = local_endpoint()
ROLE = "arn:aws:iam::123456789012:role/local"


def test_every_action_is_allowed(local):
    answer = local.boto("iam").simulate_principal_policy(
        PolicySourceArn=ROLE, ActionNames=["sagemaker:CreateModel", "s3:GetObject"])
    assert [(r["EvalActionName"], r["EvalDecision"]) for r in answer["EvaluationResults"]] == [
        ("sagemaker:CreateModel", "allowed"), ("s3:GetObject", "allowed")]
    assert answer["IsTruncated"] is False


def test_a_role_nobody_created_trusts_sagemaker(local):
    role = local.boto("iam").get_role(RoleName="local")["Role"]
    assert role["Arn"] == ROLE
    principals = [s["Principal"]["Service"] for s in role["AssumeRolePolicyDocument"]["Statement"]]
    assert principals == ["sagemaker.amazonaws.com"]


def test_a_role_created_in_moto_is_moto_s(local):
    iam = local.boto("iam")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName="made", AssumeRolePolicyDocument=json.dumps(trust), Description="mine")
    role = iam.get_role(RoleName="made")["Role"]
    assert role["Description"] == "mine"
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"] == "lambda.amazonaws.com"
