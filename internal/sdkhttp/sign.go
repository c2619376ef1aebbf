package sdkhttp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

var keyPrefix = regexp.MustCompile(`^signkey-\w+-`)

// Sign is the X-Inngest-Signature of a request body sent to an app at now:
// "t=<unix seconds>&s=<hex HMAC-SHA256>", keyed by the signing key without its
// "signkey-<env>-" prefix (as text, not hex-decoded), over the body followed by the
// timestamp. Sign the canonical body (Canonical) and send exactly those bytes.
func Sign(body []byte, signingKey string, now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return "t=" + ts + "&s=" + mac(body, ts, signingKey)
}

func mac(body []byte, ts, signingKey string) string {
	m := hmac.New(sha256.New, []byte(keyPrefix.ReplaceAllString(signingKey, "")))
	m.Write(body)
	m.Write([]byte(ts))
	return hex.EncodeToString(m.Sum(nil))
}

// MaxSignatureAge is how far a signature's timestamp may be from now, as the SDKs allow.
const MaxSignatureAge = 5 * time.Minute

// ErrBadSignature is a signature that is missing, malformed, stale or wrong.
var ErrBadSignature = errors.New("bad X-Inngest-Signature")

// Verify checks a signature made by Sign (an app signs its answers over the body as sent).
func Verify(header string, body []byte, signingKey string, now time.Time) error {
	q, err := url.ParseQuery(header)
	if err != nil || q.Get("t") == "" || q.Get("s") == "" {
		return fmt.Errorf("%w: want t=<unix>&s=<hex>", ErrBadSignature)
	}
	ts, err := strconv.ParseInt(q.Get("t"), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrBadSignature, q.Get("t"))
	}
	if d := now.Sub(time.Unix(ts, 0)); d > MaxSignatureAge || d < -MaxSignatureAge {
		return fmt.Errorf("%w: timestamp is %s away from now", ErrBadSignature, d.Round(time.Second))
	}
	want := mac(body, q.Get("t"), signingKey)
	if !hmac.Equal([]byte(want), []byte(q.Get("s"))) {
		return fmt.Errorf("%w: it does not match the signing key", ErrBadSignature)
	}
	return nil
}
