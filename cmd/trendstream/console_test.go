package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/backtest"
	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/stream"
	"github.com/trendstream/trendstream/window"
)

// chromiumPath returns the Chromium to drive, or skips the test:
// TRENDSTREAM_CHROMIUM, else chromium on the PATH.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TRENDSTREAM_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium installed (apt-get install chromium, or set TRENDSTREAM_CHROMIUM)")
	return ""
}

// browser is a headless Chromium tab.
type browser struct {
	t       *testing.T
	ctx     context.Context
	shots   string
	dialogs atomic.Int32
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("hide-scrollbars", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{t: t, shots: os.Getenv("TRENDSTREAM_SCREENSHOTS")}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			b.dialogs.Add(1) // a script from event data ran
		}
	}))
	b.ctx = ctx
	if b.shots == "" {
		b.shots = t.TempDir()
	} else if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return b
}

// open loads u and returns the document's HTTP status.
func (b *browser) open(u string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(u))
	if err != nil {
		b.t.Fatalf("loading %s: %v", u, err)
	}
	return int(resp.Status)
}

// submit runs a script that submits a form and waits for the next page.
func (b *browser) submit(script string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[chromedp.Void](script)(ctx, t)
		return err
	}))
	if err != nil {
		b.t.Fatalf("submitting: %v", err)
	}
	return int(resp.Status)
}

// eval runs a script in the page and decodes its result.
func eval[T any](b *browser, script string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](script))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", script, err)
	}
	return v
}

// waitFor polls a script until it returns true.
func (b *browser) waitFor(what, script string, within time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for !eval[bool](b, script) {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shot saves a full-page screenshot at the given viewport width.
func (b *browser) shot(name string, width int64) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	height := int64(900)
	if width < 600 {
		height = 844
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height)); err != nil {
		b.t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a layout pass
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
}

// bothWidths saves a laptop and a phone screenshot.
func (b *browser) bothWidths(name string) {
	b.t.Helper()
	b.shot(name+"-laptop", 1280)
	b.shot(name+"-phone", 390)
}

// instance is a trendstream run process with its HTTP address.
type instance struct {
	*child
	addr, token string
}

// get fetches path with the bearer token.
func (in *instance) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+in.addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+in.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// metric is one sample of the Prometheus text format.
type metric struct {
	name   string
	labels map[string]string
	value  float64
}

var sampleLine = regexp.MustCompile(`^(\w+)(?:\{(.*)\})? (\S+)$`)
var labelPair = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// metrics reads the instance's /metrics.
func (in *instance) metrics(t *testing.T) []metric {
	t.Helper()
	status, body := in.get(t, "/metrics")
	if status != 200 {
		t.Fatalf("/metrics: status %d", status)
	}
	var out []metric
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		m := sampleLine.FindStringSubmatch(sc.Text())
		if m == nil || !strings.HasPrefix(m[1], "trendstream_") {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", sc.Text(), err)
		}
		labels := map[string]string{}
		for _, l := range labelPair.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		out = append(out, metric{m[1], labels, v})
	}
	return out
}

// value returns the sum of a metric's samples whose labels include want.
func value(ms []metric, name string, want ...string) float64 {
	var sum float64
next:
	for _, m := range ms {
		if m.name != name {
			continue
		}
		for i := 0; i+1 < len(want); i += 2 {
			if m.labels[want[i]] != want[i+1] {
				continue next
			}
		}
		sum += m.value
	}
	return sum
}

// owned returns the partitions an instance's metrics report.
func owned(ms []metric) []int {
	var parts []int
	for _, m := range ms {
		if m.name == "trendstream_watermark_seconds" {
			p, _ := strconv.Atoi(m.labels["partition"])
			parts = append(parts, p)
		}
	}
	slices.Sort(parts)
	return parts
}

// consoleEvent is a sales event for the console test.
func consoleEvent(id, store, sku string, day int, qty float64) kafka.Message {
	ts := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC).AddDate(0, 0, day).Format(time.RFC3339)
	b, _ := json.Marshal(map[string]any{"event_id": id, "store": store, "sku": sku, "ts": ts, "qty": qty, "price": 2.5})
	return kafka.Message{Key: []byte(store + "/" + sku), Value: b}
}

func produceAll(t *testing.T, brokers []string, msgs []kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "sales", Balancer: &kafka.Murmur2Balancer{},
		BatchTimeout: time.Millisecond, BatchSize: 1000, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// Series with characters that must reach pages as text.
const (
	oddStore = `<script>alert(1)`
	oddSKU   = `"quoted" <img src=x onerror=alert(2)> ☃ ü`
)

// pageOverview is what the overview page shows, read from its data
// attributes.
type pageOverview struct {
	Consumed, Forecasts, Series, DeadLetters, Ready float64
	Owned                                           string
	Partitions                                      []struct{ P, Lag, Watermark, Series float64 }
	DLQ                                             map[string]float64
	ConsumedText                                    string
}

const readOverview = `(() => {
  const v = (s, root) => { const e = (root || document).querySelector(s); return e ? Number(e.dataset.value) : -1; };
  return {
    Consumed: v('[data-metric=consumed]'), Forecasts: v('#ov-figures [data-metric=forecasts]'),
    Series: v('#ov-figures [data-metric=series]'), DeadLetters: v('[data-metric=dead_letters]'), Ready: v('[data-metric=ready]'),
    Owned: document.querySelector('[data-metric=owned]').textContent,
    ConsumedText: document.querySelector('[data-metric=consumed]').textContent,
    Partitions: [...document.querySelectorAll('tr[data-partition]')].map(r => ({P: Number(r.dataset.partition),
      Lag: v('[data-metric=lag]', r), Watermark: v('[data-metric=watermark]', r), Series: v('[data-metric=series]', r)})),
    DLQ: Object.fromEntries([...document.querySelectorAll('[data-metric=dlq]')].map(e => [e.dataset.reason, Number(e.dataset.value)])),
  };
})()`

// TestConsoleBrowser drives the console in headless Chromium against two
// trendstream run processes sharing the partitions of an in-process
// broker: sign-in, the overview against /metrics, search, series pages
// against /v1/series, pages of series another instance serves, odd
// characters, and live updates.
func TestConsoleBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes and a browser")
	}
	b := newBrowser(t)
	started := time.Now()
	brokers := devCluster(t, 4)
	dir := t.TempDir()
	const token = "console-test-token-0123456789abcdef"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var insts []*instance
	addrs := []string{kafkatest.FreeAddr(t), kafkatest.FreeAddr(t)}
	for i, addr := range addrs {
		c := startChild(t, filepath.Join(dir, fmt.Sprintf("run%d.log", i)), "run", "--brokers", brokers[0],
			"--state-dir", filepath.Join(dir, fmt.Sprintf("state%d", i)), "--http-addr", addr, "--http-token-file", tokenFile,
			"--console-peers", "http://"+addrs[1-i],
			"--model", "auto", "--candidates", "ets,tsb,ma28", "--fallback", "ets", "--session-timeout", "2s", "--batch-wait", "10ms", "--max-past", "-1s", "--log-level", "warn")
		t.Cleanup(c.kill)
		insts = append(insts, &instance{child: c, addr: addr, token: token})
	}
	// Wait until the group has split the partitions, two each.
	for _, in := range insts {
		waitReady(t, in.child, in.addr)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		a, c := insts[0].metrics(t), insts[1].metrics(t)
		if value(a, "trendstream_ready") == 1 && value(c, "trendstream_ready") == 1 &&
			value(a, "trendstream_assigned_partitions") == 2 && value(c, "trendstream_assigned_partitions") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions not split within 60s\n%s", tail(insts[0].log, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	a := insts[0]
	var aParts []int
	ownerOf := func(id string) *instance {
		if slices.Contains(aParts, backtest.Partition([]byte(id), 4)) {
			return insts[0]
		}
		return insts[1]
	}

	// Ten days of sales for a dozen series, 200 SKUs of one store, the
	// odd series, a duplicate and malformed records.
	var msgs []kafka.Message
	n := 0
	next := func() string { n++; return fmt.Sprintf("e%d", n) }
	series := [][2]string{{oddStore, oddSKU}}
	for _, st := range []string{"S1", "S2"} {
		for _, sku := range []string{"A", "B", "C", "D", "E", "F"} {
			series = append(series, [2]string{st, sku})
		}
	}
	for day := range 10 {
		for i, s := range series {
			msgs = append(msgs, consoleEvent(next(), s[0], s[1], day, float64(3+(day*(i+2))%7)))
		}
	}
	for i := range 200 {
		msgs = append(msgs, consoleEvent(next(), "BULK", fmt.Sprintf("SKU-%04d", i), 9, 1))
	}
	msgs = append(msgs, msgs[0], kafka.Message{Key: []byte("S1/A"), Value: []byte(`{not json`)},
		kafka.Message{Key: []byte("S1/A"), Value: []byte(`{"event_id":"q","store":"S1","sku":"A","ts":"2024-03-05T00:00:00Z","qty":-1}`)})
	produceAll(t, brokers, msgs)
	waitConsumed := func(total int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for value(insts[0].metrics(t), "trendstream_records_consumed_total")+value(insts[1].metrics(t), "trendstream_records_consumed_total") < float64(total) {
			if time.Now().After(deadline) {
				t.Fatalf("events not consumed within 60s")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitConsumed(len(msgs))
	time.Sleep(500 * time.Millisecond) // the last batch's gauges
	// Every partition has events now, so each instance's metrics name the
	// partitions it serves.
	aParts = owned(a.metrics(t))
	if len(aParts) != 2 || len(owned(insts[1].metrics(t))) != 2 {
		t.Fatalf("instances serve %v and %v", aParts, owned(insts[1].metrics(t)))
	}

	t.Run("sign-in", func(t *testing.T) {
		b.t = t
		if status := b.open("http://" + a.addr + "/"); status != 401 {
			t.Errorf("page load without a session: status %d, want 401", status)
		}
		b.shot("signin-laptop", 1280)
		status := b.submit(`document.getElementById('token').value = 'not-the-token-at-all'; document.querySelector('form').submit()`)
		if status != 401 || !eval[bool](b, `!!document.getElementById('login-error')`) {
			t.Errorf("wrong token: status %d, error shown %v", status, eval[bool](b, `!!document.getElementById('login-error')`))
		}
		status = b.submit(fmt.Sprintf(`document.getElementById('token').value = %q; document.querySelector('form').submit()`, token))
		if status != 200 || eval[string](b, `document.querySelector('h1').textContent`) != "Overview" {
			t.Fatalf("right token: status %d, page %q", status, eval[string](b, `document.title`))
		}
		if eval[string](b, `document.cookie`) != "" {
			t.Error("the session cookie is readable from script")
		}
	})

	t.Run("overview matches metrics", func(t *testing.T) {
		b.t = t
		ms := a.metrics(t)
		consumed := value(ms, "trendstream_records_consumed_total")
		b.waitFor("the page to show the consumed count", fmt.Sprintf(`Number(document.querySelector('[data-metric=consumed]').dataset.value) === %v`, consumed), 10*time.Second)
		got := eval[pageOverview](b, readOverview)
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"consumed", got.Consumed, consumed},
			{"forecasts", got.Forecasts, value(ms, "trendstream_forecasts_published_total")},
			{"series", got.Series, value(ms, "trendstream_series")},
			{"dead letters", got.DeadLetters, value(ms, "trendstream_dlq_records_total")},
			{"ready", got.Ready, value(ms, "trendstream_ready")},
		} {
			if c.got != c.want {
				t.Errorf("%s: page %v, /metrics %v", c.name, c.got, c.want)
			}
		}
		if got.Forecasts == 0 || got.Series == 0 {
			t.Errorf("the page shows %v forecasts and %v series", got.Forecasts, got.Series)
		}
		if want := strings.ReplaceAll(got.ConsumedText, ",", ""); want != strconv.Itoa(int(consumed)) {
			t.Errorf("consumed shown as %q for %v", got.ConsumedText, consumed)
		}
		if want := fmt.Sprintf("%d and %d", aParts[0], aParts[1]); got.Owned != want {
			t.Errorf("owned partitions shown as %q, want %q", got.Owned, want)
		}
		var parts []int
		for _, p := range got.Partitions {
			parts = append(parts, int(p.P))
			l := []string{"partition", strconv.Itoa(int(p.P))}
			if p.Lag != value(ms, "trendstream_consumer_lag_records", l...) || p.Series != value(ms, "trendstream_series", l...) ||
				p.Watermark != math.Floor(value(ms, "trendstream_watermark_seconds", l...)) {
				t.Errorf("partition %v: page lag %v series %v watermark %v, /metrics %v %v %v", p.P, p.Lag, p.Series, p.Watermark,
					value(ms, "trendstream_consumer_lag_records", l...), value(ms, "trendstream_series", l...), value(ms, "trendstream_watermark_seconds", l...))
			}
		}
		if !slices.Equal(parts, aParts) {
			t.Errorf("partition rows %v, want %v", parts, aParts)
		}
		for _, m := range ms {
			if m.name == "trendstream_dlq_records_total" && m.value > 0 && got.DLQ[m.labels["reason"]] != m.value {
				t.Errorf("dead letters %s: page %v, /metrics %v", m.labels["reason"], got.DLQ[m.labels["reason"]], m.value)
			}
		}
		text := eval[string](b, `document.querySelector('#ov-instance').textContent`)
		if !strings.Contains(text, "of 4") || !strings.Contains(text, "consoles of the instances that serve them") {
			t.Errorf("the overview does not say it shows 2 of 4 partitions: %q", text)
		}
		if peers := eval[[]string](b, `[...document.querySelectorAll('#ov-instance a.peer')].map(a => a.href)`); !slices.Equal(peers, []string{"http://" + insts[1].addr + "/"}) {
			t.Errorf("the overview links the other consoles %q, want the other instance's", peers)
		}
		checkAccessible(t, b)
		b.bothWidths("overview")
	})

	t.Run("search and series page", func(t *testing.T) {
		b.t = t
		id := "S1/A"
		owner := ownerOf(id)
		b.open("http://" + owner.addr + "/")
		status := b.submit(`document.getElementById('find-store').value = 'S1'; document.getElementById('find-sku').value = 'A'; document.querySelector('form.find').submit()`)
		if loc := eval[string](b, `location.pathname`); status != 200 || loc != "/series/S1/A" {
			t.Fatalf("search for S1, A: status %d at %s", status, loc)
		}
		_, body := owner.get(t, "/v1/series/S1/A")
		var api stream.SeriesResponse
		if err := json.Unmarshal(body, &api); err != nil {
			t.Fatal(err)
		}
		var fc pipeline.ForecastRecord
		if err := json.Unmarshal(api.Forecast, &fc); err != nil {
			t.Fatalf("the API has no forecast for %s: %v", id, err)
		}
		type row struct {
			Start, State string
			Qty          float64
		}
		rows := eval[[]row](b, `[...document.querySelectorAll('tr[data-bucket]')].map(r => ({Start: r.dataset.bucket, State: r.dataset.state, Qty: Number(r.querySelector('[data-value]').dataset.value)}))`)
		var want []row
		for _, o := range api.Open {
			want = append(want, row{o.Start.UTC().Format(time.RFC3339), "open", o.Qty})
		}
		for i := len(api.Buckets) - 1; i >= max(0, len(api.Buckets)-28); i-- {
			want = append(want, row{api.Buckets[i].Start.UTC().Format(time.RFC3339), "closed", api.Buckets[i].Qty})
		}
		if !slices.Equal(rows, want) {
			t.Errorf("page buckets %v\nAPI buckets %v", rows, want)
		}
		steps := eval[[][]float64](b, `[...document.querySelectorAll('tr[data-step]')].map(r => [...r.querySelectorAll('[data-value]')].map(e => Number(e.dataset.value)))`)
		if len(steps) != len(fc.Steps) || len(fc.Steps) == 0 {
			t.Fatalf("page has %d forecast steps, the API %d", len(steps), len(fc.Steps))
		}
		for i, s := range fc.Steps {
			if w := []float64{s.Mean, s.P10, s.P50, s.P90}; !slices.Equal(steps[i], w) {
				t.Errorf("step %d: page %v, API %v", i, steps[i], w)
			}
		}
		// The band: a closed path with a point at p10 and one at p90 for
		// every step, inside the visible chart.
		band := eval[int](b, `(() => { const p = [...document.querySelectorAll('#s-chart svg')].find(s => s.getBoundingClientRect().width > 0).querySelector('path.band');
			return p ? p.getAttribute('d').split(/[ML]/).filter(Boolean).length : 0 })()`)
		if band != 2*len(fc.Steps) {
			t.Errorf("the visible chart's p10-p90 band has %d points, want %d", band, 2*len(fc.Steps))
		}
		if dir := eval[string](b, `document.querySelector('[data-metric=trend]').dataset.value`); dir != string(fc.Trend.Direction) {
			t.Errorf("trend %q, API %q", dir, fc.Trend.Direction)
		}
		checkAccessible(t, b)
		b.bothWidths("series")
	})

	t.Run("models and accuracy", func(t *testing.T) {
		b.t = t
		id := "S1/C"
		owner := ownerOf(id)
		b.open("http://" + owner.addr + seriesPathForTest(id))
		_, body := owner.get(t, "/v1/series/S1/C")
		var api stream.SeriesResponse
		if err := json.Unmarshal(body, &api); err != nil {
			t.Fatal(err)
		}
		var fc pipeline.ForecastRecord
		if err := json.Unmarshal(api.Forecast, &fc); err != nil || len(fc.Steps) != 28 {
			t.Fatalf("the API's forecast of %s: %v, %d steps", id, err, len(fc.Steps))
		}
		checkModels(t, b, api, fc)
		checkAccessible(t, b)
		b.bothWidths("series-models")
	})

	t.Run("long lists and odd names", func(t *testing.T) {
		b.t = t
		b.open("http://" + a.addr + "/series?store=BULK")
		if n := eval[int](b, `document.querySelectorAll('.results li').length`); n != 50 || !eval[bool](b, `!!document.getElementById('search-more')`) {
			t.Errorf("a store with 200 SKUs lists %d and no note on the rest", n)
		}
		b.shot("search-phone", 390)

		owner := ownerOf(oddStore + "/" + oddSKU)
		q := url.Values{"store": {oddStore}, "sku": {oddSKU}}
		if status := b.open("http://" + owner.addr + "/series?" + q.Encode()); status != 200 {
			t.Fatalf("odd series: status %d", status)
		}
		h1 := eval[string](b, `document.querySelector('h1').textContent`)
		if !strings.Contains(h1, oddStore) || !strings.Contains(h1, oddSKU) {
			t.Errorf("heading %q does not show the store and SKU as text", h1)
		}
		if n := eval[int](b, `document.querySelectorAll('script').length + document.querySelectorAll('img').length`); n != 1 || b.dialogs.Load() != 0 {
			t.Errorf("%d script and img elements (want live.js alone), %d dialogs", n, b.dialogs.Load())
		}
		b.shot("odd-series-laptop", 1280)

		// A series of B's partitions on A's console, and an unknown one
		// of A's partitions.
		var elsewhere, unknown string
		for _, s := range series[1:] {
			if ownerOf(s[0]+"/"+s[1]) != a {
				elsewhere = s[0] + "/" + s[1]
			}
		}
		for i := 0; unknown == ""; i++ {
			if id := fmt.Sprintf("S1/NOPE-%d", i); ownerOf(id) == a {
				unknown = id
			}
		}
		part := backtest.Partition([]byte(elsewhere), 4)
		if status := b.open("http://" + a.addr + "/series/" + elsewhere); status != 404 ||
			!strings.Contains(eval[string](b, `document.getElementById('message').textContent`), fmt.Sprintf("partition %d, which the instance at http://%s serves", part, insts[1].addr)) {
			t.Errorf("%s on the other instance's console: status %d, %q", elsewhere, status, eval[string](b, `document.body.innerText`))
		}
		b.shot("elsewhere-laptop", 1280)
		// Its link leads to the page on the instance that serves it, where
		// the session of this one holds (same token, same host name).
		if status := b.submit(`document.getElementById('owner-link').click()`); status != 200 ||
			eval[string](b, `location.host + location.pathname`) != insts[1].addr+seriesPathForTest(elsewhere) || !eval[bool](b, `!!document.getElementById('s-chart')`) {
			t.Errorf("following the link: status %d at %s", status, eval[string](b, `location.href`))
		}
		if status := b.open("http://" + a.addr + "/series/" + unknown); status != 404 || eval[string](b, `document.querySelector('h1').textContent`) != "No such series here" {
			t.Errorf("unknown %s: status %d, %q", unknown, status, eval[string](b, `document.body.innerText`))
		}
	})

	t.Run("live updates", func(t *testing.T) {
		b.t = t
		id := "S2/B"
		owner := ownerOf(id)
		b.open("http://" + owner.addr + "/")
		b.waitFor("the live stream", `document.getElementById('live-status').textContent.startsWith('Live')`, 10*time.Second)
		eval[chromedp.Void](b, `window.marker = 1`)
		top := eval[float64](b, `document.getElementById('ov-partitions').getBoundingClientRect().top`)
		before := eval[float64](b, `Number(document.querySelector('#ov-figures [data-metric=forecasts]').dataset.value)`)
		consumed := value(insts[0].metrics(t), "trendstream_records_consumed_total") + value(insts[1].metrics(t), "trendstream_records_consumed_total")
		// Day 11 closes day 10 of every series of the owner's partition.
		produceAll(t, brokers, []kafka.Message{consoleEvent("live-1", "S2", "B", 11, 5)})
		waitConsumed(int(consumed) + 1)
		b.waitFor("new forecasts on the page", fmt.Sprintf(`Number(document.querySelector('#ov-figures [data-metric=forecasts]').dataset.value) > %v`, before), 15*time.Second)
		if !eval[bool](b, `window.marker === 1 && Number(document.body.dataset.updates) > 0`) {
			t.Error("the page was reloaded instead of updated")
		}
		if after := eval[float64](b, `document.getElementById('ov-partitions').getBoundingClientRect().top`); after != top {
			t.Errorf("the partitions table moved from %v to %v", top, after)
		}

		b.open("http://" + owner.addr + seriesPathForTest(id))
		b.waitFor("the live stream", `document.getElementById('live-status').textContent.startsWith('Live')`, 10*time.Second)
		eval[chromedp.Void](b, `window.marker = 1; document.getElementById('s-data').open = true`)
		open := eval[float64](b, `Number(document.querySelector('[data-metric=open_total]').dataset.value)`)
		// At phone width, where the figures wrap, nothing below them may
		// move when they change.
		if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(390, 844)); err != nil {
			t.Fatal(err)
		}
		const tops = `['s-chart', 's-forecast', 's-models', 's-accuracy'].map(id => document.getElementById(id)?.getBoundingClientRect().top ?? -1)`
		placed := eval[[]float64](b, tops)
		produceAll(t, brokers, []kafka.Message{consoleEvent("live-2", "S2", "B", 11, 7)})
		b.waitFor("the open bucket to grow", fmt.Sprintf(`Number(document.querySelector('[data-metric=open_total]').dataset.value) === %v`, open+7), 15*time.Second)
		if !eval[bool](b, `window.marker === 1 && document.getElementById('s-data').open`) {
			t.Error("the series page was reloaded, or its open data tables closed")
		}
		if moved := eval[[]float64](b, tops); !slices.Equal(moved, placed) || placed[2] < 0 {
			t.Errorf("the chart, forecast, models and accuracy sections at phone width were at %v, then at %v", placed, moved)
		}
		if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("backtest report", func(t *testing.T) {
		b.t = t
		report := filepath.Join(t.TempDir(), "report.html")
		execute(t, "backtest", "--m5", tinyM5(t), "--html", report, "--quiet", "--rolling", "10", "--model", "tsb", "--models", "naive,ma28")
		b.open("file://" + report)
		if n := eval[int](b, `[...document.querySelectorAll('svg')].filter(s => s.getBoundingClientRect().width > 0).length`); n < 3 {
			t.Errorf("%d charts visible in the report", n)
		}
		fitsPhone(t, b)
		b.bothWidths("report")
	})
	t.Logf("browser test took %v", time.Since(started).Round(time.Millisecond))
}

// seriesPathForTest is the console path of series id.
func seriesPathForTest(id string) string {
	store, sku, _ := strings.Cut(id, "/")
	return "/series/" + url.PathEscape(store) + "/" + url.PathEscape(sku)
}

// checkAccessible checks what a screen reader and a keyboard user need:
// a language, one h1, a label for every field, named charts, and no
// horizontal scrolling at phone width.
func checkAccessible(t *testing.T, b *browser) {
	t.Helper()
	problems := eval[[]string](b, `(() => {
		const p = [];
		if (!document.documentElement.lang) p.push('no lang');
		if (document.querySelectorAll('h1').length !== 1) p.push(document.querySelectorAll('h1').length + ' h1');
		for (const i of document.querySelectorAll('input:not([type=hidden])')) if (!i.labels.length) p.push('unlabelled input ' + i.name);
		for (const s of document.querySelectorAll('svg')) {
			const ids = (s.getAttribute('aria-labelledby') || '').split(' ').filter(Boolean);
			if (s.getAttribute('role') !== 'img' || !ids.length || ids.some(id => !document.getElementById(id))) p.push('unnamed chart');
		}
		for (const th of document.querySelectorAll('th')) if (!th.getAttribute('scope')) p.push('th without scope');
		return p;
	})()`)
	if len(problems) > 0 {
		t.Errorf("accessibility: %v", problems)
	}
	fitsPhone(t, b)
}

// fitsPhone checks that the page needs no horizontal scrolling at phone
// width (wide tables scroll inside their own box).
func fitsPhone(t *testing.T, b *browser) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if w := eval[float64](b, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the page is %vpx wide at a 390px viewport", w)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatal(err)
	}
}

// pageModels is what a series page's Models and Accuracy tables show, read
// from their data attributes.
type pageModels struct {
	Steps  []string
	Models []struct {
		Model     string
		Published bool
		Cells     []float64
		Total     float64
		Band      string
	}
	Accuracy []struct {
		Model  string
		Values []float64
		Band   bool
	}
}

const readModels = `(() => ({
  Steps: [...document.querySelectorAll('#s-models th[data-step]')].map(e => e.dataset.step),
  Models: [...document.querySelectorAll('#s-models tr[data-model]')].map(r => ({Model: r.dataset.model, Published: r.dataset.published === 'true',
    Cells: [...r.querySelectorAll('td[data-value]')].map(e => Number(e.dataset.value)),
    Total: Number(r.querySelector('td[data-total]')?.dataset.total ?? -1), Band: r.querySelector('[data-band]')?.dataset.band ?? ''})),
  Accuracy: [...document.querySelectorAll('#s-accuracy tr[data-model]')].map(r => ({Model: r.dataset.model,
    Values: [...r.querySelectorAll('td[data-value]')].map(e => e.dataset.value === 'NaN' ? -1 : Number(e.dataset.value)),
    Band: r.textContent.includes('band published')})),
}))()`

// checkModels checks a series page's Models and Accuracy sections against
// the candidates' forecasts and errors computed here from the API's
// buckets: the run publishes auto over ets, tsb and ma28 with a 28-bucket
// horizon, so auto keeps and scores its candidates' forecasts 1, 7, 14,
// 21 and 28 buckets ahead, and every close made each candidate's forecast
// from the buckets closed by then.
func checkModels(t *testing.T, b *browser, api stream.SeriesResponse, fc pipeline.ForecastRecord) {
	t.Helper()
	got := eval[pageModels](b, readModels)
	cfg := model.Config{Horizon: 28}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	spec, err := window.NewSpec(window.Day, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	n := len(api.Buckets)
	// forecast returns a candidate's forecast made at the close of the
	// k-th bucket kept (from 0).
	forecast := func(name string, k int) *model.Forecast {
		f, err := model.New(name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		in := model.Input{Start: spec.Index(api.Buckets[0].Start), Period: 7}
		for _, bk := range api.Buckets[:k+1] {
			in.Y = append(in.Y, bk.Qty)
		}
		dst := model.NewForecast(cfg)
		f.Forecast(dst, &in)
		return dst
	}
	horizons := []int{1, 7, 14, 21, 28}
	// rmse is a candidate's root mean squared error at h steps ahead, NaN
	// before any score, and the number of scores.
	rmse := func(name string, h int) (float64, int) {
		if n <= h {
			return math.NaN(), 0
		}
		var sum float64
		for k := h; k < n; k++ {
			d := api.Buckets[k].Qty - float64(float32(forecast(name, k-h).Mean[h-1])) // auto keeps float32 means
			sum += d * d
		}
		return math.Sqrt(sum / float64(n-h)), n - h
	}
	near := func(a, b float64) bool {
		if math.IsNaN(b) {
			return a == -1 // the page's NaN
		}
		return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b))
	}
	var steps []string
	var pubMeans []float64
	for _, st := range fc.Steps {
		steps = append(steps, st.Start.UTC().Format(time.RFC3339))
		pubMeans = append(pubMeans, st.Mean)
	}
	if want := atSteps(steps, horizons); !slices.Equal(got.Steps, want) {
		t.Errorf("models table steps %v, want %v ahead: %v", got.Steps, horizons, want)
	}
	names := []string{"ets", "tsb", "ma28"}
	if len(got.Models) != 4 || !got.Models[0].Published || got.Models[0].Model != "auto" {
		t.Fatalf("models table rows %+v, want the published auto then %v", got.Models, names)
	}
	if pub := got.Models[0]; !slices.Equal(pub.Cells, atSteps(pubMeans, horizons)) {
		t.Errorf("published row %v, the API's steps %v ahead: %v", pub.Cells, horizons, atSteps(pubMeans, horizons))
	}
	for i, name := range names {
		row := got.Models[i+1]
		f := forecast(name, n-1)
		total := 0.0
		for _, m := range f.Mean[:7] {
			total += m
		}
		band := fmt.Sprintf("%v %v", f.Quantile(0, 0), f.Quantile(0, 2))
		means := atSteps(f.Mean, horizons)
		for i, m := range means {
			means[i] = float64(float32(m))
		}
		if row.Model != name || !slices.Equal(row.Cells, means) || !near(row.Total, total) || row.Band != band {
			t.Errorf("%s row: %s %v total %v band %q; computed %v total %v band %q", name, row.Model, row.Cells, row.Total, row.Band,
				means, total, band)
		}
	}
	if len(got.Accuracy) != 3 {
		t.Fatalf("accuracy rows %+v, want %v", got.Accuracy, names)
	}
	for i, name := range names {
		a := got.Accuracy[i]
		r1, scored := rmse(name, 1)
		var mse float64
		for _, h := range horizons {
			r, k := rmse(name, h)
			mse += r * r
			scored = min(scored, k)
		}
		all := math.Sqrt(mse / float64(len(horizons)))
		weight := 0.0
		if name == "ets" { // the fallback, alone until the candidates are scored 14 times at each step
			weight = 1
		}
		if a.Model != name || len(a.Values) != 5 || !near(a.Values[0], all) || !near(a.Values[1], r1) ||
			a.Values[3] != float64(scored) || a.Values[4] != weight || a.Band != (name == "ets") {
			t.Errorf("%s accuracy: %s %v band %v; computed RMSE %v, next %v, %d scored, weight %v", name, a.Model, a.Values, a.Band,
				all, r1, scored, weight)
		}
	}
}

// atSteps returns the elements of s at the 1-based steps hs.
func atSteps[T any](s []T, hs []int) []T {
	var out []T
	for _, h := range hs {
		out = append(out, s[h-1])
	}
	return out
}
