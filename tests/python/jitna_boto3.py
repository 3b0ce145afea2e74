"""boto3 against the local stack through the service model (tests/aws_cli.rs runs this).

The model and its paginator come from AWS_DATA_PATH (clients/aws-cli), the endpoint from
JIT_API_URL, the credentials from AWS_SHARED_CREDENTIALS_FILE (one profile per seeded principal).
Prints one JSON object of what it saw; any failed expectation exits non-zero with the reason.
"""

import datetime
import json
import os
import sys
import time

import boto3

ENDPOINT = os.environ["JIT_API_URL"]
DEV_NODE = "i-0123456789abcdef0"  # auto-approved (policies/auto-approval/development.cedar)
SENSITIVE_NODE = "i-00000000000000aa1"  # one DevOps approval (policies/manual/sensitive-data.yaml)
SANDBOX_NODE = "i-0aaaaaaaaaaaaaaa1"  # no policy applies: Failed (NoApplicablePolicy) once evaluated


def client(profile):
    session = boto3.Session(profile_name=profile, region_name="us-east-1")
    return session.client("jit-node-access", endpoint_url=ENDPOINT)


def check(condition, what):
    if not condition:
        sys.exit(f"boto3: {what}")


def wait_for(c, request_id, status):
    deadline = time.monotonic() + 30
    while True:
        got = c.get_access_request(AccessRequestId=request_id)
        # A request not evaluated yet reads Pending too (JITNA's name), without a Decision.
        if got["AccessRequestStatus"] == status and "Decision" in got:
            return got
        check(time.monotonic() < deadline, f"{request_id} is still {got['AccessRequestStatus']}, not {status}")
        time.sleep(0.3)


def targets(node):
    return [{"Key": "InstanceIds", "Values": [node]}]


def main():
    seen = {}
    carol = client("carol")
    started = carol.start_access_request(Reason="boto3: check the web logs", Targets=targets(DEV_NODE))
    auto_id = started["AccessRequestId"]
    wait_for(carol, auto_id, "Approved")
    token = carol.get_access_token(AccessRequestId=auto_id)
    check(token["AccessRequestStatus"] == "Approved", f"token status {token['AccessRequestStatus']}")
    expires = token["Credentials"]["ExpirationTime"]
    check(isinstance(expires, datetime.datetime), f"ExpirationTime is {type(expires)}")
    check(token["Credentials"]["AccessKeyId"] and token["Credentials"]["SessionToken"], "empty credentials")
    listed = carol.list_access_requests(AccessRequestStatus="Approved", MaxResults=100)
    check(auto_id in [r["AccessRequestId"] for r in listed["AccessRequests"]], "the request is not listed")
    seen["auto"] = {"id": auto_id, "expiration": expires.isoformat(), "target": token["Target"]}

    operator, approver = client("operator"), client("approver-a")
    manual_id = operator.start_access_request(Reason="boto3: rotate keys", Targets=targets(SENSITIVE_NODE))[
        "AccessRequestId"
    ]
    pending = wait_for(operator, manual_id, "Pending")
    waiting = approver.list_approvals()["AccessRequests"]
    check(manual_id in [r["AccessRequestId"] for r in waiting], "the request does not wait on approver-a")
    approved = approver.approve_access_request(AccessRequestId=manual_id, Comment="boto3 approves")
    check(approved["AccessRequestStatus"] == "Approved", f"after approval: {approved['AccessRequestStatus']}")
    seen["manual"] = {"id": manual_id, "level": pending.get("ApprovalLevel"), "status": approved["AccessRequestStatus"]}

    try:
        operator.start_access_request(Reason="boto3: two nodes", Targets=targets(DEV_NODE) + targets(SENSITIVE_NODE))
        sys.exit("boto3: two targets were accepted")
    except operator.exceptions.ValidationException as e:
        seen["badTarget"] = {"field": e.response.get("Field"), "message": e.response["Error"]["Message"]}

    # JITNA's Tags passes boto3's parameter validation (the model declares it) and the server
    # refuses it by name.
    try:
        operator.start_access_request(
            Reason="boto3: tagged", Targets=targets(DEV_NODE), Tags=[{"Key": "team", "Value": "web"}]
        )
        sys.exit("boto3: Tags were accepted")
    except operator.exceptions.ValidationException as e:
        seen["tags"] = {
            "code": e.response["Error"]["Code"],
            "field": e.response.get("Field"),
            "reason": e.response.get("ReasonCode"),
            "message": e.response["Error"]["Message"],
        }

    seen["paged"] = paged()
    print(json.dumps(seen))


def paged():
    """approver-d (asking nothing else in this binary) asks five times; the paginator, two a call,
    must walk several pages and return each request once, as one unpaged call does."""
    requester = client("approver-d")
    created = [
        requester.start_access_request(Reason=f"boto3: page {i}", Targets=targets(SANDBOX_NODE))["AccessRequestId"]
        for i in range(5)
    ]
    for request_id in created:
        wait_for(requester, request_id, "Failed")  # then it never changes
    check(requester.can_paginate("list_access_requests"), "no paginator for list_access_requests")
    pages = list(requester.get_paginator("list_access_requests").paginate(PaginationConfig={"PageSize": 2}))
    walked = [r["AccessRequestId"] for page in pages for r in page["AccessRequests"]]
    one_call = [r["AccessRequestId"] for r in requester.list_access_requests(MaxResults=100)["AccessRequests"]]
    return {
        "pages": len(pages),
        "items": len(walked),
        "unique": len(set(walked)) == len(walked),
        "allCreated": set(walked) == set(created),
        "sameAsOneCall": walked == one_call,
    }


if __name__ == "__main__":
    main()
