"""A small local stand-in for Mechanical Turk's requester API (awsJson1.1), for end-to-end provider tests.

It answers POST / with `X-Amz-Target: MTurkRequesterServiceV20170117.<Operation>` like the real service:
JSON bodies, epoch-second timestamps, errors as {"__type", "Message"} with status 400, UniqueRequestToken
reuses refused. Authentication is not checked. `add_submission` plays a worker submitting an assignment.
"""
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler

from devtools.local_server import LocalServer

TARGET_PREFIX = "MTurkRequesterServiceV20170117."


class MarketError(Exception):
    def __init__(self, message, type="RequestError"):
        super().__init__(message)
        self.type = type


def _market_id(prefix):
    return (prefix + secrets.token_hex(16).upper())[:30]


class FakeMTurk(LocalServer):
    def __init__(self):
        self.hit_types = {}
        self.hits = {}
        self.assignments = {}
        self.bonuses = []
        self.notifications = []
        self.blocked = {}
        self.calls = []
        self._tokens = {}
        self._lock = threading.Lock()
        self._listen()

    @property
    def endpoint_url(self):  # boto3's name for it
        return self.url

    def add_submission(self, hit_id, worker_id):
        """A worker accepts and submits one assignment of the HIT."""
        with self._lock:
            hit = self.hits[hit_id]
            taken = sum(1 for a in self.assignments.values() if a["HITId"] == hit_id)
            if taken >= hit["MaxAssignments"]:
                raise MarketError(f"HIT {hit_id} has no assignments left")
            assignment_id = _market_id("3ASG")
            now = time.time()
            self.assignments[assignment_id] = {
                "AssignmentId": assignment_id, "WorkerId": worker_id, "HITId": hit_id,
                "AssignmentStatus": "Submitted", "AcceptTime": now - 600, "SubmitTime": now,
            }
            return assignment_id

    def _handler_class(self):
        market = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                operation = self.headers.get("X-Amz-Target", "").removeprefix(TARGET_PREFIX)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                try:
                    with market._lock:
                        market.calls.append((operation, body))
                        answer = getattr(market, f"op_{operation}")(body)
                    status, payload = 200, answer
                except MarketError as error:
                    status, payload = 400, {"__type": error.type, "Message": str(error)}
                except AttributeError:
                    status, payload = 400, {"__type": "UnknownOperationException", "Message": operation}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler

    def _refuse_reused_token(self, token, what):
        if token is None:
            return
        if token in self._tokens:
            raise MarketError(f"The UniqueRequestToken was already used: {what} {self._tokens[token]}")
        self._tokens[token] = what

    def op_CreateHITType(self, body):
        key = json.dumps(body, sort_keys=True)
        type_id = self.hit_types.setdefault(key, _market_id("3TYP"))
        return {"HITTypeId": type_id}

    def op_CreateHITWithHITType(self, body):
        if body["HITTypeId"] not in self.hit_types.values():
            raise MarketError(f"unknown HIT type {body['HITTypeId']}")
        token = body.get("UniqueRequestToken")
        if token in self._tokens:
            raise MarketError(f"AWS.MechanicalTurk.HitAlreadyExists: HITId {self._tokens[token]}")
        hit_id = _market_id("3HIT")
        self._refuse_reused_token(token, hit_id)
        now = time.time()
        self.hits[hit_id] = {
            "HITId": hit_id, "HITTypeId": body["HITTypeId"], "Question": body["Question"],
            "MaxAssignments": body.get("MaxAssignments", 1), "HITStatus": "Assignable",
            "CreationTime": now, "Expiration": now + body["LifetimeInSeconds"],
            "RequesterAnnotation": body.get("RequesterAnnotation", ""),
        }
        return {"HIT": self.hits[hit_id]}

    def op_ListAssignmentsForHIT(self, body):
        if body["HITId"] not in self.hits:
            raise MarketError(f"unknown HIT {body['HITId']}")
        matching = [a for a in self.assignments.values() if a["HITId"] == body["HITId"]]
        start = int(body.get("NextToken", "0"))
        size = body.get("MaxResults", 10)
        page = matching[start:start + size]
        answer = {"NumResults": len(page), "Assignments": page}
        if start + size < len(matching):
            answer["NextToken"] = str(start + size)
        return answer

    def _assignment(self, assignment_id):
        if assignment_id not in self.assignments:
            raise MarketError(f"unknown assignment {assignment_id}")
        return self.assignments[assignment_id]

    def op_ApproveAssignment(self, body):
        assignment = self._assignment(body["AssignmentId"])
        allowed = {"Submitted"} | ({"Rejected"} if body.get("OverrideRejection") else set())
        if assignment["AssignmentStatus"] not in allowed:
            raise MarketError(f"This operation needs status Submitted, not {assignment['AssignmentStatus']}")
        assignment.update(AssignmentStatus="Approved", ApprovalTime=time.time(),
                          RequesterFeedback=body.get("RequesterFeedback", ""))
        return {}

    def op_RejectAssignment(self, body):
        assignment = self._assignment(body["AssignmentId"])
        if assignment["AssignmentStatus"] != "Submitted":
            raise MarketError(f"This operation needs status Submitted, not {assignment['AssignmentStatus']}")
        if len(body["RequesterFeedback"]) > 1024:
            raise MarketError("RequesterFeedback is longer than 1024 characters")
        assignment.update(AssignmentStatus="Rejected", RejectionTime=time.time(),
                          RequesterFeedback=body["RequesterFeedback"])
        return {}

    def op_SendBonus(self, body):
        assignment = self._assignment(body["AssignmentId"])
        if assignment["WorkerId"] != body["WorkerId"]:
            raise MarketError("the worker did not work on this assignment")
        self._refuse_reused_token(body.get("UniqueRequestToken"), "bonus")
        self.bonuses.append(body)
        return {}

    def op_CreateAdditionalAssignmentsForHIT(self, body):
        hit = self.hits[body["HITId"]]
        self._refuse_reused_token(body.get("UniqueRequestToken"), "extension")
        hit["MaxAssignments"] += body["NumberOfAdditionalAssignments"]
        return {}

    def op_UpdateExpirationForHIT(self, body):
        hit = self.hits[body["HITId"]]
        hit["Expiration"] = body["ExpireAt"]
        if body["ExpireAt"] <= time.time():
            hit["HITStatus"] = "Unassignable"
        return {}

    def op_NotifyWorkers(self, body):
        if len(body["WorkerIds"]) > 100:
            raise MarketError("at most 100 workers per call")
        self.notifications.append(body)
        return {"NotifyWorkersFailureStatuses": []}


    def op_CreateWorkerBlock(self, body):
        self.blocked[body["WorkerId"]] = body["Reason"]
        return {}

    def op_DeleteWorkerBlock(self, body):
        self.blocked.pop(body["WorkerId"], None)
        return {}
