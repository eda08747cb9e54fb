// Package metrics exposes the worker's Prometheus metrics: the Temporal
// SDK's own (through its tally adapter) and the product's: API requests by
// endpoint and status code, retries and advised waits, jobs finished by
// outcome, escalations by reason, job duration. No label ever carries a
// secret, an id or a URL.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// Metrics holds the registry and the product's collectors.
type Metrics struct {
	registry     *prometheus.Registry
	sdk          client.MetricsHandler
	closeSDK     func() error
	apiRequests  *prometheus.CounterVec
	apiDuration  *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	advisedWait  prometheus.Histogram
	jobsFinished *prometheus.CounterVec
	escalations  *prometheus.CounterVec
	jobDuration  prometheus.Histogram
}

// New builds a registry with the Go and process collectors, the SDK's
// metrics, and the product's.
func New() (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		registry: reg,
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chamelaion_api_requests_total",
			Help: "Requests to the Chamelaion API by endpoint and HTTP status code (0: no answer).",
		}, []string{"endpoint", "code"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chamelaion_api_request_duration_seconds",
			Help:    "Duration of Chamelaion API requests by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}, []string{"endpoint"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lipsync_retryable_failures_total",
			Help: "API failures handed to Temporal's retry policy, by failure type.",
		}, []string{"type"}),
		advisedWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lipsync_advised_wait_seconds",
			Help:    "Waits the server advised (Retry-After and the like) and the next retry honoured.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 12),
		}),
		jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lipsync_jobs_finished_total",
			Help: "Jobs that reached an end, by outcome (completed, escalated, abandoned).",
		}, []string{"outcome"}),
		escalations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lipsync_escalations_total",
			Help: "Escalations to a human by kind (failure, stuck) and reason.",
		}, []string{"kind", "reason"}),
		jobDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lipsync_job_duration_seconds",
			Help:    "Time from the vendor's creation of a job to its completion as seen by the worker.",
			Buckets: prometheus.ExponentialBuckets(5, 2, 12),
		}),
	}
	reg.MustRegister(m.apiRequests, m.apiDuration, m.retries, m.advisedWait, m.jobsFinished, m.escalations, m.jobDuration)

	reporter := tallyprom.NewReporter(tallyprom.Options{Registerer: reg})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, time.Second)
	m.sdk = sdktally.NewMetricsHandler(scope)
	m.closeSDK = closer.Close
	return m, nil
}

// TemporalHandler is the metrics handler for the Temporal client.
func (m *Metrics) TemporalHandler() client.MetricsHandler { return m.sdk }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Close flushes and stops the SDK's metric scope.
func (m *Metrics) Close() error { return m.closeSDK() }

// ObserveAPIRequest counts one API request.
func (m *Metrics) ObserveAPIRequest(endpoint string, code int, d time.Duration) {
	m.apiRequests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	m.apiDuration.WithLabelValues(endpoint).Observe(d.Seconds())
}

// ObserveRetryable counts a failure left to the retry policy, and the wait
// the server advised, if any.
func (m *Metrics) ObserveRetryable(failureType string, advised time.Duration) {
	m.retries.WithLabelValues(failureType).Inc()
	if advised > 0 {
		m.advisedWait.Observe(advised.Seconds())
	}
}

// JobFinished counts a job's end; d is its duration when known (0 if not).
func (m *Metrics) JobFinished(outcome string, d time.Duration) {
	m.jobsFinished.WithLabelValues(outcome).Inc()
	if d > 0 {
		m.jobDuration.Observe(d.Seconds())
	}
}

// Escalated counts an escalation.
func (m *Metrics) Escalated(kind, reason string) {
	m.escalations.WithLabelValues(kind, reason).Inc()
}
