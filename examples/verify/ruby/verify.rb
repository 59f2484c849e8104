# Verifies a Mono webhook request: the secret in WEBHOOK_SECRET, the
# Mono-Signature header in MONO_SIGNATURE, the raw body on standard input.
# VERIFY_NOW (Unix seconds) replaces the clock. Exit 0: valid; 1: not.
require "openssl"

TOLERANCE_SECONDS = 5 * 60

def verify(header, raw_body, secret, now)
  t = nil
  v1 = []
  header.split(",").each do |part|
    key, value = part.strip.split("=", 2)
    return "malformed header" if value.nil?
    if key == "t" && value.match?(/\A\d+\z/)
      t = Integer(value, 10)
    elsif key == "v1"
      v1 << value
    end
  end
  return "malformed header" if t.nil? || v1.empty?
  expected = OpenSSL::HMAC.hexdigest("SHA256", secret, "#{t}.#{raw_body}")
  return "no matching v1 signature" unless v1.any? { |sig| OpenSSL.secure_compare(sig, expected) }
  return "timestamp outside the 5-minute tolerance" if (now - t).abs > TOLERANCE_SECONDS
  nil
end

raw_body = $stdin.binmode.read # the raw body, byte for byte
now = ENV["VERIFY_NOW"].to_s.empty? ? Time.now.to_i : Integer(ENV["VERIFY_NOW"], 10)
error = verify(ENV.fetch("MONO_SIGNATURE", ""), raw_body, ENV.fetch("WEBHOOK_SECRET", ""), now)
if error
  warn "invalid: #{error}"
  exit 1
end
puts "valid"
