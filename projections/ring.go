package projections

import (
	"fmt"
	"hash/fnv"
	"sort"
)

// Ring is a consistent-hash ring over named shards. Each shard owns many
// points (virtual nodes), so adding a shard takes about 1/(N+1) of the keys,
// a little from every existing shard, and removing one hands its keys out
// evenly; no other key moves. Names, not list positions, place the points:
// reordering the DSN list moves nothing.
type Ring struct {
	points []uint64
	owner  []int
	names  []string
}

// DefaultVNodes is the number of points per shard: a shard's share of the
// keys varies by about 1/sqrt(points) (3% with 1024; 256 left shards 12%
// apart in TestRingSpreadsAndMovesLittle).
const DefaultVNodes = 1024

// NewRing places vnodes points per shard (0: DefaultVNodes). Names must be
// unique.
func NewRing(names []string, vnodes int) (*Ring, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("ring: no shards")
	}
	if vnodes <= 0 {
		vnodes = DefaultVNodes
	}
	seen := map[string]bool{}
	r := &Ring{names: append([]string(nil), names...)}
	type pt struct {
		h uint64
		o int
	}
	pts := make([]pt, 0, len(names)*vnodes)
	for i, n := range names {
		if seen[n] {
			return nil, fmt.Errorf("ring: shard %q listed twice", n)
		}
		seen[n] = true
		for v := 0; v < vnodes; v++ {
			pts = append(pts, pt{hash64(fmt.Sprintf("%s#%d", n, v)), i})
		}
	}
	sort.Slice(pts, func(a, b int) bool {
		if pts[a].h != pts[b].h {
			return pts[a].h < pts[b].h
		}
		return r.names[pts[a].o] < r.names[pts[b].o] // a tie goes the same way whatever the list order
	})
	for _, p := range pts {
		r.points = append(r.points, p.h)
		r.owner = append(r.owner, p.o)
	}
	return r, nil
}

// Owner returns the index (in the names given to NewRing) of key's shard:
// the first point at or after the key's hash, wrapping around.
func (r *Ring) Owner(key string) int {
	h := hash64(key)
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i] >= h })
	if i == len(r.points) {
		i = 0
	}
	return r.owner[i]
}

// Names are the shard names, in the order given.
func (r *Ring) Names() []string { return r.names }

// hash64 is FNV-1a 64 with a final avalanche (splitmix64's): FNV alone
// spreads keys that differ in their last bytes poorly over the high bits
// the ring compares.
func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
