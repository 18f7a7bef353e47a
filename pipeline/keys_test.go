package pipeline

import (
	"bytes"
	"testing"
)

func TestKeys(t *testing.T) {
	a := slotKey(nil, 7, kindDedup, -5, 1)
	b := slotKey(nil, 7, kindDedup, 3, 0)
	c := slotKey(nil, 7, kindDedup, 3, 2)
	if bytes.Compare(a, b) >= 0 || bytes.Compare(b, c) >= 0 {
		t.Error("slot keys do not sort numerically")
	}
	slot, seq, err := parseSlotKey(a)
	if err != nil || slot != -5 || seq != 1 {
		t.Errorf("parseSlotKey = %d, %d, %v", slot, seq, err)
	}
	if _, _, err := parseSlotKey([]byte("short")); err == nil {
		t.Error("parseSlotKey accepted a short key")
	}
	if !bytes.HasPrefix(key(nil, 7, kindSeries, []byte("x")), PartitionPrefix(nil, 7)) {
		t.Error("keys are not under their partition prefix")
	}
	if bytes.HasPrefix(PartitionPrefix(nil, 256), PartitionPrefix(nil, 1)) {
		t.Error("partition prefixes overlap")
	}
	bk := bucketKey(nil, 7, []byte("S/K"), -3)
	if idx, err := parseBucketKey(bk); err != nil || idx != -3 {
		t.Errorf("parseBucketKey = %d, %v", idx, err)
	}
	if p, ok := KeyPartition(bk); !ok || p != 7 {
		t.Errorf("KeyPartition = %d, %v", p, ok)
	}
	if _, ok := KeyPartition(indexKey(nil, []byte("S/K"))); ok {
		t.Error("KeyPartition took an index key for a partition's")
	}
	if bytes.Compare(bucketKey(nil, 7, []byte("S/K"), 9), bucketKey(nil, 7, []byte("S/K"), 10)) >= 0 ||
		bytes.Compare(bucketKey(nil, 7, []byte("S/K"), 99), bucketKey(nil, 7, []byte("S/K2"), 0)) >= 0 {
		t.Error("bucket keys do not sort by series, then index")
	}
	if _, err := parseBucketKey([]byte("pxxxxbshort")); err == nil {
		t.Error("ParseBucketKey accepted a short key")
	}
	if _, err := parsePartition([]byte{1}); err == nil {
		t.Error("parsePartition accepted a short value")
	}
}
