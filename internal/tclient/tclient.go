// Package tclient builds the Temporal client options every binary shares:
// address, namespace, the slog logger, and the payload codec when
// configured.
package tclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

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
	t := cfg.Temporal
	if t.GRPCCompression == "none" {
		opts.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	}
	if t.TLS || t.TLSCertFile != "" || t.TLSCAFile != "" || t.APIKey != "" {
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.TLSServerName}
		if t.TLSCertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.TLSCertFile, t.TLSKeyFile)
			if err != nil {
				return client.Options{}, &config.Error{Variable: "TEMPORAL_TLS_CERT", Problem: "cannot load the certificate and key: " + err.Error()}
			}
			tlsCfg.Certificates = []tls.Certificate{cert}
		}
		if t.TLSCAFile != "" {
			pem, err := os.ReadFile(t.TLSCAFile)
			if err != nil {
				return client.Options{}, &config.Error{Variable: "TEMPORAL_TLS_CA", Problem: err.Error()}
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return client.Options{}, &config.Error{Variable: "TEMPORAL_TLS_CA", Problem: "no PEM certificate found"}
			}
			tlsCfg.RootCAs = pool
		}
		opts.ConnectionOptions.TLS = tlsCfg
	}
	if t.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(t.APIKey)
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
