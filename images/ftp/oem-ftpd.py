#!/usr/bin/python3
"""FTP/FTPS server of the ftp image (pyftpdlib), configured from the environment:
FTP_USER, FTP_PASSWORD, FTP_TLS (required | optional | off), FTP_PASSIVE_PORTS (30000-30009),
FTP_PASSIVE_ADDRESS (optional; default: the address the client connected to), FTP_PORT (2121).
The account is confined to /srv/www; TLS material in /tmp/tls (written by the entrypoint)."""
import hmac
import logging
import os
import signal
import sys

from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

ROOT = "/srv/www"


class OneAccount(DummyAuthorizer):
    """The single account; the password compared in constant time."""

    def validate_authentication(self, username, password, handler):
        ok_user = username in self.user_table
        expected = self.user_table[username]["pwd"] if ok_user else ""
        if not (hmac.compare_digest(expected.encode(), password.encode()) and ok_user):
            raise AuthenticationFailed("Authentication failed.")


def env(name, default=None):
    v = os.environ.get(name, "")
    return v if v != "" else default


def main():
    logging.basicConfig(level=logging.DEBUG if env("FTP_DEBUG") else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s ftp: %(message)s", datefmt="%Y-%m-%dT%H:%M:%SZ")
    user, password = env("FTP_USER"), env("FTP_PASSWORD")
    if not user or not password:
        sys.exit("ftp: FTP_USER and FTP_PASSWORD are required")
    tls = env("FTP_TLS", "required")
    if tls not in ("required", "optional", "off"):
        sys.exit(f"ftp: FTP_TLS must be required, optional or off, not {tls!r}")
    lo, _, hi = env("FTP_PASSIVE_PORTS", "30000-30009").partition("-")
    passive = range(int(lo), int(hi or lo) + 1)

    auth = OneAccount()
    # e: cd, l: list, r: read, a: append, d: delete, f: rename, m: mkdir, w: write,
    # M: chmod, T: mtime
    auth.add_user(user, password, ROOT, perm="elradfmwMT",
                  msg_login="Login successful.", msg_quit="Goodbye.")

    if tls == "off":
        handler = FTPHandler
    else:
        from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler

        class DTP(TLS_DTPHandler):
            """pyftpdlib closes a data connection that turns readable before the transfer
            command, taking the client's TLS handshake (curl, lftp, FileZilla handshake as
            soon as they connect) for a disconnection: let the handshake proceed."""

            def readable(self):
                if self._ssl_requested and (self._ssl_accepting or self._ssl_want_read):
                    return True
                return super().readable()

        handler = TLS_FTPHandler
        handler.dtp_handler = DTP
        from OpenSSL import SSL
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
        ctx.use_certificate_chain_file("/tmp/tls/tls.crt")
        ctx.use_privatekey_file("/tmp/tls/tls.key")
        # clients (curl, FileZilla, lftp) resume the control connection's TLS session on the
        # data connections: OpenSSL refuses that without a session id context
        ctx.set_session_id(b"oem-ftpd")
        handler.certfile = "/tmp/tls/tls.crt"
        handler.keyfile = "/tmp/tls/tls.key"
        handler.ssl_context = ctx
        handler.tls_control_required = tls == "required"
        handler.tls_data_required = tls == "required"
    handler.authorizer = auth
    handler.banner = "FTP server ready."
    handler.passive_ports = passive
    handler.masquerade_address = env("FTP_PASSIVE_ADDRESS")
    handler.permit_foreign_addresses = False
    handler.permit_privileged_ports = False
    handler.max_login_attempts = 3
    handler.timeout = 300
    handler.use_sendfile = False

    server = FTPServer(("0.0.0.0", int(env("FTP_PORT", "2121"))), handler)
    server.max_cons = 64
    server.max_cons_per_ip = 16

    def stop(signum, _frame):
        logging.info("signal %d: closing", signum)
        server.close_all()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.info("FTP on port %s, TLS %s, passive ports %d-%d, root %s, user %s",
                 server.address[1], tls, passive.start, passive.stop - 1, ROOT, user)
    server.serve_forever(handle_exit=False)


if __name__ == "__main__":
    main()
