<?php
// Verifies a Mono webhook request: the secret in WEBHOOK_SECRET, the
// Mono-Signature header in MONO_SIGNATURE, the raw body on standard input.
// VERIFY_NOW (Unix seconds) replaces the clock. Exit 0: valid; 1: not.
const TOLERANCE_SECONDS = 5 * 60;

function verify(string $header, string $rawBody, string $secret, int $now): ?string
{
    $t = null;
    $v1 = [];
    foreach (explode(",", $header) as $part) {
        $pair = explode("=", trim($part), 2);
        if (count($pair) !== 2) {
            return "malformed header";
        }
        if ($pair[0] === "t" && ctype_digit($pair[1])) {
            $t = (int) $pair[1];
        } elseif ($pair[0] === "v1") {
            $v1[] = $pair[1];
        }
    }
    if ($t === null || count($v1) === 0) {
        return "malformed header";
    }
    $expected = hash_hmac("sha256", $t . "." . $rawBody, $secret);
    $match = false;
    foreach ($v1 as $sig) {
        $match = hash_equals($expected, $sig) || $match;
    }
    if (!$match) {
        return "no matching v1 signature";
    }
    if (abs($now - $t) > TOLERANCE_SECONDS) {
        return "timestamp outside the 5-minute tolerance";
    }
    return null;
}

$rawBody = file_get_contents("php://stdin"); // in a web server: file_get_contents("php://input")
$now = getenv("VERIFY_NOW") !== false && getenv("VERIFY_NOW") !== "" ? (int) getenv("VERIFY_NOW") : time();
$error = verify((string) getenv("MONO_SIGNATURE"), $rawBody, (string) getenv("WEBHOOK_SECRET"), $now);
if ($error !== null) {
    fwrite(STDERR, "invalid: " . $error . "\n");
    exit(1);
}
echo "valid\n";
