// Verifies a Mono webhook request: the secret in WEBHOOK_SECRET, the
// Mono-Signature header in MONO_SIGNATURE, the raw body on standard input.
// VERIFY_NOW (Unix seconds) replaces the clock. Exit 0: valid; 1: not.
const crypto = require("crypto");
const fs = require("fs");

const TOLERANCE_SECONDS = 5 * 60;

function verify(header, rawBody, secret, nowSeconds) {
  let t = null;
  const v1 = [];
  for (const part of header.split(",")) {
    const i = part.indexOf("=");
    if (i < 0) return "malformed header";
    const key = part.slice(0, i).trim();
    const value = part.slice(i + 1).trim();
    if (key === "t" && /^\d+$/.test(value)) t = Number(value);
    else if (key === "v1") v1.push(value);
  }
  if (t === null || v1.length === 0) return "malformed header";
  const expected = crypto
    .createHmac("sha256", secret)
    .update(Buffer.concat([Buffer.from(t + "."), rawBody]))
    .digest("hex");
  const match = v1.some(
    (sig) =>
      sig.length === expected.length &&
      crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(expected))
  );
  if (!match) return "no matching v1 signature";
  if (Math.abs(nowSeconds - t) > TOLERANCE_SECONDS) return "timestamp outside the 5-minute tolerance";
  return null;
}

const rawBody = fs.readFileSync(0); // a Buffer: the raw body, byte for byte
const now = process.env.VERIFY_NOW ? Number(process.env.VERIFY_NOW) : Math.floor(Date.now() / 1000);
const error = verify(process.env.MONO_SIGNATURE || "", rawBody, process.env.WEBHOOK_SECRET || "", now);
if (error) {
  console.error("invalid: " + error);
  process.exit(1);
}
console.log("valid");
