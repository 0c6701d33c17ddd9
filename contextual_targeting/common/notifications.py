"""The SNS topic that emails run summaries."""

from __future__ import annotations

import re

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

# Deliberately simple: one @, no spaces, a dot in the domain. SNS itself confirms the address.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def validate_email(email: str) -> str:
    """Return the address unchanged, or raise ValueError naming the bad value."""
    if not EMAIL_PATTERN.fullmatch(email):
        raise ValueError(f"email: {email!r} is not an email address (expected name@example.com)")
    return email


class Notifications(Construct):
    """Encrypted, TLS-only SNS topic for run summaries, with an optional email subscription."""

    def __init__(self, scope: Construct, construct_id: str, *, email: str | None = None) -> None:
        super().__init__(scope, construct_id)
        self.key: kms.IKey = kms.Key(
            self,
            "Key",
            description="Encrypts the contextual-targeting notification topic",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        topic = sns.Topic(
            self,
            "Topic",
            display_name="Contextual targeting",
            master_key=self.key,
            enforce_ssl=True,
        )
        if email:
            topic.add_subscription(subscriptions.EmailSubscription(validate_email(email)))
        self.topic: sns.ITopic = topic
