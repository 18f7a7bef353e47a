package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// runConfig is what run mode needs.
type runConfig struct {
	brokers, topic string
	bin            string        // trendstream binary
	stateDir       string        // fresh state directory
	extra          string        // further flags for trendstream run
	profile        string        // directory for profiles; "" takes none
	breakdown      bool          // read the run's topics by key kind afterwards
	trim           time.Duration // how often to trim the run's topics; 0 never
	keep           bool          // keep the run's topics
	timeout        time.Duration
	brokerPID      int // the broker's process, to report its CPU time; 0 for none
}

// metricsClient reads trendstream's metrics. Without compression: gzip
// was half of what serving the page cost the process.
var metricsClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// run starts trendstream run and waits until its metrics show every record
// consumed and committed. It then prints one line of key=value fields:
//
//   - records, seconds (from readiness to the last commit), per_second,
//     startup_seconds, peak_rss_mib (VmHWM), peak_anon_mib (the largest
//     RssAnon seen while polling: the RSS without file pages, which
//     include the Badger tables and logs the process maps) and
//     file_rss_mib (RssFile at the end), cpu_seconds (user and
//     system time of the process while processing), and broker_cpu_seconds,
//     the broker's in the same time, when its process id is known;
//   - from trendstream's metrics: closes (bucket closes of a partition),
//     forecasts, batches, and the summed seconds of the bucket_close,
//     batch_commit, output_write and train histograms (close_s counts the
//     whole batch that closed buckets: its records too);
//   - Kafka: out_bytes, changelog_bytes and dlq_bytes, the bytes the broker
//     stores for the run's own forecast, changelog and dead-letter topics
//     (RecordBatch wire sizes, see admin), and their record counts;
//   - Badger: disk_write_bytes, the bytes the process caused to be written
//     to disk (/proc/PID/io write_bytes, page granularity: Badger's
//     memtable WAL, its L0 flushes, compactions and value log; trendstream
//     writes no other files), and state_{sst,vlog,mem,other}_bytes, the
//     blocks the state directory's files occupy at the end.
//
// With a profile directory it saves CPU profiles of the whole processing
// and heap profiles (see runConfig); with breakdown it reads the run's
// changelog and forecast topics and prints their bytes by state key kind.
// The run's topics are deleted afterwards unless keep is set, so that the
// in-memory broker does not grow from run to run.
func run(ctx context.Context, rc *runConfig) error {
	_, total, err := endOffsets(ctx, rc.brokers, rc.topic)
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	// A group and topics of its own per run: a changelog left by an
	// earlier run would otherwise hand the new state directory the
	// finished state, and each run's output bytes are counted alone.
	group := fmt.Sprintf("ingestbench-%d", time.Now().UnixNano())
	outTopic, dlqTopic, clTopic := group+".forecasts", group+".dlq", group+".changelog"
	topics := []string{outTopic, clTopic, dlqTopic}
	args := []string{"run", "--brokers", rc.brokers, "--input-topic", rc.topic, "--state-dir", rc.stateDir,
		"--group", group, "--output-topic", outTopic, "--dlq-topic", dlqTopic,
		"--http-addr", addr, "--max-future", "-1s", "--max-past", "-1s", "--log-level", "warn"}
	pprofAddr := ""
	if rc.profile != "" {
		if err := os.MkdirAll(rc.profile, 0o755); err != nil {
			return err
		}
		if pprofAddr, err = freeAddr(); err != nil {
			return err
		}
		args = append(args, "--pprof-addr", pprofAddr)
	}
	args = append(args, strings.Fields(rc.extra)...)

	adm, err := newAdmin(rc.brokers)
	if err != nil {
		return err
	}
	defer adm.close()
	var trim *trimmer
	if rc.trim > 0 && !rc.breakdown {
		trim = newTrimmer(adm, topics...)
	}
	if !rc.keep {
		defer func() {
			if err := adm.deleteTopics(context.Background(), topics...); err != nil {
				fmt.Fprintln(os.Stderr, "ingestbench:", err)
			}
		}()
	}

	cmd := exec.Command(rc.bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Signal(syscall.SIGTERM)
			<-exited
		}
	}()
	base := "http://" + addr
	// The clock starts when every partition has loaded its state and
	// starts fetching (readyz), as the bare consumer's starts before its
	// readers connect.
	var first time.Time
	for first.IsZero() {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				first = time.Now()
			}
		}
		if time.Since(began) > time.Minute {
			return fmt.Errorf("trendstream not ready after a minute")
		}
		if err := exitedEarly(exited); err != nil {
			stopped = true
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	cpu0, bcpu0 := cpuSeconds(pid), cpuSeconds(rc.brokerPID)
	var prof *profiler
	if rc.profile != "" {
		prof = startProfiler("http://"+pprofAddr, rc.profile)
	}
	lastTrim := time.Now()
	var peakAnon float64
	for {
		peakAnon = max(peakAnon, procField(pid, "status", "RssAnon")/1024)
		if scrape(base)["trendstream_committed_offset"] >= float64(total) {
			break
		}
		if err := exitedEarly(exited); err != nil {
			stopped = true
			return err
		}
		if time.Since(first) > rc.timeout {
			return fmt.Errorf("timed out at %v of %d records", scrape(base)["trendstream_committed_offset"], total)
		}
		if prof != nil {
			prof.watch(pid)
		}
		if trim != nil && time.Since(lastTrim) >= rc.trim {
			if err := trim.trim(ctx); err != nil {
				return err
			}
			lastTrim = time.Now()
		}
		// Every scrape costs the process about 0.5 ms of CPU.
		time.Sleep(50 * time.Millisecond)
	}
	end := time.Now()
	cpu, bcpu := cpuSeconds(pid)-cpu0, cpuSeconds(rc.brokerPID)-bcpu0
	rss := peakRSS(pid)
	peakAnon = max(peakAnon, procField(pid, "status", "RssAnon")/1024)
	rssFile := procField(pid, "status", "RssFile") / 1024
	written := ioWriteBytes(pid)
	m := scrape(base)
	var kbytes map[string]int64
	if trim != nil {
		kbytes, err = trim.totals(ctx)
	} else {
		kbytes, err = adm.sizes(ctx, topics...)
	}
	if err != nil {
		return err
	}
	krecs, err := adm.ends(ctx, topics...)
	if err != nil {
		return err
	}
	disk := dirBlocks(rc.stateDir)
	el := end.Sub(first).Seconds()
	fmt.Printf("trendstream records=%d seconds=%.2f per_second=%.0f peak_rss_mib=%.0f peak_anon_mib=%.0f file_rss_mib=%.0f startup_seconds=%.2f cpu_seconds=%.1f broker_cpu_seconds=%.1f"+
		" closes=%.0f forecasts=%.0f batches=%.0f close_s=%.2f commit_s=%.2f write_s=%.2f train_s=%.2f train_steps=%.0f dlq=%.0f"+
		" out_bytes=%d out_records=%d changelog_bytes=%d changelog_records=%d dlq_bytes=%d trims=%d"+
		" disk_write_bytes=%d state_sst_bytes=%d state_vlog_bytes=%d state_mem_bytes=%d state_other_bytes=%d\n",
		total, el, float64(total)/el, rss, peakAnon, rssFile, first.Sub(began).Seconds(), cpu, bcpu,
		m["trendstream_bucket_closes_total"], m["trendstream_forecasts_published_total"], m["trendstream_batches_committed_total"],
		m["trendstream_bucket_close_seconds_sum"], m["trendstream_batch_commit_seconds_sum"],
		m["trendstream_output_write_seconds_sum"], m["trendstream_train_seconds_sum"], m["trendstream_train_steps_total"],
		m["trendstream_dlq_records_total"],
		kbytes[outTopic], sum(krecs[outTopic]), kbytes[clTopic], sum(krecs[clTopic]), kbytes[dlqTopic], trimCount(trim),
		written, disk[".sst"], disk[".vlog"], disk[".mem"], disk["other"])
	if prof != nil {
		if err := prof.finish(); err != nil {
			return err
		}
	}
	if rc.breakdown {
		closes := m["trendstream_bucket_closes_total"]
		for _, t := range []struct{ name, topic string }{{"changelog", clTopic}, {"forecasts", outTopic}} {
			if err := breakdown(ctx, rc.brokers, t.name, t.topic, closes); err != nil {
				return err
			}
		}
	}
	stopped = true
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return err
		}
	}
	return nil
}

// exitedEarly returns an error when the process has exited, which it
// should not before it is told to.
func exitedEarly(exited <-chan error) error {
	select {
	case err := <-exited:
		return fmt.Errorf("trendstream exited before consuming every record: %v", err)
	default:
		return nil
	}
}

func sum(m map[int32]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

func trimCount(t *trimmer) int {
	if t == nil {
		return 0
	}
	return t.trims
}

// profiler saves consecutive CPU profiles of a process covering the time
// from its start to finish, and heap profiles at finish and whenever the
// process's RSS has grown by a tenth since the last one.
type profiler struct {
	base, dir string
	done      chan struct{}
	finished  chan error
	heapRSS   float64 // MiB at the last peak heap profile
	busy      atomic.Bool
}

func startProfiler(base, dir string) *profiler {
	p := &profiler{base: base, dir: dir, done: make(chan struct{}), finished: make(chan error, 1)}
	go func() {
		for i := 0; ; i++ {
			select {
			case <-p.done:
				p.finished <- nil
				return
			default:
			}
			path := filepath.Join(dir, fmt.Sprintf("cpu-%03d.pprof", i))
			if err := saveProfile(base+"/debug/pprof/profile?seconds=2", path); err != nil {
				p.finished <- err
				return
			}
		}
	}()
	return p
}

// watch takes a heap profile when the RSS of process pid has grown by a
// tenth since the last one.
func (p *profiler) watch(pid int) {
	rss := currentRSS(pid)
	if rss < 256 || rss < 1.1*p.heapRSS || !p.busy.CompareAndSwap(false, true) {
		return
	}
	p.heapRSS = rss
	go func() {
		defer p.busy.Store(false)
		p.heap("heap-peak")
	}()
}

// heap saves the heap profile as name.pprof and, with the runtime's
// memory statistics, as name.txt; errors are printed, not returned, as a
// missing heap profile spoils nothing else.
func (p *profiler) heap(name string) {
	for _, f := range []struct{ query, ext string }{{"", ".pprof"}, {"?debug=1", ".txt"}} {
		if err := saveProfile(p.base+"/debug/pprof/heap"+f.query, filepath.Join(p.dir, name+f.ext)); err != nil {
			fmt.Fprintln(os.Stderr, "ingestbench:", err)
		}
	}
}

// finish waits for the CPU profile in progress and saves the final heap
// profile, whose alloc samples cover the whole run.
func (p *profiler) finish() error {
	close(p.done)
	err := <-p.finished
	for p.busy.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	p.heap("heap")
	return err
}

// saveProfile writes the response body of url to path.
func saveProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile: %w", err)
	}
	return f.Close()
}

// scrape reads a trendstream /metrics page into sums by metric name over
// all label values; it returns an empty map when the page cannot be read.
func scrape(base string) map[string]float64 {
	out := map[string]float64{}
	resp, err := metricsClient.Get(base + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		v, err := strconv.ParseFloat(val, 64)
		if err == nil {
			out[name] += v
		}
	}
	return out
}

// procField returns the value of a "Name: value" line of /proc/PID/file
// as a number, without its unit.
func procField(pid int, file, name string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return f
		}
	}
	return 0
}

// peakRSS returns a process's peak resident set size in MiB.
func peakRSS(pid int) float64 { return procField(pid, "status", "VmHWM") / 1024 }

// currentRSS returns a process's resident set size in MiB.
func currentRSS(pid int) float64 { return procField(pid, "status", "VmRSS") / 1024 }

// ioWriteBytes returns the bytes a process has caused to be written to
// storage, through write calls and through dirtied mapped pages alike.
func ioWriteBytes(pid int) int64 { return int64(procField(pid, "io", "write_bytes")) }

// cpuSeconds returns the user and system CPU time a process has used, 0
// for pid 0.
func cpuSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses:
	// utime and stime are the 12th and 13th, in clock ticks of 1/100 s
	// (USER_HZ on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

// dirBlocks returns the bytes of disk blocks the files in dir occupy, by
// extension (.sst, .vlog, .mem) and "other". Badger preallocates its value
// log and memtable files sparsely, so their apparent sizes would mislead.
func dirBlocks(dir string) map[string]int64 {
	out := map[string]int64{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		ext := filepath.Ext(path)
		if !slices.Contains([]string{".sst", ".vlog", ".mem"}, ext) {
			ext = "other"
		}
		out[ext] += st.Blocks * 512
		return nil
	})
	return out
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[byte]V) []byte { return slices.Sorted(maps.Keys(m)) }

// freeAddr returns a local address no one listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
