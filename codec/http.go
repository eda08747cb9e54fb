package codec

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"go.temporal.io/sdk/converter"
)

// HTTPOptions say whom the codec's HTTP handler serves.
type HTTPOptions struct {
	// Token is the bearer token every /encode and /decode request must
	// carry (Authorization: Bearer <token>), at least 16 characters.
	// Required unless InsecureNoAuth.
	Token string
	// InsecureNoAuth serves /decode without a token, for a codec server
	// on the operator's own machine; /encode is then refused, so that it
	// never encrypts for a caller it did not authenticate.
	InsecureNoAuth bool
	// Origins are the Web UI origins granted CORS. A request carrying
	// another Origin is refused (403).
	Origins []string
	// Hosts are the Host header values accepted (host:port, as the
	// clients address the server). Any other is refused (421), which
	// defeats DNS rebinding against a server on 127.0.0.1. Required.
	Hosts []string
	// MaxBodyBytes bounds a request body. Defaults to 4 MiB.
	MaxBodyBytes int64
}

// MinTokenLength is the shortest token HTTPHandler accepts.
const MinTokenLength = 16

// HTTPHandler serves Temporal's remote codec protocol (POST /encode and
// POST /decode) for the Web UI and CLI, to authenticated callers only:
// the Host must be one of o.Hosts, an Origin one of o.Origins, the bearer
// token o.Token, and the body at most o.MaxBodyBytes. Errors never repeat
// the token.
func HTTPHandler(c *Codec, o HTTPOptions) (http.Handler, error) {
	if o.Token == "" && !o.InsecureNoAuth {
		return nil, errors.New("codec server: a token is required (or run it explicitly without authentication, for local use only)")
	}
	if o.Token != "" && len(o.Token) < MinTokenLength {
		return nil, fmt.Errorf("codec server: the token must be at least %d characters", MinTokenLength)
	}
	hosts := map[string]bool{}
	for _, h := range o.Hosts {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			hosts[h] = true
		}
	}
	if len(hosts) == 0 {
		return nil, errors.New("codec server: name the host:port values clients use (the Host header check defeats DNS rebinding)")
	}
	origins := map[string]bool{}
	for _, org := range o.Origins {
		if org = strings.TrimRight(strings.TrimSpace(org), "/"); org != "" {
			origins[org] = true
		}
	}
	maxBody := o.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = 4 << 20
	}
	want := []byte("Bearer " + o.Token)
	inner := converter.NewPayloadCodecHTTPHandler(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hosts[strings.ToLower(r.Host)] {
			http.Error(w, "unknown host", http.StatusMisdirectedRequest)
			return
		}
		origin := r.Header.Get("Origin")
		if origin != "" && !origins[origin] {
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		if origin != "" {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type,X-Namespace,Authorization")
			w.Header().Set("Access-Control-Allow-Methods", "POST,OPTIONS")
			w.Header().Set("Vary", "Origin")
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodPost || (r.URL.Path != "/encode" && r.URL.Path != "/decode") {
			http.NotFound(w, r)
			return
		}
		if o.Token == "" {
			if r.URL.Path == "/encode" {
				http.Error(w, "encoding needs a token: this codec server runs without authentication", http.StatusForbidden)
				return
			}
		} else if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="codec"`)
			http.Error(w, "a valid bearer token is required", http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "cannot read the body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		inner.ServeHTTP(w, r)
	}), nil
}

// DefaultHosts are the Host values a server listening on addr answers by
// default: the address itself and, for a loopback or wildcard address,
// localhost, 127.0.0.1 and [::1] on its port.
func DefaultHosts(addr string) []string {
	out := []string{addr}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return out
	}
	ip := net.ParseIP(host)
	if strings.EqualFold(host, "localhost") || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified())) {
		for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
			out = append(out, net.JoinHostPort(h, port))
		}
	}
	return out
}
