"""The control plane (boto3 ``sagemaker``): models, endpoint configurations, endpoints.

Each operation checks its input against botocore's model first (local.validation), then the
rules the service adds (names unique, references existing, a sane container set), and answers
in the service's shapes. Errors are the service's: ``ValidationException`` for almost
everything, ``ResourceLimitExceeded`` beyond the platform's limits.
"""

import logging
import time
from typing import Any

from local.arns import arn
from local.endpoint import Endpoint
from local.instances import ContainerSpec
from local.platform import Platform
from local.records import ConfigRecord, ModelRecord
from local.service_errors import ServiceError, validation
from local.validation import check

log = logging.getLogger("local.control_plane")
MAX_CONTAINERS = 15
Params = dict[str, Any]


def _spec(definition: Params, hostname: str) -> ContainerSpec:
    multi = definition.get("Mode") == "MultiModel"
    if multi and not definition.get("ModelDataUrl"):
        raise validation(f"Container {hostname}: a MultiModel container needs ModelDataUrl (the S3 prefix of its models).")
    cache = definition.get("MultiModelConfig", {}).get("ModelCacheSetting", "Enabled")
    return ContainerSpec(
        hostname=hostname,
        image=definition.get("Image", ""),
        model_data_url=definition.get("ModelDataUrl"),
        multi_model=multi,
        environment=dict(definition.get("Environment", {})),
        cache_enabled=cache != "Disabled",
    )


class ControlPlane:
    def __init__(self, platform: Platform):
        self.platform = platform
        self.models: dict[str, ModelRecord] = {}
        self.configs: dict[str, ConfigRecord] = {}
        self.endpoints: dict[str, Endpoint] = {}

    def arn(self, kind: str, name: str) -> str:
        return arn(self.platform.region, kind, name)

    async def handle(self, operation: str, params: Params) -> Params:
        method = getattr(self, "op_" + operation, None)
        if method is None:
            raise ServiceError("UnknownOperationException", f"The local endpoint does not implement {operation}.")
        check("sagemaker", operation, params)
        result: Params = await method(params)
        return result

    # ------------------------------------------------------------------ models

    async def op_CreateModel(self, p: Params) -> Params:
        name = p["ModelName"]
        if name in self.models:
            raise validation(f'Cannot create already existing model "{self.arn("model", name)}".')
        if ("PrimaryContainer" in p) == ("Containers" in p):
            raise validation("Exactly one of PrimaryContainer and Containers must be given.")
        mode = p.get("InferenceExecutionConfig", {}).get("Mode", "Serial")
        if "PrimaryContainer" in p:
            specs, mode = [_spec(p["PrimaryContainer"], "primary")], "Single"
        else:
            definitions = p["Containers"]
            if len(definitions) > MAX_CONTAINERS:
                raise validation(f"A model may have at most {MAX_CONTAINERS} containers; {len(definitions)} were given.")
            hostnames = [d.get("ContainerHostname") or f"container{i + 1}" for i, d in enumerate(definitions)]
            if mode == "Direct" and not all(d.get("ContainerHostname") for d in definitions):
                raise validation("Every container of a model in Direct mode needs a ContainerHostname.")
            if len(set(hostnames)) != len(hostnames):
                raise validation("ContainerHostname must be unique among the containers of a model.")
            specs = [_spec(d, h) for d, h in zip(definitions, hostnames)]
            if mode == "Serial" and sum(s.multi_model for s in specs) > 1:
                raise validation("A serial inference pipeline may hold at most one MultiModel container.")
            if len(specs) == 1:
                mode = "Single"
        description = {k: v for k, v in p.items() if k != "Tags"}
        description["CreationTime"] = time.time()
        self.models[name] = ModelRecord(name, self.arn("model", name), specs, mode, description)
        return {"ModelArn": self.arn("model", name)}

    def _model(self, name: str) -> ModelRecord:
        if name not in self.models:
            raise validation(f'Could not find model "{self.arn("model", name)}".')
        return self.models[name]

    async def op_DescribeModel(self, p: Params) -> Params:
        record = self._model(p["ModelName"])
        return {**record.description, "ModelArn": record.arn}

    async def op_DeleteModel(self, p: Params) -> Params:
        self._model(p["ModelName"])
        del self.models[p["ModelName"]]
        return {}

    async def op_ListModels(self, p: Params) -> Params:
        return {"Models": [
            {"ModelName": m.name, "ModelArn": m.arn, "CreationTime": m.description["CreationTime"]}
            for m in sorted(self.models.values(), key=lambda m: m.name)
        ]}

    # ------------------------------------------------------------------ endpoint configurations

    async def op_CreateEndpointConfig(self, p: Params) -> Params:
        name = p["EndpointConfigName"]
        if name in self.configs:
            raise validation(f'Cannot create already existing endpoint configuration "{self.arn("endpoint-config", name)}".')
        variants = p["ProductionVariants"]
        names = [v["VariantName"] for v in variants]
        if len(set(names)) != len(names):
            raise validation("VariantName must be unique among the production variants.")
        for variant in variants:
            if "ModelName" not in variant:
                raise validation(f"Production variant {variant['VariantName']} needs a ModelName.")
            self._model(variant["ModelName"])
            if "ServerlessConfig" in variant:
                raise validation("Serverless variants are not supported by the local endpoint.")
            if "InitialInstanceCount" not in variant:
                raise validation(f"Production variant {variant['VariantName']} needs an InitialInstanceCount.")
        async_config = p.get("AsyncInferenceConfig")
        if async_config is not None:
            output = async_config.get("OutputConfig", {})
            if not output.get("S3OutputPath"):
                raise validation("AsyncInferenceConfig.OutputConfig.S3OutputPath is required.")
            for key in ("S3OutputPath", "S3FailurePath"):
                if key in output and not output[key].startswith("s3://"):
                    raise validation(f"AsyncInferenceConfig.OutputConfig.{key} must be an s3:// url.")
        description = {k: v for k, v in p.items() if k != "Tags"}
        description["CreationTime"] = time.time()
        self.configs[name] = ConfigRecord(name, self.arn("endpoint-config", name), variants, async_config, description)
        return {"EndpointConfigArn": self.arn("endpoint-config", name)}

    def _config(self, name: str) -> ConfigRecord:
        if name not in self.configs:
            raise validation(f'Could not find endpoint configuration "{self.arn("endpoint-config", name)}".')
        return self.configs[name]

    async def op_DescribeEndpointConfig(self, p: Params) -> Params:
        record = self._config(p["EndpointConfigName"])
        return {**record.description, "EndpointConfigArn": record.arn}

    async def op_DeleteEndpointConfig(self, p: Params) -> Params:
        self._config(p["EndpointConfigName"])
        del self.configs[p["EndpointConfigName"]]
        return {}

    # ------------------------------------------------------------------ endpoints

    async def op_CreateEndpoint(self, p: Params) -> Params:
        name = p["EndpointName"]
        if name in self.endpoints:
            raise validation(f'Cannot create already existing endpoint "{self.arn("endpoint", name)}".')
        config = self._config(p["EndpointConfigName"])
        models = {v["ModelName"]: self._model(v["ModelName"]) for v in config.variants}
        endpoint = Endpoint(name, self.arn("endpoint", name), config, models, self.platform)
        self.endpoints[name] = endpoint
        endpoint.deploy()
        return {"EndpointArn": endpoint.arn}

    def endpoint(self, name: str) -> Endpoint:
        if name not in self.endpoints:
            raise validation(f'Could not find endpoint "{self.arn("endpoint", name)}".')
        return self.endpoints[name]

    async def op_DescribeEndpoint(self, p: Params) -> Params:
        return self.endpoint(p["EndpointName"]).describe()

    async def op_DeleteEndpoint(self, p: Params) -> Params:
        endpoint = self.endpoint(p["EndpointName"])
        del self.endpoints[endpoint.name]
        await endpoint.delete()
        return {}

    async def op_ListEndpoints(self, p: Params) -> Params:
        found = [e for e in self.endpoints.values() if p.get("NameContains", "") in e.name]
        if "StatusEquals" in p:
            found = [e for e in found if e.status == p["StatusEquals"]]
        key = (lambda e: e.name) if p.get("SortBy") == "Name" else (lambda e: e.created)
        found.sort(key=key, reverse=p.get("SortOrder", "Descending") == "Descending")
        token = p.get("NextToken") or "0"
        if not token.isdigit():
            raise validation("The NextToken is not one this service gave.")
        start = int(token)
        size = int(p.get("MaxResults", 100))
        out: Params = {"Endpoints": [e.summary() for e in found[start:start + size]]}
        if start + size < len(found):
            out["NextToken"] = str(start + size)
        return out

    async def op_UpdateEndpoint(self, p: Params) -> Params:
        endpoint = self.endpoint(p["EndpointName"])
        if endpoint.status != "InService":
            raise validation(f'Cannot update in-progress endpoint "{endpoint.arn}".')
        config = self._config(p["EndpointConfigName"])
        if (config.async_config is None) != (endpoint.config.async_config is None):
            raise validation("The local endpoint cannot turn an endpoint asynchronous or back by UpdateEndpoint.")
        endpoint.switch(config, {v["ModelName"]: self._model(v["ModelName"]) for v in config.variants})
        return {"EndpointArn": endpoint.arn}

    async def op_UpdateEndpointWeightsAndCapacities(self, p: Params) -> Params:
        endpoint = self.endpoint(p["EndpointName"])
        if endpoint.status != "InService":
            raise validation(f'Cannot update in-progress endpoint "{endpoint.arn}".')
        known = {v.name for v in endpoint.variants}
        changes = {}
        for item in p["DesiredWeightsAndCapacities"]:
            if item["VariantName"] not in known:
                raise validation(f"The variant {item['VariantName']} does not exist on endpoint {endpoint.name}.")
            changes[item["VariantName"]] = item
        endpoint.update(changes)
        return {"EndpointArn": endpoint.arn}

    async def close(self) -> None:
        """Stop every endpoint's instances (at shutdown: no process is left behind)."""
        for endpoint in list(self.endpoints.values()):
            await endpoint.delete()
        self.endpoints.clear()
        await self.platform.client.aclose()
