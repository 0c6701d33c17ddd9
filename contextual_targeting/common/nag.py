"""cdk-nag acknowledgments that state their reason next to the construct they concern."""

from __future__ import annotations

from collections.abc import Iterable

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str, findings: Iterable[str] = ()) -> None:
    """Acknowledge an AwsSolutions rule on a construct, for all or only the named findings.

    cdk-nag reports wildcard rules per finding (`AwsSolutions-IAM5[Resource::...]`) and CDK matches
    acknowledgments exactly, so naming the findings keeps any new wildcard visible.
    """
    ids = [f"AwsSolutions-{rule}[{finding}]" for finding in findings] or [f"AwsSolutions-{rule}"]
    for rule_id in ids:
        cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


def resource_finding(scope: IConstruct, value: str) -> str:
    """The IAM5 finding cdk-nag reports for a resource string: `Ref`s as `<Id>`, `GetAtt`s as `<Id.Attr>`.

    An acknowledgment id is plain text, while ARNs hold tokens (the account and region of an
    environment-agnostic synth, other resources' attributes): render them as cdk-nag prints them.
    """

    def render(node: object) -> str:
        if isinstance(node, str):
            return node
        if isinstance(node, dict) and len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Ref":
                return f"<{argument}>"
            if function == "Fn::GetAtt":
                return f"<{argument[0]}.{argument[1]}>"
            if function == "Fn::Join":
                return str(argument[0]).join(render(part) for part in argument[1])
        raise ValueError(f"cannot render {node!r} as a cdk-nag finding")

    return f"Resource::{render(cdk.Stack.of(scope).resolve(value))}"


def objects_finding(bucket: s3.IBucket, key_pattern: str) -> str:
    """The IAM5 finding cdk-nag reports for `bucket.arn_for_objects(key_pattern)`."""
    return resource_finding(bucket, bucket.arn_for_objects(key_pattern))
