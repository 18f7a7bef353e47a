package pipeline

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPureCore checks that the core imports no Kafka client, no Badger and
// no package of its drivers: it is the code both drivers share.
func TestPureCore(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/segmentio/kafka-go",
			"github.com/twmb/franz-go",
			"github.com/dgraph-io/badger",
			"github.com/trendstream/trendstream/stream",
			"github.com/trendstream/trendstream/backtest",
			"github.com/trendstream/trendstream/state",
		} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("pipeline depends on %s", dep)
			}
		}
	}
}
