"""Transforms a SAM template into the CloudFormation template AWS deploys,
with AWS's own SAM translator (PyPI aws-sam-translator, installed into .venv
by scripts/bootstrap; a test-time tool, never shipped), and prints it as JSON.

    .venv/bin/python tests/iam/sam_transform.py infra/template.yaml [Name=Value ...]

Offline: no account, no network. The translator asks IAM for the names of
AWS's managed policies only when a function's Policies list names one; it is
given a fixed map of the few a Beacon template could attach, so an attached
managed policy shows up in the output as its ARN (and the tests refuse it).
Region and partition are fixed (us-east-1, aws); parameters without a default
get the placeholder values below unless given on the command line.
"""

import json
import sys

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

# The managed policies SAM itself attaches to functions (by event type) and
# the ones a Policies list could name; the translator builds ARNs from these
# names.
MANAGED = [
    "AWSLambdaBasicExecutionRole",
    "AWSLambdaDynamoDBExecutionRole",
    "AWSLambdaSQSQueueExecutionRole",
    "AWSLambdaKinesisExecutionRole",
    "AWSLambdaVPCAccessExecutionRole",
    "AWSLambdaRole",
    "AWSXrayWriteOnlyAccess",
    "AmazonDynamoDBFullAccess",
    "AmazonSNSFullAccess",
    "AmazonSQSFullAccess",
]
POLICY_MAP = {name: f"arn:aws:iam::aws:policy/service-role/{name}" for name in MANAGED}

# Values for parameters that have no default (the registrar's).
PLACEHOLDERS = {
    "ServiceName": "helloworld",
    "ServiceVersion": "1.0.0",
    "EndpointUrl": "https://hello.example.com",
    "LambdaFunctions": "hello-fn",
    "BeaconTableName": "beacon-dev",
}


def package(template: dict) -> None:
    """What `aws cloudformation package` (scripts/package, docs/deploy.md)
    does before AWS transforms the template: local artifact paths become S3
    locations. The translator accepts only the latter."""
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            value = props.get(key)
            if isinstance(value, str) and not value.startswith("s3://"):
                props[key] = "s3://beacon-artifacts/" + value.replace("../", "").replace("/", "-")


def main() -> None:
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    package(template)
    params = {k: v for k, v in PLACEHOLDERS.items() if k in template.get("Parameters", {})}
    for arg in sys.argv[2:]:
        name, _, value = arg.partition("=")
        params[name] = value
    params.update({"AWS::Region": "us-east-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012"})
    session = boto3.session.Session(region_name="us-east-1")
    translator = Translator(POLICY_MAP, Parser(), boto_session=session)
    out = translator.translate(template, parameter_values=params, get_managed_policy_map=lambda: POLICY_MAP)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
