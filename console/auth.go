package console

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// GuardConfig configures a Guard.
type GuardConfig struct {
	// Token is the secret every request must prove. Required, at least
	// MinTokenLen bytes.
	Token string
	// Open lists the paths served without the token: exact paths, or
	// prefixes when they end in "/". The sign-in page and the console's
	// assets are always open.
	Open []string
	// Secure marks the session cookie Secure, so browsers send it only
	// over HTTPS: set it when the server speaks TLS.
	Secure bool
	// SessionTTL is how long a sign-in lasts. The default is 12h.
	SessionTTL time.Duration
}

// MinTokenLen is the shortest token a Guard accepts: a guessable token
// would make the cookie and the bearer check pointless.
const MinTokenLen = 16

// sessionCookie names the cookie a sign-in sets.
const sessionCookie = "trendstream_session"

// Guard requires a bearer token on every request but those to open paths.
// Programs send "Authorization: Bearer TOKEN". Browsers, which cannot add
// that header to page loads, sign in once at /login with the token; the
// Guard then sets an HttpOnly, SameSite=Strict cookie (Secure with TLS)
// that holds not the token but an expiry time and an HMAC of it keyed by
// the token. A stolen cookie is thus useless after SessionTTL, never
// reveals the token, and changing the token (a restart with a new
// token file) ends every session. Sessions live in the cookie alone, so
// they survive restarts and work on every instance that has the same
// token. Its methods are safe for concurrent use.
type Guard struct {
	key    []byte
	sum    [sha256.Size]byte
	open   []string
	secure bool
	ttl    time.Duration
	now    func() time.Time
}

// GuardOption changes a Guard for tests.
type GuardOption func(*Guard)

// WithClock makes the Guard read the time from now.
func WithClock(now func() time.Time) GuardOption { return func(g *Guard) { g.now = now } }

// NewGuard returns a Guard for cfg.
func NewGuard(cfg GuardConfig, opts ...GuardOption) (*Guard, error) {
	if len(cfg.Token) < MinTokenLen {
		return nil, fmt.Errorf("console: the token has %d bytes, fewer than %d (make one with: openssl rand -hex 32)", len(cfg.Token), MinTokenLen)
	}
	switch {
	case cfg.SessionTTL == 0:
		cfg.SessionTTL = 12 * time.Hour
	case cfg.SessionTTL < 0:
		return nil, fmt.Errorf("console: GuardConfig.SessionTTL %v is negative", cfg.SessionTTL)
	}
	g := &Guard{key: []byte(cfg.Token), sum: sha256.Sum256([]byte(cfg.Token)), secure: cfg.Secure, ttl: cfg.SessionTTL, now: time.Now,
		open: append([]string{"/console/static/"}, cfg.Open...)}
	for _, o := range opts {
		o(g)
	}
	return g, nil
}

// Wrap returns next behind the guard, with the sign-in page at /login and
// sign-out at POST /logout. A request without a valid token or session
// gets 401: the sign-in form when it is a browser's page load, a short
// text otherwise.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/login" && r.Method == http.MethodPost:
			g.signIn(w, r)
		case r.URL.Path == "/login" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			next := localPath(r.URL.Query().Get("next"))
			if g.authorized(r) {
				http.Redirect(w, r, next, http.StatusSeeOther)
				return
			}
			g.loginPage(w, http.StatusOK, next, false)
		case r.URL.Path == "/logout" && r.Method == http.MethodPost:
			http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
				HttpOnly: true, Secure: g.secure, SameSite: http.SameSiteStrictMode})
			http.Redirect(w, r, "/login", http.StatusSeeOther)
		case g.isOpen(r.URL.Path) || g.authorized(r):
			next.ServeHTTP(w, r)
		default:
			g.deny(w, r)
		}
	})
}

func (g *Guard) isOpen(path string) bool {
	for _, o := range g.open {
		if path == o || (strings.HasSuffix(o, "/") && strings.HasPrefix(path, o)) {
			return true
		}
	}
	return false
}

// authorized reports whether r carries the token as a bearer or a valid
// session cookie.
func (g *Guard) authorized(r *http.Request) bool {
	if scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return g.validToken(strings.TrimSpace(token))
	}
	c, err := r.Cookie(sessionCookie)
	return err == nil && g.validSession(c.Value)
}

// validToken compares digests, so the comparison takes the same time
// whatever the token's length and content.
func (g *Guard) validToken(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], g.sum[:]) == 1
}

// session returns a cookie value valid until exp: "1.EXPIRY.MAC".
func (g *Guard) session(exp time.Time) string {
	payload := "1." + strconv.FormatInt(exp.Unix(), 10)
	return payload + "." + base64.RawURLEncoding.EncodeToString(g.mac(payload))
}

func (g *Guard) mac(payload string) []byte {
	m := hmac.New(sha256.New, g.key)
	m.Write([]byte("trendstream console session\x00"))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

func (g *Guard) validSession(v string) bool {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return false
	}
	payload, sig := v[:i], v[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, g.mac(payload)) {
		return false
	}
	version, exp, ok := strings.Cut(payload, ".")
	if !ok || version != "1" {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	return err == nil && g.now().Before(time.Unix(unix, 0))
}

// signIn checks a submitted token and sets the session cookie.
func (g *Guard) signIn(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != "" {
		if u, err := url.Parse(origin); err != nil || u.Host != r.Host {
			http.Error(w, "sign-in from another site refused", http.StatusForbidden)
			return
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad sign-in form", http.StatusBadRequest)
		return
	}
	next := localPath(r.PostForm.Get("next"))
	if !g.validToken(strings.TrimSpace(r.PostForm.Get("token"))) {
		g.loginPage(w, http.StatusUnauthorized, next, true)
		return
	}
	exp := g.now().Add(g.ttl)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: g.session(exp), Path: "/", Expires: exp,
		MaxAge: int(g.ttl / time.Second), HttpOnly: true, Secure: g.secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// deny answers an unauthorized request: with the sign-in form for a
// browser loading a page, in plain text for programs.
func (g *Guard) deny(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="trendstream"`)
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.Contains(r.Header.Get("Accept"), "text/html") {
		g.loginPage(w, http.StatusUnauthorized, localPath(r.URL.RequestURI()), false)
		return
	}
	http.Error(w, "unauthorized: send Authorization: Bearer TOKEN, or sign in at /login", http.StatusUnauthorized)
}

// loginView is the data of the sign-in page.
type loginView struct {
	Next   string
	Failed bool
	Secure bool
	TTL    string
}

func (g *Guard) loginPage(w http.ResponseWriter, status int, next string, failed bool) {
	var b bytes.Buffer
	if err := render(&b, "login", "page", loginView{Next: next, Failed: failed, Secure: g.secure, TTL: ttlWords(g.ttl)}); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setHeaders(w)
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func ttlWords(d time.Duration) string {
	if d%time.Hour == 0 {
		if h := int(d / time.Hour); h != 1 {
			return strconv.Itoa(h) + " hours"
		}
		return "1 hour"
	}
	return d.String()
}

// localPath returns p when it is a path on this site, else "/": a sign-in
// never redirects elsewhere.
func localPath(p string) string {
	if len(p) > 2048 || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") || p == "/login" {
		return "/"
	}
	return p
}

// ErrTokenEmpty is returned by ParseToken for a file without a token.
var ErrTokenEmpty = errors.New("console: the token file is empty")

// ParseToken returns the token held in the contents of a token file:
// the text with surrounding white space removed.
func ParseToken(contents []byte) (string, error) {
	t := strings.TrimSpace(string(contents))
	if t == "" {
		return "", ErrTokenEmpty
	}
	return t, nil
}
