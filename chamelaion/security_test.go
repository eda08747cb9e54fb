package chamelaion_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chamelaion-lipsync/worker/chamelaion"
)

// echoes are the forms in which a vendor may repeat a pre-signed URL or a
// credential in a message: plain, JSON-escaped, percent-encoded (once and
// twice), bare parameters, a bearer header and a URL's password.
var echoes = []string{
	"cannot fetch " + signedURL,
	`cannot fetch https:\/\/cdn.example.com\/v.mp4?X-Amz-Signature=SIGSECRET&X-Amz-Credential=CREDSECRET`,
	"cannot fetch " + url.QueryEscape(signedURL),
	"cannot fetch " + url.QueryEscape(url.QueryEscape(signedURL)),
	"download failed: X-Amz-Signature=SIGSECRET X-Amz-Credential=CREDSECRET",
	"signature mismatch (Signature=SIGSECRET, Key-Pair-Id=CREDSECRET)",
	"token=SIGSECRET rejected",
	"header was Authorization: Bearer SIGSECRET",
	"cannot fetch https://user:SIGSECRET@cdn.example.com/v.mp4",
	"the token sk-live-SECRET123 has no access to " + signedURL,
	"the token " + url.QueryEscape(key) + " is odd",
	// Forms a review found passing (2026-12-03): a field or header with a
	// colon, a URL without its scheme or only partly encoded, JSON's
	// \u003f…\u003d, another Authorization scheme, the key upper-cased.
	`upstream said {"X-Amz-Signature":"SIGSECRET","X-Amz-Credential":"CREDSECRET"}`,
	"request headers: X-Amz-Security-Token: SIGSECRET",
	`params {"signature": "SIGSECRET"}`,
	"cannot download cdn.example.com/v.mp4?auth_key=1700000000-0-0-SIGSECRET",
	"cannot download cdn.example.com/v.mp4?hdnts=exp=1700000000~hmac=SIGSECRET",
	"cannot download https%3A%2F%2Fcdn.example.com%2Fv.mp4?hash=SIGSECRET&expires=1",
	"cannot download //cdn.example.com/v.mp4?hash=SIGSECRET",
	`cannot download https:\/\/cdn.example.com\/v.mp4\u003fhash\u003dSIGSECRET`,
	"Authorization: Token SIGSECRET",
	"the key " + strings.ToUpper(key) + " is not valid",
}

// TestAnErrorObjectAndAStatusAreRedactedToo: an error member that is a JSON
// object, and a status the client does not know, are server text like any
// other (both reached the classified message whole).
func TestAnErrorObjectAndAStatusAreRedactedToo(t *testing.T) {
	for _, body := range []string{
		`{"error":{"code":"fetch_failed","query":{"X-Amz-Signature":"SIGSECRET","X-Amz-Credential":"CREDSECRET"}}}`,
		`{"id":"6f82a2d8-a6d4-4e8a-a0fa-e8b09823a2d8","status":"s3://b/v?sig=SIGSECRET1234","created_at":"2026-04-07T10:00:00Z"}`,
		"{\"error\":\"bad \u001b]8;;https://evil.example\u001b\\\\link\"}",
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(body, `"status"`) {
				w.WriteHeader(http.StatusUnprocessableEntity)
			}
			_, _ = w.Write([]byte(body))
		}))
		c, err := chamelaion.New(chamelaion.Options{BaseURL: srv.URL, APIKey: key})
		require.NoError(t, err)
		_, err = c.GetRequest(context.Background(), "6f82a2d8-a6d4-4e8a-a0fa-e8b09823a2d8")
		srv.Close()
		require.Error(t, err)
		requireNoSecrets(t, err)
		require.NotContains(t, chamelaion.Classify(err).Message, "\x1b", "no terminal escape survives")
	}
}

// TestFailedJobErrorMessageIsRedactedAndTruncated: the vendor's
// error_message of a failed job is a server message like any other: every
// echo of a credential is redacted and a megabyte is cut to a line (it was
// returned as received, and written into rows, logs and webhooks).
func TestFailedJobErrorMessageIsRedactedAndTruncated(t *testing.T) {
	for _, echo := range append(echoes, strings.Repeat("x ", 450<<10)+signedURL) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			job := map[string]any{"id": "6f82a2d8-a6d4-4e8a-a0fa-e8b09823a2d8", "status": "failed",
				"created_at": "2026-04-07T10:00:00Z", "error_message": echo}
			if strings.HasSuffix(r.URL.Path, "/requests") {
				_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{job}})
				return
			}
			_ = json.NewEncoder(w).Encode(job)
		}))
		c, err := chamelaion.New(chamelaion.Options{BaseURL: srv.URL, APIKey: key})
		require.NoError(t, err)
		r, err := c.GetRequest(context.Background(), "6f82a2d8-a6d4-4e8a-a0fa-e8b09823a2d8")
		require.NoError(t, err)
		page, err := c.ListRequests(context.Background(), chamelaion.ListOptions{ReferenceID: "x"})
		require.NoError(t, err)
		srv.Close()
		for _, msg := range []string{r.ErrorMessage, page.Data[0].ErrorMessage} {
			for _, s := range secrets {
				require.NotContains(t, msg, s, "echo %.80q", echo)
			}
			require.LessOrEqual(t, len(msg), 200+len("…"), "echo %.80q", echo)
			require.NotEmpty(t, msg)
		}
	}
}

// TestServerMessagesRedactEveryForm: error bodies echoing credentials in
// any of the forms above leak none of them.
func TestServerMessagesRedactEveryForm(t *testing.T) {
	for _, echo := range echoes {
		body, _ := json.Marshal(map[string]string{"error": echo})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write(body)
		}))
		c, err := chamelaion.New(chamelaion.Options{BaseURL: srv.URL, APIKey: key})
		require.NoError(t, err)
		_, err = c.Generate(context.Background(), gen("echo"))
		srv.Close()
		require.Error(t, err)
		requireNoSecrets(t, err)
	}
}

// TestRedirectsAreRefused: an API answer that redirects is refused, with
// either auth scheme, and the key never reaches the redirect's target (Go's
// client forwards x-api-key to any host, and a bearer token across an
// https→http redirect on the same host).
func TestRedirectsAreRefused(t *testing.T) {
	var reached atomic.Int32
	var leaked atomic.Value
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		leaked.Store(r.Header.Get("x-api-key") + r.Header.Get("Authorization"))
		_, _ = io.WriteString(w, `{"status":"success","request_id":"6f82a2d8-a6d4-4e8a-a0fa-e8b09823a2d8"}`)
	}))
	defer target.Close()
	for _, status := range []int{301, 302, 303, 307, 308} {
		for _, scheme := range []chamelaion.AuthScheme{chamelaion.AuthBearer, chamelaion.AuthAPIKeyHeader} {
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+r.URL.Path, status)
			}))
			for _, client := range []chamelaion.HTTPDoer{nil, &http.Client{}} {
				c, err := chamelaion.New(chamelaion.Options{BaseURL: api.URL, APIKey: key, AuthScheme: scheme, HTTPClient: client})
				require.NoError(t, err)
				_, err = c.Generate(context.Background(), gen("redirect"))
				require.Error(t, err, "%d %s", status, scheme)
				cl := chamelaion.Classify(err)
				require.False(t, cl.Retryable, "%d: a redirect is refused for good", status)
				require.Equal(t, chamelaion.TypeRedirected, cl.Type)
				require.Equal(t, status, cl.StatusCode)
				requireNoSecrets(t, err)
			}
			api.Close()
		}
	}
	require.Zero(t, reached.Load(), "the redirect target was called (with %v)", leaked.Load())
}

// TestPlainHTTPOnlyToLoopback: the key is never sent in the clear across
// a network: an http:// base URL must name a loopback host, unless the
// caller says otherwise.
func TestPlainHTTPOnlyToLoopback(t *testing.T) {
	for _, base := range []string{"http://api.chamelaion.com/api", "http://10.0.0.5:8090/api", "http://emulator:8090/api", "http://127.0.0.1.nip.io/api"} {
		_, err := chamelaion.New(chamelaion.Options{BaseURL: base, APIKey: key})
		require.Error(t, err, base)
		require.Contains(t, err.Error(), "https", base)
		_, err = chamelaion.New(chamelaion.Options{BaseURL: base, APIKey: key, AllowInsecureHTTP: true})
		require.NoError(t, err, base)
	}
	for _, base := range []string{"https://api.chamelaion.com/api", "http://127.0.0.1:8090/api", "http://localhost:8090/api", "http://[::1]:8090/api", "http://127.0.0.2/api"} {
		_, err := chamelaion.New(chamelaion.Options{BaseURL: base, APIKey: key})
		require.NoError(t, err, base)
	}
}

// TestImplausibleRequestIDIsAnInvalidResponse: a request_id is carried in
// a search attribute, whose size Temporal bounds; one that is too long or
// holds odd characters would fail every workflow task of its job, so it is
// refused as an invalid (retryable) answer.
func TestImplausibleRequestIDIsAnInvalidResponse(t *testing.T) {
	for _, id := range []string{strings.Repeat("a", 2048), "has space", "x\ny", `"quoted"`, "6f82a2d8/../x"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				_ = json.NewEncoder(w).Encode(map[string]string{"status": "success", "request_id": id})
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "status": "queued", "created_at": "2026-04-07T10:00:00Z"})
		}))
		c, err := chamelaion.New(chamelaion.Options{BaseURL: srv.URL, APIKey: key})
		require.NoError(t, err)
		_, err = c.Generate(context.Background(), gen("x"))
		require.Equal(t, chamelaion.TypeInvalidResponse, chamelaion.Classify(err).Type, "generate, id %.40q", id)
		_, err = c.GetRequest(context.Background(), "x")
		require.Equal(t, chamelaion.TypeInvalidResponse, chamelaion.Classify(err).Type, "get, id %.40q", id)
		require.LessOrEqual(t, len(err.Error()), 300, "the refusal does not repeat the id whole")
		srv.Close()
	}
	// A UUID, and the ids other vendors use, are accepted.
	for _, id := range []string{"6f82a2d8-a6d4-4e8a-a0fa-e8b09823a2d8", "req_01HZX3K9", "job:42.1"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "success", "request_id": id})
		}))
		c, err := chamelaion.New(chamelaion.Options{BaseURL: srv.URL, APIKey: key})
		require.NoError(t, err)
		resp, err := c.Generate(context.Background(), gen("x"))
		require.NoError(t, err, id)
		require.Equal(t, id, resp.RequestID)
		srv.Close()
	}
}

// TestUploadReadFailureIsNotANetworkFailure: when a file being uploaded
// cannot be read, the error says so (an *UploadError, permanent), rather
// than passing for a connection failure that Temporal would retry for
// half an hour.
func TestUploadReadFailureIsNotANetworkFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"status":"success","request_id":"6f82a2d8-a6d4-4e8a-a0fa-e8b09823a2d8"}`)
	}))
	defer srv.Close()
	c, err := chamelaion.New(chamelaion.Options{BaseURL: srv.URL, APIKey: key})
	require.NoError(t, err)
	readErr := errors.New("input/output error")
	_, err = c.GenerateWithMedia(context.Background(), chamelaion.GenerateWithMediaRequest{
		Video: chamelaion.MediaFile{Name: "v.mp4", Content: io.MultiReader(strings.NewReader("some bytes"), iotest{readErr})},
		Audio: chamelaion.MediaFile{Name: "a.wav", Content: strings.NewReader("audio")},
	})
	var up *chamelaion.UploadError
	require.True(t, errors.As(err, &up), "got %T: %v", err, err)
	require.Equal(t, "video", up.Field)
	require.ErrorIs(t, err, readErr)
	require.False(t, chamelaion.Classify(err).Retryable)
}

type iotest struct{ err error }

func (r iotest) Read([]byte) (int, error) { return 0, r.err }
