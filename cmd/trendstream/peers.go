package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// peerTimeout bounds the questions a console asks its peers about one
// series page.
const peerTimeout = 2 * time.Second

// peerFinder finds which of the group's other instances serves a series,
// for a console page of a series this instance does not serve: it asks
// every peer's series API at once (a HEAD request, with the bearer token
// when one is set) and takes the first that has the series. Peers are
// configured by the operator (--console-peers), never taken from a
// request, so the token only goes where the operator sends it.
type peerFinder struct {
	peers  []string // base URLs, without a trailing slash
	token  string
	client *http.Client
}

// newPeerFinder returns a finder asking peers with token. It follows no
// redirect: a peer's answer is its own, and the token goes to the listed
// URLs alone (Go's client would carry it to another port or scheme of
// the same host).
func newPeerFinder(peers []string, token string) *peerFinder {
	return &peerFinder{peers: peers, token: token, client: &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// parsePeers checks --console-peers: absolute http or https URLs with a
// host and no path, query or user.
func parsePeers(list []string) ([]string, error) {
	var out []string
	for _, p := range list {
		u, err := url.Parse(p)
		switch {
		case err != nil:
			return nil, fmt.Errorf("--console-peers: %w", err)
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			return nil, fmt.Errorf("--console-peers: %q is not an http:// or https:// URL with a host", p)
		case strings.Trim(u.Path, "/") != "", u.RawQuery != "", u.Fragment != "", u.User != nil:
			return nil, fmt.Errorf("--console-peers: %q has more than a scheme, host and port", p)
		}
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return out, nil
}

// owner returns the base URL of the peer that serves series store/sku,
// or "" when none answers that it does within peerTimeout.
func (f *peerFinder) owner(ctx context.Context, store, sku string) string {
	if f == nil || len(f.peers) == 0 {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	path := "/v1/series/" + url.PathEscape(store) + "/" + url.PathEscape(sku)
	answers := make(chan string, len(f.peers)) // each request sends one: its peer if it has the series, else ""
	var wg sync.WaitGroup
	for _, p := range f.peers {
		wg.Go(func() { answers <- f.ask(ctx, p, path) })
	}
	owner := ""
	for range f.peers {
		if owner = <-answers; owner != "" {
			break
		}
	}
	cancel()
	wg.Wait() // the other requests end with ctx: none outlives the page
	return owner
}

// ask returns peer when it answers 200 for path, else "".
func (f *peerFinder) ask(ctx context.Context, peer, path string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, peer+path, nil)
	if err != nil {
		return ""
	}
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return ""
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return peer
}
