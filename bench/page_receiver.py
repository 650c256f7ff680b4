#!/usr/bin/env python3
"""Webhook receiver for bench/page_latency.sh.

Listens on 127.0.0.1:PORT and appends one line per POST to LOG:

    <arrival unix time, ns resolution> <source> <kind> <first 200 bytes of body>

<source> is the request path without its leading slash (each sender posts to a
path of its own); <kind> is the nightshift webhook's "event" (declared,
updated, resolved, ...) or the Alertmanager webhook's "status" (firing,
resolved), "-" when the body is neither. The arrival time is taken as soon as
the request line and headers have been read, before the body.

    page_receiver.py PORT LOG
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    log_file = None

    def do_POST(self):
        arrived = time.time_ns()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        kind = "-"
        try:
            doc = json.loads(body)
            if isinstance(doc, dict):
                kind = str(doc.get("event") or doc.get("status") or "-")
        except ValueError:
            pass
        head = body[:200].decode("utf-8", "replace").replace("\n", " ").replace("\r", " ")
        line = "%d.%09d %s %s %s\n" % (arrived // 10**9, arrived % 10**9, self.path.lstrip("/") or "-", kind, head)
        with open(self.log_file, "a", encoding="utf-8") as f:
            f.write(line)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):  # noqa: A002 - quiet: the log file is the record
        pass


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: page_receiver.py PORT LOG")
    Handler.log_file = sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
