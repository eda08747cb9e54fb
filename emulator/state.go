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

// SaveState writes the jobs (and the quota counters) to path, so that a
// restarted emulator behaves like a vendor that was down, not one that lost
// its data.
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
	return os.Rename(tmp, path)
}

// LoadState reads what SaveState wrote; a missing file is no error.
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
	for _, j := range s.Jobs {
		e.jobs[j.ID] = j
	}
	e.order = append(e.order, s.Jobs...)
	for k, v := range s.Created {
		e.created[k] += v
	}
	return nil
}
