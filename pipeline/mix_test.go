package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trendstream/trendstream/model"
)

// recordingMixer is a Mixer that keeps every snapshot published and
// gives each partition the latest of every other.
type recordingMixer struct {
	published []model.Snapshot
	peers     []*model.Snapshot
}

var _ Mixer = (*recordingMixer)(nil)

func (m *recordingMixer) Publish(own *model.Snapshot) error {
	s := *own
	s.Weights, s.Average = slices.Clone(own.Weights), slices.Clone(own.Average)
	m.published = append(m.published, s)
	return nil
}

func (m *recordingMixer) Peers(self int32, learner string, round int64) ([]*model.Snapshot, error) {
	latest := map[int32]*model.Snapshot{}
	for i := range m.published {
		s := &m.published[i]
		if s.Partition != self && s.Learner == learner && s.Round <= round {
			latest[s.Partition] = s
		}
	}
	m.peers = m.peers[:0]
	for p := range int32(4) {
		if s := latest[p]; s != nil {
			m.peers = append(m.peers, s)
		}
	}
	return m.peers, nil
}

// rounds returns the rounds partition p published, in order.
func (m *recordingMixer) rounds(p int32) []int64 {
	var r []int64
	for _, s := range m.published {
		if s.Partition == p {
			r = append(r, s.Round)
		}
	}
	return r
}

// mixRecords returns days of daily records of series series of a
// partition, each day's in one batch.
func mixRecords(part, series, days int) [][]Record {
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	out := make([][]Record, days)
	off := 0
	for d := range days {
		for i := range series {
			ts := start.Add(time.Duration(d)*24*time.Hour + time.Duration(8+i)*time.Hour)
			out[d] = append(out[d], Record{Offset: int64(off), Key: fmt.Appendf(nil, "s%d/k%d", part, i),
				Value: fmt.Appendf(nil, `{"event_id":"p%de%d","store":"s%d","sku":"k%d","ts":"%s","qty":%d}`,
					part, off, part, i, ts.Format(time.RFC3339), 1+(d*(i+part+1))%5)})
			off++
		}
	}
	return out
}

func mixEngine(t *testing.T, mx Mixer, p int32, every int) *Engine {
	t.Helper()
	cfg := testConfig()
	cfg.Published = model.NameLSTM
	cfg.Learner.Layers, cfg.Learner.Hidden, cfg.Learner.Window = 1, 8, 14
	cfg.CheckpointEvery = 1000 // only mixing rounds and the final commit checkpoint
	e, err := NewEngine(cfg, &countingSink{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetMixer(mx, p, MixConfig{Every: every}); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEngineMix runs two partitions whose learners mix every 5 buckets
// and checks that each publishes once per round at the buckets of its
// rounds, mixes in the other's snapshot, and commits the round, the peers
// mixed and its checkpoint together, so that an engine loaded from the
// commit holds the same learner and mixing state and does not mix a
// committed round again.
func TestEngineMix(t *testing.T) {
	const days, every = 45, 5
	mx := &recordingMixer{}
	a, b := mixEngine(t, mx, 0, every), mixEngine(t, mx, 1, every)
	ra, rb := mixRecords(0, 4, days), mixRecords(1, 4, days)
	db := memStore{}
	commit := func(e *Engine, d int) {
		t.Helper()
		var w writes
		if err := e.AppendState(&w, 0, int64(d), int64(d+1), false); err != nil {
			t.Fatal(err)
		}
		db.apply(w.ahead)
		db.apply(w.final)
	}
	feed := func(e *Engine, recs []Record) {
		t.Helper()
		e.BeginBatch()
		for i := range recs {
			if err := e.Process(&recs[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	var ckAtMix []byte // the learner's checkpoint after its last mixing
	for d := range days {
		n := len(mx.rounds(0))
		feed(a, ra[d])
		feed(b, rb[d])
		commit(a, d)
		if len(mx.rounds(0)) > n {
			var err error
			if ckAtMix, err = a.roster.learners[0].(model.Checkpointer).MarshalBinary(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Day d closes bucket d-1 when day d's first record arrives; buckets
	// start at the Unix epoch's day count.
	first := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).Unix() / 86400
	var want []int64
	for bucket := first; bucket < first+days-1; bucket++ {
		if r := bucket / every; len(want) == 0 || want[len(want)-1] != r {
			want = append(want, r)
		}
	}
	if got := mx.rounds(0); !slices.Equal(got, want) {
		t.Fatalf("partition 0 published rounds %v, want %v", got, want)
	}
	row := slices.Index(a.Models(), model.NameLSTM)
	peers, round, ok := a.MixedPeers(row)
	if !ok || round != want[len(want)-1] || len(peers) != 1 || peers[0].Partition != 1 {
		t.Fatalf("partition 0 mixed %v at round %d (%v), want partition 1's at round %d", peers, round, ok, want[len(want)-1])
	}
	if a.Learned().Steps == 0 {
		t.Fatal("the learner did not train")
	}
	if st := a.Mixing(); st.Rounds != len(want)-1 || st.Published == 0 || st.Received == 0 {
		// The first round has no peer yet: partition 1 had not published.
		t.Errorf("mixing stats %+v, want %d rounds", st, len(want)-1)
	}

	if !bytes.Equal(db[string(checkpointKey(nil, 0, model.NameLSTM))], ckAtMix) {
		t.Fatal("the commit after the last mixing round does not hold the learner's checkpoint")
	}
	c := mixEngine(t, mx, 0, every)
	if _, err := c.Load(db, 0); err != nil {
		t.Fatal(err)
	}
	gotPeers, gotRound, _ := c.MixedPeers(row)
	if gotRound != round || !slices.Equal(gotPeers, peers) {
		t.Errorf("loaded engine mixed %v at round %d, want %v at %d", gotPeers, gotRound, peers, round)
	}
	var base, loaded model.Snapshot
	a.roster.learners[0].(model.Mixable).MixBase(&base)
	if !c.roster.learners[0].(model.Mixable).MixBase(&loaded) || !slices.Equal(base.Weights, loaded.Weights) {
		t.Error("the loaded learner lost its mix base")
	}
	n := len(mx.published)
	c.mixRoundForTest(t, first+days-2) // the bucket of the committed round
	if len(mx.published) != n {
		t.Error("a loaded engine mixed a committed round again")
	}
}

// mixRoundForTest runs the mixing hook of a close of bucket.
func (e *Engine) mixRoundForTest(t *testing.T, bucket int64) {
	t.Helper()
	if err := e.roster.mixRound(bucket); err != nil {
		t.Fatal(err)
	}
}

// TestMixRecordErrors checks that a mixing record that does not decode is
// an ErrMixRecord, and that a valid one round-trips.
func TestMixRecordErrors(t *testing.T) {
	good := []byte{mixRecordVersion}
	good = append(good, 10) // round 5 (zigzag)
	good = append(good, 1, 2, 14, 6)
	round, peers, base, err := decodeMix(good)
	if err != nil || round != 5 || !slices.Equal(peers, []PeerVersion{{Partition: 1, Round: 7, Version: 3}}) || base != nil {
		t.Fatalf("decodeMix = %d %v %v %v", round, peers, base, err)
	}
	for _, tc := range []struct {
		name string
		v    []byte
	}{
		{"empty", nil},
		{"version", []byte{9, 10, 0}},
		{"no count", good[:2]},
		{"truncated peer", good[:5]},
		{"count beyond", []byte{mixRecordVersion, 10, 99}},
		{"bad base", append(slices.Clone(good), "tsMIXsn1junk"...)},
	} {
		if _, _, _, err := decodeMix(tc.v); !errors.Is(err, ErrMixRecord) {
			t.Errorf("%s: %v, want ErrMixRecord", tc.name, err)
		}
	}
}
