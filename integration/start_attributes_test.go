//go:build integration

package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/chamelaion-lipsync/worker/internal/localtemporal"
	"github.com/chamelaion-lipsync/worker/lipsync"
	"github.com/chamelaion-lipsync/worker/workflows"
)

// TestSubmitSetsTheJobsAttributesAtStart: lipsync.Client starts a job with
// its reference_id and pending status as search attributes (the workflow
// then need not upsert them), and a namespace that does not know them yet
// (no worker of this release has registered them) still takes the job:
// started without them, the workflow sets them itself once a worker runs
// it. No worker runs here: the test reads what the start recorded.
func TestSubmitSetsTheJobsAttributesAtStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	srv, err := localtemporal.Start(ctx, localtemporal.Options{Headless: true, LogFile: filepath.Join(dir, "temporal.log")})
	require.NoError(t, err)
	defer srv.Stop()
	tc, err := client.Dial(client.Options{HostPort: srv.Address, Namespace: "default"})
	require.NoError(t, err)
	defer tc.Close()
	jobs := lipsync.NewClient(tc, "attrs-test")
	job := func(ref string) lipsync.Job {
		return lipsync.Job{Video: "https://media.example/" + ref + "/v.mp4", Audio: "https://media.example/" + ref + "/a.wav", ReferenceID: ref}
	}
	attrs := func(id string) map[string]bool {
		d, err := tc.DescribeWorkflowExecution(ctx, id, "")
		require.NoError(t, err)
		got := map[string]bool{}
		for k := range d.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields() {
			got[k] = true
		}
		return got
	}

	run, err := jobs.Submit(ctx, job("before-registration"))
	require.NoError(t, err, "a namespace without the attributes still takes the job")
	require.False(t, attrs(run.WorkflowID)[workflows.AttrReferenceID.GetName()])

	req := &operatorservice.AddSearchAttributesRequest{Namespace: "default", SearchAttributes: workflows.SearchAttributes()}
	_, err = tc.OperatorService().AddSearchAttributes(ctx, req)
	require.NoError(t, err)
	try := 0
	require.Eventually(t, func() bool {
		try++
		run, err = jobs.Submit(ctx, job(fmt.Sprintf("after-registration-%d", try)))
		require.NoError(t, err)
		return attrs(run.WorkflowID)[workflows.AttrReferenceID.GetName()]
	}, time.Minute, time.Second, "once registered, the job starts with its attributes")
	got := attrs(run.WorkflowID)
	require.True(t, got[workflows.AttrStatus.GetName()])
	require.True(t, got[workflows.AttrStatusSince.GetName()])
}
