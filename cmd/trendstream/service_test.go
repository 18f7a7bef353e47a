package main

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/stream"
)

// TestServiceHTTP checks the HTTP servers run starts: the API bounds how
// long a client may take to send a request or read an answer and keep an
// idle connection, and the Go profiles are served only on --pprof-addr,
// never on the unauthenticated API's address. Before, the API had only a
// header timeout and --pprof added the profiles to the API's server.
func TestServiceHTTP(t *testing.T) {
	cfg := stream.DefaultConfig()
	cfg.Brokers = []string{"127.0.0.1:1"} // never dialed: the processor does not run
	svc, err := startService(slog.New(slog.DiscardHandler), cfg, state.DefaultConfig(t.TempDir()), webConfig{Addr: "127.0.0.1:0"}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.shutdown()
	for name, d := range map[string]time.Duration{"ReadHeaderTimeout": svc.srv.ReadHeaderTimeout, "ReadTimeout": svc.srv.ReadTimeout,
		"WriteTimeout": svc.srv.WriteTimeout, "IdleTimeout": svc.srv.IdleTimeout} {
		if d <= 0 {
			t.Errorf("the API server's %s is %v", name, d)
		}
	}
	if err := svc.servePprof("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url  string
		code int
	}{
		{"http://" + svc.addr + "/healthz", http.StatusOK},
		{"http://" + svc.addr + "/debug/pprof/", http.StatusNotFound},
		{"http://" + svc.pprofAddr + "/debug/pprof/", http.StatusOK},
	} {
		resp, err := http.Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s = %d, want %d", tc.url, resp.StatusCode, tc.code)
		}
	}
}
