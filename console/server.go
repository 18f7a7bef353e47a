package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Server. Zero fields take their defaults.
type Config struct {
	// Backend supplies the data. Required.
	Backend Backend
	// Interval is how often the overview is sampled and pushed to open
	// overview pages. The default is 1s.
	Interval time.Duration
	// RateWindow is the span over which events per second are measured.
	// The default is 5s.
	RateWindow time.Duration
	// SeriesInterval is how often an open series page's series is looked
	// up, to push it when it has changed. The default is 2s.
	SeriesInterval time.Duration
	// MaxStreams bounds the open live-update streams; more are refused
	// with 503. The default is 256.
	MaxStreams int
	// SearchLimit is the most series a search lists. The default is 50.
	SearchLimit int
	// SignOut shows a sign-out button, for consoles behind a Guard.
	SignOut bool
	// Logger receives errors from the backend. The default discards them.
	Logger *slog.Logger
}

// maxIDBytes bounds store and SKU in requests, as the processor bounds
// them in events.
const maxIDBytes = 256

// Server serves the console's pages, assets and live-update streams. Its
// methods are safe for concurrent use.
type Server struct {
	cfg Config

	// latest is the last sampled overview, rendered; nil before the first
	// sample.
	latest atomic.Pointer[snapshot]
	// streams counts open live-update streams.
	streams atomic.Int64
	// stopped is closed when Run returns, ending every stream.
	stopped chan struct{}

	mu   sync.Mutex
	subs map[chan *snapshot]struct{}
}

// snapshot is one overview sample and its live fragment.
type snapshot struct {
	view     *overviewView
	fragment []byte
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("console: Config.Backend is required")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"Interval", &cfg.Interval, time.Second}, {"RateWindow", &cfg.RateWindow, 5 * time.Second}, {"SeriesInterval", &cfg.SeriesInterval, 2 * time.Second}} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0:
			return nil, fmt.Errorf("console: Config.%s %v is negative", d.name, *d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    *int
		def  int
	}{{"MaxStreams", &cfg.MaxStreams, 256}, {"SearchLimit", &cfg.SearchLimit, 50}} {
		switch {
		case *n.v == 0:
			*n.v = n.def
		case *n.v < 0:
			return nil, fmt.Errorf("console: Config.%s %d is negative", n.name, *n.v)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, stopped: make(chan struct{}), subs: map[chan *snapshot]struct{}{}}, nil
}

// Register adds the console's routes to mux: the overview at /, series
// search at /series, series pages at /series/{store}/{sku}, and under
// /console/ the live-update streams and the assets. Register them next to
// an API mounted at "/": these patterns are more specific and win.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", s.serveOverview)
	mux.HandleFunc("GET /series", s.serveSearch)
	mux.HandleFunc("GET /series/{store}/{sku}", s.serveSeries)
	mux.HandleFunc("GET /console/events", s.serveOverviewEvents)
	mux.HandleFunc("GET /console/events/series/{store}/{sku}", s.serveSeriesEvents)
	mux.Handle("GET /console/static/", StaticHandler())
}

// StaticHandler serves the console's style sheet and script under
// /console/static/. They hold no data, so a Guard leaves them open for the
// sign-in page.
func StaticHandler() http.Handler {
	files := http.StripPrefix("/console/static/", http.FileServerFS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/console/static/")
		if _, ok := assetVersion[name]; !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("v") == assetVersion[name] {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

// Run samples the overview every Interval and pushes it to the open
// overview pages until ctx ends; then it ends every live-update stream and
// returns. Pages are served without Run too, sampled on request.
func (s *Server) Run(ctx context.Context) {
	defer close(s.stopped)
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	var window []sample
	for {
		window = s.sampleInto(ctx, window)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sample is one reading of the consumed counter.
type sample struct {
	at       time.Time
	consumed float64
}

// sampleInto reads the overview, computes the event rate over the samples
// in window (returned with the new one added and old ones dropped) and
// publishes the result.
func (s *Server) sampleInto(ctx context.Context, window []sample) []sample {
	now := time.Now()
	ov, err := s.cfg.Backend.Overview(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Logger.Warn("console: reading the overview", "err", err)
		}
		s.publish(errorOverview(err, now))
		return window
	}
	if n := len(window); n > 0 && ov.Consumed < window[n-1].consumed {
		window = window[:0] // the counter restarted
	}
	window = append(window, sample{now, ov.Consumed})
	for len(window) > 2 && now.Sub(window[1].at) >= s.cfg.RateWindow {
		window = window[1:]
	}
	var rate float64
	first := window[0]
	has := len(window) > 1 && now.Sub(first.at) > 0
	if has {
		rate = (ov.Consumed - first.consumed) / now.Sub(first.at).Seconds()
	}
	s.publish(newOverviewView(ov, now, rate, has))
	return window
}

func errorOverview(err error, now time.Time) *overviewView {
	v := newOverviewView(&Overview{Instance: "this instance"}, now, 0, false)
	v.Err = err.Error()
	return v
}

// publish renders v and hands it to every open overview stream whose page
// shows something else.
func (s *Server) publish(v *overviewView) {
	var b bytes.Buffer
	if err := render(&b, "overview", "overview-live", v); err != nil {
		s.cfg.Logger.Error("console: rendering the overview", "err", err)
		return
	}
	snap := &snapshot{view: v, fragment: b.Bytes()}
	s.latest.Store(snap)
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		// Each subscriber holds at most the newest snapshot: a slow
		// reader skips the ones it missed.
		select {
		case <-ch:
		default:
		}
		ch <- snap
	}
}

func (s *Server) subscribe() chan *snapshot {
	ch := make(chan *snapshot, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch
}

func (s *Server) unsubscribe(ch chan *snapshot) {
	s.mu.Lock()
	delete(s.subs, ch)
	s.mu.Unlock()
}

// current returns the latest overview, sampling one when Run has not
// lately.
func (s *Server) current(ctx context.Context) *snapshot {
	if snap := s.latest.Load(); snap != nil && time.Since(snap.view.At) < 2*s.cfg.Interval {
		return snap
	}
	s.sampleInto(ctx, nil)
	return s.latest.Load()
}

// setHeaders sets the security headers of every console page: no inline
// script or style, no framing, no referrer leaking series names to other
// sites.
func setHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin") // no-referrer would make form posts send "Origin: null"
	h.Set("Cache-Control", "no-store")
}

func (s *Server) page(w http.ResponseWriter, status int, name string, p page) {
	setHeaders(w)
	p.SignOut = s.cfg.SignOut
	var b bytes.Buffer
	if err := render(&b, name, "page", p); err != nil {
		s.cfg.Logger.Error("console: rendering a page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// message is the data of the message page.
type message struct {
	Heading string
	Lines   []string
	// Link, when set, is a link below the lines.
	Link *link
}

type link struct{ Text, URL string }

func (s *Server) message(w http.ResponseWriter, status int, store, sku, heading string, lines ...string) {
	s.linkMessage(w, status, store, sku, heading, nil, lines...)
}

func (s *Server) linkMessage(w http.ResponseWriter, status int, store, sku, heading string, l *link, lines ...string) {
	s.page(w, status, "message", page{Title: heading, Store: store, SKU: sku, Data: message{heading, lines, l}})
}

func (s *Server) serveOverview(w http.ResponseWriter, r *http.Request) {
	snap := s.current(r.Context())
	s.page(w, http.StatusOK, "overview", page{Title: "Overview", Live: "/console/events", Data: snap.view})
}

// checkID returns a message for people when a store or SKU from a request
// cannot name a series, or "".
func checkID(what, v string) string {
	switch {
	case len(v) > maxIDBytes:
		return fmt.Sprintf("The %s is %d bytes long; a %s has at most %d.", what, len(v), what, maxIDBytes)
	case strings.Contains(v, "/"):
		return fmt.Sprintf("A %s cannot contain “/”: series are named STORE/SKU.", what)
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Sprintf("The %s contains control characters, which no %s has.", what, what)
	}
	return ""
}

// searchView is the data of the search page.
type searchView struct {
	Summary string
	Refs    []SeriesRef
	More    bool
}

func (s *Server) serveSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	store, sku := strings.TrimSpace(q.Get("store")), strings.TrimSpace(q.Get("sku"))
	shown := func(v string) string { return v[:min(len(v), 2*maxIDBytes)] }
	for _, c := range []struct{ what, v string }{{"store", store}, {"SKU", sku}} {
		if msg := checkID(c.what, c.v); msg != "" {
			s.message(w, http.StatusBadRequest, shown(store), shown(sku), "Cannot search for that", msg)
			return
		}
	}
	if store == "" && sku == "" {
		s.message(w, http.StatusBadRequest, "", "", "Find a series", "Give a store, the start of a SKU, or both.")
		return
	}
	refs, more, err := s.cfg.Backend.Search(r.Context(), store, sku, s.cfg.SearchLimit)
	if err != nil {
		s.cfg.Logger.Error("console: searching", "err", err)
		s.message(w, http.StatusInternalServerError, store, sku, "Search failed", "The state store could not be searched; the log has the details.")
		return
	}
	for _, ref := range refs {
		if store != "" && ref.Store == store && ref.SKU == sku {
			http.Redirect(w, r, seriesPath(store, sku), http.StatusSeeOther)
			return
		}
	}
	v := searchView{Refs: refs, More: more}
	what := describeQuery(store, sku)
	switch {
	case len(refs) == 0:
		v.Summary = "No series with " + what + " is known to this instance."
	case more:
		v.Summary = fmt.Sprintf("The first %d series with %s:", len(refs), what)
	case len(refs) == 1:
		v.Summary = "One series with " + what + ":"
	default:
		v.Summary = fmt.Sprintf("%d series with %s:", len(refs), what)
	}
	s.page(w, http.StatusOK, "search", page{Title: "Find a series", Store: store, SKU: sku, Data: v})
}

func describeQuery(store, sku string) string {
	switch {
	case store == "":
		return fmt.Sprintf("a SKU starting with “%s”", sku)
	case sku == "":
		return fmt.Sprintf("store “%s”", store)
	}
	return fmt.Sprintf("store “%s” and a SKU starting with “%s”", store, sku)
}

// lookup finds a series for a page or stream, or writes the page saying
// why it cannot be shown and returns nil.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (*Series, bool) {
	store, sku := r.PathValue("store"), r.PathValue("sku")
	for _, c := range []struct{ what, v string }{{"store", store}, {"SKU", sku}} {
		if msg := checkID(c.what, c.v); msg != "" {
			s.message(w, http.StatusBadRequest, "", "", "Not a series name", msg)
			return nil, false
		}
	}
	ser, err := s.cfg.Backend.Series(r.Context(), store, sku)
	var notOwned *NotOwnedError
	switch {
	case errors.As(err, &notOwned) && notOwned.Owner != "":
		s.linkMessage(w, http.StatusNotFound, store, sku, "Served by another instance",
			&link{Text: "Open it on " + notOwned.Owner, URL: strings.TrimSuffix(notOwned.Owner, "/") + seriesPath(store, sku)},
			fmt.Sprintf("Store %s, SKU %s is in partition %d, which the instance at %s serves.", store, sku, notOwned.Partition, notOwned.Owner),
			fmt.Sprintf("This instance serves partitions %s.", partitionList(notOwned.Owned)))
		return nil, false
	case errors.As(err, &notOwned):
		s.message(w, http.StatusNotFound, store, sku, "Served by another instance",
			fmt.Sprintf("Store %s, SKU %s is in partition %d, which another instance of the group serves.", store, sku, notOwned.Partition),
			fmt.Sprintf("This instance serves partitions %s. Open the console of the instance that serves partition %d to see this series.", partitionList(notOwned.Owned), notOwned.Partition))
		return nil, false
	case errors.Is(err, ErrNotFound):
		s.message(w, http.StatusNotFound, store, sku, "No such series here",
			fmt.Sprintf("This instance holds no series for store %s, SKU %s.", store, sku),
			"Check the spelling (store and SKU are case-sensitive), or search by store to list its SKUs.")
		return nil, false
	case err != nil:
		s.cfg.Logger.Error("console: reading a series", "store", store, "sku", sku, "err", err)
		s.message(w, http.StatusInternalServerError, store, sku, "Cannot show this series", "Its state could not be read; the log has the details.")
		return nil, false
	}
	return ser, true
}

func (s *Server) serveSeries(w http.ResponseWriter, r *http.Request) {
	ser, ok := s.lookup(w, r)
	if !ok {
		return
	}
	live := "/console/events" + seriesPath(ser.Store, ser.SKU)
	s.page(w, http.StatusOK, "series", page{Title: ser.Store + " / " + ser.SKU, Live: live, Store: ser.Store, SKU: ser.SKU, Data: newSeriesView(ser)})
}

// stream starts a server-sent-events response, or refuses it when too
// many are open. The returned function ends it.
func (s *Server) stream(w http.ResponseWriter) (*http.ResponseController, func(), bool) {
	if s.streams.Add(1) > int64(s.cfg.MaxStreams) {
		s.streams.Add(-1)
		http.Error(w, "too many live pages open; reload later", http.StatusServiceUnavailable)
		return nil, nil, false
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// A stream outlives the server's write timeout; each event gets its own
	// deadline instead (see writeEvent).
	rc.SetWriteDeadline(time.Time{})
	fmt.Fprint(w, "retry: 3000\n\n")
	rc.Flush()
	return rc, func() { s.streams.Add(-1) }, true
}

// eventWriteTimeout bounds the time a live stream may take to take one
// event: a reader that stops reading is dropped.
const eventWriteTimeout = 10 * time.Second

// writeEvent writes one server-sent event whose data is an HTML fragment.
func writeEvent(w http.ResponseWriter, rc *http.ResponseController, name string, data []byte) error {
	var b bytes.Buffer
	b.WriteString("event: " + name + "\n")
	for line := range bytes.Lines(data) {
		b.WriteString("data: ")
		b.Write(bytes.TrimRight(line, "\r\n"))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
	if _, err := w.Write(b.Bytes()); err != nil {
		return err
	}
	return rc.Flush()
}

// writeBeat writes a heartbeat comment to a live stream.
func writeBeat(w http.ResponseWriter, rc *http.ResponseController) error {
	rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
	if _, err := fmt.Fprint(w, ": beat\n\n"); err != nil {
		return err
	}
	return rc.Flush()
}

// heartbeat is how often an idle stream sends a comment, so proxies keep
// it open.
const heartbeat = 15 * time.Second

func (s *Server) serveOverviewEvents(w http.ResponseWriter, r *http.Request) {
	rc, done, ok := s.stream(w)
	if !ok {
		return
	}
	defer done()
	ch := s.subscribe()
	defer s.unsubscribe(ch)
	var last []byte
	send := func(snap *snapshot) error {
		if bytes.Equal(snap.fragment, last) {
			return nil
		}
		last = snap.fragment
		return writeEvent(w, rc, "update", snap.fragment)
	}
	if err := send(s.current(r.Context())); err != nil {
		return
	}
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.stopped:
			writeEvent(w, rc, "gone", []byte("The instance is shutting down; live updates stopped."))
			return
		case snap := <-ch:
			if send(snap) != nil {
				return
			}
		case <-beat.C:
			if writeBeat(w, rc) != nil {
				return
			}
		}
	}
}

func (s *Server) serveSeriesEvents(w http.ResponseWriter, r *http.Request) {
	store, sku := r.PathValue("store"), r.PathValue("sku")
	if checkID("store", store) != "" || checkID("SKU", sku) != "" {
		http.Error(w, "not a series name", http.StatusBadRequest)
		return
	}
	rc, done, ok := s.stream(w)
	if !ok {
		return
	}
	defer done()
	tick := time.NewTicker(s.cfg.SeriesInterval)
	defer tick.Stop()
	var last []byte
	idle := 0
	for {
		ser, err := s.cfg.Backend.Series(r.Context(), store, sku)
		switch {
		case err != nil && r.Context().Err() != nil:
			return
		case err != nil:
			// The partition moved away or the state is gone: the page
			// says so on reload.
			writeEvent(w, rc, "gone", []byte("This series is no longer served here. Reload the page to see why."))
			return
		}
		var b bytes.Buffer
		if err := render(&b, "series", "series-live", newSeriesView(ser)); err != nil {
			s.cfg.Logger.Error("console: rendering a series", "err", err)
			return
		}
		switch {
		case !bytes.Equal(b.Bytes(), last):
			last = b.Bytes()
			idle = 0
			if writeEvent(w, rc, "update", last) != nil {
				return
			}
		case time.Duration(idle)*s.cfg.SeriesInterval >= heartbeat:
			idle = 0
			if writeBeat(w, rc) != nil {
				return
			}
		default:
			idle++
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.stopped:
			writeEvent(w, rc, "gone", []byte("The instance is shutting down; live updates stopped."))
			return
		case <-tick.C:
		}
	}
}
