"""Verifies a Mono webhook request: the secret in WEBHOOK_SECRET, the
Mono-Signature header in MONO_SIGNATURE, the raw body on standard input.
VERIFY_NOW (Unix seconds) replaces the clock. Exit 0: valid; 1: not."""
import hashlib
import hmac
import os
import sys
import time

TOLERANCE_SECONDS = 5 * 60


def verify(header, raw_body, secret, now):
    t, v1 = None, []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return "malformed header"
        if key == "t" and value.isdigit():
            t = int(value)
        elif key == "v1":
            v1.append(value)
    if t is None or not v1:
        return "malformed header"
    expected = hmac.new(secret.encode(), str(t).encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(sig, expected) for sig in v1):
        return "no matching v1 signature"
    if abs(now - t) > TOLERANCE_SECONDS:
        return "timestamp outside the 5-minute tolerance"
    return None


raw_body = sys.stdin.buffer.read()  # bytes: the raw body, byte for byte
now = int(os.environ.get("VERIFY_NOW") or time.time())
error = verify(os.environ.get("MONO_SIGNATURE", ""), raw_body, os.environ.get("WEBHOOK_SECRET", ""), now)
if error:
    print("invalid: " + error, file=sys.stderr)
    sys.exit(1)
print("valid")
