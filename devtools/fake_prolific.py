"""A local stand-in for Prolific's REST API (the endpoints annotator.providers.prolific uses), for tests and the demo.

Like the real API it wants `Authorization: Token <token>` (401 otherwise), checks every request body against the
published schema parts in devtools/prolific_api_schema.json (400 with {"error": {"detail": ...}}), keeps studies and
submissions with Prolific's statuses (a rejected, returned or timed-out submission gives its place back), refuses
transitions that Prolific refuses (400), pays a bulk bonus each time it is asked (paying is not idempotent there) and
signs its webhook calls (submission.status.change) with the workspace secret: base64 HMAC-SHA256 of the timestamp
header followed by the body, in X-Prolific-Request-Signature / X-Prolific-Request-Timestamp, with X-Event-ID.

Tests play participants with join / complete / return_submission / time_out, and make the market fail with
fail_next(operation, status) (401, 429 with Retry-After, 5xx) or refuse_rejections(reason).

Run alone (the demo): `python -m devtools.fake_prolific --port 8765 --token demo-token --state var/fake-prolific.json`;
there participants act over HTTP too (not Prolific's API, no token): POST /_fake/studies/<id>/join/
{"participant_id"} answers {"id", "url"}, POST /_fake/submissions/<id>/complete/ {"code"}, .../return/, .../time-out/.
With --state, everything is kept in that JSON file and read back at the next start.
"""
import argparse
import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import requests

from devtools.local_server import LocalServer

SCHEMA = json.loads((Path(__file__).with_name("prolific_api_schema.json")).read_text())
PAGE_SIZE = 2  # small, so that clients have to follow the pages
RELEASING = {"RETURNED", "TIMED-OUT", "REJECTED"}


class MarketError(Exception):
    def __init__(self, status, detail, headers=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def _id():
    return secrets.token_hex(12)


def sign(secret, timestamp, body):
    return base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()).decode()


class FakeProlific(LocalServer):
    STATE = ("studies", "submissions", "bonus_payments", "payments", "messages", "secret", "subscriptions",
             "participant_groups")

    def __init__(self, token="test-token", host="127.0.0.1", port=0, workspace_id="workspace-1", state_file=None):
        self.token = token
        self.workspace_id = workspace_id
        self.state_file = Path(state_file) if state_file else None
        self._lock = threading.RLock()
        self.reset()
        if self.state_file and self.state_file.exists():
            saved = json.loads(self.state_file.read_text())
            for name in self.STATE:
                setattr(self, name, saved.get(name, getattr(self, name)))
            self.participant_groups = {k: set(v) for k, v in self.participant_groups.items()}
        self._listen(host, port)

    def reset(self):
        """Forget every study, submission, payment, message, secret and subscription (a server kept between tests)."""
        self.studies = {}
        self.submissions = {}
        self.bonus_payments = {}
        self.payments = []  # every pay call, as Prolific would pay it
        self.messages = []
        self.calls = []
        self.secret = None
        self.subscriptions = {}
        self.deliveries = []
        self.participant_groups = {}
        self._failures = []
        self._refuse_rejections = None

    # --- what tests make the market do ----------------------------------------------------------------------------

    def fail_next(self, operation, status, times=1, retry_after=None, detail="injected failure"):
        """The next `times` calls of the operation ("create-study", "transition-submission"...) answer `status`."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._lock:
            self._failures.append([operation, status, times, headers, detail])

    def refuse_rejections(self, reason):
        """Every REJECT is refused with 400 and this reason (None: accepted again)."""
        self._refuse_rejections = reason

    def join(self, study_id, participant_id):
        """A participant takes a place: a submission ACTIVE, and the URL they are sent to (placeholders filled)."""
        with self._lock:
            study = self.studies[study_id]
            if study["status"] != "ACTIVE":
                raise MarketError(400, f"study {study_id} is {study['status']}")
            if self.places_taken(study_id) >= study["total_available_places"]:
                raise MarketError(400, f"study {study_id} is full")
            if participant_id in self.blocked_from(study):
                raise MarketError(403, f"participant {participant_id} is not eligible for study {study_id}")
            submission_id = _id()
            self.submissions[submission_id] = {
                "id": submission_id, "study_id": study_id, "participant_id": participant_id, "status": "ACTIVE",
                "started_at": _now(), "completed_at": None, "study_code": None,
            }
        self._notify(submission_id)
        url = study["external_study_url"]
        for name, value in (("PROLIFIC_PID", participant_id), ("STUDY_ID", study_id), ("SESSION_ID", submission_id)):
            url = url.replace("{{%" + name + "%}}", value).replace("%7B%7B%25" + name + "%25%7D%7D", value)
        return submission_id, url

    def complete(self, submission_id, code):
        """The participant comes back with a completion code (app.prolific.com/submissions/complete?cc=...)."""
        with self._lock:
            submission = self.submissions[submission_id]
            codes = {c["code"] for c in self.studies[submission["study_id"]]["completion_codes"]}
            if code not in codes:
                raise MarketError(400, f"{code!r} is not a completion code of this study")
            submission.update(status="AWAITING REVIEW", completed_at=_now(), study_code=code)
        self._notify(submission_id)

    def return_submission(self, submission_id):
        self._set_status(submission_id, "RETURNED")

    def time_out(self, submission_id):
        self._set_status(submission_id, "TIMED-OUT")

    def places_taken(self, study_id):
        return sum(1 for s in self.submissions.values() if s["study_id"] == study_id and s["status"] not in RELEASING)

    def signed_call(self, submission_id, event_id=None, timestamp=None, secret=None):
        """(body, headers) of the submission.status.change call for the submission as it is now."""
        submission = self.submissions[submission_id]
        body = json.dumps({
            "resource_id": submission_id, "event_type": "submission.status.change",
            "participant_id": submission["participant_id"], "status": submission["status"],
        }).encode()
        timestamp = str(int(time.time() if timestamp is None else timestamp))
        headers = {
            "Content-Type": "application/json", "X-Event-ID": event_id or uuid.uuid4().hex,
            "X-Prolific-Request-Timestamp": timestamp,
            "X-Prolific-Request-Signature": sign(secret or self.secret or "", timestamp, body),
        }
        return body, headers

    def _set_status(self, submission_id, status):
        with self._lock:
            self.submissions[submission_id]["status"] = status
        self._notify(submission_id)

    def _notify(self, submission_id):
        """Call every confirmed submission.status.change subscription, as Prolific does (failures are kept)."""
        targets = [s["target_url"] for s in self.subscriptions.values()
                   if s["is_enabled"] and s["event_type"] == "submission.status.change"]
        for target in targets:
            body, headers = self.signed_call(submission_id)
            try:
                status = requests.post(target, data=body, headers=headers, timeout=10).status_code
            except requests.RequestException as error:
                status = str(error)
            self.deliveries.append({"target": target, "submission": submission_id, "status": status,
                                    "headers": headers})

    # --- the HTTP API ---------------------------------------------------------------------------------------------

    ROUTES = [
        ("POST", r"/api/v1/studies/", "create-study"),
        ("GET", r"/api/v1/studies/(?P<id>\w+)/", "get-study"),
        ("PATCH", r"/api/v1/studies/(?P<id>\w+)/", "update-study"),
        ("POST", r"/api/v1/studies/(?P<id>\w+)/transition/", "transition-study"),
        ("GET", r"/api/v1/submissions/", "list-submissions"),
        ("POST", r"/api/v1/submissions/(?P<id>\w+)/transition/", "transition-submission"),
        ("POST", r"/api/v1/submissions/bonus-payments/", "set-up-bonus"),
        ("POST", r"/api/v1/bulk-bonus-payments/(?P<id>\w+)/pay/", "pay-bonus"),
        ("POST", r"/api/v1/messages/bulk/", "bulk-message"),
        ("POST", r"/api/v1/hooks/secrets/", "create-secret"),
        ("POST", r"/api/v1/hooks/subscriptions/", "create-subscription"),
        ("POST", r"/api/v1/hooks/subscriptions/(?P<id>\w+)/", "confirm-subscription"),
        ("POST", r"/api/v1/participant-groups/(?P<id>[\w-]+)/participants/", "add-to-group"),
        ("DELETE", r"/api/v1/participant-groups/(?P<id>[\w-]+)/participants/", "remove-from-group"),
    ]

    def handle(self, method, path, query, headers, raw):
        for route_method, pattern, operation in self.ROUTES:
            match = re.fullmatch(pattern, path)
            if route_method == method and match:
                break
        else:
            raise MarketError(404, f"no endpoint {method} {path}")
        if headers.get("Authorization") != f"Token {self.token}":
            raise MarketError(401, "Invalid token.")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            raise MarketError(400, "the body is not JSON") from None
        self.calls.append((operation, match.groupdict().get("id"), body))
        self._injected_failure(operation)
        schema = SCHEMA["operations"].get(operation, {}).get("body")
        if schema is not None:
            errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(body), key=lambda e: list(e.path))
            if errors:
                detail = {}
                for error in errors:
                    detail.setdefault(".".join(map(str, error.path)) or "body", []).append(error.message)
                raise MarketError(400, detail)
        return getattr(self, "op_" + operation.replace("-", "_"))(body, query, **match.groupdict())

    def save(self):
        if self.state_file is None:
            return
        with self._lock:
            state = {name: getattr(self, name) for name in self.STATE}
            state["participant_groups"] = {k: sorted(v) for k, v in self.participant_groups.items()}
            self.state_file.write_text(json.dumps(state, default=str))

    PARTICIPANT_ROUTES = [
        (r"/_fake/studies/(?P<id>\w+)/join/", "join"),
        (r"/_fake/submissions/(?P<id>\w+)/complete/", "complete"),
        (r"/_fake/submissions/(?P<id>\w+)/return/", "return_submission"),
        (r"/_fake/submissions/(?P<id>\w+)/time-out/", "time_out"),
    ]

    def participant_action(self, path, body):
        """What a participant does on Prolific's site, for a fake run in its own process (the demo)."""
        for pattern, action in self.PARTICIPANT_ROUTES:
            match = re.fullmatch(pattern, path)
            if match:
                break
        else:
            raise MarketError(404, f"no participant action at {path}")
        id = match["id"]
        if action == "join":
            submission_id, url = self.join(id, (body or {}).get("participant_id", ""))
            return 201, {"id": submission_id, "url": url}
        if action == "complete":
            self.complete(id, (body or {}).get("code", ""))
        else:
            getattr(self, action)(id)
        return 200, self._public(self.submissions[id])

    def _injected_failure(self, operation):
        for failure in self._failures:
            name, status, times, headers, detail = failure
            if name == operation and times > 0:
                failure[2] -= 1
                raise MarketError(status, detail, headers)

    def _study(self, id):
        if id not in self.studies:
            raise MarketError(404, f"no study {id}")
        return self.studies[id]

    def op_create_study(self, body, query):
        study = {**body, "id": _id(), "status": "UNPUBLISHED", "places_taken": 0}
        self.studies[study["id"]] = study
        return 201, study

    def op_get_study(self, body, query, id):
        return 200, {**self._study(id), "places_taken": self.places_taken(id)}

    def op_update_study(self, body, query, id):
        study = self._study(id)
        if body.get("total_available_places", study["total_available_places"]) < self.places_taken(id):
            raise MarketError(400, {"total_available_places": ["fewer than the places already taken"]})
        study.update(body)
        return 200, study

    STUDY_TRANSITIONS = {
        ("UNPUBLISHED", "PUBLISH"): "ACTIVE", ("ACTIVE", "PAUSE"): "PAUSED", ("PAUSED", "START"): "ACTIVE",
        ("ACTIVE", "STOP"): "COMPLETED", ("PAUSED", "STOP"): "COMPLETED",
    }

    def op_transition_study(self, body, query, id):
        study = self._study(id)
        new = self.STUDY_TRANSITIONS.get((study["status"], body["action"]))
        if new is None:
            raise MarketError(400, f"a study that is {study['status']} cannot {body['action']}")
        study["status"] = new
        return 200, study

    def op_list_submissions(self, body, query):
        study_id = query.get("study", [""])[0]
        self._study(study_id)
        page = int(query.get("page", ["1"])[0])
        matching = [self._public(s) for s in self.submissions.values() if s["study_id"] == study_id]
        results = matching[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        next_href = f"{self.url}/api/v1/submissions/?study={study_id}&page={page + 1}" \
            if page * PAGE_SIZE < len(matching) else None
        return 200, {"results": results, "_links": {"next": {"href": next_href}}, "meta": {"count": len(matching)}}

    @staticmethod
    def _public(submission):
        return {k: v for k, v in submission.items() if k != "study_code"}

    def op_transition_submission(self, body, query, id):
        if id not in self.submissions:
            raise MarketError(404, f"no submission {id}")
        submission = self.submissions[id]
        wanted = {"APPROVE": "APPROVED", "REJECT": "REJECTED"}.get(body["action"])
        if wanted is None:
            raise MarketError(400, f"{body['action']} is not available to this study")
        if submission["status"] == wanted:
            return 200, self._public(submission)  # the same request again: ignored
        if body["action"] == "REJECT" and self._refuse_rejections:
            raise MarketError(400, self._refuse_rejections)
        if submission["status"] != "AWAITING REVIEW":
            raise MarketError(400, f"a submission that is {submission['status']} cannot be {wanted.lower()}")
        submission["status"] = wanted
        threading.Thread(target=self._notify, args=(id,), daemon=True).start()
        return 200, self._public(submission)

    def op_set_up_bonus(self, body, query):
        study = self._study(body["study_id"])
        rows = [line.split(",") for line in body["csv_bonuses"].strip().splitlines()]
        known = {s["participant_id"] for s in self.submissions.values() if s["study_id"] == study["id"]} | {
            s["id"] for s in self.submissions.values() if s["study_id"] == study["id"]}
        unknown = [who for who, _ in rows if who not in known]
        if unknown:
            raise MarketError(400, {"csv_bonuses": [f"not in this study: {', '.join(unknown)}"]})
        cents = sum(int(Decimal(amount) * 100) for _, amount in rows)
        payment = {"id": _id(), "study": study["id"], "amount": cents, "fees": cents // 3,
                   "total_amount": cents + cents // 3, "rows": rows}
        self.bonus_payments[payment["id"]] = payment
        return 201, {k: v for k, v in payment.items() if k != "rows"}

    def op_pay_bonus(self, body, query, id):
        if id not in self.bonus_payments:
            raise MarketError(404, f"no bulk bonus payment {id}")
        for participant, amount in self.bonus_payments[id]["rows"]:
            self.payments.append({"payment": id, "participant": participant, "amount": amount})
        return 202, {}

    def op_bulk_message(self, body, query):
        study = self._study(body["study_id"])
        taking_part = {s["participant_id"] for s in self.submissions.values() if s["study_id"] == study["id"]}
        strangers = sorted(set(body["ids"]) - taking_part)
        if strangers:
            raise MarketError(400, {"ids": [f"no submission in this study: {', '.join(strangers)}"]})
        self.messages.append(body)
        return 200, {}

    def op_add_to_group(self, body, query, id):
        group = self.participant_groups.setdefault(id, set())
        group.update(body["participant_ids"])
        return 200, {"id": id, "participant_count": len(group)}

    def op_remove_from_group(self, body, query, id):
        group = self.participant_groups.setdefault(id, set())
        group.difference_update(body["participant_ids"])
        return 200, {"id": id, "participant_count": len(group)}

    def blocked_from(self, study):
        """The participants a study's participant_group_blocklist filters keep out."""
        return set().union(*(self.participant_groups.get(group, set()) for f in study.get("filters", [])
                             if f.get("filter_id") == "participant_group_blocklist" for group in f["selected_values"]))

    def op_create_secret(self, body, query):
        self.secret = secrets.token_urlsafe(32)
        return 201, {"id": _id(), "value": self.secret, "workspace_id": body["workspace_id"]}

    def op_create_subscription(self, body, query):
        subscription = {**body, "id": _id(), "is_enabled": False, "confirm_secret": secrets.token_hex(16)}
        self.subscriptions[subscription["id"]] = subscription
        public = {k: v for k, v in subscription.items() if k != "confirm_secret"}
        return 201, public, {"X-Hook-Secret": subscription["confirm_secret"]}

    def op_confirm_subscription(self, body, query, id):
        subscription = self.subscriptions.get(id)
        if subscription is None:
            raise MarketError(404, f"no subscription {id}")
        if not hmac.compare_digest(body["secret"], subscription["confirm_secret"]):
            raise MarketError(400, {"secret": ["does not match the X-Hook-Secret of this subscription"]})
        subscription["is_enabled"] = True
        return 200, {k: v for k, v in subscription.items() if k != "confirm_secret"}

    def _handler_class(self):
        market = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                extra = {}
                try:
                    if parts.path.startswith("/_fake/") and self.command == "POST":
                        status, payload = market.participant_action(parts.path, json.loads(raw) if raw else {})
                    else:
                        with market._lock:
                            status, payload, *rest = market.handle(self.command, parts.path, parse_qs(parts.query),
                                                                   self.headers, raw)
                        extra = rest[0] if rest else {}
                    market.save()
                except MarketError as error:
                    status, payload, extra = error.status, {"error": {"detail": error.detail}}, error.headers
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **extra}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="demo-token")
    parser.add_argument("--state", help="JSON file keeping the fake's state between runs")
    args = parser.parse_args()
    with FakeProlific(token=args.token, host=args.host, port=args.port, state_file=args.state) as market:
        print(f"fake Prolific at {market.url} (token {args.token!r})", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
