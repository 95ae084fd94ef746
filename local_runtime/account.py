"""The one account and region the local runtime plays: what CloudFormation's pseudo parameters resolve to
and where the embedded AWS keeps every resource."""

from __future__ import annotations

REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"  # moto's default account, so the ARNs moto builds agree with ours
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
# Credentials that only the embedded AWS accepts; real credentials must never reach a function.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
