package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Config configures a DB. DefaultConfig is the one source of its
// defaults; a zero field but Dir also means its default.
type Config struct {
	// Dir is the directory holding the database. Required unless InMemory.
	Dir string
	// InMemory keeps everything in memory, for tests.
	InMemory bool
	// BlockCacheSize is the size in bytes of Badger's block cache. The
	// default is 32 MiB: state is mostly written, and reads at start-up are
	// sequential scans that a cache does not help.
	BlockCacheSize int64
	// IndexCacheSize is the size in bytes of Badger's index cache. The
	// default is 16 MiB.
	IndexCacheSize int64
	// MemTableSize is the size in bytes of each memtable, which also bounds
	// the largest single transaction (15% of it; larger commits are split,
	// see Batch). The default is 32 MiB.
	MemTableSize int64
	// NumMemtables is the number of memtables Badger keeps in memory, the
	// one being written and those waiting to be flushed, before writes
	// stall: with MemTableSize, the bulk of the store's memory. The
	// default is 3.
	NumMemtables int
	// SyncWrites makes every commit wait for an fsync. The default is off:
	// a process crash loses nothing, and a machine crash loses whole recent
	// transactions, state and input offsets together, which are then
	// replayed from Kafka.
	SyncWrites bool
	// GCInterval is how often the value log is garbage collected. The
	// default is 5 minutes.
	GCInterval time.Duration
	// Logger receives Badger's messages. The default discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration of a DB in dir with every
// default: a 32 MiB block cache, a 16 MiB index cache, three memtables
// of 32 MiB, no fsync per commit, value-log garbage collection every 5
// minutes, Badger's messages discarded.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:            dir,
		BlockCacheSize: 32 << 20,
		IndexCacheSize: 16 << 20,
		MemTableSize:   32 << 20,
		NumMemtables:   3,
		GCInterval:     5 * time.Minute,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

func (c *Config) setDefaults() error {
	if c.Dir == "" && !c.InMemory {
		return errors.New("state: Dir is required")
	}
	d := DefaultConfig(c.Dir)
	if c.BlockCacheSize == 0 {
		c.BlockCacheSize = d.BlockCacheSize
	}
	if c.IndexCacheSize == 0 {
		c.IndexCacheSize = d.IndexCacheSize
	}
	if c.MemTableSize == 0 {
		c.MemTableSize = d.MemTableSize
	}
	if c.NumMemtables == 0 {
		c.NumMemtables = d.NumMemtables
	}
	if c.GCInterval == 0 {
		c.GCInterval = d.GCInterval
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	switch {
	case c.BlockCacheSize < 0:
		return fmt.Errorf("state: BlockCacheSize %d is negative", c.BlockCacheSize)
	case c.IndexCacheSize < 0:
		return fmt.Errorf("state: IndexCacheSize %d is negative", c.IndexCacheSize)
	case c.MemTableSize < 1<<20:
		return fmt.Errorf("state: MemTableSize %d is below 1 MiB", c.MemTableSize)
	case c.NumMemtables < 1:
		return fmt.Errorf("state: NumMemtables %d is below 1", c.NumMemtables)
	case c.GCInterval < 0:
		return fmt.Errorf("state: GCInterval %v is negative", c.GCInterval)
	}
	return nil
}

// DB is a Badger database holding the state of every partition this
// process owns. It is safe for concurrent use; partition tasks write
// disjoint keyspaces.
type DB struct {
	db     *badger.DB
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error

	dir       string
	inMemory  bool
	memTable  int64
	freeSpace func(dir string) (uint64, bool) // a test seam
}

// Open opens or creates the database and starts its value-log garbage
// collector, which Close stops.
func Open(cfg Config) (*DB, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	opts := badger.DefaultOptions(cfg.Dir).
		WithInMemory(cfg.InMemory).
		WithBlockCacheSize(cfg.BlockCacheSize).
		WithIndexCacheSize(cfg.IndexCacheSize).
		WithMemTableSize(cfg.MemTableSize).
		WithNumMemtables(cfg.NumMemtables).
		WithSyncWrites(cfg.SyncWrites).
		WithNumVersionsToKeep(1).
		// One goroutine writes each keyspace, so optimistic conflict
		// detection would only cost time.
		WithDetectConflicts(false).
		WithCompression(options.None).
		// Values above 64 KiB (model checkpoints) go to the value log;
		// series states stay in the LSM tree, where start-up scans read
		// them sequentially.
		WithValueThreshold(64 << 10).
		WithMetricsEnabled(false).
		WithNumCompactors(2).
		WithLogger(badgerLogger{cfg.Logger})
	if cfg.InMemory {
		opts.Dir, opts.ValueDir = "", ""
	}
	bdb, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("state: opening badger in %q: %w", cfg.Dir, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	db := &DB{db: bdb, cancel: cancel, done: make(chan struct{}),
		dir: cfg.Dir, inMemory: cfg.InMemory, memTable: cfg.MemTableSize, freeSpace: freeSpace}
	go db.gcLoop(ctx, cfg.GCInterval, cfg.InMemory)
	return db, nil
}

// gcLoop runs value-log garbage collection until ctx ends.
func (db *DB) gcLoop(ctx context.Context, every time.Duration, inMemory bool) {
	defer close(db.done)
	if inMemory {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Each successful run rewrites one log file; repeat while
			// there is garbage to collect.
			for ctx.Err() == nil && db.db.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

// Close stops the garbage collector and closes the database. It is
// idempotent.
//
// Closing flushes Badger's memtable to a table file written through a
// memory map, which on a full disk kills the process with SIGBUS. When
// the state directory has less free space than two memtables, Close
// therefore leaves Badger open and returns an error wrapping
// ErrDiskFull: every commit is already in Badger's write-ahead log,
// which the next Open replays, and the process is expected to exit.
func (db *DB) Close() error {
	db.once.Do(func() {
		db.cancel()
		<-db.done
		if err := db.checkSpace(0); err != nil {
			db.err = fmt.Errorf("state: not flushing badger at close: %w", err)
			return
		}
		if err := db.db.Close(); err != nil {
			db.err = fmt.Errorf("state: closing badger: %w", err)
		}
	})
	return db.err
}

// View calls fn with a Snapshot: every read through it sees the same
// committed state, however many commits happen meanwhile. The snapshot is
// valid only during fn. View returns fn's error.
func (db *DB) View(fn func(s *Snapshot) error) error {
	return db.db.View(func(txn *badger.Txn) error { return fn(&Snapshot{txn: txn}) })
}

// Snapshot reads one consistent version of the DB; see View. It
// implements the same reads as DB.
type Snapshot struct{ txn *badger.Txn }

// Get calls fn with the value stored under key and reports whether the key
// exists. The value is valid only during fn; copy what must outlive it.
func (s *Snapshot) Get(key []byte, fn func(value []byte) error) (found bool, err error) {
	item, err := s.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err == nil {
		err = item.Value(fn)
	}
	if err != nil {
		return true, fmt.Errorf("state: reading %q: %w", key, err)
	}
	return true, nil
}

// Scan calls fn, in key order, for every key with the given prefix and its
// value, until fn returns an error, which Scan returns. Key and value are
// valid only during fn.
func (s *Snapshot) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return s.ScanFrom(prefix, nil, fn)
}

// ScanFrom is Scan starting at the first key with the prefix that is not
// before from, so that a long scan can resume where an earlier one
// stopped.
func (s *Snapshot) ScanFrom(prefix, from []byte, fn func(key, value []byte) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	it := s.txn.NewIterator(opts)
	defer it.Close()
	start := prefix
	if bytes.Compare(from, prefix) > 0 {
		start = from
	}
	for it.Seek(start); it.Valid(); it.Next() {
		item := it.Item()
		if err := item.Value(func(v []byte) error { return fn(item.Key(), v) }); err != nil {
			return fmt.Errorf("state: scanning %q: %w", prefix, err)
		}
	}
	return nil
}

// Get calls fn with the value stored under key and reports whether the key
// exists, in a snapshot of its own (see Snapshot.Get).
func (db *DB) Get(key []byte, fn func(value []byte) error) (found bool, err error) {
	err = db.View(func(s *Snapshot) (err error) {
		found, err = s.Get(key, fn)
		return err
	})
	return found, err
}

// Scan calls fn for every key with the prefix, in a snapshot of its own
// (see Snapshot.Scan).
func (db *DB) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return db.View(func(s *Snapshot) error { return s.Scan(prefix, fn) })
}

// ScanFrom calls fn for every key with the prefix from the key from on, in
// a snapshot of its own (see Snapshot.ScanFrom).
func (db *DB) ScanFrom(prefix, from []byte, fn func(key, value []byte) error) error {
	return db.View(func(s *Snapshot) error { return s.ScanFrom(prefix, from, fn) })
}

// DeletePrefix deletes every key with the given prefix, in transactions
// of bounded size. Unlike Badger's DropPrefix it does not block the
// writes of other keyspaces, so one partition can be cleared while others
// commit.
func (db *DB) DeletePrefix(prefix []byte) error {
	var b Batch
	err := db.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			b.DeleteFinal(it.Item().Key())
			if b.Len() >= 10000 {
				if _, err := db.Commit(&b); err != nil {
					return err
				}
				b.Reset()
			}
		}
		return nil
	})
	if err == nil && b.Len() > 0 {
		_, err = db.Commit(&b)
	}
	if err != nil {
		return fmt.Errorf("state: deleting %q: %w", prefix, err)
	}
	return nil
}

// badgerLogger routes Badger's logging to slog, demoting its chatty
// informational messages to debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a) }

func (b badgerLogger) log(level slog.Level, f string, a []any) {
	if b.l.Enabled(context.Background(), level) {
		b.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
	}
}
