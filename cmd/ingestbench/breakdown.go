package main

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// kindNames names the kind byte of trendstream's state keys ('p', a
// big-endian partition number, the kind, a name; see the state package),
// which the changelog's records are keyed by. Its forecast topic is keyed
// by series id, counted as kind 0.
var kindNames = map[byte]string{
	'm': "meta", 's': "series", 'b': "bucket", 'f': "forecast", 'd': "dedup",
	'x': "model", 'c': "select", 'l': "position", 'g': "fence", 0: "record",
}

// kindBytes totals the records of one kind.
type kindBytes struct {
	records, keys, values int64
}

// breakdown reads every record of topic and prints, per state key kind,
// the records, key bytes and value bytes, and those bytes per bucket
// close. These are payload bytes; the broker stores each record with some
// framing more (see admin).
func breakdown(ctx context.Context, brokers, name, topic string, closes float64) error {
	ends, _, err := endOffsets(ctx, brokers, topic)
	if err != nil {
		return err
	}
	kinds := map[byte]*kindBytes{}
	for p, end := range ends {
		c, err := kafka.DialLeader(ctx, "tcp", brokers, topic, p)
		if err != nil {
			return err
		}
		off, err := c.ReadFirstOffset()
		for err == nil && off < end {
			if _, err = c.Seek(off, kafka.SeekAbsolute); err != nil {
				break
			}
			b := c.ReadBatch(1, 16<<20)
			for {
				m, rerr := b.ReadMessage()
				if rerr != nil {
					break
				}
				var kind byte
				if len(m.Key) > 5 && m.Key[0] == 'p' {
					kind = m.Key[5]
				}
				k := kinds[kind]
				if k == nil {
					k = &kindBytes{}
					kinds[kind] = k
				}
				k.records++
				k.keys += int64(len(m.Key))
				k.values += int64(len(m.Value))
				off = m.Offset + 1
			}
			err = b.Close()
		}
		c.Close()
		if err != nil {
			return fmt.Errorf("reading %s/%d: %w", topic, p, err)
		}
	}
	for _, kind := range sortedKeys(kinds) {
		k := kinds[kind]
		kn := kindNames[kind]
		if kn == "" {
			kn = fmt.Sprintf("%q", kind)
		}
		fmt.Printf("breakdown topic=%s kind=%s records=%d key_bytes=%d value_bytes=%d bytes_per_record=%.0f bytes_per_close=%.0f\n",
			name, kn, k.records, k.keys, k.values, float64(k.keys+k.values)/float64(k.records), float64(k.keys+k.values)/max(closes, 1))
	}
	return nil
}
