"""Routing through the local endpoint: between variants by weight, and between a variant's instances.

LEAST_OUTSTANDING_REQUESTS sends concurrent slow requests to distinct instances; RANDOM spreads
requests over every instance regardless of load; weights (changed by
UpdateEndpointWeightsAndCapacities) decide the variant unless TargetVariant names one.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest

from local.examples.steps import deploy, wait_status
from models.layout import archive
from tests.builders import SLOW_CODE, sklearn_model
from tests.local_endpoint.support import local_endpoint

SLOW = b"101.5,1,2,3"  # SLOW_CODE sleeps 1.5 s on this row
QUICK = b"1,2,3,4"


local = local_endpoint()


@pytest.fixture(scope="module")
def routed(local, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    sklearn_model(root / "slow" / "model", code=SLOW_CODE)
    s3 = local.boto("s3")
    s3.create_bucket(Bucket="routing")
    s3.upload_file(str(archive(root, "slow")), "routing", "slow.tar.gz")

    def variant(name, count, strategy, weight):
        return {"VariantName": name, "ModelName": "routed", "InitialInstanceCount": count, "InstanceType": "ml.m5.large",
                "InitialVariantWeight": weight, "RoutingConfig": {"RoutingStrategy": strategy}}

    deploy(local.boto("sagemaker"), "routed", {"Image": "local", "ModelDataUrl": "s3://routing/slow.tar.gz"},
           variants=[variant("lor", 3, "LEAST_OUTSTANDING_REQUESTS", 1.0), variant("random", 2, "RANDOM", 0.0)],
           timeout=180)
    return "routed"


def served(local, name) -> dict:
    return {i["instance"]: i["served"] for i in local.instances(name)["instances"]}


def test_least_outstanding_requests_spreads_concurrent_slow_requests(local, routed):
    runtime = local.boto("sagemaker-runtime")
    before = served(local, routed)
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(
            lambda _: runtime.invoke_endpoint(EndpointName=routed, Body=SLOW, ContentType="text/csv"), range(3)))
    assert {a["InvokedProductionVariant"] for a in answers} == {"lor"}  # weight 0 takes nothing
    after = served(local, routed)
    grew = {name: after[name] - before.get(name, 0) for name in after if name.startswith("lor")}
    assert sorted(grew.values()) == [1, 1, 1], grew  # one on each instance: none queued behind another


def test_random_reaches_every_instance_and_target_variant_wins(local, routed):
    runtime = local.boto("sagemaker-runtime")
    for _ in range(24):
        answer = runtime.invoke_endpoint(EndpointName=routed, Body=QUICK, ContentType="text/csv", TargetVariant="random")
        assert answer["InvokedProductionVariant"] == "random"
    counts = served(local, routed)
    assert counts["random-0"] > 0 and counts["random-1"] > 0, counts
    with pytest.raises(runtime.exceptions.ValidationError, match="does not exist"):
        runtime.invoke_endpoint(EndpointName=routed, Body=QUICK, ContentType="text/csv", TargetVariant="ghost")


def test_update_weights_moves_the_traffic(local, routed):
    sm, runtime = local.boto("sagemaker"), local.boto("sagemaker-runtime")
    sm.update_endpoint_weights_and_capacities(EndpointName=routed, DesiredWeightsAndCapacities=[
        {"VariantName": "lor", "DesiredWeight": 0.0}, {"VariantName": "random", "DesiredWeight": 1.0}])
    described = wait_status(sm, routed, timeout=60)
    assert {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]} == {"lor": 0.0, "random": 1.0}
    variants = {runtime.invoke_endpoint(EndpointName=routed, Body=QUICK, ContentType="text/csv")["InvokedProductionVariant"]
                for _ in range(10)}
    assert variants == {"random"}
