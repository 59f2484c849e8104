# Verifies a Standard Webhooks request from Mono with Python's standard
# library: the secret in WEBHOOK_SECRET, the webhook-id, webhook-timestamp
# and webhook-signature headers in WEBHOOK_ID, WEBHOOK_TIMESTAMP and
# WEBHOOK_SIGNATURE, the raw body on standard input. VERIFY_NOW (Unix
# seconds) replaces the clock. Exit 0: valid; 1: not.
import base64
import hashlib
import hmac
import os
import sys
import time

TOLERANCE = 5 * 60


def verify(secret, msg_id, timestamp, signature, body, now):
    """Raises ValueError unless one v1 entry of signature matches."""
    if not secret.startswith("whsec_"):
        raise ValueError("malformed secret: it must start with whsec_")
    key = base64.b64decode(secret[len("whsec_"):], validate=True)
    if not msg_id or not timestamp.isdigit():
        raise ValueError("malformed webhook-id or webhook-timestamp header")
    if abs(now - int(timestamp)) > TOLERANCE:
        raise ValueError("timestamp outside the tolerance")
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for entry in signature.split(" "):
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(sig.encode(), expected):
            return
    raise ValueError("no matching v1 signature")


def main():
    body = sys.stdin.buffer.read()
    now = int(os.environ.get("VERIFY_NOW") or time.time())
    try:
        verify(os.environ.get("WEBHOOK_SECRET", ""), os.environ.get("WEBHOOK_ID", ""),
               os.environ.get("WEBHOOK_TIMESTAMP", ""), os.environ.get("WEBHOOK_SIGNATURE", ""), body, now)
    except ValueError as e:
        print("invalid: " + str(e), file=sys.stderr)
        sys.exit(1)
    print("valid")


main()
