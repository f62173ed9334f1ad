package streams

import (
	"hash"
	"hash/fnv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Hasher is the key hash of every producer and processor in the platform:
// FNV-1a 32, goka's default. franz-go defaults to murmur2; a franz-go
// producer feeding a goka input with its default partitioner writes keys to
// partitions whose table state lives elsewhere (see DESIGN.md, "traps").
func Hasher() hash.Hash32 { return fnv.New32a() }

func fnv32a(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

// Partitioner is the franz-go partitioner that places keys where goka
// (sarama's hash partitioner with Hasher) expects them.
func Partitioner() kgo.Partitioner {
	return kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a))
}

// PartitionFor returns the partition of key in a topic of n partitions,
// exactly as Partitioner and goka compute it.
func PartitionFor(key string, n int32) int32 {
	p := int32(fnv32a([]byte(key))) % n
	if p < 0 {
		p = -p
	}
	return p
}
