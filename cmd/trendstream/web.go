package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/trendstream/trendstream/console"
)

// addHTTPFlags adds the flags of the HTTP server's web console, TLS and
// access control, which run and demo share.
func addHTTPFlags(fs *pflag.FlagSet) {
	fs.Bool("console", true, "serve the web console at / on the HTTP address")
	fs.String("http-tls-cert", "", "PEM certificate to serve the HTTP address over TLS (with --http-tls-key)")
	fs.String("http-tls-key", "", "PEM key of --http-tls-cert")
	fs.String("http-token-file", "", "file holding a bearer token (16 characters or more) that the console, the series API and, with --metrics-auth, /metrics require; /healthz and /readyz stay open")
	fs.Bool("metrics-auth", true, "with --http-token-file, require the token on /metrics too (Prometheus: bearer_token_file)")
	fs.String("console-peers", "", "comma-separated base URLs (http://host:port) of the group's other instances, which the console links on its overview and asks, with the token, who serves a series it does not, to link there")
}

// webConfig says how the HTTP server serves.
type webConfig struct {
	// Addr is the listen address.
	Addr string
	// Console serves the web console.
	Console bool
	// CertFile and KeyFile, when set, serve TLS.
	CertFile, KeyFile string
	// Token, when set, is required on everything but the probes (and
	// /metrics unless MetricsAuth). It is never logged.
	Token string
	// MetricsAuth requires the token on /metrics.
	MetricsAuth bool
	// Peers are the base URLs of the group's other instances, which the
	// console asks who serves a series this one does not.
	Peers []string
}

// readWebConfig reads the HTTP flags; addr is the listen address.
func readWebConfig(v *viper.Viper, addr string) (webConfig, error) {
	w := webConfig{Addr: addr, Console: v.GetBool("console"), CertFile: v.GetString("http-tls-cert"),
		KeyFile: v.GetString("http-tls-key"), MetricsAuth: v.GetBool("metrics-auth")}
	if (w.CertFile == "") != (w.KeyFile == "") {
		return w, errors.New("--http-tls-cert and --http-tls-key go together")
	}
	var err error
	if w.Peers, err = parsePeers(splitList(v.GetString("console-peers"))); err != nil {
		return w, err
	}
	if path := v.GetString("http-token-file"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return w, fmt.Errorf("--http-token-file: %w", err)
		}
		if w.Token, err = console.ParseToken(b); err != nil {
			return w, fmt.Errorf("--http-token-file %s: %w", path, err)
		}
		if len(w.Token) < console.MinTokenLen {
			return w, fmt.Errorf("--http-token-file %s: the token has %d characters; use at least %d (openssl rand -hex 32 makes one)",
				path, len(w.Token), console.MinTokenLen)
		}
	}
	return w, nil
}

// tlsConfig loads the certificate, or returns nil without TLS.
func (w webConfig) tlsConfig() (*tls.Config, error) {
	if w.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(w.CertFile, w.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("--http-tls-cert, --http-tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// webHandler adds the console to the service's mux (whose "/" is the
// processor's API) and puts the guard in front of everything when a
// token is set.
func (s *service) webHandler(w webConfig, g prometheus.Gatherer) (http.Handler, error) {
	if w.Console {
		host, _ := os.Hostname()
		instance := s.addr
		if host != "" {
			instance = host + " (" + s.addr + ")"
		}
		backend, err := newConsoleBackend(s.proc, s.db, g, instance,
			newPeerFinder(w.Peers, w.Token))
		if err != nil {
			return nil, err
		}
		con, err := console.New(console.Config{Backend: backend, SignOut: w.Token != "", Logger: s.log})
		if err != nil {
			return nil, err
		}
		con.Register(s.mux)
		s.console = con
	}
	if w.Token == "" {
		return s.mux, nil
	}
	open := []string{"/healthz", "/readyz"}
	if !w.MetricsAuth {
		open = append(open, "/metrics")
	}
	guard, err := console.NewGuard(console.GuardConfig{Token: w.Token, Open: open, Secure: w.CertFile != ""})
	if err != nil {
		return nil, fmt.Errorf("--http-token-file: %w", err)
	}
	return guard.Wrap(s.mux), nil
}

// serve serves srv on ln, over TLS when srv has a certificate, until it
// is shut down; its result goes to s.served.
func (s *service) serve(srv *http.Server, ln net.Listener) {
	go func() {
		if srv.TLSConfig != nil {
			s.served <- srv.ServeTLS(ln, "", "")
			return
		}
		s.served <- srv.Serve(ln)
	}()
}

// baseURL is the server's address as a URL.
func (s *service) baseURL() string {
	if s.https {
		return "https://" + s.addr
	}
	return "http://" + s.addr
}

// startConsole runs the console's sampler until ctx ends or the returned
// stop is called; stop returns once it has ended, which also ends the
// console's live-update streams.
func (s *service) startConsole(ctx context.Context) (stop func()) {
	if s.console == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.console.Run(ctx)
	}()
	return func() { cancel(); <-done }
}

// consoleLine is the demo's line naming the console's address, or "".
func consoleLine(s *service) string {
	if s.console == nil {
		return ""
	}
	return "  web console:        " + s.baseURL() + "/\n"
}
