"""Run the stack's Lambda functions in this process, as Lambda would: their own code, handler, environment
and layers, with `boto3.client` answered by local stand-ins (moto for S3, fakes for the rest).

A function is found from the synthesized template (handler, environment, layers) and the folder its asset
is built from (`SynthesizedStack.code`); its handler module is imported under a name of its own, so every
function's `handler.py` stays apart, with the function's folder and its layers' `python/` on `sys.path` as
in the Lambda runtime.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from contextual_targeting.local.harness import AwsError, render_tokens

MOTO_SERVICES = frozenset({"s3"})
"""Services the functions reach through moto (`mock_aws` must be active while they run)."""


class NoStandInError(RuntimeError):
    """A function asked for a client of a service the local run has no stand-in for (no network, ever)."""


@dataclass(frozen=True, kw_only=True)
class LambdaContext:
    """The parts of Lambda's context object the functions read."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str
    memory_limit_in_mb: int = 512

    def get_remaining_time_in_millis(self) -> int:
        """Plenty: a local run has no timeout."""
        return 900_000


@dataclass(kw_only=True)
class LocalFunction:
    """One function of the template."""

    logical_id: str
    name: str
    arn: str
    code: Path
    handler: str
    environment: dict[str, str]
    layers: list[Path]
    module: ModuleType | None = None
    log: io.StringIO = field(default_factory=io.StringIO)
    """What the function printed or logged (CloudWatch Logs in Lambda), over every invocation."""


@dataclass(kw_only=True)
class LocalLambdas:
    """The template's functions, invoked in-process with stand-in clients."""

    functions: dict[str, LocalFunction]
    """By ARN."""
    region: str
    clients: Mapping[str, Any] = field(default_factory=dict)
    """Service name -> stand-in client (e.g. `customer-profiles`, `stepfunctions`)."""
    invocations: list[tuple[str, Any]] = field(default_factory=list)
    _requests: int = 0

    @classmethod
    def from_template(
        cls,
        template: Mapping[str, Any],
        code: Mapping[str, Path],
        substitutions: Mapping[str, Any],
        *,
        region: str,
        clients: Mapping[str, Any],
    ) -> LocalLambdas:
        """Every `AWS::Lambda::Function` of the template whose code folder is known."""
        resources = template.get("Resources", {})
        known = [*resources, *template.get("Parameters", {})]
        functions: dict[str, LocalFunction] = {}
        for logical_id, resource in resources.items():
            if resource.get("Type") != "AWS::Lambda::Function" or logical_id not in code:
                continue
            props = resource["Properties"]
            variables = (props.get("Environment") or {}).get("Variables") or {}
            layers = [render_tokens(layer, substitutions, known) for layer in props.get("Layers", [])]
            arn = str(render_tokens({"Fn::GetAtt": [logical_id, "Arn"]}, substitutions, known))
            functions[arn] = LocalFunction(
                logical_id=logical_id,
                name=str(render_tokens({"Ref": logical_id}, substitutions, known)),
                arn=arn,
                code=code[logical_id],
                handler=str(props.get("Handler", "handler.handler")),
                environment={k: str(v) for k, v in render_tokens(variables, substitutions, known).items()},
                layers=[code[_layer_id(layer, substitutions)] / "python" for layer in layers],
            )
        return cls(functions=functions, region=region, clients=dict(clients))

    def knows(self, arn: str) -> bool:
        """Whether `arn` (or a qualified `arn:...:<version>`) is one of the functions."""
        return self._function(arn) is not None

    def invoke(self, arn: str, event: Any) -> Any:
        """Call the function's handler with `event`; a raised exception becomes Lambda's function error."""
        function = self._function(arn)
        if function is None:
            raise AwsError("Lambda.ResourceNotFoundException", f"Function not found: {arn}")
        self._requests += 1
        context = LambdaContext(
            function_name=function.name,
            invoked_function_arn=function.arn,
            aws_request_id=f"local-{self._requests:08d}",
        )
        self.invocations.append((function.logical_id, event))
        with self._runtime(function):
            module = self._module(function)
            handler = getattr(module, function.handler.rsplit(".", 1)[1])
            try:
                return json.loads(json.dumps(handler(json.loads(json.dumps(event)), context)))
            except NoStandInError:
                raise  # the local run is incomplete: stop it, do not let the workflow handle it
            except Exception as err:
                # What the Step Functions Lambda integration reports for a function error.
                cause = {
                    "errorMessage": str(err),
                    "errorType": type(err).__name__,
                    "requestId": context.aws_request_id,
                    "stackTrace": traceback.format_tb(err.__traceback__)[-5:],
                }
                raise AwsError(type(err).__name__, json.dumps(cause)) from err

    def _function(self, arn: str) -> LocalFunction | None:
        if arn in self.functions:
            return self.functions[arn]
        unqualified = arn.rsplit(":", 1)[0]
        by_name = {f.name: f for f in self.functions.values()}
        return self.functions.get(unqualified) or by_name.get(arn)

    def _module(self, function: LocalFunction) -> ModuleType:
        if function.module is None:
            module_name, _ = function.handler.rsplit(".", 1)
            for folder in [function.code, *function.layers]:
                if str(folder) not in sys.path:
                    sys.path.insert(0, str(folder))  # handlers import their siblings by bare name
            unique = f"_contextual_targeting_local_{function.logical_id}_{id(self)}"
            spec = importlib.util.spec_from_file_location(unique, function.code / f"{module_name}.py")
            if spec is None or spec.loader is None:
                raise RuntimeError(f"no handler module {module_name}.py in {function.code}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[unique] = module
            spec.loader.exec_module(module)
            function.module = module
        return function.module

    @contextmanager
    def _runtime(self, function: LocalFunction) -> Iterator[None]:
        """The function's environment and stand-in clients, for the length of one import or call."""
        import boto3

        real_client: Any = boto3.client  # its overloads want a literal service name

        def client(service_name: str, *args: Any, **kwargs: Any) -> Any:
            if service_name in self.clients:
                return self.clients[service_name]
            if service_name in MOTO_SERVICES:
                return real_client(service_name, *args, **{"region_name": self.region, **kwargs})
            raise NoStandInError(
                f"{function.logical_id} asked for a {service_name} client: no local stand-in answers it"
            )

        environment = {
            **function.environment,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
        }
        # Log handlers a module creates at import keep the stream they found: the same buffer each time.
        with (
            mock.patch.dict(os.environ, environment),
            mock.patch.object(boto3, "client", client),
            contextlib.redirect_stdout(function.log),
            contextlib.redirect_stderr(function.log),
        ):
            yield


def _layer_id(layer: Any, substitutions: Mapping[str, Any]) -> str:
    """The logical id of a layer from its rendered reference (a substitution value or a fake ARN)."""
    for key, value in substitutions.items():
        if value == layer:
            return key
    return str(layer).rsplit(":", 1)[-1]
