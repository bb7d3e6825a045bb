"""A real SMTP server for the tests, on loopback: aiosmtpd (Debian python3-aiosmtpd) with
STARTTLS and AUTH, saving every accepted message as an .eml file.

Run with Debian's interpreter (aiosmtpd is installed for it, not for pyenv's):

    /usr/bin/python3 e2e/daemons/smtp_sink.py --port 2525 --dir /tmp/mail \
        --cert cert.pem --key key.pem --user notify --password-file pw.txt

Options:
  --port N            listen on port N (required)
  --host ADDRESS      listen on this address (default 127.0.0.1), e.g. the test node's address
                      for pods on a real node
  --dir PATH          write each message to PATH/<n>.eml, atomically (required)
  --cert/--key PATH   offer STARTTLS with this certificate (both or neither)
  --require-tls       refuse MAIL before STARTTLS
  --user/--password-file  require AUTH PLAIN/LOGIN with these credentials
  --fail-first N      answer the first N DATA commands with 451 (a transient failure)

Each saved file starts with `X-Sink-*` headers recording what the session did: whether TLS
was on and which user authenticated. The server prints "ready <port>" on stdout once it listens
and runs until killed.
"""

import argparse
import asyncio
import os
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, folder, fail_first):
        self.folder = folder
        self.fail_left = fail_first
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.fail_left > 0:
                self.fail_left -= 1
                return "451 4.3.0 try again later (test sink)"
            self.count += 1
            n = self.count
        tls = "yes" if session.ssl is not None else "no"
        user = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else ""
        header = (
            f"X-Sink-TLS: {tls}\r\n"
            f"X-Sink-Auth-User: {user}\r\n"
            f"X-Sink-Mail-From: {envelope.mail_from}\r\n"
            f"X-Sink-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        tmp = os.path.join(self.folder, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(header + content)
        os.rename(tmp, os.path.join(self.folder, f"{n:05d}.eml"))
        return "250 2.0.0 saved"


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--dir", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--require-tls", action="store_true")
    p.add_argument("--user")
    p.add_argument("--password-file")
    p.add_argument("--fail-first", type=int, default=0)
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    kwargs = {}
    if a.cert and a.key:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        kwargs["tls_context"] = ctx
        kwargs["require_starttls"] = a.require_tls
    elif a.cert or a.key:
        sys.exit("--cert and --key go together")
    if a.user:
        if not a.password_file:
            sys.exit("--user needs --password-file")
        with open(a.password_file) as f:
            password = f.read().strip()
        kwargs["authenticator"] = Authenticator(a.user, password)
        kwargs["auth_required"] = True
        # AUTH over plain text only when no TLS is offered (tests without certificates).
        kwargs["auth_require_tls"] = bool(a.cert)
    controller = Controller(
        Sink(a.dir, a.fail_first), hostname=a.host, port=a.port, **kwargs
    )
    controller.start()
    print(f"ready {a.port}", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
