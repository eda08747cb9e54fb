// Package tclient builds the Temporal client options every binary shares:
// address, namespace, the slog logger, and the payload codec when
// configured.
package tclient

import (
	"context"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/chamelaion-lipsync/worker/config"
)

// Options returns the client options for cfg; metrics may be nil.
func Options(cfg config.Config, logger *slog.Logger, metrics client.MetricsHandler) (client.Options, error) {
	opts := client.Options{
		HostPort:       cfg.Temporal.Address,
		Namespace:      cfg.Temporal.Namespace,
		Logger:         tlog.NewStructuredLogger(logger),
		MetricsHandler: metrics,
	}
	c, err := cfg.PayloadCodec()
	if err != nil {
		return client.Options{}, err
	}
	if c != nil {
		opts.DataConverter = c.DataConverter()
		opts.FailureConverter = c.FailureConverter()
	}
	return opts, nil
}

// Dial connects to Temporal with the options for cfg; metrics may be nil.
func Dial(ctx context.Context, cfg config.Config, logger *slog.Logger, metrics client.MetricsHandler) (client.Client, error) {
	opts, err := Options(cfg, logger, metrics)
	if err != nil {
		return nil, err
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", cfg.Temporal.Address, err)
	}
	return c, nil
}
