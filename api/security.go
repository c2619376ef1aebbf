package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"
)

// anyOrigin lets browsers send events from any origin, as Inngest does; /v1 gets no
// CORS headers, so no web page can read or cancel runs through a user's browser.
func anyOrigin(c *gin.Context) {
	c.Header("Access-Control-Allow-Origin", "*")
	if c.Request.Method == http.MethodOptions {
		c.Header("Access-Control-Allow-Methods", "POST, OPTIONS")
		c.Header("Access-Control-Allow-Headers", c.GetHeader("Access-Control-Request-Headers"))
		c.AbortWithStatus(http.StatusNoContent)
	}
}

// loopbackOnly answers, in dev, only requests addressed to localhost or a loopback
// address: a web page that rebinds its own domain name to 127.0.0.1 still sends that
// name as Host, and gets 403.
func loopbackOnly(c *gin.Context) {
	if !loopbackHost(c.Request.Host) {
		publicErr(c, 403, fmt.Sprintf("Host %q is not allowed: the dev server answers requests to localhost or a loopback address only", c.Request.Host))
	}
}

func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func hashKeys(keys []string) [][32]byte {
	out := make([][32]byte, len(keys))
	for i, k := range keys {
		out[i] = sha256.Sum256([]byte(k))
	}
	return out
}

// eventKeyMatches compares hashes in constant time against every key, so neither the
// position of a match nor a key's length shows in the timing.
func (h *handlers) eventKeyMatches(key string) bool {
	sum := sha256.Sum256([]byte(key))
	found := 0
	for _, k := range h.keys {
		found |= subtle.ConstantTimeCompare(sum[:], k[:])
	}
	return found == 1
}

func (h *handlers) auth(c *gin.Context) {
	switch {
	case h.cfg.Dev:
		return
	case h.cfg.SigningKey == "":
		if !h.cfg.InsecureNoAuth {
			publicErr(c, 503, "The REST API requires a signing key: start the server with INNGEST_SIGNING_KEY set")
		}
		return
	}
	token, found := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !found || !SigningKeyMatches(h.cfg.SigningKey, strings.TrimSpace(token)) {
		publicErr(c, 401, "Authentication failed: send Authorization: Bearer <signing key>")
	}
}

var signKeyPrefix = regexp.MustCompile(`^signkey-\w+-`)

// SigningKeyMatches accepts the raw signing key or the SDKs' hashed form
// (signkey-<env>-hex(sha256(hexdecode(key)))), with or without the prefix.
func SigningKeyMatches(key, token string) bool {
	raw := signKeyPrefix.ReplaceAllString(key, "")
	tok := signKeyPrefix.ReplaceAllString(token, "")
	if subtle.ConstantTimeCompare([]byte(raw), []byte(tok)) == 1 {
		return true
	}
	b, err := hex.DecodeString(raw)
	if err != nil {
		return false
	}
	sum := sha256.Sum256(b)
	return subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(tok)) == 1
}
