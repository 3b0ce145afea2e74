#!/usr/bin/env python3
"""Runs parliament (PyPI) over IAM policy documents, one JSON file each.

Usage: python tools/iam_lint.py DIR

DIR holds the documents the stack generates (`jit policy iam-documents`) or the templates' own
policies (`tools/template_iam_documents.py`). Every finding fails, except these, each matched
exactly (issue, detail and, where the detail alone would match more, the document) and printed as
known:
  * UNKNOWN_CONDITION_FOR_ACTION for ssm:SessionDocumentAccessCheck on ssm:StartSession (AWS's
    "Enforce a session document permission check" guide uses it on exactly that action);
  * RESOURCE_MISMATCH for ssmmessages:OpenDataChannel on session ARNs (AWS's Session Manager
    quickstart end-user policy scopes it to arn:aws:ssm:*:*:session/...);
  * RESOURCE_MISMATCH for the DynamoDB Streams reads on a stream ARN: parliament splits ARNs on
    ":" and so rejects every real stream ARN, whose label is an ISO 8601 timestamp (the DynamoDB
    API reference, "Stream": StreamLabel);
  * RESOURCE_MISMATCH for the account-level kms actions in a key policy's `kms:*` statement: there
    Resource "*" is the key itself and kms:* its own operations (AWS KMS Developer Guide, "Default
    key policy"); template_iam_documents.py writes the key's ARN, against which parliament lists
    the kms actions that take no key;
  * MISMATCHED_TYPE for ArnEquals/ArnLike on kms:EncryptionContext:aws:logs:arn, a String key in
    parliament's database that AWS compares with Arn operators (AWS managed policy
    CloudWatchLogsAPIKeyAccess; CloudWatch Logs' key policy for encrypted log groups).
Exit status: 0 when every document passes, 1 otherwise (2 when there is nothing to lint).
"""

import json
import pathlib
import re
import subprocess
import sys

PARLIAMENT = pathlib.Path(sys.executable).with_name("parliament")


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(document):
    return [s for s in as_list((document or {}).get("Statement")) if isinstance(s, dict)]


# DynamoDB Streams reads that take a stream ARN, and the ARN of a table's stream as CloudFormation
# gives it (!GetAtt Table.StreamArn): the label is an ISO 8601 timestamp, colons included.
STREAM_READS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
STREAM_FORMAT = "arn:*:dynamodb:*:*:table/*/stream/*"
STREAM_ARN = re.compile(r"arn:[a-z-]+:dynamodb:[a-z0-9-]+:\d{12}:table/[A-Za-z0-9_.-]+/stream/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}")

# What parliament 1.6.4 reports for `kms:*` on a key's ARN: the kms actions that take no key (or an
# alias besides one), none of which a key policy can grant.
KMS_NON_KEY_ACTIONS = [
    ("kms:ConnectCustomKeyStore", "*"),
    ("kms:CreateAlias", "arn:*:kms:*:*:alias/*"),
    ("kms:CreateCustomKeyStore", "*"),
    ("kms:CreateKey", "*"),
    ("kms:DeleteAlias", "arn:*:kms:*:*:alias/*"),
    ("kms:DeleteCustomKeyStore", "*"),
    ("kms:DescribeCustomKeyStores", "*"),
    ("kms:DisconnectCustomKeyStore", "*"),
    ("kms:GenerateRandom", "*"),
    ("kms:ListAliases", "*"),
    ("kms:ListKeys", "*"),
    ("kms:ListRetirableGrants", "*"),
    ("kms:UpdateAlias", "arn:*:kms:*:*:alias/*"),
    ("kms:UpdateCustomKeyStore", "*"),
]
KMS_KEY_ARN = re.compile(r"arn:[a-z-]+:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}")

# Condition keys parliament itself types Arn (no MISMATCHED_TYPE under an Arn operator).
ARN_TYPED_GLOBAL_KEYS = {"aws:principalarn", "aws:sourcearn"}


def is_stream_read_on_stream_arns(detail, document):
    """Every mismatch is a stream read against the stream format, and every statement of the
    document that grants a stream read names only CloudFormation-shaped stream ARNs."""
    if not detail or any(d.get("action") not in STREAM_READS or d.get("required_format") != STREAM_FORMAT for d in detail):
        return False
    granting = [s for s in statements(document) if s.get("Effect") == "Allow" and STREAM_READS & set(as_list(s.get("Action")))]
    return bool(granting) and all(
        isinstance(r, str) and STREAM_ARN.fullmatch(r) for s in granting for r in as_list(s.get("Resource"))
    )


def is_key_policy_kms_star(detail, document):
    """The mismatches are exactly the non-key kms actions, and the document is a key policy whose
    `kms:*` statement (to a Principal) is on one key's ARN."""
    if [(d.get("action"), d.get("required_format")) for d in detail] != KMS_NON_KEY_ACTIONS:
        return False
    return any(
        "Principal" in s and as_list(s.get("Action")) == ["kms:*"]
        and all(isinstance(r, str) and KMS_KEY_ARN.fullmatch(r) for r in as_list(s.get("Resource")))
        for s in statements(document)
    )


def arn_operators_only_on_logs_context(operator, document):
    """Every key the document compares with `operator` is kms:EncryptionContext:aws:logs:arn or a
    key parliament types Arn, and the first is there."""
    keys = [k.lower() for s in statements(document) for k in ((s.get("Condition") or {}).get(operator) or {})]
    return "kms:encryptioncontext:aws:logs:arn" in keys and all(
        k == "kms:encryptioncontext:aws:logs:arn" or k in ARN_TYPED_GLOBAL_KEYS for k in keys
    )


def known(finding, document=None):
    """Why a finding is a known gap of parliament's database or checks, or None."""
    issue = finding.get("issue")
    detail = finding.get("detail")
    if (
        issue == "UNKNOWN_CONDITION_FOR_ACTION"
        and detail == "Unknown condition ssm:SessionDocumentAccessCheck for action ssm:StartSession"
    ):
        return "parliament's database predates ssm:SessionDocumentAccessCheck"
    if (
        issue == "RESOURCE_MISMATCH"
        and isinstance(detail, list)
        and detail
        and all(d.get("action") == "ssmmessages:OpenDataChannel" for d in detail)
    ):
        return "parliament's database predates session-scoped ssmmessages:OpenDataChannel"
    if issue == "RESOURCE_MISMATCH" and isinstance(detail, list) and is_stream_read_on_stream_arns(detail, document):
        return "parliament rejects the colons of a stream ARN's label, an ISO 8601 timestamp (DynamoDB API reference, Stream)"
    if issue == "RESOURCE_MISMATCH" and isinstance(detail, list) and is_key_policy_kms_star(detail, document):
        return "in a key policy kms:* on \"*\" is the key's own operations (AWS KMS Developer Guide, Default key policy)"
    for operator in ("ArnEquals", "ArnLike"):
        if (
            issue == "MISMATCHED_TYPE"
            and detail == f"Type mismatch: {operator} requires a value of type Arn but given String"
            and arn_operators_only_on_logs_context(operator, document)
        ):
            return "AWS compares kms:EncryptionContext:aws:logs:arn with Arn operators (AWS managed policy CloudWatchLogsAPIKeyAccess)"
    return None


def lint(path):
    """The findings of one document, as (finding, known reason or None)."""
    text = path.read_text()
    try:
        document = json.loads(text)
    except ValueError:
        document = None  # parliament reports MALFORMED_JSON, which is never known
    result = subprocess.run(
        [str(PARLIAMENT), "--json", "--string", text],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode not in (0, 1):
        raise SystemExit(f"{path}: parliament failed: {result.stderr.strip()}")
    findings = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [(f, known(f, document)) for f in findings]


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    documents = sorted(pathlib.Path(argv[1]).glob("*.json"))
    if not documents:
        print(f"no documents in {argv[1]}: run `jit policy iam-documents --out {argv[1]}` or "
              f"`tools/template_iam_documents.py TEMPLATE... --out {argv[1]}` first", file=sys.stderr)
        return 2
    failed = 0
    for path in documents:
        for finding, reason in lint(path):
            if reason:
                print(f"known  {path.name}: {finding['issue']} ({reason})")
            else:
                failed += 1
                print(f"FAIL   {path.name}: {finding['severity']} {finding['issue']}: {finding['detail']}")
    print(f"{len(documents)} documents, {failed} unexpected findings")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
