package decision

import (
	"slices"
	"strings"
)

// Ranked is a series in a trend ranking.
type Ranked struct {
	// Series is the series id, "STORE/SKU".
	Series string
	// Trend is the series' trend at the close.
	Trend Trend
}

// better reports whether a ranks before b: by score, then by series id,
// so that rankings are deterministic.
func better(a, b *Ranked) bool {
	if a.Trend.Score != b.Trend.Score {
		return a.Trend.Score > b.Trend.Score
	}
	return a.Series < b.Series
}

// Ranking keeps, for one close of one partition, the Top best-scored
// series of each class in each store, in memory bounded by Top entries per
// class and store. A Ranking belongs to one goroutine; Reset empties it
// for the next close while keeping its storage, so a steady-state close
// does not allocate.
type Ranking struct {
	top    int
	stores map[string]*[classes][]Ranked // min-heaps by better
}

// NewRanking returns a ranking of the top n series per class and store.
func NewRanking(n int) *Ranking {
	return &Ranking{top: max(n, 1), stores: map[string]*[classes][]Ranked{}}
}

// Reset empties the ranking.
func (r *Ranking) Reset() {
	for _, lists := range r.stores {
		for i := range lists {
			clear(lists[i])
			lists[i] = lists[i][:0]
		}
	}
}

// Add ranks a series' trend; series of class None are ignored. The store
// is the part of the series id before its first '/'.
func (r *Ranking) Add(series string, tr Trend) {
	if tr.Class == None || int(tr.Class) > classes {
		return
	}
	store, _, _ := strings.Cut(series, "/")
	lists := r.stores[store]
	if lists == nil {
		lists = new([classes][]Ranked)
		for i := range lists {
			lists[i] = make([]Ranked, 0, r.top)
		}
		r.stores[store] = lists
	}
	h := &lists[tr.Class-1]
	e := Ranked{Series: series, Trend: tr}
	if len(*h) < r.top {
		*h = append(*h, e)
		siftUp(*h, len(*h)-1)
		return
	}
	if better(&e, &(*h)[0]) {
		(*h)[0] = e
		siftDown(*h, 0)
	}
}

// siftUp and siftDown keep h a min-heap under better: the worst entry at
// the root, replaced when a better one comes.
func siftUp(h []Ranked, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !better(&h[p], &h[i]) {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func siftDown(h []Ranked, i int) {
	for {
		worst, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && better(&h[worst], &h[l]) {
			worst = l
		}
		if r < len(h) && better(&h[worst], &h[r]) {
			worst = r
		}
		if worst == i {
			return
		}
		h[i], h[worst] = h[worst], h[i]
		i = worst
	}
}

// Stores appends to dst, in order, the stores with at least one ranked
// series.
func (r *Ranking) Stores(dst []string) []string {
	start := len(dst)
	for store, lists := range r.stores {
		for _, l := range lists {
			if len(l) > 0 {
				dst = append(dst, store)
				break
			}
		}
	}
	slices.Sort(dst[start:])
	return dst
}

// Top appends the ranked series of a class in a store to dst, best first.
func (r *Ranking) Top(dst []Ranked, store string, c Class) []Ranked {
	lists := r.stores[store]
	if lists == nil || c == None || int(c) > classes {
		return dst
	}
	start := len(dst)
	dst = append(dst, lists[c-1]...)
	slices.SortFunc(dst[start:], cmpRanked)
	return dst
}

func cmpRanked(a, b Ranked) int {
	switch {
	case better(&a, &b):
		return -1
	case better(&b, &a):
		return 1
	}
	return 0
}

// Merge appends to dst the best limit series of several rankings of one
// class and store, such as each partition's Top, best first. A series in
// more than one list (a partition that moved between instances) counts
// once, with its best entry. Lists need not be sorted.
func Merge(dst []Ranked, limit int, lists ...[]Ranked) []Ranked {
	start := len(dst)
	for _, l := range lists {
		dst = append(dst, l...)
	}
	all := dst[start:]
	slices.SortFunc(all, cmpRanked)
	out := all[:0]
	for _, e := range all {
		if len(out) == limit {
			break
		}
		if !slices.ContainsFunc(out, func(o Ranked) bool { return o.Series == e.Series }) {
			out = append(out, e)
		}
	}
	clear(all[len(out):])
	return dst[:start+len(out)]
}
