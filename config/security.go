package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/chamelaion-lipsync/worker/chamelaion"
	"github.com/chamelaion-lipsync/worker/codec"
)

// The values of PAYLOAD_ENCRYPTION.
const (
	// PayloadEncryptionOff states that histories are meant to be in the
	// clear (no keys): the start-up warning is not printed.
	PayloadEncryptionOff = "off"
	// PayloadEncryptionMigrate accepts payloads in the clear although
	// keys are set, while jobs started before encryption finish.
	PayloadEncryptionMigrate = "migrate"
)

// validateSecurity checks the settings that protect secrets, for every
// program.
func (c Config) validateSecurity() error {
	if u, err := url.Parse(c.API.BaseURL); err == nil && u.Scheme == "http" && !chamelaion.IsLoopback(u.Hostname()) && !c.API.AllowHTTP {
		return &Error{"CHAMELAION_BASE_URL", fmt.Sprintf("must be https (plain http only to localhost or a loopback address, where the key does not cross a network), got %q; set CHAMELAION_ALLOW_HTTP=true to send the key in the clear anyway", c.API.BaseURL)}
	}
	switch c.Codec.Mode {
	case "", PayloadEncryptionOff, PayloadEncryptionMigrate:
	default:
		return &Error{"PAYLOAD_ENCRYPTION", fmt.Sprintf("must be off, migrate or unset, not %q", c.Codec.Mode)}
	}
	if c.Codec.Keys != "" {
		if _, err := codec.ParseKeys(c.Codec.Keys, c.Codec.ActiveKeyID); err != nil {
			return &Error{"PAYLOAD_ENCRYPTION_KEYS", err.Error()}
		}
		if c.Codec.Mode == PayloadEncryptionOff {
			return &Error{"PAYLOAD_ENCRYPTION", "is off but PAYLOAD_ENCRYPTION_KEYS is set: unset one of them"}
		}
	} else {
		if c.Codec.ActiveKeyID != "" {
			return &Error{"PAYLOAD_ENCRYPTION_KEY_ID", "is set but PAYLOAD_ENCRYPTION_KEYS is empty"}
		}
		if c.Codec.Mode == PayloadEncryptionMigrate {
			return &Error{"PAYLOAD_ENCRYPTION", "is migrate but PAYLOAD_ENCRYPTION_KEYS is empty"}
		}
	}
	return nil
}

// validateWorkerSecurity checks the worker's own security settings.
func (c Config) validateWorkerSecurity() error {
	if c.Worker.MediaRoot != "" {
		if !filepath.IsAbs(c.Worker.MediaRoot) {
			return &Error{"MEDIA_ROOT", "must be an absolute path (or unset, which turns file:// media off)"}
		}
		if st, err := os.Stat(c.Worker.MediaRoot); err != nil || !st.IsDir() {
			return &Error{"MEDIA_ROOT", "must be an existing folder the worker can read"}
		}
		if systemFolder(c.Worker.MediaRoot) {
			return &Error{"MEDIA_ROOT", "must be a folder of media, not / or a system folder (/etc, /proc, /root, …): every file under it can be uploaded"}
		}
	}
	if c.Worker.MediaMaxBytes < 1 {
		return &Error{"MEDIA_MAX_BYTES", "must be a positive number of bytes, such as 1073741824"}
	}
	if c.Worker.WorkflowCacheSize < 1 {
		return &Error{"WORKFLOW_CACHE_SIZE", "must be a positive whole number, such as 2000"}
	}
	return nil
}

// ClearHistoriesWarning is the start-up warning of a program without
// payload keys ("" when keys are set, or PAYLOAD_ENCRYPTION=off says the
// clear histories are intended).
func (c Config) ClearHistoriesWarning() string {
	if c.Codec.Keys != "" || c.Codec.Mode == PayloadEncryptionOff {
		return ""
	}
	return "PAYLOAD_ENCRYPTION_KEYS is not set: workflow histories will hold media URLs (pre-signed, with their credentials) and output URLs in the clear, readable by anyone with access to Temporal; set the keys, or PAYLOAD_ENCRYPTION=off to state that this is intended"
}

func (c Config) securitySummary() string {
	media := "off"
	if c.Worker.MediaRoot != "" {
		media = fmt.Sprintf("%s (at most %d bytes)", c.Worker.MediaRoot, c.Worker.MediaMaxBytes)
	}
	return fmt.Sprintf("media_root{%s} workflow_cache=%d", media, c.Worker.WorkflowCacheSize)
}

// systemFolder says whether dir is /, a folder of the system's own files
// or inside one, or a folder that holds everyone's files: as MEDIA_ROOT it
// would let a job upload them.
func systemFolder(dir string) bool {
	dir = filepath.Clean(dir)
	for _, top := range []string{"/", "/var", "/var/lib", "/usr", "/home", "/tmp", "/srv", "/opt", "/mnt", "/media"} {
		if dir == top {
			return true
		}
	}
	for _, sys := range []string{"/etc", "/proc", "/sys", "/dev", "/root", "/boot", "/run", "/var/run", "/bin", "/sbin", "/lib", "/usr/bin", "/usr/lib"} {
		if dir == sys || strings.HasPrefix(dir, sys+"/") {
			return true
		}
	}
	return false
}
