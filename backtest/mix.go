package backtest

import (
	"errors"
	"slices"
	"sync"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/pipeline"
)

// lockstep is the pipeline.Mixer of a backtest's partitions: a partition
// asking for its peers' snapshots of a round waits until every other
// partition has published a snapshot of that round or a later one, or has
// processed all its records. So each partition mixes in, of every peer,
// its latest snapshot of a round up to its own, whatever the goroutines'
// pace: the replay is deterministic and mixes as a live group whose
// partitions keep pace would.
//
// A peer can be at most one publication ahead of a partition waiting at
// round r (it waits for that partition at its own next round), so keeping
// the two latest snapshots of each partition and learner is enough to
// find every peer's latest up to r. Partitions stop mixing once their
// records are processed: the buckets the end of the replay closes mix
// nothing, so that which partition drains first cannot matter.
type lockstep struct {
	mu      sync.Mutex
	cond    *sync.Cond
	parts   []lockstepPartition
	err     error
	scratch [][]*model.Snapshot // per partition, Peers' result
}

// lockstepPartition is what one partition published.
type lockstepPartition struct {
	// snaps holds per learner the two latest snapshots, newest last.
	snaps   map[string][]*model.Snapshot
	drained bool
}

var _ pipeline.Mixer = (*lockstep)(nil)

func newLockstep(partitions int) *lockstep {
	l := &lockstep{parts: make([]lockstepPartition, partitions), scratch: make([][]*model.Snapshot, partitions)}
	l.cond = sync.NewCond(&l.mu)
	for i := range l.parts {
		l.parts[i].snaps = map[string][]*model.Snapshot{}
	}
	return l
}

// errStopped is returned to partitions waiting for peers when the replay
// stops.
var errStopped = errors.New("backtest: replay stopped while partitions were mixing")

// Publish implements pipeline.Mixer. A drained partition publishes
// nothing.
func (l *lockstep) Publish(own *model.Snapshot) error {
	s := &model.Snapshot{}
	*s = *own
	s.Weights, s.Average = slices.Clone(own.Weights), slices.Clone(own.Average)
	l.mu.Lock()
	defer l.mu.Unlock()
	p := &l.parts[own.Partition]
	if p.drained {
		return nil
	}
	list := append(p.snaps[own.Learner], s)
	if len(list) > 2 {
		list = slices.Delete(list, 0, 1)
	}
	p.snaps[own.Learner] = list
	l.cond.Broadcast()
	return nil
}

// Peers implements pipeline.Mixer. A drained partition mixes nothing.
func (l *lockstep) Peers(self int32, learner string, round int64) ([]*model.Snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parts[self].drained {
		return nil, nil
	}
	out := l.scratch[self][:0]
	for q := range l.parts {
		if int32(q) == self {
			continue
		}
		p := &l.parts[q]
		for l.err == nil && !p.drained && latestRound(p.snaps[learner]) < round {
			l.cond.Wait()
		}
		if l.err != nil {
			return nil, l.err
		}
		var pick *model.Snapshot
		for _, s := range p.snaps[learner] {
			if s.Round <= round {
				pick = s
			}
		}
		if pick != nil {
			out = append(out, pick)
		}
	}
	l.scratch[self] = out
	return out, nil
}

func latestRound(list []*model.Snapshot) int64 {
	if len(list) == 0 {
		return -1 << 63
	}
	return list[len(list)-1].Round
}

// drain marks partition p as having processed all its records.
func (l *lockstep) drain(p int) {
	l.mu.Lock()
	l.parts[p].drained = true
	l.cond.Broadcast()
	l.mu.Unlock()
}

// stop makes every wait return err.
func (l *lockstep) stop(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.cond.Broadcast()
	l.mu.Unlock()
}

// queue is an unbounded queue of one partition's records. With mixing, a
// partition waiting for its peers must not stop the reader feeding them
// (a file source feeds all partitions from one goroutine), so the records
// for a waiting partition pile up here instead.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	recs   []pipeline.Record
	closed bool
}

func newQueue() *queue {
	q := &queue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(rec pipeline.Record) {
	q.mu.Lock()
	q.recs = append(q.recs, rec)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Signal()
}

// take waits for records and returns them all, handing back buf's storage
// for reuse; it returns false once the queue is closed and empty.
func (q *queue) take(buf []pipeline.Record) ([]pipeline.Record, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.recs) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.recs) == 0 {
		return nil, false
	}
	out := q.recs
	clear(buf)
	q.recs = buf[:0]
	return out, true
}
