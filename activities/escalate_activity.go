package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/store"
)

// Escalation kinds.
const (
	// KindFailure: the job cannot finish without a human.
	KindFailure = "failure"
	// KindStuck: the job is still waiting, for longer than it should.
	KindStuck = "stuck"
	// KindAccount: a batch met a failure of the whole account (a revoked
	// key, an exhausted quota); WorkflowID is the batch's workflow.
	KindAccount = "account"
)

// EscalateInput is one reason to put a job in front of a human.
type EscalateInput struct {
	WorkflowID string
	// ExecutionID names the execution of the job's workflow that
	// escalates ("" before executions were named): once a later execution
	// has taken the job's row over, nothing is written (see Stale).
	ExecutionID string `json:",omitempty"`
	ReferenceID string
	RequestID   string
	Attempt     int
	// Kind is KindFailure, KindStuck or KindAccount.
	Kind string
	// BatchID names the batch (set for KindAccount).
	BatchID string
	// Reason is a stable type string: an API failure type such as
	// QuotaExceeded, or JobFailed, DeadlineExceeded, RetriesExhausted, Stuck.
	Reason     string
	HTTPStatus int
	Message    string
}

// EscalateResult identifies the durable escalation record.
type EscalateResult struct {
	EscalationID int64
	// Created is false when a retried activity found the record written.
	Created  bool
	WebUIURL string
	// Stale is true when a later execution of the job had taken its row
	// over: the escalating execution has ended, and nothing was written
	// or is to be notified.
	Stale bool `json:",omitempty"`
}

// Escalate records an escalation durably, before anyone is told: for a
// failure it marks the job failed with the cause, then writes the
// escalation row. Both writes are idempotent (the row is keyed by workflow,
// attempt and kind), so a retried activity never writes twice. It always
// emits one structured log line.
func (a *Activities) Escalate(ctx context.Context, in EscalateInput) (EscalateResult, error) {
	if in.Kind != KindFailure && in.Kind != KindStuck && in.Kind != KindAccount {
		return EscalateResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("escalate: unknown kind %q", in.Kind), TypeInvalidInput, nil)
	}
	link := a.workflowLink(in.WorkflowID)
	if in.Kind == KindFailure {
		now := time.Now().UTC()
		if _, err := a.Store.UpdateJob(ctx, store.JobUpdate{
			WorkflowID:   in.WorkflowID,
			ExecutionID:  in.ExecutionID,
			Attempt:      in.Attempt,
			Status:       store.StatusFailed,
			RequestID:    in.RequestID,
			ErrorType:    in.Reason,
			ErrorMessage: in.Message,
			HTTPStatus:   in.HTTPStatus,
			FinishedAt:   &now,
			Message:      in.Reason + ": " + in.Message,
		}); err != nil {
			return EscalateResult{}, storeError("record failure", err)
		}
	}
	esc, created, err := a.Store.RecordEscalation(ctx, store.NewEscalation{
		Key:         fmt.Sprintf("%s/%d/%s", in.WorkflowID, in.Attempt, in.Kind),
		WorkflowID:  in.WorkflowID,
		Attempt:     in.Attempt,
		Kind:        in.Kind,
		Reason:      in.Reason,
		HTTPStatus:  in.HTTPStatus,
		Message:     in.Message,
		WebUIURL:    link,
		BatchID:     in.BatchID,
		ExecutionID: in.ExecutionID,
	})
	if errors.Is(err, store.ErrStaleExecution) {
		a.logger().Warn("escalation of an ended execution not recorded: a later execution of the job owns its row",
			"kind", in.Kind, "reason", in.Reason, "workflow_id", in.WorkflowID, "execution_id", in.ExecutionID, "attempt", in.Attempt)
		return EscalateResult{Stale: true, WebUIURL: link}, nil
	}
	if err != nil {
		return EscalateResult{}, storeError("record escalation", err)
	}
	if in.Kind == KindAccount {
		// From now on no worker submits, until a human answers.
		// The hold belongs to the workflow that raised it: its answer
		// releases it, and so does its end by any other path.
		if _, err := a.Store.HoldAccount(ctx, store.NewHold{
			Owner: in.WorkflowID, Reason: in.Reason, HTTPStatus: in.HTTPStatus, Message: in.Message, BatchID: in.BatchID, EscalationID: esc.ID,
		}); err != nil {
			return EscalateResult{}, storeError("hold submissions", err)
		}
	}
	if created {
		a.metrics().Escalated(in.Kind, in.Reason)
		if in.Kind == KindFailure {
			a.metrics().JobFinished("escalated", 0)
		}
	}
	a.logger().Warn("job escalated to a human",
		"kind", in.Kind, "reason", in.Reason, "http_status", in.HTTPStatus, "message", in.Message,
		"workflow_id", in.WorkflowID, "reference_id", in.ReferenceID, "request_id", in.RequestID,
		"attempt", in.Attempt, "batch_id", in.BatchID, "escalation_id", esc.ID, "first_record", created, "web_ui", link)
	return EscalateResult{EscalationID: esc.ID, Created: created, WebUIURL: link}, nil
}

// NotifyInput is the message delivered to a human for one escalation.
type NotifyInput struct {
	EscalationID int64
	Escalation   EscalateInput
	WebUIURL     string
}

// NotifyHuman delivers an escalation to the configured webhook as a
// Slack-compatible JSON message, then marks the escalation notified. A
// failed delivery is retried by Temporal; the durable record was written
// before, so a webhook outage never loses an escalation. Without a webhook
// the log line Escalate wrote is the notification.
//
// A message is posted once: once the webhook has accepted it, the attempt
// records that in its heartbeat details, and a retry (after the mark
// failed, say) finds them and only marks. A delivery whose outcome is
// unknown (a timeout) is posted again: a repeated message is better than a
// lost one.
func (a *Activities) NotifyHuman(ctx context.Context, in NotifyInput) error {
	if a.WebhookURL != "" && !notifiedBefore(ctx) {
		if err := a.postWebhook(ctx, in); err != nil {
			return err
		}
		activity.RecordHeartbeat(ctx, notifyProgress{Delivered: true})
	}
	if err := a.Store.MarkEscalationNotified(ctx, in.EscalationID, ""); err != nil {
		return storeError("mark escalation notified", err)
	}
	return nil
}

// notifyProgress is what an attempt of NotifyHuman leaves to the next.
type notifyProgress struct {
	// Delivered is true once the webhook accepted the message.
	Delivered bool
}

// notifiedBefore says whether an earlier attempt delivered the message.
func notifiedBefore(ctx context.Context) bool {
	var p notifyProgress
	return activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &p) == nil && p.Delivered
}

// slackMessage is the subset of Slack's incoming-webhook payload we send;
// most chat tools accept it.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks,omitempty"`
}

type slackBlock struct {
	Type string     `json:"type"`
	Text *slackText `json:"text,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func (a *Activities) postWebhook(ctx context.Context, in NotifyInput) error {
	e := in.Escalation
	// Every field is Slack-escaped (&, <, >), so that a reference_id or a
	// server message cannot ping a channel (<!channel>) or forge a link.
	ref, reason, msg := slackEscape(e.ReferenceID), slackEscape(e.Reason), slackEscape(chamelaion.Redact(e.Message))
	title := fmt.Sprintf("Lip-sync job %s needs a human: %s", ref, reason)
	if e.Kind == KindStuck {
		title = fmt.Sprintf("Lip-sync job %s looks stuck", ref)
	}
	var detail strings.Builder
	fmt.Fprintf(&detail, "*%s*\n%s\n", title, msg)
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&detail, "HTTP status: %d\n", e.HTTPStatus)
	}
	fmt.Fprintf(&detail, "Workflow: <%s|%s>  request: %s  attempt: %d",
		slackLinkURL(in.WebUIURL), slackEscape(e.WorkflowID), slackEscape(e.RequestID), e.Attempt)
	body, err := json.Marshal(slackMessage{
		Text:   title + ": " + msg,
		Blocks: []slackBlock{{Type: "section", Text: &slackText{Type: "mrkdwn", Text: detail.String()}}},
	})
	if err != nil {
		return fmt.Errorf("notify: encode message: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.WebhookURL, bytes.NewReader(body))
	if err != nil {
		// The URL is a secret: say what failed, not what it was.
		return temporal.NewNonRetryableApplicationError("notify: NOTIFY_WEBHOOK_URL is not a valid URL", TypeInvalidInput, nil)
	}
	req.Header.Set("Content-Type", "application/json")
	client := http.Client{Timeout: 10 * time.Second}
	if a.HTTPClient != nil {
		client = *a.HTTPClient
	}
	// A 301/302/303 would turn the POST into a bodiless GET whose 2xx
	// passed for a delivery; a 307/308 would forward the message to any
	// host. A redirect is answered as it is: a failed delivery.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		// url.Error repeats the URL, which embeds the webhook's token.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return temporal.NewApplicationError(fmt.Sprintf("notify: webhook delivery failed: %v", err), "WebhookUnavailable")
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		return temporal.NewApplicationError(fmt.Sprintf("notify: webhook answered HTTP %d, a redirect, which is never followed: set NOTIFY_WEBHOOK_URL to the final address", resp.StatusCode), "WebhookUnavailable")
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return temporal.NewApplicationError(fmt.Sprintf("notify: webhook answered HTTP %d", resp.StatusCode), "WebhookUnavailable")
	}
	return nil
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning
// to: & < >.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackLinkURL makes a URL safe inside <url|text>: | and > would end it.
func slackLinkURL(u string) string {
	return strings.NewReplacer("&", "&amp;", "<", "%3C", ">", "%3E", "|", "%7C", " ", "%20").Replace(u)
}

// workflowLink is the Web UI page of a workflow (its latest run).
func (a *Activities) workflowLink(workflowID string) string {
	base := strings.TrimRight(a.WebUIURL, "/")
	if base == "" {
		base = "http://localhost:8233"
	}
	ns := a.Namespace
	if ns == "" {
		ns = "default"
	}
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s", base, url.PathEscape(ns), url.PathEscape(workflowID))
}
