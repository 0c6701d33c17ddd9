"""Hardened S3 buckets shared by every component."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import Construct

from contextual_targeting.common.nag import acknowledge


def access_log_bucket(scope: Construct, construct_id: str) -> s3.Bucket:
    """Bucket that receives the S3 server access logs of the project's data buckets."""
    bucket = s3.Bucket(
        scope,
        construct_id,
        # Server access logging only delivers to SSE-S3 buckets, not SSE-KMS.
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=True,
        lifecycle_rules=[
            s3.LifecycleRule(
                expiration=cdk.Duration.days(365),
                noncurrent_version_expiration=cdk.Duration.days(30),
            )
        ],
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )
    acknowledge(bucket, "S1", "This is the access-log bucket itself; logging it into itself would loop.")
    return bucket


def secure_bucket(
    scope: Construct,
    construct_id: str,
    *,
    access_logs: s3.IBucket,
    log_prefix: str,
    lifecycle_rules: Sequence[s3.LifecycleRule] | None = None,
) -> s3.Bucket:
    """Encrypted, TLS-only, private, versioned, access-logged bucket that emits EventBridge notifications.

    `lifecycle_rules` replace the default (noncurrent versions 30 days, incomplete uploads 7 days)."""
    bucket = s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=True,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=log_prefix,
        lifecycle_rules=list(lifecycle_rules)
        if lifecycle_rules is not None
        else [
            s3.LifecycleRule(
                # Versioning keeps overwritten training files recoverable without keeping them forever.
                noncurrent_version_expiration=cdk.Duration.days(30),
                abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
            )
        ],
        # Training data and segments are the user's: deleting the stack must not delete them.
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )
    # Uploads start workflows through EventBridge rules. `event_bridge_enabled=True` would deploy
    # CDK's bucket-notifications custom resource (a Lambda rewriting the bucket's notification
    # configuration); CloudFormation sets the same switch natively on the bucket.
    cfn_bucket = bucket.node.default_child
    assert isinstance(cfn_bucket, s3.CfnBucket)
    cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
        event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True)
    )
    return bucket
