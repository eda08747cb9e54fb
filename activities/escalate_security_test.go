package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/chamelaion-lipsync/worker/activities"
)

// hookRecorder is a webhook that records what it receives.
type hookRecorder struct {
	mu     sync.Mutex
	bodies []string
	srv    *httptest.Server
}

func newHook(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *hookRecorder {
	h := &hookRecorder{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, r.Method+" "+string(b))
		h.mu.Unlock()
		if answer != nil {
			answer(w, r)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookRecorder) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// escalate records an escalation and returns what NotifyHuman needs.
func escalate(t *testing.T, f *fixture, esc activities.EscalateInput) activities.NotifyInput {
	t.Helper()
	require.NoError(t, f.acts.RecordJob(context.Background(), activities.RecordJobInput{WorkflowID: esc.WorkflowID, ReferenceID: esc.ReferenceID, Video: "https://v/x", Audio: "https://a/y"}))
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(quiet))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	v, err := env.ExecuteActivity(f.acts.Escalate, esc)
	require.NoError(t, err)
	var res activities.EscalateResult
	require.NoError(t, v.Get(&res))
	return activities.NotifyInput{EscalationID: res.EscalationID, Escalation: esc, WebUIURL: res.WebUIURL}
}

func notify(t *testing.T, acts *activities.Activities, in activities.NotifyInput) error {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(quiet))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	_, err := env.ExecuteActivity(acts.NotifyHuman, in)
	return err
}

// TestWebhookRedirectIsAFailedDelivery: a 301/302/303 would turn the POST
// into a GET without a body whose 2xx marked the escalation notified; a
// 307/308 would forward the POST (and the escalation) to any host. No
// redirect is followed, and a 3xx is a failed delivery.
func TestWebhookRedirectIsAFailedDelivery(t *testing.T) {
	f := newFixture(t)
	target := newHook(t, nil)
	for i, status := range []int{301, 302, 303, 307, 308} {
		hook := newHook(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.srv.URL+"/elsewhere", status)
		})
		f.acts.WebhookURL = hook.srv.URL + "/services/T0/B0/HOOKSECRET"
		in := escalate(t, f, activities.EscalateInput{WorkflowID: "wf-redirect-" + string(rune('a'+i)), ReferenceID: "r", Attempt: 1,
			Kind: activities.KindFailure, Reason: "QuotaExceeded", HTTPStatus: 412, Message: "token limit reached"})
		err := notify(t, f.acts, in)
		require.Error(t, err, "HTTP %d", status)
		require.Contains(t, err.Error(), "redirect")
		require.NotContains(t, err.Error(), "HOOKSECRET")
		require.Len(t, hook.received(), 1)
		escs, err := f.store.ListEscalations(context.Background(), in.Escalation.WorkflowID)
		require.NoError(t, err)
		require.Nil(t, escs[0].NotifiedAt, "HTTP %d: not delivered", status)
	}
	require.Empty(t, target.received(), "nothing reached the redirect's target")
}

// TestSlackMarkupIsEscaped: a reference_id, a server message or a request
// id holding Slack markup cannot ping a channel or forge a link: &, < and
// > are escaped in every field the notification shows.
func TestSlackMarkupIsEscaped(t *testing.T) {
	f := newFixture(t)
	hook := newHook(t, nil)
	f.acts.WebhookURL = hook.srv.URL + "/services/HOOK"
	in := escalate(t, f, activities.EscalateInput{WorkflowID: "lipsync-<!channel>", ReferenceID: "<!channel>x|y>", RequestID: "<!here>", Attempt: 1,
		Kind: activities.KindFailure, Reason: "JobFailed<@U123>", Message: "see <https://attacker.example|your invoice> & <!everyone>"})
	require.NoError(t, notify(t, f.acts, in))
	got := hook.received()
	require.Len(t, got, 1)
	var msg struct {
		Text   string
		Blocks []struct{ Text struct{ Text string } }
	}
	require.NoError(t, json.Unmarshal([]byte(got[0][len("POST "):]), &msg))
	for _, text := range []string{msg.Text, msg.Blocks[0].Text.Text} {
		for _, markup := range []string{"<!channel>", "<!here>", "<!everyone>", "<@U123>", "<https://attacker.example|", "x|y>"} {
			require.NotContains(t, text, markup)
		}
		require.Contains(t, text, "&lt;!channel&gt;x|y&gt;")
		require.Contains(t, text, "&amp; &lt;!everyone&gt;")
	}
	// The one link left is the workflow's, with its text escaped.
	require.Contains(t, msg.Blocks[0].Text.Text, "|lipsync-&lt;!channel&gt;>")
}

// markFails is a store whose first MarkEscalationNotified calls fail.
type markFails struct {
	activities.Store
	left atomic.Int32
}

func (s *markFails) MarkEscalationNotified(ctx context.Context, id int64, notifyErr string) error {
	if s.left.Add(-1) >= 0 {
		return errors.New("database unavailable")
	}
	return s.Store.MarkEscalationNotified(ctx, id, notifyErr)
}

// TestNotificationIsDeliveredOnce (issue 13, defect 6): when marking the
// escalation notified fails after the webhook accepted the message, the
// retried activity marks it without posting again.
func TestNotificationIsDeliveredOnce(t *testing.T) {
	f := newFixture(t)
	hook := newHook(t, nil)
	f.acts.WebhookURL = hook.srv.URL + "/services/HOOK"
	in := escalate(t, f, activities.EscalateInput{WorkflowID: "wf-once", ReferenceID: "once", Attempt: 1,
		Kind: activities.KindFailure, Reason: "QuotaExceeded", HTTPStatus: 412, Message: "token limit reached"})
	flaky := &markFails{Store: f.store}
	flaky.left.Store(2)
	acts := *f.acts
	acts.Store = flaky

	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(quiet))
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterActivity(&acts)
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in activities.NotifyInput) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 10 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
		})
		var a *activities.Activities
		return workflow.ExecuteActivity(ctx, a.NotifyHuman, in).Get(ctx, nil)
	}, workflow.RegisterOptions{Name: "notify"})
	env.ExecuteWorkflow("notify", in)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, hook.received(), 1, "the webhook was posted once, though the activity ran three times")
	escs, err := f.store.ListEscalations(context.Background(), "wf-once")
	require.NoError(t, err)
	require.NotNil(t, escs[0].NotifiedAt)
}
