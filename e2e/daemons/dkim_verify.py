"""Verifies a message's DKIM signature with dkimpy (Debian python3-dkim), a verifier of its
own, against the TXT record the end user was told to publish, as a receiving MTA would find
it in DNS. Exits 0 only when the message carries a signature by DOMAIN with SELECTOR and it
verifies; prints what it checked.

    /usr/bin/python3 e2e/daemons/dkim_verify.py MESSAGE DOMAIN SELECTOR 'v=DKIM1; k=rsa; p=...'
"""

import sys

import dkim


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    path, domain, selector, record = sys.argv[1:]
    with open(path, "rb") as f:
        message = f.read()
    name = f"{selector}._domainkey.{domain}."
    asked = []

    # What DNS would answer: the record the end user published, under its name only.
    def dns(qname, timeout=5):
        qname = qname.decode() if isinstance(qname, bytes) else qname
        asked.append(qname)
        return record.encode() if qname.lower() == name.lower() else None

    signatures = [
        line for line in message.split(b"\r\n") + message.split(b"\n")
        if line.lower().startswith(b"dkim-signature:")
    ]
    if not signatures:
        sys.exit(f"{path}: no DKIM-Signature header")
    verifier = dkim.DKIM(message)
    ok = verifier.verify(dnsfunc=dns)
    print(f"{path}: d={verifier.domain.decode() if verifier.domain else '?'} "
          f"s={verifier.selector.decode() if verifier.selector else '?'} "
          f"looked up {asked}: {'pass' if ok else 'FAIL'}")
    if not ok or (verifier.domain or b"").decode().lower() != domain.lower():
        sys.exit(1)


if __name__ == "__main__":
    main()
