package codec_test

import (
	"bytes"
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

// TestKeySpecErrorsNeverEchoAKey: a swapped spec (base64:id), an id that is
// itself a key, and an active id that is a key are refused without the
// error repeating the key.
func TestKeySpecErrorsNeverEchoAKey(t *testing.T) {
	k := key('s')
	for _, tc := range []struct{ spec, active string }{
		{k + ":k1", ""},
		{"k1:" + key('a') + "," + k + ":k2", ""},
		{k + ":" + key('a'), ""},
		{"k1:" + key('a'), k},
		{"k1:" + k[:20], ""},
	} {
		_, err := codec.ParseKeys(tc.spec, tc.active)
		require.Error(t, err, tc.spec)
		require.NotContains(t, err.Error(), k[:12], "spec %q", tc.spec)
	}
}

// TestStrictCodecRefusesClearPayloadsWithURLs: with keys configured, a
// payload that arrives in the clear and carries a URL (a keyless starter's
// media) is refused with an error naming the variable the writer lacks;
// clear payloads without one (a decision, a query's empty input) pass.
func TestStrictCodecRefusesClearPayloadsWithURLs(t *testing.T) {
	c, err := codec.ParseKeys("k1:"+key('a'), "")
	require.NoError(t, err)
	clear := payload(t, map[string]string{"Video": "https://cdn.example.com/v.mp4?X-Amz-Signature=SIGSECRET"})
	_, err = c.Decode([]*commonpb.Payload{clear})
	require.NoError(t, err, "a lenient codec (the codec server's) passes clear payloads through")

	strict := c.RefusingClear()
	_, err = strict.Decode([]*commonpb.Payload{clear})
	require.Error(t, err)
	require.Contains(t, err.Error(), "PAYLOAD_ENCRYPTION_KEYS")
	require.NotContains(t, err.Error(), "SIGSECRET")
	_, err = strict.Decode([]*commonpb.Payload{payload(t, "retry"), payload(t, nil)})
	require.NoError(t, err)
	enc, err := strict.Encode([]*commonpb.Payload{clear})
	require.NoError(t, err)
	_, err = strict.Decode(enc)
	require.NoError(t, err)

	// A client whose JSON encoder escapes "/" (PHP's does) or any
	// character as \uXXXX hides "://" from a byte search (found by a
	// review): the strings are looked at decoded.
	for _, data := range []string{
		`{"Video":"https:\/\/b.example\/v.mp4?X-Amz-Signature=SIGSECRET"}`,
		`{"Video":"https\u003a//b.example/v.mp4?X-Amz-Signature=SIGSECRET"}`,
		`["x", {"nested": "https\u003a\/\/b.example\/v.mp4"}]`,
	} {
		p := &commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte("json/plain")}, Data: []byte(data)}
		_, err := strict.Decode([]*commonpb.Payload{p})
		require.ErrorIs(t, err, codec.ErrClearPayload, data)
	}
	escapedNoURL := &commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte("json/plain")}, Data: []byte(`"line\nbreak \u00e9"`)}
	_, err = strict.Decode([]*commonpb.Payload{escapedNoURL})
	require.NoError(t, err, "escapes without a URL pass")
}

const token = "codec-token-0123456789abcdef"

// codecServer serves the handler as the codec server does, on a loopback
// listener.
func codecServer(t *testing.T, o codec.HTTPOptions) (*httptest.Server, []byte) {
	t.Helper()
	c, err := codec.ParseKeys("k1:"+key('a'), "")
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(nil)
	if o.Hosts == nil {
		o.Hosts = []string{srv.Listener.Addr().String()}
	}
	h, err := codec.HTTPHandler(c, o)
	require.NoError(t, err)
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	enc, err := c.Encode([]*commonpb.Payload{payload(t, "https://cdn/v.mp4?sig=SIGSECRET")})
	require.NoError(t, err)
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: enc})
	require.NoError(t, err)
	return srv, body
}

func post(t *testing.T, url string, body []byte, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestCodecServerRefusesWhoeverIsNotAllowed: the attacks on the codec
// server, each refused before anything is decrypted or encrypted.
func TestCodecServerRefusesWhoeverIsNotAllowed(t *testing.T) {
	srv, body := codecServer(t, codec.HTTPOptions{Token: token, Origins: []string{"http://localhost:8233"}})
	auth := "Bearer " + token
	cases := []struct {
		name    string
		path    string
		body    []byte
		headers map[string]string
		want    int
	}{
		{"no token", "/decode", body, nil, http.StatusUnauthorized},
		{"wrong token", "/decode", body, map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized},
		{"token in another scheme", "/decode", body, map[string]string{"Authorization": "Basic " + token}, http.StatusUnauthorized},
		{"no token, encode", "/encode", body, nil, http.StatusUnauthorized},
		{"DNS rebinding: a foreign Host", "/decode", body, map[string]string{"Authorization": auth, "Host": "rebind.attacker.example:8081"}, http.StatusMisdirectedRequest},
		{"a foreign Origin", "/decode", body, map[string]string{"Authorization": auth, "Origin": "http://attacker.example"}, http.StatusForbidden},
		{"a body past the limit", "/decode", bytes.Repeat([]byte(" "), 5<<20), map[string]string{"Authorization": auth}, http.StatusRequestEntityTooLarge},
		{"allowed", "/decode", body, map[string]string{"Authorization": auth, "Origin": "http://localhost:8233"}, http.StatusOK},
	}
	for _, tc := range cases {
		code, out := post(t, srv.URL+tc.path, tc.body, tc.headers)
		require.Equal(t, tc.want, code, "%s: %s", tc.name, out)
		if tc.want != http.StatusOK {
			require.NotContains(t, out, "SIGSECRET", tc.name)
		} else {
			require.Contains(t, out, "payloads")
		}
	}
	// A preflight from the Web UI is answered (browsers send no
	// Authorization on it); one from another origin is not granted.
	for origin, granted := range map[string]bool{"http://localhost:8233": true, "http://attacker.example": false} {
		req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/decode", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, granted, resp.Header.Get("Access-Control-Allow-Origin") == origin, origin)
		require.Equal(t, granted, resp.StatusCode < 300, origin)
	}
}

// TestCodecServerWithoutAuthDecodesOnlyAndNeverEncrypts: --insecure-no-auth
// (local use) decodes for the local Web UI but never encrypts for a caller
// it did not authenticate, and still checks Host and Origin.
func TestCodecServerWithoutAuthDecodesOnlyAndNeverEncrypts(t *testing.T) {
	srv, body := codecServer(t, codec.HTTPOptions{InsecureNoAuth: true, Origins: []string{"http://localhost:8233"}})
	code, out := post(t, srv.URL+"/decode", body, nil)
	require.Equal(t, http.StatusOK, code, out)
	code, _ = post(t, srv.URL+"/encode", body, nil)
	require.Equal(t, http.StatusForbidden, code)
	code, _ = post(t, srv.URL+"/decode", body, map[string]string{"Host": "rebind.attacker.example"})
	require.Equal(t, http.StatusMisdirectedRequest, code)
	code, _ = post(t, srv.URL+"/decode", body, map[string]string{"Origin": "http://attacker.example"})
	require.Equal(t, http.StatusForbidden, code)
}

func TestCodecHandlerNeedsATokenOrAnExplicitChoice(t *testing.T) {
	c, err := codec.ParseKeys("k1:"+key('a'), "")
	require.NoError(t, err)
	_, err = codec.HTTPHandler(c, codec.HTTPOptions{Hosts: []string{"127.0.0.1:8081"}})
	require.Error(t, err)
	_, err = codec.HTTPHandler(c, codec.HTTPOptions{Hosts: []string{"127.0.0.1:8081"}, Token: "short"})
	require.ErrorContains(t, err, "16")
	_, err = codec.HTTPHandler(c, codec.HTTPOptions{Token: token})
	require.ErrorContains(t, err, "host")
	require.False(t, strings.Contains(err.Error(), token))
}
