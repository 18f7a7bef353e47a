package console

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBackend serves series from a map and an overview whose consumed
// count the test moves.
type fakeBackend struct {
	mu       sync.Mutex
	overview Overview
	series   map[string]*Series
	// owned lists the partitions served; series of others are NotOwned.
	owned []int32
	// owners maps other partitions to the base URLs of their consoles,
	// where known.
	owners map[int32]string
}

var _ Backend = (*fakeBackend)(nil)

func (f *fakeBackend) Overview(context.Context) (*Overview, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ov := f.overview
	return &ov, nil
}

func (f *fakeBackend) setConsumed(n float64) {
	f.mu.Lock()
	f.overview.Consumed = n
	f.mu.Unlock()
}

func (f *fakeBackend) Series(_ context.Context, store, sku string) (*Series, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.series[store+"/"+sku]
	switch {
	case !ok:
		return nil, fmt.Errorf("series %q: %w", store+"/"+sku, ErrNotFound)
	case !slices.Contains(f.owned, s.Partition):
		return nil, &NotOwnedError{Series: store + "/" + sku, Partition: s.Partition, Owned: f.owned, Owner: f.owners[s.Partition]}
	}
	return s, nil
}

func (f *fakeBackend) Search(_ context.Context, store, sku string, limit int) ([]SeriesRef, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var refs []SeriesRef
	for _, s := range f.series {
		if (store == "" || s.Store == store) && strings.HasPrefix(s.SKU, sku) {
			refs = append(refs, SeriesRef{Store: s.Store, SKU: s.SKU, Partition: s.Partition, Owned: slices.Contains(f.owned, s.Partition)})
		}
	}
	slices.SortFunc(refs, func(a, b SeriesRef) int { return strings.Compare(a.Store+"/"+a.SKU, b.Store+"/"+b.SKU) })
	if len(refs) > limit {
		return refs[:limit], true, nil
	}
	return refs, false, nil
}

var day0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// testSeries builds a series with 20 closed days, one open day and a
// 7-day forecast.
func testSeries(store, sku string, part int32) *Series {
	s := &Series{Store: store, SKU: sku, Partition: part, Bucket: "1d"}
	for d := range 20 {
		s.Closed = append(s.Closed, Bucket{Start: day0.AddDate(0, 0, d), Qty: float64(10 + d%7)})
	}
	s.Open = []Bucket{{Start: day0.AddDate(0, 0, 20), Qty: 4, Events: 2}}
	pct := 12.5
	s.Forecast = &Forecast{Origin: day0.AddDate(0, 0, 19), GeneratedAt: day0.AddDate(0, 0, 20), Model: "auto",
		ModelVersion: "mean tsb 0.5 ma28 0.5", Trend: Trend{Direction: "up", ChangePct: &pct}}
	for h := range 7 {
		s.Forecast.Steps = append(s.Forecast.Steps, Step{Start: day0.AddDate(0, 0, 20+h), Mean: 14, P10: 9, P50: 13.5, P90: 20})
	}
	return s
}

func newTestServer(t *testing.T, f *fakeBackend, cfg Config) *httptest.Server {
	t.Helper()
	cfg.Backend = f
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	return srv
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestSeriesPageEscapes renders series whose store and SKU hold markup,
// quotes and non-ASCII text: the page must show them as text, link to
// them correctly, and never carry them as markup.
func TestSeriesPageEscapes(t *testing.T) {
	for _, tc := range []struct {
		name, store, sku string
		// want appear in the page as they are, escaped.
		want []string
	}{
		{"script", `<script>alert(1)`, `x"><img src=x onerror=alert(2)>`,
			[]string{"&lt;script&gt;alert(1)", "x&#34;&gt;&lt;img src=x onerror=alert(2)&gt;"}},
		{"quotes", `O'Brien's "best"`, "it's", []string{"O&#39;Brien&#39;s &#34;best&#34;", "it&#39;s"}},
		{"unicode", "Zürich ☃", "寿司-1", []string{"Zürich ☃", "寿司-1"}},
		{"url characters", "a?b#c", "50% & more", []string{"a?b#c", "50% &amp; more"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeBackend{owned: []int32{0}, series: map[string]*Series{tc.store + "/" + tc.sku: testSeries(tc.store, tc.sku, 0)}}
			srv := newTestServer(t, f, Config{})
			status, body := get(t, srv.URL+seriesPath(tc.store, tc.sku))
			if status != http.StatusOK {
				t.Fatalf("status %d:\n%s", status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, raw := range []string{tc.store, tc.sku} {
				if strings.ContainsAny(raw, `<>"'&`) && strings.Contains(body, raw) {
					t.Errorf("page holds %q unescaped", raw)
				}
			}
			// The search finds it and redirects to the same page.
			q := url.Values{"store": {tc.store}, "sku": {tc.sku}}
			status, found := get(t, srv.URL+"/series?"+q.Encode())
			if status != http.StatusOK || !strings.Contains(found, `id="s-chart"`) {
				t.Errorf("search for the exact series: status %d, no series page", status)
			}
		})
	}
}

// TestSeriesMessages checks what a planner reads when a series cannot be
// shown.
func TestSeriesMessages(t *testing.T) {
	f := &fakeBackend{owned: []int32{0, 2}, series: map[string]*Series{
		"S1/A":      testSeries("S1", "A", 0),
		"S1/B":      testSeries("S1", "B", 3),
		"S1/<i>x y": testSeries("S1", "<i>x y", 5),
	}, owners: map[int32]string{5: "https://host-5:8080/"}}
	for i := range 120 {
		sku := fmt.Sprintf("BULK-%04d", i)
		f.series["S9/"+sku] = testSeries("S9", sku, 0)
	}
	srv := newTestServer(t, f, Config{})
	for _, tc := range []struct {
		name, path string
		status     int
		want       []string
	}{
		{"unknown", seriesPath("S1", "NOPE"), 404, []string{"No such series here", "store S1, SKU NOPE", "case-sensitive"}},
		{"owned elsewhere", seriesPath("S1", "B"), 404, []string{"Served by another instance", "partition 3", "serves partitions 0 and 2", "Open the console of the instance that serves partition 3"}},
		{"owned by a known instance", seriesPath("S1", "<i>x y"), 404, []string{"partition 5, which the instance at https://host-5:8080/ serves",
			`<a id="owner-link" href="https://host-5:8080/series/S1/%3Ci%3Ex%20y">Open it on https://host-5:8080/</a>`, "SKU &lt;i&gt;x y"}},
		{"too long", seriesPath("S1", strings.Repeat("x", 300)), 400, []string{"300 bytes long", "at most 256"}},
		{"control character", seriesPath("S1", "a\x01b"), 400, []string{"control characters"}},
		{"empty search", "/series?store=&sku=", 400, []string{"Give a store"}},
		{"no match", "/series?store=S1&sku=Z", 200, []string{"No series with store “S1” and a SKU starting with “Z”"}},
		{"huge list", "/series?store=S9", 200, []string{"The first 50 series with store “S9”", "BULK-0049", "type more of the SKU"}},
		{"narrowed", "/series?store=S9&sku=BULK-011", 200, []string{"10 series with store “S9”", "BULK-0119"}},
		{"search elsewhere", "/series?sku=B", 200, []string{"partition 3, served by another instance"}},
		{"slash in search", "/series?store=a/b", 400, []string{"cannot contain “/”"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := get(t, srv.URL+tc.path)
			if status != tc.status {
				t.Errorf("status %d, want %d", status, tc.status)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q:\n%s", w, body)
				}
			}
			if tc.name == "huge list" && strings.Contains(body, "BULK-0050") {
				t.Error("the list goes past the limit")
			}
		})
	}
}

// TestOptionalSections checks that the sections whose data backends add
// later are hidden without it and shown with it.
func TestOptionalSections(t *testing.T) {
	bare := testSeries("S1", "A", 0)
	full := testSeries("S1", "F", 0)
	onHand := 7.0
	full.Models = []ModelForecast{{Model: "lstm", Steps: []ModelStep{{Start: full.Forecast.Steps[0].Start, Mean: 13}}}, {Model: "ma28", Steps: []ModelStep{{Start: full.Forecast.Steps[0].Start, Mean: 12}}}}
	full.Accuracy = []ModelAccuracy{{Model: "lstm", RMSE: 1.25, NextRMSE: 1, Pinball: 0.5, Scored: 14, Weight: 0.6}, {Model: "ma28", RMSE: 2, NextRMSE: 2, Pinball: math.NaN(), Scored: 14, Weight: -1}}
	full.Explanation = &Explanation{Summary: "Weekends sell more.", Factors: []Factor{{Name: "weekly seasonality", Effect: 3.5}}}
	full.Replenishment = &Replenishment{LeadTime: 3, ServiceLevel: 0.95, Demand: 42, SafetyStock: 8, OnHand: &onHand, OrderQty: 43}
	f := &fakeBackend{owned: []int32{0}, series: map[string]*Series{"S1/A": bare, "S1/F": full}}
	srv := newTestServer(t, f, Config{})
	sections := map[string]string{"s-models": "lstm", "s-accuracy": "1.25", "s-explanation": "weekly seasonality: <strong>&#43;3.50</strong>", "s-replenishment": "43"}
	_, page := get(t, srv.URL+seriesPath("S1", "A"))
	for id := range sections {
		if strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("series without %s data shows the section", id)
		}
	}
	_, page = get(t, srv.URL+seriesPath("S1", "F"))
	for id, want := range sections {
		if !strings.Contains(page, `id="`+id+`"`) || !strings.Contains(page, want) {
			t.Errorf("series with %s data lacks the section or %q", id, want)
		}
	}

	// A plan without a stock position shows its levels and no order.
	full.Replenishment = &Replenishment{LeadTime: 3, ServiceLevel: 0.95, Demand: 42, SafetyStock: 8, ReorderPoint: 21, OrderUpTo: 50}
	_, page = get(t, srv.URL+seriesPath("S1", "F"))
	if !strings.Contains(page, "Order up to") || !strings.Contains(page, "Reorder point") || strings.Contains(page, "Order now") {
		t.Error("a plan without a stock position lacks its levels or shows an order")
	}

	_, page = get(t, srv.URL+"/")
	if strings.Contains(page, `<h2 id="ov-trending-h"`) || strings.Contains(page, "other consoles") {
		t.Error("overview without trending data or peers shows them")
	}
	pct := 80.0
	f.mu.Lock()
	f.overview.Trending = &Trending{Rising: []TrendItem{{Store: "S<1>", SKU: "A", ChangePct: &pct, Last: 10, Next: 18}}}
	f.overview.Peers = []string{"https://b:8443", "http://c:8080"}
	f.mu.Unlock()
	time.Sleep(1100 * time.Millisecond) // the next sample
	_, page = get(t, srv.URL+"/")
	for _, want := range []string{`<h2 id="ov-trending-h"`, "Rising", `href="/series/S%3C1%3E/A"`, "S&lt;1&gt; / A", "&#43;80.0%",
		`other consoles: <a class="peer" href="https://b:8443/">https://b:8443</a>, <a class="peer" href="http://c:8080/">http://c:8080</a>.`} {
		if !strings.Contains(page, want) {
			t.Errorf("overview with a rising series lacks %q", want)
		}
	}
}

// TestLiveStream reads the overview stream: it starts with the current
// overview, sends an update when the numbers change, and ends with a
// "gone" event when the server's Run stops, so a server shutdown is not
// held up by open pages.
func TestLiveStream(t *testing.T) {
	f := &fakeBackend{owned: []int32{0}, overview: Overview{Instance: "test", Consumed: 100}}
	s, err := New(Config{Backend: f, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()

	resp, err := http.Get(srv.URL + "/console/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := make(chan [2]string)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var name, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = line[7:]
			case strings.HasPrefix(line, "data: "):
				data += line[6:] + "\n"
			case line == "" && name != "":
				events <- [2]string{name, data}
				name, data = "", ""
			}
		}
	}()
	next := func() [2]string {
		t.Helper()
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5s")
		}
		return [2]string{}
	}
	first := next()
	if first[0] != "update" || !strings.Contains(first[1], `data-metric="consumed" data-value="100"`) {
		t.Fatalf("first event %q lacks the overview", first)
	}
	f.setConsumed(250)
	for e := next(); !strings.Contains(e[1], `data-value="250"`); e = next() {
	}
	cancel()
	<-done
	for e := next(); e[0] != "gone"; e = next() {
	}
	if _, ok := <-events; ok {
		t.Error("the stream stayed open after gone")
	}
}

// TestEventRate checks events per second from successive samples.
func TestEventRate(t *testing.T) {
	f := &fakeBackend{}
	s, err := New(Config{Backend: f, RateWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var w []sample
	f.setConsumed(1000)
	w = s.sampleInto(context.Background(), w)
	if v := s.latest.Load().view; v.HasRate {
		t.Error("a rate from one sample")
	}
	time.Sleep(200 * time.Millisecond)
	f.setConsumed(1200)
	w = s.sampleInto(context.Background(), w)
	v := s.latest.Load().view
	if !v.HasRate || v.Rate < 500 || v.Rate > 1000 {
		t.Errorf("rate %v after 200 events in 200ms, want about 1000 (at most, as time passed between reads)", v.Rate)
	}
	f.setConsumed(10) // a restart
	s.sampleInto(context.Background(), w)
	if v := s.latest.Load().view; v.HasRate {
		t.Errorf("rate %v across a counter reset", v.Rate)
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no backend", Config{}, "Backend is required"},
		{"negative interval", Config{Backend: &fakeBackend{}, Interval: -time.Second}, "Interval -1s"},
		{"negative limit", Config{Backend: &fakeBackend{}, SearchLimit: -1}, "SearchLimit -1"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
}

// TestPageHeaders checks that pages forbid inline script and framing.
func TestPageHeaders(t *testing.T) {
	srv := newTestServer(t, &fakeBackend{}, Config{})
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for path, status := range map[string]int{
		"/console/static/style.css": 200, "/console/static/live.js": 200, "/console/static/base.html": 404,
	} {
		if got, _ := get(t, srv.URL+path); got != status {
			t.Errorf("%s: status %d, want %d", path, got, status)
		}
	}
}
