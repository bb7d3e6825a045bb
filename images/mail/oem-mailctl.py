#!/usr/bin/python3
"""oem-mailctl: the mail image's helper, one process.

* Hourly sending limit: Exim's RCPT ACL asks `send <authenticated id>` on the unix socket
  /tmp/oem-mail/ctl.sock for each recipient it is about to relay out; the answer is `ok`
  (counted in oem_mail_sent_total) or `refused` (counted in oem_mail_refused_total) when
  MAX_SENDS_PER_HOUR sends were accepted in the last 3600 s (a sliding window, kept across
  restarts in /srv/spool/oem-sends.json). MAX_SENDS_PER_HOUR=0: no limit.
* Mail lock (MAIL_LOCKED=true, set by the operator while the account is locked for mass
  mailing): every relay is answered `locked` (counted in oem_mail_locked_refused_total, not
  in the window), even below the hourly limit; mail to this server's own domains still flows.
* Prometheus text metrics on :9154/metrics.
* Exim's log files (/tmp/exim/{main,reject,panic}log) copied to stderr and truncated when
  they grow, so the container log has them and /tmp does not fill up.
"""
import collections
import http.server
import json
import os
import signal
import socketserver
import sys
import threading
import time

SOCK = "/tmp/oem-mail/ctl.sock"
STATE = "/srv/spool/oem-sends.json"
WINDOW = 3600.0
LOGS = ["/tmp/exim/mainlog", "/tmp/exim/rejectlog", "/tmp/exim/paniclog"]

limit = int(os.environ.get("MAX_SENDS_PER_HOUR", "0") or 0)
locked = os.environ.get("MAIL_LOCKED", "false") == "true"
lock = threading.Lock()
sent_total = 0
refused_total = 0
locked_refused_total = 0
sends = collections.deque()  # timestamps of accepted sends in the window


def load():
    try:
        with open(STATE) as f:
            now = time.time()
            sends.extend(t for t in json.load(f) if now - t < WINDOW)
    except (OSError, ValueError):
        pass


def save():
    tmp = STATE + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(list(sends), f)
        os.replace(tmp, STATE)
    except OSError as e:
        print(f"oem-mailctl: cannot save {STATE}: {e}", file=sys.stderr, flush=True)


def decide(who):
    global sent_total, refused_total, locked_refused_total
    with lock:
        if locked:
            locked_refused_total += 1
            print(f"oem-mailctl: refused a send by {who}: outbound mail is locked",
                  file=sys.stderr, flush=True)
            return "locked"
        now = time.time()
        while sends and now - sends[0] >= WINDOW:
            sends.popleft()
        if limit > 0 and len(sends) >= limit:
            refused_total += 1
            print(f"oem-mailctl: refused a send by {who}: {len(sends)} sends in the last hour "
                  f"(limit {limit})", file=sys.stderr, flush=True)
            return "refused"
        sends.append(now)
        sent_total += 1
        save()
        return "ok"


class Ctl(socketserver.StreamRequestHandler):
    def handle(self):
        self.connection.settimeout(5)
        try:
            line = self.rfile.readline(1024).decode("utf-8", "replace").strip()
        except OSError:
            return
        cmd, _, arg = line.partition(" ")
        answer = decide(arg or "-") if cmd == "send" else "error"
        self.wfile.write(answer.encode())  # no newline: Exim compares the whole answer


class CtlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def metrics_text():
    with lock:
        now = time.time()
        last_hour = sum(1 for t in sends if now - t < WINDOW)
        return (
            "# HELP oem_mail_sent_total Recipients accepted for relaying out (authenticated submission).\n"
            "# TYPE oem_mail_sent_total counter\n"
            f"oem_mail_sent_total {sent_total}\n"
            "# HELP oem_mail_refused_total Recipients refused because MAX_SENDS_PER_HOUR was reached.\n"
            "# TYPE oem_mail_refused_total counter\n"
            f"oem_mail_refused_total {refused_total}\n"
            "# HELP oem_mail_locked_refused_total Recipients refused because outbound mail is locked (MAIL_LOCKED).\n"
            "# TYPE oem_mail_locked_refused_total counter\n"
            f"oem_mail_locked_refused_total {locked_refused_total}\n"
            "# HELP oem_mail_outbound_locked 1 while outbound mail is locked (MAIL_LOCKED=true).\n"
            "# TYPE oem_mail_outbound_locked gauge\n"
            f"oem_mail_outbound_locked {int(locked)}\n"
            "# HELP oem_mail_sends_last_hour Sends accepted in the last hour (the limit's window).\n"
            "# TYPE oem_mail_sends_last_hour gauge\n"
            f"oem_mail_sends_last_hour {last_hour}\n"
            "# HELP oem_mail_sends_limit_per_hour MAX_SENDS_PER_HOUR (0: no limit).\n"
            "# TYPE oem_mail_sends_limit_per_hour gauge\n"
            f"oem_mail_sends_limit_per_hour {limit}\n"
        )


class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        body = metrics_text().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class MetricsServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


def follow_logs(stop):
    offsets = {}
    while not stop.is_set():
        for path in LOGS:
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            off = offsets.get(path, 0)
            if size < off:
                off = 0
            if size > off:
                with open(path, "rb") as f:
                    f.seek(off)
                    data = f.read(size - off)
                cut = data.rfind(b"\n") + 1  # whole lines only
                if cut:
                    prefix = b"exim: " if path.endswith("mainlog") else b"exim " + os.path.basename(path).encode() + b": "
                    out = b"".join(prefix + l + b"\n" for l in data[:cut].splitlines())
                    sys.stderr.buffer.write(out)
                    sys.stderr.flush()
                off += cut
                if off > 8 << 20:  # Exim appends (O_APPEND): truncating is safe
                    with open(path, "r+b") as f:
                        f.truncate(0)
                    off = 0
            offsets[path] = off
        stop.wait(0.5)


def main():
    load()
    try:
        os.unlink(SOCK)
    except FileNotFoundError:
        pass
    ctl = CtlServer(SOCK, Ctl)
    os.chmod(SOCK, 0o600)
    port = int(os.environ.get("METRICS_PORT", "9154"))
    metrics = MetricsServer(("0.0.0.0", port), Metrics)
    stop = threading.Event()
    threads = [threading.Thread(target=ctl.serve_forever, daemon=True),
               threading.Thread(target=metrics.serve_forever, daemon=True),
               threading.Thread(target=follow_logs, args=(stop,), daemon=True)]
    for t in threads:
        t.start()
    print(f"oem-mailctl: metrics on :{port}/metrics, limit {limit or 'none'} sends per hour, "
          f"{len(sends)} in the current window"
          f"{', outbound mail LOCKED' if locked else ''}", file=sys.stderr, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    stop.set()
    ctl.shutdown()
    metrics.shutdown()


if __name__ == "__main__":
    main()
