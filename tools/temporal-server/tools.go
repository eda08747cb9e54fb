//go:build tools

// Package temporalserver exists only to pin the Temporal server, its SQL
// schema tool and the Web UI server.
package temporalserver

import (
	_ "github.com/temporalio/ui-server/v2/cmd/server"
	_ "go.temporal.io/server/cmd/server"
	_ "go.temporal.io/server/cmd/tools/sql"
)
