package chamelaion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HTTPDoer sends HTTP requests; *http.Client is one.
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// Limits on what the client reads of an answer.
const (
	maxSuccessBody = 1 << 20 // a 2xx body larger than this is invalid
	maxErrorBody   = 4 << 10 // of an error body, this much is kept
)

// Client calls the Chamelaion API. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	key     string
	scheme  AuthScheme
	timeout time.Duration
	http    HTTPDoer
	agent   string
	redact  func(string) string
	now     func() time.Time
	observe func(string, int, time.Duration)
}

// New validates the options and returns a Client.
func New(opts Options) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(opts.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, errors.New("chamelaion: BaseURL must be an absolute http(s) URL")
	}
	if base.Scheme == "http" && !IsLoopback(base.Hostname()) && !opts.AllowInsecureHTTP {
		return nil, errors.New("chamelaion: BaseURL must be https (plain http only to a loopback host): the key would cross the network in the clear")
	}
	base.RawQuery, base.Fragment = "", ""
	if opts.APIKey == "" {
		return nil, errors.New("chamelaion: APIKey is required")
	}
	scheme := opts.AuthScheme
	if scheme == "" {
		scheme = AuthBearer
	}
	if scheme != AuthBearer && scheme != AuthAPIKeyHeader {
		return nil, fmt.Errorf("chamelaion: unknown AuthScheme %q (want bearer or x-api-key)", scheme)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	doer := opts.HTTPClient
	switch hc := doer.(type) {
	case nil:
		doer = &http.Client{CheckRedirect: refuseRedirect}
	case *http.Client:
		// A copy that never follows a redirect: Go forwards x-api-key to
		// any host, and a bearer token across https→http on one host.
		cp := *hc
		cp.CheckRedirect = refuseRedirect
		doer = &cp
	}
	return &Client{
		base: base, key: opts.APIKey, scheme: scheme, timeout: timeout, http: doer,
		agent: opts.UserAgent, redact: newRedactor(opts.APIKey), now: time.Now, observe: opts.Observe,
	}, nil
}

// refuseRedirect makes an http.Client return a redirect as the answer
// instead of following it.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// IsLoopback reports whether host (a name or an address, without a port)
// is this machine: localhost or a loopback IP address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Generate submits a job from media URLs (POST /v1/lipsync/generate).
func (c *Client) Generate(ctx context.Context, req GenerateRequest) (GenerateResponse, error) {
	const endpoint = "POST /v1/lipsync/generate"
	body, err := json.Marshal(generateBody{
		ReferenceID:                   req.ReferenceID,
		DisableActiveSpeakerDetection: req.DisableActiveSpeakerDetection,
		Inputs:                        []Input{{Type: "video", URL: req.VideoURL}, {Type: "audio", URL: req.AudioURL}},
	})
	if err != nil {
		return GenerateResponse{}, fmt.Errorf("chamelaion: %s: encode request: %w", endpoint, err)
	}
	var resp GenerateResponse
	err = c.do(ctx, endpoint, http.MethodPost, "/v1/lipsync/generate", nil, "application/json",
		func() (io.Reader, error) { return bytes.NewReader(body), nil }, &resp)
	if err != nil {
		return GenerateResponse{}, err
	}
	return resp, validateGenerate(endpoint, resp)
}

// GenerateWithMedia submits a job with uploaded files
// (POST /v1/lipsync/generate-with-media). The files are streamed as they are
// sent, never held whole in memory.
func (c *Client) GenerateWithMedia(ctx context.Context, req GenerateWithMediaRequest) (GenerateResponse, error) {
	const endpoint = "POST /v1/lipsync/generate-with-media"
	if req.Video.Content == nil || req.Audio.Content == nil {
		return GenerateResponse{}, fmt.Errorf("chamelaion: %s: video and audio content are required", endpoint)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	written := make(chan error, 1)
	go func() {
		err := writeMultipart(mw, req)
		written <- err
		pw.CloseWithError(err)
	}()
	var resp GenerateResponse
	used := false
	err := c.do(ctx, endpoint, http.MethodPost, "/v1/lipsync/generate-with-media", nil, mw.FormDataContentType(),
		func() (io.Reader, error) {
			if used {
				return nil, errors.New("a streamed upload cannot be sent twice")
			}
			used = true
			return pr, nil
		}, &resp)
	// Unblock the writer if the request ended before reading everything.
	pr.CloseWithError(errRequestFinished)
	if err != nil {
		// A file that could not be read is a local failure, not the
		// network's: say so rather than let it pass for a lost answer.
		var up *UploadError
		if errors.As(<-written, &up) {
			up.Endpoint = endpoint
			return GenerateResponse{}, up
		}
		return GenerateResponse{}, err
	}
	return resp, validateGenerate(endpoint, resp)
}

func writeMultipart(mw *multipart.Writer, req GenerateWithMediaRequest) error {
	fields := [][2]string{}
	if req.Model != "" {
		fields = append(fields, [2]string{"model", req.Model})
	}
	if req.ReferenceID != "" {
		fields = append(fields, [2]string{"reference_id", req.ReferenceID})
	}
	fields = append(fields, [2]string{"disable_active_speaker_detection", strconv.FormatBool(req.DisableActiveSpeakerDetection)})
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		field string
		file  MediaFile
	}{{"video", req.Video}, {"audio", req.Audio}} {
		name := f.file.Name
		if name == "" {
			name = f.field
		}
		w, err := mw.CreateFormFile(f.field, name)
		if err != nil {
			return err
		}
		content := &readTracker{r: f.file.Content}
		if _, err := io.Copy(w, content); err != nil {
			if content.err != nil {
				return &UploadError{Field: f.field, Err: content.err}
			}
			return err // the request ended first; the file is not at fault
		}
	}
	return mw.Close()
}

// errRequestFinished ends an upload whose request ended before it.
var errRequestFinished = errors.New("request finished")

// readTracker remembers its reader's error (other than io.EOF), so that a
// file that cannot be read is told from a request that ended.
type readTracker struct {
	r   io.Reader
	err error
}

func (t *readTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

func validateGenerate(endpoint string, resp GenerateResponse) error {
	if resp.Status != "success" || strings.TrimSpace(resp.RequestID) == "" {
		return &ResponseError{Endpoint: endpoint, StatusCode: http.StatusOK,
			Reason: fmt.Sprintf("want status \"success\" and a request_id, got status %q", truncate(SanitizeMessage(resp.Status), 40))}
	}
	if err := checkRequestID(resp.RequestID); err != nil {
		return &ResponseError{Endpoint: endpoint, StatusCode: http.StatusOK, Reason: err.Error()}
	}
	return nil
}

// MaxRequestIDLength bounds a vendor request id (a UUID is 36 bytes). The
// id rides in a search attribute, whose size Temporal limits: an id past
// the limit would fail every workflow task of its job.
const MaxRequestIDLength = 128

// checkRequestID refuses an implausible request id: empty, longer than
// MaxRequestIDLength, or with characters other than letters, digits and
// "-_.:". The error never repeats the id whole.
func checkRequestID(id string) error {
	if id == "" || len(id) > MaxRequestIDLength {
		return fmt.Errorf("implausible request id (%d bytes; at most %d)", len(id), MaxRequestIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return fmt.Errorf("implausible request id (byte %d is %q)", i, c)
		}
	}
	if strings.Contains(id, "..") {
		return errors.New("implausible request id (holds \"..\")")
	}
	return nil
}

// GetRequest reads one job by its request UUID or its reference_id
// (GET /v1/lipsync/requests/{id}).
func (c *Client) GetRequest(ctx context.Context, idOrReferenceID string) (Request, error) {
	const endpoint = "GET /v1/lipsync/requests/{id}"
	if idOrReferenceID == "" {
		return Request{}, fmt.Errorf("chamelaion: %s: id is required", endpoint)
	}
	var r Request
	if err := c.do(ctx, endpoint, http.MethodGet, "/v1/lipsync/requests/"+url.PathEscape(idOrReferenceID), nil, "", nil, &r); err != nil {
		return Request{}, err
	}
	if err := validateRequest(r); err != nil {
		return Request{}, &ResponseError{Endpoint: endpoint, StatusCode: http.StatusOK, Reason: err.Error()}
	}
	r.ErrorMessage = sanitize(c.redact, r.ErrorMessage)
	return r, nil
}

// validateRequest refuses a job description that must not be trusted.
func validateRequest(r Request) error {
	switch {
	case strings.TrimSpace(r.ID) == "":
		return errors.New("request without an id")
	case checkRequestID(r.ID) != nil:
		return checkRequestID(r.ID)
	case !r.Status.Known():
		return fmt.Errorf("unknown status %q", truncate(SanitizeMessage(string(r.Status)), 40))
	case r.Status == StatusCompleted && strings.TrimSpace(r.OutputURL) == "":
		return errors.New("completed request without an output_url")
	}
	return nil
}

// ListRequests reads a page of jobs, newest first, optionally filtered by
// reference_id (GET /v1/lipsync/requests).
func (c *Client) ListRequests(ctx context.Context, opts ListOptions) (RequestPage, error) {
	const endpoint = "GET /v1/lipsync/requests"
	q := url.Values{}
	if opts.ReferenceID != "" {
		q.Set("reference_id", opts.ReferenceID)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Offset > 0 {
		q.Set("offset", strconv.Itoa(opts.Offset))
	}
	var raw struct {
		Data       *[]Request  `json:"data"`
		Pagination *Pagination `json:"pagination"`
	}
	if err := c.do(ctx, endpoint, http.MethodGet, "/v1/lipsync/requests", q, "", nil, &raw); err != nil {
		return RequestPage{}, err
	}
	if raw.Data == nil {
		return RequestPage{}, &ResponseError{Endpoint: endpoint, StatusCode: http.StatusOK, Reason: "no data field"}
	}
	for _, r := range *raw.Data {
		if err := validateRequest(r); err != nil {
			return RequestPage{}, &ResponseError{Endpoint: endpoint, StatusCode: http.StatusOK, Reason: err.Error()}
		}
	}
	for i := range *raw.Data {
		(*raw.Data)[i].ErrorMessage = sanitize(c.redact, (*raw.Data)[i].ErrorMessage)
	}
	page := RequestPage{Data: *raw.Data}
	if raw.Pagination != nil {
		page.Pagination = *raw.Pagination
	}
	return page, nil
}

// Me verifies the token (GET /v1/users/me).
func (c *Client) Me(ctx context.Context) (User, error) {
	const endpoint = "GET /v1/users/me"
	var u User
	if err := c.do(ctx, endpoint, http.MethodGet, "/v1/users/me", nil, "", nil, &u); err != nil {
		return User{}, err
	}
	return u, nil
}

// Health checks that the API answers (GET /health, no token).
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, "GET /health", http.MethodGet, "/health", nil, "", nil, nil)
}

// do sends one request and decodes a 2xx JSON answer into out (when not
// nil). body returns the request body (nil for none).
func (c *Client) do(ctx context.Context, endpoint, method, path string, query url.Values, contentType string,
	body func() (io.Reader, error), out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawPath = ""
	if strings.Contains(path, "%") {
		u.RawPath = strings.TrimRight(c.base.EscapedPath(), "/") + path
	}
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		var err error
		if rd, err = body(); err != nil {
			return fmt.Errorf("chamelaion: %s: %w", endpoint, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("chamelaion: %s: build request: %s", endpoint, innermost(err))
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.agent != "" {
		req.Header.Set("User-Agent", c.agent)
	}
	if path != "/health" {
		if c.scheme == AuthAPIKeyHeader {
			req.Header.Set("x-api-key", c.key)
		} else {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if c.observe != nil {
		code := 0
		if err == nil {
			code = resp.StatusCode
		}
		c.observe(endpoint, code, time.Since(start))
	}
	if err != nil {
		return transportError(endpoint, err, ctx.Err())
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 || (resp.Request != nil && resp.Request.URL.String() != req.URL.String()) {
		// Never followed (see New); a doer of the caller's that followed
		// one anyway has its answer refused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return &APIError{Endpoint: endpoint, StatusCode: resp.StatusCode,
			Message: "redirect refused: the API must answer at its base URL, and the key is never sent elsewhere"}
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil && len(b) == 0 {
			// The status line arrived; keep what it says even if the body
			// was cut.
			b = nil
		}
		return parseAPIError(endpoint, resp.StatusCode, resp.Header, b, c.now(), c.redact)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSuccessBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return transportError(endpoint, err, ctx.Err())
		}
		return &ResponseError{Endpoint: endpoint, StatusCode: resp.StatusCode, Reason: "body cut short: " + innermost(err)}
	}
	if len(b) > maxSuccessBody {
		return &ResponseError{Endpoint: endpoint, StatusCode: resp.StatusCode, Reason: "body larger than 1 MiB"}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return &ResponseError{Endpoint: endpoint, StatusCode: resp.StatusCode, Reason: "unparsable JSON: " + jsonProblem(err)}
	}
	return nil
}

// jsonProblem describes a decoding error without quoting the body.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type (%s)", typ.Field, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	default:
		return "malformed"
	}
}
