"""A webhook receiver for the integration tests.

Verifies every request with the reference Standard Webhooks library (`standardwebhooks`, unchanged), answers
according to the query string of the path it was sent to, and appends one JSON line per request to a log file:

    ?fail=N&status=CODE&retry_after=S   the first N requests to this path get CODE (default 500), with Retry-After: S

Usage: webhook_receiver.py PORT SECRET LOG_FILE
"""
import json
import sys
import threading
import time
from urllib.parse import parse_qs, urlparse

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from test_server import QuietHandler, serve

port, secret, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
webhook = Webhook(secret)
lock = threading.Lock()
counts = {}


class Handler(QuietHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            payload = webhook.verify(body, headers)
            verified, error = True, None
        except WebhookVerificationError as exc:
            payload, verified, error = None, False, str(exc)
        url = urlparse(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        with lock:
            counts[self.path] = counts.get(self.path, 0) + 1
            count = counts[self.path]
        status = 200
        extra = {}
        if not verified:
            status = 401
        elif count <= int(query.get("fail", "0")):
            status = int(query.get("status", "500"))
            if "retry_after" in query:
                extra["Retry-After"] = query["retry_after"]
        entry = {
            "path": self.path, "count": count, "status": status, "verified": verified, "error": error,
            "webhook_id": headers.get("webhook-id"), "webhook_timestamp": headers.get("webhook-timestamp"),
            "payload": payload, "received_at": time.time(),
        }
        with lock, open(log_path, "a") as log:
            log.write(json.dumps(entry) + "\n")
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


serve(port, Handler)
