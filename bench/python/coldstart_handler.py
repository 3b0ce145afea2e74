"""The Python equivalent for the cold-start comparison: a minimal custom-runtime Lambda handler
that imports boto3 and builds the same clients as the Rust function it is measured against, then
polls the Lambda Runtime API for its first event (as the AWS Python runtime does after init).

Usage: python coldstart_handler.py <boto3 service name>...
"""

import os
import sys
import urllib.request

import boto3

CLIENTS = [boto3.client(name) for name in sys.argv[1:]]

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
with urllib.request.urlopen(f"http://{api}/2018-06-01/runtime/invocation/next") as event:
    event.read()
