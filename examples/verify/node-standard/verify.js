// Verifies a Standard Webhooks request from Mono with the official
// standardwebhooks package (npm install standardwebhooks): the secret in
// WEBHOOK_SECRET, the webhook-id, webhook-timestamp and webhook-signature
// headers in WEBHOOK_ID, WEBHOOK_TIMESTAMP and WEBHOOK_SIGNATURE, the raw
// body on standard input. Exit 0: valid; 1: not.
const { Webhook } = require("standardwebhooks");

function verify(secret, headers, rawBody) {
  // Throws a WebhookVerificationError: no matching signature, or a
  // timestamp more than 5 minutes from the clock.
  new Webhook(secret).verify(rawBody, headers);
}

const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const headers = {
    "webhook-id": process.env.WEBHOOK_ID || "",
    "webhook-timestamp": process.env.WEBHOOK_TIMESTAMP || "",
    "webhook-signature": process.env.WEBHOOK_SIGNATURE || "",
  };
  try {
    verify(process.env.WEBHOOK_SECRET, headers, Buffer.concat(chunks));
    console.log("valid");
  } catch (err) {
    console.error("invalid: " + err.message);
    process.exit(1);
  }
});
