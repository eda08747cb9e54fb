package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// snapshot is the emulator's durable state: what a real vendor keeps across
// its own outages.
type snapshot struct {
	Jobs    []*job         `json:"jobs"`
	Created map[string]int `json:"created"`
}

// SaveState writes the jobs (with their status reads and first terminal
// read) and the per-account job counters (the quota and the duration
// model's draw index) to path, so that a restarted emulator behaves like a
// vendor that was down, not one that lost its data. Request counts are not
// saved.
func (e *Emulator) SaveState(path string) error {
	e.mu.Lock()
	b, err := json.Marshal(snapshot{Jobs: e.order, Created: e.created})
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("emulator: encode state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("emulator: save state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("emulator: save state: %w", err)
	}
	return nil
}

// LoadState reads what SaveState wrote; a missing file is no error, nor is
// a file written by an older emulator without the newer job fields.
func (e *Emulator) LoadState(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("emulator: load state: %w", err)
	}
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("emulator: load state %s: %w", path, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	names := e.accountNames()
	for _, j := range s.Jobs {
		if j.AccountName == "" {
			// Written before jobs kept their account's name.
			j.AccountName = names[j.Account]
		}
		e.jobs[j.ID] = j
	}
	e.order = append(e.order, s.Jobs...)
	for k, v := range s.Created {
		e.created[k] += v
	}
	return nil
}
