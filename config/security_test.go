package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

func testKey(b byte) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(b), 32)))
}

// TestPlainHTTPBaseURLOnlyToLoopback: the key would cross the network in
// the clear; http is accepted for loopback, or when stated.
func TestPlainHTTPBaseURLOnlyToLoopback(t *testing.T) {
	t.Setenv("CHAMELAION_BASE_URL", "http://api.chamelaion.com/api")
	_, err := Load()
	var cerr *Error
	require.ErrorAs(t, err, &cerr)
	require.Equal(t, "CHAMELAION_BASE_URL", cerr.Variable)
	require.Contains(t, cerr.Problem, "CHAMELAION_ALLOW_HTTP")
	t.Setenv("CHAMELAION_ALLOW_HTTP", "true")
	_, err = Load()
	require.NoError(t, err)
	t.Setenv("CHAMELAION_ALLOW_HTTP", "false")
	for _, ok := range []string{"http://127.0.0.1:8090/api", "http://localhost:8090/api", "http://[::1]:8090/api", "https://api.example.com"} {
		t.Setenv("CHAMELAION_BASE_URL", ok)
		_, err = Load()
		require.NoError(t, err, ok)
	}
}

// TestSwappedKeySpecNeverPrintsTheKey: "base64:id" is refused without the
// key in the message (it used to be printed as the "id").
func TestSwappedKeySpecNeverPrintsTheKey(t *testing.T) {
	k := testKey('z')
	for _, spec := range []string{k + ":k1", "k1:" + testKey('a') + "," + k + ":k2"} {
		t.Setenv("PAYLOAD_ENCRYPTION_KEYS", spec)
		_, err := Load()
		var cerr *Error
		require.ErrorAs(t, err, &cerr)
		require.Equal(t, "PAYLOAD_ENCRYPTION_KEYS", cerr.Variable)
		require.NotContains(t, err.Error(), k[:12])
		require.Contains(t, err.Error(), "swapped")
	}
	t.Setenv("PAYLOAD_ENCRYPTION_KEYS", "k1:"+testKey('a'))
	t.Setenv("PAYLOAD_ENCRYPTION_KEY_ID", k)
	_, err := Load()
	require.Error(t, err)
	require.NotContains(t, err.Error(), k[:12])
}

// TestPayloadEncryptionMode: without keys a warning unless
// PAYLOAD_ENCRYPTION=off; with keys the codec refuses clear payloads with
// URLs unless PAYLOAD_ENCRYPTION=migrate; contradictions are refused.
func TestPayloadEncryptionMode(t *testing.T) {
	c, err := Load()
	require.NoError(t, err)
	require.Contains(t, c.ClearHistoriesWarning(), "PAYLOAD_ENCRYPTION=off")
	t.Setenv("PAYLOAD_ENCRYPTION", "off")
	c, err = Load()
	require.NoError(t, err)
	require.Empty(t, c.ClearHistoriesWarning())

	clear, err := converter.GetDefaultDataConverter().ToPayload("https://cdn/v.mp4?sig=S")
	require.NoError(t, err)
	t.Setenv("PAYLOAD_ENCRYPTION_KEYS", "k1:"+testKey('a'))
	_, err = Load()
	require.ErrorContains(t, err, "PAYLOAD_ENCRYPTION: is off but PAYLOAD_ENCRYPTION_KEYS is set")
	t.Setenv("PAYLOAD_ENCRYPTION", "")
	c, err = Load()
	require.NoError(t, err)
	require.Empty(t, c.ClearHistoriesWarning())
	pc, err := c.PayloadCodec()
	require.NoError(t, err)
	_, err = pc.Decode([]*commonpb.Payload{clear})
	require.ErrorContains(t, err, "PAYLOAD_ENCRYPTION_KEYS")
	t.Setenv("PAYLOAD_ENCRYPTION", "migrate")
	c, err = Load()
	require.NoError(t, err)
	pc, err = c.PayloadCodec()
	require.NoError(t, err)
	_, err = pc.Decode([]*commonpb.Payload{clear})
	require.NoError(t, err)
	t.Setenv("PAYLOAD_ENCRYPTION", "sometimes")
	_, err = Load()
	require.ErrorContains(t, err, "PAYLOAD_ENCRYPTION")
	t.Setenv("PAYLOAD_ENCRYPTION_KEYS", "")
	t.Setenv("PAYLOAD_ENCRYPTION", "migrate")
	_, err = Load()
	require.ErrorContains(t, err, "PAYLOAD_ENCRYPTION_KEYS is empty")
}

func TestMediaRootAndCacheSettings(t *testing.T) {
	t.Setenv("CHAMELAION_API_KEY", "k")
	t.Setenv("DATABASE_URL", "postgres://u@localhost/db")
	c, err := Load()
	require.NoError(t, err)
	require.NoError(t, c.ValidateWorker())
	require.Empty(t, c.Worker.MediaRoot, "file:// media are off by default")
	require.Equal(t, int64(1<<30), c.Worker.MediaMaxBytes)
	require.Equal(t, 2000, c.Worker.WorkflowCacheSize, "a bounded cache keeps the worker within 256 MiB")
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	for value, want := range map[string]string{"relative/media": "absolute", file: "folder", filepath.Join(dir, "missing"): "folder",
		"/": "not / or a system folder", "/etc": "system folder", "/proc/self": "system folder"} {
		t.Setenv("MEDIA_ROOT", value)
		c, err := Load()
		require.NoError(t, err)
		require.ErrorContains(t, c.ValidateWorker(), want, value)
		require.ErrorContains(t, c.ValidateWorker(), "MEDIA_ROOT", value)
	}
	t.Setenv("MEDIA_ROOT", dir)
	t.Setenv("WORKFLOW_CACHE_SIZE", "0")
	c, err = Load()
	require.NoError(t, err)
	require.ErrorContains(t, c.ValidateWorker(), "WORKFLOW_CACHE_SIZE")
	t.Setenv("WORKFLOW_CACHE_SIZE", "4000")
	t.Setenv("MEDIA_MAX_BYTES", "0")
	c, err = Load()
	require.NoError(t, err)
	require.ErrorContains(t, c.ValidateWorker(), "MEDIA_MAX_BYTES")
	t.Setenv("MEDIA_MAX_BYTES", "1000")
	c, err = Load()
	require.NoError(t, err)
	require.NoError(t, c.ValidateWorker())
	require.Contains(t, c.String(), "media_root{"+dir+" (at most 1000 bytes)}")
	require.Contains(t, c.String(), "workflow_cache=4000")
}
