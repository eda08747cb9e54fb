package main

import (
	"log/slog"
	"net"

	"github.com/chamelaion-lipsync/worker/config"
)

// warnAtStartUp logs one warning for each setting that leaves a secret
// less protected than it could be, so that the choice is visible.
func warnAtStartUp(cfg config.Config, logger *slog.Logger) {
	if w := cfg.ClearHistoriesWarning(); w != "" {
		logger.Warn(w)
	}
	if cfg.Codec.Mode == config.PayloadEncryptionMigrate {
		logger.Warn("PAYLOAD_ENCRYPTION=migrate: payloads that arrive in the clear are accepted; unset it once the jobs started before encryption have finished")
	}
	if cfg.API.AllowHTTP {
		logger.Warn("CHAMELAION_ALLOW_HTTP=true: the API key may be sent in the clear to a host that is not this machine")
	}
	if cfg.Worker.MediaRoot == "" {
		logger.Info("file:// media are off (MEDIA_ROOT is not set)")
	} else {
		logger.Info("file:// media are read inside MEDIA_ROOT only", "media_root", cfg.Worker.MediaRoot, "max_bytes", cfg.Worker.MediaMaxBytes)
	}
	if host, _, err := net.SplitHostPort(cfg.Worker.MetricsAddr); err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			logger.Info("/metrics, /livez and /readyz are served on every interface (METRICS_ADDR); they carry no secret, but keep the port off the internet", "addr", cfg.Worker.MetricsAddr)
		}
	}
	if host, _, err := net.SplitHostPort(cfg.Worker.ProfileAddr); err == nil {
		if ip := net.ParseIP(host); host == "" || ip == nil || !ip.IsLoopback() {
			logger.Warn("Go's profiles are served beyond this machine (PROFILE_ADDR): anyone who reaches the port can take CPU profiles and traces, which cost the worker CPU; serve them on 127.0.0.1", "addr", cfg.Worker.ProfileAddr)
		}
	}
}
