package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// TestPeerFinder asks fake peers who serves a series: the first to answer
// 200 to a HEAD of its series path with the token, whatever the others
// do, and none when no peer has it or the caller's context ends first.
func TestPeerFinder(t *testing.T) {
	const token = "peer-token-0123456789"
	const wantPath = "/v1/series/S%201/%3Cx%3E%2F"
	peer := func(status int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method != http.MethodHead || r.URL.EscapedPath() != wantPath:
				t.Errorf("peer asked %s %s, want HEAD %s", r.Method, r.URL.EscapedPath(), wantPath)
				w.WriteHeader(http.StatusBadRequest)
			case r.Header.Get("Authorization") != "Bearer "+token:
				w.WriteHeader(http.StatusUnauthorized)
			default:
				w.WriteHeader(status)
			}
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hanging.Close)
	has, hasNot := peer(http.StatusOK), peer(http.StatusNotFound)
	// A peer that redirects to a server not in the list: the finder
	// neither follows it nor takes the redirect for the series.
	var followed atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed.Store(true) }))
	t.Cleanup(elsewhere.Close)
	redirecting := httptest.NewServer(http.RedirectHandler(elsewhere.URL+wantPath, http.StatusFound))
	t.Cleanup(redirecting.Close)
	tests := []struct {
		name  string
		peers []string
		token string
		wait  time.Duration // the caller's deadline; 0 for none
		want  string
	}{
		{"second of two", []string{hasNot, has}, token, 0, has},
		{"beside a hanging peer", []string{hanging.URL, has}, token, 0, has},
		{"nobody has it", []string{hasNot, hasNot}, token, 0, ""},
		{"wrong token", []string{has}, "not-the-token-at-all", 0, ""},
		{"only a hanging peer", []string{hanging.URL}, token, 100 * time.Millisecond, ""},
		{"an unreachable peer", []string{"http://127.0.0.1:1", has}, token, 0, has},
		{"no peers", nil, token, 0, ""},
		{"a redirecting peer", []string{redirecting.URL}, token, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.wait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.wait)
				defer cancel()
			}
			f := newPeerFinder(tc.peers, tc.token)
			started := time.Now()
			if got := f.owner(ctx, "S 1", "<x>/"); got != tc.want {
				t.Errorf("owner = %q, want %q", got, tc.want)
			}
			if d := time.Since(started); d > peerTimeout/2 {
				t.Errorf("took %v", d)
			}
		})
	}
	if followed.Load() {
		t.Error("a redirect was followed, with the token, to a server not among the peers")
	}
	var none *peerFinder
	if got := none.owner(context.Background(), "S", "A"); got != "" {
		t.Errorf("a nil finder found %q", got)
	}
}

func TestParsePeers(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
		ok   bool
	}{
		{"hosts and ports", []string{"http://a:8080", "https://b.example:8443/"}, []string{"http://a:8080", "https://b.example:8443"}, true},
		{"none", nil, nil, true},
		{"no scheme", []string{"a:8080"}, nil, false},
		{"other scheme", []string{"ftp://a"}, nil, false},
		{"a path", []string{"http://a:8080/console"}, nil, false},
		{"a user", []string{"http://u:p@a:8080"}, nil, false},
		{"a query", []string{"http://a:8080/?x=1"}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePeers(tc.in)
			if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
				t.Errorf("parsePeers(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}
