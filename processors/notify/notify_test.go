package notify_test

import (
	"testing"

	"github.com/mcpstream/mcpstream/processors/notify"
	"github.com/mcpstream/mcpstream/streams"
)

// TestKeysCoverEveryPartition: a broadcast reaches every gateway only if
// each reply partition gets one copy.
func TestKeysCoverEveryPartition(t *testing.T) {
	for _, n := range []int32{1, 3, 12, 64, 256} {
		keys := notify.Keys(n)
		if int32(len(keys)) != n {
			t.Fatalf("%d partitions: %d keys", n, len(keys))
		}
		for p, k := range keys {
			if !notify.IsBroadcastKey(k) {
				t.Fatalf("%d partitions: key %q of partition %d is not a broadcast key", n, k, p)
			}
			if got := streams.PartitionFor(k, n); got != int32(p) {
				t.Fatalf("%d partitions: key %q lands in %d, want %d", n, k, got, p)
			}
		}
	}
	if notify.IsBroadcastKey("gw-a") {
		t.Error("a gateway id must never be a broadcast key")
	}
}
