package emulator

import (
	"net/http"
	"time"
)

// JobRecord is one job as the emulator observed it: when it really started
// and finished (whether or not anybody read it yet), and how its account
// polled it. GET /_emulator/jobs returns {"jobs": [JobRecord...]}; the
// times are written in RFC 3339 with nanoseconds, in UTC.
type JobRecord struct {
	// ID is the job's request_id.
	ID string `json:"id"`
	// ReferenceID is the caller's reference_id ("" when none was given).
	ReferenceID string `json:"reference_id"`
	// Account is the name of the account that created the job (the value
	// of Config.APIKeys for its token, never the token).
	Account string `json:"account"`
	// CreatedAt is when the job was created.
	CreatedAt time.Time `json:"created_at"`
	// StartedAt is when the job left the queue: CreatedAt plus its queue
	// time.
	StartedAt time.Time `json:"started_at"`
	// FinishedAt is when the job completed or failed: StartedAt plus its
	// processing time.
	FinishedAt time.Time `json:"finished_at"`
	// Outcome is "completed" or "failed".
	Outcome string `json:"outcome"`
	// StatusReads counts the GET /v1/lipsync/requests/{id} reads of the
	// job (by id or by reference_id) answered 200. Reads answered with a
	// random or scenario fault are not reads of the job.
	StatusReads int `json:"status_reads"`
	// FirstTerminalReadAt is the emulator clock's time of the first 200
	// read that showed the job completed or failed; nil (omitted in JSON)
	// while no read has.
	FirstTerminalReadAt *time.Time `json:"first_terminal_read_at,omitempty"`
}

// AccountRequestCount is the number of requests one account made to one
// endpoint that were answered with one status (0 for an answer that was
// never sent).
type AccountRequestCount struct {
	// Account is the account's name (the value of Config.APIKeys for the
	// token), or "" for requests without a valid token.
	Account string `json:"account"`
	// Endpoint is one of the Endpoint* labels.
	Endpoint string `json:"endpoint"`
	// Status is the answered HTTP status.
	Status int `json:"status"`
	// Count is the number of such requests.
	Count int `json:"count"`
}

// Jobs returns every job, in creation order, as the emulator observed it.
func (e *Emulator) Jobs() []JobRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]JobRecord, 0, len(e.order))
	for _, j := range e.order {
		created := j.CreatedAt.UTC()
		started := created.Add(j.QueuedFor)
		rec := JobRecord{
			ID: j.ID, ReferenceID: j.ReferenceID, Account: j.AccountName,
			CreatedAt: created, StartedAt: started, FinishedAt: started.Add(j.ProcessingFor),
			Outcome: j.Outcome, StatusReads: j.StatusReads,
		}
		if j.FirstTerminalReadAt != nil {
			at := j.FirstTerminalReadAt.UTC()
			rec.FirstTerminalReadAt = &at
		}
		out = append(out, rec)
	}
	return out
}

// accountName is the name of the account whose valid token r carries, or
// "" when it carries none.
func (e *Emulator) accountName(r *http.Request) string {
	token, problem := e.authenticate(r)
	if problem != "" {
		return ""
	}
	return e.cfg.APIKeys[token]
}

// accountNames maps each configured account (the hash that jobs keep) to
// its name, for jobs loaded from a state file that predates AccountName.
func (e *Emulator) accountNames() map[string]string {
	names := make(map[string]string, len(e.cfg.APIKeys))
	for token, name := range e.cfg.APIKeys {
		names[accountOf(token)] = name
	}
	return names
}
