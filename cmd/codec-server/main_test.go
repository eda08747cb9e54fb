package main

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/chamelaion-lipsync/worker/codec"
)

func TestDecodeForTheWebUI(t *testing.T) {
	c, err := codec.ParseKeys("k1:"+base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))), "")
	require.NoError(t, err)
	srv := httptest.NewServer(codec.HTTPHandler(c, []string{"http://localhost:8233"}))
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
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "http://localhost:8233", resp.Header.Get("Access-Control-Allow-Origin"))

	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/decode", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	req.Header.Set("Origin", "http://evil.example")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "other origins get no CORS grant")
	var out commonpb.Payloads
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, protojson.Unmarshal(raw, &out))
	var s string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(out.Payloads[0], &s))
	require.Equal(t, "https://cdn/v.mp4?sig=SIGSECRET", s)
}
