//go:build integration

package integration

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
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
