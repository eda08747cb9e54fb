package localcluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// startUI runs the Web UI server (the release the CLI embeds) against the
// frontend, configured from the temporalio/ui image's template with the
// variables that image reads, and waits until it answers.
func (c *Cluster) startUI(ctx context.Context) error {
	c.UIURL = "http://" + net.JoinHostPort(c.opts.IP, strconv.Itoa(c.opts.UIPort))
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"TEMPORAL_ADDRESS=" + c.Address,
		"TEMPORAL_UI_PORT=" + strconv.Itoa(c.opts.UIPort),
		"TEMPORAL_DEFAULT_NAMESPACE=" + c.opts.Namespace,
		// The page's own origin, by either name of the loopback.
		"TEMPORAL_CORS_ORIGINS=" + c.UIURL + ",http://localhost:" + strconv.Itoa(c.opts.UIPort),
		"TEMPORAL_NOTIFY_ON_NEW_VERSION=false",
		"TEMPORAL_CODEC_ENDPOINT=" + c.opts.UICodecEndpoint,
	}
	args := []string{"--root", c.opts.BinDir, "--config", "ui-config", "--env", "docker", "start"}
	logPath := filepath.Join(c.opts.Dir, "logs", "ui.log")
	p, err := spawn("ui", filepath.Join(c.opts.BinDir, "temporal-ui-server"), args, env, logPath)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.ui = p
	c.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.UIURL+"/api/v1/settings", nil)
		if err != nil {
			return fmt.Errorf("localcluster: %w", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("localcluster: the Web UI did not answer within 30s: %v\n%s", err, tailFile(logPath))
		}
		select {
		case <-p.done:
			return fmt.Errorf("localcluster: the Web UI exited during start-up:\n%s", tailFile(logPath))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
