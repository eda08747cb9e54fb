// Command codec-server serves the payload codec over HTTP (Temporal's
// remote codec protocol: POST /encode and POST /decode), so that the
// Temporal Web UI and CLI can show decrypted payloads to an operator who
// runs it. It reads PAYLOAD_ENCRYPTION_KEYS and PAYLOAD_ENCRYPTION_KEY_ID
// like the worker.
//
//	codec-server [--addr 127.0.0.1:8081] [--web-ui-origin http://localhost:8233]
//
// Point the Web UI at it (Settings → Codec Server, or the dev server's
// --ui-codec-endpoint), or the CLI with --codec-endpoint. Bind it to a
// private address: whoever reaches it can decrypt.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/chamelaion-lipsync/worker/codec"
	"github.com/chamelaion-lipsync/worker/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "codec-server: %v\n", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("codec-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	origins := fs.String("web-ui-origin", "http://localhost:8233,http://127.0.0.1:8233", "Web UI origins allowed by CORS, comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	c, err := cfg.PayloadCodec()
	if err != nil {
		return err
	}
	if c == nil {
		return errors.New("PAYLOAD_ENCRYPTION_KEYS: is required (the keys the worker encrypts with)")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: codec.HTTPHandler(c, strings.Split(*origins, ",")), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "codec server listening on http://%s (keys %s, active %s)\n", ln.Addr(), strings.Join(c.KeyIDs(), ","), c.ActiveKeyID())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
