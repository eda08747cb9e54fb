package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/chamelaion-lipsync/worker/codec"
)

const testToken = "codec-server-test-token-42"

func testKeys() string {
	return "k1:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
}

func TestDecodeForTheWebUI(t *testing.T) {
	c, err := codec.ParseKeys(testKeys(), "")
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(nil)
	h, err := codec.HTTPHandler(c, codec.HTTPOptions{Token: testToken, Origins: []string{"http://localhost:8233"}, Hosts: codec.DefaultHosts(srv.Listener.Addr().String())})
	require.NoError(t, err)
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()

	p, err := converter.GetDefaultDataConverter().ToPayload("https://cdn/v.mp4?sig=SIGSECRET")
	require.NoError(t, err)
	enc, err := c.Encode([]*commonpb.Payload{p})
	require.NoError(t, err)
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: enc})
	require.NoError(t, err)

	req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/decode", nil)
	req.Header.Set("Origin", "http://localhost:8233")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300)
	require.Equal(t, "http://localhost:8233", resp.Header.Get("Access-Control-Allow-Origin"))

	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/decode", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	req.Header.Set("Origin", "http://localhost:8233")
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	var out commonpb.Payloads
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, protojson.Unmarshal(raw, &out))
	var s string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(out.Payloads[0], &s))
	require.Equal(t, "https://cdn/v.mp4?sig=SIGSECRET", s)
}

// TestServerRefusesToRunOpen: without a token it does not start; without
// authentication it starts only on a loopback address; by default it
// listens on 127.0.0.1.
func TestServerRefusesToRunOpen(t *testing.T) {
	t.Setenv("PAYLOAD_ENCRYPTION_KEYS", testKeys())
	t.Setenv("CODEC_SERVER_TOKEN", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "a token is required"},
		{[]string{"--insecure-no-auth", "--addr", "0.0.0.0:0"}, "loopback"},
		{[]string{"--insecure-no-auth", "--addr", "192.0.2.1:0"}, "loopback"},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		require.ErrorContains(t, err, tc.want, tc.args)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("short\n"), 0o600))
	require.ErrorContains(t, run(context.Background(), []string{"--token-file", tokenFile, "--addr", "127.0.0.1:0"}, io.Discard, io.Discard), "16")

	var help bytes.Buffer
	_ = run(context.Background(), []string{"-h"}, io.Discard, &help)
	require.Contains(t, help.String(), `(default "127.0.0.1:8081")`, "listens on loopback unless told otherwise")

	require.NoError(t, os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--token-file", tokenFile, "--addr", "127.0.0.1:0"}, pw, io.Discard) }()
	line := make([]byte, 200)
	n, _ := pr.Read(line)
	require.Contains(t, string(line[:n]), "listening on http://127.0.0.1:")
	require.Contains(t, string(line[:n]), "bearer token required")
	require.NotContains(t, string(line[:n]), testToken)
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	cancel()
	require.NoError(t, <-done)
}
