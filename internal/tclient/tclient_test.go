package tclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/chamelaion-lipsync/worker/config"
)

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "worker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

func TestPlainConnectionByDefault(t *testing.T) {
	cfg, err := config.Load()
	require.NoError(t, err)
	opts, err := Options(cfg, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	require.Nil(t, opts.ConnectionOptions.TLS)
	require.Nil(t, opts.Credentials)
	require.Nil(t, opts.DataConverter)
}

func TestMutualTLSAndAPIKey(t *testing.T) {
	cert, key := writeCert(t, t.TempDir())
	t.Setenv("TEMPORAL_TLS_CERT", cert)
	t.Setenv("TEMPORAL_TLS_KEY", key)
	t.Setenv("TEMPORAL_TLS_CA", cert)
	t.Setenv("TEMPORAL_TLS_SERVER_NAME", "ns.tmprl.cloud")
	t.Setenv("TEMPORAL_API_KEY", "tmprl-SECRET")
	cfg, err := config.Load()
	require.NoError(t, err)
	require.NotContains(t, cfg.String(), "tmprl-SECRET")
	opts, err := Options(cfg, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	require.NotNil(t, opts.ConnectionOptions.TLS)
	require.Len(t, opts.ConnectionOptions.TLS.Certificates, 1)
	require.NotNil(t, opts.ConnectionOptions.TLS.RootCAs)
	require.Equal(t, "ns.tmprl.cloud", opts.ConnectionOptions.TLS.ServerName)
	require.NotNil(t, opts.Credentials)
}

func TestBadTLSFilesNameTheVariable(t *testing.T) {
	t.Setenv("TEMPORAL_TLS_CERT", "/nonexistent/c.pem")
	_, err := config.Load()
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	require.Equal(t, "TEMPORAL_TLS_CERT", cerr.Variable)

	t.Setenv("TEMPORAL_TLS_KEY", "/nonexistent/k.pem")
	_, err = config.Load()
	require.ErrorAs(t, err, &cerr)
	require.Contains(t, []string{"TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"}, cerr.Variable)
}

// TestRequestsAreNotCompressedByDefault: the worker's payloads are
// encrypted, which gzip cannot shrink, so requests go uncompressed unless
// TEMPORAL_GRPC_COMPRESSION=gzip asks for the SDK's default.
func TestRequestsAreNotCompressedByDefault(t *testing.T) {
	cfg, err := config.Load()
	require.NoError(t, err)
	opts, err := Options(cfg, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	require.IsType(t, &client.GrpcCompressionNone{}, opts.ConnectionOptions.GrpcCompression)

	t.Setenv("TEMPORAL_GRPC_COMPRESSION", "gzip")
	cfg, err = config.Load()
	require.NoError(t, err)
	opts, err = Options(cfg, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	require.Nil(t, opts.ConnectionOptions.GrpcCompression, "the SDK's default, gzip")

	t.Setenv("TEMPORAL_GRPC_COMPRESSION", "zstd")
	cfg, err = config.Load()
	if err == nil {
		err = cfg.ValidateWorker()
	}
	require.ErrorContains(t, err, "TEMPORAL_GRPC_COMPRESSION")
}
