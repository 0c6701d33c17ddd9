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


def objects_finding(bucket: s3.IBucket, key_pattern: str) -> str:
    """The IAM5 finding cdk-nag reports for `bucket.arn_for_objects(key_pattern)`."""
    cfn_bucket = bucket.node.default_child
    assert isinstance(cfn_bucket, cdk.CfnElement), "only buckets defined in this app have a finding id"
    logical_id = cdk.Stack.of(cfn_bucket).get_logical_id(cfn_bucket)
    return f"Resource::<{logical_id}.Arn>/{key_pattern}"
