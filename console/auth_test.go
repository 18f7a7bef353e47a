package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const testToken = "0123456789abcdef-test-token"

// guarded serves a mux behind a Guard: "/" and "/v1/x" answer "secret",
// the probes "ok".
func guarded(t *testing.T, cfg GuardConfig, opts ...GuardOption) (*httptest.Server, *Guard) {
	t.Helper()
	g, err := NewGuard(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, p := range []string{"/", "/v1/x", "/metrics"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "secret") })
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	}
	mux.Handle("/console/static/", StaticHandler())
	srv := httptest.NewServer(g.Wrap(mux))
	t.Cleanup(srv.Close)
	return srv, g
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestGuard(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	srv, g := guarded(t, GuardConfig{Token: testToken, Open: []string{"/healthz", "/readyz"}}, WithClock(func() time.Time { return now }))
	valid := g.session(now.Add(time.Hour))
	other, _ := NewGuard(GuardConfig{Token: testToken + "x"})
	for _, tc := range []struct {
		name, path string
		header     map[string]string
		cookie     string
		status     int
		body       string
	}{
		{"no token", "/v1/x", nil, "", 401, "unauthorized"},
		{"wrong token", "/v1/x", map[string]string{"Authorization": "Bearer nope"}, "", 401, "unauthorized"},
		{"token prefix", "/v1/x", map[string]string{"Authorization": "Bearer " + testToken[:20]}, "", 401, "unauthorized"},
		{"token and more", "/v1/x", map[string]string{"Authorization": "Bearer " + testToken + "x"}, "", 401, "unauthorized"},
		{"basic scheme", "/v1/x", map[string]string{"Authorization": "Basic " + testToken}, "", 401, "unauthorized"},
		{"right token", "/v1/x", map[string]string{"Authorization": "Bearer " + testToken}, "", 200, "secret"},
		{"scheme in lower case", "/metrics", map[string]string{"Authorization": "bearer " + testToken}, "", 200, "secret"},
		{"metrics without token", "/metrics", nil, "", 401, "unauthorized"},
		{"health probe open", "/healthz", nil, "", 200, "ok"},
		{"readiness probe open", "/readyz", nil, "", 200, "ok"},
		{"probe path prefix is not open", "/healthz/x", nil, "", 401, "unauthorized"},
		{"assets open", "/console/static/style.css", nil, "", 200, ":root"},
		{"page load gets the sign-in form", "/", map[string]string{"Accept": "text/html"}, "", 401, `name="token"`},
		{"session cookie", "/", nil, valid, 200, "secret"},
		{"expired session", "/", nil, g.session(now.Add(-time.Second)), 401, "unauthorized"},
		{"session of another token", "/", nil, other.session(now.Add(time.Hour)), 401, "unauthorized"},
		{"tampered expiry", "/", nil, strings.Replace(valid, "1.", "1.9", 1), 401, "unauthorized"},
		{"garbage cookie", "/", nil, "1.2.3", 401, "unauthorized"},
		{"token as cookie", "/", nil, testToken, 401, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: sessionCookie, Value: tc.cookie})
			}
			resp, err := noRedirects.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.body) {
				t.Errorf("status %d, body %.200q; want %d with %q", resp.StatusCode, b, tc.status, tc.body)
			}
			if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

// TestGuardSignIn signs in with the form and uses the cookie it sets.
func TestGuardSignIn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secure bool
	}{{"plain", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := guarded(t, GuardConfig{Token: testToken, Secure: tc.secure})
			post := func(form url.Values, origin string) *http.Response {
				req, _ := http.NewRequest("POST", srv.URL+"/login", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if origin != "" {
					req.Header.Set("Origin", origin)
				}
				resp, err := noRedirects.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp
			}
			if resp := post(url.Values{"token": {"wrong-wrong-wrong"}, "next": {"/v1/x"}}, ""); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
				t.Errorf("wrong token: status %d, cookies %v", resp.StatusCode, resp.Cookies())
			}
			if resp := post(url.Values{"token": {testToken}}, "http://evil.example"); resp.StatusCode != 403 {
				t.Errorf("sign-in from another origin: status %d, want 403", resp.StatusCode)
			}
			for next, want := range map[string]string{"/v1/x?a=1": "/v1/x?a=1", "//evil.example/": "/", "https://evil.example/": "/", "/\\evil": "/", "": "/"} {
				resp := post(url.Values{"token": {" " + testToken + "\n"}, "next": {next}}, srv.URL)
				if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
					t.Errorf("next %q: status %d, Location %q, want 303 to %q", next, resp.StatusCode, resp.Header.Get("Location"), want)
				}
				cookies := resp.Cookies()
				if len(cookies) != 1 {
					t.Fatalf("cookies %v, want one", cookies)
				}
				c := cookies[0]
				if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure != tc.secure || strings.Contains(c.Value, testToken) {
					t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Secure=%v, no token inside", c, tc.secure)
				}
				req, _ := http.NewRequest("GET", srv.URL+"/v1/x", nil)
				req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
				resp2, err := noRedirects.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp2.Body.Close()
				if resp2.StatusCode != 200 {
					t.Errorf("with the session cookie: status %d", resp2.StatusCode)
				}
			}
		})
	}
}

func TestNewGuardValidates(t *testing.T) {
	for _, tc := range []struct {
		cfg  GuardConfig
		want string
	}{
		{GuardConfig{}, "0 bytes, fewer than 16"},
		{GuardConfig{Token: "short"}, "5 bytes"},
		{GuardConfig{Token: testToken, SessionTTL: -time.Hour}, "SessionTTL -1h0m0s"},
	} {
		if _, err := NewGuard(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
	for in, want := range map[string]string{"abc\n": "abc", "  t o k  \r\n": "t o k"} {
		if got, err := ParseToken([]byte(in)); err != nil || got != want {
			t.Errorf("ParseToken(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseToken([]byte(" \n")); err != ErrTokenEmpty {
		t.Errorf("blank token file: %v", err)
	}
}
