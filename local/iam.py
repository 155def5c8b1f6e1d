"""IAM as the local endpoint treats it: execution roles are accepted and not checked.

An endpoint here takes any ``ExecutionRoleArn``; the SageMaker Python SDK 3.x (``ModelBuilder``)
checks the role first, as it would on AWS: ``iam:SimulatePrincipalPolicy`` on the actions it needs
(moto has no such action: it answered an HTML 500 that botocore cannot parse) and ``iam:GetRole``
for the trust policy (a role nobody created in moto: ``NoSuchEntity``, so "the role does not
trust SageMaker"). Here every action is allowed, and a role moto does not have is answered as one
that trusts ``sagemaker.amazonaws.com``; roles created in moto are answered as moto has them.
"""

import json
import uuid
from urllib.parse import parse_qs, quote
from xml.sax.saxutils import escape

from starlette.responses import Response

from local.arns import ACCOUNT

_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def form(body: bytes) -> dict[str, str]:
    """A query-protocol request's parameters (IAM's requests are form-encoded POSTs)."""
    return {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}


def _answer(action: str, result: str) -> Response:
    xml = (f'<{action}Response xmlns="{_NS}"><{action}Result>{result}</{action}Result>'
           f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{action}Response>")
    return Response(xml, 200, headers={"Content-Type": "text/xml"})


def simulate_principal_policy(params: dict[str, str]) -> Response:
    """Every action named (``ActionNames.member.N``) is ``allowed``, on every resource named or ``*``."""
    actions = [params[key] for key in sorted(params, key=_member_number) if key.startswith("ActionNames.member.")]
    resources = [params[key] for key in params if key.startswith("ResourceArns.member.")] or ["*"]
    members = "".join(
        f"<member><EvalActionName>{escape(action)}</EvalActionName><EvalResourceName>{escape(resource)}"
        "</EvalResourceName><EvalDecision>allowed</EvalDecision><MatchedStatements/><MissingContextValues/></member>"
        for action in actions for resource in resources)
    return _answer("SimulatePrincipalPolicy", f"<IsTruncated>false</IsTruncated><EvaluationResults>{members}</EvaluationResults>")


def assumed_role(name: str) -> Response:
    """GetRole of a role moto does not have: one that SageMaker may assume."""
    role = (f"<Path>/</Path><RoleName>{escape(name)}</RoleName><RoleId>AROA{uuid.uuid5(uuid.NAMESPACE_URL, name).hex[:17].upper()}"
            f"</RoleId><Arn>arn:aws:iam::{ACCOUNT}:role/{escape(name)}</Arn><CreateDate>2026-01-01T00:00:00Z</CreateDate>"
            f"<AssumeRolePolicyDocument>{quote(json.dumps(TRUST))}</AssumeRolePolicyDocument><MaxSessionDuration>3600"
            "</MaxSessionDuration>")
    return _answer("GetRole", f"<Role>{role}</Role>")


def _member_number(key: str) -> int:
    tail = key.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else 0
