// Command codec-server serves the payload codec over HTTP (Temporal's
// remote codec protocol: POST /encode and POST /decode), so that the
// Temporal Web UI and CLI can show decrypted payloads to an operator who
// runs it. It reads PAYLOAD_ENCRYPTION_KEYS and PAYLOAD_ENCRYPTION_KEY_ID
// like the worker.
//
//	codec-server [--addr 127.0.0.1:8081] [--web-ui-origin http://localhost:8233]
//	             [--token-file FILE | --insecure-no-auth] [--allowed-host HOST:PORT]
//
// Every request needs the bearer token read from --token-file or
// CODEC_SERVER_TOKEN (the CLI passes it with --codec-auth "Bearer TOKEN";
// never on the command line, where ps shows it). --insecure-no-auth, for a
// codec server on the operator's own machine only (it must listen on a
// loopback address), decodes without a token and never encodes. Requests
// must name an allowed Host (DNS rebinding) and, from a browser, an
// allowed Origin. Point the Web UI at it (Settings → Codec Server, or the
// dev server's --ui-codec-endpoint), or the CLI with --codec-endpoint.
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

	"github.com/chamelaion-lipsync/worker/chamelaion"
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
	addr := fs.String("addr", "127.0.0.1:8081", "listen address (a non-loopback address needs a token)")
	origins := fs.String("web-ui-origin", "http://localhost:8233,http://127.0.0.1:8233", "Web UI origins allowed by CORS, comma-separated; requests from any other origin are refused")
	hosts := fs.String("allowed-host", "", "extra Host header values accepted, comma-separated host:port (the name clients use when it is not the listen address or localhost)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token every request must carry (default: $CODEC_SERVER_TOKEN)")
	noAuth := fs.Bool("insecure-no-auth", false, "serve /decode without a token and refuse /encode; only on a loopback --addr, for local use")
	maxBody := fs.Int64("max-body-bytes", 4<<20, "largest request body accepted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	token := strings.TrimSpace(os.Getenv("CODEC_SERVER_TOKEN"))
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token != "" && *noAuth {
		return errors.New("--insecure-no-auth and a token exclude each other")
	}
	if token == "" && !*noAuth {
		return errors.New("a token is required: --token-file FILE or CODEC_SERVER_TOKEN (or --insecure-no-auth on a loopback address, for local use)")
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if *noAuth && !chamelaion.IsLoopback(host) {
		return fmt.Errorf("--insecure-no-auth needs a loopback --addr (such as 127.0.0.1:%s): whoever reaches the server could decrypt", port)
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if cfg.Codec.Keys == "" {
		return errors.New("PAYLOAD_ENCRYPTION_KEYS: is required (the keys the worker encrypts with)")
	}
	// Lenient: histories written before encryption was on still show.
	c, err := codec.ParseKeys(cfg.Codec.Keys, cfg.Codec.ActiveKeyID)
	if err != nil {
		return &config.Error{Variable: "PAYLOAD_ENCRYPTION_KEYS", Problem: err.Error()}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	handler, err := codec.HTTPHandler(c, codec.HTTPOptions{
		Token:          token,
		InsecureNoAuth: *noAuth,
		Origins:        strings.Split(*origins, ","),
		Hosts:          append(codec.DefaultHosts(ln.Addr().String()), strings.Split(*hosts, ",")...),
		MaxBodyBytes:   *maxBody,
	})
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	mode := "bearer token required"
	if *noAuth {
		mode = "NO AUTHENTICATION (decode only, loopback only)"
	}
	fmt.Fprintf(stdout, "codec server listening on http://%s (keys %s, active %s; %s)\n", ln.Addr(), strings.Join(c.KeyIDs(), ","), c.ActiveKeyID(), mode)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
