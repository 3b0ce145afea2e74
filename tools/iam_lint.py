#!/usr/bin/env python3
"""Runs parliament (PyPI) over the IAM documents the stack generates (`jit policy iam-documents`).

Usage: python tools/iam_lint.py DIR

Every finding fails, except two that come from parliament's IAM database predating what AWS
documents today, each matched exactly and printed as known:
  * UNKNOWN_CONDITION_FOR_ACTION for ssm:SessionDocumentAccessCheck on ssm:StartSession (AWS's
    "Enforce a session document permission check" guide uses it on exactly that action);
  * RESOURCE_MISMATCH for ssmmessages:OpenDataChannel on session ARNs (AWS's Session Manager
    quickstart end-user policy scopes it to arn:aws:ssm:*:*:session/...).
Exit status: 0 when every document passes, 1 otherwise (2 when there is nothing to lint).
"""

import json
import pathlib
import subprocess
import sys

PARLIAMENT = pathlib.Path(sys.executable).with_name("parliament")


def known(finding):
    """Why a finding is a known gap of parliament's database, or None."""
    if (
        finding.get("issue") == "UNKNOWN_CONDITION_FOR_ACTION"
        and finding.get("detail") == "Unknown condition ssm:SessionDocumentAccessCheck for action ssm:StartSession"
    ):
        return "parliament's database predates ssm:SessionDocumentAccessCheck"
    detail = finding.get("detail")
    if (
        finding.get("issue") == "RESOURCE_MISMATCH"
        and isinstance(detail, list)
        and detail
        and all(d.get("action") == "ssmmessages:OpenDataChannel" for d in detail)
    ):
        return "parliament's database predates session-scoped ssmmessages:OpenDataChannel"
    return None


def lint(path):
    """The findings of one document, as (finding, known reason or None)."""
    result = subprocess.run(
        [str(PARLIAMENT), "--json", "--string", path.read_text()],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode not in (0, 1):
        raise SystemExit(f"{path}: parliament failed: {result.stderr.strip()}")
    findings = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [(f, known(f)) for f in findings]


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    documents = sorted(pathlib.Path(argv[1]).glob("*.json"))
    if not documents:
        print(f"no documents in {argv[1]}: run `jit policy iam-documents --out {argv[1]}` first", file=sys.stderr)
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
