#!/usr/bin/env python3
"""Webhook receiver for bench/page_latency.sh.

Listens on 127.0.0.1:PORT and appends one line per POST to LOG:

    <arrival unix time, ns resolution> <source> <kind> <id> <listed> <severity> <first 200 bytes of body>

<source> is the request path without its leading slash (each sender posts to a
path of its own); <kind> is the nightshift webhook's "event" (declared,
updated, resolved, ...) or the Alertmanager webhook's "status" (firing,
resolved), "-" when the body is neither. <id> is the nightshift incident's id
or Alertmanager's groupKey (spaces removed); <listed> the number of targets in
the incident's "impacted" list, or of firing alerts in the notification;
<severity> the incident's severity or the group's common "severity" label
("-" for any of them when absent). A nightshift incident's title follows the
body's head after " | title: ". The arrival time is taken as soon as
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
        kind, ident, listed, severity, title = "-", "-", 0, "-", ""
        try:
            doc = json.loads(body)
            if isinstance(doc, dict):
                kind = str(doc.get("event") or doc.get("status") or "-")
                incident = doc.get("incident")
                if isinstance(incident, dict):
                    ident = str(incident.get("id") or "-")
                    listed = len(incident.get("impacted") or [])
                    severity = str(incident.get("severity") or "-")
                    title = str(incident.get("title") or "")
                elif isinstance(doc.get("alerts"), list):
                    ident = str(doc.get("groupKey") or "-")
                    listed = sum(1 for a in doc["alerts"] if isinstance(a, dict) and a.get("status") == "firing")
                    severity = str((doc.get("commonLabels") or {}).get("severity") or "-")
        except ValueError:
            pass
        ident = "".join(ident.split()) or "-"
        severity = "".join(severity.split()) or "-"
        head = body[:200].decode("utf-8", "replace")
        if title:
            head += " | title: " + title
        head = head.replace("\n", " ").replace("\r", " ")
        line = "%d.%09d %s %s %s %d %s %s\n" % (
            arrived // 10**9, arrived % 10**9, self.path.lstrip("/") or "-", kind, ident, listed, severity, head)
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
