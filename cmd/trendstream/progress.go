package main

import (
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress reports a long job's advance: a progress bar on a terminal,
// periodic log lines otherwise, nothing with --quiet.
type progress struct {
	bar   *progressbar.ProgressBar
	log   *slog.Logger
	what  string
	total int64
	start time.Time
	next  time.Time
}

// newProgress starts reporting a job of total units (-1 when unknown).
func newProgress(log *slog.Logger, what, unit string, total int64, quiet bool) *progress {
	p := &progress{what: what, total: total, start: time.Now()}
	switch {
	case quiet:
	case term.IsTerminal(int(os.Stderr.Fd())):
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(unit),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionShowElapsedTimeOnFinish(),
		)
	default:
		p.log = log
		p.next = p.start.Add(5 * time.Second)
	}
	return p
}

// set reports that done units are finished; detail adds context to the log
// lines, such as the event time reached.
func (p *progress) set(done int64, detail ...any) {
	switch {
	case p.bar != nil:
		p.bar.Set64(done)
	case p.log != nil && time.Now().After(p.next):
		p.next = time.Now().Add(5 * time.Second)
		elapsed := time.Since(p.start).Seconds()
		args := append([]any{"done", done, "per_second", int(float64(done) / elapsed)}, detail...)
		if p.total > 0 && done > 0 {
			args = append(args, "total", p.total, "eta", (time.Duration(elapsed*float64(p.total-done)/float64(done)) * time.Second).Round(time.Second))
		}
		p.log.Info(p.what, args...)
	}
}

// finish ends the report.
func (p *progress) finish(done int64) {
	if p.bar != nil {
		p.bar.Set64(done)
		p.bar.Finish()
		os.Stderr.WriteString("\n")
	}
}
