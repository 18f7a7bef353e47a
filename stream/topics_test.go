package stream

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kversion"
)

// TestBrokerWithoutCreateTopics runs the processor against a broker that
// does not offer the CreateTopics API, as some managed services do not:
// Run must fail at once, naming the topics to create by hand. Before, it
// retried forever, logging "Broker Not Available".
func TestBrokerWithoutCreateTopics(t *testing.T) {
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(19, -1) // CreateTopics
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.MaxVersions(versions), kfake.SeedTopics(2, "sales"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rp := startProcessor(t, testConfig(c.ListenAddrs()), t.TempDir())
	defer rp.db.Close()
	select {
	case err := <-rp.done:
		if err == nil {
			t.Fatal("Run returned no error")
		}
		for _, want := range []string{"CreateTopics", "forecasts", "sales.dlq", "test.changelog"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Run's error does not name %s: %v", want, err)
			}
		}
		if strings.Contains(err.Error(), `"sales"`) {
			t.Errorf("Run's error names the existing input topic: %v", err)
		}
	case <-time.After(20 * time.Second):
		rp.cancel()
		<-rp.done
		t.Fatal("Run still waiting after 20s")
	}
}
