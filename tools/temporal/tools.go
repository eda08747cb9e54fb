//go:build tools

// Package temporal exists only to pin github.com/temporalio/cli.
package temporal

import _ "github.com/temporalio/cli/cmd/temporal"
