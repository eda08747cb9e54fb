//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/chamelaion-lipsync/worker/codec"
)

// TestHistoriesAreEncryptedWithTheCodec runs jobs with payload encryption
// on (worker and starter share the keys) and checks that no media URL, no
// output URL, no failure message and no key reaches a history in the clear,
// while the starter still reads the results.
func TestHistoriesAreEncryptedWithTheCodec(t *testing.T) {
	keys := "old:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("o", 32))) +
		",new:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("n", 32)))
	codecEnv := []string{"PAYLOAD_ENCRYPTION_KEYS=" + keys, "PAYLOAD_ENCRYPTION_KEY_ID=new"}
	s := startStack(t, codecEnv...)
	s.starterEnv = codecEnv
	s.scenarios(`[{"reference_id":"enc-412","submit_faults":[412]},{"reference_id":"enc-failed","outcome":"failed","error_message":"video URL is not accessible"}]`)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	refs := []string{"enc-ok", "enc-412", "enc-failed"}
	outs := map[string]string{}
	codes := map[string]int{}
	for _, ref := range refs {
		out, errOut, code := s.starter(ctx, "submit", "--wait", "--reference-id", ref,
			"--video-url", mediaURL(ref, "video"), "--audio-url", mediaURL(ref, "audio"))
		outs[ref], codes[ref] = out+errOut, code
	}
	require.Equal(t, 0, codes["enc-ok"], outs["enc-ok"])
	require.Contains(t, outs["enc-ok"], "https://storage.chamelaion.com/output/", "the starter decrypts the result")
	require.Equal(t, 1, codes["enc-412"])
	require.Contains(t, outs["enc-412"], "token limit reached", "the starter decrypts the failure")
	require.Equal(t, 1, codes["enc-failed"])

	// A client without the keys sees only ciphertext.
	tc, err := client.Dial(client.Options{HostPort: s.temporal.Address, Namespace: "default"})
	require.NoError(t, err)
	defer tc.Close()
	resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", PageSize: 100})
	require.NoError(t, err)
	require.Len(t, resp.Executions, len(refs))
	for _, ex := range resp.Executions {
		h := history(ctx, t, tc, ex.Execution.WorkflowId, ex.Execution.RunId)
		b, err := protojson.Marshal(h)
		require.NoError(t, err)
		text := string(b)
		for _, clear := range []string{"SIGSECRET", "media.example.com", "storage.chamelaion.com", "token limit reached", "video URL is not accessible", apiKey} {
			require.NotContains(t, text, clear, "history of %s", ex.Execution.WorkflowId)
		}
		require.Contains(t, text, base64.StdEncoding.EncodeToString([]byte("binary/encrypted")), "payloads carry the encrypted encoding")
		require.Contains(t, text, base64.StdEncoding.EncodeToString([]byte("new")), "encrypted with the active key")
	}
}

// TestCodecServerOverHTTP starts the codec-server binary next to a stack
// whose histories are encrypted and tries the attacks on it over HTTP: no
// token, a wrong token, a rebinding Host, a foreign Origin, an oversize
// body, /encode without authentication. Only the operator with the token
// gets a real history payload decrypted. Then a starter without the keys
// starts a job: the worker refuses its clear payload, naming the variable
// the starter lacks, and nothing reaches the vendor.
func TestCodecServerOverHTTP(t *testing.T) {
	keys := "k1:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("c", 32)))
	codecEnv := []string{"PAYLOAD_ENCRYPTION_KEYS=" + keys}
	s := startStack(t, codecEnv...)
	s.starterEnv = codecEnv
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, errOut, code := s.starter(ctx, "submit", "--wait", "--reference-id", "codec-ok",
		"--video-url", mediaURL("codec-ok", "video"), "--audio-url", mediaURL("codec-ok", "audio"))
	require.Equal(t, 0, code, out+errOut)

	build := exec.CommandContext(ctx, "go", "build", "-race", "-o", s.bin+"/", "./cmd/codec-server")
	build.Dir = repoRoot(t)
	b, err := build.CombinedOutput()
	require.NoError(t, err, "%s", b)
	const token = "itest-codec-token-5b2e9f1c"
	tokenFile := filepath.Join(s.dir, "codec.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	addr := freeAddr(t)
	s.start(ctx, "codec-server", codecEnv, "codec server listening on", "--addr", addr, "--token-file", tokenFile, "--web-ui-origin", "http://localhost:8233")
	decodeURL := "http://" + addr + "/decode"

	// A real payload: the job's input, as Temporal stores it.
	tc, err := client.Dial(client.Options{HostPort: s.temporal.Address, Namespace: "default"})
	require.NoError(t, err)
	defer tc.Close()
	h := history(ctx, t, tc, "lipsync-codec-ok", "")
	input := h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetInput()
	body, err := protojson.Marshal(input)
	require.NoError(t, err)
	require.NotContains(t, string(body), "SIGSECRET")

	post := func(url string, body []byte, headers map[string]string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range headers {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	auth := "Bearer " + token
	for _, tc := range []struct {
		name    string
		url     string
		body    []byte
		headers map[string]string
		want    int
	}{
		{"no token", decodeURL, body, nil, http.StatusUnauthorized},
		{"a wrong token", decodeURL, body, map[string]string{"Authorization": "Bearer " + strings.Repeat("x", len(token))}, http.StatusUnauthorized},
		{"DNS rebinding", decodeURL, body, map[string]string{"Authorization": auth, "Host": "rebind.attacker.example:" + strings.Split(addr, ":")[1]}, http.StatusMisdirectedRequest},
		{"a foreign web page", decodeURL, body, map[string]string{"Authorization": auth, "Origin": "http://attacker.example"}, http.StatusForbidden},
		{"a 5 MiB body", decodeURL, bytes.Repeat([]byte(" "), 5<<20), map[string]string{"Authorization": auth}, http.StatusRequestEntityTooLarge},
		{"encode without a token", "http://" + addr + "/encode", body, nil, http.StatusUnauthorized},
		{"the operator", decodeURL, body, map[string]string{"Authorization": auth, "Origin": "http://localhost:8233"}, http.StatusOK},
	} {
		code, out := post(tc.url, tc.body, tc.headers)
		require.Equal(t, tc.want, code, "%s: %s", tc.name, out)
		if code != http.StatusOK {
			require.NotContains(t, out, "media.example.com", tc.name)
			continue
		}
		var decoded commonpb.Payloads
		require.NoError(t, protojson.Unmarshal([]byte(out), &decoded))
		require.Contains(t, string(decoded.Payloads[0].Data), mediaURL("codec-ok", "video"), "the operator reads the job's input")
	}

	// A starter without the keys: warned, and its clear payload refused:
	// the job fails at once, with a reason (encrypted, for whoever holds
	// the keys) naming the variable the starter lacks.
	s.starterEnv = nil
	_, errOut, code = s.starter(ctx, "submit", "--reference-id", "codec-keyless",
		"--video-url", mediaURL("codec-keyless", "video"), "--audio-url", mediaURL("codec-keyless", "audio"))
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "histories will hold media URLs")
	pc, err := codec.ParseKeys(keys, "")
	require.NoError(t, err)
	var reason string
	require.Eventually(t, func() bool {
		for _, ev := range history(ctx, t, tc, "lipsync-codec-keyless", "").Events {
			if f := ev.GetWorkflowExecutionFailedEventAttributes(); f != nil {
				dec, err := pc.Decode([]*commonpb.Payload{f.GetFailure().GetEncodedAttributes()})
				require.NoError(t, err)
				reason = string(dec[0].GetData())
				return true
			}
		}
		return false
	}, time.Minute, 250*time.Millisecond, "the job is refused")
	require.Contains(t, reason, "PAYLOAD_ENCRYPTION_KEYS")
	require.NotContains(t, reason, "SIGSECRET")
	require.Zero(t, s.stats().JobsByReference["codec-keyless"], "nothing reached the vendor")
}
