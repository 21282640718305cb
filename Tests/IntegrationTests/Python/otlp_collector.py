"""An OTLP/HTTP trace collector for the integration tests.

Accepts every export (`POST /v1/traces`, protobuf), answers an empty `ExportTraceServiceResponse`, and appends one
JSON line per request to a log file: the path, the content type and the body in hex (protobuf keeps strings and
ids as raw bytes, so a test can look for a service name or a trace id in it).

Usage: otlp_collector.py PORT LOG_FILE
"""
import json
import sys
import threading

from test_server import QuietHandler, serve

port, log_path = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()


class Handler(QuietHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        entry = {"path": self.path, "content_type": self.headers.get("content-type"), "body": body.hex()}
        with lock, open(log_path, "a") as log:
            log.write(json.dumps(entry) + "\n")
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()


serve(port, Handler)
