package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"

	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/stream"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and
// returns their paths and a pool trusting the certificate.
func selfSigned(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "trendstream test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// startTestService starts the service run and demo use, on an
// in-process broker, and stops it when the test ends.
func startTestService(t testing.TB, web webConfig) *service {
	t.Helper()
	brokers := devCluster(t, 2)
	cfg := stream.DefaultConfig()
	cfg.Connection = stream.Connection{Brokers: brokers}
	cfg.Group, cfg.Partitions, cfg.Published = "web-test", 2, "tsb"
	cfg.BatchWait, cfg.FetchMaxWait = 5*time.Millisecond, 100*time.Millisecond
	cfg.SessionTimeout, cfg.Logger = 6*time.Second, slog.New(slog.DiscardHandler)
	svc, err := startService(cfg.Logger, cfg, state.DefaultConfig(t.TempDir()), web, newRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("service: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("service did not stop within 30s")
		}
	})
	return svc
}

// TestHTTPAccess serves over TLS with a token and checks who gets what:
// probes are open, everything else needs the token, /metrics as
// --metrics-auth says.
func TestHTTPAccess(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	const token = "s3cret-token-of-32-characters-xx"
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, metricsAuth := range []bool{true, false} {
		svc := startTestService(t, webConfig{Addr: "127.0.0.1:0", Console: true, CertFile: certFile, KeyFile: keyFile,
			Token: token, MetricsAuth: metricsAuth})
		base := svc.baseURL()
		if !strings.HasPrefix(base, "https://") {
			t.Fatalf("base URL %s without TLS", base)
		}
		metricsOpen := http.StatusUnauthorized
		if !metricsAuth {
			metricsOpen = http.StatusOK
		}
		for _, tc := range []struct {
			path, token string
			status      int
		}{
			{"/healthz", "", 200},
			{"/readyz", "", 0}, // 200 or 503, never 401
			{"/metrics", "", metricsOpen},
			{"/metrics", "wrong-token-wrong-token", metricsOpen},
			{"/metrics", token, 200},
			{"/", "", 401},
			{"/", "wrong-token-wrong-token", 401},
			{"/", token, 200},
			{"/v1/series/S1/A", "", 401},
			{"/v1/series/S1/A", token, 404},
			{"/series/S1/A", "", 401},
			{"/console/events", "", 401},
			{"/console/static/style.css", "", 200},
		} {
			req, _ := http.NewRequest("GET", base+tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", tc.path, err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if tc.status == 0 && resp.StatusCode == 401 || tc.status != 0 && resp.StatusCode != tc.status {
				t.Errorf("metrics-auth %v, %s with token %q: status %d, want %d\n%s", metricsAuth, tc.path, tc.token, resp.StatusCode, tc.status, body)
			}
		}
		// Plain HTTP to the TLS port is refused.
		if resp, err := http.Get("http://" + svc.addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Error("plain HTTP served on the TLS address")
			}
		}
	}
}

// TestConsoleFlag checks that --console=false leaves / to the API (404)
// and that the console is there by default.
func TestConsoleFlag(t *testing.T) {
	for _, on := range []bool{true, false} {
		svc := startTestService(t, webConfig{Addr: "127.0.0.1:0", Console: on})
		resp, err := http.Get(svc.baseURL() + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: 200, false: 404}[on]; resp.StatusCode != want {
			t.Errorf("--console=%v: / answered %d, want %d", on, resp.StatusCode, want)
		}
	}
}

func TestReadWebConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name     string
		settings map[string]any
		want     string // error text, or the token read
		err      bool
	}{
		{"token read and trimmed", map[string]any{"http-token-file": write("ok", "  0123456789abcdef0123\n")}, "0123456789abcdef0123", false},
		{"missing file", map[string]any{"http-token-file": filepath.Join(dir, "nope")}, "--http-token-file: open", true},
		{"empty file", map[string]any{"http-token-file": write("empty", "\n")}, "token file is empty", true},
		{"short token", map[string]any{"http-token-file": write("short", "abc\n")}, "the token has 3 characters; use at least 16", true},
		{"cert without key", map[string]any{"http-tls-cert": "c.pem"}, "--http-tls-cert and --http-tls-key go together", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := viper.New()
			for k, val := range tc.settings {
				v.Set(k, val)
			}
			w, err := readWebConfig(v, "127.0.0.1:0")
			switch {
			case tc.err && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one with %q", err, tc.want)
			case tc.err && strings.Contains(err.Error(), "0123456789abcdef"):
				t.Errorf("error %v shows the token", err)
			case !tc.err && (err != nil || w.Token != tc.want):
				t.Errorf("token %q, error %v; want %q", w.Token, err, tc.want)
			}
		})
	}
}
